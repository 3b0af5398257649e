"""Composition root: the port demo's calls into the import-flow, shipment and access APIs, in one place.

Every event of the import flow the port scenario captures is built here, with the conventions of
``traceability.epcis.multimodal``: per lot (batch) with a quantityList, the shipment's through document
(and the B/L or waybill of the step) as bizTransactions, ``cc:`` extensions for what EPCIS has no field for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg

from traceability.api import auth
from traceability.epcis import builders, multimodal

Event = builders.Event
LotQuantity = tuple[str, float, str]  # (LGTIN of the lot, quantity, UN/ECE rec 20 unit)

BTT_ROAD_WAYBILL = builders.CC_NAMESPACE + "btt/road_waybill"


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
        out.append(
            {
                "type": BTT_ROAD_WAYBILL,
                "bizTransaction": multimodal.document_uri("road_waybill", road_waybill),
            }
        )
    return out


def _lot_event(
    *,
    t: datetime,
    lots: Sequence[LotQuantity],
    biz_step: str,
    disposition: str,
    location: str,
    extensions: Mapping[str, Any],
    txns: Sequence[Mapping[str, str]],
    epcs: Sequence[str] | None = None,
    biz_location: bool = True,
) -> Event:
    event = builders.object_event(
        event_time=t,
        epcs=epcs,
        quantities=[builders.quantity(lot, qty, uom) for lot, qty, uom in lots],
        biz_step=biz_step,
        disposition=disposition,
        read_point=location,
        biz_location=location if biz_location else None,
        extensions=extensions,
    )
    if txns:
        event["bizTransactionList"] = [dict(x) for x in txns]
    return builders.with_event_id(event)


def discharge_event(
    *,
    t: datetime,
    lot: LotQuantity,
    container: str,
    location: str,
    vessel: str | None,
    voyage: str | None,
    txns: Sequence[Mapping[str, str]],
) -> Event:
    """The lot discharged at the port in its container (arriving, ``cc:discharge``)."""
    ext = {**multimodal.conveyance("sea", vessel=vessel, voyage=voyage), "cc:discharge": True}
    return _lot_event(
        t=t,
        lots=[lot],
        epcs=[multimodal.container_epc(container)],
        biz_step="arriving",
        disposition="in_progress",
        location=location,
        extensions=ext,
        txns=txns,
    )


def inspection_event(
    *,
    t: datetime,
    lot: LotQuantity,
    site: str,
    certificates: Sequence[str],
    result: str | None,
    conformant: bool,
    kind: str,
    txns: Sequence[Mapping[str, str]],
) -> Event:
    """An inspection and quarantine result (``kind`` inspection) or a disinfection record (disinfection)."""
    ext: dict[str, Any] = {"cc:inspection": kind, "cc:certificates": list(certificates), "cc:site": site}
    if result:
        ext["cc:result"] = result
    return _lot_event(
        t=t,
        lots=[lot],
        biz_step="inspecting",
        disposition="conformant" if conformant else "non_conformant",
        location=site,
        extensions=ext,
        txns=txns,
    )


def bonded_event(
    *, t: datetime, lot: LotQuantity, location: str, entry: bool, txns: Sequence[Mapping[str, str]]
) -> Event:
    """First-line entry into the bonded zone (``entry``) or a second-line release, with the quantity."""
    status, line = ("bonded", "first") if entry else ("released", "second")
    return _lot_event(
        t=t,
        lots=[lot],
        biz_step="entering_exiting",
        disposition="in_progress",
        location=location,
        extensions={"cc:bondedStatus": status, "cc:customsLine": line},
        txns=txns,
    )


def trace_code_event(
    *, t: datetime, lot: LotQuantity, code: str, site: str, txns: Sequence[Mapping[str, str]]
) -> Event:
    """The first receiving site issues the lot's trace code (首站赋码)."""
    return _lot_event(
        t=t,
        lots=[lot],
        biz_step="encoding",
        disposition="in_progress",
        location=site,
        extensions={"cc:traceCode": code, "cc:site": site},
        txns=txns,
    )


def departure_event(
    *,
    t: datetime,
    lots: Sequence[LotQuantity],
    asset_epc: str,
    location: str,
    conveyance_ext: Mapping[str, Any],
    txns: Sequence[Mapping[str, str]],
) -> Event:
    """The lots leave on a conveyance (departing): the container on a train, a truck on the road."""
    return _lot_event(
        t=t,
        lots=lots,
        epcs=[asset_epc],
        biz_step="departing",
        disposition="in_transit",
        location=location,
        extensions=conveyance_ext,
        txns=txns,
        biz_location=False,
    )


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
