"""Tests: `coldchain bench dashboards --json` at a tiny size runs every panel and reports its keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from process_support import as_url
from typer.testing import CliRunner

from coldchain.bench.dashboards import RANGES, plan
from coldchain.cli import app as cli_app
from dashboards.queries import PANELS


def test_bench_dashboards_tiny(pg_server_url: str, server_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", as_url(pg_server_url))
    monkeypatch.setenv("COLDCHAIN_HOME", str(server_tmp))
    args = ["--readings", "20000", "--devices", "20", "--days", "10", "--repeats", "2", "--raw-repeats", "1"]
    result = CliRunner().invoke(cli_app, ["bench", "dashboards", "--json", *args])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    keys = ("readings", "devices", "days", "worst_p95_ms", "worst_panel", "panels", "ceiling_select1_p95_ms")
    for key in (*keys, "cpu_steal_pct", "host_probe_ms", "meets_target"):
        assert key in out
    assert (out["readings"], out["devices"], out["days"]) == (20_000, 20, 10)
    assert set(out["panels"]) == set(PANELS)
    for figures in out["panels"].values():
        assert set(figures) == set(RANGES)
        for f in figures.values():
            assert f["rollup_p95_ms"] > 0
            assert f["raw_p95_ms"] > 0
    # worst_p95_ms: the target's figure, 90 days through the rollups; and the slowest of any range.
    worst = max(by["90d"]["rollup_p95_ms"] for by in out["panels"].values())
    assert out["worst_p95_ms"] == worst
    assert out["panels"][out["worst_panel"]]["90d"]["rollup_p95_ms"] == worst
    worst_any = max(f["rollup_p95_ms"] for by in out["panels"].values() for f in by.values())
    assert out["worst_any_range_p95_ms"] == worst_any
    assert out["panels"][out["worst_any_range_panel"]][out["worst_any_range"]]["rollup_p95_ms"] == worst_any
    assert out["meets_target"] is (worst < 200)
    assert out["rows_all_channels"] >= out["readings"]


def test_plan_spreads_the_readings() -> None:
    fleet = plan(10_000_000, 1_000, 90)
    assert fleet.per_device == 10_000
    assert fleet.step_s == 777  # 90 days over 10 000 readings, whole seconds
    assert fleet.readings == 10_000_000
    with pytest.raises(ValueError, match="at least one reading"):
        plan(10, 20, 1)
