"""Tests: ledger append/verify on a real PostgreSQL; the append-only trigger; event times; batch append."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_support import T0, append_numbered, numbered_event
from psycopg import sql

from traceability.epcis import builders, validation
from traceability.epcis.eventhash import event_hash
from traceability.ledger import chain, derive, verify


def test_append_links_entries_and_verify_passes(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        assert append_numbered(conn, 4) == [1, 2, 3, 4]
        conn.commit()
        rows = conn.execute(
            "SELECT seq, event_id, event, event_hash, prev_hash, entry_hash, event_type, biz_step, event_jcs"
            " FROM ledger_event ORDER BY seq"
        ).fetchall()
        prev = "0" * 64
        for seq, event_id, event, ev_hash, prev_hash, entry, event_type, biz_step, jcs in rows:
            assert ev_hash == event_hash(numbered_event(seq)) == event_id == event["eventID"]
            assert ev_hash.startswith("ni:///sha-256;")
            assert ev_hash.endswith("?ver=CBV2.0")
            assert prev_hash == prev
            # The chained bytes are the RFC 8785 form of the stored event, and the served jsonb is them.
            assert bytes(jcs) == rfc8785.dumps(event)
            digest = hashlib.sha256(bytes(jcs)).digest()
            assert entry == hashlib.sha256(bytes.fromhex(prev) + ev_hash.encode() + digest).hexdigest()
            assert (event_type, biz_step) == ("ObjectEvent", "storing")
            prev = entry
        assert verify.verify(conn) == verify.VerifyResult(ok=True, events=4, first_bad_seq=None)
        assert verify.verify(conn, deep=True) == verify.VerifyResult(ok=True, events=4, first_bad_seq=None)
        assert verify.jcs_constraint_intact(conn)
        assert chain.head_seq(conn) == 4


def test_empty_ledger_verifies(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        assert verify.verify(conn) == verify.VerifyResult(ok=True, events=0, first_bad_seq=None)
        assert chain.head_seq(conn) is None


def test_append_is_idempotent_on_event_id(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        first = chain.append(conn, numbered_event(1))
        again = chain.append(conn, numbered_event(1))
        explicit = {**numbered_event(2), "eventID": "urn:uuid:7b0e2c3a-0000-4000-8000-000000000001"}
        second = chain.append(conn, explicit)
        assert chain.append(conn, {**explicit, "bizStep": "receiving"}) == second  # same eventID: kept
        conn.commit()
        assert (first, again, second) == (1, 1, 2)
        assert conn.execute("SELECT count(*) FROM ledger_event").fetchone() == (2,)
        assert verify.verify(conn).ok


@pytest.mark.parametrize(
    ("table", "columns", "row"),
    [
        ("event_subject", "(subject_id, seq, role)", ("urn:epc:id:sscc:6901234.0000000099", 2, "epc")),
        ("biz_transaction", "(biz_transaction, type, seq)", ("urn:epcglobal:cbv:bt:1:2", "bol", 7)),
        ("lineage", "(input_id, output_id, seq, event_time)", ("a", "b", 9, T0)),
        ("containment", "(child_id, location_id, t0, start_seq, parent_id)", ("c", None, T0, 5, "p")),
    ],
)
def test_derived_rows_must_name_ledger_seqs(
    conn: psycopg.Connection[Any], table: str, columns: str, row: tuple[Any, ...]
) -> None:
    """The derived tables' seqs are checked once per statement (migration 0005): a row naming a seq that
    is not in the ledger is refused, by INSERT, COPY or UPDATE alike; one naming a ledger seq is kept."""
    assert append_numbered(conn, 1) == [1]
    count = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
    before = conn.execute(count).fetchone()
    insert = sql.SQL("INSERT INTO {} {} VALUES ({})").format(
        sql.Identifier(table), sql.SQL(columns), sql.SQL(", ").join(sql.Placeholder() * len(row))
    )
    copy = sql.SQL("COPY {} {} FROM STDIN").format(sql.Identifier(table), sql.SQL(columns))
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="is not a seq of the ledger"):
        conn.execute(insert, row)
    with pytest.raises(psycopg.errors.ForeignKeyViolation), conn.cursor() as cur, cur.copy(copy) as cp:
        cp.write_row(row)
    assert conn.execute(count).fetchone() == before
    seq_column = "start_seq" if table == "containment" else "seq"
    names = [c.strip() for c in columns[1:-1].split(",")]
    conn.execute(insert, tuple(1 if c == seq_column else v for c, v in zip(names, row, strict=True)))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute(
            sql.SQL("UPDATE {} SET {} = 42").format(sql.Identifier(table), sql.Identifier(seq_column))
        )
    assert before is not None
    assert conn.execute(count).fetchone() == (before[0] + 1,)


@pytest.mark.parametrize(
    ("seqs", "refused"),
    [([1, 2, 3], None), ([1, 0, 2], 0), ([2, 4, 1], 4), ([-5], -5), ([3, 3], None)],
)
def test_a_statement_naming_one_seq_outside_the_ledger_is_refused(
    conn: psycopg.Connection[Any], seqs: list[int], refused: int | None
) -> None:
    """The seqs of a whole statement are checked against the ledger's range (migration 0028): one seq
    below 1 or past the head among good ones refuses the statement, naming it."""
    assert append_numbered(conn, 3) == [1, 2, 3]
    rows = [(f"urn:example:subject:{n}", seq, "epc") for n, seq in enumerate(seqs)]
    insert = (
        "INSERT INTO event_subject (subject_id, seq, role)"
        " SELECT * FROM unnest(%s::text[], %s::int8[], %s::text[])"
    )
    args = ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    if refused is None:
        conn.execute(insert, args)
        return
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match=f"event_subject.seq = {refused} is not"):
        conn.execute(insert, args)


def test_append_refuses_invalid_events(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        with pytest.raises(validation.InvalidEventError):
            chain.append(conn, {**numbered_event(1), "action": "SHOUT"})
        assert conn.execute("SELECT count(*) FROM ledger_event").fetchone() == (0,)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_event SET biz_step = 'shipping' WHERE seq = 1",
        "DELETE FROM ledger_event WHERE seq = 2",
        "TRUNCATE ledger_event CASCADE",
    ],
)
def test_trigger_refuses_changes(db_url: str, statement: str) -> None:
    with psycopg.connect(db_url) as conn:
        append_numbered(conn, 2)
        conn.commit()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(statement)
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM ledger_event").fetchone() == (2,)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)),
    st.text("0123456789", min_size=1, max_size=12),
    st.sampled_from(["Z", "+08:00", "-03:30"]),
)
def test_event_time_reads_as_postgresql_reads_it(
    conn: psycopg.Connection[Any], t: datetime, digits: str, offset: str
) -> None:
    """RFC 3339 allows any number of fraction digits: the ledger's event_time (parse_time) is the instant the
    database reads from the same text (the CHECK compares them), rounding included."""
    text = f"{t:%Y-%m-%dT%H:%M:%S}.{digits}{offset}"
    row = conn.execute("SELECT %s::text::timestamptz", (text,)).fetchone()
    assert row is not None
    assert row[0] == builders.parse_time(text)


def test_event_time_beyond_microseconds_is_appended(db_url: str) -> None:
    event = {**numbered_event(1), "eventTime": "2026-03-01T00:00:59.9999996Z"}
    with psycopg.connect(db_url) as conn:
        assert chain.append(conn, event) == 1
        row = conn.execute("SELECT event_time FROM ledger_event").fetchone()
        assert row == (datetime(2026, 3, 1, 0, 1, tzinfo=UTC),)
        assert verify.verify(conn, deep=True).ok


@pytest.mark.parametrize(
    "change",
    [{"readPoint": "x"}, {"epcList": 5}, {"destinationList": 3}, {"bizLocation": []}],
)
def test_malformed_event_is_refused_before_anything(db_url: str, change: dict[str, Any]) -> None:
    """An event the schema refuses raises InvalidEventError (never a crash of the code reading it), before
    the ledger lock is taken in the caller's transaction."""
    with psycopg.connect(db_url) as conn:
        with pytest.raises(validation.InvalidEventError):
            chain.append(conn, {**numbered_event(1), **change})
        with pytest.raises(validation.InvalidEventError):
            chain.append_many(conn, [numbered_event(2), {**numbered_event(3), **change}])
        held = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        ).fetchone()
        assert held == (0,)
        assert conn.execute("SELECT count(*) FROM ledger_event").fetchone() == (0,)


def _derived(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """The derived tables without their identity columns, sorted."""
    queries = {
        "containment": "SELECT child_id, parent_id, location_id, t0, t1, start_seq, end_seq FROM containment",
        "custody_leg": "SELECT epc, custodian, location_id, asset_id, t_start, t_end, start_seq, end_seq"
        " FROM custody_leg",
        "event_subject": "SELECT subject_id, seq, role FROM event_subject",
        "ledger": "SELECT seq, event_id, declares_error, biz_step FROM ledger_event",
    }
    return {k: sorted(conn.execute(q).fetchall(), key=repr) for k, q in queries.items()}  # type: ignore[arg-type]


def test_batch_append_is_appending_one_by_one(db_url: str) -> None:
    """One batch with an event twice, an event without eventID twice (the same by its hash), an aggregation
    and an errorDeclaration gets the seqs and derived rows that appending its events one by one gets."""
    a = builders.with_event_id(numbered_event(1))
    b = numbered_event(2)  # no eventID: its hash becomes one
    pallet = "urn:epc:id:sscc:6901234.9999999999"
    aggregation = builders.aggregation_event(
        event_time=T0 + timedelta(minutes=3), action="ADD", parent_id=pallet, child_epcs=a["epcList"]
    )
    declaration = {
        **a,
        "errorDeclaration": {"declarationTime": "2026-03-02T00:00:00.000Z", "reason": "incorrect_data"},
    }
    events = [a, a, b, dict(b), aggregation, declaration, numbered_event(4)]
    with psycopg.connect(db_url) as conn:
        chain.append(conn, numbered_event(9))  # an entry before the batch, kept by both runs
        conn.commit()
        one_by_one = [chain.append(conn, e) for e in events]
        expected = _derived(conn)
        assert expected["containment"]
        assert expected["custody_leg"]
        conn.rollback()
        assert chain.append_many(conn, events) == one_by_one == [2, 2, 3, 3, 4, 5, 6]
        assert _derived(conn) == expected
        assert chain.append_many(conn, events) == one_by_one  # all known now: nothing appended
        assert _derived(conn) == expected
        conn.rollback()


def test_the_derivation_of_a_batch_pauses_to_send_the_rows_on(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the server inserts a batch's entries, the append derives the batch's rows and every
    ``derive.PAUSE_EVERY`` events lets the connection send on the COPY rows it holds (its flush: 0 once it
    holds none, 1 while the socket takes no more); the batch ends as appending one by one does."""
    answers: list[int] = []
    run = derive.Derivation.run

    def observed(self: derive.Derivation, pause: Callable[[], object] | None = None) -> None:
        assert pause is not None, "the append's derivation is given the connection's flush"

        def flush() -> None:
            answers.append(int(pause()))  # type: ignore[call-overload]

        run(self, pause=flush)

    events = [numbered_event(i) for i in range(1, 2 * derive.PAUSE_EVERY + 6)]
    with psycopg.connect(db_url) as conn:
        expected = [chain.append(conn, e) for e in events]
        one_by_one = _derived(conn)
        conn.rollback()
        monkeypatch.setattr(derive.Derivation, "run", observed)
        assert chain.append_many(conn, events) == expected
        assert _derived(conn) == one_by_one
        conn.rollback()
    assert len(answers) == 2
    assert set(answers) <= {0, 1}


_TIMES = st.sampled_from(
    [
        "2026-03-01T08:00:00Z",
        "2026-03-01T08:00:00.5Z",
        "2026-03-01T08:00:00.123456789+08:00",
        "2026-03-01T08:00:00.9999995-05:30",
        "1999-12-31T23:59:59.999Z",
        "2000-01-01T00:00:00+00:00",
    ]
)
_STEPS = st.sampled_from(
    [None, "receiving", "urn:epcglobal:cbv:bizstep:shipping", "https://ref.gs1.org/cbv/BizStep-storing",
     "https://example.com/steps/清点"]
)  # fmt: skip


# Text PostgreSQL stores (no NUL; the EPCIS schema refuses an eventID with one before any append).
_NAMES = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=12
)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=st.lists(st.tuples(_TIMES, _STEPS, _NAMES, st.booleans()), min_size=1, max_size=6))
def test_rows_joined_from_their_parts_are_the_rows_formatted_one_by_one(
    db_url: str, drawn: list[tuple[str, str | None, str, bool]]
) -> None:
    """Capture makes each entry's row parts where no lock is held (``chain.row_of``) and the append joins
    them; any other append formats each row. Both store the same row, byte for byte (the appending
    transaction's record_time apart)."""
    events = []
    for n, (when, step, name, declares) in enumerate(drawn):
        event: dict[str, Any] = {
            "type": "ObjectEvent",
            "eventID": f"urn:uuid:0f6e3c1a-0000-4000-8000-{n:012d}#{name}",
            "eventTime": when,
            "eventTimeZoneOffset": "+00:00",
            "action": "OBSERVE",
            "epcList": [f"urn:epc:id:sgtin:6901234.012345.{name.encode().hex()[:20] or 0}"],
        }
        if step is not None:
            event["bizStep"] = step
        if declares:
            event["errorDeclaration"] = {"declarationTime": when, "reason": "incorrect_data"}
        events.append(event)
    prepared = [chain.canonicalised(e) for e in events]
    assert all(p.row is not None for p in prepared)
    columns = (
        "seq, event_id, event_type, event_time, biz_step, event, event_hash, prev_hash, entry_hash,"
        " declares_error, event_jcs"
    )
    stored = []
    with psycopg.connect(db_url, autocommit=True) as conn:
        for parts in (prepared, [p._replace(row=None) for p in prepared]):
            with conn.transaction(force_rollback=True):
                chain.append_prepared(conn, parts, in_ledger={})
                stored.append(conn.execute(f"SELECT {columns} FROM ledger_event ORDER BY seq").fetchall())
    assert stored[0] == stored[1]
    assert len(stored[0]) == len(events)
