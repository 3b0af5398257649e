"""Stage 2 (verdicts): taking the gateway's telemetry outbox (ingest_batch rows) for one run.

Rows are taken ``FOR UPDATE SKIP LOCKED`` (workers side by side never take the same row) and deleted
in the transaction that writes their verdicts, so a crash before commit leaves them to be taken again.
`touched` folds the rows into one device-time window per series (pure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from rules import queries
from rules.models import iso_utc

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Batch:
    batch_id: int
    series_ids: list[int]
    t_min: datetime
    t_max: datetime
    committed_at: datetime  # when the gateway committed it


@dataclass(frozen=True, slots=True)
class Touched:
    """What arrived for one series in this run."""

    t_min: datetime
    t_max: datetime
    batch_ids: list[int]
    committed_at: datetime  # the earliest of its batches

    def arrived(self) -> dict[str, Any]:
        """verdict_history's `arrived`: the batches and their device-time window."""
        return {"batch_ids": self.batch_ids, "t_min": iso_utc(self.t_min), "t_max": iso_utc(self.t_max)}


def take(conn: Conn, limit: int) -> list[Batch]:
    """Lock up to `limit` telemetry rows of the outbox (in the caller's transaction)."""
    rows = conn.execute(queries.TAKE_TELEMETRY_BATCHES, {"limit": limit}).fetchall()
    return [Batch(int(b), list(s), lo, hi, at) for b, s, lo, hi, at in rows]


def touched(batches: Sequence[Batch]) -> dict[int, Touched]:
    """Per series: the union of its batches' windows, their ids, the earliest commit."""
    out: dict[int, Touched] = {}
    for b in batches:
        for sid in b.series_ids:
            t = out.get(sid)
            if t is None:
                out[sid] = Touched(b.t_min, b.t_max, [b.batch_id], b.committed_at)
            else:
                out[sid] = Touched(
                    min(t.t_min, b.t_min),
                    max(t.t_max, b.t_max),
                    [*t.batch_ids, b.batch_id],
                    min(t.committed_at, b.committed_at),
                )
    return out


def done(conn: Conn, batches: Sequence[Batch]) -> None:
    """Delete the taken rows (in the transaction that wrote their verdicts)."""
    conn.execute(queries.DELETE_BATCHES, {"batch_ids": [b.batch_id for b in batches]})
