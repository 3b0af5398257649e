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


def servers_under(path: Path, names: Iterable[str] = ("postgres", "mosquitto")) -> list[str]:
    """`name: command line` of each running process named in `names` whose command line mentions `path`."""
    wanted = set(names)
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(path) in cmd and proc.info["name"] in wanted:
            found.append(f"{proc.info['name']}: {cmd}")
    return found


def coldchain(
    *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `coldchain` command line (`python -m coldchain.cli`) in a process of its own, with no
    COLDCHAIN_* variable of the caller's but those in `env`; its exit code, stdout and stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
    return subprocess.run(
        [sys.executable, "-m", "coldchain.cli", *args],
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Running:
    """A long-running `coldchain` command (run, demo --serve): stdout and stderr merged, read line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "coldchain.cli", *args],
            env=clean | (env or {}),
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
