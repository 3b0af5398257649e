"""Stage 0½, reference data: typed writes and reads of shipments and geofences (caller's transaction)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, fields
from typing import Any

from registry import shipment_queries as q
from registry.models import ClassBounds, Geofence, Shipment, ShipmentLeg, ShipmentLot, ShipmentProfile
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


def check_profile(profile: ShipmentProfile, bounds: ClassBounds | None) -> None:
    """Refuse a shipper's profile that is looser than its class on any side (a lower low limit, a higher
    high limit, a longer recording interval) or that contradicts itself. A side the profile leaves open
    keeps the class's bound; equal to the class is not looser."""
    if not profile.source.strip():
        raise ShipmentError("a profile cites the shipper's specification it comes from (source)")
    if profile.low_c is None and profile.high_c is None and profile.max_gap_s is None:
        raise ShipmentError("a profile sets low_c, high_c or max_gap_s")
    if profile.low_c is not None and profile.high_c is not None and profile.low_c >= profile.high_c:
        raise ShipmentError(f"profile: low_c {profile.low_c} is not below high_c {profile.high_c}")
    if profile.max_gap_s is not None and profile.max_gap_s <= 0:
        raise ShipmentError("profile: max_gap_s must be positive")
    if bounds is None:
        raise ShipmentError("a profile needs the shipment's product class, known to the rule packs")
    name = bounds.product_class
    if profile.low_c is not None and bounds.low_c is not None and profile.low_c < bounds.low_c:
        raise ShipmentError(
            f"profile low_c {profile.low_c} °C is looser than class {name}'s {bounds.low_c} °C"
        )
    if profile.high_c is not None and bounds.high_c is not None and profile.high_c > bounds.high_c:
        raise ShipmentError(
            f"profile high_c {profile.high_c} °C is looser than class {name}'s {bounds.high_c} °C"
        )
    if (
        profile.max_gap_s is not None
        and bounds.max_gap_s is not None
        and profile.max_gap_s > bounds.max_gap_s
    ):
        raise ShipmentError(
            f"profile max_gap_s {profile.max_gap_s} s is looser than class {name}'s {bounds.max_gap_s} s"
        )


def add_shipment(db: Db, shipment: Shipment, bounds: ClassBounds | None = None) -> bool:
    """Store a new shipment with its legs, stops, lots and profile versions (each checked against its
    class's ``bounds``); False (nothing written) when its id exists. ``ShipmentError`` when it contradicts
    itself or a profile is looser than the class; the database refuses unknown parties, locations, assets
    and lots (foreign keys)."""
    check_shipment(shipment)
    for profile in shipment.profiles:
        check_profile(profile, bounds)
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
        for profile in shipment.profiles:
            cur.execute(q.ADD_PROFILE, {"shipment_id": shipment.shipment_id, **asdict(profile)})
    return True


def add_shipments(db: Db, shipments: Iterable[Shipment], bounds: ClassBounds | None = None) -> int:
    """Store many new shipments as ``add_shipment`` stores each (the same checks, statements and rows), the
    statements sent in batches (psycopg pipelines ``executemany``): a fleet's quarter is hundreds of
    thousands. A shipment whose id exists, or came earlier in `shipments`, is skipped (nothing written for
    it); return how many were stored."""
    wanted: dict[str, Shipment] = {}
    for shipment in shipments:
        check_shipment(shipment)
        for profile in shipment.profiles:
            check_profile(profile, bounds)
        wanted.setdefault(shipment.shipment_id, shipment)
    with _cursor(db) as cur:
        known = {str(r[0]) for r in cur.execute(q.EXISTING_SHIPMENTS, (list(wanted),)).fetchall()}
        new = [s for sid, s in wanted.items() if sid not in known]
        if not new:
            return 0
        cur.executemany(q.INSERT_SHIPMENT, [_fields(s) for s in new])
        legs = [{"shipment_id": s.shipment_id, **_fields(leg)} for s in new for leg in s.legs]
        stops = [(s.shipment_id, n, loc) for s in new for n, loc in enumerate(s.stops, start=1)]
        lots = [(s.shipment_id, lot.lot_id, lot.quantity, lot.uom) for s in new for lot in s.lots]
        profiles = [{"shipment_id": s.shipment_id, **_fields(p)} for s in new for p in s.profiles]
        for query, rows in ((q.INSERT_LEG, legs), (q.INSERT_STOP, stops), (q.INSERT_SHIPMENT_LOT, lots)):
            if rows:
                cur.executemany(query, rows)
        if profiles:
            cur.executemany(q.ADD_PROFILE, profiles)
    return len(new)


def _fields(obj: Any) -> dict[str, Any]:
    """A dataclass's fields by name, not copied (``asdict`` deep-copies every value: the bulk path's cost)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def add_profile(db: Db, shipment_id: str, profile: ShipmentProfile, bounds: ClassBounds | None) -> int | None:
    """Add the next version of a shipment's profile (``profile.version`` is ignored), checked against its
    class's ``bounds``; return the version stored, None when there is no such shipment."""
    check_profile(profile, bounds)
    with _cursor(db) as cur:
        row = cur.execute(q.ADD_PROFILE, {"shipment_id": shipment_id, **asdict(profile)}).fetchone()
    return None if row is None else int(row[0])


def get_shipment(db: Db, shipment_id: str) -> Shipment | None:
    """The shipment with its legs (by number), stops (in order), lots and profile versions; None: unknown."""
    with _cursor(db) as cur:
        row = cur.execute(q.SHIPMENT, (shipment_id,)).fetchone()
        if row is None:
            return None
        legs = tuple(ShipmentLeg(*r) for r in cur.execute(q.LEGS, (shipment_id,)).fetchall())
        stops = tuple(str(r[0]) for r in cur.execute(q.STOPS, (shipment_id,)).fetchall())
        lots = tuple(ShipmentLot(*r) for r in cur.execute(q.LOTS, (shipment_id,)).fetchall())
        profiles = tuple(
            ShipmentProfile(int(r[0]), str(r[1]), r[2], r[3], r[4])
            for r in cur.execute(q.PROFILES, (shipment_id,)).fetchall()
        )
    (sid, through, bl, rail, road, shipper, consignee, cls, origin, dest, start, end, source, closed) = row
    return Shipment(
        sid,
        through,
        bl,
        rail,
        road,
        shipper,
        consignee,
        cls,
        origin,
        dest,
        start,
        end,
        legs=legs,
        stops=stops,
        lots=lots,
        source=source,
        closed_at=closed,
        profiles=profiles,
    )


def shipment_by_documents(
    db: Db,
    *,
    through_document: str | None = None,
    bill_of_lading: str | None = None,
    rail_waybill: str | None = None,
    road_waybill: str | None = None,
) -> tuple[str, str] | None:
    """(shipment_id, source) of the shipment one of these numbers names (its through document first);
    None when none does."""
    return shipments_by_documents(db, [(through_document, bill_of_lading, rail_waybill, road_waybill)])[0]


Documents = tuple[str | None, str | None, str | None, str | None]


def shipments_by_documents(db: Db, documents: Sequence[Documents]) -> list[tuple[str, str] | None]:
    """``shipment_by_documents`` of each (through document, bill of lading, rail waybill, road waybill), in
    one query."""
    if not documents:
        return []
    through, bl, rail, road = (list(column) for column in zip(*documents, strict=True))
    params = {"through": through, "bl": bl, "rail": rail, "road": road}
    found: list[tuple[str, str] | None] = [None] * len(documents)
    with _cursor(db) as cur:
        for n, shipment_id, source in cur.execute(q.SHIPMENTS_BY_DOCUMENTS, params):
            found[int(n) - 1] = (str(shipment_id), str(source))
    return found


def link_lots(db: Db, shipment_id: str, lots: Iterable[ShipmentLot]) -> int:
    """Add lots to a shipment: registered lots only, a lot it carries already unchanged; return how many
    were added."""
    return link_lots_many(db, [(shipment_id, lots)])


def link_lots_many(db: Db, links: Iterable[tuple[str, Iterable[ShipmentLot]]]) -> int:
    """``link_lots`` of each (shipment, lots), the statements sent in one batch; return how many were
    added."""
    rows = []
    for shipment_id, lots in links:
        given = list({lot.lot_id: lot for lot in lots}.values())
        if given:
            rows.append(
                {
                    "shipment_id": shipment_id,
                    "lots": [lot.lot_id for lot in given],
                    "quantities": [lot.quantity for lot in given],
                    "uoms": [lot.uom for lot in given],
                }
            )
    if not rows:
        return 0
    with _cursor(db) as cur:
        cur.executemany(q.LINK_LOTS, rows)
        return max(cur.rowcount, 0)


def add_first_leg(db: Db, shipment_id: str, leg: ShipmentLeg) -> bool:
    """Give a shipment that has no leg its first one; False (nothing changed) when it has a leg."""
    return add_first_legs(db, [(shipment_id, leg)]) > 0


def add_first_legs(db: Db, legs: Iterable[tuple[str, ShipmentLeg]]) -> int:
    """``add_first_leg`` of each (shipment, leg), the statements sent in one batch; return how many
    shipments got their first leg."""
    rows = [{"shipment_id": shipment_id, **asdict(leg)} for shipment_id, leg in legs]
    if not rows:
        return 0
    with _cursor(db) as cur:
        cur.executemany(q.INSERT_FIRST_LEG, rows)
        return max(cur.rowcount, 0)


class ShipmentClosedError(ShipmentError):
    """The shipment is closed already."""


def close_shipment(db: Db, shipment_id: str, at: dt.datetime) -> dt.datetime | None:
    """Close a shipment at ``at``; return the time stored, None when there is no such shipment;
    ``ShipmentClosedError`` when it is closed already (a shipment closes once)."""
    with _cursor(db) as cur:
        row = cur.execute(q.CLOSE_SHIPMENT, {"shipment_id": shipment_id, "at": at}).fetchone()
        if row is not None:
            closed: dt.datetime = row[0]
            return closed
        known = cur.execute(q.CLOSED_AT, (shipment_id,)).fetchone()
    if known is None:
        return None
    raise ShipmentClosedError(f"shipment {shipment_id} is closed already (at {known[0].isoformat()})")


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
