"""Tests: the scorecards' shipment facts are dropped when their registry rows, mounts or crossings change
(0027's triggers), and only those, and shipment_fact_marked names the shipments a late batch touches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

Conn = psycopg.Connection[Any]

LOC = "urn:epc:id:sgln:6901234.00001.0"
SEP1 = datetime(2026, 9, 1, tzinfo=UTC)
SEP20 = datetime(2026, 9, 20, tzinfo=UTC)
OCT1 = datetime(2026, 10, 1, tzinfo=UTC)
OCT1_NOON = datetime(2026, 10, 1, 12, tzinfo=UTC)
OCT2 = datetime(2026, 10, 2, tzinfo=UTC)
NOV1 = datetime(2026, 11, 1, tzinfo=UTC)
NOV1_NOON = datetime(2026, 11, 1, 12, tzinfo=UTC)
NOV2 = datetime(2026, 11, 2, tzinfo=UTC)
DEC1 = datetime(2026, 12, 1, tzinfo=UTC)
DEC2 = datetime(2026, 12, 2, tzinfo=UTC)

# Each shipment has one leg on one asset and one fact over its window:
#   S1 on TRUCK-1 (October), S2 on COMP-1 (a compartment of TRUCK-1, October), S3 on TRUCK-2 (October),
#   S4 on TRUCK-1 (November), S5 on VESSEL (October).
FACTS: dict[str, tuple[str, datetime, datetime]] = {
    "S1": ("TRUCK-1", OCT1, OCT2),
    "S2": ("COMP-1", OCT1, OCT2),
    "S3": ("TRUCK-2", OCT1, OCT2),
    "S4": ("TRUCK-1", NOV1, NOV2),
    "S5": ("VESSEL", OCT1, OCT2),
}
ALL = set(FACTS)


@pytest.fixture
def world(conn: Conn) -> Conn:
    """The registry: a truck with a compartment, another truck, a vessel; devices mounted since September
    on TRUCK-1 (dev-t, probe channels temp and temp:2), COMP-1 (dev-c) and briefly on TRUCK-2 (dev-2);
    the shipments and their facts."""
    conn.execute("INSERT INTO party (party_id, name, role) VALUES ('CAR', 'Carrier', 'carrier')")
    conn.execute("INSERT INTO location (location_id, name, kind) VALUES (%s, 'Port', 'port')", (LOC,))
    conn.execute(
        "INSERT INTO asset (asset_id, kind, name, operator_party_id) VALUES"
        " ('TRUCK-1', 'reefer_truck', 'Truck 1', 'CAR'), ('TRUCK-2', 'reefer_truck', 'Truck 2', 'CAR'),"
        " ('VESSEL', 'vessel', 'Vessel', 'CAR')"
    )
    conn.execute(
        "INSERT INTO asset (asset_id, kind, name, parent_asset_id, probe) VALUES"
        " ('COMP-1', 'truck_compartment', 'Compartment 1', 'TRUCK-1', 'temp:2')"
    )
    conn.execute(
        "INSERT INTO device (device_id, kind) VALUES ('dev-t', 'temp_logger'), ('dev-c', 'temp_logger'),"
        " ('dev-2', 'temp_logger'), ('dev-x', 'temp_logger')"
    )
    conn.execute(
        "INSERT INTO device_mount (device_id, asset_id, valid_from, valid_to) VALUES"
        " ('dev-t', 'TRUCK-1', %(sep1)s, NULL), ('dev-c', 'COMP-1', %(sep1)s, NULL),"
        " ('dev-2', 'TRUCK-2', %(sep1)s, %(sep20)s)",
        {"sep1": SEP1, "sep20": SEP20},
    )
    conn.execute(
        "INSERT INTO series (device_id, channel) VALUES ('dev-t', 'temp'), ('dev-t', 'temp:2'),"
        " ('dev-c', 'temp')"
    )
    for sid, (asset, start, end) in FACTS.items():
        conn.execute(
            "INSERT INTO shipment (shipment_id, planned_start, planned_end) VALUES (%s, %s, %s)",
            (sid, start, end),
        )
        conn.execute(
            "INSERT INTO shipment_leg (shipment_id, leg_no, mode, carrier_party_id, asset_id)"
            " VALUES (%s, 1, 'road', 'CAR', %s)",
            (sid, asset),
        )
    _judge(conn)
    return conn


def _judge(conn: Conn) -> None:
    """A fact for every shipment (as the judge would write it, its arrays empty)."""
    for sid, (_asset, start, end) in FACTS.items():
        conn.execute(
            "INSERT INTO shipment_fact (shipment_id, dep_from, dep_to, assets, carriers, devices, f_kind,"
            " f_from, f_to, f_figure, leg_nos, leg_ok, h_from_leg, h_to_leg, h_at, h_from_asset, h_to_asset,"
            " h_before, h_after, thresholds)"
            " VALUES (%s, %s, %s, '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',"
            " '{}', '{}', '{}', '{}', 'any') ON CONFLICT DO NOTHING",
            (sid, start, end),
        )
    assert _facts(conn) == ALL


def _facts(conn: Conn) -> set[str]:
    return {str(r[0]) for r in conn.execute("SELECT shipment_id FROM shipment_fact").fetchall()}


def _gone(conn: Conn) -> set[str]:
    """The shipments whose facts were dropped since the last _judge, and a fresh fact for each."""
    gone = ALL - _facts(conn)
    _judge(conn)
    return gone


# shipment


def test_an_updated_shipment_drops_its_fact_only(world: Conn) -> None:
    world.execute("UPDATE shipment SET closed_at = %s WHERE shipment_id = 'S1'", (OCT2,))
    assert _gone(world) == {"S1"}
    world.execute("UPDATE shipment SET road_waybill = 'RW-9' WHERE shipment_id IN ('S2', 'S3')")
    assert _gone(world) == {"S2", "S3"}


def test_a_shipment_rewritten_with_the_same_values_keeps_its_fact(world: Conn) -> None:
    world.execute("UPDATE shipment SET planned_end = planned_end, closed_at = closed_at")
    assert _gone(world) == set()


# shipment_leg


def test_a_leg_added_drops_its_shipments_fact(world: Conn) -> None:
    world.execute(
        "INSERT INTO shipment_leg (shipment_id, leg_no, mode, asset_id) VALUES ('S1', 2, 'sea', 'VESSEL')"
    )
    assert _gone(world) == {"S1"}


def test_a_leg_changed_drops_its_shipments_fact(world: Conn) -> None:
    world.execute("UPDATE shipment_leg SET carrier_party_id = NULL WHERE shipment_id = 'S2'")
    assert _gone(world) == {"S2"}
    world.execute("UPDATE shipment_leg SET mode = mode")
    assert _gone(world) == set()


def test_a_leg_moved_to_another_shipment_drops_both_facts(world: Conn) -> None:
    world.execute("UPDATE shipment_leg SET shipment_id = 'S5', leg_no = 2 WHERE shipment_id = 'S4'")
    assert _gone(world) == {"S4", "S5"}


def test_a_leg_removed_drops_its_shipments_fact(world: Conn) -> None:
    world.execute("DELETE FROM shipment_leg WHERE shipment_id = 'S3'")
    assert _gone(world) == {"S3"}


# device_mount


def test_a_mount_on_a_vehicle_drops_its_and_its_compartments_facts_in_its_window(world: Conn) -> None:
    world.execute(
        "INSERT INTO device_mount (device_id, asset_id, valid_from, valid_to)"
        " VALUES ('dev-x', 'TRUCK-1', %s, %s)",
        (OCT1_NOON, OCT2),
    )
    assert _gone(world) == {"S1", "S2"}  # not S4: TRUCK-1 in November


def test_a_mount_on_a_compartment_drops_its_vehicles_facts(world: Conn) -> None:
    world.execute(
        "INSERT INTO device_mount (device_id, asset_id, valid_from) VALUES ('dev-x', 'COMP-1', %s)",
        (NOV1_NOON,),
    )
    assert _gone(world) == {"S4"}  # TRUCK-1 in November; not S2 (COMP-1 in October, before the mount)
    world.execute(
        "INSERT INTO device_mount (device_id, asset_id, valid_from, valid_to)"
        " VALUES ('dev-x', 'COMP-1', %s, %s)",
        (DEC1, DEC2),
    )
    assert _gone(world) == set()


def test_a_mount_outside_every_fact_keeps_them(world: Conn) -> None:
    world.execute(
        "INSERT INTO device_mount (device_id, asset_id, valid_from, valid_to)"
        " VALUES ('dev-x', 'TRUCK-1', %s, %s)",
        (DEC1, DEC2),
    )
    assert _gone(world) == set()


def test_a_mount_changed_drops_the_facts_of_its_old_and_its_new_window(world: Conn) -> None:
    world.execute(
        "INSERT INTO device_mount (device_id, asset_id, valid_from, valid_to)"
        " VALUES ('dev-x', 'TRUCK-1', %s, %s)",
        (DEC1, DEC2),
    )
    assert _gone(world) == set()
    # December to November 1: the new window meets S4
    world.execute(
        "UPDATE device_mount SET valid_from = %s, valid_to = %s WHERE device_id = 'dev-x'", (NOV1, NOV1_NOON)
    )
    assert _gone(world) == {"S4"}
    # November 1 back to December: the old window meets S4, the new one nothing
    world.execute(
        "UPDATE device_mount SET valid_from = %s, valid_to = %s WHERE device_id = 'dev-x'", (DEC1, DEC2)
    )
    assert _gone(world) == {"S4"}
    world.execute("UPDATE device_mount SET valid_to = valid_to")
    assert _gone(world) == set()


def test_a_mount_moved_to_another_asset_drops_both_assets_facts(world: Conn) -> None:
    # dev-2 on TRUCK-2 from September 1 to 20: no fact then
    world.execute("UPDATE device_mount SET valid_to = %s WHERE device_id = 'dev-2'", (OCT1_NOON,))
    assert _gone(world) == {"S3"}
    world.execute("UPDATE device_mount SET asset_id = 'VESSEL' WHERE device_id = 'dev-2'")
    assert _gone(world) == {"S3", "S5"}


def test_a_mount_closed_or_removed_drops_the_facts_it_spanned(world: Conn) -> None:
    # dev-t on TRUCK-1 since September 1, closed on November 1 noon: what it no longer covers is S4's
    world.execute("UPDATE device_mount SET valid_to = %s WHERE device_id = 'dev-t'", (NOV1_NOON,))
    assert _gone(world) == {"S1", "S2", "S4"}
    world.execute("DELETE FROM device_mount WHERE device_id = 'dev-2'")
    assert _gone(world) == set()  # September only
    world.execute("DELETE FROM device_mount WHERE device_id = 'dev-c'")
    assert _gone(world) == {"S1", "S2", "S4"}


# asset


def test_a_compartment_moved_to_another_vehicle_drops_its_old_and_new_vehicles_facts(world: Conn) -> None:
    world.execute("UPDATE asset SET parent_asset_id = 'VESSEL' WHERE asset_id = 'COMP-1'")
    assert _gone(world) == {"S1", "S2", "S4", "S5"}


def test_a_compartment_naming_another_probe_drops_its_and_its_vehicles_facts(world: Conn) -> None:
    world.execute("UPDATE asset SET probe = 'temp:3' WHERE asset_id = 'COMP-1'")
    assert _gone(world) == {"S1", "S2", "S4"}


def test_a_vehicle_put_on_another_drops_its_compartments_facts(world: Conn) -> None:
    world.execute("UPDATE asset SET parent_asset_id = 'VESSEL' WHERE asset_id = 'TRUCK-1'")
    assert _gone(world) == {"S1", "S2", "S4", "S5"}
    world.execute("UPDATE asset SET parent_asset_id = NULL WHERE asset_id = 'TRUCK-2'")
    assert _gone(world) == set()  # it had no vehicle: nothing changed


def test_an_asset_renamed_keeps_every_fact(world: Conn) -> None:
    world.execute("UPDATE asset SET name = 'renamed', operator_party_id = NULL")
    assert _gone(world) == set()


# geofence_crossing


def _cross(conn: Conn, asset: str, at: datetime) -> None:
    conn.execute(
        "INSERT INTO geofence_crossing (asset_id, location_id, direction, crossed_at, device_id, lat, lon)"
        " VALUES (%s, %s, 'exit', %s, 'dev-t', 21.7, 108.6)",
        (asset, LOC, at),
    )


def test_a_crossing_in_a_facts_time_drops_it_and_one_outside_keeps_it(world: Conn) -> None:
    _cross(world, "TRUCK-1", SEP20)
    assert _gone(world) == set()
    _cross(world, "TRUCK-1", OCT1_NOON)
    assert _gone(world) == {"S1"}  # not S2 (its compartment) nor S4 (November)
    _cross(world, "TRUCK-1", NOV2)  # the fact's time holds its end
    assert _gone(world) == {"S4"}


def test_a_crossing_moved_or_withdrawn_drops_the_facts_of_its_old_and_new_time(world: Conn) -> None:
    _cross(world, "TRUCK-2", SEP20)
    assert _gone(world) == set()
    world.execute("UPDATE geofence_crossing SET crossed_at = %s WHERE asset_id = 'TRUCK-2'", (OCT1_NOON,))
    assert _gone(world) == {"S3"}
    world.execute("UPDATE geofence_crossing SET crossed_at = %s WHERE asset_id = 'TRUCK-2'", (SEP20,))
    assert _gone(world) == {"S3"}
    world.execute("UPDATE geofence_crossing SET lat = lat")
    assert _gone(world) == set()
    _cross(world, "VESSEL", OCT1_NOON)
    assert _gone(world) == {"S5"}
    world.execute("DELETE FROM geofence_crossing WHERE asset_id = 'VESSEL'")
    assert _gone(world) == {"S5"}
    world.execute("DELETE FROM geofence_crossing WHERE asset_id = 'TRUCK-2'")
    assert _gone(world) == set()


def test_an_empty_crossing_statement_keeps_every_fact(world: Conn) -> None:
    world.execute("DELETE FROM geofence_crossing")
    world.execute("INSERT INTO geofence_crossing SELECT * FROM geofence_crossing")
    assert _gone(world) == set()


@pytest.mark.parametrize("table", ["shipment_leg", "device_mount", "geofence_crossing"])
def test_a_table_emptied_drops_every_fact(world: Conn, table: str) -> None:
    world.execute(f"TRUNCATE {table}")
    assert _facts(world) == set()


# shipment_fact_marked (0026)


def _mark(conn: Conn, device: str, channel: str, t_min: datetime, t_max: datetime) -> set[str]:
    row = conn.execute(
        "INSERT INTO shipment_fact_mark (batch_id, series_ids, t_min, t_max)"
        " SELECT 7, ARRAY[series_id], %s, %s FROM series WHERE device_id = %s AND channel = %s"
        " RETURNING mark_id",
        (t_min, t_max, device, channel),
    ).fetchone()
    assert row is not None
    rows = conn.execute("SELECT shipment_id FROM shipment_fact_marked(ARRAY[%s]::bigint[])", (row[0],))
    return {str(r[0]) for r in rows.fetchall()}


def test_a_mark_in_a_facts_time_names_its_shipment(world: Conn) -> None:
    assert _mark(world, "dev-t", "temp", OCT1_NOON, OCT1_NOON) == {"S1", "S2"}
    assert _mark(world, "dev-t", "temp", NOV1, NOV1_NOON) == {"S4"}


def test_a_mark_outside_every_facts_time_names_nothing(world: Conn) -> None:
    assert _mark(world, "dev-t", "temp", SEP20, SEP20) == set()
    assert _mark(world, "dev-t", "temp", DEC1, DEC2) == set()


def test_a_mark_on_a_compartments_device_names_its_vehicles_shipments(world: Conn) -> None:
    assert _mark(world, "dev-c", "temp", OCT1_NOON, OCT1_NOON) == {"S1", "S2"}
    assert _mark(world, "dev-c", "temp", NOV1, NOV1_NOON) == {"S4"}


def test_every_mark_is_read_without_a_list(world: Conn) -> None:
    _mark(world, "dev-t", "temp", SEP20, SEP20)
    _mark(world, "dev-c", "temp", NOV1, NOV1_NOON)
    rows = world.execute("SELECT shipment_id FROM shipment_fact_marked()").fetchall()
    assert {str(r[0]) for r in rows} == {"S4"}
