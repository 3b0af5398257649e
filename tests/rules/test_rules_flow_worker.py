"""Tests: the flow checker in the rules worker: import steps derived by the ledger become flow violations
(chain breaks of kind 'flow') with an alarm and a ledger event, once; a step recorded late withdraws one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
import psycopg
from capture_support import captured
from fastapi.testclient import TestClient
from flow_support import (
    BONDED_STORE,
    COLD_ROOM,
    CONTAINER,
    DURIAN,
    PORT,
    SEAFOOD,
    flow_events,
    h,
    seed_flow,
    seed_registry,
)

import registry.store as registry
from registry.models import Asset, Lot, Shipment, ShipmentLeg, ShipmentLot
from registry.shipments import add_shipment
from rules.engine import catalog, flow
from rules.models import FlowViolationPayload
from rules.worker import RulesWorker
from rules.worker import flow as flow_worker
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.api.options import ApiOptions
from traceability.epcis import builders, multimodal
from traceability.ledger import chain, rederive, verify
from traceability.worker import LedgerWorker

Conn = psycopg.Connection[tuple[Any, ...]]


def drained(worker: RulesWorker, runs: int = 10) -> None:
    for _ in range(runs):
        if worker.run_once() == 0:
            return
    raise AssertionError(f"the worker still found work after {runs} runs")


def flow_breaks(conn: Conn) -> list[tuple[str, str, str | None]]:
    rows = conn.execute(
        "SELECT lot_id, rule_id, asset_id FROM chain_break WHERE kind = 'flow' ORDER BY lot_id, start_time"
    ).fetchall()
    return [(str(a), str(b), c) for a, b, c in rows]


def outbox(conn: Conn) -> list[FlowViolationPayload]:
    rows = conn.execute(
        "SELECT payload FROM verdict_outbox WHERE kind = 'flow_violation' ORDER BY outbox_id"
    ).fetchall()
    return [msgspec.convert(r[0], FlowViolationPayload) for r in rows]


def test_a_release_without_inspection_is_a_flow_violation_with_alarm_and_ledger_event(
    db_url: str, conn: Conn
) -> None:
    seed_flow(conn)
    steps = conn.execute("SELECT step, count(*) FROM import_step GROUP BY step ORDER BY step").fetchall()
    assert dict(steps) == {
        "discharge": 2,
        "disinfection": 1,
        "entry": 2,
        "inspection": 1,
        "onward": 1,
        "release": 3,
        "trace_code": 1,
    }
    worker = RulesWorker(db_url)
    try:
        drained(worker)
        rule = catalog.flow_rule_id(flow.RELEASE_WITHOUT_INSPECTION)
        # The durian followed the order; the seafood was released with no inspection, in the cold room.
        assert flow_breaks(conn) == [(SEAFOOD, rule, COLD_ROOM)]
        [sent] = outbox(conn)
        assert (sent.lot_id, sent.violation, sent.asset_id, sent.withdrawn) == (
            SEAFOOD,
            flow.RELEASE_WITHOUT_INSPECTION,
            COLD_ROOM,
            False,
        )
        assert sent.reason == "release of 500 KGM without a conformant inspection"
        alarm = conn.execute(
            "SELECT asset_id, rule_id, kind, severity, state, reason FROM alarm WHERE kind = 'flow'"
        ).fetchall()
        assert alarm == [
            (COLD_ROOM, f"{rule}/{SEAFOOD}", "flow", "critical", "open", f"lot {SEAFOOD}: {sent.reason}")
        ]
        # Judged once: nothing new in the ledger, nothing new raised.
        assert worker.run_once() == 0
        assert len(outbox(conn)) == 1

        LedgerWorker(db_url).run_once()
        [event] = [
            r[0]
            for r in conn.execute(
                "SELECT event FROM ledger_event WHERE event ->> 'cc:breakKind' = 'flow'"
            ).fetchall()
        ]
        assert event["cc:verdict"] == "chain_break"
        assert event["cc:flowViolation"] == flow.RELEASE_WITHOUT_INSPECTION
        assert event["quantityList"] == [{"epcClass": SEAFOOD}]
        release_id = conn.execute(
            "SELECT event_id FROM ledger_event WHERE seq = %s", (sent.event_seq,)
        ).fetchone()
        assert release_id is not None
        assert event["cc:violatingEvent"] == release_id[0]
        # The violation's ledger event is no import step: the flow checker sees nothing new in it.
        drained(worker)
        assert outbox(conn) == []  # the ledger took the one, no other came
        assert len(flow_breaks(conn)) == 1
        conn.commit()
        assert verify.verify(conn).ok
        assert rederive.rederive(conn, apply=False).consistent
    finally:
        worker.close()


def test_a_late_inspection_dated_before_the_release_withdraws_the_violation(db_url: str, conn: Conn) -> None:
    seed_flow(conn)
    worker = RulesWorker(db_url)
    try:
        drained(worker)
        assert len(flow_breaks(conn)) == 1
        chain.append(
            conn,
            multimodal.inspection_result(
                t=h(1),
                lot=SEAFOOD,
                quantity=500,
                uom="KGM",
                conformant=True,
                certificates=["CIQ-2604-002"],
                site="Qinzhou designated supervision site",
                location="urn:epc:id:sgln:6901234.00120.0",
            ),
        )
        conn.commit()
        drained(worker)
        assert flow_breaks(conn) == []
        sent = outbox(conn)
        assert [p.withdrawn for p in sent] == [False, True]
        assert sent[1].verdict_id == sent[0].verdict_id
        state = conn.execute("SELECT state, resolved_by FROM alarm WHERE kind = 'flow'").fetchall()
        assert state == [("resolved", "auto")]
        assert LedgerWorker(db_url).run_once() == 2
        withdrawn = conn.execute(
            "SELECT event ->> 'cc:withdrawnVerdictId' FROM ledger_event"
            " WHERE event ->> 'cc:verdict' = 'verdict_withdrawn'"
        ).fetchall()
        assert withdrawn == [(sent[0].verdict_id,)]
    finally:
        worker.close()


def test_released_beyond_inspected_and_after_non_conformant(db_url: str, conn: Conn) -> None:
    seed_flow(conn)
    chain.append_many(
        conn,
        [
            # 200 KGM more of the durian than the 1000 inspected.
            multimodal.second_line_release(
                t=h(40), lot=DURIAN, quantity=200, uom="KGM", location="urn:epc:id:sgln:6901234.00140.0"
            ),
            # The seafood re-inspected non-conformant, then released again.
            multimodal.inspection_result(
                t=h(41),
                lot=SEAFOOD,
                quantity=500,
                conformant=False,
                uom="KGM",
                certificates=[],
                site="Qinzhou designated supervision site",
                location="urn:epc:id:sgln:6901234.00120.0",
            ),
            multimodal.second_line_release(
                t=h(42), lot=SEAFOOD, quantity=10, uom="KGM", location="urn:epc:id:sgln:6901234.00140.0"
            ),
        ],
    )
    conn.commit()
    worker = RulesWorker(db_url)
    try:
        drained(worker)
        got = sorted((lot, rule) for lot, rule, _ in flow_breaks(conn))
        assert got == sorted(
            [
                (DURIAN, catalog.flow_rule_id(flow.RELEASED_BEYOND_INSPECTED)),
                (SEAFOOD, catalog.flow_rule_id(flow.RELEASE_WITHOUT_INSPECTION)),
                (SEAFOOD, catalog.flow_rule_id(flow.RELEASE_AFTER_NON_CONFORMANT)),
            ]
        )
        reasons = {p.violation: p.reason for p in outbox(conn)}
        assert (
            reasons[flow.RELEASED_BEYOND_INSPECTED]
            == "released 1100 KGM in total, beyond the 1000 KGM inspected"
        )
    finally:
        worker.close()


def test_a_captured_document_of_the_flow_is_checked_like_appended_events(db_url: str, conn: Conn) -> None:
    """The port system's path: the import-flow events posted to the capture endpoint as one document."""
    seed_registry(conn)
    conn.commit()
    key = create_key(conn, "capture", "port system")
    conn.commit()
    app = create_app(db_url, options=ApiOptions(capture_worker=True))
    with TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {key}"}) as c:
        captured(c, c.post("/epcis/capture", json=builders.document(flow_events())))
    assert conn.execute("SELECT count(*) FROM import_step").fetchone() == (11,)
    worker = RulesWorker(db_url)
    try:
        drained(worker)
    finally:
        worker.close()
    assert [(lot, rule) for lot, rule, _ in flow_breaks(conn)] == [
        (SEAFOOD, catalog.flow_rule_id(flow.RELEASE_WITHOUT_INSPECTION))
    ]


def _release_of(events: list[builders.Event], lot: str, quantity: float) -> builders.Event:
    return next(
        e
        for e in events
        if e.get("cc:customsLine") == "second"
        and e["quantityList"][0]["epcClass"] == lot
        and e["quantityList"][0]["quantity"] == quantity
    )


def alarms_of(conn: Conn) -> list[tuple[str, str, str, str]]:
    rows = conn.execute(
        "SELECT asset_id, rule_id, state, reason FROM alarm WHERE kind = 'flow' ORDER BY alarm_id"
    ).fetchall()
    return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]


def test_a_step_declared_wrong_leaves_the_flow_and_its_lot_is_judged_again(db_url: str, conn: Conn) -> None:
    seed_registry(conn)
    events = flow_events()
    chain.append_many(conn, events)
    conn.commit()
    worker = RulesWorker(db_url)
    try:
        drained(worker)
        assert [lot for lot, _, _ in flow_breaks(conn)] == [SEAFOOD]
        # The seafood's release declared wrong: no release left, so no release without inspection; the
        # declaration is no step of the lot, yet the lot is judged again.
        chain.append(conn, builders.error_declaration(_release_of(events, SEAFOOD, 500), declared_at=h(40)))
        conn.commit()
        drained(worker)
        assert flow_breaks(conn) == []
        assert [state for _, _, state, _ in alarms_of(conn)] == ["resolved"]
        # The durian's 600 KGM release declared wrong and corrected to 500: 500 + 300 of the 1000 inspected.
        wrong = _release_of(events, DURIAN, 600)
        chain.append_many(
            conn,
            [
                builders.error_declaration(wrong, declared_at=h(41)),
                multimodal.second_line_release(
                    t=h(4), lot=DURIAN, quantity=500, uom="KGM", location=BONDED_STORE
                ),
            ],
        )
        conn.commit()
        drained(worker)
        assert flow_breaks(conn) == []
        releases = flow.check(flow_worker.steps_of(conn, DURIAN)).releases
        assert [(r.quantity, r.released_total, r.remaining) for r in releases] == [
            (500.0, 500.0, 500.0),
            (300.0, 800.0, 200.0),
        ]
    finally:
        worker.close()


def test_two_steps_missing_before_one_release_are_two_violations_and_a_late_step_withdraws_one(
    db_url: str, conn: Conn
) -> None:
    seed_registry(conn)
    site = "urn:epc:id:sgln:6901234.00120.0"
    store = "urn:epc:id:sgln:6901234.00140.0"
    # The durian inspected (asking for disinfection) and released with neither arrival nor disinfection.
    chain.append_many(
        conn,
        [
            multimodal.inspection_result(
                t=h(1),
                lot=DURIAN,
                quantity=1000,
                uom="KGM",
                conformant=True,
                certificates=["CIQ-1"],
                site="S",
                location=site,
                disinfection_required=True,
            ),
            multimodal.second_line_release(t=h(4), lot=DURIAN, quantity=600, uom="KGM", location=store),
        ],
    )
    conn.commit()
    rule = catalog.flow_rule_id(flow.STEP_MISSING)
    no_arrival = catalog.FLOW_STEP_MISSING.format(step=flow.RELEASE, missing=flow.DISCHARGE)
    no_disinfection = catalog.FLOW_STEP_MISSING.format(step=flow.RELEASE, missing=flow.DISINFECTION)
    worker = RulesWorker(db_url)
    try:
        drained(worker)
        stored = conn.execute(
            "SELECT detail ->> 'missing', detail ->> 'reason' FROM chain_break WHERE kind = 'flow' ORDER BY 1"
        ).fetchall()
        assert stored == [(flow.DISCHARGE, no_arrival), (flow.DISINFECTION, no_disinfection)]
        raised = outbox(conn)
        assert sorted(p.missing or "" for p in raised) == [flow.DISCHARGE, flow.DISINFECTION]
        assert len({p.verdict_id for p in raised}) == 2
        LedgerWorker(db_url).run_once()
        # The disinfection recorded late, dated before the release: only the arrival is missing now, and
        # the chain break, the ledger and the alarm say so.
        chain.append(
            conn,
            multimodal.disinfection(t=h(2), lot=DURIAN, quantity=1000, uom="KGM", site="S", location=site),
        )
        conn.commit()
        drained(worker)
        stored = conn.execute(
            "SELECT detail ->> 'missing', detail ->> 'reason' FROM chain_break WHERE kind = 'flow'"
        ).fetchall()
        assert stored == [(flow.DISCHARGE, no_arrival)]
        [withdrawn] = outbox(conn)
        assert withdrawn.withdrawn
        assert withdrawn.missing == flow.DISINFECTION
        assert withdrawn.verdict_id == next(p.verdict_id for p in raised if p.missing == flow.DISINFECTION)
        assert [(r, s, why) for _, r, s, why in alarms_of(conn)] == [
            (f"{rule}/{DURIAN}", "open", catalog.flow_alarm(DURIAN, no_arrival))
        ]
    finally:
        worker.close()


def test_a_violation_whose_reason_changed_is_withdrawn_and_raised_again(db_url: str, conn: Conn) -> None:
    seed_flow(conn)
    store = "urn:epc:id:sgln:6901234.00140.0"
    chain.append(
        conn, multimodal.second_line_release(t=h(40), lot=DURIAN, quantity=200, uom="KGM", location=store)
    )
    conn.commit()
    rule = catalog.flow_rule_id(flow.RELEASED_BEYOND_INSPECTED)
    worker = RulesWorker(db_url)
    try:
        drained(worker)
        LedgerWorker(db_url).run_once()
        [first] = [p for p in outbox_all(conn) if p.rule_id == rule]
        assert first.reason == "released 1100 KGM in total, beyond the 1000 KGM inspected"
        # 50 KGM more released before it, recorded late: the total at that release is 1150 now.
        chain.append(
            conn, multimodal.second_line_release(t=h(35), lot=DURIAN, quantity=50, uom="KGM", location=store)
        )
        conn.commit()
        drained(worker)
        now = "released 1150 KGM in total, beyond the 1000 KGM inspected"
        assert conn.execute(
            "SELECT detail ->> 'reason' FROM chain_break WHERE kind = 'flow' AND rule_id = %s", (rule,)
        ).fetchall() == [(now,)]
        sent = [p for p in outbox(conn) if p.rule_id == rule]
        assert [(p.withdrawn, p.reason) for p in sent] == [(True, catalog.FLOW_CLEARED), (False, now)]
        assert sent[0].verdict_id == sent[1].verdict_id == first.verdict_id
        [(_, _, state, why)] = [a for a in alarms_of(conn) if a[1] == f"{rule}/{DURIAN}"]
        assert (state, why) == ("open", catalog.flow_alarm(DURIAN, now))
        LedgerWorker(db_url).run_once()
        ledgered = [
            (r[0], r[1])
            for r in conn.execute(
                "SELECT event ->> 'cc:verdict', event ->> 'cc:reasons' FROM ledger_event"
                " WHERE event ->> 'cc:ruleId' = %s ORDER BY seq",
                (rule,),
            )
        ]
        assert ledgered == [
            ("chain_break", first.reason),
            ("verdict_withdrawn", None),
            ("chain_break", now),
        ]
    finally:
        worker.close()


def test_a_violation_found_again_after_its_withdrawal_reaches_the_ledger_again(
    db_url: str, conn: Conn
) -> None:
    """Withdrawn, then found again as it was: the same violation, yet a new ledger event after the
    withdrawal (not the first one's eventID, which the ledger would skip as captured already)."""
    seed_flow(conn)
    inspection = multimodal.inspection_result(
        t=h(1),
        lot=SEAFOOD,
        quantity=500,
        uom="KGM",
        conformant=True,
        certificates=["CIQ-2604-002"],
        site="Qinzhou designated supervision site",
        location="urn:epc:id:sgln:6901234.00120.0",
    )
    rule = catalog.flow_rule_id(flow.RELEASE_WITHOUT_INSPECTION)
    for step, now in (
        (None, h(50)),
        (inspection, h(51)),  # the inspection, late: withdrawn
        (builders.error_declaration(inspection, declared_at=h(52)), h(52)),  # declared wrong: found again
    ):
        if step is not None:
            chain.append(conn, step)
        judge_all(conn, now)
        conn.commit()
        LedgerWorker(db_url).run_once()
    ledgered = [
        str(r[0])
        for r in conn.execute(
            "SELECT event ->> 'cc:verdict' FROM ledger_event WHERE event ->> 'cc:ruleId' = %s ORDER BY seq",
            (rule,),
        )
    ]
    assert ledgered == ["chain_break", "verdict_withdrawn", "chain_break"]
    assert [lot for lot, _, _ in flow_breaks(conn)] == [SEAFOOD]


def judge_all(conn: Conn, now: datetime) -> None:
    """Judge every lot with an import step at ``now`` (the worker's run, at a time the test sets)."""
    run = flow_worker.FlowRun()
    for (lot,) in conn.execute("SELECT DISTINCT lot_id FROM import_step ORDER BY 1").fetchall():
        flow_worker.judge_lot(conn, str(lot), now, run)


def outbox_all(conn: Conn) -> list[FlowViolationPayload]:
    """Every flow violation the ledger took or has yet to take, in the order the checker sent them."""
    rows = conn.execute(
        "SELECT event FROM ledger_event WHERE event ->> 'cc:breakKind' = 'flow' ORDER BY seq"
    ).fetchall()
    return [
        FlowViolationPayload(
            verdict="flow_violation",
            verdict_id=str(e["cc:verdictId"]),
            lot_id=str(e["quantityList"][0]["epcClass"]),
            rule_id=str(e["cc:ruleId"]),
            violation=str(e["cc:flowViolation"]),
            reason=str(e["cc:reasons"]),
            missing=e.get("cc:missingStep"),
            event_seq=0,
            event_id=e.get("cc:violatingEvent"),
            event_time=str(e["eventTime"]),
            asset_id=e.get("cc:assetId"),
            computed_at="",
        )
        for (e,) in rows
    ]


def test_a_violation_of_a_lot_no_asset_encloses_alarms_on_its_shipments_asset(
    db_url: str, conn: Conn
) -> None:
    """Released at the port, where no fixed asset stands and nothing encloses the lot: the alarm goes on
    the asset of the leg of the lot's shipment under way then (the container of the sea leg, matched by
    its number, before; the truck after), else on a fixed asset at the release's location."""
    seed_registry(conn)
    truck, lone = "TRUCK-GX-1", "urn:epc:class:lgtin:8850000.077001.LONE2604"
    registry.add_assets(conn, [Asset(truck, "reefer_truck", "Reefer truck GX-1", product_class="chilled")])
    registry.add_lots(conn, [Lot(lone, "chilled", description="Fresh mangosteen")])
    add_shipment(
        conn,
        Shipment(
            "SHP-FLOW-1",
            through_document="TD-FLOW-1",
            planned_start=h(-10),
            planned_end=h(20),
            legs=(
                ShipmentLeg(1, "sea", container_number=CONTAINER, planned_start=h(-10), planned_end=h(3)),
                ShipmentLeg(2, "road", asset_id=truck, planned_start=h(3), planned_end=h(20)),
            ),
            lots=(ShipmentLot(DURIAN, 1000, "KGM"), ShipmentLot(SEAFOOD, 500, "KGM")),
        ),
    )
    chain.append_many(
        conn,
        [
            multimodal.second_line_release(t=h(2), lot=DURIAN, quantity=600, uom="KGM", location=PORT),
            multimodal.second_line_release(t=h(5), lot=SEAFOOD, quantity=500, uom="KGM", location=PORT),
            multimodal.second_line_release(t=h(5), lot=lone, quantity=5, uom="KGM", location=BONDED_STORE),
        ],
    )
    conn.commit()
    worker = RulesWorker(db_url)
    try:
        drained(worker)
    finally:
        worker.close()
    rule = catalog.flow_rule_id(flow.RELEASE_WITHOUT_INSPECTION)
    assert sorted(b for b in flow_breaks(conn) if b[1] == rule) == sorted(
        [(DURIAN, rule, "CONT-" + CONTAINER), (SEAFOOD, rule, truck), (lone, rule, COLD_ROOM)]
    )
    alarmed = {(asset, r) for asset, r, state, _ in alarms_of(conn) if state == "open"}
    assert {
        ("CONT-" + CONTAINER, f"{rule}/{DURIAN}"),
        (truck, f"{rule}/{SEAFOOD}"),
        (COLD_ROOM, f"{rule}/{lone}"),
    } <= alarmed
