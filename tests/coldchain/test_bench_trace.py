"""Tests: `coldchain bench trace --quick --json` runs and reports its keys and correctness fields."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import psycopg
import pytest
from process_support import as_url
from typer.testing import CliRunner

from coldchain.bench.app import host_probe, steal_meter
from coldchain.bench.trace import _copy_storage_parameters
from coldchain.cli import app as cli_app


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
        "capture_eps_xml",
        "capture_store_eps",
        "verify_eps",
        "verify_deep_eps",
        "readings",
        "ledger_events",
        "lots",
        "params",
        "cpu_steal_pct",
        "host_probe_ms",
        "api_trace_rps",
        "api_ceiling_rps",
    ):
        assert key in out
    assert out["api_concurrency"] == 32
    assert out["api_trace_rps"] > 0
    assert out["api_ceiling_rps"] > 0
    for when in ("start", "end"):
        assert out["host_probe_ms"][when]["cpu_ms"] > 0
        assert out["host_probe_ms"][when]["memory_ms"] > 0
    assert out["verify_ok"] is True
    bursts = out["params"]["capture_bursts"]
    assert bursts == 2  # --quick times two bursts of each
    timed = out["params"]["capture_events"] * bursts
    assert out["captured_events"] == out["captured_events_xml"] == timed
    # Each figure is the median of its bursts' rates, which are reported beside it.
    for figure in ("capture_eps", "capture_eps_xml"):
        rates = out[f"{figure}_bursts"]
        assert len(rates) == bursts
        assert all(rate > 0 for rate in rates)
        assert out[figure] == pytest.approx(statistics.median(rates), abs=0.1)
    # The ceiling beside capture_eps stores the JSON bursts' rows again: every entry, and derived rows.
    assert out["capture_store_rows"]["ledger_event"] == out["captured_events"]
    for derived in ("event_subject", "containment", "custody_leg"):  # by seq, and by an interval's start
        assert out["capture_store_rows"][derived] > 0
    assert out["capture_store_eps"] > 0
    captured = out["warm_up_events"] + out["captured_events"] + out["captured_events_xml"]
    assert out["ledger_events"] == out["bulk_events"] + captured
    assert out["legs_per_trace"] == 3.0
    # The inspector's desk on the same ledger: a three-leg lot's PDF, a 30-day minute leg at 2 000 points.
    assert out["pdf_legs"] == 3
    assert 0 < out["trace_page_p50_ms"] <= out["trace_page_p95_ms"]
    assert out["pdf_bytes"] > 0
    assert out["pdf_p50_ms"] > 0
    assert 43_000 < out["leg_downsample_readings"] <= 43_200  # 30 days of minutes, less the dropouts
    assert 0 < out["leg_downsample_points"] <= 2_000
    with psycopg.connect(pg_server_url) as conn:
        row = conn.execute(
            "SELECT rolsuper OR pg_has_role(current_user, 'pg_checkpoint', 'MEMBER') FROM pg_roles"
            " WHERE rolname = current_user"
        ).fetchone()
    assert out["build_checkpointed"] is (row == (True,))  # CHECKPOINT needs either


def test_steal_meter_reads_proc_stat(tmp_path: Path) -> None:
    """The share of steal ticks in all ticks between start and reading; None without /proc/stat."""
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 50 0 25 400 5 0 2 17 0 0\n")
    share = steal_meter(stat)
    stat.write_text("cpu  160 0 70 900 10 0 5 55 0 0\ncpu0 80 0 35 450 5 0 2 27 0 0\n")
    assert share() == 10.0  # 20 steal of 200 ticks
    stat.unlink()
    assert share() is None
    assert steal_meter(tmp_path / "missing")() is None


def test_host_probe_gives_the_best_of_three_of_each_workload_at_start_and_end() -> None:
    """Each workload is timed three times by the clock, at start and again at the end; each figure is the
    fastest of the three, in milliseconds to 0.1 (a fake clock: what it reads is fixed, not the host's)."""
    durations_s = [
        0.0123, 0.0101, 0.0150,  # start: cpu
        0.0402, 0.0399, 0.0405,  # start: memory
        0.0200, 0.0181, 0.0190,  # end: cpu
        0.0500, 0.0500, 0.0450,  # end: memory
    ]  # fmt: skip
    readings = iter([t for k, d in enumerate(durations_s) for t in (float(k), k + d)])
    probe = host_probe(clock=lambda: next(readings))
    assert probe() == {
        "start": {"cpu_ms": 10.1, "memory_ms": 39.9},
        "end": {"cpu_ms": 18.1, "memory_ms": 45.0},
    }
    assert next(readings, None) is None, "every run of a workload is timed, and nothing else"


def test_host_probe_times_real_work() -> None:
    """With the host's clock, every figure is a positive time (no comparison between them: on a shared
    host either may be the slower)."""
    times = host_probe()()
    assert set(times) == {"start", "end"}
    for when in ("start", "end"):
        assert set(times[when]) == {"cpu_ms", "memory_ms"}
        assert all(ms > 0 for ms in times[when].values())


def test_bench_ledger_derived_rows_are_what_the_derivation_gives(db_url: str) -> None:
    """The bench writes its derived rows from its plan, not through the derivation (for speed); replaying its
    ledger through the derivation gives the same rows, so the traces it times read what capture would give."""
    from coldchain.bench.trace import _bulk_ledger, _registry
    from traceability.ledger.rederive import rederive

    with psycopg.connect(db_url) as conn:
        _registry(conn, 5, 20)
        assert _bulk_ledger(conn, 60, 5, 20) == 600
        conn.commit()
        conn.autocommit = True
        result = rederive(conn, apply=False)
    assert result.events == 600
    assert result.consistent, result.as_dict()
    assert all(t.after > 0 for t in result.tables if t.table != "lineage")


def test_a_table_copy_for_the_capture_ceiling_has_the_storage_parameters_of_its_table(db_url: str) -> None:
    """``LIKE`` copies no storage parameters: the ceiling's copy of the ledger gets the ledger's own (rows
    kept inline and uncompressed up to a page), so that it stores rows as the ledger does."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TEMP TABLE stored_like (a int) WITH (toast_tuple_target = 8160, fillfactor = 90)"
        )
        conn.execute("CREATE TEMP TABLE stored_copy (LIKE stored_like INCLUDING ALL)")
        conn.execute("CREATE TEMP TABLE plain_like (a int)")
        conn.execute("CREATE TEMP TABLE plain_copy (LIKE plain_like INCLUDING ALL)")
        _copy_storage_parameters(conn, "stored_like", "stored_copy")
        _copy_storage_parameters(conn, "plain_like", "plain_copy")
        options: dict[str, list[str] | None] = dict(
            conn.execute(
                "SELECT relname, reloptions FROM pg_class WHERE relname IN ('stored_copy', 'plain_copy')"
            ).fetchall()
        )
        ledger = conn.execute("SELECT reloptions FROM pg_class WHERE relname = 'ledger_event'").fetchone()
    assert sorted(options["stored_copy"] or []) == ["fillfactor=90", "toast_tuple_target=8160"]
    assert options["plain_copy"] is None
    assert ledger == (["toast_tuple_target=8160"],)  # what the ceiling's copy of the ledger gets
