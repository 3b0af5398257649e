"""Stage 3, trace: shipments as they are served: scoped lists, one shipment with the state its ledger events
give it, registering and closing through the registry, and the shipments a lot travelled in.

Every read takes the caller's scope as the query parameters ``{"role": ..., "party": ...}`` and filters
through ``cc_sees_shipment``: a shipment the caller may not see is answered as one that does not exist."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from registry import shipments as registry
from registry.models import ClassBounds, Shipment, ShipmentProfile
from traceability import shipment_queries as q
from traceability.trace_model import ShipmentLegRef, ShipmentRef

Conn = psycopg.Connection[Any]
ScopeParams = Mapping[str, str | None]

# The states a shipment passes through, in order (the view shipment_state, migration 0021).
STATES = ("planned", "in_transit", "arrived", "delivered", "closed")


class ShipmentExistsError(registry.ShipmentError):
    """A shipment with this id, or under one of its documents, is registered already."""


class NotYoursError(registry.ShipmentError):
    """The caller registers a shipment it would not see (a carrier carrying no leg, a shipper neither
    shipping nor receiving it), or one naming a lot or asset it does not see; or it changes a shipment
    it does not own (closing it, adding the shipper's profile)."""


# What a key of a carrier or shipper is told when the id or a document of the shipment it registers is
# taken: the same words whoever holds it and whichever it is, so that the answer names no one's shipment.
TAKEN = "the shipment id or one of its documents is registered already"
# The document kinds (multimodal.DOCUMENT_KINDS) of a shipment's document fields.
_DOCUMENT_FIELDS = (
    ("through", "through_document"),
    ("bl", "bill_of_lading"),
    ("waybill", "rail_waybill"),
    ("road_waybill", "road_waybill"),
)


@dataclass(frozen=True, slots=True)
class Progress:
    """A shipment's state and when it reached each step (from its ledger events; closed_at by hand)."""

    state: str
    departed_at: dt.datetime | None
    arrived_at: dt.datetime | None
    delivered_at: dt.datetime | None
    closed_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class ShipmentView:
    shipment: Shipment
    progress: Progress


@dataclass(frozen=True, slots=True)
class ShipmentSummary:
    shipment_id: str
    through_document: str | None
    bill_of_lading: str | None
    rail_waybill: str | None
    road_waybill: str | None
    shipper_party_id: str | None
    consignee_party_id: str | None
    product_class: str | None
    origin_location_id: str | None
    destination_location_id: str | None
    planned_start: dt.datetime | None
    planned_end: dt.datetime | None
    source: str
    state: str


def list_shipments(
    conn: Conn, scope: ScopeParams, *, state: str | None = None, lot: str | None = None, limit: int = 100
) -> list[ShipmentSummary]:
    """The shipments the caller sees, newest first; only those in ``state`` or carrying ``lot`` if given."""
    rows = conn.execute(q.SHIPMENTS, {**scope, "state": state, "lot": lot, "limit": limit}).fetchall()
    return [ShipmentSummary(*r) for r in rows]


def shipment_view(conn: Conn, shipment_id: str, scope: ScopeParams) -> ShipmentView | None:
    """One shipment with its legs, stops, lots, profile versions and progress; None when it is unknown or
    the caller does not see it."""
    row = conn.execute(q.SHIPMENT_STATE, {**scope, "shipment_id": shipment_id}).fetchone()
    if row is None:
        return None
    found = registry.get_shipment(conn, shipment_id)
    return None if found is None else ShipmentView(found, Progress(*row))


def class_bounds(conn: Conn, product_class: str | None) -> ClassBounds | None:
    """What the class allows as the rules stage published it from its pack; None when no pack has it."""
    if product_class is None:
        return None
    row = conn.execute(q.CLASS_BOUNDS, (product_class,)).fetchone()
    return None if row is None else ClassBounds(str(row[0]), row[1], row[2], row[3])


def register(conn: Conn, shipment: Shipment, scope: ScopeParams) -> None:
    """Register a shipment in one transaction (the caller's, as a savepoint): ``ShipmentError`` when it is
    refused (contradicting itself, a profile looser than its class, a reference to nothing registered),
    ``ShipmentExistsError`` when its id or a document is taken, ``NotYoursError`` when the caller would not
    see it or names a lot or asset it does not see. A key of a carrier or shipper links nothing it does not
    see already (else the link would show it): no lot it does not see, no asset (or container of one) it
    does not see over the leg's planned window, no document another's shipment holds or unseen events name;
    a taken id or document is answered in the same words (``TAKEN``) whose ever it is. Nothing is written
    when it is refused."""
    everything = bool(_one(conn, q.SEES_ALL, scope))
    if not everything:
        _refuse_unseen(conn, shipment, scope)
    bounds = class_bounds(conn, shipment.product_class)
    try:
        with conn.transaction():
            if not registry.add_shipment(conn, shipment, bounds):
                raise ShipmentExistsError(
                    f"shipment {shipment.shipment_id} is registered already" if everything else TAKEN
                )
            if not _one(conn, q.SEES_SHIPMENT, {**scope, "shipment_id": shipment.shipment_id}):
                raise NotYoursError(
                    f"a {scope['role']} key registers only shipments of its own party "
                    "(a carrier: one it carries a leg of; a shipper: one it ships or receives)"
                )
    except psycopg.errors.UniqueViolation:
        raise ShipmentExistsError(
            f"through document {shipment.through_document} belongs to another shipment"
            if everything
            else TAKEN
        ) from None
    except psycopg.errors.ForeignKeyViolation as exc:
        raise registry.ShipmentError(_unknown_reference(exc)) from None


def _one(conn: Conn, query: str, params: Mapping[str, Any]) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def _refuse_unseen(conn: Conn, shipment: Shipment, scope: ScopeParams) -> None:
    """``NotYoursError`` naming the first lot or asset of ``shipment`` the caller does not see (over its
    leg's window), ``ShipmentExistsError`` (``TAKEN``) for a document in use that it does not see."""
    docs = [(kind, getattr(shipment, name)) for kind, name in _DOCUMENT_FIELDS if getattr(shipment, name)]
    legs = [leg for leg in shipment.legs if leg.asset_id or leg.container_number]
    rows = conn.execute(
        q.UNSEEN_REFERENCES,
        {
            **scope,
            "lots": [lot.lot_id for lot in shipment.lots],
            "leg_assets": [leg.asset_id for leg in legs],
            "leg_containers": [leg.container_number for leg in legs],
            "leg_from": [leg.planned_start or shipment.planned_start for leg in legs],
            "leg_to": [leg.planned_end or shipment.planned_end for leg in legs],
            "kinds": [kind for kind, _ in docs],
            "numbers": [number for _, number in docs],
        },
    ).fetchall()
    for what, which in rows:
        if what == "lot":
            raise NotYoursError(f"a {scope['role']} key links only lots it sees; it does not see {which}")
        if what == "asset":
            raise NotYoursError(
                f"a {scope['role']} key puts a leg only on an asset or container it sees over the leg's "
                f"planned window; it does not see {which} so"
            )
    if rows:
        raise ShipmentExistsError(TAKEN)


def _unknown_reference(exc: psycopg.errors.ForeignKeyViolation) -> str:
    """Which field named nothing registered, in words (the database's own text stays out)."""
    table, constraint = exc.diag.table_name or "", exc.diag.constraint_name or ""
    column = constraint.removeprefix(table + "_").removesuffix("_fkey") if constraint else "a reference"
    where = {"shipment_leg": "a leg's ", "shipment_lot": "a lot's ", "shipment_stop": "a stop's "}.get(
        table, ""
    )
    return f"{where}{column} names nothing registered"


def close(conn: Conn, shipment_id: str, at: dt.datetime, scope: ScopeParams) -> dt.datetime | None:
    """Close a shipment the caller sees at ``at``; None when unknown or unseen; ``NotYoursError`` when the
    caller sees it but does not own it (``_owns``); ``ShipmentError`` when it is closed already."""
    if not _sees(conn, shipment_id, scope):
        return None
    _owns(conn, shipment_id, scope, "closes")
    return registry.close_shipment(conn, shipment_id, at)


def add_profile(conn: Conn, shipment_id: str, profile: ShipmentProfile, scope: ScopeParams) -> int | None:
    """Add the next version of the shipper's profile of a shipment the caller sees, checked against its
    class; the version stored, None when unknown or unseen; ``NotYoursError`` when the caller does not
    own it (``_owns``); ``ShipmentError`` when refused."""
    found = registry.get_shipment(conn, shipment_id) if _sees(conn, shipment_id, scope) else None
    if found is None:
        return None
    _owns(conn, shipment_id, scope, "adds a profile to")
    return registry.add_profile(conn, shipment_id, profile, class_bounds(conn, found.product_class))


def _sees(conn: Conn, shipment_id: str, scope: ScopeParams) -> bool:
    return bool(_one(conn, q.SEES_SHIPMENT, {**scope, "shipment_id": shipment_id}))


def _owns(conn: Conn, shipment_id: str, scope: ScopeParams, does: str) -> None:
    """``NotYoursError`` unless the caller may change the shipment as a whole: an operator's or admin's key,
    or one of the shipper's or the consignee's party (q.OWNS_SHIPMENT)."""
    if not _one(conn, q.OWNS_SHIPMENT, {**scope, "shipment_id": shipment_id}):
        raise NotYoursError(f"a {scope['role']} key {does} only a shipment its party ships or receives")


def shipments_of_lot(
    conn: Conn, lot_id: str, scope: ScopeParams, seqs: Sequence[int] = ()
) -> list[ShipmentRef]:
    """The shipments that carried the lot and the caller sees, with their legs and state: those listing
    the lot, and those whose documents one of the lot's ledger events at ``seqs`` names."""
    rows = conn.execute(q.SHIPMENTS_OF_LOT, {**scope, "lot": lot_id, "seqs": list(seqs)}).fetchall()
    if not rows:
        return []
    legs: dict[str, list[ShipmentLegRef]] = {}
    for r in conn.execute(q.LEGS_OF_SHIPMENTS, ([r[0] for r in rows],)).fetchall():
        sid, no, mode, carrier, carrier_name, asset, box, vessel, voyage, train, plate, leaves, reaches = r[
            :13
        ]
        legs.setdefault(sid, []).append(
            ShipmentLegRef(
                no,
                mode,
                carrier,
                carrier_name,
                asset,
                box,
                vessel,
                voyage,
                train,
                plate,
                leaves,
                reaches,
                _utc(r[13]),
                _utc(r[14]),
            )
        )
    return [
        ShipmentRef(
            shipment_id=r[0],
            through_document=r[1],
            bill_of_lading=r[2],
            rail_waybill=r[3],
            road_waybill=r[4],
            origin_location_id=r[5],
            destination_location_id=r[6],
            planned_start=_utc(r[7]),
            planned_end=_utc(r[8]),
            state=r[9],
            quantity=r[10],
            uom=r[11],
            legs=legs.get(r[0], []),
        )
        for r in rows
    ]


def _utc(t: dt.datetime | None) -> dt.datetime | None:
    return None if t is None else t.astimezone(dt.UTC)
