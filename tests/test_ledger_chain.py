"""Tests: ledger append/verify on a real PostgreSQL; the append-only trigger; tampering is located."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.types.json import Jsonb

from traceability import epcis, ledger
from traceability.eventhash import event_hash

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def _event(i: int) -> dict[str, Any]:
    return epcis.object_event(
        event_time=T0 + timedelta(minutes=i),
        epcs=[f"urn:epc:id:sscc:6901234.{i:010d}"],
        biz_step="storing",
        disposition="in_progress",
        read_point="urn:epc:id:sgln:6901234.00001.1",
    )


def _chain(conn: psycopg.Connection[Any], n: int) -> list[int]:
    return [ledger.append(conn, _event(i)) for i in range(1, n + 1)]


def test_append_links_entries_and_verify_passes(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        assert _chain(conn, 4) == [1, 2, 3, 4]
        conn.commit()
        rows = conn.execute(
            "SELECT seq, event_id, event, event_hash, prev_hash, entry_hash, event_type, biz_step"
            " FROM ledger_event ORDER BY seq"
        ).fetchall()
        prev = "0" * 64
        for seq, event_id, event, ev_hash, prev_hash, entry, event_type, biz_step in rows:
            assert ev_hash == event_hash(_event(seq)) == event_id == event["eventID"]
            assert ev_hash.startswith("ni:///sha-256;")
            assert ev_hash.endswith("?ver=CBV2.0")
            assert prev_hash == prev
            assert entry == hashlib.sha256(bytes.fromhex(prev) + ev_hash.encode()).hexdigest()
            assert (event_type, biz_step) == ("ObjectEvent", "storing")
            prev = entry
        assert ledger.verify(conn) == ledger.VerifyResult(ok=True, events=4, first_bad_seq=None)
        assert ledger.head_seq(conn) == 4


def test_empty_ledger_verifies(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        assert ledger.verify(conn) == ledger.VerifyResult(ok=True, events=0, first_bad_seq=None)
        assert ledger.head_seq(conn) is None


def test_append_is_idempotent_on_event_id(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        first = ledger.append(conn, _event(1))
        again = ledger.append(conn, _event(1))
        explicit = {**_event(2), "eventID": "urn:uuid:7b0e2c3a-0000-4000-8000-000000000001"}
        second = ledger.append(conn, explicit)
        assert ledger.append(conn, {**explicit, "bizStep": "receiving"}) == second  # same eventID: kept
        conn.commit()
        assert (first, again, second) == (1, 1, 2)
        assert conn.execute("SELECT count(*) FROM ledger_event").fetchone() == (2,)
        assert ledger.verify(conn).ok


def test_append_refuses_invalid_events(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        with pytest.raises(epcis.InvalidEventError):
            ledger.append(conn, {**_event(1), "action": "SHOUT"})
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
        _chain(conn, 2)
        conn.commit()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(statement)
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM ledger_event").fetchone() == (2,)


def _tamper(conn: psycopg.Connection[Any], kind: str, target: int, n: int) -> int | None:
    """Tamper with entry ``target`` as a superuser would; return the first bad seq verify must name."""
    conn.execute("ALTER TABLE ledger_event DISABLE TRIGGER USER")
    if kind == "event_byte":
        # One character of the stored event JSON: the last digit of its EPC.
        row = conn.execute(
            "SELECT event->'epcList'->>0 FROM ledger_event WHERE seq = %s", (target,)
        ).fetchone()
        assert row is not None
        epc = row[0]
        changed = epc[:-1] + ("7" if epc[-1] != "7" else "8")
        conn.execute(
            "UPDATE ledger_event SET event = jsonb_set(event, '{epcList,0}', to_jsonb(%s::text))"
            " WHERE seq = %s",
            (changed, target),
        )
    elif kind == "event_and_hash":
        # Rewrite the event and its event hash consistently: the chain link still exposes it.
        row = conn.execute("SELECT event FROM ledger_event WHERE seq = %s", (target,)).fetchone()
        assert row is not None
        event = row[0]
        event["bizStep"] = "receiving"
        conn.execute(
            "UPDATE ledger_event SET event = %s, event_hash = %s WHERE seq = %s",
            (Jsonb(event), event_hash(event), target),
        )
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
        conn.execute("DELETE FROM ledger_event WHERE seq = %s", (target,))
        if target == n:
            return None  # dropping the newest entry leaves a valid shorter chain (checkpoints catch it)
    elif kind == "swap":
        target = min(target, n - 1)
        select = "SELECT event_id, event, event_hash, prev_hash, entry_hash FROM ledger_event WHERE seq = %s"
        a = conn.execute(select, (target,)).fetchone()
        b = conn.execute(select, (target + 1,)).fetchone()
        assert a is not None
        assert b is not None
        update = (
            "UPDATE ledger_event SET (event_id, event, event_hash, prev_hash, entry_hash)"
            " = (%s, %s, %s, %s, %s) WHERE seq = %s"
        )
        conn.execute("UPDATE ledger_event SET event_id = 'swapping' WHERE seq = %s", (target,))
        conn.execute(update, (a[0], Jsonb(a[1]), *a[2:], target + 1))
        conn.execute(update, (b[0], Jsonb(b[1]), *b[2:], target))
    conn.execute("ALTER TABLE ledger_event ENABLE TRIGGER USER")
    return target


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(min_value=2, max_value=7),
    kind=st.sampled_from(["event_byte", "event_and_hash", "entry_hash_byte", "delete", "swap"]),
    data=st.data(),
)
def test_verify_names_first_tampered_entry(db_url: str, n: int, kind: str, data: st.DataObject) -> None:
    target = data.draw(st.integers(min_value=1, max_value=n), label="target")
    with psycopg.connect(db_url) as conn:
        # Each example builds, tampers and verifies inside one transaction that is rolled back.
        try:
            _chain(conn, n)
            assert ledger.verify(conn).ok
            expected = _tamper(conn, kind, target, n)
            result = ledger.verify(conn)
            assert result.first_bad_seq == expected
            assert result.ok is (expected is None)
            assert result.events == (n - 1 if kind == "delete" else n)
        finally:
            conn.rollback()
