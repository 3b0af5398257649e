"""Stage 3, ledger: events captured from partners' systems at setup, e.g. the shipper's packing event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import psycopg

from traceability.epcis import builders
from traceability.ledger import chain


class PackingRecord(Protocol):
    """A packing as a partner reported it: ``quantity`` ``uom`` of ``lot_id`` packed into ``parent_id``."""

    @property
    def parent_id(self) -> str: ...
    @property
    def lot_id(self) -> str: ...
    @property
    def quantity(self) -> float: ...
    @property
    def uom(self) -> str: ...
    @property
    def event_time_offset_ms(self) -> int: ...
    @property
    def party_id(self) -> str: ...


def packing_event(packing: PackingRecord, *, start_ms: int) -> builders.Event:
    """The AggregationEvent ADD (bizStep packing, parent SSCC, childQuantityList lot) of a packing record.

    The time is ``start_ms + event_time_offset_ms``; the capturing party goes in ``cc:capturedBy``."""
    t = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=start_ms + packing.event_time_offset_ms)
    event = builders.aggregation_event(
        event_time=t,
        action="ADD",
        parent_id=packing.parent_id,
        child_quantities=[builders.quantity(packing.lot_id, packing.quantity, packing.uom)],
        biz_step="packing",
        extensions={"cc:capturedBy": packing.party_id},
    )
    return builders.with_event_id(event)


def append_packing(conn: psycopg.Connection[Any], packing: PackingRecord, *, start_ms: int) -> int:
    """Append the packing event in the caller's transaction (idempotent); return its seq."""
    return chain.append(conn, packing_event(packing, start_ms=start_ms))
