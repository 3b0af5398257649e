"""Stage 2 (verdicts): the live class profile at a series' latest reading: its alarms and the MKT break.

Pure. Three slices of one read: *now*, the class look-back ending at the series' latest reading (MKT
over its whole window from the prefix the adapter aggregated, so a 30-day window is never read);
*touched*, [lo − look-back, hi]; *before*, [lo − look-back, lo). A breach standing now, or found in
the touched slice but not before it (new data made it), opens or updates the asset's alarm under its
own rule id; a profile rule not standing now is resolved, and so is a momentary one (an instant
trigger, a reading within the device accuracy of a limit) whose condition no longer holds at the
latest reading. The breaches standing now are what the series verdict rests on beside its stored
rows.

MKT is judged at the latest reading over the class's window, so its chain_break row covers the
readings at which it was judged above the limit, from the first to the latest; it stays open while
MKT stands above the limit and is closed when it no longer does. Late data that brings MKT back
under the limit at a reading already judged takes that reading off the row (the row goes when
nothing is left).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from rules import engine
from rules.engine import catalog
from rules.models import from_epoch_us, to_epoch_ms
from rules.packs import ClassRef
from rules.worker.plan import DeleteBreak, Emit, Plan, ResolveAlarm, Segment, UpdateBreak, UpsertBreak
from rules.worker.policy import NO_FIGURES, FloatArray, IntArray, condition, payload

ONE_US = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class StoredMkt:
    """The open MKT chain_break row of the series on the asset."""

    chain_break_id: int
    start: datetime
    end: datetime
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ProfileInputs:
    seg: Segment
    ref: ClassRef
    lo: datetime  # the touched window
    hi: datetime
    latest: datetime  # the series' latest reading while mounted
    t_ms: IntArray  # readings from max(mount, min(lo, latest) − look-back) to latest
    v: FloatArray
    accuracy_c: float | None
    mkt_prefix: engine.MktPrefix | None
    stored_mkt: StoredMkt | None
    calibration_due: date | None = None  # the device's; readings after it are past calibration


def now_from(seg: Segment, ref: ClassRef, latest: datetime) -> datetime:
    """Where the *now* slice starts: the look-back before the latest reading, within the mount."""
    return max(seg.seg_lo, latest - timedelta(seconds=ref.rules.lookback_s))


def plan_profile(inp: ProfileInputs) -> tuple[Plan, list[engine.Breach]]:
    """The profile's alarms (and the MKT row); returns them with the breaches standing now."""
    seg, ref, r = inp.seg, inp.ref, inp.ref.rules
    t_ms, v = inp.t_ms, inp.v
    look = timedelta(seconds=r.lookback_s)
    plan = Plan()

    def breaches(a: datetime, b: datetime, prefix: engine.MktPrefix | None) -> dict[str, engine.Breach]:
        i = int(np.searchsorted(t_ms, to_epoch_ms(a), side="left"))
        j = int(np.searchsorted(t_ms, to_epoch_ms(b), side="right"))
        if not bool((~np.isnan(v[i:j])).any()):
            return {}
        ev = engine.evaluate_series(
            t_ms[i:j],
            v[i:j],
            ref,
            seg.mode,
            accuracy_c=inp.accuracy_c,
            calibration_due=inp.calibration_due,
            mkt_prefix=prefix,
        )
        return {x.rule_id: x for x in ev.breaches}

    mkt_id = catalog.MKT.id(ref)
    now = breaches(now_from(seg, ref, inp.latest), inp.latest, inp.mkt_prefix)
    if r.mkt is not None:
        plan.ops.extend(plan_mkt(seg, ref, inp.latest, now.get(mkt_id), inp.stored_mkt).ops)
    lo, hi = inp.lo, inp.hi
    touched = {k: b for k, b in breaches(lo - look, hi, None).items() if k != mkt_id}
    before = {k: b for k, b in breaches(lo - look, lo - ONE_US, None).items() if k != mkt_id}
    # Momentary rules whose condition cleared at the latest reading: no longer raised for the look-back
    # alone (one new data brought is raised, then resolved below: it happened and is over).
    cleared = engine.momentary_clear(ref, v, inp.accuracy_c) if seg.mounted_now else set()
    for rule_id in sorted((set(now) - cleared) | (set(touched) - set(before))):
        b = now.get(rule_id) or touched[rule_id]
        span = (from_epoch_us(b.start_ms * 1000), from_epoch_us(b.end_ms * 1000))
        plan.add(
            condition(
                seg,
                ref,
                rule_id=rule_id,
                kind=b.kind,
                severity=b.severity,
                span=span,
                peak_c=None,
                reason=b.reason,
            )
        )
    if seg.mounted_now:
        for rule in catalog.profile_rules(r):
            rule_id = rule.id(ref)
            if rule_id not in now:
                plan.add(ResolveAlarm(seg.asset_id, rule_id, inp.latest, catalog.clear_at_latest(rule)))
            elif rule_id in cleared:
                plan.add(ResolveAlarm(seg.asset_id, rule_id, inp.latest, catalog.clear_now(rule)))
    return plan, [now[k] for k in sorted(now)]


def plan_mkt(
    seg: Segment, ref: ClassRef, latest: datetime, standing: engine.Breach | None, row: StoredMkt | None
) -> Plan:
    """The MKT chain break (kind 'excursion', rule …/mkt) after judging MKT at the latest reading."""
    mkt = ref.rules.mkt
    assert mkt is not None
    plan = Plan()
    if standing is None or standing.value is None:
        if row is None:
            return plan
        if row.end < latest:  # judged above the limit up to `end`, not at the latest reading
            plan.add(UpdateBreak(row.chain_break_id, row.end, {**row.detail, "open": False}))
            return plan
        prev = row.detail.get("previous_end")
        if row.start >= latest or prev is None:
            plan.add(DeleteBreak(row.chain_break_id))
        else:
            detail = {**row.detail, "open": False, "previous_end": None}
            plan.add(UpdateBreak(row.chain_break_id, datetime.fromisoformat(prev), detail))
        return plan
    mkt_c = float(standing.value)
    figures = {
        "mkt_c": round(mkt_c, 6),
        "limit_c": mkt.limit_c,
        "window_s": mkt.window_s,
        "delta_h_r_k": mkt.delta_h_r_k,
        "source": mkt.source,
        "mode": seg.mode,
        "pack_id": ref.pack_id,
        "open": True,
    }
    if row is not None:
        if latest > row.end:
            worst = max(mkt_c, float(row.detail.get("max_mkt_c", mkt_c)))
            detail = {
                **row.detail,
                **figures,
                "max_mkt_c": round(worst, 6),
                "previous_end": row.end.isoformat(),
            }
            plan.add(UpdateBreak(row.chain_break_id, latest, detail))
        elif latest == row.end:  # re-judged at the same reading (late data before it)
            worst = max(mkt_c, float(row.detail["max_mkt_c"]))
            plan.add(
                UpdateBreak(
                    row.chain_break_id, row.end, {**row.detail, **figures, "max_mkt_c": round(worst, 6)}
                )
            )
        return plan
    rule_id = catalog.MKT.id(ref)
    detail = {**figures, "max_mkt_c": round(mkt_c, 6), "previous_end": None}
    assert catalog.MKT.break_kind is not None
    plan.add(
        UpsertBreak(
            catalog.MKT.break_kind,
            seg.series_id,
            seg.asset_id,
            rule_id,
            ref.pack_version,
            latest,
            latest,
            0.0,
            detail,
        )
    )
    reason = catalog.mkt(mkt_c, mkt.window_s, mkt.limit_c)
    p = payload(
        seg,
        ref,
        "chain_break",
        catalog.MKT.break_kind,
        rule_id,
        (latest, latest),
        reason,
        None,
        NO_FIGURES,
        0.0,
    )
    plan.add(Emit(p, seg.series_id, rule_id, latest, latest))
    return plan
