"""Stage 2 (verdicts): what the ledger holds of each verdict, kept true when late data changes it.

`verdict_emitted` holds, per verdict handed to the ledger, its id and a fingerprint of the figures its
ledger event reports. A verdict emitted again with the same span and figures is kept as it is; one that
overlaps emitted verdicts with other figures replaces them with a 'verdict_correction' (the ledger
declares their events wrong, reason incorrect_data, the new verdict's event the corrective one); one
that overlaps nothing is new ('excursion_closed' / 'chain_break'). A re-judged window's emitted verdicts
that no emission kept are withdrawn the same way, the corrective event reporting the withdrawal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg
from psycopg.types.json import Jsonb

from rules import queries
from rules.engine import catalog
from rules.models import CorrectionPayload, VerdictPayload, WithdrawnVerdict, iso_utc
from rules.worker.plan import Emit, Withdraw

Conn = psycopg.Connection[tuple[Any, ...]]


def _figure(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def fingerprint(p: VerdictPayload) -> str:
    """What the verdict's ledger event states, hashed: its span, asset, limits and figures (the pack
    version apart: a verdict re-judged under the same figures is the same verdict)."""
    stated = [
        p.verdict,
        p.kind,
        p.rule_id,
        p.asset_id,
        p.start,
        p.end,
        *(_figure(x) for x in (p.peak_c, p.min_c, p.max_c, p.mean_c, p.allowed_s)),
        *(_figure(x) for x in (p.limit_low_c, p.limit_high_c)),
        p.readings,
    ]
    return hashlib.sha256(msgspec.json.encode(stated)).hexdigest()


@dataclass(slots=True)
class Outcome:
    """What one plan's emissions did: verdict ids kept or written (a later `Withdraw` spares them)."""

    kept: set[str] = field(default_factory=set)
    new: int = 0
    corrections: int = 0


def emit(conn: Conn, op: Emit, out: Outcome, now: datetime | None = None) -> bool:
    """Hand the verdict to the ledger unless it holds it as it is; True when it is new (never emitted
    nor overlapping an emitted one), so the caller applies its follow-up ops."""
    fp = fingerprint(op.payload)
    # Stamped as it is handed over (the fingerprint leaves it out): found again after its withdrawal, the
    # verdict is a new ledger event, not one the ledger holds declared wrong.
    computed_at = iso_utc(now or datetime.now(UTC))
    p = msgspec.structs.replace(op.payload, computed_at=computed_at)
    key = {"kind": p.verdict, "series_id": op.series_id, "rule_id": op.rule_id}
    rows = conn.execute(
        queries.EMITTED_OVERLAPPING, {**key, "start_time": op.start, "end_time": op.end}
    ).fetchall()
    for verdict_id, start, end, stored_fp, _asset in rows:
        # A row emitted before fingerprints were kept is the same verdict when its span is.
        if start == op.start and end == op.end and stored_fp in (fp, None):
            out.kept.add(str(verdict_id))
            return False
    if rows:
        was = (min(r[1] for r in rows), max(r[2] for r in rows))
        declared = [str(r[0]) for r in rows]
        conn.execute(queries.FORGET_EMITTED, {"verdict_ids": declared})
        correction = CorrectionPayload(
            verdict="verdict_correction",
            declared=declared,
            replacement=p,
            withdrawn=None,
            reason=catalog.corrected(was, (op.start, op.end)),
            computed_at=computed_at,
        )
        outbox_id = _outbox(conn, "verdict_correction", msgspec.to_builtins(correction))
        out.corrections += 1
    else:
        outbox_id = _outbox(conn, p.verdict, msgspec.to_builtins(p))
        out.new += 1
    conn.execute(
        queries.NOTE_EMITTED,
        {
            **key,
            "start_time": op.start,
            "end_time": op.end,
            "outbox_id": outbox_id,
            "asset_id": p.asset_id,
            "verdict_id": p.verdict_id,
            "fingerprint": fp,
        },
    )
    out.kept.add(p.verdict_id)
    return not rows


def withdraw(conn: Conn, op: Withdraw, out: Outcome, now: datetime | None = None) -> int:
    """Withdraw the window's emitted verdicts no emission of the plan kept; return how many."""
    rows = conn.execute(
        queries.EMITTED_INSIDE,
        {
            "kind": op.verdict,
            "series_id": op.series_id,
            "rule_ids": [rule_id for rule_id, _kind in op.rules],
            "asset_id": op.asset_id,
            "t_lo": op.t_lo,
            "t_hi": op.t_hi,
        },
    ).fetchall()
    gone = [r for r in rows if str(r[0]) not in out.kept]
    if not gone:
        return 0
    conn.execute(queries.FORGET_EMITTED, {"verdict_ids": [str(r[0]) for r in gone]})
    computed_at = iso_utc(now or datetime.now(UTC))
    kinds = dict(op.rules)
    for verdict_id, rule_id, start, end in gone:
        correction = CorrectionPayload(
            verdict="verdict_correction",
            declared=[str(verdict_id)],
            replacement=None,
            withdrawn=WithdrawnVerdict(
                verdict_id=str(verdict_id),
                verdict="excursion_closed" if op.verdict == "excursion_closed" else "chain_break",
                kind=kinds[str(rule_id)],
                rule_id=str(rule_id),
                asset_id=op.asset_id,
                series_id=op.series_id,
                device_id=op.device_id,
                channel=op.channel,
                product_class=op.product_class,
                pack_id=op.pack_id,
                pack_version=op.pack_version,
                start=iso_utc(start),
                end=iso_utc(end),
            ),
            reason=catalog.withdrawn(start, end),
            computed_at=computed_at,
        )
        _outbox(conn, "verdict_correction", msgspec.to_builtins(correction))
        out.corrections += 1
    return len(gone)


def _outbox(conn: Conn, kind: str, payload: Any) -> int:
    row = conn.execute(queries.OUTBOX, {"kind": kind, "payload": Jsonb(payload)}).fetchone()
    assert row is not None
    return int(row[0])
