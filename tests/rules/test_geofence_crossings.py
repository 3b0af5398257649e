"""Tests: geofence crossings judged by the rules worker, in the ledger once, late data included."""

from __future__ import annotations

import itertools
from typing import Any

from geofence_support import (
    CONTAINER,
    CONTAINER_EPC,
    IN_YARD,
    INSIDE,
    OUTSIDE,
    SHIPMENT,
    TERMINAL,
    THROUGH,
    YARD,
    Conn,
    declared_geofence_events,
    fenced_world,
    live_geofence_events,
    stored_crossings,
    track,
)
from rules_support import at, drain

from rules.worker import RulesWorker
from traceability.epcis import multimodal
from traceability.geofence_ledger import live_events
from traceability.ledger import verify
from traceability.worker import LedgerWorker


def _ms(minute: float) -> str:
    return at(minute).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _run(db_url: str) -> None:
    worker = RulesWorker(db_url)
    try:
        drain(worker)
    finally:
        worker.close()
    while LedgerWorker(db_url).run_once():
        pass


def test_enter_and_exit_reach_the_ledger_once(db_url: str, conn: Conn) -> None:
    fenced_world(conn)
    # Outside, inside from minute 2 to 4, outside again from minute 5; then into the yard's polygon.
    track(
        conn, [(0, OUTSIDE), (1, OUTSIDE), (2, INSIDE), (3, INSIDE), (4, INSIDE), (5, OUTSIDE), (6, IN_YARD)]
    )
    _run(db_url)
    assert stored_crossings(conn) == [
        (TERMINAL, "enter", at(2)),
        (TERMINAL, "exit", at(5)),
        (YARD, "enter", at(6)),
    ]
    assert live_geofence_events(conn) == [
        ("arriving", TERMINAL, _ms(2), SHIPMENT),
        ("departing", TERMINAL, _ms(5), SHIPMENT),
        ("arriving", YARD, _ms(6), SHIPMENT),
    ]
    event: dict[str, Any] = conn.execute(
        "SELECT event FROM ledger_event WHERE biz_step = 'arriving' ORDER BY seq LIMIT 1"
    ).fetchone()[0]  # type: ignore[index]
    assert event["epcList"] == [CONTAINER_EPC]
    assert event["bizLocation"] == {"id": TERMINAL}
    assert event["bizTransactionList"] == [
        {
            "type": multimodal.BTT_THROUGH_DOCUMENT,
            "bizTransaction": multimodal.document_uri("through", THROUGH),
        }
    ]
    assert (event["cc:geofence"], event["cc:asset"], event["cc:shipment"]) == ("enter", CONTAINER, SHIPMENT)
    departing = conn.execute("SELECT event FROM ledger_event WHERE biz_step = 'departing'").fetchone()
    assert departing is not None
    assert "bizLocation" not in departing[0]
    # The ledger's own derived table links the events to the through document.
    linked = conn.execute(
        "SELECT count(*) FROM biz_transaction WHERE biz_transaction = %s",
        (multimodal.document_uri("through", THROUGH),),
    ).fetchone()
    assert linked == (3,)
    assert conn.execute("SELECT count(*) FROM geofence_outbox").fetchone() == (0,)
    assert verify.verify(conn).ok


def test_redelivered_batch_changes_nothing(db_url: str, conn: Conn) -> None:
    fenced_world(conn)
    points = [(0, OUTSIDE), (1, INSIDE), (2, OUTSIDE)]
    track(conn, points)
    _run(db_url)
    before = live_geofence_events(conn)
    seqs = conn.execute("SELECT max(seq) FROM ledger_event").fetchone()
    track(conn, points)  # the same positions again (a redelivery): a new ingest_batch row, no new reading
    track(conn, points[1:])
    _run(db_url)
    assert live_geofence_events(conn) == before
    assert len(before) == 2
    assert conn.execute("SELECT max(seq) FROM ledger_event").fetchone() == seqs, "nothing appended"
    assert declared_geofence_events(conn) == []


def test_late_position_moves_the_crossing_and_corrects_the_ledger(db_url: str, conn: Conn) -> None:
    fenced_world(conn)
    track(conn, [(0, OUTSIDE), (10, INSIDE), (20, INSIDE), (30, OUTSIDE)])
    _run(db_url)
    assert live_geofence_events(conn) == [
        ("arriving", TERMINAL, _ms(10), SHIPMENT),
        ("departing", TERMINAL, _ms(30), SHIPMENT),
    ]
    # A device buffered offline: positions at minutes 5 (already inside) and 25 (already outside) arrive
    # late. Both crossings move earlier; the ledger's events at 10 and 30 are declared wrong.
    track(conn, [(5, INSIDE), (25, OUTSIDE)])
    _run(db_url)
    assert stored_crossings(conn) == [(TERMINAL, "enter", at(5)), (TERMINAL, "exit", at(25))]
    assert live_geofence_events(conn) == [
        ("arriving", TERMINAL, _ms(5), SHIPMENT),
        ("departing", TERMINAL, _ms(25), SHIPMENT),
    ]
    declared = declared_geofence_events(conn)
    assert sorted(e["eventTime"] for e in declared) == [_ms(10), _ms(30)]
    new_ids = {
        r[0]
        for r in conn.execute(
            "SELECT event_id FROM ledger_event WHERE event ? 'cc:geofence' AND event_time IN (%s, %s)",
            (at(5), at(25)),
        ).fetchall()
    }
    for e in declared:
        assert e["errorDeclaration"]["reason"] == "incorrect_data"
        assert set(e["errorDeclaration"]["correctiveEventIDs"]) <= new_ids
        assert len(e["errorDeclaration"]["correctiveEventIDs"]) == 1
    # The same late batch again changes nothing.
    seqs = conn.execute("SELECT max(seq) FROM ledger_event").fetchone()
    track(conn, [(5, INSIDE), (25, OUTSIDE)])
    _run(db_url)
    assert conn.execute("SELECT max(seq) FROM ledger_event").fetchone() == seqs
    assert verify.verify(conn).ok


def test_late_position_in_between_adds_a_visit(db_url: str, conn: Conn) -> None:
    fenced_world(conn)
    track(conn, [(0, OUTSIDE), (10, OUTSIDE)])
    _run(db_url)
    assert live_geofence_events(conn) == []
    track(conn, [(5, INSIDE)])  # late: it was inside in between
    _run(db_url)
    assert stored_crossings(conn) == [(TERMINAL, "enter", at(5)), (TERMINAL, "exit", at(10))]
    assert [e[:3] for e in live_geofence_events(conn)] == [
        ("arriving", TERMINAL, _ms(5)),
        ("departing", TERMINAL, _ms(10)),
    ]
    assert declared_geofence_events(conn) == []


def _live_at(conn: Conn, minute: float) -> dict[str, Any]:
    [event] = [e for e in live_events(conn) if e["eventTime"] == _ms(minute)]
    return event


def test_crossing_back_at_a_declared_time_reaches_the_ledger_again(db_url: str, conn: Conn) -> None:
    fenced_world(conn)
    track(conn, [(0, OUTSIDE), (5, INSIDE)])
    _run(db_url)
    entered_at_5 = _live_at(conn, 5)
    # Late: inside already at minute 3; the entry moves to 3 and the event at 5 is declared wrong.
    track(conn, [(3, INSIDE)])
    _run(db_url)
    assert [e[:3] for e in live_geofence_events(conn)] == [("arriving", TERMINAL, _ms(3))]
    assert [e["eventID"] for e in declared_geofence_events(conn)] == [entered_at_5["eventID"]]
    # Later still: outside at 4, so the entry at 5 is a crossing again. Its event is a new one naming the
    # event declared wrong, not that one again (the ledger would take it for one it already holds).
    track(conn, [(4, OUTSIDE)])
    _run(db_url)
    assert stored_crossings(conn) == [
        (TERMINAL, "enter", at(3)),
        (TERMINAL, "exit", at(4)),
        (TERMINAL, "enter", at(5)),
    ]
    assert live_geofence_events(conn) == [
        ("arriving", TERMINAL, _ms(3), SHIPMENT),
        ("departing", TERMINAL, _ms(4), SHIPMENT),
        ("arriving", TERMINAL, _ms(5), SHIPMENT),
    ]
    back = _live_at(conn, 5)
    assert back[multimodal.SUPERSEDES_KEY] == entered_at_5["eventID"]
    # Away and back once more: the entry at 5 moves to 4.5, then 4.75 is outside again.
    track(conn, [(4.5, INSIDE)])
    _run(db_url)
    assert [e[2] for e in live_geofence_events(conn)] == [_ms(3), _ms(4), _ms(4.5)]
    track(conn, [(4.75, OUTSIDE)])
    _run(db_url)
    assert [e[:3] for e in live_geofence_events(conn)] == [
        ("arriving", TERMINAL, _ms(3)),
        ("departing", TERMINAL, _ms(4)),
        ("arriving", TERMINAL, _ms(4.5)),
        ("departing", TERMINAL, _ms(4.75)),
        ("arriving", TERMINAL, _ms(5)),
    ]
    assert _live_at(conn, 5)[multimodal.SUPERSEDES_KEY] == back["eventID"]
    # Every late batch again changes nothing: each crossing is in the ledger exactly once.
    seqs = conn.execute("SELECT max(seq) FROM ledger_event").fetchone()
    track(conn, [(3, INSIDE), (4, OUTSIDE), (4.5, INSIDE), (4.75, OUTSIDE)])
    _run(db_url)
    assert conn.execute("SELECT max(seq) FROM ledger_event").fetchone() == seqs
    assert len(live_events(conn)) == len(stored_crossings(conn)) == 5
    assert verify.verify(conn).ok


def test_every_document_of_the_shipment_moves_its_state(db_url: str, conn: Conn) -> None:
    # A shipment registered under a B/L and a road waybill, no through document.
    fenced_world(conn, through_document=None, bill_of_lading="BL/77", road_waybill="RW-9")
    track(conn, [(0, INSIDE), (1, INSIDE), (2, OUTSIDE)])
    _run(db_url)
    [departing] = live_events(conn)
    assert departing["bizStep"] == "departing"
    assert departing["bizTransactionList"] == multimodal.biz_transactions(
        bill_of_lading="BL/77", road_waybill="RW-9"
    )
    state = conn.execute(
        "SELECT state, departed_at FROM shipment_state WHERE shipment_id = %s", (SHIPMENT,)
    ).fetchone()
    assert state == ("in_transit", at(2))


def test_late_earliest_position_makes_the_first_known_one_a_crossing(db_url: str, conn: Conn) -> None:
    fenced_world(conn)
    track(conn, [(10, INSIDE), (20, INSIDE)])
    _run(db_url)
    assert stored_crossings(conn) == [], "the first known position crosses nothing"
    track(conn, [(0, OUTSIDE)])
    _run(db_url)
    assert stored_crossings(conn) == [(TERMINAL, "enter", at(10))]


def test_asset_without_epc_reports_the_shipments_lots(db_url: str, conn: Conn) -> None:
    from registry.models import Lot
    from registry.store import add_lots

    fenced_world(conn, asset_epc=None)
    lot = "urn:epc:class:lgtin:6901234.012345.DUR1"
    add_lots(conn, [Lot(lot, "chilled")])
    conn.execute(
        "INSERT INTO shipment_lot (shipment_id, lot_id, quantity, uom) VALUES (%s, %s, 1200, 'KGM')",
        (SHIPMENT, lot),
    )
    track(conn, [(0, OUTSIDE), (1, INSIDE)])
    _run(db_url)
    row = conn.execute("SELECT event FROM ledger_event WHERE biz_step = 'arriving'").fetchone()
    assert row is not None
    assert "epcList" not in row[0]
    assert row[0]["quantityList"] == [{"epcClass": lot, "quantity": 1200.0, "uom": "KGM"}]


def test_positions_before_the_mount_wait_for_it(db_url: str, conn: Conn) -> None:
    import registry.store as registry
    from registry.models import Device, Mount

    fenced_world(conn)
    registry.add_devices(conn, [Device("gps-spare", "gps_tracker")])
    track(conn, [(0, OUTSIDE), (1, INSIDE)], device="gps-spare")
    _run(db_url)
    assert stored_crossings(conn) == []
    waiting = conn.execute("SELECT device_id, reason FROM rules_waiting").fetchall()
    assert waiting == [("gps-spare", "unmounted"), ("gps-spare", "unmounted")], "lat and lon wait"
    # The tracker's mount on the container is registered afterwards: its positions are judged then.
    registry.add_mounts(conn, [Mount("gps-spare", CONTAINER, at(-30))])
    _run(db_url)
    assert stored_crossings(conn) == [(TERMINAL, "enter", at(1))]
    assert conn.execute("SELECT count(*) FROM rules_waiting").fetchone() == (0,)
    assert [e[:3] for e in live_geofence_events(conn)] == [("arriving", TERMINAL, _ms(1))]


def test_workers_side_by_side_judge_and_append_each_crossing_once(db_url: str, conn: Conn) -> None:
    import random
    import threading

    import registry.store as registry
    from registry.models import Asset, Device, Mount

    fenced_world(conn)
    rng = random.Random(17)
    places = [OUTSIDE, INSIDE, IN_YARD]
    tracks: dict[str, dict[int, tuple[float, float]]] = {}
    batches: list[tuple[str, list[tuple[float, tuple[float, float]]]]] = []
    for n in range(3):
        asset, device = f"TRUCK-P{n}", f"gps-p{n}"
        registry.add_assets(conn, [Asset(asset, "reefer_truck", asset, epc=f"urn:epc:id:giai:6901234.9{n}")])
        registry.add_devices(conn, [Device(device, "gps_tracker")])
        registry.add_mounts(conn, [Mount(device, asset, at(-60))])
        tracks[asset] = {m: rng.choice(places) for m in range(40)}
        minutes = list(range(40))
        batches += [(device, [(m, tracks[asset][m]) for m in minutes[i : i + 3]]) for i in range(0, 40, 3)]
    rng.shuffle(batches)
    for device, points in batches:
        track(conn, points, device=device)

    judged = threading.Event()

    def rules() -> None:
        worker = RulesWorker(db_url, batch_limit=1)
        try:
            drain(worker)
        finally:
            worker.close()

    def ledger() -> None:
        while not judged.is_set() or LedgerWorker(db_url).run_once():
            LedgerWorker(db_url).run_once()

    rule_threads = [threading.Thread(target=rules) for _ in range(2)]
    ledger_threads = [threading.Thread(target=ledger) for _ in range(2)]
    for t in [*rule_threads, *ledger_threads]:
        t.start()
    for t in rule_threads:
        t.join()
    judged.set()
    for t in ledger_threads:
        t.join()
    assert conn.execute("SELECT count(*) FROM ingest_batch").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM geofence_outbox").fetchone() == (0,)

    def expected(asset: str) -> list[tuple[str, str, Any]]:
        out = []
        ordered = sorted(tracks[asset].items())
        for loc, place in ((TERMINAL, INSIDE), (YARD, IN_YARD)):
            for (_, a), (m, b) in itertools.pairwise(ordered):
                if (a == place) != (b == place):
                    out.append((loc, "enter" if b == place else "exit", at(m)))
        return sorted(out, key=lambda c: (c[2], c[0]))

    for asset in tracks:
        stored = conn.execute(
            "SELECT location_id, direction, crossed_at FROM geofence_crossing WHERE asset_id = %s"
            " ORDER BY crossed_at, location_id",
            (asset,),
        ).fetchall()
        assert stored == expected(asset)
        live = conn.execute(
            "SELECT e.event->'readPoint'->>'id', e.event->>'cc:geofence', e.event_time FROM ledger_event e"
            " WHERE e.event->>'cc:asset' = %s AND NOT e.declares_error AND NOT EXISTS"
            " (SELECT 1 FROM ledger_event d WHERE d.event_id = e.event_id AND d.declares_error)"
            " ORDER BY e.event_time, 1",
            (asset,),
        ).fetchall()
        assert live == expected(asset)
    assert verify.verify(conn).ok
