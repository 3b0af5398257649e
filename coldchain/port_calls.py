"""Composition root: the port demo's calls into the import-flow, shipment and access APIs, in one place.

The import-flow events are built by ``traceability.epcis.multimodal``'s builders; the shipment's through
document, B/L and waybills ride as bizTransactions where a step names its shipment's documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from traceability.api import auth
from traceability.epcis import builders, multimodal

Event = builders.Event


def transactions(
    through_document: str,
    *,
    bill_of_lading: str | None = None,
    rail_waybill: str | None = None,
    road_waybill: str | None = None,
) -> list[dict[str, str]]:
    """The bizTransactionList of a shipment's event: its through document, and the step's B/L or waybill."""
    return multimodal.biz_transactions(
        bill_of_lading=bill_of_lading,
        rail_waybill=rail_waybill,
        through_document=through_document,
        road_waybill=road_waybill,
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
    return auth.create_key(conn, role, name, party_id=party_id)
