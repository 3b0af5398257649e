"""Composition root: the data directory (COLDCHAIN_HOME): its lock, where its servers run, its broker port."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from coldchain.cli.common import ExitCode

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
SERVERS_FILE = "servers.json"
PGDATA = "pgdata"
# Written by `coldchain demo` beside the database it created: that database is the demo's to reset.
DEMO_MARKER = "demo-database"
MQTT = "mqtt"
BROKER_PORT_FILE = "port"
# A second command waits this long for the owner of the data directory to say where its servers are (an
# embedded PostgreSQL starts in a few seconds, a first initdb in about ten).
ATTACH_WAIT_S = 60.0
# Mosquitto saves its store and exits within a second of SIGTERM; a leftover gets this long.
LEFTOVER_STOP_S = 10.0


class StackError(Exception):
    """The stack could not be opened: the message is one line for the user, exit_code its kind."""

    exit_code: ExitCode = ExitCode.UNAVAILABLE


class DataDirError(StackError):
    """COLDCHAIN_HOME is missing, not a directory, or in use by another process."""

    exit_code = ExitCode.DATA_DIR


class StackUnavailableError(StackError):
    """The database or the broker could not be reached or started."""

    exit_code = ExitCode.UNAVAILABLE


@dataclass(frozen=True)
class Servers:
    """Where the embedded servers of the process owning the data directory listen."""

    pid: int
    database_url: str | None
    server_url: str | None
    broker_port: int | None
    broker_pid: int | None
    broker_mqtt5: bool = True


class DataDir:
    """COLDCHAIN_HOME: one process at a time owns its embedded servers (an exclusive flock on LOCK_FILE);
    the owner publishes where they listen in SERVERS_FILE, so other commands can attach to them."""

    def __init__(self, home: Path) -> None:
        self.home = home.resolve() if home.exists() else home.absolute()
        self._lock: IO[str] | None = None

    @property
    def pgdata(self) -> Path:
        return self.home / PGDATA

    @property
    def demo_marker(self) -> Path:
        return self.home / DEMO_MARKER

    def holds_database(self) -> bool:
        return (self.pgdata / "PG_VERSION").is_file()

    @property
    def mqtt(self) -> Path:
        return self.home / MQTT

    @property
    def passwd_file(self) -> Path:
        """The embedded broker's password file, which `coldchain devices add` writes too."""
        return self.mqtt / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.mqtt / "acl"

    def check(self, *, must_exist: bool) -> None:
        """Refuse a COLDCHAIN_HOME that is not a directory, or (must_exist) that holds no database yet."""
        if self.home.exists() and not self.home.is_dir():
            raise DataDirError(f"COLDCHAIN_HOME {self.home} is not a directory")
        if must_exist and not self.holds_database():
            raise DataDirError(
                f"no data directory at {self.home} (COLDCHAIN_HOME): nothing to read there;"
                " check the path, or create one with `coldchain demo` or `coldchain db migrate`"
            )

    def try_lock(self) -> bool:
        """Take the exclusive lock (held until release() or this process ends, kill -9 included)."""
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise DataDirError(f"COLDCHAIN_HOME {self.home} is not a directory") from None
        handle = open(self.home / LOCK_FILE, "a+")  # noqa: SIM115 - held open for the lifetime of the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle
        # A servers file left by an owner that died (kill -9) describes nothing that is still its; a
        # broker it started that outlived it is stopped (the next start reuses its port).
        self._stop_leftover_broker()
        (self.home / SERVERS_FILE).unlink(missing_ok=True)
        return True

    def _stop_leftover_broker(self) -> None:
        try:
            pid = json.loads((self.home / SERVERS_FILE).read_text()).get("broker_pid")
            cmdline = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
        except (OSError, ValueError, TypeError, AttributeError):
            return
        if str(self.mqtt).encode() not in cmdline:  # the PID is another program's now
            return
        log.warning("stopping the broker (PID %d) left running by a previous owner of %s", pid, self.home)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + LEFTOVER_STOP_S
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def locked_by_another(self) -> bool:
        """Whether another process holds the lock now (asked without taking it or changing anything)."""
        try:
            handle = open(self.home / LOCK_FILE)  # noqa: SIM115 - closed below, whichever way it goes
        except OSError:
            return False
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False

    def release(self) -> None:
        if self._lock is not None:
            (self.home / SERVERS_FILE).unlink(missing_ok=True)
            self._lock.close()
            self._lock = None

    def holder(self) -> int | None:
        """The PID written by the process holding the lock (None if unreadable)."""
        try:
            text = (self.home / LOCK_FILE).read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def publish(self, servers: Servers) -> None:
        path = self.home / SERVERS_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(servers), out)
        tmp.replace(path)

    def published(self) -> Servers | None:
        try:
            raw = json.loads((self.home / SERVERS_FILE).read_text())
            servers = Servers(**raw)
        except (OSError, ValueError, TypeError):  # none, or not one this version wrote: nothing to attach to
            return None
        return servers if servers.pid == self.holder() else None

    def in_use(self) -> DataDirError:
        holder = self.holder()
        who = f"process {holder}" if holder else "another process"
        return DataDirError(
            f"COLDCHAIN_HOME {self.home} is in use by {who}; stop it or use another data directory"
        )

    @property
    def owned(self) -> bool:
        return self._lock is not None

    def attach(self, *, broker: bool, wait_s: float = ATTACH_WAIT_S) -> Servers | None:
        """The running owner's servers, once it has published them; refuse if it does not in time.

        None: the owner ended meanwhile and this process took the lock (it owns the directory now)."""
        deadline = time.monotonic() + wait_s
        while True:
            servers = self.published()
            if servers is not None:
                if broker and servers.broker_port is None:
                    raise DataDirError(
                        f"COLDCHAIN_HOME {self.home} is in use by process {servers.pid}, which runs no"
                        " broker; stop it or use another data directory"
                    )
                return servers
            if self.try_lock():
                return None
            if time.monotonic() > deadline:
                raise self.in_use()
            time.sleep(0.1)

    def reload_broker(self) -> bool:
        """Make the running owner's mosquitto re-read its password file and ACL (SIGHUP); False if there
        is none."""
        servers = self.published()
        if servers is None or servers.broker_pid is None:
            return False
        try:
            os.kill(servers.broker_pid, signal.SIGHUP)
        except ProcessLookupError:
            return False
        return True

    def kept_broker_port(self) -> int | None:
        try:
            text = (self.mqtt / BROKER_PORT_FILE).read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() and 0 < int(text) < 65536 else None

    def keep_broker_port(self, port: int) -> None:
        self.mqtt.mkdir(parents=True, exist_ok=True)
        (self.mqtt / BROKER_PORT_FILE).write_text(f"{port}\n")


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (exited, not yet reaped by its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
