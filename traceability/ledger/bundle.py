"""Stage 3, ledger: evidence bundles of a lot (events, the chain segment proving them, a signed checkpoint),
written by ``export_lot`` and checked by ``verify_bundle`` with no database.

Bundle (RFC 8785 canonical JSON, UTF-8, no trailing newline)::

    {"format": "coldchain-ledger-bundle/v2", "lot_id": ...,
     "events": [{"seq": s, "event": {...stored EPCIS event, every field...}}, ...],   # ascending seq
     "chain": {"start_seq": a, "start_prev_hash": <hex>,
               "entries": [[seq, event_hash, content_digest, entry_hash, in_bundle(0|1)], ...]},
     "checkpoint": {"seq", "entry_hash", "signed_at", "public_key", "signature"}}

``content_digest`` is the lowercase hex SHA-256 of the entry's stored canonical bytes (``event_jcs``).
A verifier re-canonicalises each bundled event (RFC 8785), checks its SHA-256 against the digest at its
seq, recomputes its CBV 2.0 event hash and checks it against the event hash there, recomputes every link
from ``start_prev_hash`` (``entry_hash = sha256(prev ‖ event_hash ‖ digest)``, ``traceability.ledger.chain``)
up to the checkpoint, compares the last with the signed entry hash and checks the Ed25519 signature
under a pinned public key (never the one the bundle carries: without a pinned key, the bundle does not
verify). A linear hash chain has no shortcuts, so the segment runs from
the lot's first event to the checkpoint. Since the digest covers the whole stored event, every field of a
bundled event is proven (``eventID``, ``recordTime``, ``@context``, ``errorDeclaration`` included). The
file must be exactly its canonical serialisation, so that no byte of it can change without changing what
it says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
import rfc8785

from traceability import queries
from traceability.epcis.eventhash import event_hash
from traceability.epcis.jcs import CanonicalizationError, canonical
from traceability.ledger import checkpoint, jsonfile
from traceability.ledger.chain import content_digest, entry_hash

Conn = psycopg.Connection[Any]
FORMAT = "coldchain-ledger-bundle/v2"


class BundleError(Exception):
    """The bundle cannot be written (no events, no checkpoint covering them)."""


def lot_event_seqs(conn: Conn, lot_id: str) -> list[int]:
    """Ledger seqs of the events about the lot or the goods units that enclosed it."""
    rows = conn.execute(queries.UNITS_OF_LOT, {"lot": lot_id}).fetchall()
    goods = [lot_id, *sorted({r[1] for r in rows if r[5] is None})]
    return [int(r[0]) for r in conn.execute(queries.EVENTS_OF_IDS, {"ids": goods}).fetchall()]


def export_lot(conn: Conn, lot_id: str, cp: checkpoint.Checkpoint | None = None) -> bytes:
    """The canonical bundle bytes of a lot, proven up to ``cp`` (default: the newest checkpoint)."""
    seqs = lot_event_seqs(conn, lot_id)
    if not seqs:
        raise BundleError(f"no ledger events for {lot_id!r}")
    cp = cp or checkpoint.latest(conn)
    if cp is None or cp.seq < max(seqs):
        raise BundleError("no signed checkpoint covers the lot's newest event: sign one first")
    start = min(seqs)
    prev_row = conn.execute(queries.PREV_HASH_AT, (start,)).fetchone()
    assert prev_row is not None
    wanted = set(seqs)
    entries = [
        [int(s), str(h), str(d), str(e), 1 if s in wanted else 0]
        for s, h, d, e in conn.execute(queries.LINKS_BETWEEN, (start, cp.seq)).fetchall()
    ]
    events = [
        {"seq": int(s), "event": json.loads(bytes(j))}
        for s, j in conn.execute(queries.EVENTS_JCS_AT_SEQS, (seqs,)).fetchall()
    ]
    bundle: dict[str, Any] = {
        "format": FORMAT,
        "lot_id": lot_id,
        "events": events,
        "chain": {"start_seq": start, "start_prev_hash": str(prev_row[0]), "entries": entries},
        "checkpoint": cp.as_dict(),
    }
    data: bytes = rfc8785.dumps(bundle)
    return data


@dataclass(slots=True)
class BundleResult:
    ok: bool
    events: int = 0
    checkpoint_seq: int | None = None
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "checkpoint_seq": self.checkpoint_seq,
            "problems": self.problems,
        }


def verify_bundle(data: bytes, *, pinned_public_key: str | None = None) -> BundleResult:
    """Check a bundle's bytes with no database against ``pinned_public_key`` (64 hex; without it the
    checkpoint cannot be verified, which is a problem); ``problems`` names what does not hold."""
    try:
        bundle = jsonfile.loads(data)
        canonical = rfc8785.dumps(bundle) == data
    except (ValueError, rfc8785.CanonicalizationError) as exc:
        return BundleResult(ok=False, problems=[f"not a JSON bundle: {exc}"])
    if not canonical:
        return BundleResult(ok=False, problems=["not in canonical (RFC 8785) form: bytes were changed"])
    try:
        return _verify(bundle, pinned_public_key)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        return BundleResult(ok=False, problems=[f"malformed bundle: {type(exc).__name__}: {exc}"])


_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX128 = re.compile(r"^[0-9a-f]{128}$")
_EVENT_HASH = re.compile(r"^ni:///sha-256;[0-9a-f]{64}\?ver=CBV2\.0$")


def _format_problems(bundle: Mapping[str, Any]) -> list[str]:
    """Hex is lowercase and hashes well-formed: bytes.fromhex would accept other spellings of one value."""
    cp = bundle["checkpoint"]
    chain = bundle["chain"]
    ok = (
        bool(_HEX64.match(cp["entry_hash"]))
        and bool(_HEX64.match(cp["public_key"]))
        and bool(_HEX128.match(cp["signature"]))
        and bool(_HEX64.match(chain["start_prev_hash"]))
        and all(
            _EVENT_HASH.match(e[1]) and _HEX64.match(e[2]) and _HEX64.match(e[3]) for e in chain["entries"]
        )
    )
    return [] if ok else ["a hash, key or signature is not in its canonical lowercase form"]


def _verify(bundle: Mapping[str, Any], pinned: str | None) -> BundleResult:
    problems: list[str] = _format_problems(bundle)
    if bundle["format"] != FORMAT:
        problems.append(f"unknown format {bundle['format']!r}")
    cp_raw = bundle["checkpoint"]
    cp = checkpoint.Checkpoint(
        int(cp_raw["seq"]),
        str(cp_raw["entry_hash"]),
        str(cp_raw["signed_at"]),
        str(cp_raw["public_key"]),
        str(cp_raw["signature"]),
    )
    if set(cp_raw) != {"seq", "entry_hash", "signed_at", "public_key", "signature"}:
        problems.append("checkpoint has unknown fields")
    if pinned is None:
        problems.append("no public key pinned: the checkpoint's signature cannot be verified")
    elif not checkpoint.signature_ok(cp, pinned.lower()):
        problems.append("checkpoint signature does not verify under the pinned key")
    elif cp.public_key != pinned.lower():
        problems.append("the checkpoint names another public key than the pinned one")
    chain = bundle["chain"]
    entries = chain["entries"]
    expected_seq = int(chain["start_seq"])
    prev = str(chain["start_prev_hash"])
    flagged: dict[int, tuple[str, str]] = {}
    for seq, ev_hash, digest, stored_entry, in_bundle in entries:
        if seq != expected_seq or type(seq) is not int:
            problems.append(f"chain entry out of order: expected seq {expected_seq}, found {seq}")
            break
        if entry_hash(prev, str(ev_hash), bytes.fromhex(digest)) != stored_entry:
            problems.append(f"chain link broken at seq {seq}")
            break
        if in_bundle not in (0, 1) or type(in_bundle) is not int:
            problems.append(f"bad flag at seq {seq}")
        elif in_bundle:
            flagged[seq] = (str(ev_hash), str(digest))
        prev, expected_seq = str(stored_entry), seq + 1
    else:
        if not entries or entries[-1][0] != cp.seq or prev != cp.entry_hash:
            problems.append("the chain does not end at the signed checkpoint")
    events = bundle["events"]
    seqs = [int(e["seq"]) for e in events]
    if seqs != sorted(set(seqs)):
        problems.append("events are not in strictly ascending seq order")
    if set(seqs) != set(flagged):
        problems.append("the bundled events are not the chain entries marked as the lot's")
    mentions = False
    for item in events:
        seq, event = int(item["seq"]), item["event"]
        if set(item) != {"seq", "event"}:
            problems.append(f"event at seq {seq} has unknown fields")
        problems.extend(_event_problems(seq, event, flagged.get(seq)))
        mentions = mentions or bundle["lot_id"] in _identifiers(event)
    if not mentions:
        problems.append(f"no bundled event names {bundle['lot_id']!r}")
    return BundleResult(ok=not problems, events=len(events), checkpoint_seq=cp.seq, problems=problems)


def _event_problems(seq: int, event: Mapping[str, Any], chained: tuple[str, str] | None) -> list[str]:
    if chained is None:
        return []  # reported above: the event is not at a chain entry marked as the lot's
    problems = []
    try:
        digest = content_digest(canonical(event)).hex()
    except CanonicalizationError:
        return [f"event at seq {seq} has no canonical form"]
    if digest != chained[1]:
        problems.append(f"event at seq {seq} does not match its content digest in the chain")
    if event_hash(event) != chained[0]:
        problems.append(f"event at seq {seq} does not match its GS1 event hash in the chain")
    return problems


def _identifiers(event: Mapping[str, Any]) -> set[str]:
    ids: set[str] = set()
    for key in ("epcList", "childEPCs", "inputEPCList", "outputEPCList"):
        ids.update(str(x) for x in event.get(key, ()))
    for key in ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"):
        ids.update(str(q.get("epcClass")) for q in event.get(key, ()))
    if event.get("parentID"):
        ids.add(str(event["parentID"]))
    return ids
