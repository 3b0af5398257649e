"""Tests: nothing on the rules queue waits forever or is consumed silently (real worker, real PostgreSQL).

Telemetry that arrives before its device's mount or class waits and is judged when the registry changes;
a batch, or a lot, whose judging raises is quarantined with its error and an alarm, and the queue goes on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from rules_support import (
    LOT,
    SSCC,
    T0,
    Conn,
    add_asset,
    add_device,
    add_readings,
    add_series,
    at,
    custody,
    drain,
    lot_outbox,
)

import registry.store as registry
from registry.models import Asset, Lot, Mount
from rules import alarms
from rules.engine import catalog
from rules.worker import RulesWorker, outbox, queue
from traceability.epcis import builders
from traceability.ledger import chain


def history(conn: Conn, series_id: int) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT subject_id, verdict FROM verdict_history WHERE subject_id LIKE %s ORDER BY version",
        (f"{series_id}@%",),
    ).fetchall()


def waiting(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT series_id, reason, t_min, t_max FROM rules_waiting ORDER BY 1").fetchall()


def test_telemetry_before_its_mount_and_class_is_judged_when_the_registry_changes(
    conn: Conn, db_url: str
) -> None:
    conn.execute("INSERT INTO device (device_id, kind) VALUES ('early', 'temp_logger')")
    sid = add_series(conn, "early", "temp")
    worker = RulesWorker(db_url)
    try:
        # 20 min at 9 °C from a logger nobody has mounted yet: nothing to judge it against.
        add_readings(conn, sid, [(m, 9.0) for m in range(0, 21)] + [(m, 2.0) for m in range(21, 30)])
        drain(worker)
        assert conn.execute("SELECT count(*) FROM ingest_batch").fetchone() == (0,)
        assert waiting(conn) == [(sid, "unmounted", at(0), at(29))]
        assert history(conn, sid) == []
        assert worker.run_once() == 0  # the registry has not changed: the window is not taken again

        # Mounted on a truck that has no class (and carries no lot): still waiting, for a class now.
        add_asset(conn, "TRUCK-LATE", "reefer_truck", None, "transport")
        conn.execute(
            "INSERT INTO device_mount (device_id, asset_id, valid_from) VALUES ('early', 'TRUCK-LATE', %s)",
            (at(-60),),
        )
        assert worker.run_once() == 1
        assert waiting(conn) == [(sid, "no_class", at(0), at(29))]
        assert worker.run_once() == 0

        # The truck gets its class: the waiting window is judged, its excursion found.
        conn.execute("UPDATE asset SET product_class = 'chilled' WHERE asset_id = 'TRUCK-LATE'")
        assert worker.run_once() == 1
        assert waiting(conn) == []
        assert [h[1] for h in history(conn, sid)] == ["excursion"]
        rows = conn.execute(
            "SELECT start_time, end_time FROM excursion WHERE series_id = %s", (sid,)
        ).fetchall()
        assert rows == [(at(0), at(20))]
    finally:
        worker.close()


def test_a_mount_that_begins_inside_the_window_leaves_the_rest_waiting(conn: Conn, db_url: str) -> None:
    add_asset(conn, "ROOM-1", "cold_room", "chilled", "storage")
    conn.execute("INSERT INTO device (device_id, kind) VALUES ('half', 'temp_logger')")
    conn.execute(
        "INSERT INTO device_mount (device_id, asset_id, valid_from) VALUES ('half', 'ROOM-1', %s)", (at(10),)
    )
    sid = add_series(conn, "half", "temp")
    worker = RulesWorker(db_url)
    try:
        add_readings(conn, sid, [(m, 2.0) for m in range(0, 20)])
        drain(worker)
        assert [h[1] for h in history(conn, sid)] == ["pass"]  # the mounted part is judged now
        assert waiting(conn) == [(sid, "unmounted", at(0), at(19))]
    finally:
        worker.close()


def test_a_batch_that_raises_is_quarantined_with_an_alarm_and_the_queue_goes_on(
    conn: Conn, db_url: str
) -> None:
    add_asset(conn, "TRUCK-P", "reefer_truck", "chilled", "transport")
    add_device(conn, "poison", "TRUCK-P")
    bad = add_series(conn, "poison", "temp")
    add_asset(conn, "TRUCK-Q", "reefer_truck", "chilled", "transport")
    add_device(conn, "fine", "TRUCK-Q")
    good = add_series(conn, "fine", "temp")
    worker = RulesWorker(db_url)
    try:
        add_readings(conn, good, [(m, 2.0) for m in range(0, 10)])
        # A reading no probe can give (+∞ °C) got into the table: judging it raises, every time.
        add_readings(conn, bad, [(0, 2.0), (1, float("inf")), (2, 2.0)])
        add_readings(conn, good, [(m, 2.0) for m in range(10, 20)])
        poison_id = conn.execute(
            "SELECT batch_id FROM ingest_batch WHERE %s = ANY(series_ids)", (bad,)
        ).fetchone()
        assert poison_id is not None
        drain(worker)  # returns: the queue is not blocked
        assert conn.execute("SELECT count(*) FROM ingest_batch").fetchone() == (0,)
        [q] = queue.quarantined(conn)
        assert (q.batch_id, q.series_ids) == (poison_id[0], [bad])
        assert q.error.startswith("ValueError: reading 1: inf °C lies outside")
        assert history(conn, good) == [(f"{good}@TRUCK-Q", "pass")]  # the batches after it were judged
        alarm = conn.execute(
            "SELECT asset_id, kind, severity, state, reason FROM alarm WHERE rule_id = 'rules/quarantine'"
        ).fetchall()
        assert alarm == [("TRUCK-P", "quarantine", "critical", "open", catalog.quarantined(poison_id[0]))]
        assert "ValueError" not in alarm[0][4]  # the error stays in the quarantine, not in the user's reason
        assert worker.metrics.quarantines._value.get() == 1

        # Sent back before the cause is fixed: it raises again and goes back to quarantine, and the
        # telemetry arriving meanwhile is judged.
        assert queue.requeue(conn, poison_id[0])
        add_readings(conn, good, [(m, 2.0) for m in range(20, 30)])
        drain(worker)
        assert [(q.batch_id, q.series_ids) for q in queue.quarantined(conn)] == [(poison_id[0], [bad])]
        assert conn.execute("SELECT count(*) FROM rules_waiting").fetchone() == (0,)
        assert history(conn, good)[-1] == (f"{good}@TRUCK-Q", "pass")
        assert worker.metrics.quarantines._value.get() == 2
        assert quarantine_alarms(conn) == [("TRUCK-P", "open")]

        # The cause fixed (the impossible reading removed), the batch goes back and is judged.
        conn.execute("DELETE FROM reading WHERE series_id = %s AND value = 'Infinity'", (bad,))
        assert queue.requeue(conn, poison_id[0])
        assert not queue.requeue(conn, poison_id[0])
        drain(worker)
        assert queue.quarantined(conn) == []
        assert history(conn, bad) == [(f"{bad}@TRUCK-P", "pass")]
        assert quarantine_alarms(conn) == [("TRUCK-P", "resolved")]  # judged without error: it clears
    finally:
        worker.close()


def quarantine_alarms(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT asset_id, state FROM alarm WHERE rule_id = 'rules/quarantine' ORDER BY alarm_id"
    ).fetchall()


def test_the_quarantine_alarm_clears_only_when_nothing_quarantined_remains_on_the_asset(
    conn: Conn, db_url: str
) -> None:
    add_asset(conn, "TRUCK-2P", "reefer_truck", "chilled", "transport")
    add_device(conn, "poison-a", "TRUCK-2P")
    add_device(conn, "poison-b", "TRUCK-2P")
    bad_a, bad_b = add_series(conn, "poison-a", "temp"), add_series(conn, "poison-b", "temp")
    worker = RulesWorker(db_url)
    try:
        add_readings(conn, bad_a, [(0, 2.0), (1, float("inf")), (2, 2.0)])
        add_readings(conn, bad_b, [(0, 2.0), (1, float("inf")), (2, 2.0)])
        drain(worker)
        first, second = queue.quarantined(conn)
        conn.execute("DELETE FROM reading WHERE value = 'Infinity'")
        assert queue.requeue(conn, first.batch_id)
        drain(worker)
        assert quarantine_alarms(conn) == [("TRUCK-2P", "open")]  # the other batch is still held
        assert queue.requeue(conn, second.batch_id)
        drain(worker)
        assert quarantine_alarms(conn) == [("TRUCK-2P", "resolved")]
    finally:
        worker.close()


def test_a_failure_before_the_take_quarantines_no_batch_of_an_earlier_run(
    conn: Conn, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_asset(conn, "TRUCK-F", "reefer_truck", "chilled", "transport")
    add_device(conn, "fine-f", "TRUCK-F")
    add_device(conn, "poison-f", "TRUCK-F")
    good, bad = add_series(conn, "fine-f", "temp"), add_series(conn, "poison-f", "temp")
    add_readings(conn, good, [(m, 2.0) for m in range(0, 10)])
    add_readings(conn, bad, [(0, 2.0), (1, float("inf")), (2, 2.0)])
    take = outbox.take
    calls = 0

    def take_once_then_fail(c: Conn, limit: int) -> list[outbox.Batch]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("the outbox cannot be read")
        return take(c, limit)

    worker = RulesWorker(db_url)
    try:
        # The first run takes both batches and raises on the poison one; the one-batch retry then fails
        # before it takes anything: that failure is no batch's, and the caller sees it.
        monkeypatch.setattr(outbox, "take", take_once_then_fail)
        with pytest.raises(RuntimeError, match="cannot be read"):
            worker.run_once()
        assert queue.quarantined(conn) == []
        monkeypatch.setattr(outbox, "take", take)
        drain(worker)
        assert [q.series_ids for q in queue.quarantined(conn)] == [[bad]]
        assert history(conn, good) == [(f"{good}@TRUCK-F", "pass")]
    finally:
        worker.close()


def test_the_quarantine_alarm_of_an_asset_without_a_class_carries_the_class_it_is_judged_by(
    conn: Conn, db_url: str
) -> None:
    add_asset(conn, "TRUCK-U", "reefer_truck", None, "transport")  # judged by the class of its lots
    add_device(conn, "poison-u", "TRUCK-U")
    registry.add_lots(conn, [Lot(LOT, "chilled")])
    custody(conn, "TRUCK-U", -10, None)
    bad = add_series(conn, "poison-u", "temp")
    worker = RulesWorker(db_url)
    try:
        add_readings(conn, bad, [(0, 2.0), (1, float("inf")), (2, 2.0)])
        drain(worker)
        [(asset_id, product_class)] = conn.execute(
            "SELECT asset_id, product_class FROM alarm WHERE rule_id = 'rules/quarantine'"
        ).fetchall()
        assert (asset_id, product_class) == ("TRUCK-U", "chilled")  # what the alarm duties route by
    finally:
        worker.close()


# -- lots whose judging raises ----------------------------------------------------------------------------

TRUCK_EPC = "urn:epc:id:giai:6901234.TRUCK0007"
OTHER_LOT = "urn:epc:class:lgtin:6901234.012345.T2"
OTHER_SSCC = "urn:epc:id:sscc:6901234.0000000016"
OTHER_TRUCK_EPC = "urn:epc:id:giai:6901234.TRUCK0008"


def load(conn: Conn, lot: str, sscc: str, truck_epc: str) -> None:
    """The lot packed on a pallet at minute -60, the pallet loaded on the truck and shipped at minute 0."""
    chain.append(
        conn,
        builders.aggregation_event(
            event_time=at(-60),
            action="ADD",
            parent_id=sscc,
            child_quantities=[builders.quantity(lot, 800, "KGM")],
            biz_step="packing",
        ),
    )
    chain.append(
        conn,
        builders.aggregation_event(
            event_time=at(0), action="ADD", parent_id=truck_epc, child_epcs=[sscc], biz_step="loading"
        ),
    )
    chain.append(
        conn, builders.object_event(event_time=at(0) + timedelta(seconds=1), epcs=[sscc], biz_step="shipping")
    )


def watermark(conn: Conn) -> int:
    row = conn.execute("SELECT judged_seq FROM custody_watermark").fetchone()
    assert row is not None
    return int(row[0])


def test_a_lot_whose_judging_raises_is_quarantined_and_the_run_goes_on(conn: Conn, db_url: str) -> None:
    registry.add_assets(
        conn,
        [
            Asset("TRUCK-L", "reefer_truck", "TRUCK-L", epc=TRUCK_EPC, product_class="chilled"),
            Asset("TRUCK-M", "reefer_truck", "TRUCK-M", epc=OTHER_TRUCK_EPC, product_class="chilled"),
        ],
    )
    add_device(conn, "rc-l", "TRUCK-L", kind="reefer_controller")
    add_device(conn, "rc-m", "TRUCK-M", kind="reefer_controller")
    registry.add_lots(conn, [Lot(LOT, "chilled"), Lot(OTHER_LOT, "chilled")])
    temp, door = add_series(conn, "rc-l", "temp:1"), add_series(conn, "rc-l", "door")
    other = add_series(conn, "rc-m", "temp:1")
    worker = RulesWorker(db_url)
    try:
        # An impossible reading on truck L: its batch is quarantined (nothing was loaded yet).
        add_readings(conn, temp, [(m, float("inf") if m == 30 else 2.0) for m in range(61)])
        add_readings(conn, other, [(m, 2.0) for m in range(61)])
        drain(worker)
        [held] = queue.quarantined(conn)
        assert held.series_ids == [temp]
        [a] = alarms.list_alarms(conn, asset_id="TRUCK-L")
        alarms.resolve(conn, a["alarm_id"], by="qa", note="looking into the probe")

        # Then a lot goes on truck L (judging it reads the impossible reading and raises) and another
        # on truck M, in one custody range: the other lot is judged, the watermark passes both, and the
        # raising lot is quarantined with its error and an alarm on the truck holding it.
        load(conn, LOT, SSCC, TRUCK_EPC)
        load(conn, OTHER_LOT, OTHER_SSCC, OTHER_TRUCK_EPC)
        drain(worker)
        assert watermark(conn) == 6
        assert [(p.lot_id, p.result) for p in lot_outbox(conn)] == [(OTHER_LOT, "pass")]
        [(lot_id, asset_id, error)] = conn.execute(
            "SELECT lot_id, asset_id, error FROM lot_quarantine"
        ).fetchall()
        assert (lot_id, asset_id) == (LOT, "TRUCK-L")
        assert error.startswith("ValueError: ")
        [a] = [x for x in alarms.list_alarms(conn, asset_id="TRUCK-L") if x["state"] == "open"]
        assert (a["rule_id"], a["product_class"]) == ("rules/quarantine", "chilled")
        assert a["reason"] == catalog.lot_quarantined(LOT)
        assert worker.metrics.lot_quarantines._value.get() == 1

        # Telemetry on the lot's truck that is itself fine (its door) is judged, not quarantined.
        add_readings(conn, door, [(m, 0.0) for m in range(61, 71)])
        drain(worker)
        assert conn.execute("SELECT count(*) FROM ingest_batch").fetchone() == (0,)
        assert [q.batch_id for q in queue.quarantined(conn)] == [held.batch_id]

        # The cause fixed and the batch sent back: the lot is judged, and the alarm clears.
        conn.execute("DELETE FROM reading WHERE value = 'Infinity'")
        assert queue.requeue(conn, held.batch_id)
        drain(worker)
        assert conn.execute("SELECT count(*) FROM lot_quarantine").fetchone() == (0,)
        assert [(p.lot_id, p.result) for p in lot_outbox(conn)][-1] == (LOT, "pass")
        assert [x["state"] for x in alarms.list_alarms(conn, asset_id="TRUCK-L")] == ["resolved", "resolved"]
    finally:
        worker.close()


# -- waiting telemetry of compartments and of humidity ----------------------------------------------------


def test_compartment_telemetry_waiting_for_a_class_is_judged_when_the_compartment_gets_one(
    conn: Conn, db_url: str
) -> None:
    add_asset(conn, "TRUCK-C", "reefer_truck", "chilled", "transport")
    registry.add_assets(
        conn, [Asset("COMP-2", "truck_compartment", "COMP-2", parent_asset_id="TRUCK-C", probe="temp:2")]
    )
    add_device(conn, "rc-c", "TRUCK-C", kind="reefer_controller")
    sid = add_series(conn, "rc-c", "temp:2")  # the compartment's probe
    worker = RulesWorker(db_url)
    try:
        add_readings(conn, sid, [(m, 9.0) for m in range(0, 21)] + [(m, 2.0) for m in range(21, 30)])
        drain(worker)
        assert waiting(conn) == [(sid, "no_class", at(0), at(29))]
        assert worker.run_once() == 0

        conn.execute("UPDATE asset SET product_class = 'chilled' WHERE asset_id = 'COMP-2'")
        assert worker.run_once() == 1
        assert waiting(conn) == []
        assert history(conn, sid) == [(f"{sid}@COMP-2", "excursion")]
    finally:
        worker.close()


def test_humidity_before_its_mount_waits_and_is_judged_when_mounted(conn: Conn, db_url: str) -> None:
    conn.execute("INSERT INTO device (device_id, kind) VALUES ('wet', 'temp_logger')")
    rh = add_series(conn, "wet", "rh")
    worker = RulesWorker(db_url)
    try:
        add_readings(conn, rh, [(m, 80.0) for m in range(0, 121, 5)])  # above the GSP's 75 %RH for 2 h
        drain(worker)
        assert waiting(conn) == [(rh, "unmounted", at(0), at(120))]

        add_asset(conn, "STORE-H", "cold_room", "pharma_2_8", "storage")
        registry.add_mounts(conn, [Mount("wet", "STORE-H", T0 - timedelta(hours=1))])
        assert worker.run_once() == 1
        assert waiting(conn) == []
        [a] = alarms.list_alarms(conn, asset_id="STORE-H")
        assert (a["kind"], a["state"]) == ("humidity", "open")
    finally:
        worker.close()
