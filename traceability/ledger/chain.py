"""Stage 3, ledger: append EPCIS events to the hash chain (deriving containment and custody).

Chain definition (what ``traceability.ledger.verify`` and an offline verifier recompute):

* ``event_hash`` = the GS1 CBV 2.0 event hash of the stored event (``traceability.epcis.eventhash``),
  the text ``ni:///sha-256;<64 lowercase hex>?ver=CBV2.0``;
* ``event_jcs`` = the RFC 8785 (JCS) canonical UTF-8 bytes of the stored event (every field of it:
  ``@context``, ``eventID``, ``recordTime``, ``errorDeclaration`` included); ``content_digest`` =
  SHA-256(``event_jcs``), 32 raw bytes;
* ``prev_hash`` = the ``entry_hash`` of entry ``seq - 1``; for seq 1, 64 ASCII zeros;
* ``entry_hash`` = lowercase hex of SHA-256 over the byte string
  ``bytes.fromhex(prev_hash)`` (32 bytes) ‖ ``event_hash.encode("utf-8")`` (the ni URI, 89 bytes)
  ‖ ``content_digest`` (32 bytes), nothing in between.

The jsonb ``event`` column (what the API serves and queries) equals ``event_jcs`` parsed, and the
other served columns are its fields: ``event_id`` / ``event_type`` / ``event_time`` its ``eventID`` /
``type`` / ``eventTime``, ``biz_step`` the bare CBV name of its ``bizStep`` (``epcis.biz_step_name``),
``declares_error`` whether it has an ``errorDeclaration``. A validated CHECK constraint (migrations 0004,
0006) holds this for every row; ``traceability.ledger.verify`` checks that the constraint is intact.

Appends run in the caller's transaction, one batch at a time (transaction-scoped advisory lock), so seq
has no holes and the chain no forks. An event whose eventID is already in the ledger is not appended again.

``recordTime`` is the repository's: capture sets each event's to the capture job's time, replacing any the
client sent (``traceability.epcis.capture``). The event hash leaves it out (CBV 2.0 8.9), so an event's
hash is the same wherever and whenever it is recorded; ``event_jcs``, and so the chain, includes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import psycopg
from psycopg.types.json import Jsonb

from traceability import queries
from traceability.epcis.builders import CONTEXT, biz_step_name, error_declaration, parse_time
from traceability.epcis.eventhash import event_hash
from traceability.epcis.jcs import canonical
from traceability.epcis.validation import validate
from traceability.ledger import derive

GENESIS_HASH = "0" * 64

Conn = psycopg.Connection[Any]


def content_digest(event_jcs: bytes) -> bytes:
    """SHA-256 of an event's canonical bytes (32 raw bytes)."""
    return hashlib.sha256(event_jcs).digest()


def entry_hash(prev_hash: str, ev_hash: str, digest: bytes) -> str:
    """sha256(bytes.fromhex(prev_hash) ‖ ev_hash as UTF-8 ‖ digest), lowercase hex."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + ev_hash.encode("utf-8") + digest).hexdigest()


class Row(NamedTuple):
    """An entry's row of ``queries.COPY_EVENTS`` as binary COPY data, but for what only the append knows
    (seq, prev_hash, entry_hash) and the canonical bytes (sent as they are, twice): made with the event's
    canonical bytes (``row_of``), where no lock is held, so that the append only joins the parts."""

    fields: bytes  # event_id, event_type, event_time, biz_step: each a binary COPY field
    event_hash: bytes  # the event_hash field
    declares: bytes  # the declares_error field
    digest: bytes  # content_digest of the canonical bytes


class Prepared(NamedTuple):
    """An event as it will be stored, its CBV 2.0 event hash and, once computed, its canonical bytes
    (``canonicalised``; else the append computes them) and its row's parts (``row_of``)."""

    stored: dict[str, Any]
    event_hash: str
    jcs: bytes | None = None
    row: Row | None = None


def canonicalised(event: Mapping[str, Any]) -> Prepared:
    """``prepare`` of a valid event, with its canonical bytes and its row's parts: what ``append_prepared``
    takes, so that a caller (capture) can check them before the append without the append computing them
    again. ``jcs.CanonicalizationError`` when the event has no RFC 8785 form."""
    stored, ev_hash, *_ = prepare(event, validated=True)
    jcs = canonical(stored)
    return Prepared(stored, ev_hash, jcs, row_of(stored, ev_hash, jcs))


# Binary COPY (PostgreSQL's format: a signature, flags and header extension length; per row the field
# count, then each field as its length and bytes, -1 for NULL; a trailer of -1).
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # timestamptz: microseconds since then
_MICROSECOND = timedelta(microseconds=1)
_NULL = struct.pack(">i", -1)
_INT8 = struct.Struct(">iq")
_LENGTH = struct.Struct(">i")
_JSONB = struct.Struct(">iB")  # the length, then jsonb's binary format version: 1 (the text follows)
_HASH_HEX = struct.pack(">i", 64)  # prev_hash and entry_hash: 64 hex digits
_BOOL = {False: struct.pack(">i?", 1, False), True: struct.pack(">i?", 1, True)}


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode("utf-8")
    return _LENGTH.pack(len(data)) + data


def row_of(stored: Mapping[str, Any], ev_hash: str, jcs: bytes) -> Row:
    """The parts of an entry's COPY row that the event gives (``Row``), with its text in UTF-8: the append
    uses them on a connection whose client encoding is UTF-8."""
    micros = (parse_time(stored["eventTime"]) - _PG_EPOCH) // _MICROSECOND
    fields = b"".join(
        (
            _text(str(stored["eventID"])),
            _text(str(stored["type"])),
            _INT8.pack(8, micros),
            _text(biz_step_name(stored.get("bizStep"))),
        )
    )
    return Row(fields, _text(ev_hash), _BOOL["errorDeclaration" in stored], content_digest(jcs))


def _copy_rows(copy: Any, new: Sequence[tuple[int, Prepared]], prev: str) -> None:
    """Write the entries' rows as binary COPY data joined from their parts (``Row``), the chain linked
    here; ``copy`` is a COPY of ``queries.COPY_EVENTS`` that has had nothing written yet."""
    chunk = [_COPY_SIGNATURE]
    size = 0
    for s, p in new:
        row, jcs = p.row, p.jcs
        assert row is not None  # the caller checked both
        assert jcs is not None
        link = entry_hash(prev, p.event_hash, row.digest)
        n = len(jcs)
        chunk += (
            _ROW_START,
            _INT8.pack(8, s),
            row.fields,
            _JSONB.pack(n + 1, 1),
            jcs,
            row.event_hash,
            _HASH_HEX,
            prev.encode("ascii"),
            _HASH_HEX,
            link.encode("ascii"),
            row.declares,
            _LENGTH.pack(n),
            jcs,
        )
        prev = link
        size += n
        if size >= _COPY_CHUNK:
            copy.write(b"".join(chunk))
            chunk, size = [], 0
    chunk.append(_COPY_TRAILER)
    copy.write(b"".join(chunk))


# How many bytes of rows go to the server at a time: it inserts one block while the next is joined.
_COPY_CHUNK = 64 * 1024


def prepare(event: Mapping[str, Any], *, validated: bool = False) -> Prepared:
    """The event as it will be stored (``@context``, ``eventID``) and its event hash.

    Validates it against the EPCIS schema unless ``validated`` (``InvalidEventError``)."""
    stored = dict(event)
    stored.setdefault("@context", CONTEXT)
    if not validated:
        validate(stored)
    ev_hash = event_hash(stored)
    if not stored.get("eventID"):
        stored["eventID"] = ev_hash
    return Prepared(stored, ev_hash)


def append_many(conn: Conn, events: Sequence[Mapping[str, Any]], *, validated: bool = False) -> list[int]:
    """Append events in order in the caller's transaction (all or nothing with it); return their seqs.

    One lock, one head lookup and one COPY for the batch, and the derived rows of the whole batch in a
    fixed number of statements; an event whose eventID is already in the ledger (or earlier in the batch)
    keeps its seq and is not appended again. Raises ``InvalidEventError`` if any event fails the schema,
    ``jcs.CanonicalizationError`` (a ValueError) if one has no RFC 8785 form; nothing is appended then."""
    with conn.transaction():
        return _append(conn, events, validated=validated)


class Opening:
    """The reads an append starts with (the head, the state the derivation needs), asked by a caller that
    holds the ledger's lock, in its own pipeline (capture sends them with the lock and its job's row)."""

    def __init__(
        self, conn: Conn, events: Sequence[Mapping[str, Any]], keys: derive.StateKeys | None = None
    ) -> None:
        """``keys``: the events' ``derive.state_keys``, when the caller made them before the lock."""
        self._asked = conn.execute(queries.LEDGER_HEAD)
        self._head: tuple[int, str] | None = None
        self.derivation = derive.Derivation(conn, events, keys)

    def head(self) -> tuple[int, str]:
        """The ledger's head: (seq, entry_hash), (0, ``GENESIS_HASH``) when it is empty."""
        if self._head is None:
            row = self._asked.fetchone()
            self._head = (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))
        return self._head


def append_prepared(
    conn: Conn,
    prepared: Sequence[Prepared],
    *,
    in_ledger: Mapping[tuple[str, bool], int] | None = None,
    savepoint: bool = True,
    opening: Opening | None = None,
) -> list[int]:
    """``append_many`` of valid events already prepared (``canonicalised``): nothing of theirs is hashed
    or serialised again, so the ledger's lock is held only for the appending itself. ``in_ledger``: the
    seqs, keyed by (eventID, declares an error), of those of the events' eventIDs the ledger holds, read
    by the caller under the ledger's lock, which it holds still (else they are read here); ``opening``:
    the head and the derivation's state, asked by the caller under that lock (of these same events).
    Without ``savepoint``, the caller's transaction is the append's: a failed append must end it (rolled
    back), as capture's does."""
    events = [p.stored for p in prepared]
    in_transaction = conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    with contextlib.nullcontext() if not savepoint and in_transaction else conn.transaction():
        return _append(conn, events, validated=True, prepared=prepared, in_ledger=in_ledger, opening=opening)


def validate_all(events: Sequence[Mapping[str, Any]]) -> None:
    """Each event as it will be stored (with its ``@context``) is valid, else ``InvalidEventError``."""
    for event in events:
        stored = dict(event)
        stored.setdefault("@context", CONTEXT)
        validate(stored)


def _append(
    conn: Conn,
    events: Sequence[Mapping[str, Any]],
    *,
    validated: bool,
    prepared: Sequence[Prepared] | None = None,
    in_ledger: Mapping[tuple[str, bool], int] | None = None,
    opening: Opening | None = None,
) -> list[int]:
    if not validated:
        validate_all(events)  # before anything reads them or the lock is taken
    # The reads go out first, in one pipeline (the lock, the eventIDs the events carry, the head, the state
    # derivation needs): the server answers them while this process hashes the events. The lock is held
    # from there: a second appender waits during this one's hashing too (appends were serialised from the
    # head read to the commit already; this only adds the hashing).
    given = [] if in_ledger is not None else [str(e["eventID"]) for e in events if e.get("eventID")]
    known_given = None
    if opening is None:
        with conn.pipeline() if psycopg.Pipeline.is_supported() else contextlib.nullcontext():
            conn.execute(queries.LOCK_LEDGER, (queries.LEDGER_LOCK_KEY,))
            if given:
                known_given = conn.execute(queries.EVENT_SEQS_BY_IDS, queries.text_arrays(given))
            opening = Opening(conn, events)
            if prepared is None:
                prepared = [prepare(e, validated=True) for e in events]
    if prepared is None:  # the caller asked for the opening reads (none here to overlap the hashing)
        prepared = [prepare(e, validated=True) for e in events]
    derivation = opening.derivation
    ids = [(str(p.stored["eventID"]), "errorDeclaration" in p.stored) for p in prepared]
    if in_ledger is not None:
        known = dict(in_ledger)
        hashed = []
    else:
        known = {(str(r[0]), bool(r[1])): int(r[2]) for r in known_given or ()}
        given_set = set(given)
        hashed = list(dict.fromkeys(i for i, _ in ids if i not in given_set))
    if hashed:  # eventIDs the hash gave (events that came without one)
        known.update(
            {
                (str(r[0]), bool(r[1])): int(r[2])
                for r in conn.execute(queries.EVENT_SEQS_BY_IDS, queries.text_arrays(hashed))
            }
        )
    seq, prev = opening.head()
    seqs: list[int] = []
    new: list[tuple[int, Prepared]] = []
    for p, key in zip(prepared, ids, strict=True):
        if key in known:
            seqs.append(known[key])
            continue
        seq += 1
        known[key] = seq
        seqs.append(seq)
        new.append((seq, p))
    derivation.load([(s, p.stored) for s, p in new])
    if not new:
        return seqs
    # The server inserts each block of entries while this process canonicalises and links the next ones: a
    # block goes to the socket as soon as it is full (the socket buffer takes it without waiting), and the
    # derivation runs before the COPY ends. No writer thread: one measured here held the GIL against this
    # thread at every block and lost more than it overlapped (≈ 55 → 33 µs an event for this phase).
    # Rows whose parts were made where no lock is held (``row_of``, in capture's checking) are only
    # joined here; any other batch is formatted row by row.
    joined = conn.info.encoding == "utf-8" and all(p.row is not None and p.jcs is not None for _, p in new)
    with conn.cursor() as cur, cur.copy(queries.COPY_EVENTS) as copy:
        # Binary rows: the canonical bytes go once as they are (bytea) and once as jsonb text, with no
        # hex escaping for the server to undo.
        if joined:
            _copy_rows(copy, new, prev)
        else:
            copy.set_types(COPY_EVENT_TYPES)
            for s, (stored, ev_hash, given_jcs, _) in new:
                jcs = canonical(stored) if given_jcs is None else given_jcs
                link = entry_hash(prev, ev_hash, content_digest(jcs))
                copy.write_row(
                    (
                        s,
                        str(stored["eventID"]),
                        stored["type"],
                        parse_time(stored["eventTime"]),
                        biz_step_name(stored.get("bizStep")),
                        Jsonb(jcs, dumps=_as_is),  # the jsonb: the same bytes, parsed by the server
                        ev_hash,
                        prev,
                        link,
                        "errorDeclaration" in stored,
                        jcs,
                    )
                )
                prev = link
        derivation.run()
        derivation.encode()  # while the server still inserts the entries
    derivation.write()
    return seqs


# The columns of queries.COPY_EVENTS, in order (a binary COPY names its types).
COPY_EVENT_TYPES = (
    "int8", "text", "text", "timestamptz", "text", "jsonb", "text", "text", "text", "bool", "bytea"
)  # fmt: skip
_ROW_START = struct.pack(">h", len(COPY_EVENT_TYPES))  # a binary COPY row: its field count first


def _as_is(value: Any) -> Any:
    """The ``dumps`` of canonical bytes that are JSON text already."""
    return value


def declare_error(
    conn: Conn,
    event_id: str,
    *,
    reason: str = "incorrect_data",
    corrective_event_ids: Sequence[str] = (),
    declared_at: datetime | None = None,
) -> int:
    """Append the errorDeclaration of the ledger event ``event_id`` (EPCIS 2.0 7.4.1.2): a copy of it with
    ``errorDeclaration`` {declarationTime, reason, correctiveEventIDs}. The original stays; returns the
    declaration's seq. Raises ``LookupError`` when there is no such event."""
    row = conn.execute(queries.EVENT_BY_ID, (event_id,)).fetchone()
    if row is None:
        raise LookupError(event_id)
    declared = error_declaration(
        row[0],
        declared_at=declared_at or datetime.now(UTC),
        reason=reason,
        corrective_event_ids=corrective_event_ids,
    )
    return append(conn, declared)


def append(conn: Conn, event: Mapping[str, Any]) -> int:
    """Append one EPCIS event in the caller's transaction; return its seq (the existing one if already there).

    Nothing is committed here: the caller commits (with its other writes) or rolls back. On an
    autocommit connection the append is its own transaction.

    The event must be valid under the EPCIS 2.0 JSON Schema (``InvalidEventError`` otherwise); it gets the
    project ``@context`` when it has none and ``eventID`` = its event hash when it has none (neither is
    part of the hash). Containment and custody rows are derived from it in the same transaction."""
    if conn.autocommit:
        with conn.transaction():
            return _append(conn, [event], validated=False)[0]
    # The caller's transaction (opened by this statement if none is yet); a savepoint keeps a failed
    # append from leaving half its rows behind in it. An invalid event is refused before the lock.
    validate_all([event])
    conn.execute(queries.LOCK_LEDGER, (queries.LEDGER_LOCK_KEY,))
    with conn.transaction():
        return _append(conn, [event], validated=True)[0]


def head_seq(conn: Conn) -> int | None:
    """The seq of the newest entry, None for an empty ledger."""
    row = conn.execute(queries.HEALTH).fetchone()
    return None if row is None or row[0] is None else int(row[0])
