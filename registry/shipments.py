"""Stage 0½, reference data: typed writes and reads of shipments and geofences (caller's transaction)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from registry import shipment_queries as q
from registry.models import Geofence, Shipment
from registry.store import Db, _cursor

MODES = frozenset({"sea", "rail", "road", "cold_store"})


class ShipmentError(ValueError):
    """A shipment that cannot be stored as given (a sentence a person understands)."""


def check_shipment(shipment: Shipment) -> None:
    """Refuse a shipment whose legs, stops or lots contradict themselves (before any database write)."""
    if not shipment.shipment_id.strip():
        raise ShipmentError("a shipment needs an id")
    numbers = [leg.leg_no for leg in shipment.legs]
    if len(set(numbers)) != len(numbers):
        raise ShipmentError(f"shipment {shipment.shipment_id}: leg numbers repeat: {numbers}")
    for leg in shipment.legs:
        if leg.mode not in MODES:
            raise ShipmentError(f"leg {leg.leg_no}: mode {leg.mode!r} is not one of {sorted(MODES)}")
        if leg.planned_start and leg.planned_end and leg.planned_end <= leg.planned_start:
            raise ShipmentError(f"leg {leg.leg_no}: planned end is not after its planned start")
    lots = [lot.lot_id for lot in shipment.lots]
    if len(set(lots)) != len(lots):
        raise ShipmentError(f"shipment {shipment.shipment_id}: a lot is listed twice")
    if shipment.planned_start and shipment.planned_end and shipment.planned_end <= shipment.planned_start:
        raise ShipmentError(f"shipment {shipment.shipment_id}: planned end is not after its planned start")


def add_shipment(db: Db, shipment: Shipment) -> bool:
    """Store a new shipment with its legs, stops and lots; False (nothing written) when its id exists.
    ``ShipmentError`` when it contradicts itself; the database refuses unknown parties, locations, assets
    and lots (foreign keys)."""
    check_shipment(shipment)
    row = asdict(shipment)
    with _cursor(db) as cur:
        cur.execute(q.INSERT_SHIPMENT, row)
        if cur.rowcount == 0:
            return False
        for leg in shipment.legs:
            cur.execute(q.INSERT_LEG, {"shipment_id": shipment.shipment_id, **asdict(leg)})
        for n, location_id in enumerate(shipment.stops, start=1):
            cur.execute(q.INSERT_STOP, (shipment.shipment_id, n, location_id))
        for lot in shipment.lots:
            cur.execute(q.INSERT_SHIPMENT_LOT, (shipment.shipment_id, lot.lot_id, lot.quantity, lot.uom))
    return True


def _polygon_json(fence: Geofence) -> str | None:
    return None if fence.polygon is None else json.dumps([[lon, lat] for lon, lat in fence.polygon])


def upsert_geofences(db: Db, fences: Iterable[Geofence]) -> int:
    """Give each location its geofence (replacing the one it had); return how many were written."""
    n = 0
    with _cursor(db) as cur:
        for fence in fences:
            cur.execute(q.UPSERT_GEOFENCE, {**asdict(fence), "polygon": _polygon_json(fence)})
            n += 1
    return n


def _fence(row: Any) -> Geofence:
    polygon = None if row[5] is None else tuple((float(p[0]), float(p[1])) for p in row[5])
    return Geofence(str(row[0]), str(row[1]), row[2], row[3], row[4], polygon)


def geofences(db: Db) -> list[Geofence]:
    """Every geofence, by location id."""
    with _cursor(db) as cur:
        return [_fence(r) for r in cur.execute(q.GEOFENCES).fetchall()]


def shipment_of_asset(db: Db, asset_id: str, at: Any) -> str | None:
    """The shipment `asset_id` carries goods for at `at` (SQL ``shipment_of_asset``), None when none."""
    with _cursor(db) as cur:
        row = cur.execute(q.SHIPMENT_OF_ASSET, (asset_id, at)).fetchone()
    return None if row is None or row[0] is None else str(row[0])
