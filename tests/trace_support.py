"""Tests: the traceability scenario: the demo world's registry, telemetry, RFID reads and verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
from psycopg.types.json import Jsonb

from rules.models import VerdictLimits, VerdictPayload
from traceability.epcis import builders
from traceability.ledger import chain

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
