"""Tests: numbered storing events and a ledger chain of them, shared by the ledger's test modules."""

from __future__ import annotations

import json
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


# What a superuser runs to serve a jsonb of their own beside the chained bytes (migration 0029): the jsonb
# made a plain column, its values kept and no longer generated from the bytes.
UNBIND_JSON = "ALTER TABLE ledger_event ALTER COLUMN event DROP EXPRESSION"


def stub_entry(conn: psycopg.Connection[Any], seq: int, event_id: str, event_time: datetime) -> None:
    """A bare ledger row, outside any chain (hashes 'h', 'p', 'e'): an ObjectEvent with only its eventID
    and time, for tests of what reads the ledger's rows rather than its chain. Nothing when ``seq`` is
    taken."""
    event = {"eventID": event_id, "eventTime": event_time.isoformat(), "type": "ObjectEvent"}
    conn.execute(
        "INSERT INTO ledger_event (seq, event_id, event_type, event_time, event_hash, prev_hash, entry_hash,"
        " event_jcs) VALUES (%s, %s, 'ObjectEvent', %s, 'h', 'p', 'e', %s) ON CONFLICT DO NOTHING",
        (seq, event_id, event_time, json.dumps(event).encode()),
    )
