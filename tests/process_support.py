"""Tests: the `coldchain` command line in processes of its own, and the servers left running."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, urlencode

import psutil
import psycopg

from coldchain.cli.common import ExitCode


def servers_under(path: Path, names: Iterable[str] = ("postgres", "mosquitto")) -> list[str]:
    """`name: command line` of each running process named in `names` whose command line mentions `path`."""
    wanted = set(names)
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(path) in cmd and proc.info["name"] in wanted:
            found.append(f"{proc.info['name']}: {cmd}")
    return found


def no_servers_left(home: Path, timeout_s: float = 10) -> None:
    """Poll until no embedded server runs under `home`; fail, naming them, at the deadline."""
    deadline = time.monotonic() + timeout_s
    while servers_under(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert servers_under(home) == []


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 60) -> None:
    """Send `sig` to `proc` and wait for it to end; kill it when it outlives `timeout` seconds."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# The speed of a scenario run by a test about something else than the scenario's pacing (a command's
# database, servers, exit and output; what the stages make of the readings): the default scenario's 8 h
# of devices play in under 2 s and the stages settle after them, with the same readings, faults and
# verdicts (fewer verdict versions on the ledger: the rules see more readings at once). Not faster: at
# 100 000x the in-process demo's trace lacked the truck's custody leg, which is not explained yet.
DEMO_SPEEDUP = 20_000.0

# The rules and ledger workers' metrics servers off unless a test asks (their fixed default ports would
# collide between commands running side by side).
METRICS_OFF = {"COLDCHAIN_RULES_METRICS_PORT": "0", "COLDCHAIN_LEDGER_METRICS_PORT": "0"}


def clean_env() -> dict[str, str]:
    """This process's environment without its COLDCHAIN_* variables (the test gives a command its own),
    the workers' metrics servers off."""
    return {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")} | METRICS_OFF


def as_foreground_job() -> None:
    """In the child before it runs: Ctrl-C (SIGINT) reaches it as it reaches a terminal's foreground job,
    also where these tests run with SIGINT ignored (a background job of a non-interactive shell passes
    that on, and Python then keeps it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_run_all(env: dict[str, str], stderr: int = subprocess.PIPE) -> subprocess.Popen[str]:
    """`coldchain run all` in a process of its own with exactly `env`, stdout piped, once its first line
    says every stage runs (on failure, with what it wrote to a piped stderr, and killed)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "coldchain.cli", "run", "all"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        preexec_fn=as_foreground_job,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("running gateway, rules, ledger, api"), first + (
            proc.stderr.read() if proc.stderr else ""
        )
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def coldchain(
    *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `coldchain` command line (`python -m coldchain.cli`) in a process of its own, with no
    COLDCHAIN_* variable of the caller's but those in `env`; its exit code, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "coldchain.cli", *args],
        env=clean_env() | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Running:
    """A long-running `coldchain` command (run, demo --serve): stdout and stderr merged, read line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "coldchain.cli", *args],
            env=clean_env() | (env or {}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    @property
    def output(self) -> str:
        return "".join(self.seen)

    def wait_for(self, pattern: str, deadline_s: float = 180) -> re.Match[str]:
        """The first line from now on matching `pattern`; fail when the process ends or the deadline
        passes first."""
        end = time.monotonic() + deadline_s
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} within {deadline_s} s:\n{self.output}")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self._lines.put(None)
                raise AssertionError(f"exited {self.proc.wait()} before {pattern!r}:\n{self.output}")
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM the command; its exit code, with everything it wrote read into `seen`."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        while (line := self._lines.get(timeout=timeout)) is not None:
            self.seen.append(line)
        return code

    def stop_cleanly(self) -> None:
        """`stop`, and check the command stopped as asked: exit code OK, "stopping" said, no traceback."""
        code = self.stop()
        assert code == ExitCode.OK, self.output[-3000:]
        assert "stopping" in self.output
        assert "Traceback" not in self.output

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def as_url(conninfo: str) -> str:
    """A postgresql:// URL of a key=value conninfo, as the fixtures give (the CLI's settings take URLs)."""
    parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    query = {k: str(v) for k, v in parts.items() if k not in ("user", "password", "dbname") and v is not None}
    auth = quote(str(parts.get("user", "")))
    if parts.get("password"):
        auth += ":" + quote(str(parts["password"]))
    return f"postgresql://{auth}@/{quote(str(parts.get('dbname', '')))}?{urlencode(query)}"
