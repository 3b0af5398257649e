"""Stage 3, ledger: verify the hash chain and every signed checkpoint against a pinned public key.

What ``verify`` proves, and to whom (the threat model in docs/ledger.md):

* the chain: seq has no holes, every ``prev_hash`` is the previous ``entry_hash``, every ``entry_hash``
  is recomputed from ``prev_hash``, ``event_hash`` and SHA-256 of the stored canonical bytes
  ``event_jcs`` (so no byte of any stored event can change unseen), and the served columns are those
  bytes' (the jsonb is generated from them and the ``ledger_event_event_is_jcs`` constraint binds the
  rest to it, both as migration 0029 made them; when either is not, every row's jsonb, eventID, type,
  time, business step and error flag are compared with its bytes instead). ``deep`` also re-derives
  each event's GS1 CBV 2.0 hash from its bytes for every row. A chain that holds proves nothing against
  whoever can rewrite the database: they can re-hash and relink it;
* every checkpoint, the ledger's own rows (``ledger_checkpoint``) and any ``kept`` copy: its Ed25519
  signature under the pinned public key (never a key read from the ledger's rows), and that its seq is
  still in the chain with the entry hash it signed. A checkpoint whose seq is gone names the first
  missing seq (a truncation), one whose entry hash differs names its seq (a rewrite at or below it).
  The stored checkpoints, and each source of kept ones, must also come in order (seq and signed_at never
  decreasing). With no key pinned, the checkpoints cannot be verified: that is a problem, so the result
  is not ok.

``ok`` says nothing was found wrong; ``anchored`` that, besides, the pinned key vouches for the chain:
every entry up to ``signed_seq`` is one the key holder signed (entries after it are not signed yet).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import psycopg

from traceability import queries
from traceability.epcis.builders import biz_step_name, parse_time
from traceability.epcis.eventhash import event_hash
from traceability.ledger import checkpoint
from traceability.ledger.chain import GENESIS_HASH
from traceability.ledger.checkpoint import Checkpoint

Conn = psycopg.Connection[Any]

# Rows per chunk of the verification stream (libpq's chunked rows mode: rows arrive in chunks, each loaded
# in C; with an older libpq, one row at a time). The server keeps sending only while the socket buffer has
# room (≈ 200 kB on a Unix socket), and libpq does not read while this process hashes a chunk: a chunk of
# ~100 entries (~150 kB) fits in that buffer, so the next one is already there. Measured on the bench
# ledger: 2000-row chunks gave ≈ 175k events/s over a Unix socket, 100-row chunks ≈ 415k
# (over TCP: 300–370k and 430k).
_CHUNK_ROWS = 100 if psycopg.pq.version() >= 170000 else 1
# What binds the served columns to the chained bytes (migration 0029), as PostgreSQL prints it back: the
# jsonb a stored generated column of the bytes, through a function whose body and volatility are pinned
# too, and a CHECK binding the other served columns to the jsonb.
JCS_CONSTRAINT = "ledger_event_event_is_jcs"
JCS_CONSTRAINT_DEF = (
    "CHECK (((NOT (event_id IS DISTINCT FROM (event ->> 'eventID'::text)))"
    " AND (NOT (event_type IS DISTINCT FROM (event ->> 'type'::text)))"
    " AND (NOT (event_time IS DISTINCT FROM ((event ->> 'eventTime'::text))::timestamp with time zone))"
    " AND (NOT (biz_step IS DISTINCT FROM\nCASE\n"
    "    WHEN ((event ->> 'bizStep'::text) ~~ 'https://ref.gs1.org/cbv/BizStep-%'::text)"
    " THEN substr((event ->> 'bizStep'::text), 33)\n"
    "    WHEN ((event ->> 'bizStep'::text) ~~ 'urn:epcglobal:cbv:bizstep:%'::text)"
    " THEN substr((event ->> 'bizStep'::text), 27)\n"
    "    ELSE (event ->> 'bizStep'::text)\nEND))"
    " AND (declares_error = (event ? 'errorDeclaration'::text))))"
)
JSON_GENERATION = ("s", "ledger_event_json(event_jcs)", "RETURN (convert_from(jcs, 'UTF8'::name))::jsonb i")
NO_KEY = "no public key pinned (the ledger's key file, or --public-key): {n} checkpoint(s) cannot be verified"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """``ok``: nothing found wrong. ``first_bad_seq``: the lowest seq a problem names. ``checkpoint_seq``:
    the newest stored checkpoint's seq; ``signed_seq``: the highest seq a checkpoint that holds under the
    pinned key signed; ``checkpoints``: how many were checked (stored and kept); ``problems``: each one,
    naming its seq and, for a checkpoint, which."""

    ok: bool
    events: int
    first_bad_seq: int | None
    checkpoint_seq: int | None = None
    signed_seq: int | None = None
    checkpoints: int = 0
    pinned: bool = False
    problems: tuple[str, ...] = ()

    @property
    def anchored(self) -> bool:
        """Nothing is wrong and the pinned key vouches for the chain up to ``signed_seq`` (an empty ledger
        with no checkpoint needs none)."""
        return self.ok and self.pinned and (self.events == 0 or self.signed_seq is not None)

    def as_dict(self) -> dict[str, Any]:
        """The answer of ``ledger verify --json``: ``ok`` is ``anchored`` (what its exit code says)."""
        return {
            "ok": self.anchored,
            "events": self.events,
            "first_bad_seq": self.first_bad_seq,
            "signed_seq": self.signed_seq,
            "checkpoints": self.checkpoints,
            "pinned": self.pinned,
            "problems": list(self.problems),
        }


def verify(
    conn: Conn,
    *,
    deep: bool = False,
    public_key: str | None = None,
    kept: Sequence[tuple[str, Checkpoint]] = (),
) -> VerifyResult:
    """Check the whole chain in one streaming pass in seq order, then every stored checkpoint and every
    ``kept`` one (label, checkpoint) against ``public_key`` (64 hex; None: none pinned).

    A missing entry is reported at the seq that should have followed its predecessor. Per entry, the
    checkpoints add one set lookup (their entry hashes are picked up on the way)."""
    pinned = None if public_key is None else public_key.lower()
    stored = checkpoint.stored(conn)  # before the chain: every entry a checkpoint names is then streamed
    labelled = [(f"checkpoint #{cid}", cp) for cid, cp in stored] + list(kept)
    wanted = {cp.seq for _, cp in labelled}
    entry_at: dict[int, str] = {}
    compare_json = deep or not jcs_constraint_intact(conn)
    expected_seq, expected_prev = 1, GENESIS_HASH
    prev_raw = bytes(32)
    first_bad: int | None = None
    why = ""
    count = 0
    sha256 = hashlib.sha256
    decode = msgspec.json.Decoder()
    sql = queries.CHAIN_WITH_JSON if compare_json else queries.CHAIN_JCS
    # The server streams rows while this loop hashes (it does not wait for fetches).
    with conn.transaction(), conn.cursor(binary=True) as cur:
        for row in cur.stream(sql, size=_CHUNK_ROWS):
            count += 1
            if first_bad is not None:
                continue
            seq, ev_hash, prev_hash, stored_entry, jcs = row[:5]
            if seq != expected_seq:
                first_bad, why = expected_seq, f"seq {expected_seq} is missing (the next entry is seq {seq})"
                continue
            if prev_hash != expected_prev or jcs is None:
                first_bad, why = seq, f"seq {seq} does not link to the entry before it"
                continue
            link = sha256(prev_raw + ev_hash.encode() + sha256(jcs).digest()).digest()
            if link.hex() != stored_entry:
                first_bad, why = seq, f"seq {seq}: its entry hash is not that of its event's bytes"
                continue
            if compare_json and not _row_consistent(decode, row, deep=deep):
                first_bad, why = seq, f"seq {seq}: its served columns are not its chained bytes"
                continue
            if seq in wanted:
                entry_at[seq] = stored_entry
            expected_seq, expected_prev, prev_raw = seq + 1, stored_entry, link
    problems = [why] if first_bad is not None else []
    bad = [first_bad] if first_bad is not None else []
    head = expected_seq - 1  # the last entry that holds
    signed: int | None = None
    if pinned is None and labelled:
        problems.append(NO_KEY.format(n=len(labelled)))
    for label, cp in labelled:
        what = f"{label} (seq {cp.seq}, signed {cp.signed_at})"
        if pinned is not None and not checkpoint.signature_ok(cp, pinned):
            other = "" if cp.public_key == pinned else "; it names another key"
            problems.append(f"{what}: its signature does not verify under the pinned key{other}")
            bad.append(cp.seq)
        elif pinned is not None and cp.public_key != pinned:
            problems.append(f"{what}: it names another public key than the pinned one, which signed it")
            bad.append(cp.seq)
        elif first_bad is not None and cp.seq >= first_bad:
            continue  # the chain is broken below it: reported above
        elif cp.seq > head:
            problems.append(f"{what}: the chain ends at seq {head}: seq {head + 1} to {cp.seq} are gone")
            bad.append(head + 1)
        elif entry_at[cp.seq] != cp.entry_hash:
            problems.append(
                f"{what}: the entry hash at seq {cp.seq} is not the one signed:"
                f" the chain was rewritten at or below seq {cp.seq}"
            )
            bad.append(cp.seq)
        elif pinned is not None:
            signed = cp.seq if signed is None else max(signed, cp.seq)
    # Order holds within each source: the stored rows, and each kept file (its label up to "#<line>").
    sources: dict[str, list[tuple[str, Checkpoint]]] = {"": labelled[: len(stored)]}
    for label, cp in kept:
        sources.setdefault(label.rpartition("#")[0] or label, []).append((label, cp))
    for source in sources.values():
        for (before_label, before), (label, cp) in itertools.pairwise(source):
            if cp.seq < before.seq or cp.signed_at < before.signed_at:
                problems.append(
                    f"{label} (seq {cp.seq}, signed {cp.signed_at}) comes after {before_label}"
                    f" (seq {before.seq}, signed {before.signed_at}): checkpoints out of order"
                )
                bad.append(cp.seq + 1 if cp.seq < before.seq else cp.seq)  # a lower seq: cut above it
    return VerifyResult(
        ok=not problems,
        events=count,
        first_bad_seq=min(bad) if bad else None,
        checkpoint_seq=stored[-1][1].seq if stored else None,
        signed_seq=signed,
        checkpoints=len(labelled),
        pinned=pinned is not None,
        problems=tuple(problems),
    )


def jcs_constraint_intact(conn: Conn) -> bool:
    """What binds the served columns to ``event_jcs`` is intact: the jsonb generated from the bytes as
    migration 0029 made it (its expression, and the function it calls unchanged), and the CHECK binding
    the other columns to it present, validated and unchanged."""
    row = conn.execute(queries.JCS_BINDING, {"check": JCS_CONSTRAINT}).fetchone()
    if row is None or not row[0]:
        return False
    return bool(row[1] == JCS_CONSTRAINT_DEF and tuple(row[2:]) == JSON_GENERATION)


def _row_consistent(decode: msgspec.json.Decoder[Any], row: Sequence[Any], *, deep: bool) -> bool:
    """The row's served columns are its canonical bytes' fields (and, deep, so is its GS1 hash)."""
    ev_hash, jcs, event_id, event_type, event_text = row[1], row[4], row[5], row[6], row[7]
    event_time, biz_step, declares_error = row[8], row[9], row[10]
    try:
        event = decode.decode(jcs)
        if not isinstance(event, dict) or decode.decode(event_text) != event:
            return False
        if event.get("eventID") != event_id or event.get("type") != event_type:
            return False
        if parse_time(event["eventTime"]) != event_time or biz_step_name(event.get("bizStep")) != biz_step:
            return False
        if ("errorDeclaration" in event) != declares_error:
            return False
        return not deep or event_hash(event) == ev_hash
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError, msgspec.DecodeError):
        return False  # RecursionError: bytes nested beyond what a stored event may be are not its bytes
