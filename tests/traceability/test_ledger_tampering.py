"""Tests: ledger tampering is located by verify; the served columns are bound to the chained bytes."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_support import T0, UNBIND_JSON, append_numbered, numbered_event
from psycopg import sql

from coldchain.migrate import migrate
from traceability import queries
from traceability.epcis import builders
from traceability.epcis.eventhash import event_hash
from traceability.ledger import chain, verify

MIGRATIONS = Path(queries.__file__).parent / "migrations"
# The constraint as the newest migration adds it (re-added after a consistent tampering).
JCS_CHECK = (
    "ALTER TABLE ledger_event ADD CONSTRAINT ledger_event_event_is_jcs"
    + (MIGRATIONS / "0029_ledger_event_generated.sql")
    .read_text()
    .split("ALTER TABLE ledger_event ADD CONSTRAINT ledger_event_event_is_jcs")[1]
    .split(";")[0]
)
DROP_JCS_CHECK = "ALTER TABLE ledger_event DROP CONSTRAINT ledger_event_event_is_jcs"
KINDS = [
    "event_byte",
    "served_json",
    "served_time",
    "served_step",
    "served_error_flag",
    "jcs_only",
    "event_and_hash",
    "entry_hash_byte",
    "delete",
    "insert",
    "swap",
]


def _rewrite(conn: psycopg.Connection[Any], seq: int, change: Any) -> None:
    """Replace entry ``seq``'s event by ``change(event)`` in its bytes (the jsonb follows) and its served
    columns, consistently (the CHECK constraint holds)."""
    row = conn.execute("SELECT event_jcs FROM ledger_event WHERE seq = %s", (seq,)).fetchone()
    assert row is not None
    event = change(json.loads(bytes(row[0])))
    jcs = rfc8785.dumps(event)
    conn.execute(
        "UPDATE ledger_event SET event_jcs = %s, biz_step = %s WHERE seq = %s",
        (jcs, builders.biz_step_name(event.get("bizStep")), seq),
    )


def _last_epc_digit(event: dict[str, Any]) -> dict[str, Any]:
    epc = event["epcList"][0]
    event["epcList"][0] = epc[:-1] + ("7" if epc[-1] != "7" else "8")
    return event


def _tamper(conn: psycopg.Connection[Any], kind: str, target: int, n: int) -> int | None:
    """Tamper with entry ``target`` as a superuser would; return the first bad seq verify must name."""
    conn.execute("ALTER TABLE ledger_event DISABLE TRIGGER USER")
    if kind == "event_byte":
        # One character of the stored event (the last digit of its EPC), in its bytes and its jsonb.
        _rewrite(conn, target, _last_epc_digit)
    elif kind == "served_json":
        # Only the served jsonb, once freed from the bytes it is generated from: verify compares every row.
        conn.execute(UNBIND_JSON)
        row = conn.execute(
            "SELECT event->'epcList'->>0 FROM ledger_event WHERE seq = %s", (target,)
        ).fetchone()
        assert row is not None
        changed = row[0][:-1] + ("7" if row[0][-1] != "7" else "8")
        conn.execute(
            "UPDATE ledger_event SET event = jsonb_set(event, '{epcList,0}', to_jsonb(%s::text))"
            " WHERE seq = %s",
            (changed, target),
        )
    elif kind == "served_time":
        # Only the indexed event_time (what the EPCIS time filters use), constraint dropped.
        conn.execute(DROP_JCS_CHECK)
        conn.execute(
            "UPDATE ledger_event SET event_time = event_time + interval '1 hour' WHERE seq = %s", (target,)
        )
    elif kind in ("served_step", "served_error_flag"):
        # The bare step EQ_bizStep matches, or the flag that marks a declaration, constraint dropped.
        conn.execute(DROP_JCS_CHECK)
        change = "biz_step = 'shipping'" if kind == "served_step" else "declares_error = NOT declares_error"
        conn.execute(f"UPDATE ledger_event SET {change} WHERE seq = %s", (target,))
    elif kind == "jcs_only":
        # One raw byte of the chained bytes, the jsonb freed from them (it no longer matches either).
        conn.execute(UNBIND_JSON)
        conn.execute(
            "UPDATE ledger_event SET event_jcs = set_byte(event_jcs, 10, get_byte(event_jcs, 10) # 1)"
            " WHERE seq = %s",
            (target,),
        )
    elif kind == "event_and_hash":
        # Rewrite the event and its event hash consistently: the chain link still exposes it.
        def receiving(event: dict[str, Any]) -> dict[str, Any]:
            event["bizStep"] = "receiving"
            return event

        _rewrite(conn, target, receiving)
        row = conn.execute("SELECT event FROM ledger_event WHERE seq = %s", (target,)).fetchone()
        assert row is not None
        conn.execute("UPDATE ledger_event SET event_hash = %s WHERE seq = %s", (event_hash(row[0]), target))
    elif kind == "entry_hash_byte":
        conn.execute(
            "UPDATE ledger_event SET entry_hash = overlay(entry_hash placing"
            " CASE WHEN substr(entry_hash, 10, 1) = 'a' THEN 'b' ELSE 'a' END from 10 for 1) WHERE seq = %s",
            (target,),
        )
    elif kind == "delete":
        for derived in ("custody_leg", "containment"):  # rows derived from it reference it
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE start_seq = %(s)s OR end_seq = %(s)s").format(
                    sql.Identifier(derived)
                ),
                {"s": target},
            )
        for derived in ("event_subject", "biz_transaction", "lineage", "bonded_status"):
            conn.execute(sql.SQL("DELETE FROM {} WHERE seq = %s").format(sql.Identifier(derived)), (target,))
        conn.execute("DELETE FROM ledger_event WHERE seq = %s", (target,))
        if target == n:
            return None  # dropping the newest entry leaves a valid shorter chain (checkpoints catch it)
    elif kind == "insert":
        # A forged entry slipped in at ``target``, properly linked to its predecessor and consistent in
        # itself; the entries from ``target`` on move one seq up (foreign keys switched off to allow it).
        conn.execute("ALTER TABLE ledger_event DISABLE TRIGGER ALL")
        conn.execute("UPDATE ledger_event SET seq = seq + 1000 WHERE seq >= %s", (target,))
        conn.execute("UPDATE ledger_event SET seq = seq - 999 WHERE seq >= %s", (target + 1000,))
        select = "SELECT entry_hash FROM ledger_event WHERE seq = %s"
        prev_row = conn.execute(select, (target - 1,)).fetchone()
        prev = chain.GENESIS_HASH if prev_row is None else prev_row[0]
        forged = chain.prepare(numbered_event(100 + target))
        jcs = rfc8785.dumps(forged.stored)
        conn.execute(
            "INSERT INTO ledger_event (seq, event_id, event_type, event_time, biz_step, event_hash,"
            " prev_hash, entry_hash, event_jcs)"
            " VALUES (%s, %s, 'ObjectEvent', %s, %s, %s, %s, %s, %s)",
            (
                target,
                forged.stored["eventID"],
                builders.parse_time(forged.stored["eventTime"]),
                forged.stored["bizStep"],
                forged.event_hash,
                prev,
                chain.entry_hash(prev, forged.event_hash, chain.content_digest(jcs)),
                jcs,
            ),
        )
        conn.execute("ALTER TABLE ledger_event ENABLE TRIGGER ALL")
        return target + 1  # the first genuine entry after it no longer links
    elif kind == "swap":
        target = min(target, n - 1)
        columns = "event_id, event_time, biz_step, event_hash, prev_hash, entry_hash, event_jcs"
        select = f"SELECT {columns} FROM ledger_event WHERE seq = %s"
        a = conn.execute(select, (target,)).fetchone()
        b = conn.execute(select, (target + 1,)).fetchone()
        assert a is not None
        assert b is not None
        update = f"UPDATE ledger_event SET ({columns}) = (%s, %s, %s, %s, %s, %s, %s) WHERE seq = %s"
        conn.execute(DROP_JCS_CHECK)  # re-added below, validated: the swapped rows are each consistent
        conn.execute("UPDATE ledger_event SET event_id = 'swapping' WHERE seq = %s", (target,))
        conn.execute(update, (*a, target + 1))
        conn.execute(update, (*b, target))
        conn.execute(JCS_CHECK)
        assert verify.jcs_constraint_intact(conn)
    conn.execute("ALTER TABLE ledger_event ENABLE TRIGGER USER")
    return target


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(min_value=2, max_value=7),
    kind=st.sampled_from(KINDS),
    deep=st.booleans(),
    data=st.data(),
)
def test_verify_names_first_tampered_entry(
    db_url: str, n: int, kind: str, deep: bool, data: st.DataObject
) -> None:
    target = data.draw(st.integers(min_value=1, max_value=n), label="target")
    with psycopg.connect(db_url) as conn:
        # Each example builds, tampers and verifies inside one transaction that is rolled back.
        try:
            append_numbered(conn, n)
            assert verify.verify(conn, deep=deep).ok
            expected = _tamper(conn, kind, target, n)
            result = verify.verify(conn, deep=deep)
            assert result.first_bad_seq == expected
            assert result.ok is (expected is None)
            assert result.events == n + {"delete": -1, "insert": 1}.get(kind, 0)
        finally:
            conn.rollback()


@pytest.mark.parametrize("deep", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_each_tampering_is_named(db_url: str, kind: str, deep: bool) -> None:
    with psycopg.connect(db_url) as conn:
        append_numbered(conn, 4)
        expected = _tamper(conn, kind, 2, 4)
        result = verify.verify(conn, deep=deep)
        assert (result.ok, result.first_bad_seq) == (False, expected)
        conn.rollback()


def test_deep_verify_rederives_gs1_hashes(db_url: str) -> None:
    """An entry whose chained event hash is not the GS1 hash of its event (say, written by a faulty
    appender, or an event rewritten and the whole tail relinked with no checkpoint to catch it): the
    links and digests hold, so only the deep verification names it."""
    with psycopg.connect(db_url) as conn:
        try:
            append_numbered(conn, 5)
            conn.execute("ALTER TABLE ledger_event DISABLE TRIGGER USER")
            _rewrite(conn, 3, _last_epc_digit)
            rows = conn.execute(
                "SELECT seq, event_hash, event_jcs FROM ledger_event WHERE seq >= 3 ORDER BY seq"
            ).fetchall()
            prev_row = conn.execute("SELECT entry_hash FROM ledger_event WHERE seq = 2").fetchone()
            assert prev_row is not None
            prev = prev_row[0]
            for seq, ev_hash, jcs in rows:
                link = chain.entry_hash(prev, ev_hash, chain.content_digest(bytes(jcs)))
                conn.execute(
                    "UPDATE ledger_event SET prev_hash = %s, entry_hash = %s WHERE seq = %s",
                    (prev, link, seq),
                )
                prev = link
            assert verify.verify(conn).ok
            assert verify.verify(conn, deep=True).first_bad_seq == 3
        finally:
            conn.rollback()


@pytest.mark.parametrize(
    "change",
    [
        "event_id = 'urn:uuid:00000000-0000-4000-8000-000000000000'",
        "event_type = 'AggregationEvent'",
        "event_time = event_time + interval '1 second'",
        "biz_step = 'shipping'",
        "biz_step = NULL",
        "declares_error = true",
    ],
)
def test_check_constraint_refuses_diverging_served_columns(db_url: str, change: str) -> None:
    """With every trigger disabled, no served column can differ from the chained bytes."""
    with psycopg.connect(db_url) as conn:
        append_numbered(conn, 2)
        assert verify.jcs_constraint_intact(conn)
        conn.execute("ALTER TABLE ledger_event DISABLE TRIGGER USER")
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(f"UPDATE ledger_event SET {change} WHERE seq = 1")
        conn.rollback()


def test_served_json_is_generated_from_the_chained_bytes(db_url: str) -> None:
    """With every trigger disabled, the jsonb cannot be written; written bytes carry their jsonb along."""
    with psycopg.connect(db_url) as conn:
        append_numbered(conn, 2)
        conn.execute("ALTER TABLE ledger_event DISABLE TRIGGER USER")
        with pytest.raises(psycopg.errors.GeneratedAlways), conn.transaction():
            conn.execute("""UPDATE ledger_event SET event = event || '{"bizStep": "x"}' WHERE seq = 1""")
        _rewrite(conn, 1, _last_epc_digit)
        row = conn.execute("SELECT event, event_jcs FROM ledger_event WHERE seq = 1").fetchone()
        assert row is not None
        assert row[0] == json.loads(bytes(row[1])) == _last_epc_digit(chain.prepare(numbered_event(1)).stored)
        conn.rollback()


def test_verify_sees_the_generation_changed(db_url: str) -> None:
    """The function the jsonb is generated by, replaced (the rows written after it would serve its
    jsonb), the generation dropped or its expression changed: the binding is not intact, and verify
    compares every row."""
    for change in (
        UNBIND_JSON,
        "CREATE OR REPLACE FUNCTION ledger_event_json(jcs bytea) RETURNS jsonb LANGUAGE sql IMMUTABLE"
        " STRICT PARALLEL SAFE RETURN convert_from(jcs, 'UTF8')::jsonb - 'bizStep'",
        "CREATE OR REPLACE FUNCTION ledger_event_json(jcs bytea) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE"
        " STRICT PARALLEL SAFE AS $$ BEGIN RETURN convert_from(jcs, 'UTF8')::jsonb; END $$",
        "CREATE FUNCTION cc_jsonb_of(jcs bytea) RETURNS jsonb LANGUAGE sql IMMUTABLE RETURN"
        " convert_from(jcs, 'UTF8')::jsonb; ALTER TABLE ledger_event DROP COLUMN event CASCADE;"
        " ALTER TABLE ledger_event ADD COLUMN event jsonb GENERATED ALWAYS AS"
        " (ledger_event_json(event_jcs) || cc_jsonb_of(event_jcs)) STORED",
    ):
        with psycopg.connect(db_url) as conn:
            append_numbered(conn, 2)
            assert verify.jcs_constraint_intact(conn)
            conn.execute(change)
            assert not verify.jcs_constraint_intact(conn)
            assert verify.verify(conn).ok  # the rows are still their bytes'
            conn.rollback()


@pytest.mark.parametrize(
    "uri", ["https://ref.gs1.org/cbv/BizStep-storing", "urn:epcglobal:cbv:bizstep:storing"]
)
def test_migration_0006_names_steps_and_binds_the_served_columns(db_url: str, uri: str) -> None:
    """A ledger written before migration 0006 (biz_step as the event gave it, eventTime fractions beyond
    microseconds truncated, the narrower constraint of 0004) comes out of it with bare step names, the
    database's reading of each eventTime and its full constraint, and still verifies."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        chain.append(conn, {**numbered_event(1), "bizStep": "https://ref.gs1.org/cbv/BizStep-storing"})
        chain.append(conn, {**numbered_event(2), "eventTime": "2026-03-01T00:02:00.9999996Z"})
        old_check = (MIGRATIONS / "0004_ledger_event_jcs.sql").read_text()
        old_check = (
            "ALTER TABLE ledger_event ADD CONSTRAINT"
            + old_check.split("ALTER TABLE ledger_event ADD CONSTRAINT")[1].split(";")[0]
        )
        conn.execute("ALTER TABLE ledger_event DISABLE TRIGGER USER")
        conn.execute(DROP_JCS_CHECK)
        conn.execute("UPDATE ledger_event SET biz_step = %s", (uri,))
        conn.execute("UPDATE ledger_event SET event_time = date_trunc('second', event_time) WHERE seq = 2")
        conn.execute(old_check)
        conn.execute("ALTER TABLE ledger_event ENABLE TRIGGER USER")
        conn.execute("DELETE FROM schema_migration WHERE key LIKE %s", ("%0006_ledger_columns_bound%",))
        assert not verify.jcs_constraint_intact(conn)
    assert [k for k in migrate(db_url) if "0006" in k]
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT biz_step, event_time FROM ledger_event ORDER BY seq").fetchall() == [
            ("storing", T0 + timedelta(minutes=1)),
            ("storing", T0 + timedelta(minutes=2, seconds=1)),
        ]
        # 0006's constraint, whole and validated (0029 later binds the jsonb by generating it instead).
        row = conn.execute(queries.JCS_BINDING, {"check": verify.JCS_CONSTRAINT}).fetchone()
        assert row is not None
        assert row[0] is True
        assert all(part in row[1] for part in ("convert_from", "event_time", "declares_error"))
        assert verify.verify(conn).ok
