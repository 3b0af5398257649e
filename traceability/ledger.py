"""Stage 3, ledger: append EPCIS events to the hash chain (deriving containment and custody), and verify it.

Chain definition (what ``verify`` and an offline verifier recompute):

* ``event_hash`` = the GS1 CBV 2.0 event hash of the stored event JSON (``traceability.eventhash``),
  the text ``ni:///sha-256;<64 lowercase hex>?ver=CBV2.0``;
* ``prev_hash`` = the ``entry_hash`` of entry ``seq - 1``; for seq 1, 64 ASCII zeros;
* ``entry_hash`` = lowercase hex of SHA-256 over the byte string
  ``bytes.fromhex(prev_hash)`` (the 32 raw bytes the previous entry hash encodes)
  followed by ``event_hash.encode("utf-8")`` (the full ni URI, about 90 bytes), nothing in between.

Appends run in the caller's transaction, one at a time (transaction-scoped advisory lock), so seq has no
holes and the chain no forks. An event whose eventID is already in the ledger is not appended again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from traceability import derive, queries
from traceability.epcis import CONTEXT, parse_time, validate
from traceability.eventhash import event_hash

GENESIS_HASH = "0" * 64
# Rows fetched per round trip while streaming the chain.
VERIFY_FETCH_ROWS = 1000

Conn = psycopg.Connection[Any]


def entry_hash(prev_hash: str, ev_hash: str) -> str:
    """sha256(bytes.fromhex(prev_hash) || ev_hash as UTF-8), lowercase hex."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + ev_hash.encode("utf-8")).hexdigest()


def append(conn: Conn, event: Mapping[str, Any]) -> int:
    """Append one EPCIS event in the caller's transaction; return its seq (the existing one if already there).

    Nothing is committed here: the caller commits (with its other writes) or rolls back. On an
    autocommit connection the append is its own transaction.

    The event must be valid under the EPCIS 2.0 JSON Schema (``InvalidEventError`` otherwise); it gets the
    project ``@context`` when it has none and ``eventID`` = its event hash when it has none (neither is
    part of the hash). Containment and custody rows are derived from it in the same transaction."""
    stored = dict(event)
    stored.setdefault("@context", CONTEXT)
    validate(stored)
    ev_hash = event_hash(stored)
    if not stored.get("eventID"):
        stored["eventID"] = ev_hash
    if conn.autocommit:
        with conn.transaction():
            return _append_locked(conn, stored, ev_hash)
    # The caller's transaction (opened by this statement if none is yet); a savepoint keeps a failed
    # append from leaving half its rows behind in it.
    conn.execute(queries.LOCK_LEDGER, (queries.LEDGER_LOCK_KEY,))
    with conn.transaction():
        return _append_locked(conn, stored, ev_hash)


def _append_locked(conn: Conn, stored: dict[str, Any], ev_hash: str) -> int:
    event_id = str(stored["eventID"])
    conn.execute(queries.LOCK_LEDGER, (queries.LEDGER_LOCK_KEY,))
    existing = conn.execute(queries.EVENT_SEQ_BY_ID, (event_id,)).fetchone()
    if existing is not None:
        return int(existing[0])
    head = conn.execute(queries.LEDGER_HEAD).fetchone()
    seq, prev = (1, GENESIS_HASH) if head is None else (int(head[0]) + 1, str(head[1]))
    conn.execute(
        queries.INSERT_EVENT,
        {
            "seq": seq,
            "event_id": event_id,
            "event_type": stored["type"],
            "event_time": parse_time(stored["eventTime"]),
            "biz_step": stored.get("bizStep"),
            "event": Jsonb(stored),
            "event_hash": ev_hash,
            "prev_hash": prev,
            "entry_hash": entry_hash(prev, ev_hash),
        },
    )
    derive.apply(conn, seq, stored)
    return seq


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    events: int
    first_bad_seq: int | None


def verify(conn: Conn) -> VerifyResult:
    """Recompute every event hash and chain link in seq order; name the first entry that does not hold.

    A missing entry is reported at the seq that should have followed its predecessor. Truncation of the
    newest entries is invisible here by construction; signed checkpoints of the head cover that."""
    expected_seq, expected_prev = 1, GENESIS_HASH
    first_bad: int | None = None
    count = 0
    with conn.transaction(), conn.cursor(name="ledger_verify") as cur:
        cur.itersize = VERIFY_FETCH_ROWS
        cur.execute(queries.CHAIN_IN_ORDER)
        for seq, event_id, event, stored_hash, prev_hash, stored_entry in cur:
            count += 1
            if first_bad is not None:
                continue
            if seq != expected_seq:
                first_bad = expected_seq
            elif not _entry_ok(event_id, event, stored_hash, prev_hash, stored_entry, expected_prev):
                first_bad = seq
            expected_seq, expected_prev = seq + 1, stored_entry
    return VerifyResult(ok=first_bad is None, events=count, first_bad_seq=first_bad)


def _entry_ok(
    event_id: str, event: Any, stored_hash: str, prev_hash: str, stored_entry: str, expected_prev: str
) -> bool:
    if prev_hash != expected_prev or not isinstance(event, dict):
        return False
    try:
        recomputed = event_hash(event)
        link = entry_hash(prev_hash, stored_hash)
    except (KeyError, TypeError, ValueError):
        return False
    return recomputed == stored_hash and link == stored_entry and event.get("eventID") == event_id


def head_seq(conn: Conn) -> int | None:
    """The seq of the newest entry, None for an empty ledger."""
    row = conn.execute(queries.HEALTH).fetchone()
    return None if row is None or row[0] is None else int(row[0])
