"""Tests: COLDCHAIN_HOME has one owner at a time; others attach or refuse; a killed owner leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from process_support import DEMO_SPEEDUP, METRICS_OFF, servers_under, stop

from coldchain.cli.common import ExitCode
from coldchain.datadir import SERVERS_FILE, DataDir, Servers
from coldchain.embedded import EmbeddedBroker, free_port


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
    return env | METRICS_OFF | {"COLDCHAIN_HOME": str(home), **extra}


def _coldchain(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coldchain.cli", *args],
        env=_env(home, **extra),
        capture_output=True,
        text=True,
        timeout=240,
    )


def _wait_until(condition: object, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _start_api(home: Path) -> tuple[subprocess.Popen[str], int]:
    """`coldchain run api`: owns the data directory and its embedded PostgreSQL until stopped."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "coldchain.cli", "run", "api"],
        env=_env(home, COLDCHAIN_API_PORT=str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("running api"), first
    return proc, port


@pytest.fixture
def running_api(server_tmp: Path) -> Iterator[tuple[Path, subprocess.Popen[str], int]]:
    home = server_tmp / "home"
    proc, port = _start_api(home)
    try:
        yield home, proc, port
    finally:
        if proc.poll() is None:
            stop(proc)
        _wait_until(lambda: not servers_under(home), "servers left under the data directory")


def test_a_second_demo_refuses_and_the_first_keeps_its_database(
    running_api: tuple[Path, subprocess.Popen[str], int],
) -> None:
    home, proc, port = running_api
    second = _coldchain(home, "demo", "--speedup", str(DEMO_SPEEDUP))
    assert second.returncode == ExitCode.DATA_DIR, second.stdout[-2000:] + second.stderr[-2000:]
    (line,) = second.stderr.strip().splitlines()[-1:]
    assert f"in use by process {proc.pid}" in line
    assert "Traceback" not in second.stderr
    assert proc.poll() is None, "the first command is still running"
    health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
    assert health.status_code == 200
    assert health.json()["database"] is True


def test_a_second_command_attaches_to_the_owners_servers(
    running_api: tuple[Path, subprocess.Popen[str], int],
) -> None:
    home, proc, _ = running_api
    published = json.loads((home / SERVERS_FILE).read_text())
    assert published["pid"] == proc.pid
    # db migrate opens the stack like any command; on the owner's database there is nothing left to apply.
    migrated = _coldchain(home, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.startswith("applied 0 migration(s)")
    postgres = [s for s in servers_under(home, ("postgres",)) if "pgdata" in s]
    assert postgres, "the owner's server is still running after the attached command ended"
    # A command that runs stages must own the directory: it refuses, naming the owner.
    run = _coldchain(home, "run", "rules")
    assert run.returncode == ExitCode.DATA_DIR
    assert f"in use by process {proc.pid}" in run.stderr


def test_after_kill_9_the_next_command_adopts_and_stops_the_leftover_postgres(server_tmp: Path) -> None:
    home = server_tmp / "home"
    proc, _ = _start_api(home)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    pgdata = (home / "pgdata").resolve()
    assert servers_under(pgdata, ("postgres",)), "a killed owner leaves its postmaster running"
    assert proc.pid in json.loads((pgdata / ".handle_pids.json").read_text())

    migrated = _coldchain(home, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert f"dropped handles of dead processes [{proc.pid}]" in migrated.stderr
    _wait_until(lambda: not servers_under(pgdata, ("postgres",)), "the leftover postgres still runs", 30)


def test_a_broker_left_by_a_dead_owner_is_stopped_by_the_next_one(server_tmp: Path) -> None:
    home = server_tmp / "home"
    data = DataDir(home)
    leftover = EmbeddedBroker(data.mqtt)
    leftover.start()
    try:
        dead_owner = Servers(
            pid=2**22 + 1,
            database_url=None,
            server_url=None,
            broker_port=leftover.port,
            broker_pid=leftover.pid,
        )
        data.publish(dead_owner)
        assert data.try_lock()
        _wait_until(
            lambda: leftover._proc is not None and leftover._proc.poll() is not None,
            "the leftover broker still runs",
            15,
        )
        assert data.published() is None
        data.release()
    finally:
        leftover.stop()
