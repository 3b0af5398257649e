"""Tests: the rules worker re-judges a lot whose custody the ledger changed, with no telemetry after it."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from rules_support import LOT, SSCC, Conn, add_readings, add_series, at, lot_outbox

import registry.store as registry
from registry.models import Asset, Device, Lot, Mount
from rules.worker import RulesWorker
from rules.worker.custody import SeqRange, seq_range
from traceability.epcis import builders
from traceability.ledger import chain

TRUCK_EPC = "urn:epc:id:giai:6901234.TRUCK0001"


def lot_versions(conn: Conn) -> list[tuple[int, str, dict[str, Any]]]:
    rows = conn.execute(
        "SELECT version, verdict, arrived FROM verdict_history WHERE subject_kind = 'lot' AND subject_id = %s"
        " ORDER BY version",
        (LOT,),
    ).fetchall()
    return [(int(v), str(verdict), dict(arrived)) for v, verdict, arrived in rows]


def watermark(conn: Conn) -> int:
    row = conn.execute("SELECT judged_seq FROM custody_watermark").fetchone()
    assert row is not None
    return int(row[0])


def loaded_truck(conn: Conn) -> None:
    """A chilled lot on a pallet, loaded on a reefer truck and shipped at minute 0; the truck's probe
    reads 2 °C every minute to minute 60 (one ingest_batch row)."""
    registry.add_assets(
        conn,
        [Asset("TRUCK-1", "reefer_truck", "TRUCK-1", epc=TRUCK_EPC, product_class="chilled")],
    )
    registry.add_devices(conn, [Device("truck-rc", "reefer_controller")])
    registry.add_mounts(conn, [Mount("truck-rc", "TRUCK-1", at(-1440))])
    registry.add_lots(conn, [Lot(LOT, "chilled")])
    series_id = add_series(conn, "truck-rc", "temp:1")
    chain.append(
        conn,
        builders.aggregation_event(
            event_time=at(-60),
            action="ADD",
            parent_id=SSCC,
            child_quantities=[builders.quantity(LOT, 800, "KGM")],
            biz_step="packing",
        ),
    )
    chain.append(
        conn,
        builders.aggregation_event(
            event_time=at(0), action="ADD", parent_id=TRUCK_EPC, child_epcs=[SSCC], biz_step="loading"
        ),
    )
    chain.append(
        conn, builders.object_event(event_time=at(0) + timedelta(seconds=1), epcs=[SSCC], biz_step="shipping")
    )
    add_readings(conn, series_id, [(m, 2.0) for m in range(61)])


def handed_over(conn: Conn) -> None:
    """The pallet unloaded at minute 60 and received at minute 61 by a party with no asset: a leg
    no probe covers (two ledger seqs, no telemetry)."""
    chain.append(
        conn,
        builders.aggregation_event(
            event_time=at(60), action="DELETE", parent_id=TRUCK_EPC, child_epcs=[SSCC], biz_step="unloading"
        ),
    )
    chain.append(conn, builders.object_event(event_time=at(61), epcs=[SSCC], biz_step="receiving"))


def drained(worker: RulesWorker, runs: int = 10) -> None:
    """Run the worker until it finds no work, failing if it still finds some after `runs` runs."""
    for _ in range(runs):
        if worker.run_once() == 0:
            return
    raise AssertionError(f"the worker still found work after {runs} runs")


def judged_in_transit(db_url: str, conn: Conn) -> RulesWorker:
    """The loaded truck judged on its telemetry: one lot version, 'pass', one lot_verdict row."""
    loaded_truck(conn)
    worker = RulesWorker(db_url)
    drained(worker)
    assert [(v, verdict) for v, verdict, _ in lot_versions(conn)] == [(1, "pass")]
    assert [p.result for p in lot_outbox(conn)] == ["pass"]
    assert watermark(conn) == 3
    return worker


def test_handoff_without_telemetry_gets_a_lot_verdict(db_url: str, conn: Conn) -> None:
    worker = judged_in_transit(db_url, conn)
    try:
        handed_over(conn)
        assert conn.execute("SELECT count(*) FROM ingest_batch").fetchone() == (0,)
        assert worker.run_once() == 2  # the two ledger seqs, no ingest_batch row
        assert worker.last_run.custody_seqs == 2
        assert worker.last_run.lots == 1
        versions = lot_versions(conn)
        assert [(v, verdict) for v, verdict, _ in versions] == [(1, "pass"), (2, "broken")]
        assert versions[-1][2] == {"custody_seq": [4, 5]}
        sent = lot_outbox(conn)
        assert [(p.result, p.version) for p in sent] == [("pass", 1), ("broken", 2)]
        assert any("unknown asset" in r for r in sent[-1].reasons)
        assert watermark(conn) == 5

        # Nothing new in the ledger: nothing is judged, nothing written.
        assert worker.run_once() == 0
        assert worker.last_run.lots == 0
        assert len(lot_versions(conn)) == 2
        assert len(lot_outbox(conn)) == 2
        assert watermark(conn) == 5
    finally:
        worker.close()


def test_custody_change_is_judged_once_across_workers(db_url: str, conn: Conn) -> None:
    worker = judged_in_transit(db_url, conn)
    other = RulesWorker(db_url)
    try:
        handed_over(conn)
        with psycopg.connect(db_url) as holder:
            # Another worker's run holds the watermark: this one leaves the custody work to it.
            holder.execute("SELECT judged_seq FROM custody_watermark FOR UPDATE")
            assert worker.run_once() == 0
            assert other.run_once() == 0
            assert len(lot_versions(conn)) == 1
            holder.rollback()
        assert other.run_once() == 2
        assert worker.run_once() == 0  # the other worker judged it: not again
        assert [(v, verdict) for v, verdict, _ in lot_versions(conn)] == [(1, "pass"), (2, "broken")]
        assert [p.result for p in lot_outbox(conn)] == ["pass", "broken"]
    finally:
        other.close()
        worker.close()


def test_a_lot_judged_by_another_worker_is_waited_for(db_url: str, conn: Conn) -> None:
    worker = judged_in_transit(db_url, conn)
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run_once()
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)
        finally:
            done.set()

    try:
        handed_over(conn)
        with psycopg.connect(db_url) as holder:
            # Another worker is judging the lot (it holds the lot's lock): this one waits its turn.
            holder.execute("SELECT pg_advisory_xact_lock(hashtext('rules.lot'), hashtext(%s))", (LOT,))
            thread = threading.Thread(target=run)
            thread.start()
            deadline = time.monotonic() + 30
            waiting = False
            while not done.is_set() and not waiting and time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()
                waiting = row is not None and row[0] > 0
                done.wait(0.02)
            assert waiting
            assert not done.is_set()
            assert len(lot_versions(conn)) == 1
            holder.rollback()
        assert done.wait(30)
        thread.join()
        assert not errors
        assert [(v, verdict) for v, verdict, _ in lot_versions(conn)] == [(1, "pass"), (2, "broken")]
    finally:
        worker.close()


def test_a_backlog_is_judged_a_bounded_number_of_seqs_a_run(db_url: str, conn: Conn) -> None:
    judged_in_transit(db_url, conn).close()
    handed_over(conn)
    worker = RulesWorker(db_url, custody_limit=1)
    try:
        # A lot is judged on its custody as it stands: at seq 4 (unloaded) the receipt (seq 5) is
        # already in custody_leg, so the new version comes with seq 4 and seq 5 changes nothing more.
        assert worker.run_once() == 1
        assert watermark(conn) == 4
        assert worker.last_run.lots == 1
        versions = lot_versions(conn)
        assert [(v, verdict) for v, verdict, _ in versions] == [(1, "pass"), (2, "broken")]
        assert versions[-1][2] == {"custody_seq": [4, 4]}
        assert worker.run_once() == 1
        assert watermark(conn) == 5
        assert worker.last_run.lots == 1
        assert worker.run_once() == 0
        assert len(lot_versions(conn)) == 2
        assert [p.result for p in lot_outbox(conn)] == ["pass", "broken"]
    finally:
        worker.close()


def test_seq_range_is_bounded_and_stops_at_the_head() -> None:
    assert seq_range(0, 0, 10) is None
    assert seq_range(7, 7, 10) is None
    assert seq_range(0, 3, 10) == SeqRange(0, 3)
    assert seq_range(3, 100, 10) == SeqRange(3, 13)
    assert SeqRange(3, 13).arrived() == {"custody_seq": [4, 13]}
    with pytest.raises(ValueError, match="limit"):
        seq_range(0, 1, 0)
