"""Tests: a lot verdict from the rules stage reaches the ledger as a valid EPCIS event, exactly once."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from traceability.ledger.verify import verify
from traceability.worker import LedgerWorker

LOT = "urn:epc:class:lgtin:6901234.012345.QZ2611A"


def _payload(result: str, version: int) -> dict[str, Any]:
    return {
        "verdict": "lot_verdict",
        "verdict_id": f"lot_verdict:{LOT}:{version}",
        "lot_id": LOT,
        "product_class": "chilled",
        "result": result,
        "reasons": ["no record for 2400 s (allowed 600 s in transport)", "excursion for 1500 s, peak 8.8 °C"],
        "pack_id": "cn_food",
        "pack_version": "2026.2",
        "computed_at": "2026-11-21T10:04:00.000Z",
        "version": version,
    }


def test_lot_verdict_becomes_an_inspecting_event(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO lot (lot_id, product_class) VALUES (%s, 'chilled')", (LOT,))
        for _ in range(2):  # the same verdict delivered twice is one ledger event
            conn.execute(
                "INSERT INTO verdict_outbox (kind, payload) VALUES ('lot_verdict', %s::jsonb)",
                (json.dumps(_payload("broken", 1)),),
            )
        worker = LedgerWorker(db_url)
        while worker.run_once():
            pass
        rows = conn.execute("SELECT biz_step, event FROM ledger_event ORDER BY seq").fetchall()
        assert conn.execute("SELECT count(*) FROM verdict_outbox").fetchone() == (0,)
        assert verify(conn).ok
    assert len(rows) == 1
    biz_step, event = rows[0]
    assert biz_step == "inspecting"
    assert event["quantityList"] == [{"epcClass": LOT}]
    assert event["cc:lotVerdict"] == "broken"
    assert event["cc:rulePackVersion"] == "2026.2"
    assert "no record for 2400 s" in event["cc:reasons"]


def test_payload_off_the_rules_contract_is_consumed_without_an_event(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        for kind, payload in (
            ("excursion_closed", {"asset_id": "TRUCK-1", "start": "yesterday"}),
            ("lot_verdict", {"lot_id": LOT, "result": "maybe"}),
        ):
            conn.execute(
                "INSERT INTO verdict_outbox (kind, payload) VALUES (%s, %s::jsonb)",
                (kind, json.dumps(payload)),
            )
        assert LedgerWorker(db_url).run_once() == 2
        assert conn.execute("SELECT count(*) FROM verdict_outbox").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM ledger_event").fetchone() == (0,)
