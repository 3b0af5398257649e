"""Tests: `coldchain run` on the embedded default stops cleanly on Ctrl-C and SIGTERM, leaving nothing."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from process_support import clean_env, no_servers_left, servers_under, start_run_all

from coldchain.embedded import free_port


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_run_all_stops_cleanly(server_tmp: Path, sig: signal.Signals) -> None:
    home = server_tmp / "home"
    port, metrics_port = free_port(), free_port()
    env = clean_env() | {
        "COLDCHAIN_HOME": str(home),
        "COLDCHAIN_API_PORT": str(port),
        "COLDCHAIN_GATEWAY_METRICS_PORT": str(metrics_port),
    }
    proc = start_run_all(env)
    try:
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
    no_servers_left(home)
