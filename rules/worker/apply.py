"""Stage 2 (verdicts): carry out a worker `Plan` on the run's connection, inside its one transaction.

Moves rows and makes no decisions beyond those the plan names: an `Emit` writes its outbox row only
if the ledger does not hold the verdict as it is, a correction when it holds it with other figures
(`rules.worker.corrections`), and its follow-up ops run only for a new verdict; a `Withdraw` corrects
the emitted verdicts of a window no emission kept; a `ResolveAlarm` may wait for no open excursion on
the asset, or for a new emission in the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
import psycopg
from psycopg.types.json import Jsonb

from rules import alarms, queries
from rules.models import from_epoch_us
from rules.worker import corrections
from rules.worker.plan import (
    DeleteBreak,
    DeleteRuns,
    Emit,
    EmitLot,
    History,
    Op,
    Plan,
    RaiseAlarm,
    ResolveAlarm,
    StoreShelfLife,
    UpdateBreak,
    UpsertBreak,
    UpsertExcursion,
    Withdraw,
)

Conn = psycopg.Connection[tuple[Any, ...]]

_DELETE = {
    "excursion": queries.DELETE_EXCURSIONS_IN,
    "gap": queries.DELETE_GAPS_IN,
    "profile": queries.DELETE_PROFILE_BREAKS_IN,
    "door": queries.DELETE_STATE_BREAKS_IN,
    "power": queries.DELETE_STATE_BREAKS_IN,
}


@dataclass(slots=True)
class RunStats:
    """What one run_once did (for logs and metrics)."""

    batches: int = 0
    series: int = 0
    excursions: int = 0
    gaps: int = 0
    emitted: int = 0
    alarms: int = 0
    history: int = 0
    lots: int = 0  # lots judged (on telemetry or on a custody change)
    lot_verdicts: int = 0
    custody_seqs: int = 0  # ledger seqs whose custody changes were judged
    breaks: int = 0  # profile chain breaks (single event, cumulative, band, MKT) written
    corrections: int = 0  # verdicts the ledger holds that late data changed or removed
    flow_violations: int = 0  # import-flow violations raised or withdrawn
    lots_quarantined: int = 0  # lots whose judging raised (kept in lot_quarantine, the run going on)
    crossings: int = 0  # geofence crossings added, moved or withdrawn
    profile_excursions: int = 0  # runs and gaps written under a shipment profile (rules.worker.shipper)
    verdicts: dict[str, int] = field(default_factory=dict)  # verdict_outbox rows written, by kind
    pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # alarm events after commit


def apply(conn: Conn, plan: Plan, stats: RunStats) -> None:
    """Apply the plan's ops in order."""
    emitted: set[str] = set()
    outcome = corrections.Outcome()
    for op in plan.ops:
        _apply(conn, op, stats, emitted, outcome)
    stats.corrections += outcome.corrections


def _apply(conn: Conn, op: Op, stats: RunStats, emitted: set[str], outcome: corrections.Outcome) -> None:
    match op:
        case DeleteRuns():
            conn.execute(
                _DELETE[op.table],
                {
                    "kind": op.table,
                    "series_id": op.series_id,
                    "asset_id": op.asset_id,
                    "mkt_rule": op.mkt_rule,
                    "t_lo": op.t_lo,
                    "t_hi": op.t_hi,
                },
            )
        case UpsertExcursion():
            conn.execute(
                queries.UPSERT_EXCURSION,
                {
                    "series_id": op.series_id,
                    "asset_id": op.asset_id,
                    "product_class": op.product_class,
                    "rule_id": op.rule_id,
                    "pack_version": op.pack_version,
                    "start_time": op.start,
                    "end_time": op.end,
                    "open": op.open,
                    "peak_c": op.peak_c,
                    "limit_low_c": op.limit_low_c,
                    "limit_high_c": op.limit_high_c,
                    "readings": op.readings,
                },
            )
            stats.excursions += 1
        case UpsertBreak():
            conn.execute(
                queries.UPSERT_CHAIN_BREAK,
                {
                    "kind": op.kind,
                    "series_id": op.series_id,
                    "asset_id": op.asset_id,
                    "rule_id": op.rule_id,
                    "pack_version": op.pack_version,
                    "start_time": op.start,
                    "end_time": op.end,
                    "allowed_s": op.allowed_s,
                    "detail": Jsonb(op.detail),
                },
            )
            if op.kind == "gap":
                stats.gaps += 1
            elif op.kind == "excursion":
                stats.breaks += 1
        case UpdateBreak():
            conn.execute(
                queries.UPDATE_MKT_BREAK,
                {"chain_break_id": op.chain_break_id, "end_time": op.end, "detail": Jsonb(op.detail)},
            )
            stats.breaks += 1
        case DeleteBreak():
            conn.execute(queries.DELETE_CHAIN_BREAK, {"chain_break_id": op.chain_break_id})
            stats.breaks += 1
        case RaiseAlarm():
            change = alarms.raise_or_update(conn, op.condition)
            if change is not None:
                stats.pending.append(change)
                stats.alarms += 1
        case ResolveAlarm():
            _resolve(conn, op, stats, emitted)
        case Emit():
            written = outcome.new + outcome.corrections
            if corrections.emit(conn, op, outcome):
                emitted.add(op.rule_id)
                for then in op.then:
                    _apply(conn, then, stats, emitted, outcome)
            if outcome.new + outcome.corrections > written:
                stats.emitted += 1
                stats.verdicts[op.payload.verdict] = stats.verdicts.get(op.payload.verdict, 0) + 1
        case Withdraw():
            corrections.withdraw(conn, op, outcome)
        case History():
            conn.execute(
                queries.INSERT_HISTORY,
                {
                    "subject_kind": op.subject_kind,
                    "subject_id": op.subject_id,
                    "version": op.version,
                    "verdict": op.verdict,
                    "product_class": op.product_class,
                    "pack_id": op.pack_id,
                    "pack_version": op.pack_version,
                    "items": Jsonb(op.items),
                    "reasons": Jsonb(op.reasons),
                    "arrived": Jsonb(op.arrived),
                    "change": Jsonb(op.change),
                    "span_end": op.span_end,
                },
            )
            stats.history += 1
        case EmitLot():
            conn.execute(queries.LOT_VERDICT_OUTBOX, {"payload": Jsonb(msgspec.to_builtins(op.payload))})
            stats.lot_verdicts += 1
            stats.verdicts[op.payload.verdict] = stats.verdicts.get(op.payload.verdict, 0) + 1
        case StoreShelfLife():
            _store_shelf(conn, op)


def _store_shelf(conn: Conn, op: StoreShelfLife) -> None:
    sl = op.shelf
    if sl is None:
        conn.execute(queries.DELETE_LOT_SHELF_LIFE, {"lot_id": op.lot_id})
        return
    conn.execute(
        queries.UPSERT_LOT_SHELF_LIFE,
        {
            "lot_id": op.lot_id,
            "product_class": op.product_class,
            "pack_id": op.pack_id,
            "pack_version": op.pack_version,
            "verdict_version": op.verdict_version,
            "model": sl.model,
            "ref_c": sl.ref_c,
            "ref_life_h": sl.ref_life_h,
            "used": sl.used,
            "remaining_h": sl.remaining_h,
            "evidence_s": sl.evidence_s,
            "unevidenced_s": sl.unevidenced_s,
            "first_time": None if sl.first_ms is None else from_epoch_us(sl.first_ms * 1000),
            "as_of": None if sl.as_of_ms is None else from_epoch_us(sl.as_of_ms * 1000),
        },
    )


def _resolve(conn: Conn, op: ResolveAlarm, stats: RunStats, emitted: set[str]) -> None:
    if op.after_new_emit is not None and op.after_new_emit not in emitted:
        return
    if op.unless_open_excursion:
        still = conn.execute(
            queries.OPEN_EXCURSION_ON_ASSET, {"asset_id": op.asset_id, "rule_id": op.rule_id}
        ).fetchone()
        if still is not None:
            return
    cleared = alarms.auto_resolve(
        conn, asset_id=op.asset_id, rule_id=op.rule_id, condition_end=op.condition_end, note=op.note
    )
    if cleared is not None:
        stats.pending.append(("resolved", cleared))
        if op.counted:
            stats.alarms += 1
