"""Stage 2 (verdicts): custody changes: the ledger seqs whose lots the worker re-judges, and its watermark.

The ledger stage derives custody (`custody_leg`, `containment`) from the events it appends; the rules
stage only reads those tables. Its own `custody_watermark` row holds the highest ledger seq whose custody
effects it has judged. A run locks the row ``FOR UPDATE SKIP LOCKED`` (a worker that finds it held leaves
the work to its holder), takes the next seqs after it, at most `limit` of them (`seq_range`, pure), finds
the lots those seqs moved, directly or through the units containing them (`moved_lots`), and advances the
row in the transaction that writes the lots' verdicts; a crash before commit leaves the seqs to be
taken again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from rules import queries

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class SeqRange:
    """The ledger seqs (lo, hi] a run judges."""

    lo: int
    hi: int

    def arrived(self) -> dict[str, Any]:
        """verdict_history's `arrived` for a lot re-judged on a custody change: the seqs, inclusive."""
        return {"custody_seq": [self.lo + 1, self.hi]}


def seq_range(judged: int, head: int, limit: int) -> SeqRange | None:
    """The next at most `limit` seqs after the watermark `judged`, up to the ledger's `head`; None when
    the watermark is at the head."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    if head <= judged:
        return None
    return SeqRange(judged, min(head, judged + limit))


def lock(conn: Conn) -> int | None:
    """Lock the watermark row (in the caller's transaction) and return it; None when another worker
    holds it."""
    row = conn.execute(queries.LOCK_CUSTODY_WATERMARK).fetchone()
    return None if row is None else int(row[0])


def head(conn: Conn) -> int:
    """The ledger's last seq (0 when it is empty)."""
    row = conn.execute(queries.LEDGER_HEAD).fetchone()
    return 0 if row is None else int(row[0])


def moved_lots(conn: Conn, seqs: SeqRange) -> list[tuple[str, str]]:
    """(lot_id, product_class) of every lot whose custody legs the seqs changed, in lot order."""
    rows = conn.execute(queries.LOTS_MOVED, {"lo": seqs.lo, "hi": seqs.hi}).fetchall()
    return [(str(lot_id), str(pc)) for lot_id, pc in rows]


def advance(conn: Conn, seqs: SeqRange) -> None:
    """Move the watermark to the range's last seq (in the transaction that judged it)."""
    conn.execute(queries.ADVANCE_CUSTODY_WATERMARK, {"seq": seqs.hi})
