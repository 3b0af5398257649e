"""Tests: `coldchain bench scorecard --quick --json` smoke test (keys and correctness, never speed)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest
from process_support import as_url
from psycopg import sql
from typer.testing import CliRunner

from coldchain.cli import app


@pytest.fixture(autouse=True)
def own_home(server_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every bench here on a data directory of the test's own, never the checkout's default (.coldchain)."""
    monkeypatch.setenv("COLDCHAIN_HOME", str(server_tmp))


def test_bench_scorecard_quick_json(pg_server_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", as_url(pg_server_url))
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
    assert [(r["devices"], r["build"]) for r in out["runs"]] == [(5, "pipeline"), (10, "pipeline")]
    # One reading a minute per channel over two days, less the lost and malformed samples.
    largest = out["runs"][-1]
    assert largest["readings"] == out["readings"] < 10 * 2 * 1440 * 3
    assert largest["dead_letters"] > 0
    assert out["loaded_through"].startswith("gateway.store.write")


def test_bench_scorecard_refuses_a_bad_size() -> None:
    res = CliRunner().invoke(app, ["bench", "scorecard", "--devices", "3", "--json"])
    assert res.exit_code != 0


def test_bench_scorecard_quick_direct_build_json(pg_server_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", as_url(pg_server_url))
    res = CliRunner().invoke(app, ["bench", "scorecard", "--quick", "--build", "direct", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    for key in (
        "devices",
        "readings",
        "shipments",
        "build_s",
        "scorecard_s",
        "scorecard_s_runs",
        "database_mb",
    ):
        assert key in out
    assert out["build"] == "direct"
    assert out["matches_injected"] is True, out["runs"]
    assert [(r["devices"], r["build"]) for r in out["runs"]] == [(5, "direct"), (10, "direct")]
    assert out["runs"][-1]["dead_letters"] > 0
    assert 0 < out["readings"] < 10 * 2 * 1440 * 3
    assert out["shipments"] == 10 * 2 * 4  # one a 6 h trip
    assert out["loaded_through"].startswith("coldchain.fleet_rollups.build")


def test_bench_scorecard_refuses_reuse_without_a_database() -> None:
    res = CliRunner().invoke(app, ["bench", "scorecard", "--reuse", "--json"])
    assert res.exit_code != 0
    assert "--keep-db" in res.output


def test_bench_scorecard_keeps_its_database_and_times_it_again(pg_server_url: str) -> None:
    name = f"bench_kept_{uuid.uuid4().hex[:8]}"
    env = {"COLDCHAIN_DATABASE_URL": as_url(pg_server_url)}
    args = ["bench", "scorecard", "--devices", "5", "--days", "2", "--build", "direct", "--keep-db", name]
    try:
        res = CliRunner().invoke(app, [*args, "--json"], env=env)
        assert res.exit_code == 0, res.output
        built = json.loads(res.output.strip().splitlines()[-1])
        assert (built["build"], built["database"], built["matches_injected"]) == ("direct", name, True)
        again = CliRunner().invoke(app, [*args, "--json"], env=env)
        assert again.exit_code != 0
        assert "exists" in again.output
        res = CliRunner().invoke(app, [*args, "--reuse", "--json"], env=env)
        assert res.exit_code == 0, res.output
        reused = json.loads(res.output.strip().splitlines()[-1])
        assert reused["build"] == "reused"
        assert reused["matches_injected"] is True
        assert reused["readings"] == built["readings"]
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
