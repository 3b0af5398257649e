"""Composition root: `coldchain run STAGE` and `coldchain sim run`, each started as a user starts it, seen
running, stopped with SIGTERM (exit 0); and refused with one line where they cannot run."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from process_support import DEMO_SPEEDUP, Running, as_url, coldchain

from coldchain.cli.common import ExitCode
from coldchain.embedded import free_port

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nowhere"


def env_for(home: Path, db_url: str, **extra: str) -> dict[str, str]:
    return {"COLDCHAIN_HOME": str(home), "COLDCHAIN_DATABASE_URL": as_url(db_url), **extra}


@pytest.mark.parametrize("stage", ["gateway", "rules", "ledger", "api"])
def test_run_one_stage_then_sigterm(stage: str, server_tmp: Path, db_url: str) -> None:
    api_port, metrics_port, worker_port = free_port(), free_port(), free_port()
    env = env_for(
        server_tmp / "home",
        db_url,
        COLDCHAIN_API_PORT=str(api_port),
        COLDCHAIN_GATEWAY_METRICS_PORT=str(metrics_port),
        # The rules or ledger worker's metrics (process_support turns them off otherwise).
        **{f"COLDCHAIN_{stage.upper()}_METRICS_PORT": str(worker_port)}
        if stage in ("rules", "ledger")
        else {},
    )
    running = Running("run", stage, env=env)
    try:
        running.wait_for(rf"^running {stage}\b")
        if stage == "api":
            health = httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=10)
            assert health.status_code == 200
            assert health.json()["database"] is True
        else:
            running.wait_for(r"^broker: mqtt://127\.0\.0\.1:\d+")
        if stage in ("rules", "ledger"):  # served once the stage runs
            metrics = httpx.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=10).text
            assert f"coldchain_{stage}_queue_depth" in metrics
        if stage == "gateway":
            running.wait_for(rf"^metrics: http://127\.0\.0\.1:{metrics_port}/metrics")
            assert (
                "coldchain_gateway" in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
            )
        running.stop_cleanly()
    finally:
        running.kill()


def test_run_refuses_an_unknown_stage(tmp_path: Path, db_url: str) -> None:
    done = coldchain("run", "gateway", "nonsense", env=env_for(tmp_path / "home", db_url))
    assert done.returncode == ExitCode.USAGE
    assert done.stderr.strip() == (
        "unknown stage(s): nonsense (choose from gateway, rules, ledger, api, all)"
    )


@pytest.mark.parametrize("command", [("run", "api"), ("sim", "run")])
def test_a_command_names_an_unreachable_database(tmp_path: Path, command: tuple[str, str]) -> None:
    done = coldchain(*command, env={"COLDCHAIN_HOME": str(tmp_path), "COLDCHAIN_DATABASE_URL": UNREACHABLE})
    assert done.returncode == ExitCode.UNAVAILABLE
    assert len(done.stderr.splitlines()) == 1
    assert "COLDCHAIN_DATABASE_URL" in done.stderr


def test_sim_run_plays_the_demo_devices(server_tmp: Path, db_url: str) -> None:
    done = coldchain("sim", "run", "--speedup", str(DEMO_SPEEDUP), env=env_for(server_tmp / "home", db_url))
    assert done.returncode == ExitCode.OK, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["messages"] > 100
