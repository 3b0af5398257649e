"""Tests: a small hand-built world over two days (2026-10-01/2026-10-02) whose scorecard ratios are known
exactly: two carriers, three trucks, readings at known slots with known lags, gateway day counters,
geofence crossings, alarms, a lot per shipment and two overlapping exemptions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from dashboards import rollups

PERIOD = "2026-10-01/2026-10-02"
T0 = datetime(2026, 10, 1, tzinfo=UTC)
SLOT = timedelta(minutes=10)
CAR_A, CAR_B, SHIPPER = "CAR-A", "CAR-B", "SHP-1"


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


# dev-a (TRUCK-A, carrier A): 288 ten-minute slots over the two days; slots k % 16 == 0 never arrive (18),
# slots k % 10 == 5 arrive 10 minutes late (29), slots 33..35 read 6.0 °C (out of 0..4), the rest 2.0 °C.
def dev_a_slots() -> list[tuple[int, float, timedelta]]:
    out = []
    for k in range(288):
        if k % 16 == 0:
            continue
        lag = timedelta(minutes=10) if k % 10 == 5 else timedelta(seconds=1)
        out.append((k, 6.0 if 33 <= k <= 35 else 2.0, lag))
    return out


def build_world(db_url: str) -> None:
    """Write the world and build its rollups."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        _registry(conn)
        _readings(conn)
        _gateway_days(conn)
        _shipments(conn)
        _alarms(conn)
        _exemptions(conn)
    rollups.refresh(db_url)


def _registry(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "INSERT INTO party (party_id, name, role) VALUES ('CAR-A', 'Carrier A', 'carrier'),"
        " ('CAR-B', 'Carrier B', 'carrier'), ('SHP-1', 'Shipper 1', 'shipper'),"
        " ('REG', 'Regulator', 'regulator')"
    )
    conn.execute(
        "INSERT INTO rule_class (product_class, pack_id, pack_version, description, low_c, high_c, source,"
        " storage_max_gap_s, transport_max_gap_s) VALUES ('chilled', 'cn_food', '1.0.0', 'chilled', 0, 4,"
        " 'industry practice', 1800, 600)"
    )
    conn.execute(
        "INSERT INTO location (location_id, name, kind, lat, lon) VALUES"
        " ('urn:epc:id:sgln:6901234.00001.0', 'Qinzhou port', 'port', 21.7, 108.6),"
        " ('urn:epc:id:sgln:6901234.00002.0', 'Nanning market', 'market', 22.8, 108.3)"
    )
    conn.execute(
        "INSERT INTO geofence (location_id, shape, center_lat, center_lon, radius_m) VALUES"
        " ('urn:epc:id:sgln:6901234.00001.0', 'circle', 21.7, 108.6, 2000),"
        " ('urn:epc:id:sgln:6901234.00002.0', 'circle', 22.8, 108.3, 2000)"
    )
    conn.execute(
        "INSERT INTO asset (asset_id, kind, name, operator_party_id, product_class) VALUES"
        " ('TRUCK-A', 'reefer_truck', 'Truck A', 'CAR-A', 'chilled'),"
        " ('TRUCK-B', 'reefer_truck', 'Truck B', 'CAR-B', 'chilled'),"
        " ('TRUCK-C', 'reefer_truck', 'Truck C', 'CAR-B', NULL)"
    )
    conn.execute(
        "INSERT INTO device (device_id, kind, calibration_due) VALUES ('dev-a', 'temp_logger', '2027-01-01'),"
        " ('dev-b', 'temp_logger', '2026-10-01'), ('dev-c', 'temp_logger', NULL)"
    )
    # dev-b is mounted mid-period (2026-10-01 12:00).
    conn.execute(
        "INSERT INTO device_mount (device_id, asset_id, valid_from) VALUES"
        " ('dev-a', 'TRUCK-A', %(t0)s), ('dev-b', 'TRUCK-B', %(noon)s), ('dev-c', 'TRUCK-C', %(t0)s)",
        {"t0": T0 - timedelta(days=30), "noon": at(12)},
    )


def _series(conn: psycopg.Connection[Any], device: str, channel: str) -> int:
    row = conn.execute(
        "INSERT INTO series (device_id, channel) VALUES (%s, %s) RETURNING series_id", (device, channel)
    ).fetchone()
    assert row is not None
    return int(row[0])


def _readings(conn: psycopg.Connection[Any]) -> None:
    a, b = _series(conn, "dev-a", "temp"), _series(conn, "dev-b", "temp")
    rows = [(T0 + k * SLOT, a, v, T0 + k * SLOT + lag) for k, v, lag in dev_a_slots()]
    # dev-b: every slot from its mount (2026-10-01 12:00) to the end, 2.0 °C, stored within a second.
    rows += [(at(12) + k * SLOT, b, 2.0, at(12) + k * SLOT + timedelta(seconds=1)) for k in range(216)]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO reading (time, series_id, value, received_at) VALUES (%s, %s, %s, %s)", rows
        )
    conn.execute(
        "INSERT INTO ingest_batch (kind, series_ids, t_min, t_max) VALUES ('telemetry', %s, %s, %s)",
        ([a, b], T0, T0 + timedelta(days=2)),
    )


# Gateway counters: dev-a received 200 messages over the two days, 2 dead-lettered as malformed_json; 270
# readings counted by seq and 18 missing.
def _gateway_days(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "INSERT INTO device_day (device_id, day, received, accepted, dead, readings, seq_missing) VALUES"
        " ('dev-a', %(d1)s, 100, 98, 2, 135, 9), ('dev-a', %(d2)s, 100, 100, 0, 135, 9),"
        " ('dev-b', %(d2)s, 50, 50, 0, 144, 0), ('dev-a', %(d0)s, 7, 0, 7, 0, 0)",
        {"d0": date(2026, 9, 30), "d1": date(2026, 10, 1), "d2": date(2026, 10, 2)},
    )
    conn.execute(
        "INSERT INTO device_day_dead (device_id, day, reason, n) VALUES ('dev-a', %s, 'malformed_json', 2)",
        (date(2026, 10, 1),),
    )


QZ, NN = "urn:epc:id:sgln:6901234.00001.0", "urn:epc:id:sgln:6901234.00002.0"


def _shipments(conn: psycopg.Connection[Any]) -> None:
    # S1 (carrier A, TRUCK-A) leaves Qinzhou at 02:00 and reaches Nanning at 20:00: matched.
    # S2 (carrier B: TRUCK-B then TRUCK-C from 12:00) leaves at 13:00 and never arrives.
    conn.execute(
        "INSERT INTO shipment (shipment_id, shipper_party_id, origin_location_id, destination_location_id,"
        " planned_start, planned_end) VALUES ('S1', 'SHP-1', %(qz)s, %(nn)s, %(t0)s, %(t24)s),"
        " ('S2', 'SHP-1', %(qz)s, %(nn)s, %(t0)s, %(t24)s)",
        {"qz": QZ, "nn": NN, "t0": T0, "t24": at(24)},
    )
    conn.execute(
        "INSERT INTO shipment_leg (shipment_id, leg_no, mode, carrier_party_id, asset_id, planned_start,"
        " planned_end) VALUES ('S1', 1, 'road', 'CAR-A', 'TRUCK-A', NULL, NULL),"
        " ('S2', 1, 'road', 'CAR-B', 'TRUCK-B', %(t0)s, %(t12)s),"
        " ('S2', 2, 'road', 'CAR-B', 'TRUCK-C', %(t12)s, %(t24)s)",
        {"t0": T0, "t12": at(12), "t24": at(24)},
    )
    conn.execute(
        "INSERT INTO lot (lot_id, product_class, owner_party_id) VALUES"
        " ('urn:epc:class:lgtin:6901234.012345.L1', 'chilled', 'SHP-1'),"
        " ('urn:epc:class:lgtin:6901234.012345.L2', 'chilled', 'SHP-1')"
    )
    conn.execute(
        "INSERT INTO shipment_lot (shipment_id, lot_id) VALUES"
        " ('S1', 'urn:epc:class:lgtin:6901234.012345.L1'), ('S2', 'urn:epc:class:lgtin:6901234.012345.L2')"
    )
    conn.execute(
        "INSERT INTO geofence_crossing (asset_id, location_id, direction, crossed_at, device_id, lat, lon)"
        " VALUES"
        " ('TRUCK-A', %(qz)s, 'exit', %(t2)s, 'dev-a', 21.7, 108.6),"
        " ('TRUCK-A', %(nn)s, 'enter', %(t20)s, 'dev-a', 22.8, 108.3),"
        " ('TRUCK-B', %(qz)s, 'exit', %(t13)s, 'dev-b', 21.7, 108.6)",
        {"qz": QZ, "nn": NN, "t2": at(2), "t20": at(20), "t13": at(13)},
    )


def _alarms(conn: psycopg.Connection[Any]) -> None:
    # TRUCK-A: acknowledged after 600 s and 1200 s, one never; SLA 900 s.
    conn.execute(
        "INSERT INTO alarm (asset_id, rule_id, kind, severity, state, reason, condition_start, opened_at,"
        " acknowledged_at) VALUES"
        " ('TRUCK-A', 'r1', 'excursion', 'warning', 'acknowledged', 'x', %(t5)s, %(t5)s, %(t5a)s),"
        " ('TRUCK-A', 'r2', 'excursion', 'warning', 'acknowledged', 'x', %(t6)s, %(t6)s, %(t6a)s),"
        " ('TRUCK-A', 'r3', 'excursion', 'warning', 'open', 'x', %(t7)s, %(t7)s, NULL)",
        {
            "t5": at(5), "t5a": at(5) + timedelta(seconds=600),
            "t6": at(6), "t6a": at(6) + timedelta(seconds=1200),
            "t7": at(7),
        },
    )  # fmt: skip


# Two overlapping declared offline sea-leg exemptions of TRUCK-A from timeliness: 2026-10-02 00:00-06:00 and
# 04:00-08:00, together 8 hours (slots 144..191: 45 readings arrived, 5 of them late).
def _exemptions(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "INSERT INTO scorecard_exemption (indicator, subject_kind, subject_id, starts_at, ends_at, reason,"
        " granted_by, granted_at) VALUES"
        " ('timeliness', 'asset', 'TRUCK-A', %(a)s, %(b)s, %(why)s, 'inspector Li', %(g)s),"
        " ('timeliness', 'asset', 'TRUCK-A', %(c)s, %(d)s, %(why)s, 'inspector Wang', %(g)s)",
        {"a": at(24), "b": at(30), "c": at(28), "d": at(32), "g": T0, "why": "declared offline sea leg"},
    )
