"""Stage 2 (verdicts): the flow checker: import-flow violations of the lots the ledger's import steps moved.

The ledger stage derives each batch's import steps (``import_step``) from the events it appends; this
stage only reads them. The run that judges the custody changes of a range of ledger seqs
(`rules.worker.custody`: under its watermark, locked ``FOR UPDATE SKIP LOCKED`` and advanced in the same
transaction) also checks, for each registered lot with an import step among those seqs, the lot's whole
flow (`rules.engine.flow`, pure) against the flow chain breaks it stored before:

* a new violation becomes a chain_break row of kind 'flow' (the lot, the asset holding it at the
  offending step when one is known, rule ``flow/<violation>``), a 'flow_violation' for the ledger and an
  alarm on that asset (rule ``flow/<violation>/<lot>``, so each lot has its own);
* a stored violation the flow no longer shows (a step recorded late, dated before the offending one, or
  the offending step's event declared wrong) is deleted, the ledger hears of its withdrawal, and its alarm
  resolves when no violation of its rule remains on the lot;
* a violation is known by its rule, offending step and missing step (two steps missing before one release
  are two violations); one whose reason changed (a late step: the missing one is now another, the totals
  or the inspection it follows differ) is withdrawn and raised again with the reason as it stands, and the
  alarm takes that reason.

The lots judged are those with an import step among the seqs and those whose step's event an
errorDeclaration among them declares wrong (the flow reads only the steps of events not declared).

A crash before commit leaves the seqs to be taken again. Only the holder of the custody watermark writes
flow chain breaks, so two workers never judge a lot's flow at once (no lot lock: a run takes the lot
verdicts' locks in another order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import psycopg
from psycopg.types.json import Jsonb

from rules import alarms, queries
from rules.engine import catalog, flow
from rules.models import FlowViolationPayload, iso_utc, to_epoch_ms
from rules.worker import custody

Conn = psycopg.Connection[tuple[Any, ...]]

# The version of the flow rules stored with each violation (chain_break.pack_version): the flow's order and
# violations are those of rules.engine.flow, not of a rule pack.
FLOW_RULES_VERSION = "1"


@dataclass(slots=True)
class FlowRun:
    """What one run of the checker did."""

    seqs: int = 0
    lots: int = 0
    raised: int = 0
    withdrawn: int = 0
    pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # alarm events after commit


def alarm_rule_id(violation: str, lot_id: str) -> str:
    """The alarm's rule id: one alarm per lot and violation on the asset."""
    return f"{catalog.flow_rule_id(violation)}/{lot_id}"


# A violation as stored and as found: (rule id, offending step's seq, the missing step or None).
Key = tuple[str, int, str | None]


def verdict_id(rule_id: str, lot_id: str, t: datetime, seq: int, missing: str | None = None) -> str:
    """The violation's verdict id: one per lot, rule, offending step and (step_missing) missing step."""
    base = f"flow_violation:{rule_id}:{lot_id}:{to_epoch_ms(t)}:{seq}"
    return base if missing is None else f"{base}:{missing}"


def judge(conn: Conn, seqs: custody.SeqRange, now: datetime) -> FlowRun:
    """Judge the flow of the lots with an import step among the seqs (in the caller's transaction, which
    holds the custody watermark and advances it past them)."""
    run = FlowRun()
    lots = [str(r[0]) for r in conn.execute(queries.FLOW_LOTS_MOVED, {"lo": seqs.lo, "hi": seqs.hi})]
    for lot_id in lots:
        judge_lot(conn, lot_id, now, run)
    run.seqs = seqs.hi - seqs.lo
    return run


def steps_of(conn: Conn, lot_id: str) -> list[flow.FlowStep]:
    """The lot's import steps as the ledger derived them."""
    return [
        flow.FlowStep(
            step=str(step),
            seq=int(seq),
            t=t,
            quantity=quantity,
            uom=uom,
            conformant=conformant,
            site=site,
            certificates=tuple(certificates or ()),
            trace_code=code,
            disinfection_required=bool(required),
        )
        for step, seq, t, quantity, uom, conformant, site, certificates, code, required in conn.execute(
            queries.FLOW_STEPS_OF_LOT, {"lot_id": lot_id}
        )
    ]


def judge_lot(conn: Conn, lot_id: str, now: datetime, run: FlowRun) -> None:
    """Check one lot's flow and bring its flow chain breaks, ledger hand-overs and alarms up to date."""
    found = flow.check(steps_of(conn, lot_id)).violations
    stored = conn.execute(queries.FLOW_BREAKS_OF_LOT, {"lot_id": lot_id}).fetchall()
    have: dict[Key, Sequence[Any]] = {(str(r[1]), int(r[2]), r[5].get("missing")): r for r in stored}
    wanted: dict[Key, flow.Violation] = {(v.rule_id, v.seq, v.missing): v for v in found}
    # Stale first (the replacement takes the same key): gone from the flow, or its reason changed.
    stale = [k for k, r in have.items() if k not in wanted or r[5].get("reason") != wanted[k].reason]
    for key in stale:
        _withdraw(conn, lot_id, have[key], now, run, remaining=[k for k in wanted if k[0] == key[0]])
    asset_of = {k: None if r[3] is None else str(r[3]) for k, r in have.items() if k not in stale}
    for key, v in wanted.items():
        if key not in asset_of:
            asset_of[key] = _raise(conn, lot_id, v, now, run)
    # A rule's alarm states the lot's latest violation of it still standing (one withdrawn may have been it).
    for rule_id in {k[0] for k in stale}:
        standing = [k for k in wanted if k[0] == rule_id]
        if standing:
            _alarm(conn, lot_id, wanted[standing[-1]], asset_of[standing[-1]], run)
    run.lots += 1


def _raise(conn: Conn, lot_id: str, v: flow.Violation, now: datetime, run: FlowRun) -> str | None:
    """Store a violation found, hand it to the ledger and raise its alarm; the asset it names (or None)."""
    holder = conn.execute(queries.FLOW_HOLDER_AT, {"lot_id": lot_id, "t": v.t, "seq": v.seq}).fetchone()
    asset_id = None if holder is None else str(holder[0])
    event = conn.execute(queries.FLOW_EVENT_ID, {"seq": v.seq}).fetchone()
    detail = {"seq": v.seq, "violation": v.violation, "reason": v.reason, "missing": v.missing}
    conn.execute(
        queries.INSERT_FLOW_BREAK,
        {
            "asset_id": asset_id,
            "lot_id": lot_id,
            "rule_id": v.rule_id,
            "pack_version": FLOW_RULES_VERSION,
            "t": v.t,
            "detail": Jsonb(detail),
        },
    )
    _outbox(
        conn,
        FlowViolationPayload(
            verdict="flow_violation",
            verdict_id=verdict_id(v.rule_id, lot_id, v.t, v.seq, v.missing),
            lot_id=lot_id,
            rule_id=v.rule_id,
            violation=v.violation,
            reason=v.reason,
            missing=v.missing,
            event_seq=v.seq,
            event_id=None if event is None else str(event[0]),
            event_time=iso_utc(v.t),
            asset_id=asset_id,
            computed_at=iso_utc(now),
        ),
    )
    run.raised += 1
    _alarm(conn, lot_id, v, asset_id, run)
    return asset_id


def _alarm(conn: Conn, lot_id: str, v: flow.Violation, asset_id: str | None, run: FlowRun) -> None:
    """Open the violation's alarm on the asset, or have the open one state this violation's reason."""
    if asset_id is None:
        return  # no asset held the lot: the chain break and the ledger event say it, no alarm can
    change = alarms.raise_or_update(
        conn,
        alarms.Condition(
            asset_id=asset_id,
            rule_id=alarm_rule_id(v.violation, lot_id),
            kind=catalog.FLOW.kind,
            severity=catalog.FLOW.severity or "critical",
            series_id=None,
            product_class=None,
            pack_version=FLOW_RULES_VERSION,
            reason=catalog.flow_alarm(lot_id, v.reason),
            condition_start=v.t,
            condition_end=v.t,
            peak_c=None,
            trigger_committed_at=None,
        ),
    )
    if change is not None:
        run.pending.append(change)


def _withdraw(
    conn: Conn,
    lot_id: str,
    row: Sequence[Any],
    now: datetime,
    run: FlowRun,
    *,
    remaining: list[Key],
) -> None:
    chain_break_id, rule_id, seq, asset_id, t, detail = row
    conn.execute(queries.DELETE_FLOW_BREAK, {"chain_break_id": chain_break_id})
    violation = str(detail.get("violation") or rule_id.removeprefix(catalog.FLOW_RULE_PREFIX))
    _outbox(
        conn,
        FlowViolationPayload(
            verdict="flow_violation",
            verdict_id=verdict_id(str(rule_id), lot_id, t, int(seq), detail.get("missing")),
            lot_id=lot_id,
            rule_id=str(rule_id),
            violation=violation,
            reason=catalog.FLOW_CLEARED,
            missing=detail.get("missing"),
            event_seq=int(seq),
            event_id=None,
            event_time=iso_utc(t),
            asset_id=asset_id,
            computed_at=iso_utc(now),
            withdrawn=True,
        ),
    )
    run.withdrawn += 1
    if asset_id is None or remaining:
        return
    cleared = alarms.auto_resolve(
        conn,
        asset_id=str(asset_id),
        rule_id=alarm_rule_id(violation, lot_id),
        condition_end=t,
        note=catalog.FLOW_CLEARED,
    )
    if cleared is not None:
        run.pending.append(("resolved", cleared))


def _outbox(conn: Conn, payload: FlowViolationPayload) -> None:
    conn.execute(queries.FLOW_OUTBOX, {"payload": Jsonb(msgspec.to_builtins(payload))})
