"""Tests: the flow checker in the rules worker: import steps derived by the ledger become flow violations
(chain breaks of kind 'flow') with an alarm and a ledger event, once; a step recorded late withdraws one."""

from __future__ import annotations

from typing import Any

import msgspec
import psycopg
from capture_support import captured
from fastapi.testclient import TestClient
from flow_support import COLD_ROOM, DURIAN, SEAFOOD, flow_events, h, seed_flow, seed_registry

from rules.engine import catalog, flow
from rules.models import FlowViolationPayload
from rules.worker import RulesWorker
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
