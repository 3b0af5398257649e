"""Tests: the ledger worker turns RFID reads and verdicts into events, containment and custody; trace_lot."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
from trace_support import (
    CARRIER,
    COLD_STORE,
    LOT,
    NN_DOCK1,
    NN_MARKET,
    QZ_PUTAWAY,
    QZ_STORE,
    RECEIVER,
    SSCC,
    TRUCK_EPC,
    S,
    build_scenario,
    h,
    insert_verdict_payloads,
    rfid,
)

from rules.worker import RulesWorker
from traceability.epcis import builders, validation
from traceability.ledger import chain
from traceability.ledger.verify import verify
from traceability.trace import trace_lot
from traceability.trace_model import from_json, to_json
from traceability.worker import LedgerWorker

SCHEMA = json.loads((Path(validation.__file__).parent / "schema" / "EPCIS-JSON-Schema.json").read_text())


def assert_scenario_containment(conn: psycopg.Connection[Any]) -> None:
    """The lot in its pallet; the pallet in the cold store, on the truck, then at the market."""
    containment = conn.execute(
        "SELECT child_id, parent_id, location_id, t0, t1 FROM containment ORDER BY t0, child_id"
    ).fetchall()
    assert containment == [
        (LOT, SSCC, None, h(-1), None),
        (SSCC, None, QZ_STORE, h(0), h(2)),
        (SSCC, TRUCK_EPC, None, h(2), h(6)),
        (SSCC, None, NN_MARKET, h(6), None),
    ]


def test_worker_emits_events_containment_and_custody(db_url: str) -> None:
    build_scenario(db_url)
    worker = LedgerWorker(db_url)
    assert worker.run_once() == 6  # four rfid batches, two verdicts
    assert worker.run_once() == 0

    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT seq, event_type, biz_step, event FROM ledger_event ORDER BY seq"
        ).fetchall()
        steps = [(r[1], r[2], r[3]["action"]) for r in rows]
        assert steps[:6] == [
            ("AggregationEvent", "packing", "ADD"),
            ("ObjectEvent", "storing", "OBSERVE"),
            ("AggregationEvent", "loading", "ADD"),
            ("ObjectEvent", "shipping", "OBSERVE"),
            ("AggregationEvent", "unloading", "DELETE"),
            ("ObjectEvent", "receiving", "OBSERVE"),
        ]
        assert sorted(r[2] for r in rows[6:]) == ["sensor_reporting", "sensor_reporting"]
        events = [r[3] for r in rows]
        for event in events:
            jsonschema.validate(event, SCHEMA)
        jsonschema.validate(builders.document(events), SCHEMA)

        storing, loading, shipping = events[1], events[2], events[3]
        assert storing["epcList"] == [SSCC]
        assert storing["readPoint"] == {"id": QZ_PUTAWAY}
        assert storing["bizLocation"] == {"id": QZ_STORE}
        assert storing["eventTime"] == "2026-03-01T00:00:00.000Z"
        assert storing["eventTimeZoneOffset"] == "+08:00"
        assert (loading["parentID"], loading["childEPCs"]) == (TRUCK_EPC, [SSCC])
        assert shipping["disposition"] == "in_transit"
        assert "bizLocation" not in shipping

        sensor = {e["cc:verdict"]: e for e in events[6:]}
        excursion = sensor["excursion_closed"]
        assert excursion["epcList"] == [SSCC]
        report = excursion["sensorElementList"][0]["sensorReport"][0]
        assert report == {
            "type": "Temperature",
            "exception": "ALARM_CONDITION",
            "minValue": 8.5,
            "maxValue": 8.5,
            "meanValue": 8.5,
            "uom": "CEL",
        }
        meta = excursion["sensorElementList"][0]["sensorMetadata"]
        assert (meta["startTime"], meta["endTime"]) == (
            "2026-03-01T03:00:00.000Z",
            "2026-03-01T03:30:00.000Z",
        )
        assert (excursion["cc:rulePackId"], excursion["cc:rulePackVersion"]) == ("cn_food", "1.0.0")
        gap = sensor["chain_break"]
        assert gap["cc:breakKind"] == "gap"
        assert gap["sensorElementList"][0]["sensorReport"][0]["exception"] == "ERROR_CONDITION"

        assert_scenario_containment(conn)
        legs = conn.execute(
            "SELECT epc, custodian, location_id, asset_id, t_start, t_end FROM custody_leg ORDER BY t_start"
        ).fetchall()
        assert legs == [
            (SSCC, COLD_STORE, QZ_STORE, "COLDROOM-QZ-B2", h(0), h(2)),
            (SSCC, CARRIER, QZ_STORE, "TRUCK-GXA-12345", h(2), h(6)),
            (SSCC, RECEIVER, NN_MARKET, None, h(6), None),
        ]
        assert conn.execute("SELECT count(*) FROM ingest_batch").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM verdict_outbox").fetchone() == (0,)
        assert verify(conn).ok


def test_reprocessing_is_idempotent(db_url: str) -> None:
    build_scenario(db_url)
    LedgerWorker(db_url).run_once()
    with psycopg.connect(db_url) as conn:
        before = conn.execute("SELECT count(*) FROM ledger_event").fetchone()
        # The same reads announced again (a redelivered gateway batch), and the same verdicts.
        for device, t in (("rfid-qz-putaway", h(0)), ("rfid-qz-dock3", h(2)), ("rfid-nn-dock1", h(6))):
            conn.execute(
                "INSERT INTO ingest_batch (kind, device_ids, t_min, t_max) VALUES ('rfid', %s, %s, %s)",
                ([device], t, t + timedelta(seconds=3)),
            )
        seed_verdicts_again(conn)
        conn.commit()
    assert LedgerWorker(db_url).run_once() == 5
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM ledger_event").fetchone() == before
        assert conn.execute("SELECT count(*) FROM custody_leg").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM containment").fetchone() == (4,)


NN_DOCK1_READ_POINT = (
    "INSERT INTO read_point (device_id, read_point_id, biz_location, biz_step, disposition, custodian)"
    " VALUES ('rfid-nn-dock1', %s, %s, 'receiving', 'in_progress', %s)"
)


def test_reads_of_a_reader_configured_later_become_events(db_url: str) -> None:
    """The market's dock reader goes live before its read point is configured: its reads are kept (their
    time range, widened by later batches) and no event is made; once the read point exists, the next pass
    puts the range back in the outbox (a day at most per batch) and makes the events the reads mean, and
    the pallet's custody ends with the receiver as if the read point had been there all along."""
    build_scenario(db_url)
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM read_point WHERE device_id = 'rfid-nn-dock1'")
        conn.commit()
    worker = LedgerWorker(db_url)
    assert worker.run_once() == 6
    with psycopg.connect(db_url) as conn:
        rfid(conn, "rfid-nn-dock1", [(h(8), SSCC)])  # later batches of the same reader, the next day too
        rfid(conn, "rfid-nn-dock1", [(h(30), SSCC)])
        conn.commit()
    assert worker.run_once() == 2
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT device_id, t_min, t_max FROM rfid_unmapped").fetchall() == [
            ("rfid-nn-dock1", h(6), h(30))
        ]
        steps = [r[0] for r in conn.execute("SELECT biz_step FROM ledger_event ORDER BY seq")]
        assert "receiving" not in steps
        assert "unloading" not in steps
        conn.execute(NN_DOCK1_READ_POINT, (NN_DOCK1, NN_MARKET, RECEIVER))
        conn.commit()
    assert worker.run_once() == 2  # the kept range, back in the outbox a day at most per batch, consumed
    assert worker.run_once() == 0
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM rfid_unmapped").fetchone() == (0,)
        received = conn.execute(
            "SELECT event_time, event->'readPoint'->>'id' FROM ledger_event WHERE biz_step = 'receiving'"
            " ORDER BY seq"
        ).fetchall()
        assert received == [(h(6), NN_DOCK1), (h(8), NN_DOCK1), (h(30), NN_DOCK1)]
        legs = conn.execute(
            "SELECT custodian, location_id, t_start, t_end FROM custody_leg WHERE epc = %s ORDER BY t_start",
            (SSCC,),
        ).fetchall()
        assert legs == [
            (COLD_STORE, QZ_STORE, h(0), h(2)),
            (CARRIER, QZ_STORE, h(2), h(6)),
            (RECEIVER, NN_MARKET, h(6), None),
        ]
        assert_scenario_containment(conn)
        assert verify(conn).ok


def test_late_reads_do_not_rewrite_what_happened_since(db_url: str) -> None:
    """The market's reader is configured only after the pallet has moved on to the market's cold room: the
    late receiving events are appended, the unloading closes the truck interval when it happened, but
    neither the late placing nor the late handoff closes the cold room's interval or custody leg (which
    began after them), and no interval ends before it starts."""
    cold_room = "urn:epc:id:sgln:6901234.00002.5"
    build_scenario(db_url)
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM read_point WHERE device_id = 'rfid-nn-dock1'")
        conn.execute(
            "INSERT INTO location (location_id, name, kind, party_id, parent_location_id) VALUES"
            " (%s, 'NN cold room', 'cold_store', %s, %s)",
            (cold_room, RECEIVER, NN_MARKET),
        )
        conn.commit()
    worker = LedgerWorker(db_url)
    worker.run_once()
    with psycopg.connect(db_url) as conn:
        chain.append(
            conn,
            builders.object_event(
                event_time=h(9),
                epcs=[SSCC],
                biz_step="storing",
                disposition="in_progress",
                read_point=cold_room,
                biz_location=cold_room,
            ),
        )
        conn.execute(NN_DOCK1_READ_POINT, (NN_DOCK1, NN_MARKET, RECEIVER))
        conn.commit()
    worker.run_once()
    with psycopg.connect(db_url) as conn:
        steps = [r[0] for r in conn.execute("SELECT biz_step FROM ledger_event ORDER BY seq")]
        assert steps.count("receiving") == 1
        assert steps.count("unloading") == 1
        containment = conn.execute(
            "SELECT parent_id, location_id, t0, t1 FROM containment WHERE child_id = %s ORDER BY t0", (SSCC,)
        ).fetchall()
        assert containment == [
            (None, QZ_STORE, h(0), h(2)),
            (TRUCK_EPC, None, h(2), h(6)),
            (None, cold_room, h(9), None),
        ]
        legs = conn.execute(
            "SELECT custodian, location_id, t_start, t_end FROM custody_leg WHERE epc = %s ORDER BY t_start",
            (SSCC,),
        ).fetchall()
        assert legs == [
            (COLD_STORE, QZ_STORE, h(0), h(2)),
            (CARRIER, QZ_STORE, h(2), h(9)),
            (None, cold_room, h(9), None),
        ]
        assert conn.execute(
            "SELECT (SELECT count(*) FROM containment WHERE t1 < t0)"
            " + (SELECT count(*) FROM custody_leg WHERE t_end < t_start)"
        ).fetchone() == (0,)


def seed_verdicts_again(conn: psycopg.Connection[Any]) -> None:
    """The same verdicts delivered again (a rules worker that re-sent its outbox rows)."""
    row = conn.execute(
        "SELECT series_id FROM series WHERE device_id = 'truck-12345-rc' AND channel = 'temp:1'"
    ).fetchone()
    assert row is not None
    insert_verdict_payloads(conn, int(row[0]))


def test_trace_lot_returns_legs_with_evidence(db_url: str) -> None:
    build_scenario(db_url)
    LedgerWorker(db_url).run_once()
    RulesWorker(db_url).run_once()  # the rules stage judges the lot the ledger put in custody
    with psycopg.connect(db_url) as conn:
        found = trace_lot(conn, LOT)
        assert trace_lot(conn, "urn:epc:class:lgtin:6901234.012345.NOPE") is None
    assert found is not None
    assert found.custody[1].temperature.allowed_gap_s == 600.0  # typed: a truck leg, transport interval
    trace = to_json(found)
    json.dumps(trace)  # JSON values
    assert from_json(trace) == found  # the JSON reads back as the same Trace
    assert trace["lot"]["product_class"] == "chilled"
    assert (trace["limits"]["low_c"], trace["limits"]["high_c"]) == (0, 4)
    assert [(u["unit_id"], u["depth"], u["asset_id"]) for u in trace["units"]] == [
        (SSCC, 1, None),
        (TRUCK_EPC, 2, "TRUCK-GXA-12345"),
    ]
    legs = trace["custody"]
    assert [(leg["custodian"]["party_id"], (leg["asset"] or {}).get("asset_id")) for leg in legs] == [
        (COLD_STORE, "COLDROOM-QZ-B2"),
        (CARRIER, "TRUCK-GXA-12345"),
        (RECEIVER, None),
    ]
    store, truck, market = legs
    assert store["temperature"]["readings"] == 12  # S .. S+2h every 10 min, end exclusive
    assert store["temperature"]["max_c"] == 2.0
    assert store["temperature"]["out_of_range_s"] == 0
    assert store["excursions"] == []
    assert truck["custodian"]["name"] == "Beibu Gulf Reefer Logistics"
    assert (truck["t_start"], truck["t_end"]) == ("2026-03-01T02:00:00Z", "2026-03-01T06:00:00Z")
    temp = truck["temperature"]
    assert temp["series"] == 2
    assert temp["readings"] == 2 * (24 - 5)  # S+2h .. S+6h exclusive, minus the five in the gap
    assert (temp["min_c"], temp["max_c"]) == (2.5, 8.5)
    # temp:1 is at 8.5 °C from 3:00 through 3:30 and back at 3:40: four 10-minute steps.
    assert temp["out_of_range_s"] == 2400
    assert [e["peak_c"] for e in truck["excursions"]] == [8.5]
    assert [b["kind"] for b in truck["chain_breaks"]] == ["gap"]
    assert market["temperature"]["readings"] == 0
    assert market["t_end"] is None
    seqs = [e["seq"] for e in trace["events"]]
    assert seqs == sorted(seqs)
    assert {e["biz_step"] for e in trace["events"]} >= {
        "packing",
        "storing",
        "loading",
        "shipping",
        "receiving",
    }
    assert trace["verdict"] == "broken"


def test_seed_packing_derives_lot_in_pallet(db_url: str) -> None:
    from dataclasses import dataclass

    from traceability.ledger.seed import append_packing

    @dataclass(frozen=True)
    class Packing:
        parent_id: str
        lot_id: str
        quantity: float
        uom: str
        event_time_offset_ms: int
        party_id: str

    packing = Packing(SSCC, LOT, 800.0, "KGM", -3_600_000, "8850000000001")
    start_ms = int(S.timestamp() * 1000)
    with psycopg.connect(db_url) as conn:
        seq = append_packing(conn, packing, start_ms=start_ms)
        assert append_packing(conn, packing, start_ms=start_ms) == seq
        conn.commit()
        assert conn.execute("SELECT child_id, parent_id, t0, t1 FROM containment").fetchall() == [
            (LOT, SSCC, h(-1), None)
        ]
        (event,) = conn.execute("SELECT event FROM ledger_event").fetchone() or (None,)
        jsonschema.validate(event, SCHEMA)
        assert event["cc:capturedBy"] == "8850000000001"
