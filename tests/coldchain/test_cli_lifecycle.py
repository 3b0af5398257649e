"""Tests: `coldchain run` on the embedded default stops cleanly on Ctrl-C and SIGTERM, leaving nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from process_support import servers_under

from coldchain.embedded import free_port


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_run_all_stops_cleanly(server_tmp: Path, sig: signal.Signals) -> None:
    home = server_tmp / "home"
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
    env |= {
        "COLDCHAIN_HOME": str(home),
        "COLDCHAIN_API_PORT": str(port),
        "COLDCHAIN_GATEWAY_METRICS_PORT": str(metrics_port),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "coldchain.cli", "run", "all"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("running gateway, rules, ledger, api"), first + proc.stderr.read()
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert health.status_code == 200
        assert health.json()["database"] is True
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
        assert metrics.status_code == 200
        assert "coldchain_gateway" in metrics.text
        assert any("mosquitto" in s for s in servers_under(home))
        assert any("postgres" in s for s in servers_under(home))
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    assert "stopping" in out
    deadline = time.monotonic() + 10
    while servers_under(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert servers_under(home) == []
