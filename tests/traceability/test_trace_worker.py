"""Tests: the ledger worker turns RFID reads and verdicts into events, containment and custody; trace_lot."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import psycopg
from psycopg.types.json import Jsonb

from rules.models import VerdictLimits, VerdictPayload
from rules.worker import RulesWorker
from traceability.epcis import builders, validation
from traceability.ledger import chain
from traceability.ledger.verify import verify
from traceability.trace import trace_lot
from traceability.trace_model import from_json, to_json
from traceability.worker import LedgerWorker

S = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
LOT = "urn:epc:class:lgtin:6901234.012345.QZ2611A"
SSCC = "urn:epc:id:sscc:6901234.0000000001"
TRUCK_EPC = "urn:epc:id:giai:6901234.TRUCK12345"
QZ_STORE, QZ_PUTAWAY, QZ_DOCK3 = (
    "urn:epc:id:sgln:6901234.00001.0",
    "urn:epc:id:sgln:6901234.00001.1",
    "urn:epc:id:sgln:6901234.00001.3",
)
NN_MARKET, NN_DOCK1 = "urn:epc:id:sgln:6901234.00002.0", "urn:epc:id:sgln:6901234.00002.1"
COLD_STORE, CARRIER, RECEIVER = "6901234000004", "6901234000011", "6901234000028"
SCHEMA = json.loads((Path(validation.__file__).parent / "schema" / "EPCIS-JSON-Schema.json").read_text())


def h(hours: float) -> datetime:
    return S + timedelta(hours=hours)


def seed_world(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """The demo world's registry (contract ids), read points, mounts and series; returns series ids."""
    conn.execute(
        "INSERT INTO party (party_id, name, role) VALUES"
        " ('6901234000004', 'Qinzhou Bonded Zone Cold Store Co.', 'cold_store'),"
        " ('6901234000011', 'Beibu Gulf Reefer Logistics', 'carrier'),"
        " ('6901234000028', 'Nanning Haijixing Seafood Market', 'receiver'),"
        " ('8850000000001', 'Andaman Seafood Export Co.', 'shipper')"
    )
    conn.execute(
        "INSERT INTO location (location_id, name, kind, party_id, parent_location_id) VALUES"
        " (%(qz)s, 'Qinzhou bonded cold store', 'cold_store', '6901234000004', NULL),"
        " (%(nn)s, 'Nanning market', 'market', '6901234000028', NULL)",
        {"qz": QZ_STORE, "nn": NN_MARKET},
    )
    conn.execute(
        "INSERT INTO location (location_id, name, kind, party_id, parent_location_id) VALUES"
        " (%(p)s, 'QZ put-away door', 'dock_door', '6901234000004', %(qz)s),"
        " (%(d3)s, 'QZ dock door 3', 'dock_door', '6901234000004', %(qz)s),"
        " (%(d1)s, 'NN dock door 1', 'dock_door', '6901234000028', %(nn)s)",
        {"p": QZ_PUTAWAY, "d3": QZ_DOCK3, "d1": NN_DOCK1, "qz": QZ_STORE, "nn": NN_MARKET},
    )
    conn.execute(
        "INSERT INTO asset (asset_id, epc, kind, name, operator_party_id, location_id, product_class, mode)"
        " VALUES ('COLDROOM-QZ-B2', NULL, 'cold_room', 'Cold room B2', '6901234000004', %s, 'chilled',"
        " 'storage'),"
        " ('TRUCK-GXA-12345', %s, 'reefer_truck', 'Reefer truck GXA-12345', '6901234000011', NULL, 'chilled',"
        " 'transport')",
        (QZ_STORE, TRUCK_EPC),
    )
    for device, kind in [
        ("qz-b2-logger", "temp_logger"),
        ("truck-12345-rc", "reefer_controller"),
        ("rfid-qz-putaway", "rfid_reader"),
        ("rfid-qz-dock3", "rfid_reader"),
        ("rfid-nn-dock1", "rfid_reader"),
    ]:
        conn.execute("INSERT INTO device (device_id, kind) VALUES (%s, %s)", (device, kind))
    conn.execute(
        "INSERT INTO device_mount (device_id, asset_id, valid_from) VALUES"
        " ('qz-b2-logger', 'COLDROOM-QZ-B2', %(t)s), ('truck-12345-rc', 'TRUCK-GXA-12345', %(t)s)",
        {"t": S - timedelta(days=30)},
    )
    series = {}
    for device, channel in [
        ("qz-b2-logger", "temp"),
        ("qz-b2-logger", "rh"),
        ("truck-12345-rc", "temp:1"),
        ("truck-12345-rc", "temp:2"),
        ("truck-12345-rc", "door"),
    ]:
        row = conn.execute(
            "INSERT INTO series (device_id, channel) VALUES (%s, %s) RETURNING series_id", (device, channel)
        ).fetchone()
        assert row is not None
        series[f"{device}/{channel}"] = row[0]
    conn.execute(
        "INSERT INTO read_point (device_id, read_point_id, biz_location, biz_step, disposition, custodian)"
        " VALUES"
        " ('rfid-qz-putaway', %(p)s, %(qz)s, 'storing', 'in_progress', '6901234000004'),"
        " ('rfid-qz-dock3', %(d3)s, %(qz)s, 'shipping', 'in_transit', '6901234000011'),"
        " ('rfid-nn-dock1', %(d1)s, %(nn)s, 'receiving', 'in_progress', '6901234000028')",
        {"p": QZ_PUTAWAY, "d3": QZ_DOCK3, "d1": NN_DOCK1, "qz": QZ_STORE, "nn": NN_MARKET},
    )
    conn.execute(
        "INSERT INTO lot (lot_id, gtin, batch, product_class, description, origin_country, hs_code,"
        " bonded_status) VALUES (%s, '06901234123456', 'QZ2611A', 'chilled', 'Chilled white shrimp', 'TH',"
        " '030636', 'released')",
        (LOT,),
    )
    conn.execute(
        "INSERT INTO rule_class (product_class, pack_id, pack_version, description, low_c, high_c, source,"
        " storage_max_gap_s, transport_max_gap_s)"
        " VALUES ('chilled', 'cn_food', '1.0.0', 'chilled aquatic products', 0, 4, 'industry practice',"
        " 1800, 600)"
    )
    return series


def seed_telemetry(conn: psycopg.Connection[Any], series: dict[str, int]) -> None:
    """Cold room steady 2 °C (S..S+2h); truck probes 3 °C with an 8.5 °C excursion S+3h..S+3h30."""
    rows: list[tuple[datetime, int, float | None]] = []
    for m in range(0, 121, 10):
        rows.append((h(m / 60), series["qz-b2-logger/temp"], 2.0))
    for m in range(120, 361, 10):
        t = h(m / 60)
        value = 8.5 if 180 <= m <= 210 else 3.0
        if 250 <= m <= 290:  # the telemetry gap S+4h10..S+4h50
            continue
        rows.append((t, series["truck-12345-rc/temp:1"], value))
        rows.append((t, series["truck-12345-rc/temp:2"], value - 0.5))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO reading (time, series_id, value, received_at) VALUES (%s, %s, %s, %s)",
            [(t, sid, v, t) for t, sid, v in rows],
        )


def rfid(conn: psycopg.Connection[Any], device: str, reads: list[tuple[datetime, str]]) -> None:
    """Reads as the gateway stores them: rfid_read rows plus their ingest_batch outbox row."""
    for t, epc in reads:
        conn.execute(
            "INSERT INTO rfid_read (time, device_id, epc, antenna, rssi, received_at)"
            " VALUES (%s, %s, %s, 1, -50, %s)"
            " ON CONFLICT DO NOTHING",
            (t, device, epc, t),
        )
    conn.execute(
        "INSERT INTO ingest_batch (kind, device_ids, t_min, t_max) VALUES ('rfid', %s, %s, %s)",
        ([device], min(t for t, _ in reads), max(t for t, _ in reads)),
    )


def seed_verdicts(conn: psycopg.Connection[Any], series: dict[str, int]) -> None:
    """The excursion and the gap as rules writes them: table rows plus verdict_outbox payloads."""
    probe = series["truck-12345-rc/temp:1"]
    conn.execute(
        "INSERT INTO excursion (series_id, asset_id, product_class, rule_id, pack_version,"
        " start_time, end_time, open, peak_c, limit_low_c, limit_high_c, readings)"
        " VALUES (%s, 'TRUCK-GXA-12345', 'chilled', 'cn_food/chilled/range', '1.0.0',"
        " %s, %s, false, 8.5, 0, 4, 4)",
        (probe, h(3), h(3.5)),
    )
    conn.execute(
        "INSERT INTO chain_break (kind, series_id, asset_id, rule_id, pack_version, start_time, end_time,"
        " allowed_s) VALUES ('gap', %s, 'TRUCK-GXA-12345', 'cn_food/chilled/gap', '1.0.0', %s, %s, 600)",
        (probe, h(4 + 1 / 6), h(4 + 5 / 6)),
    )
    insert_verdict_payloads(conn, probe)


def verdict_payloads(probe: int) -> list[VerdictPayload]:
    """The outbox payloads of that excursion and gap, in the rules stage's own type."""
    limits = VerdictLimits(
        low_c=0.0,
        high_c=4.0,
        low_inclusive=True,
        high_inclusive=True,
        min_duration_s=600,
        max_interval_s=600,
        source="test",
    )
    common: dict[str, Any] = {
        "asset_id": "TRUCK-GXA-12345",
        "series_id": probe,
        "device_id": "truck-12345-rc",
        "channel": "temp:1",
        "product_class": "chilled",
        "mode": "transport",
        "pack_id": "cn_food",
        "pack_version": "1.0.0",
        "limit_low_c": 0.0,
        "limit_high_c": 4.0,
        "limits": limits,
    }
    excursion = VerdictPayload(
        **common,
        verdict="excursion_closed",
        verdict_id=f"excursion_closed:cn_food/chilled/range:{probe}:1",
        kind="excursion",
        reason="out of range for 1800 s",
        rule_id="cn_food/chilled/range",
        start="2026-03-01T03:00:00Z",
        end="2026-03-01T03:30:00Z",
        duration_s=1800.0,
        peak_c=8.5,
        min_c=8.5,
        max_c=8.5,
        mean_c=8.5,
        readings=4,
        allowed_s=None,
    )
    gap = VerdictPayload(
        **common,
        verdict="chain_break",
        verdict_id=f"chain_break:cn_food/chilled/gap:{probe}:2",
        kind="gap",
        reason="no record for 2400 s",
        rule_id="cn_food/chilled/gap",
        start="2026-03-01T04:10:00Z",
        end="2026-03-01T04:50:00Z",
        duration_s=2400.0,
        peak_c=None,
        min_c=None,
        max_c=None,
        mean_c=None,
        readings=0,
        allowed_s=600.0,
    )
    return [excursion, gap]


def insert_verdict_payloads(conn: psycopg.Connection[Any], probe: int) -> None:
    for v in verdict_payloads(probe):
        conn.execute(
            "INSERT INTO verdict_outbox (kind, payload) VALUES (%s, %s)",
            (v.verdict, Jsonb(msgspec.to_builtins(v))),
        )


def packing_event() -> dict[str, Any]:
    return builders.aggregation_event(
        event_time=S - timedelta(hours=1),
        action="ADD",
        parent_id=SSCC,
        child_quantities=[builders.quantity(LOT, 800, "KGM")],
        biz_step="packing",
        read_point=QZ_PUTAWAY,
    )


def build_scenario(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        series = seed_world(conn)
        seed_telemetry(conn, series)
        chain.append(conn, packing_event())
        rfid(conn, "rfid-qz-putaway", [(h(0), SSCC), (h(0) + timedelta(seconds=2), SSCC)])
        # At dock 3 the pallet and the truck tag arrive in two separate gateway batches.
        rfid(conn, "rfid-qz-dock3", [(h(2), SSCC)])
        rfid(conn, "rfid-qz-dock3", [(h(2) + timedelta(seconds=3), TRUCK_EPC)])
        rfid(conn, "rfid-nn-dock1", [(h(6), TRUCK_EPC), (h(6) + timedelta(seconds=1), SSCC)])
        seed_verdicts(conn, series)
        conn.commit()


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

        containment = conn.execute(
            "SELECT child_id, parent_id, location_id, t0, t1 FROM containment ORDER BY t0, child_id"
        ).fetchall()
        assert containment == [
            (LOT, SSCC, None, h(-1), None),
            (SSCC, None, QZ_STORE, h(0), h(2)),
            (SSCC, TRUCK_EPC, None, h(2), h(6)),
            (SSCC, None, NN_MARKET, h(6), None),
        ]
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
        containment = conn.execute(
            "SELECT child_id, parent_id, location_id, t0, t1 FROM containment ORDER BY t0, child_id"
        ).fetchall()
        assert containment == [
            (LOT, SSCC, None, h(-1), None),
            (SSCC, None, QZ_STORE, h(0), h(2)),
            (SSCC, TRUCK_EPC, None, h(2), h(6)),
            (SSCC, None, NN_MARKET, h(6), None),
        ]
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
