"""Tests: numbered storing events and a ledger chain of them, shared by the ledger's test modules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from traceability.epcis import builders
from traceability.ledger import chain

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def numbered_event(i: int) -> dict[str, Any]:
    """The i-th storing event of one pallet per i, a minute apart from T0."""
    return builders.object_event(
        event_time=T0 + timedelta(minutes=i),
        epcs=[f"urn:epc:id:sscc:6901234.{i:010d}"],
        biz_step="storing",
        disposition="in_progress",
        read_point="urn:epc:id:sgln:6901234.00001.1",
    )


def append_numbered(conn: psycopg.Connection[Any], n: int) -> list[int]:
    """Append events 1..n; their seqs."""
    return [chain.append(conn, numbered_event(i)) for i in range(1, n + 1)]
