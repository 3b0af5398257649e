"""Tests: the registry's typed reads and writes round-trip through PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from registry import store
from registry.models import Asset, Device, Location, Lot, Mount, Party

Conn = psycopg.Connection[Any]
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CARRIER = Party("6901234100006", "Ocean line", "carrier")
PORT = Location("urn:epc:id:sgln:6901234.00010.0", "Port", "port", CARRIER.party_id, lat=22.5, lon=114.1)
TRUCK = Asset("TRUCK-1", "reefer_truck", "Truck 1", operator_party_id=CARRIER.party_id, product_class="chill")
COMPARTMENT = Asset("TRUCK-1/1", "truck_compartment", "Front", parent_asset_id="TRUCK-1")
LOGGER = Device("logger-1", "temp_logger", accuracy_c=0.3, calibration_due=dt.date(2027, 1, 1))
LOT = Lot("urn:epc:class:lgtin:6901234.012345.L1", "chilled", gtin="06901234123450", batch="L1")


def _world(conn: Conn) -> None:
    store.add_parties(conn, [CARRIER])
    store.add_locations(conn, [PORT])
    # A child before its parent in one call: the foreign key holds at the end of the statement.
    store.add_assets(conn, [COMPARTMENT, TRUCK])
    store.add_devices(conn, [LOGGER])
    store.add_lots(conn, [LOT])


def test_added_rows_read_back_as_they_went_in(conn: Conn) -> None:
    _world(conn)
    assert store.get_party(conn, CARRIER.party_id) == CARRIER
    assert store.get_location(conn, PORT.location_id) == PORT
    assert store.get_asset(conn, TRUCK.asset_id) == TRUCK
    assert store.get_asset(conn, COMPARTMENT.asset_id) == COMPARTMENT
    assert store.get_device(conn, LOGGER.device_id) == LOGGER
    assert store.get_lot(conn, LOT.lot_id) == LOT
    assert store.get_asset(conn, "nowhere") is None


def test_add_keeps_existing_rows_and_upsert_overwrites_them(conn: Conn) -> None:
    _world(conn)
    renamed = Party(CARRIER.party_id, "Ocean line Ltd", "carrier")
    assert store.add_parties(conn, [renamed, Party("p2", "Store", "cold_store")]) == 1
    assert store.get_party(conn, CARRIER.party_id) == CARRIER
    store.upsert_party(conn, renamed)
    assert store.get_party(conn, CARRIER.party_id) == renamed
    moved = Location(PORT.location_id, "Port east", "port")
    store.upsert_location(conn, moved)
    assert store.get_location(conn, PORT.location_id) == moved
    parked = Asset(TRUCK.asset_id, "reefer_truck", "Truck 1", mode="storage")
    store.upsert_asset(conn, parked)
    assert store.get_asset(conn, TRUCK.asset_id) == parked
    retired = Device(LOGGER.device_id, "temp_logger", status="decommissioned")
    store.upsert_device(conn, retired)
    assert store.get_device(conn, LOGGER.device_id) == retired
    released = Lot(LOT.lot_id, "chilled", bonded_status="released")
    store.upsert_lot(conn, released)
    assert store.get_lot(conn, LOT.lot_id) == released


def test_enrolling_a_known_device_reactivates_it_and_keeps_its_calibration(conn: Conn) -> None:
    store.add_devices(conn, [Device("rc-1", "temp_logger", accuracy_c=0.2, status="decommissioned")])
    store.enrol_device(conn, "rc-1", "reefer_controller")
    assert store.get_device(conn, "rc-1") == Device("rc-1", "reefer_controller", accuracy_c=0.2)
    store.enrol_device(conn, "new-1", "rfid_reader")
    assert store.device_statuses(conn, ["rc-1", "new-1", "unknown"]) == {"rc-1": "active", "new-1": "active"}


def test_mounting_closes_the_open_mount(conn: Conn) -> None:
    _world(conn)
    first = store.mount_device(conn, LOGGER.device_id, TRUCK.asset_id, T0)
    second = store.mount_device(conn, LOGGER.device_id, COMPARTMENT.asset_id, T0 + dt.timedelta(hours=2))
    assert store.mounts_of(conn, LOGGER.device_id) == [
        Mount(first.device_id, first.asset_id, T0, second.valid_from),
        second,
    ]
    assert store.add_mounts(conn, [Mount(LOGGER.device_id, TRUCK.asset_id, T0)]) == 0, "the key is kept"


def test_ensure_series_creates_once_and_returns_every_id(conn: Conn) -> None:
    store.add_devices(conn, [Device("d1", "temp_logger"), Device("d2", "temp_logger")])
    first = store.ensure_series(conn, [("d2", "temp"), ("d1", "temp"), ("d1", "rh")])
    assert set(first) == {("d1", "temp"), ("d1", "rh"), ("d2", "temp")}
    again = store.ensure_series(conn, [("d1", "temp"), ("d2", "temp"), ("d1", "rh"), ("d1", "temp")])
    assert again == first
    assert first[("d1", "rh")] < first[("d1", "temp")] < first[("d2", "temp")], "created in sorted order"
    assert [(s.device_id, s.channel, s.series_id) for s in store.all_series(conn)] == sorted(
        (d, c, i) for (d, c), i in first.items()
    )
    assert store.ensure_series(conn, []) == {}


def test_a_cursor_works_like_a_connection(conn: Conn) -> None:
    with conn.cursor() as cur:
        store.add_devices(cur, [LOGGER])
        assert store.device_statuses(cur, [LOGGER.device_id]) == {LOGGER.device_id: "active"}
        assert store.ensure_series(cur, [(LOGGER.device_id, "temp")])


def test_an_unknown_foreign_key_is_refused(conn: Conn) -> None:
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        store.add_mounts(conn, [Mount("ghost", "nowhere", T0)])
