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


@pytest.mark.parametrize("catch_up", [capture.SEEN_CATCH_UP, 1])
def test_events_appended_after_the_look_up_are_known_to_the_write(
    db_url: str, monkeypatch: pytest.MonkeyPatch, catch_up: int
) -> None:
    """A document looked up before the lock (as the capture worker does while it appends the document
    before) whose eventIDs then reach the ledger from another capture: the write knows them, under the
    lock, as already captured (same content) or refuses them (other content), whether it reads only what
    was appended since the look-up or, past ``SEEN_CATCH_UP`` of those, every eventID again."""
    monkeypatch.setattr(capture, "SEEN_CATCH_UP", catch_up)
    doc = _doc()
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert capture.write(conn, capture.check(_part(doc, range(0, 5))), captured_by="before") is not None
        later = capture.check(doc)
        capture.look_up(conn, later)
        assert later.seen is not None
        assert len(later.seen.matches) == 5
        head = later.seen.head
        # Another capture appends five more of its events meanwhile.
        other = capture.check(_part(doc, range(5, 10)))
        assert capture.write(conn, other, captured_by="meanwhile") is not None
        job = capture.write(conn, later, captured_by="later")
        assert job is not None
        assert job.success, job
        assert job.events == EVENTS - 10
        assert sorted(a["seq"] for a in job.already_captured) == list(range(head - 4, head + 6))
        ids = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM ledger_event").fetchone()
        assert ids == (EVENTS, EVENTS)  # nothing appended twice

        # The same eventID with other content, appended after the look-up: refused, not appended.
        changed = _doc()
        for e in changed["epcisBody"]["eventList"]:
            e["eventID"] = e["eventID"].replace("-8000-", "-9000-")
        late = capture.check(changed)
        capture.look_up(conn, late)
        assert late.seen is not None
        assert late.seen.matches == []
        first = _part(changed, range(0, 1))
        first["epcisBody"]["eventList"][0] = {**first["epcisBody"]["eventList"][0], "bizStep": "shipping"}
        assert capture.write(conn, capture.check(first), captured_by="meanwhile") is not None
        _refused_as_taken(capture.write(conn, late, captured_by="late"), changed)


@pytest.mark.parametrize("interleaved", [False, True], ids=["only-this-writer", "another-appender-between"])
def test_a_write_knows_what_its_own_writer_appended_since_the_look_up(db_url: str, interleaved: bool) -> None:
    """The capture worker looks a document up while it appends the one before; the write then takes the
    eventIDs appended since from what its writer recorded (``capture.Appended``), or, when another
    appender's entries are among them, from the ledger: either way an eventID appended since the look-up
    is known under the lock (the same content: already captured; other content: refused)."""
    doc = _doc()
    appended = capture.Appended()
    with psycopg.connect(db_url, autocommit=True) as conn:
        first = capture.check(_part(doc, range(0, 5)))
        changed = _part(doc, range(0, 10))
        changed["epcisBody"]["eventList"][0] = {**changed["epcisBody"]["eventList"][0], "bizStep": "shipping"}
        refused_later = capture.check(changed)
        same_later = capture.check(_part(doc, range(0, 10)))
        for later in (refused_later, same_later):
            capture.look_up(conn, later)  # before the first document is appended
            assert later.seen is not None
            assert later.seen.matches == []
        job = capture.write(conn, first, captured_by="first", appended=appended)
        assert job is not None
        assert job.success, job
        if interleaved:  # another appender, without this writer's record
            other = capture.check(_part(doc, range(10, 12)))
            assert capture.write(conn, other, captured_by="other") is not None
        _refused_as_taken(capture.write(conn, refused_later, captured_by="later", appended=appended), doc)
        again = capture.write(conn, same_later, captured_by="later", appended=appended)
        assert again is not None
        assert again.success, again
        assert [a["seq"] for a in again.already_captured] == [1, 2, 3, 4, 5]
        assert again.events == 5
        count = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM ledger_event").fetchone()
        assert count == (12, 12) if interleaved else (10, 10)
