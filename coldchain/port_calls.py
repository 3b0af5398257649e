"""Composition root: the port demo's calls into the import-flow, shipment and access APIs, in one place.

The import-flow events are built by ``traceability.epcis.multimodal``'s builders; the shipment's through
document, B/L and waybills ride as bizTransactions where a step names its shipment's documents.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def partial_releases(traces: Mapping[str, Mapping[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """The lots released in more than one part, as their traces' import flow states them (the releases
    ``rules.engine.flow.check`` follows): the quantity the covering conformant inspection inspected (None: no
    such inspection, or in another unit), the quantities released in order, and what remains after the last.
    ``traces``: lot → its trace as the API serves it (None: not served)."""
    out: dict[str, dict[str, Any]] = {}
    for lot, trace in traces.items():
        releases = ((trace or {}).get("import_flow") or {}).get("releases") or []
        if len(releases) > 1:
            out[lot] = {
                "inspected": releases[-1]["inspected"],
                "released": [r["quantity"] for r in releases],
                "remaining": releases[-1]["remaining"],
            }
    return out


def party_key(conn: psycopg.Connection[Any], role: str, party_id: str, name: str) -> str:
    """An API key of ``role`` belonging to ``party_id`` (in the caller's transaction); its secret."""
    return auth.create_key(conn, role, name, party_id=party_id)
