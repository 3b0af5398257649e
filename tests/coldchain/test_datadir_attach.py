"""Tests: `sim run` beside a running `run all` plays into its broker, with the simulator's own login."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from process_support import servers_under

from coldchain.datadir import SERVERS_FILE
from coldchain.embedded import free_port


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
    return env | {"COLDCHAIN_HOME": str(home), **extra}


def test_sim_run_attaches_to_the_running_stages(server_tmp: Path) -> None:
    home = server_tmp / "home"
    owner = subprocess.Popen(
        [sys.executable, "-m", "coldchain.cli", "run", "all"],
        env=_env(home, COLDCHAIN_API_PORT=str(free_port()), COLDCHAIN_GATEWAY_METRICS_PORT="0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert owner.stdout is not None
        first = owner.stdout.readline()
        assert first.startswith("running gateway, rules, ledger, api"), first
        sim = subprocess.run(
            [sys.executable, "-m", "coldchain.cli", "sim", "run", "--speedup", "3000"],
            env=_env(home),
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert sim.returncode == 0, sim.stderr[-3000:]
        report = json.loads(sim.stdout.strip().splitlines()[-1])
        assert report["readings_published"] > 3000
        database_url = json.loads((home / SERVERS_FILE).read_text())["database_url"]
        with psycopg.connect(database_url, autocommit=True) as conn:
            deadline = time.monotonic() + 90
            while True:
                row = conn.execute("SELECT count(*) FROM reading").fetchone()
                if row == (report["readings_published"],):
                    break
                assert time.monotonic() < deadline, (row, report["readings_published"])
                time.sleep(0.2)
        assert owner.poll() is None, "the owner runs on after the attached command ended"
    finally:
        owner.send_signal(signal.SIGTERM)
        try:
            owner.wait(timeout=60)
        except subprocess.TimeoutExpired:
            owner.kill()
            owner.wait()
    deadline = time.monotonic() + 10
    while servers_under(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert servers_under(home) == []
