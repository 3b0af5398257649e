"""Tests: shipments, their legs, stops and lots, and geofences round-trip; an asset maps to its shipment."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from registry import shipments, store
from registry.models import (
    Asset,
    ClassBounds,
    Geofence,
    Location,
    Lot,
    Party,
    Shipment,
    ShipmentLeg,
    ShipmentLot,
    ShipmentProfile,
)

Conn = psycopg.Connection[Any]
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
CARRIER = Party("6901234100006", "Beibu Gulf Reefer", "carrier")
SHIPPER = Party("8850000000001", "Chanthaburi Durian Co", "shipper")
PORT = Location("urn:epc:id:sgln:6901234.00010.0", "Qinzhou port", "port")
STORE = Location("urn:epc:id:sgln:6901234.00020.0", "Bonded cold store", "cold_store")
BOX = Asset("CONT-1", "reefer_container", "Reefer 1", epc="urn:epc:id:bic:CSQU3054383")
TRUCK = Asset("TRUCK-1", "reefer_truck", "Truck 1")
LOT = Lot("urn:epc:class:lgtin:8850000.012345.D1", "durian", owner_party_id=SHIPPER.party_id)


def _world(conn: Conn) -> None:
    store.add_parties(conn, [CARRIER, SHIPPER])
    store.add_locations(conn, [PORT, STORE])
    store.add_assets(conn, [BOX, TRUCK])
    store.add_lots(conn, [LOT])


def _shipment(sid: str = "SHP-1", **kw: Any) -> Shipment:
    legs = (
        ShipmentLeg(
            1,
            "sea",
            CARRIER.party_id,
            container_number="CSQU3054383",
            vessel="Beibu 1",
            voyage="V1",
            planned_start=T0,
            planned_end=T0 + 48 * HOUR,
        ),
        ShipmentLeg(
            2,
            "road",
            CARRIER.party_id,
            asset_id=TRUCK.asset_id,
            truck_plate="桂A12345",
            planned_start=T0 + 50 * HOUR,
            planned_end=T0 + 60 * HOUR,
        ),
    )
    base: dict[str, Any] = {
        "through_document": "TD-" + sid,
        "bill_of_lading": "BL-1",
        "shipper_party_id": SHIPPER.party_id,
        "origin_location_id": PORT.location_id,
        "destination_location_id": STORE.location_id,
        "planned_start": T0,
        "planned_end": T0 + 60 * HOUR,
        "legs": legs,
        "stops": (STORE.location_id,),
        "lots": (ShipmentLot(LOT.lot_id, 120, "CT"),),
    }
    return Shipment(sid, **{**base, **kw})


def test_a_lot_keeps_its_owner(conn: Conn) -> None:
    _world(conn)
    assert store.get_lot(conn, LOT.lot_id) == LOT


def test_a_shipment_is_stored_once_and_an_asset_maps_to_it_by_leg_window(conn: Conn) -> None:
    _world(conn)
    assert shipments.add_shipment(conn, _shipment())
    assert not shipments.add_shipment(conn, _shipment())
    # The container is named by its ISO 6346 number on the sea leg, the truck by its asset id on the road leg.
    assert shipments.shipment_of_asset(conn, BOX.asset_id, T0 + HOUR) == "SHP-1"
    assert shipments.shipment_of_asset(conn, TRUCK.asset_id, T0 + 55 * HOUR) == "SHP-1"
    assert shipments.shipment_of_asset(conn, TRUCK.asset_id, T0 - HOUR) is None
    conn.execute("UPDATE shipment SET closed_at = %s", (T0 + 52 * HOUR,))
    assert shipments.shipment_of_asset(conn, TRUCK.asset_id, T0 + 55 * HOUR) is None


def test_a_shipment_that_contradicts_itself_is_refused_before_any_write(conn: Conn) -> None:
    _world(conn)
    with pytest.raises(shipments.ShipmentError, match="mode"):
        shipments.add_shipment(conn, _shipment(legs=(ShipmentLeg(1, "air"),)))
    with pytest.raises(shipments.ShipmentError, match="planned end"):
        shipments.add_shipment(conn, _shipment(planned_end=T0 - HOUR))
    assert conn.execute("SELECT count(*) FROM shipment").fetchone() == (0,)


def test_geofences_round_trip_and_replace(conn: Conn) -> None:
    _world(conn)
    ring = ((108.6, 21.7), (108.7, 21.7), (108.7, 21.8))
    fences = [
        Geofence(PORT.location_id, "polygon", polygon=ring),
        Geofence(STORE.location_id, "circle", 21.75, 108.62, 300.0),
    ]
    assert shipments.upsert_geofences(conn, fences) == 2
    assert shipments.geofences(conn) == fences
    moved = Geofence(STORE.location_id, "circle", 21.76, 108.63, 250.0)
    shipments.upsert_geofences(conn, [moved])
    assert shipments.geofences(conn)[1] == moved
    with pytest.raises(psycopg.errors.CheckViolation):
        shipments.upsert_geofences(conn, [Geofence(PORT.location_id, "circle", 21.7, 108.6)])


def test_a_shipment_reads_back_whole_and_closes_once(conn: Conn) -> None:
    _world(conn)
    profile = ShipmentProfile(1, "DS-7", low_c=11.0, high_c=14.0)
    bounds = ClassBounds("durian", 10.0, 15.0, 600.0)
    assert shipments.add_shipment(conn, _shipment(profiles=(profile,)), bounds)
    assert shipments.get_shipment(conn, "SHP-1") == _shipment(profiles=(profile,))
    assert shipments.get_shipment(conn, "SHP-2") is None
    assert shipments.close_shipment(conn, "SHP-1", T0 + 70 * HOUR) == T0 + 70 * HOUR
    with pytest.raises(shipments.ShipmentClosedError, match="closed already"):
        shipments.close_shipment(conn, "SHP-1", T0 + 71 * HOUR)
    assert shipments.close_shipment(conn, "SHP-2", T0) is None
    found = shipments.get_shipment(conn, "SHP-1")
    assert found is not None
    assert found.closed_at == T0 + 70 * HOUR


def test_profile_versions_are_numbered_and_never_looser_than_the_class(conn: Conn) -> None:
    _world(conn)
    bounds = ClassBounds("durian", 10.0, 15.0, 600.0)
    assert shipments.add_shipment(conn, _shipment())
    assert shipments.add_profile(conn, "SHP-1", ShipmentProfile(0, "DS-7", low_c=10.0), bounds) == 1
    assert shipments.add_profile(conn, "SHP-1", ShipmentProfile(0, "DS-8", max_gap_s=300.0), bounds) == 2
    assert shipments.add_profile(conn, "SHP-2", ShipmentProfile(0, "DS-7", low_c=11.0), bounds) is None
    for looser in (
        ShipmentProfile(0, "x", low_c=9.9),
        ShipmentProfile(0, "x", high_c=15.1),
        ShipmentProfile(0, "x", max_gap_s=601.0),
    ):
        with pytest.raises(shipments.ShipmentError, match="looser"):
            shipments.add_profile(conn, "SHP-1", looser, bounds)
    for wrong in (
        ShipmentProfile(0, "", low_c=11.0),
        ShipmentProfile(0, "x"),
        ShipmentProfile(0, "x", low_c=14.0, high_c=12.0),
    ):
        with pytest.raises(shipments.ShipmentError):
            shipments.add_profile(conn, "SHP-1", wrong, bounds)
    with pytest.raises(shipments.ShipmentError, match="product class"):
        shipments.add_profile(conn, "SHP-1", ShipmentProfile(0, "x", low_c=11.0), None)
    found = shipments.get_shipment(conn, "SHP-1")
    assert found is not None
    assert [(p.version, p.source) for p in found.profiles] == [(1, "DS-7"), (2, "DS-8")]
    with pytest.raises(shipments.ShipmentError, match="looser"):
        shipments.add_shipment(
            conn, _shipment("SHP-3", profiles=(ShipmentProfile(1, "x", low_c=5.0),)), bounds
        )
    assert shipments.get_shipment(conn, "SHP-3") is None


def test_documents_find_a_shipment_and_lots_link_once(conn: Conn) -> None:
    _world(conn)
    assert shipments.add_shipment(conn, _shipment(lots=()))
    assert shipments.shipment_by_documents(conn, through_document="TD-SHP-1") == ("SHP-1", "api")
    assert shipments.shipment_by_documents(conn, through_document="TD-X", bill_of_lading="BL-1") == (
        "SHP-1",
        "api",
    )
    assert shipments.shipment_by_documents(conn, through_document="TD-X") is None
    unknown = ShipmentLot("urn:epc:class:lgtin:0000000.000000.X", 1.0, "CT")
    assert shipments.link_lots(conn, "SHP-1", [ShipmentLot(LOT.lot_id, 5.0, "CT"), unknown]) == 1
    assert shipments.link_lots(conn, "SHP-1", [ShipmentLot(LOT.lot_id, 9.0, "KGM")]) == 0
    found = shipments.get_shipment(conn, "SHP-1")
    assert found is not None
    assert found.lots == (ShipmentLot(LOT.lot_id, 5.0, "CT"),)


def test_shipments_stored_in_bulk_read_back_as_stored_one_by_one(conn: Conn, second_db_url: str) -> None:
    profile = ShipmentProfile(1, "DS-7", low_c=11.0, high_c=14.0, max_gap_s=300.0)
    bounds = ClassBounds("durian", 10.0, 15.0, 600.0)
    many = [_shipment("SHP-1", profiles=(profile,)), _shipment("SHP-2", stops=()), _shipment("SHP-3")]
    _world(conn)
    for s in many:
        assert shipments.add_shipment(conn, s, bounds)
    with psycopg.connect(second_db_url, autocommit=True) as bulk:
        _world(bulk)
        assert shipments.add_shipments(bulk, many[:1], bounds) == 1
        # An id stored before, or twice in the same call, is skipped.
        assert shipments.add_shipments(bulk, [many[0], many[1], many[2], many[1]], bounds) == 2
        for s in many:
            got = shipments.get_shipment(bulk, s.shipment_id)
            assert got is not None
            assert got == shipments.get_shipment(conn, s.shipment_id) == s
