"""Tests: documents written together (``capture.write_group``) end as each written alone would end."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from traceability.epcis import capture
from traceability.epcis.builders import document, iso_ms

NOW = datetime.now(UTC).replace(microsecond=0)
READ_POINT = "urn:epc:id:sgln:6901234.00001.3"
# Three registered places: event k puts pallet k % 2 at place k % 3, so the documents move the same
# pallets between places and the containment derived from one document depends on those before it.
PLACES = [f"urn:epc:id:sgln:6901234.00002.{n}" for n in range(3)]
# A distinct eventID space for each Hypothesis example: the databases keep what earlier examples wrote.
_EXAMPLES = itertools.count()


def _event(space: int, k: int, step: str = "receiving") -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventID": f"urn:uuid:0f6e3c1a-{space:04d}-4000-8000-{k:012d}",
        "eventTime": iso_ms(NOW - timedelta(minutes=10 - k)),
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "epcList": [f"urn:epc:id:sscc:6901234.{space % 1000:03d}{k % 2:07d}"],
        "bizStep": step,
        "readPoint": {"id": READ_POINT},
        "bizLocation": {"id": PLACES[k % 3]},
    }


def _declaration(space: int, k: int) -> dict[str, Any]:
    return {
        **_event(space, k),
        "errorDeclaration": {"declarationTime": iso_ms(NOW), "reason": "incorrect_data"},
    }


def _doc(events: list[dict[str, Any]]) -> dict[str, Any]:
    return document(events, creation_date=NOW)


def _outcome(job: capture.CaptureJob | None) -> dict[str, Any]:
    assert job is not None
    return {k: v for k, v in dataclasses.asdict(job).items() if k != "capture_id"}


LEDGER = (
    "SELECT seq, event_id, event_hash, prev_hash, entry_hash, event_jcs, event FROM ledger_event ORDER BY seq"
)
DERIVED = (
    "SELECT subject_id, seq, role FROM event_subject ORDER BY 1, 2, 3",
    "SELECT child_id, parent_id, location_id, t0, t1, start_seq, end_seq FROM containment ORDER BY 1, 4, 6",
    "SELECT epc, custodian, location_id, asset_id, t_start, t_end, start_seq, end_seq FROM custody_leg"
    " ORDER BY 1, 5, 7",
)


def _state(conn: psycopg.Connection[Any]) -> list[list[tuple[Any, ...]]]:
    return [conn.execute(q).fetchall() for q in (LEDGER, *DERIVED)]


# An item of a document: event k (its content one of two), or, less often, the errorDeclaration of event k
# (of one not in the ledger either: the document is refused).
_items = st.lists(
    st.tuples(
        st.sampled_from(["event", "event", "event", "event", "declare"]),
        st.integers(0, 3),
        st.sampled_from(["receiving", "receiving", "shipping"]),
    ),
    min_size=1,
    max_size=4,
)


def _made(space: int, items: list[tuple[str, int, str]]) -> dict[str, Any]:
    """The document of ``_items``: each event of this example's space, or the declaration of one."""
    return _doc(
        [_declaration(space, k) if kind == "declare" else _event(space, k, step) for kind, k, step in items]
    )


def _before(conn: psycopg.Connection[Any], earlier: dict[str, Any]) -> None:
    """The places, and what the ledger holds before the documents under test."""
    for place in PLACES:
        conn.execute(
            "INSERT INTO location (location_id, name, kind) VALUES (%s, 'Store', 'cold_store')"
            " ON CONFLICT DO NOTHING",
            (place,),
        )
    capture.write(conn, capture.check(earlier, now=NOW), captured_by="earlier")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(_items, min_size=2, max_size=3), earlier=_items)
def test_a_group_ends_as_its_documents_written_alone(
    db_url: str,
    second_db_url: str,
    docs: list[list[tuple[str, int, str]]],
    earlier: list[tuple[str, int, str]],
) -> None:
    """Documents sharing eventIDs with each other and with the ledger (the same content: already
    captured; other content: refused; declarations of events in the ledger, in a document before, or
    nowhere): written as one group, every job and every row of the ledger and of the derived tables is
    what writing them one by one, in order, gives. A group with any refusal is written one by one."""
    space = next(_EXAMPLES)

    with (
        psycopg.connect(db_url, autocommit=True) as grouped,
        psycopg.connect(second_db_url, autocommit=True) as alone,
    ):
        for conn in (grouped, alone):
            _before(conn, _made(space, earlier))
        together = capture.write_group(
            grouped, [(capture.check(_made(space, d), now=NOW), "t") for d in docs]
        )
        one_by_one = [
            capture.write(alone, capture.check(_made(space, d), now=NOW), captured_by="t") for d in docs
        ]
        assert [_outcome(j) for j in together] == [_outcome(j) for j in one_by_one]
        assert _state(grouped) == _state(alone)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(_items, min_size=1, max_size=3), earlier=_items)
def test_a_document_appended_without_a_lookup_ends_as_one_looked_up_first(
    db_url: str,
    second_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    docs: list[list[tuple[str, int, str]]],
    earlier: list[tuple[str, int, str]],
) -> None:
    """A document's eventIDs are not looked up before its append (an eventID the ledger holds is found by
    its unique index, and the document written again with them looked up): every job and every row ends
    as when every eventID is looked up first, whatever the documents share with the ledger and each other
    (the same content, other content, declarations of events held, earlier or nowhere)."""
    space = next(_EXAMPLES)
    entries_of = capture._entries_of

    def written(conn: psycopg.Connection[Any], looked_up: bool) -> list[dict[str, Any]]:
        with monkeypatch.context() as m:
            if looked_up:
                m.setattr(capture, "_entries_of", lambda c, p, everything, probes=(): entries_of(c, p, True))
            jobs = [
                capture.write(conn, capture.check(_made(space, d), now=NOW), captured_by="t") for d in docs
            ]
        return [_outcome(j) for j in jobs]

    with (
        psycopg.connect(db_url, autocommit=True) as unlooked,
        psycopg.connect(second_db_url, autocommit=True) as looked_up,
    ):
        for conn in (unlooked, looked_up):
            _before(conn, _made(space, earlier))
        assert written(unlooked, False) == written(looked_up, True)
        assert _state(unlooked) == _state(looked_up)


def _capturable(space: int) -> list[dict[str, Any]]:
    """Three documents, the second repeating an event of the first and declaring another wrong."""
    return [
        _doc([_event(space, 0), _event(space, 1)]),
        _doc([_event(space, 1), _event(space, 2), _declaration(space, 0)]),
        _doc([_event(space, 3)]),
    ]


def test_a_group_is_one_transaction(db_url: str) -> None:
    """Capturable documents written together are one transaction: their entries and their jobs' rows
    were all written by it; each job has its own seqs, the repeated event already captured."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        jobs = capture.write_group(conn, [(capture.check(d, now=NOW), "t") for d in _capturable(900)])
        assert [(j.success, j.events, j.first_seq, j.last_seq) for j in jobs if j is not None] == [
            (True, 2, 1, 2),
            (True, 2, 3, 4),
            (True, 1, 5, 5),
        ]
        assert jobs[1] is not None
        assert jobs[1].already_captured == [{"eventID": _event(900, 1)["eventID"], "seq": 2}]
        writers = conn.execute(
            "SELECT count(DISTINCT xmin::text) FROM (SELECT xmin FROM ledger_event"
            " UNION ALL SELECT xmin FROM capture_job WHERE capture_id = ANY(%s)) w",
            ([j.capture_id for j in jobs if j is not None],),
        ).fetchone()
        assert writers == (1,)


def test_a_document_refused_by_the_database_is_refused_alone(db_url: str) -> None:
    """The database refuses an event of the second document only (a constraint added since): the group is
    rolled back, the first and third documents are appended as written alone, the second refused with
    the constraint named."""
    docs = _capturable(901)
    second = docs[1]["epcisBody"]["eventList"][1]["eventID"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        refuse = sql.SQL("ALTER TABLE ledger_event ADD CONSTRAINT no_such_event CHECK (event_id <> {})")
        conn.execute(refuse.format(sql.Literal(second)))
        jobs = capture.write_group(conn, [(capture.check(d, now=NOW), "t") for d in docs])
        assert [(j.success, j.events, j.first_seq) for j in jobs if j is not None] == [
            (True, 2, 1),
            (False, 0, None),
            (True, 1, 3),
        ]
        assert jobs[1] is not None
        assert jobs[1].errors == [
            {
                "path": "/epcisBody/eventList",
                "message": "rejected by the database (constraint no_such_event)",
            }
        ]
        assert conn.execute("SELECT count(*) FROM ledger_event").fetchone() == (3,)


@pytest.mark.parametrize("held", [0, 2])
def test_a_job_another_worker_holds_is_left_to_it(db_url: str, held: int) -> None:
    """Queued jobs written together while another worker holds one of them: that job is not finished
    here (None), the others are, as alone."""
    docs = [_doc([_event(902 + held, k)]) for k in range(3)]
    with psycopg.connect(db_url, autocommit=True) as conn, psycopg.connect(db_url) as other:
        queued = [capture.enqueue(conn, msgspec.json.encode(d), captured_by="t") for d in docs]
        other.execute(
            "SELECT 1 FROM capture_job WHERE capture_id = %s FOR UPDATE", (queued[held].capture_id,)
        )
        checked = [
            capture.check(d, capture_id=q.capture_id, now=NOW) for d, q in zip(docs, queued, strict=True)
        ]
        jobs = capture.write_group(conn, [(c, "t") for c in checked], queued=True)
        assert [j is None for j in jobs] == [i == held for i in range(3)]
        assert all(j.success for j in jobs if j is not None)
        other.rollback()
