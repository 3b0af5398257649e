"""Tests: `coldchain bench scorecard --quick --json` smoke test (keys and correctness, never speed)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from coldchain.cli import app


def test_bench_scorecard_quick_json() -> None:
    res = CliRunner().invoke(app, ["bench", "scorecard", "--quick", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    for key in (
        "devices",
        "readings",
        "scorecard_s",
        "matches_injected",
        "scorecard_growth",
        "host_probe_ms",
    ):
        assert key in out
    assert out["matches_injected"] is True, out["runs"]
    assert [r["devices"] for r in out["runs"]] == [5, 10]
    # One reading a minute per channel over two days, less the lost and malformed samples.
    largest = out["runs"][-1]
    assert largest["readings"] == out["readings"] < 10 * 2 * 1440 * 3
    assert largest["dead_letters"] > 0
    assert out["loaded_through"].startswith("gateway.store.write")


def test_bench_scorecard_refuses_a_bad_size() -> None:
    res = CliRunner().invoke(app, ["bench", "scorecard", "--devices", "3", "--json"])
    assert res.exit_code != 0
