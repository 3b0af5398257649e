"""Smoke test of `coldchain bench rules --quick --json`: keys and agreement, never speed."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from coldchain.cli import app


def test_bench_rules_quick() -> None:
    res = CliRunner().invoke(app, ["bench", "rules", "--quick", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    for key in ("numba_rps", "pandas_rps", "python_rps", "agree", "series", "readings", "excursions", "gaps"):
        assert key in out
    assert out["agree"] is True
    # The parallel scaling: the same call on every numba thread and on one, equal summaries.
    assert out["parallel_agree"] is True
    assert out["numba_threads"] >= 1
    assert out["numba_1t_rps"] > 0
    assert out["parallel_scaling"] > 0
    assert out["disagree_pandas"] == []
    assert out["disagree_python"] == []
    assert out["excursions"] > 0
    assert out["gaps"] > 0
    assert out["nan_readings"] > 0
