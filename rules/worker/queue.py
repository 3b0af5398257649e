"""Stage 2 (verdicts): the rules queue's side rooms: telemetry waiting for the registry, poison batches.

Telemetry whose device had no mount, or whose asset had no class, over part of its window is not
consumed silently: it waits in `rules_waiting` (one row per series, windows merged) with a signature of
what its judging depends on in the registry, and is taken again by the first run after that changes.
A telemetry batch whose evaluation raises is taken off `ingest_batch` into `batch_quarantine` with its
error, and an alarm (rule ``rules/quarantine``) is raised on every asset its series were on, so the
queue goes on; `requeue` sends it back once the cause is fixed. A lot whose judging raises is kept in
`lot_quarantine` with its error and the same alarm on the asset holding it, until a later judging of it
succeeds. The alarm's reason is a fixed phrase (the error stays in the table and the log), and it
resolves once nothing quarantined remains on the asset: a requeued batch judged, a lot judged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import structlog
from psycopg.types.json import Jsonb

from rules import alarms, queries
from rules.engine import catalog
from rules.worker.outbox import Batch, Touched

log = structlog.get_logger("rules.queue")

Conn = psycopg.Connection[tuple[Any, ...]]

# The class code an asset's quarantine alarm carries (its duties route by it): the class the asset is judged
# by over [t_lo, t_hi], given its configured class (the worker's, `RulesWorker._judged_by`).
ClassOf = Callable[[str, str | None, datetime, datetime], str | None]

# Waiting series a run takes at most (bounds the run when the registry changes for many devices at once).
WAITING_PER_RUN = 64


def note_waiting(conn: Conn, series_id: int, device_id: str, w: Touched, reason: str) -> None:
    """Keep the window of a series the run could not judge (reason 'unmounted' or 'no_class')."""
    conn.execute(
        queries.NOTE_WAITING,
        {
            "series_id": series_id,
            "device_id": device_id,
            "t_min": w.t_min,
            "t_max": w.t_max,
            "batch_ids": w.batch_ids,
            "reason": reason,
        },
    )


def take_waiting(conn: Conn, limit: int = WAITING_PER_RUN) -> dict[int, Touched]:
    """The waiting windows whose registry changed since they were noted (taken off the table)."""
    rows = conn.execute(queries.TAKE_WAITING, {"limit": limit}).fetchall()
    return {int(sid): Touched(lo, hi, [int(b) for b in ids], at) for sid, lo, hi, ids, at in rows}


def merge(windows: dict[int, Touched], more: dict[int, Touched]) -> dict[int, Touched]:
    """`windows` with `more` folded in, per series (the union of the windows, every batch id)."""
    out = dict(windows)
    for sid, t in more.items():
        have = out.get(sid)
        out[sid] = (
            t
            if have is None
            else Touched(
                min(have.t_min, t.t_min),
                max(have.t_max, t.t_max),
                [*have.batch_ids, *t.batch_ids],
                min(have.committed_at, t.committed_at),
            )
        )
    return out


def error_text(exc: BaseException) -> str:
    """What the quarantine keeps of an error: its type and first line."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def quarantine(
    conn: Conn, batch: Batch, exc: BaseException, class_of: ClassOf
) -> list[tuple[str, dict[str, Any]]]:
    """Take the batch off the queue with its error and raise the quarantine alarm on its assets (in the
    caller's transaction); returns the alarm events to publish after commit (none when another worker
    had taken the batch meanwhile)."""
    row = conn.execute(
        queries.QUARANTINE_BATCH, {"batch_id": batch.batch_id, "error": error_text(exc)}
    ).fetchone()
    return [] if row is None else _alarm(conn, batch, exc, class_of)


def quarantine_waiting(
    conn: Conn, series_id: int, w: Touched, exc: BaseException, class_of: ClassOf
) -> list[tuple[str, dict[str, Any]]]:
    """Take a waiting window whose judging raised off `rules_waiting` into quarantine (under its latest
    batch id) with the quarantine alarm, as `quarantine` does for a batch."""
    row = conn.execute(
        queries.QUARANTINE_WAITING, {"series_id": series_id, "error": error_text(exc)}
    ).fetchone()
    if row is None:
        return []
    return _alarm(conn, Batch(int(row[0]), [series_id], w.t_min, w.t_max, w.committed_at), exc, class_of)


def _alarm(
    conn: Conn, batch: Batch, exc: BaseException, class_of: ClassOf
) -> list[tuple[str, dict[str, Any]]]:
    """The quarantine alarm on every asset the batch's series were on over its window."""
    reason = catalog.quarantined(batch.batch_id)
    assets = conn.execute(
        queries.ASSETS_OF_SERIES, {"series_ids": batch.series_ids, "t_lo": batch.t_min, "t_hi": batch.t_max}
    ).fetchall()
    log.error(
        "rules.batch_quarantined",
        batch_id=batch.batch_id,
        error=error_text(exc),
        assets=[a for a, _ in assets],
    )
    events = []
    for asset_id, product_class in assets:
        change = _raise(
            conn,
            asset_id,
            class_of(asset_id, product_class, batch.t_min, batch.t_max),
            reason,
            batch.series_ids[0] if batch.series_ids else None,
            (batch.t_min, batch.t_max),
            batch.committed_at,
        )
        if change is not None:
            events.append(change)
    return events


def _raise(
    conn: Conn,
    asset_id: str,
    product_class: str | None,
    reason: str,
    series_id: int | None,
    span: tuple[datetime, datetime],
    committed_at: datetime | None,
) -> tuple[str, dict[str, Any]] | None:
    """Open (or update) the quarantine alarm of the asset."""
    return alarms.raise_or_update(
        conn,
        alarms.Condition(
            asset_id=asset_id,
            rule_id=catalog.QUARANTINE_RULE_ID,
            kind=catalog.QUARANTINE.kind,
            severity=catalog.QUARANTINE.severity or "critical",
            series_id=series_id,
            product_class=product_class,
            pack_version=None,
            reason=reason,
            condition_start=span[0],
            condition_end=span[1],
            peak_c=None,
            trigger_committed_at=committed_at,
        ),
    )


def quarantine_lot(
    conn: Conn,
    lot_id: str,
    product_class: str,
    arrived: dict[str, Any],
    exc: BaseException,
    class_of: ClassOf,
) -> list[tuple[str, dict[str, Any]]]:
    """Keep a lot whose judging raised in `lot_quarantine` with its error and raise the quarantine alarm on
    the asset holding it, if any (in the caller's transaction, the lot's savepoint rolled back); returns
    the alarm events to publish after commit."""
    holder = conn.execute(queries.LOT_HOLDER, {"lot_id": lot_id}).fetchone()
    asset_id = None if holder is None else str(holder[0])
    conn.execute(
        queries.QUARANTINE_LOT,
        {
            "lot_id": lot_id,
            "product_class": product_class,
            "asset_id": asset_id,
            "arrived": Jsonb(arrived),
            "error": error_text(exc),
        },
    )
    log.error("rules.lot_quarantined", lot_id=lot_id, error=error_text(exc), asset=asset_id)
    if holder is None or asset_id is None:
        return []
    _asset, configured, since, now = holder
    change = _raise(
        conn,
        asset_id,
        class_of(asset_id, configured, since, now),
        catalog.lot_quarantined(lot_id),
        None,
        (now, now),
        None,
    )
    return [] if change is None else [change]


def release_lot(conn: Conn, lot_id: str) -> list[tuple[str, dict[str, Any]]]:
    """A lot judged without error leaves quarantine (if it was there), its alarm resolving when nothing
    else quarantined remains on its asset; returns the alarm events to publish after commit."""
    row = conn.execute(queries.RELEASE_LOT, {"lot_id": lot_id}).fetchone()
    if row is None or row[0] is None:
        return []
    return _clear(conn, [str(row[0])], row[1])


def cleared(conn: Conn, series_id: int, w: Touched) -> list[tuple[str, dict[str, Any]]]:
    """A waiting window (a requeued batch among them) judged without error: the quarantine alarm of each
    asset its series was on resolves when nothing quarantined remains there."""
    assets = conn.execute(
        queries.ASSETS_OF_SERIES, {"series_ids": [series_id], "t_lo": w.t_min, "t_hi": w.t_max}
    ).fetchall()
    return _clear(conn, [str(a) for a, _ in assets], w.t_max)


def _clear(conn: Conn, asset_ids: list[str], end: datetime) -> list[tuple[str, dict[str, Any]]]:
    """Resolve the quarantine alarm of each asset on which nothing quarantined remains."""
    events = []
    for asset_id in asset_ids:
        row = conn.execute(queries.QUARANTINE_REMAINS, {"asset_id": asset_id}).fetchone()
        if row is not None and row[0]:
            continue
        done = alarms.auto_resolve(
            conn,
            asset_id=asset_id,
            rule_id=catalog.QUARANTINE_RULE_ID,
            condition_end=end,
            note=catalog.QUARANTINE_CLEARED,
        )
        if done is not None:
            events.append(("resolved", done))
    return events


@dataclass(frozen=True, slots=True)
class Quarantined:
    batch_id: int
    series_ids: list[int]
    t_min: datetime
    t_max: datetime
    created_at: datetime
    error: str
    quarantined_at: datetime


def quarantined(conn: Conn) -> list[Quarantined]:
    """The batches in quarantine, oldest first."""
    return [
        Quarantined(int(r[0]), list(r[1]), r[2], r[3], r[4], str(r[5]), r[6])
        for r in conn.execute(queries.QUARANTINED).fetchall()
    ]


def requeue(conn: Conn, batch_id: int) -> bool:
    """Send a quarantined batch back to the worker (its series wait for the next run); False if unknown."""
    return bool(conn.execute(queries.REQUEUE_QUARANTINED, {"batch_id": batch_id}).fetchall())
