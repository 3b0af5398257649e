"""Tests: `sim run` beside a running `run all` plays into its broker, with the simulator's own login."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from process_support import DEMO_SPEEDUP, clean_env, no_servers_left, start_run_all, stop

from coldchain.datadir import SERVERS_FILE
from coldchain.embedded import free_port


def _env(home: Path, **extra: str) -> dict[str, str]:
    return clean_env() | {"COLDCHAIN_HOME": str(home), **extra}


def test_sim_run_attaches_to_the_running_stages(server_tmp: Path) -> None:
    home = server_tmp / "home"
    owner = start_run_all(
        _env(home, COLDCHAIN_API_PORT=str(free_port()), COLDCHAIN_GATEWAY_METRICS_PORT="0"),
        stderr=subprocess.DEVNULL,
    )
    try:
        sim = subprocess.run(
            [sys.executable, "-m", "coldchain.cli", "sim", "run", "--speedup", str(DEMO_SPEEDUP)],
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
        stop(owner)
    no_servers_left(home)
