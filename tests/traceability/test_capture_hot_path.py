"""Tests: capture hashes and canonicalises each event once, and before it takes the ledger's lock (the
lock is held only for the eventID checks and the append). Real PostgreSQL; the counters wrap our own
functions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import pq

from traceability import queries
from traceability.epcis import capture, eventhash, jcs
from traceability.epcis.builders import iso_ms
from traceability.ledger import chain

EVENTS = 20
NEW_ID = "urn:uuid:0f6e3c1a-0000-4000-8000-999999999999"
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


def _refused_as_taken(job: capture.CaptureJob | None, doc: dict[str, Any]) -> None:
    """The job was refused for its first event's eventID, taken by an event with other content."""
    assert job is not None
    assert not job.success
    event_id = doc["epcisBody"]["eventList"][0]["eventID"]
    assert job.errors == [
        {
            "path": "/epcisBody/eventList/0/eventID",
            "message": f"eventID {event_id!r} is taken by an event with other content",
        }
    ]


def _part(doc: dict[str, Any], keep: range) -> dict[str, Any]:
    events = doc["epcisBody"]["eventList"]
    return {**doc, "epcisBody": {"eventList": [events[i] for i in keep]}}


def test_a_document_is_appended_without_its_event_ids_looked_up(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new document's eventIDs are not looked up (but its first and last event's): its append goes out
    at once. A document holding eventIDs the ledger holds is refused by the ledger's unique index (or
    before its append, when its first or last event is one), rolled back and written again with every
    eventID looked up: the same content is already captured, other content refused, and nothing is
    appended twice."""
    asked: list[bool] = []
    entries_of = capture._entries_of

    def recorded(conn: Any, prepared: Any, everything: bool, probes: Any = ()) -> Any:
        asked.append(everything)
        return entries_of(conn, prepared, everything, probes)

    monkeypatch.setattr(capture, "_entries_of", recorded)
    doc = _doc()
    with psycopg.connect(db_url, autocommit=True) as conn:
        first = capture.write(conn, capture.check(_part(doc, range(5, 10))), captured_by="first")
        assert first is not None
        assert first.success, first
        assert asked == [False]
        asked.clear()
        # Events held in the middle only: the append goes out and the unique index refuses it.
        again = capture.write(conn, capture.check(doc), captured_by="again")
        assert again is not None
        assert again.success, again
        assert asked == [False, True]  # refused by the index, then every eventID looked up
        assert again.events == EVENTS - 5
        assert [a["seq"] for a in again.already_captured] == [1, 2, 3, 4, 5]
        assert (again.first_seq, again.last_seq) == (6, EVENTS)
        asked.clear()
        changed = _part(doc, range(0, 10))
        changed["epcisBody"]["eventList"][0] = {**changed["epcisBody"]["eventList"][0], "bizStep": "shipping"}
        _refused_as_taken(capture.write(conn, capture.check(changed), captured_by="changed"), changed)
        assert asked == [False, True]  # its first eventID held: looked up before any append
        count = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM ledger_event").fetchone()
        assert count == (EVENTS, EVENTS)
        jobs = conn.execute("SELECT count(*) FROM capture_job").fetchone()
        assert jobs == (3,)  # each job recorded once, the one rolled back too


@pytest.mark.parametrize("group", [False, True])
def test_a_document_sent_again_is_found_before_its_append(db_url: str, tmp_path: Path, group: bool) -> None:
    """A document sent again (its first and last events are in the ledger) is written with its eventIDs
    looked up, with no append for the ledger's unique index to refuse: the server answers no error (the
    client library's trace of the wire), and the job reports every event as captured before."""
    doc = _doc()
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert capture.capture(conn, doc, captured_by="first").success
        trace = tmp_path / "libpq.trace"
        with trace.open("w") as out:
            conn.pgconn.trace(out.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
            try:
                if group:  # with a new document after it: the group is written alone, each looked up
                    other = _part(_doc(), range(0, 0))
                    other["epcisBody"]["eventList"] = [
                        {**doc["epcisBody"]["eventList"][0], "eventID": NEW_ID}
                    ]
                    jobs = capture.write_group(
                        conn, [(capture.check(doc), "again"), (capture.check(other), "other")]
                    )
                else:
                    jobs = [capture.write(conn, capture.check(doc), captured_by="again")]
            finally:
                conn.pgconn.untrace()
        wire = trace.read_text()
        assert "ErrorResponse" not in wire
        assert "ledger_event" in wire  # the trace did see the capture's statements
        again = jobs[0]
        assert again is not None
        assert again.success, again
        assert again.events == 0
        assert [a["seq"] for a in again.already_captured] == list(range(1, EVENTS + 1))
        if group:
            assert jobs[1] is not None
            assert (jobs[1].events, jobs[1].first_seq) == (1, EVENTS + 1)
        count = conn.execute("SELECT count(*) FROM ledger_event").fetchone()
        assert count == (EVENTS + group,)
