"""Tests: `coldchain bench ingest --quick --json` smoke test (keys and correctness, never speed)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from coldchain.cli import app


def test_bench_ingest_quick_json() -> None:
    res = CliRunner().invoke(app, ["bench", "ingest", "--quick", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    for key in (
        "copy_ceiling_rps",
        "gateway_rps",
        "gateway_single_rps",
        "naive_rps",
        "lost",
        "duplicates",
        "params",
    ):
        assert key in out
    assert out["lost"] == 0
    assert out["duplicates"] == 0
    assert out["params"]["readings_per_message"] == 50
