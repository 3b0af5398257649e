"""Stage 2 (verdicts): the worker's policy over one slice of a series: excursions, gaps, breaks, alarms.

Pure: what the adapter read (the slice's readings, the device's merged probe readings, the stored
MKT row) goes in, a `Plan` comes out. Rules, kinds, severities and words come from
`rules.engine.catalog`; the break predicates from `rules.engine.breaks`.

A closed excursion, a gap and a profile chain break each go to the ledger once (`Emit`); a new one
raises the asset's alarm under its rule. Late data that changes one the ledger holds corrects it
there, and one the re-judged window no longer holds is withdrawn (`Withdraw`). An excursion still
open at the latest reading keeps the range alarm up; back in range past the hysteresis, the alarm
resolves once no excursion of the asset is open.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from rules import engine
from rules.alarms import Condition
from rules.engine import catalog
from rules.engine.breaks import (
    beyond_accuracy,
    device_accuracy,
    peak_outside,
    single_event_s,
    suspended_by_defrost,
)
from rules.models import VerdictKind, VerdictLimits, VerdictPayload, from_epoch_us, iso_utc, to_epoch_ms
from rules.packs import ClassRef
from rules.worker.plan import (
    DeleteRuns,
    Emit,
    Plan,
    RaiseAlarm,
    ResolveAlarm,
    Segment,
    UpsertBreak,
    UpsertExcursion,
    Withdraw,
)

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Figures:
    """min / max / mean / count of the non-NaN readings of a run (a payload's run figures)."""

    min_c: float | None
    max_c: float | None
    mean_c: float | None
    readings: int


NO_FIGURES = Figures(None, None, None, 0)


def figures(v: FloatArray, i: int, j: int) -> Figures:
    xv = v[i : j + 1]
    xv = xv[~np.isnan(xv)]
    if xv.shape[0] == 0:
        return NO_FIGURES
    return Figures(float(xv.min()), float(xv.max()), float(xv.mean()), int(xv.shape[0]))


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else x


def payload(
    seg: Segment,
    ref: ClassRef,
    verdict: VerdictKind,
    kind: str,
    rule_id: str,
    span: tuple[datetime, datetime],
    reason: str,
    peak_c: float | None,
    run: Figures,
    allowed_s: float | None,
) -> VerdictPayload:
    """The ledger's payload of one closed excursion or chain break."""
    rules = ref.rules
    start, end = span
    return VerdictPayload(
        verdict=verdict,
        verdict_id=f"{verdict}:{rule_id}:{seg.series_id}:{to_epoch_ms(start)}",
        kind=kind,
        reason=reason,
        asset_id=seg.asset_id,
        series_id=seg.series_id,
        device_id=seg.device_id,
        channel=seg.channel,
        product_class=ref.code,
        mode=seg.mode,
        rule_id=rule_id,
        pack_id=ref.pack_id,
        pack_version=ref.pack_version,
        start=iso_utc(start),
        end=iso_utc(end),
        duration_s=(end - start).total_seconds(),
        peak_c=peak_c,
        min_c=run.min_c,
        max_c=run.max_c,
        mean_c=run.mean_c,
        readings=run.readings,
        allowed_s=allowed_s,
        limit_low_c=rules.low_c,
        limit_high_c=rules.high_c,
        limits=VerdictLimits(
            low_c=rules.low_c,
            high_c=rules.high_c,
            low_inclusive=rules.low_inclusive,
            high_inclusive=rules.high_inclusive,
            min_duration_s=rules.min_duration.seconds,
            max_interval_s=rules.max_interval_s(seg.mode),
            source=rules.source,
        ),
    )


def severity(rule: catalog.Rule, ref: ClassRef, duration_s: float, escalate_after_s: int | None) -> str:
    """An alarm's severity: the rule's own, else by the condition's duration: critical from
    `escalate_after_s` on (default: the single-event allowance, else 3 × the minimum duration)."""
    if rule.severity is not None:
        return rule.severity
    after = escalate_after_s
    if after is None:
        single = single_event_s(ref.rules)
        after = single if single is not None else 3 * ref.rules.min_duration.seconds
    return "critical" if duration_s >= after else "warning"


def condition(
    seg: Segment,
    ref: ClassRef,
    *,
    rule_id: str,
    kind: str,
    severity: str,
    span: tuple[datetime, datetime],
    peak_c: float | None,
    reason: str,
) -> RaiseAlarm:
    """Open or update the asset's alarm for this rule."""
    return RaiseAlarm(
        Condition(
            asset_id=seg.asset_id,
            rule_id=rule_id,
            kind=kind,
            severity=severity,
            series_id=seg.series_id,
            product_class=ref.code,
            pack_version=ref.pack_version,
            reason=reason,
            condition_start=span[0],
            condition_end=span[1],
            peak_c=peak_c,
            trigger_committed_at=seg.committed_at,
        )
    )


def alarm(
    seg: Segment,
    ref: ClassRef,
    rule: catalog.Rule,
    span: tuple[datetime, datetime],
    peak_c: float | None,
    reason: str,
    escalate_after_s: int | None,
) -> RaiseAlarm:
    """The alarm of a catalog rule, escalated by the condition's duration where the rule says so."""
    sev = severity(rule, ref, (span[1] - span[0]).total_seconds(), escalate_after_s)
    return condition(
        seg, ref, rule_id=rule.id(ref), kind=rule.kind, severity=sev, span=span, peak_c=peak_c, reason=reason
    )


@dataclass(frozen=True, slots=True)
class SliceInputs:
    """What the adapter read for one slice of a temperature series on one asset."""

    seg: Segment
    ref: ClassRef
    t_lo: datetime  # the slice (widened to clearing readings and stored verdicts)
    t_hi: datetime
    right_unbounded: bool  # no clearing reading after the slice: a run reaching its end may be open
    hi: datetime  # the end of the touched window
    t_us: IntArray  # the series' readings in the slice (epoch µs)
    v: FloatArray
    gap_series_id: int  # the device's first probe series: gaps are filed under it
    gap_channel: str
    g_us: IntArray  # every probe of the device in the slice, merged (gaps are device-wide)
    g_v: FloatArray
    accuracy_c: float | None  # the device's stated accuracy
    escalate_after_s: int | None = None


def plan_slice(inp: SliceInputs) -> Plan:
    """Replace the slice's excursions, gaps and profile breaks; hand new ones to the ledger; alarms."""
    seg, ref, rules = inp.seg, inp.ref, inp.ref.rules
    plan = Plan()
    t_ms = inp.t_us // 1000
    excursions = engine.find_excursions(
        t_ms,
        inp.v,
        low_c=rules.low_c,
        high_c=rules.high_c,
        low_inclusive=rules.low_inclusive,
        high_inclusive=rules.high_inclusive,
        min_duration_ms=rules.min_duration.seconds * 1000,
        hysteresis_c=rules.hysteresis_c,
    )
    mode = seg.mode
    allowed_s = rules.max_interval_s(mode)
    gaps = engine.find_gaps_tight(
        inp.g_us // 1000,
        inp.g_v,
        max_gap_ms=allowed_s * 1000,
        oor_gap_ms=rules.oor_interval_s(mode) * 1000,
        low_c=rules.low_c,
        high_c=rules.high_c,
        low_inclusive=rules.low_inclusive,
        high_inclusive=rules.high_inclusive,
    )
    plan.add(DeleteRuns("excursion", seg.series_id, seg.asset_id, inp.t_lo, inp.t_hi))
    plan.add(DeleteRuns("gap", inp.gap_series_id, seg.asset_id, inp.t_lo, inp.t_hi))

    live = inp.right_unbounded and seg.mounted_now  # the slice reaches the latest reading
    range_id = catalog.RANGE.id(ref)
    open_now: tuple[datetime, datetime, float] | None = None
    for exc in excursions:
        start, end = from_epoch_us(int(inp.t_us[exc.start_idx])), from_epoch_us(int(inp.t_us[exc.end_idx]))
        is_open = exc.reaches_end and live
        plan.add(
            UpsertExcursion(
                seg.series_id,
                seg.asset_id,
                ref.code,
                range_id,
                ref.pack_version,
                start,
                end,
                is_open,
                exc.peak_c,
                rules.low_c,
                rules.high_c,
                exc.readings,
            )
        )
        if is_open:
            open_now = (start, end, exc.peak_c)
            continue
        reason = catalog.range_excursion(rules, exc.peak_c, (end - start).total_seconds())
        run = Figures(_finite(exc.min_c), _finite(exc.max_c), _finite(exc.mean_c), exc.readings)
        p = payload(
            seg,
            ref,
            "excursion_closed",
            catalog.RANGE.kind,
            range_id,
            (start, end),
            reason,
            exc.peak_c,
            run,
            None,
        )
        # An excursion that closed before any alarm saw it open still raises one.
        raise_ = alarm(seg, ref, catalog.RANGE, (start, end), exc.peak_c, reason, inp.escalate_after_s)
        plan.add(Emit(p, seg.series_id, range_id, start, end, then=(raise_,)))

    g_seg = Segment(
        inp.gap_series_id,
        seg.device_id,
        inp.gap_channel,
        seg.asset_id,
        seg.mode,
        seg.seg_lo,
        seg.seg_hi,
        seg.mounted_now,
        seg.committed_at,
    )
    gap_id = catalog.GAP.id(ref)
    limit = rules.max_interval.limit(mode)
    for gap in gaps:
        start, end = from_epoch_us(int(inp.g_us[gap.start_idx])), from_epoch_us(int(inp.g_us[gap.end_idx]))
        gap_s = (end - start).total_seconds()
        detail = {
            "gap_s": gap_s,
            "mode": seg.mode,
            "device_id": seg.device_id,
            "channel": inp.gap_channel,
            "pack_id": ref.pack_id,
            "source": limit.source,
        }
        plan.add(
            UpsertBreak(
                "gap",
                inp.gap_series_id,
                seg.asset_id,
                gap_id,
                ref.pack_version,
                start,
                end,
                float(allowed_s),
                detail,
            )
        )
        gap_allowed_s = gap.allowed_ms / 1000
        reason = catalog.gap(gap_s, gap_allowed_s, seg.mode)
        run = Figures(_finite(gap.min_c), _finite(gap.max_c), _finite(gap.mean_c), gap.readings)
        p = payload(g_seg, ref, "chain_break", "gap", gap_id, (start, end), reason, None, run, gap_allowed_s)
        raise_ = alarm(g_seg, ref, catalog.GAP, (start, end), None, reason, inp.escalate_after_s)
        plan.add(Emit(p, inp.gap_series_id, gap_id, start, end, then=(raise_,)))

    plan.ops.extend(profile_breaks(inp, excursions, live).ops)
    # After every Emit of the window: what the ledger holds there and no emission kept is withdrawn.
    profile = tuple((r.id(ref), r.break_kind or "excursion") for r in PROFILE_BREAK_RULES)
    for verdict, sid, channel, rules_of in (
        ("excursion_closed", seg.series_id, seg.channel, ((range_id, catalog.RANGE.kind),)),
        ("chain_break", inp.gap_series_id, inp.gap_channel, ((gap_id, "gap"),)),
        ("chain_break", seg.series_id, seg.channel, profile),
    ):
        plan.add(
            Withdraw(
                verdict,
                sid,
                seg.asset_id,
                rules_of,
                inp.t_lo,
                inp.t_hi,
                seg.device_id,
                channel,
                ref.code,
                ref.pack_id,
                ref.pack_version,
            )
        )

    if live and open_now is not None:
        o_start, o_end, o_peak = open_now
        reason = catalog.range_excursion(
            rules, o_peak, (o_end - o_start).total_seconds(), start=o_start, still=True
        )
        plan.add(alarm(seg, ref, catalog.RANGE, (o_start, o_end), o_peak, reason, inp.escalate_after_s))
    else:
        n = inp.t_us.shape[0]
        resolve = ResolveAlarm(
            seg.asset_id,
            range_id,
            from_epoch_us(int(inp.t_us[-1])) if n else inp.hi,
            catalog.back_in_range(rules.hysteresis_c),
            unless_open_excursion=True,
            after_new_emit=None if live else range_id,
        )
        plan.add(resolve)
    return plan


# The profile rules whose chain breaks a slice replaces (MKT is judged at the latest reading instead).
PROFILE_BREAK_RULES: Final = (catalog.SINGLE_EVENT, catalog.CUMULATIVE, catalog.BAND)


def profile_breaks(inp: SliceInputs, excursions: list[engine.Excursion], live: bool) -> Plan:
    """Chain breaks (kind 'excursion') of the slice beyond the class's allowances or outside its hard
    band: an excursion longer than the single-event allowance (not one suspended as a defrost or within
    the device accuracy of the limit), time out of range beyond the cumulative allowance within its
    window (the out-of-range readings of the exceeding windows), a run of readings outside the band.
    Rows wholly inside the slice are replaced; each break goes to the ledger once."""
    seg, ref, rules = inp.seg, inp.ref, inp.ref.rules
    plan = Plan()
    plan.add(DeleteRuns("profile", seg.series_id, seg.asset_id, inp.t_lo, inp.t_hi, catalog.MKT.id(ref)))
    t_us, v = inp.t_us, inp.v
    if t_us.shape[0] == 0:
        return plan
    t_ms = t_us // 1000
    low = -math.inf if rules.low_c is None else rules.low_c
    high = math.inf if rules.high_c is None else rules.high_c
    # (rule, first index, last index, allowed_s, peak, detail, reason)
    found: list[tuple[catalog.Rule, int, int, float, float | None, dict[str, Any], str]] = []
    single = single_event_s(rules)
    if single is not None:
        assert rules.allowances is not None
        assert rules.allowances.single_event is not None
        source = rules.allowances.single_event.source
        acc = device_accuracy(ref, inp.accuracy_c)
        for exc in excursions:
            dur_s = exc.duration_ms / 1000
            if dur_s <= single or not beyond_accuracy(rules, exc.peak_c, acc):
                continue
            if suspended_by_defrost(rules, exc.peak_c, exc.duration_ms):
                continue
            still = exc.reaches_end and live
            detail = {"duration_s": dur_s, "peak_c": exc.peak_c, "source": source, "open": still}
            reason = catalog.single_event(dur_s, single, exc.peak_c, still=still)
            found.append(
                (catalog.SINGLE_EVENT, exc.start_idx, exc.end_idx, float(single), exc.peak_c, detail, reason)
            )
    cum = rules.allowances.cumulative if rules.allowances is not None else None
    if cum is not None:
        for i, j, worst_ms in engine.cumulative_breaks(
            t_ms,
            v,
            low_c=rules.low_c,
            high_c=rules.high_c,
            low_inclusive=rules.low_inclusive,
            high_inclusive=rules.high_inclusive,
            window_ms=cum.window_s * 1000,
            allowance_ms=cum.seconds * 1000,
        ):
            peak = peak_outside(v[i : j + 1], low, high)
            detail = {
                "out_of_range_s": worst_ms / 1000,
                "window_s": cum.window_s,
                "peak_c": peak,
                "source": cum.source,
                "open": False,
            }
            reason = catalog.cumulative(worst_ms / 1000, cum.window_s, cum.seconds)
            found.append((catalog.CUMULATIVE, i, j, float(cum.seconds), peak, detail, reason))
    if rules.band is not None:
        band = rules.band
        b_lo = -math.inf if band.low_c is None else band.low_c
        b_hi = math.inf if band.high_c is None else band.high_c
        for i, j in engine.band_breaks(t_ms, v, band):
            peak = peak_outside(v[i : j + 1], b_lo, b_hi)
            still = live and not bool((~np.isnan(v[j + 1 :])).any())
            detail = {
                "band_low_c": band.low_c,
                "band_high_c": band.high_c,
                "peak_c": peak,
                "source": band.source,
                "open": still,
            }
            found.append((catalog.BAND, i, j, 0.0, peak, detail, catalog.band(b_lo, b_hi, peak)))
    for rule, i, j, allowed, peak, detail, reason in found:
        rule_id = rule.id(ref)
        start, end = from_epoch_us(int(t_us[i])), from_epoch_us(int(t_us[j]))
        full = {**detail, "mode": seg.mode, "pack_id": ref.pack_id}
        assert rule.break_kind is not None
        plan.add(
            UpsertBreak(
                rule.break_kind,
                seg.series_id,
                seg.asset_id,
                rule_id,
                ref.pack_version,
                start,
                end,
                allowed,
                full,
            )
        )
        p = payload(
            seg,
            ref,
            "chain_break",
            rule.break_kind,
            rule_id,
            (start, end),
            reason,
            peak,
            figures(v, i, j),
            allowed,
        )
        plan.add(Emit(p, seg.series_id, rule_id, start, end))
    return plan
