"""Tests: `coldchain bench trace --quick --json` runs and reports its keys and correctness fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldchain.cli import app as cli_app
from tests.test_epcis_capture import as_url


def test_bench_trace_quick(pg_server_url: str, server_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", as_url(pg_server_url))
    monkeypatch.setenv("COLDCHAIN_HOME", str(server_tmp))
    result = CliRunner().invoke(cli_app, ["bench", "trace", "--quick", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    for key in (
        "trace_p50_ms",
        "trace_p95_ms",
        "capture_eps",
        "verify_eps",
        "verify_deep_eps",
        "readings",
        "ledger_events",
        "lots",
        "params",
    ):
        assert key in out
    assert out["verify_ok"] is True
    assert out["ledger_events"] == out["bulk_events"] + out["warm_up_events"] + out["captured_events"]
    assert out["legs_per_trace"] == 3.0
