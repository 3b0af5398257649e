"""Tests: capture hashes and canonicalises each event once, and before it takes the ledger's lock (the
lock is held only for the eventID checks and the append). Real PostgreSQL; the counters wrap our own
functions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from traceability import queries
from traceability.epcis import capture, eventhash, jcs
from traceability.epcis.builders import iso_ms
from traceability.ledger import chain

EVENTS = 20
NOW = datetime.now(UTC).replace(microsecond=0)
LOCK_HELD = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = %s)
  AND (classid::bigint << 32) + objid::bigint = %s
"""


def _doc() -> dict[str, Any]:
    events = [
        {
            "type": "ObjectEvent",
            "eventID": f"urn:uuid:0f6e3c1a-0000-4000-8000-{i:012d}",
            "eventTime": iso_ms(NOW - timedelta(minutes=i)),
            "eventTimeZoneOffset": "+00:00",
            "action": "OBSERVE",
            "epcList": [f"urn:epc:id:sscc:6901234.{i:010d}"],
            "bizStep": "receiving",
            "readPoint": {"id": "urn:epc:id:sgln:6901234.00001.3"},
        }
        for i in range(EVENTS)
    ]
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": iso_ms(NOW),
        "epcisBody": {"eventList": events},
    }


def test_each_event_is_hashed_and_canonicalised_once_outside_the_lock(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: Counter[str] = Counter()
    under_lock: Counter[str] = Counter()
    watcher = psycopg.connect(db_url, autocommit=True)
    dbname = watcher.info.dbname

    def counted(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            row = watcher.execute(LOCK_HELD, (dbname, queries.LEDGER_LOCK_KEY)).fetchone()
            if row is not None and row[0]:
                under_lock[name] += 1
            return original(*args, **kwargs)

        return wrapper

    canonical = counted("canonical", jcs.canonical)
    for module in (jcs, chain, capture):
        monkeypatch.setattr(module, "canonical", canonical, raising=False)
    hashed = counted("event_hash", eventhash.event_hash)
    for module in (eventhash, chain, capture):
        monkeypatch.setattr(module, "event_hash", hashed, raising=False)
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            job = capture.capture(conn, _doc(), captured_by="hot-path")
    finally:
        watcher.close()
    assert job.success, job.errors
    assert job.events == EVENTS
    assert calls == Counter({"canonical": EVENTS, "event_hash": EVENTS})
    assert not under_lock, under_lock
