"""Composition root: the port demo's calls into the import-flow, shipment and access APIs, in one place.

The import-flow events are built per batch (lot, quantityList) with the fields and ``cc:`` extensions of
``traceability.epcis.multimodal``'s conventions (``discharge``, ``inspection_result``, ``disinfection``,
``trace_code_issue``, ``first_line_entry``, ``second_line_release``, ``onward``, with those builders'
signatures); the shipment's through document, B/L and waybills ride as bizTransactions where a step names
its shipment's documents.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg

from traceability.api import auth
from traceability.epcis import builders, multimodal

Event = builders.Event

BTT_ROAD_WAYBILL = builders.CC_NAMESPACE + "btt/road_waybill"
DISCHARGE_KEY = "cc:discharge"
INSPECTION_KEY = "cc:inspection"
RESULT_KEY = "cc:result"
CERTIFICATES_KEY = "cc:certificates"
SITE_KEY = "cc:site"
DISINFECTION_REQUIRED_KEY = "cc:disinfectionRequired"
TRACE_CODE_KEY = "cc:traceCode"


def transactions(
    through_document: str,
    *,
    bill_of_lading: str | None = None,
    rail_waybill: str | None = None,
    road_waybill: str | None = None,
) -> list[dict[str, str]]:
    """The bizTransactionList of a shipment's event: its through document, and the step's B/L or waybill."""
    out = multimodal.biz_transactions(
        bill_of_lading=bill_of_lading, rail_waybill=rail_waybill, through_document=through_document
    )
    if road_waybill:
        uri = multimodal.document_uri("road_waybill", road_waybill)
        out.append({"type": BTT_ROAD_WAYBILL, "bizTransaction": uri})
    return out


def _batch(lot: str, quantity: float | None, uom: str | None) -> list[dict[str, Any]]:
    if quantity is not None and quantity <= 0:
        raise ValueError(f"quantity of {lot} must be positive, not {quantity}")
    return [builders.quantity(lot, quantity, uom)]


def _with(event: Event, txns: Sequence[Mapping[str, str]]) -> Event:
    if txns:
        event["bizTransactionList"] = [dict(x) for x in txns]
    return event


def discharge(
    *,
    t: datetime,
    lot: str,
    quantity: float | None = None,
    uom: str | None = None,
    location: str,
    container: str | None = None,
    vessel: str | None = None,
    voyage: str | None = None,
    transactions: Sequence[Mapping[str, str]] = (),
) -> Event:
    """The batch discharged at the port (its arrival): bizStep arriving, ``cc:discharge``."""
    ext: dict[str, Any] = {DISCHARGE_KEY: " ".join(v for v in (vessel, voyage) if v) or "port"}
    ev = builders.object_event(
        event_time=t,
        epcs=[multimodal.container_epc(container)] if container else [],
        quantities=_batch(lot, quantity, uom),
        biz_step="arriving",
        disposition="in_progress",
        read_point=location,
        biz_location=location,
        extensions=ext,
    )
    if not container:
        ev.pop("epcList", None)
    return builders.with_event_id(_with(ev, transactions))


def inspection_result(
    *,
    t: datetime,
    lot: str,
    quantity: float,
    uom: str | None = None,
    conformant: bool,
    certificates: Sequence[str],
    site: str,
    location: str,
    disinfection_required: bool = False,
) -> Event:
    """The inspection and quarantine result of a batch: the quantity inspected, its certificates, its site."""
    result = "conformant" if conformant else "non_conformant"
    ext: dict[str, Any] = {
        INSPECTION_KEY: "inspection",
        RESULT_KEY: result,
        CERTIFICATES_KEY: [str(c) for c in certificates],
        SITE_KEY: site,
    }
    if disinfection_required:
        ext[DISINFECTION_REQUIRED_KEY] = True
    ev = builders.object_event(
        event_time=t,
        quantities=_batch(lot, quantity, uom),
        biz_step="inspecting",
        disposition=result,
        read_point=location,
        biz_location=location,
        extensions=ext,
    )
    return builders.with_event_id(ev)


def disinfection(
    *,
    t: datetime,
    lot: str,
    quantity: float | None = None,
    uom: str | None = None,
    site: str,
    location: str,
    certificates: Sequence[str] = (),
) -> Event:
    """The disinfection record of a batch (done once, at `site`)."""
    ext: dict[str, Any] = {INSPECTION_KEY: "disinfection", SITE_KEY: site}
    if certificates:
        ext[CERTIFICATES_KEY] = [str(c) for c in certificates]
    ev = builders.object_event(
        event_time=t,
        quantities=_batch(lot, quantity, uom),
        biz_step="inspecting",
        disposition="conformant",
        read_point=location,
        biz_location=location,
        extensions=ext,
    )
    return builders.with_event_id(ev)


def trace_code_issue(*, t: datetime, lot: str, code: str, site: str, location: str) -> Event:
    """The first receiving site (首站) issuing the batch's trace code, which the public scan page resolves."""
    if not code or not code.isascii() or not all(c.isalnum() or c in "-_." for c in code):
        raise ValueError(f"trace code {code!r}: letters, digits, '-', '_' and '.' only")
    ev = builders.object_event(
        event_time=t,
        quantities=[builders.quantity(lot)],
        biz_step="commissioning",
        disposition="active",
        read_point=location,
        biz_location=location,
        extensions={TRACE_CODE_KEY: code, SITE_KEY: site},
    )
    return builders.with_event_id(ev)


def _customs_line(
    t: datetime, lot: str, quantity: float, uom: str | None, status: str, line: str, location: str
) -> Event:
    ev = builders.object_event(
        event_time=t,
        quantities=_batch(lot, quantity, uom),
        biz_step="entering_exiting",
        disposition="in_progress",
        read_point=location,
        extensions={"cc:bondedStatus": status, "cc:customsLine": line},
    )
    return builders.with_event_id(ev)


def first_line_entry(
    *, t: datetime, lot: str, quantity: float, uom: str | None = None, location: str
) -> Event:
    """First-line entry of a batch into the bonded zone (status bonded), with the quantity entering."""
    return _customs_line(t, lot, quantity, uom, "bonded", "first", location)


def second_line_release(
    *, t: datetime, lot: str, quantity: float, uom: str | None = None, location: str
) -> Event:
    """Second-line release of (part of) a batch (status released), with the quantity released."""
    return _customs_line(t, lot, quantity, uom, "released", "second", location)


def onward(
    *,
    t: datetime,
    lot: str,
    quantity: float | None = None,
    uom: str | None = None,
    location: str,
    conveyance_ext: Mapping[str, Any],
    transactions: Sequence[Mapping[str, str]] = (),
) -> Event:
    """The batch leaving onward (departing by sea-rail train or truck) after its release."""
    ev = builders.object_event(
        event_time=t,
        quantities=_batch(lot, quantity, uom),
        biz_step="departing",
        disposition="in_transit",
        read_point=location,
        extensions=dict(conveyance_ext),
    )
    ev.pop("epcList", None)
    return builders.with_event_id(_with(ev, transactions))


def partial_releases(rows: Sequence[Sequence[Any]]) -> dict[str, dict[str, Any]]:
    """The lots released in more than one part: quantity inspected conformant, the quantities released (in
    ledger order) and what remains. ``rows``: (lot, quantity, cc:inspection, disposition, cc:customsLine)
    of the ledger's inspection and second-line release events, in ledger order."""
    inspected: dict[str, float] = {}
    released: dict[str, list[float]] = {}
    for lot, quantity, inspection, disposition, line in rows:
        if inspection == "inspection" and disposition == "conformant":
            inspected[lot] = inspected.get(lot, 0.0) + float(quantity or 0.0)
        elif line == "second":
            released.setdefault(lot, []).append(float(quantity or 0.0))
    return {
        lot: {
            "inspected": inspected.get(lot, 0.0),
            "released": parts,
            "remaining": inspected.get(lot, 0.0) - sum(parts),
        }
        for lot, parts in released.items()
        if len(parts) > 1
    }


def party_key(conn: psycopg.Connection[Any], role: str, party_id: str, name: str) -> str:
    """An API key of ``role`` belonging to ``party_id`` (in the caller's transaction); its secret."""
    create: Callable[..., str] = auth.create_key
    return create(conn, role, name, party_id=party_id)
