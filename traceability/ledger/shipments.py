"""Stage 3, ledger: shipments that captured events name by their documents, created in the registry.

An event whose bizTransactionList names a through document (一单制, ``multimodal.document_uri("through",
...)``) is about that shipment. When no shipment in the registry carries that through document, nor the
bill of lading or rail waybill the event names beside it, the derivation creates one through the registry
(source ``epcis``, id ``TD-<number>``) with the documents, the registered lots of the event's quantityList
and epcList, and, when the event names a conveyance (``cc:transportMode``), a first leg with it: its mode,
its container (an ISO 6346 ``bic`` EPC), vessel, voyage, train or plate, and the registered party the event
names as possessing party as carrier. Later events naming a shipment created so add the lots they carry, and
the first leg when it has none yet (whether the events came in one capture or several); a shipment created
through the API or the CLI is the shipper's declaration and is left as it is.

The registry is not derived from the ledger: a rederivation finds these shipments there and changes none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from registry import shipments
from registry.models import Shipment, ShipmentLeg, ShipmentLot
from traceability.epcis import multimodal

Conn = psycopg.Connection[Any]

SHIPMENT_ID_PREFIX = "TD-"
BIC_PREFIX = "urn:epc:id:bic:"


@dataclass(slots=True)
class Claim:
    """What one event says of the shipment under a through document."""

    through_document: str
    bill_of_lading: str | None = None
    rail_waybill: str | None = None
    road_waybill: str | None = None
    lots: dict[str, ShipmentLot] = field(default_factory=dict)
    leg: ShipmentLeg | None = None


def claim_of(event: Mapping[str, Any], carrier: str | None) -> Claim | None:
    """The claim of an event naming a through document, None for any other event. ``carrier``: the
    registered party the event names as possessing party, if any."""
    numbers: dict[str, str] = {}
    for bt in event.get("bizTransactionList", ()):
        if isinstance(bt, Mapping) and isinstance(bt.get("bizTransaction"), str):
            found = multimodal.document_number(bt["bizTransaction"])
            if found is not None:
                numbers.setdefault(found[0], found[1])
    if "through" not in numbers:
        return None
    claim = Claim(numbers["through"], numbers.get("bl"), numbers.get("waybill"), numbers.get("road_waybill"))
    for q in event.get("quantityList", ()):
        if isinstance(q, Mapping) and q.get("epcClass"):
            quantity = q.get("quantity")
            claim.lots[str(q["epcClass"])] = ShipmentLot(
                str(q["epcClass"]),
                float(quantity) if isinstance(quantity, int | float) and quantity > 0 else None,
                str(q["uom"]) if q.get("uom") else None,
            )
    epcs = [str(e) for e in event.get("epcList", ())]
    for epc in epcs:
        claim.lots.setdefault(epc, ShipmentLot(epc))
    mode = event.get("cc:transportMode")
    if mode in multimodal.MODES:
        containers = [e.removeprefix(BIC_PREFIX) for e in epcs if e.startswith(BIC_PREFIX)]
        claim.leg = ShipmentLeg(
            1,
            str(mode),
            carrier,
            container_number=containers[0] if containers else None,
            vessel=_text(event.get("cc:vessel")),
            voyage=_text(event.get("cc:voyage")),
            train=_text(event.get("cc:train")),
            truck_plate=_text(event.get("cc:truckPlate")),
        )
    return claim


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None


def merge(claims: Iterable[Claim]) -> list[Claim]:
    """One claim per through document, in the order first named: documents and leg as first given, lots
    added up (the first quantity of a lot kept)."""
    out: dict[str, Claim] = {}
    for c in claims:
        have = out.get(c.through_document)
        if have is None:
            out[c.through_document] = Claim(
                c.through_document, c.bill_of_lading, c.rail_waybill, c.road_waybill, dict(c.lots), c.leg
            )
            continue
        have.bill_of_lading = have.bill_of_lading or c.bill_of_lading
        have.rail_waybill = have.rail_waybill or c.rail_waybill
        have.road_waybill = have.road_waybill or c.road_waybill
        have.leg = have.leg or c.leg
        for lot_id, lot in c.lots.items():
            have.lots.setdefault(lot_id, lot)
    return list(out.values())


def apply(conn: Conn, claims: Iterable[Claim]) -> list[str]:
    """Create the shipments the claims name and no shipment carries yet; add lots, and a first leg when
    they have none, to those the ledger created. Returns the ids created. A shipment another writer
    creates meanwhile under the same documents, or a leg's carrier gone, leaves the append as it is.

    The claims are applied together (one lookup, each statement's rows in one batch, one savepoint): a
    document's claims are often many. Where that cannot give what applying them one by one gives (two
    claims share a document number, so one finds the shipment the other creates; or a write is refused),
    they are applied one by one (``apply_each``)."""
    merged = merge(claims)
    if not merged:
        return []
    if _share_a_number(merged):
        return apply_each(conn, merged)
    try:
        with conn.transaction():
            return _apply_together(conn, merged)
    except (psycopg.errors.UniqueViolation, psycopg.errors.ForeignKeyViolation, _IdTakenError):
        return apply_each(conn, merged)


def apply_each(conn: Conn, claims: Iterable[Claim]) -> list[str]:
    """``apply``, one claim after the other, each write its own savepoint."""
    created: list[str] = []
    for claim in merge(claims):
        found = shipments.shipment_by_documents(
            conn,
            through_document=claim.through_document,
            bill_of_lading=claim.bill_of_lading,
            rail_waybill=claim.rail_waybill,
            road_waybill=claim.road_waybill,
        )
        try:
            with conn.transaction():
                if found is None:
                    new = _new_shipment(claim)
                    if shipments.add_shipment(conn, new):
                        created.append(new.shipment_id)
                        shipments.link_lots(conn, new.shipment_id, claim.lots.values())
                elif found[1] == "epcis":
                    shipments.link_lots(conn, found[0], claim.lots.values())
                    if claim.leg is not None:
                        shipments.add_first_leg(conn, found[0], claim.leg)
        except (psycopg.errors.UniqueViolation, psycopg.errors.ForeignKeyViolation):
            continue  # another writer holds these documents now, or the leg's carrier went: nothing to add
    return created


class _IdTakenError(Exception):
    """A shipment to create has an id that is taken (by a shipment its documents do not name)."""


def _apply_together(conn: Conn, claims: list[Claim]) -> list[str]:
    found = shipments.shipments_by_documents(conn, [_numbers(c) for c in claims])
    unnamed = [c for c, f in zip(claims, found, strict=True) if f is None]
    new = [_new_shipment(c) for c in unnamed]
    if new and shipments.add_shipments(conn, new) != len(new):
        raise _IdTakenError
    ours = [(f[0], c) for c, f in zip(claims, found, strict=True) if f is not None and f[1] == "epcis"]
    links = [(s.shipment_id, c.lots.values()) for s, c in zip(new, unnamed, strict=True)]
    shipments.link_lots_many(conn, links + [(shipment_id, c.lots.values()) for shipment_id, c in ours])
    shipments.add_first_legs(conn, [(shipment_id, c.leg) for shipment_id, c in ours if c.leg is not None])
    return [s.shipment_id for s in new]


def _numbers(claim: Claim) -> shipments.Documents:
    return (claim.through_document, claim.bill_of_lading, claim.rail_waybill, claim.road_waybill)


def _share_a_number(claims: Sequence[Claim]) -> bool:
    """Whether two claims name one document number (of the same kind)."""
    seen: set[tuple[int, str]] = set()
    for claim in claims:
        for kind, number in enumerate(_numbers(claim)):
            if number is not None:
                if (kind, number) in seen:
                    return True
                seen.add((kind, number))
    return False


def _new_shipment(claim: Claim) -> Shipment:
    """The shipment the ledger creates for a claim that names none."""
    return Shipment(
        SHIPMENT_ID_PREFIX + claim.through_document,
        through_document=claim.through_document,
        bill_of_lading=claim.bill_of_lading,
        rail_waybill=claim.rail_waybill,
        road_waybill=claim.road_waybill,
        legs=() if claim.leg is None else (claim.leg,),
        source="epcis",
    )
