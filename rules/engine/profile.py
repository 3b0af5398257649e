"""Stage 2 (verdicts): the profile evaluation: the full rule set of a class over one series.

What `rules check`, the lot verdicts and the live worker's alarms all judge with; each rule's id,
level, severity and words come from `rules.engine.catalog`, its predicates from `rules.engine.breaks`.
"""

from __future__ import annotations

import datetime as dt
import math

import msgspec
import numpy as np
from numpy.typing import NDArray

from rules import kernels
from rules.engine import catalog
from rules.engine.breaks import (
    band_breaks,
    beyond_accuracy,
    calibration_lapse_ms,
    device_accuracy,
    humidity_runs,
    past_calibration,
    peak_outside,
    single_event_s,
    suspended_by_defrost,
)
from rules.engine.checked import (
    DEFAULT_DHR_K,
    FloatArray,
    IntArray,
    check_series,
    check_temperatures,
    limit_or,
)
from rules.packs import ClassRef, Mode
from rules.verdicts import Verdict, worst


class ExcursionOut(msgspec.Struct, frozen=True, kw_only=True):
    start_ms: int
    end_ms: int
    duration_s: float
    peak_c: float
    rule_id: str
    readings: int
    suspended: bool = False  # defrost suspension: listed, not counted
    certain: bool = True  # False: the peak lies within the device accuracy of the limit


class GapOut(msgspec.Struct, frozen=True, kw_only=True):
    start_ms: int
    end_ms: int
    duration_s: float
    allowed_s: float
    rule_id: str


class StateOut(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # 'door' | 'power'
    start_ms: int
    end_ms: int
    duration_s: float
    allowed_s: float
    rule_id: str


class TriggerOut(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: str
    severity: str
    at_ms: int
    rule_id: str


class Breach(msgspec.Struct, frozen=True, kw_only=True):
    """A class-profile rule beyond the range excursions and gaps that fired on the series (cumulative
    allowance, hard band, MKT, a trigger, a reading within the device accuracy of a limit, a sensor
    fault): what the live worker turns into alarms and what a series verdict rests on."""

    rule_id: str
    kind: str  # the rule's kind (rules.engine.catalog): the alarm's kind
    level: Verdict  # the verdict it implies: broken, excursion or indeterminate
    severity: str  # alarm severity: critical (breaks the chain), the trigger's own, info
    reason: str
    start_ms: int
    end_ms: int
    value: float | None = None  # mkt: MKT (°C); cumulative: worst time out of range (s); humidity: peak %RH


class MktPrefix(msgspec.Struct, frozen=True, kw_only=True):
    """The MKT window's part before a slice: sums over the sample-and-hold spans that end at or before
    the slice's first non-NaN reading, clipped to the window ending at the slice's last reading;
    weights w = exp(ΔH/R / T_ref − ΔH/R / T) with T_ref = 20 °C (as rules.kernels.mkt_rolling)."""

    weighted_ms: float  # Σ duration_ms · w
    span_ms: float  # Σ duration_ms


class Evaluation(msgspec.Struct, kw_only=True):
    """Everything the rule set says about one series under one class."""

    verdict: Verdict
    reasons: list[str]
    excursions: list[ExcursionOut]
    suspended: list[ExcursionOut]
    gaps: list[GapOut]
    states: list[StateOut]
    triggers: list[TriggerOut]
    time_out_of_range_s: float
    cumulative_max_s: float  # most time out of range within any allowance window
    mkt_c: float | None
    min_c: float | None
    max_c: float | None
    mean_c: float | None
    readings: int
    near_limit: int  # readings within the device accuracy of a limit
    faults: dict[str, int]
    remaining_shelf_life_h: float | None
    shelf_life_used: float | None
    pack_id: str
    pack_version: str
    product_class: str
    mode: str
    breaches: list[Breach] = msgspec.field(default_factory=list)


def mkt_at_end(t_ms: IntArray, x: FloatArray, window_ms: int, dhr: float, prefix: MktPrefix) -> float | None:
    """MKT (°C) over the window ending at the last reading of (t_ms, x), the part of the window before
    the slice given by `prefix`: equal to ``kernels.mkt_rolling`` over the whole series at its last
    reading, without reading the whole window."""
    valid = np.flatnonzero(~np.isnan(x))
    if valid.shape[0] == 0:
        return None
    tv, xv = t_ms[valid], x[valid]
    lo = int(t_ms[-1]) - window_ms
    ta, tb, xa = tv[:-1], tv[1:], xv[:-1]
    keep = (tb > ta) & (tb > lo)
    dur = (tb[keep] - np.maximum(ta[keep], lo)).astype(np.float64)
    t_ref = 20.0 + kernels.KELVIN
    w = np.exp(dhr / t_ref - dhr / (xa[keep] + kernels.KELVIN))
    num = prefix.weighted_ms + float(np.sum(dur * w))
    den = prefix.span_ms + float(np.sum(dur))
    if not (den > 0 and num > 0):
        return None
    return float(dhr / (dhr / t_ref - math.log(num / den)) - kernels.KELVIN)


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def evaluate_series(
    t_ms: NDArray[np.generic],
    v: NDArray[np.generic],
    ref: ClassRef,
    mode: Mode,
    *,
    accuracy_c: float | None = None,
    door: tuple[NDArray[np.generic], NDArray[np.generic]] | None = None,
    power: tuple[NDArray[np.generic], NDArray[np.generic]] | None = None,
    humidity: tuple[NDArray[np.generic], NDArray[np.generic]] | None = None,
    calibration_due: dt.date | None = None,
    mkt_prefix: MktPrefix | None = None,
) -> Evaluation:
    """Apply every rule of `ref`'s class to one temperature series (and door/power/rh channels if given).

    Verdict, most severe first (docs/rule-semantics.md): broken (a gap beyond the recording interval,
    an excursion beyond the single-event or cumulative allowance, a run outside the hard band that is
    no permitted spike, MKT above its limit, door open or power lost beyond its limit, a fired trigger
    of verdict broken, or no reading at all), excursion (a counted excursion beyond the device
    accuracy, a fired trigger of verdict excursion, or a humidity run outside the class's humidity
    limits on the `humidity` channel, %RH), indeterminate (a reading within the device accuracy of a
    limit, an excursion within it, a sensor fault, or a reading taken after the device's
    `calibration_due` date), else pass. `accuracy_c` is the device's stated accuracy (None: the
    class's, then the pack's default applies).

    With `mkt_prefix` the series is a slice of a longer history and MKT is judged at its last reading
    only, over the class's whole MKT window (see `mkt_at_end`); without it, the highest rolling MKT."""
    t, x = check_series(t_ms, v)
    check_temperatures(x)
    r = ref.rules
    low = limit_or(r.low_c, -math.inf)
    high = limit_or(r.high_c, math.inf)
    acc = device_accuracy(ref, accuracy_c)
    reasons: list[str] = []
    verdict: Verdict = "pass"
    breaches: list[Breach] = []
    t_first = int(t[0]) if t.shape[0] else 0
    t_last = int(t[-1]) if t.shape[0] else 0

    def flag(level: Verdict, why: str) -> None:
        nonlocal verdict
        verdict = worst(verdict, level)
        reasons.append(why)

    def breach(rule: catalog.Rule, why: str, start: int, end: int, value: float | None = None) -> None:
        assert rule.severity is not None  # every profile rule carries its own
        flag(rule.level, why)
        breaches.append(
            Breach(
                rule_id=rule.id(ref),
                kind=rule.kind,
                level=rule.level,
                severity=rule.severity,
                reason=why,
                start_ms=start,
                end_ms=end,
                value=value,
            )
        )

    def oor_span() -> tuple[int, int]:
        bad = (x < low) | (x > high)
        if not r.low_inclusive:
            bad |= x == low
        if not r.high_inclusive:
            bad |= x == high
        oor = np.flatnonzero(valid & bad)
        return (int(t[oor[0]]), int(t[oor[-1]])) if oor.shape[0] else (t_first, t_last)

    valid = ~np.isnan(x)
    n_valid = int(valid.sum())
    if n_valid == 0:
        flag("broken", catalog.NO_EVIDENCE)

    starts, ends = kernels.hyst_runs(
        t, x, low, high, r.low_inclusive, r.high_inclusive, r.hysteresis_c, r.min_duration.seconds * 1000
    )
    peaks = kernels.run_peaks(x, starts, ends, low, high) if starts.shape[0] else np.empty(0)
    _vmin, _vmax, _vmean, count = kernels.run_stats(x, starts, ends)
    range_id = catalog.RANGE.id(ref)
    counted: list[ExcursionOut] = []
    suspended: list[ExcursionOut] = []
    for k, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        peak = float(peaks[k])
        dur_ms = int(t[e] - t[s])
        out = ExcursionOut(
            start_ms=int(t[s]),
            end_ms=int(t[e]),
            duration_s=dur_ms / 1000,
            peak_c=peak,
            rule_id=range_id,
            readings=int(count[k]),
            certain=beyond_accuracy(r, peak, acc),
        )
        if suspended_by_defrost(r, peak, dur_ms):
            suspended.append(msgspec.structs.replace(out, suspended=True))
            continue
        counted.append(out)
        if not out.certain:
            flag("indeterminate", catalog.within_accuracy(peak, acc))
            continue
        flag(catalog.RANGE.level, catalog.range_excursion(r, peak, out.duration_s))
        allowed_s = single_event_s(r)
        if allowed_s is not None and out.duration_s > allowed_s:
            flag(catalog.SINGLE_EVENT.level, catalog.single_event(out.duration_s, allowed_s, peak))

    window_ms = r.allowances.cumulative.window_s * 1000 if r.allowances and r.allowances.cumulative else 1
    total_ms, cmax_ms = kernels.cum_oor_max(t, x, low, high, r.low_inclusive, r.high_inclusive, window_ms)
    if r.allowances is not None and r.allowances.cumulative is not None:
        cum = r.allowances.cumulative
        if cmax_ms > cum.seconds * 1000:
            breach(
                catalog.CUMULATIVE,
                catalog.cumulative(cmax_ms / 1000, cum.window_s, cum.seconds),
                *oor_span(),
                cmax_ms / 1000,
            )
    else:
        cmax_ms = total_ms

    gap_id = catalog.GAP.id(ref)
    gs, ge, ga = kernels.gap_runs_tight(
        t,
        x,
        r.max_interval_s(mode) * 1000,
        r.oor_interval_s(mode) * 1000,
        low,
        high,
        r.low_inclusive,
        r.high_inclusive,
    )
    gaps = [
        GapOut(
            start_ms=int(t[s]),
            end_ms=int(t[e]),
            duration_s=float(t[e] - t[s]) / 1000,
            allowed_s=float(a) / 1000,
            rule_id=gap_id,
        )
        for s, e, a in zip(gs.tolist(), ge.tolist(), ga.tolist(), strict=True)
    ]
    for g in gaps:
        flag(catalog.GAP.level, catalog.gap(g.duration_s, g.allowed_s, mode))

    if r.band is not None:
        b_lo = -math.inf if r.band.low_c is None else r.band.low_c
        b_hi = math.inf if r.band.high_c is None else r.band.high_c
        band_out = band_breaks(t, x, r.band)
        if band_out:
            first, last = band_out[0][0], band_out[-1][1]
            peaks_out = [peak_outside(x[i : j + 1], b_lo, b_hi) for i, j in band_out]
            worst_peak = max(
                (p for p in peaks_out if p is not None), key=lambda p: max(b_lo - p, p - b_hi), default=None
            )
            breach(catalog.BAND, catalog.band(b_lo, b_hi, worst_peak), int(t[first]), int(t[last]))

    dhr = r.mkt.delta_h_r_k if r.mkt else DEFAULT_DHR_K
    mkt_window = r.mkt.window_s * 1000 if r.mkt else max(int(t[-1] - t[0]) + 1, 1) if t.shape[0] else 1
    mkt_at = t_last
    if mkt_prefix is not None and r.mkt is not None:
        mkt_c = mkt_at_end(t, x, mkt_window, dhr, mkt_prefix)
    else:
        mk = kernels.mkt_rolling(t, x, mkt_window, dhr)
        has = bool((~np.isnan(mk)).any())
        mkt_c = _opt(float(np.nanmax(mk))) if has else None
        mkt_at = int(t[int(np.nanargmax(mk))]) if has else t_last
    if r.mkt is not None and mkt_c is not None and mkt_c > r.mkt.limit_c:
        breach(
            catalog.MKT,
            catalog.mkt(mkt_c, r.mkt.window_s, r.mkt.limit_c),
            max(t_first, mkt_at - mkt_window),
            mkt_at,
            mkt_c,
        )

    states: list[StateOut] = []
    for kind, channel, limit, state in (
        ("door", door, r.door_open, 1.0),
        ("power", power, r.power_loss, 0.0),
    ):
        if channel is None or limit is None:
            continue
        ct, cv = check_series(channel[0], channel[1])
        ss, se = kernels.state_runs(ct, cv, state, 0)
        for s, e in zip(ss.tolist(), se.tolist(), strict=True):
            dur = float(ct[e] - ct[s]) / 1000
            if dur > limit.seconds:
                sid = catalog.state_rule(kind).id(ref)
                states.append(
                    StateOut(
                        kind=kind,
                        start_ms=int(ct[s]),
                        end_ms=int(ct[e]),
                        duration_s=dur,
                        allowed_s=float(limit.seconds),
                        rule_id=sid,
                    )
                )
                flag(catalog.state_rule(kind).level, catalog.state(kind, dur, limit.seconds))

    fired: list[TriggerOut] = []
    for trig in r.triggers:
        idx = kernels.trigger_fire(
            t,
            x,
            {"instant": 0, "consecutive": 1, "cumulative": 2}[trig.kind],
            1 if trig.side == "high" else -1,
            trig.threshold_c,
            trig.seconds * 1000,
            (trig.window_s or 1) * 1000,
        )
        if idx >= 0:
            rule = catalog.trigger(trig)
            tid = rule.id(ref)
            fired.append(
                TriggerOut(
                    name=trig.name, kind=trig.kind, severity=trig.severity, at_ms=int(t[idx]), rule_id=tid
                )
            )
            breach(
                rule,
                catalog.trigger_fired(trig.kind, trig.name),
                int(t[idx]),
                int(t[idx]),
            )

    near, _clear = kernels.accuracy_counts(x, low, high, acc)
    if near and verdict == "pass":
        close = np.flatnonzero(valid & ((np.abs(x - low) <= acc) | (np.abs(x - high) <= acc)))
        breach(
            catalog.ACCURACY,
            catalog.near_limit(int(near), acc),
            int(t[close[0]]),
            int(t[close[-1]]),
        )

    faults = {"flatline": 0, "spike": 0, "rate": 0}
    if r.faults is not None:
        f = r.faults
        fl, sp, rt = kernels.fault_flags(t, x, f.flatline_s * 1000, f.spike_c, f.max_rate_c_per_min)
        faults = {"flatline": fl, "spike": sp, "rate": rt}
        if fl + sp + rt:
            breach(
                catalog.FAULTS,
                catalog.faults(fl, sp, rt),
                t_first,
                t_last,
            )

    lapsed = past_calibration(t, x, calibration_lapse_ms(calibration_due))
    if lapsed.shape[0] and calibration_due is not None:
        breach(
            catalog.CALIBRATION,
            catalog.calibration(int(lapsed.shape[0]), calibration_due.isoformat()),
            int(t[lapsed[0]]),
            int(t[lapsed[-1]]),
        )

    if humidity is not None and r.humidity is not None and r.humidity.applies(mode):
        ht, hx = check_series(humidity[0], humidity[1])
        for a, b, peak_pct in humidity_runs(ht, hx, r.humidity, r.min_duration.seconds * 1000):
            dur_s = float(ht[b] - ht[a]) / 1000
            why = catalog.humidity(r.humidity.low_pct, r.humidity.high_pct, peak_pct, dur_s)
            breach(catalog.HUMIDITY, why, int(ht[a]), int(ht[b]), peak_pct)

    used: float | None = None
    remaining: float | None = None
    if r.shelf_life is not None:
        sl = r.shelf_life
        param = sl.ea_kj_mol if sl.model == "arrhenius" else sl.t_min_c
        assert param is not None  # the pack model guarantees it
        used = float(
            kernels.shelf_life_used(t, x, 0 if sl.model == "arrhenius" else 1, sl.ref_c, sl.ref_life_h, param)
        )
        remaining = max(0.0, 1.0 - used) * sl.ref_life_h

    xs = x[valid]
    return Evaluation(
        verdict=verdict,
        reasons=reasons,
        excursions=counted,
        suspended=suspended,
        gaps=gaps,
        states=states,
        triggers=fired,
        time_out_of_range_s=total_ms / 1000,
        cumulative_max_s=cmax_ms / 1000,
        mkt_c=mkt_c,
        min_c=float(xs.min()) if n_valid else None,
        max_c=float(xs.max()) if n_valid else None,
        mean_c=float(xs.mean()) if n_valid else None,
        readings=n_valid,
        near_limit=int(near),
        faults=faults,
        remaining_shelf_life_h=remaining,
        shelf_life_used=used,
        pack_id=ref.pack_id,
        pack_version=ref.pack_version,
        product_class=ref.code,
        mode=mode,
        breaches=breaches,
    )


def momentary_clear(ref: ClassRef, v: FloatArray, accuracy_c: float | None = None) -> set[str]:
    """The rule ids of the class's momentary rules whose condition does not hold at the latest reading
    (the last non-NaN of `v`): instant triggers (that reading beyond the threshold, as
    ``kernels.trigger_fire`` judges it) and the accuracy rule (that reading within the device accuracy of
    a limit, as ``kernels.accuracy_counts`` judges it). Their alarms resolve when the condition clears,
    not when it leaves the look-back."""
    r = ref.rules
    valid = np.flatnonzero(~np.isnan(v))
    last = v[valid[-1:]] if valid.shape[0] else np.empty(0, dtype=np.float64)
    t0 = np.zeros(last.shape[0], dtype=np.int64)
    clear: set[str] = set()
    for trig in r.triggers:
        if trig.kind != "instant":
            continue
        side = 1 if trig.side == "high" else -1
        if last.shape[0] == 0 or kernels.trigger_fire(t0, last, 0, side, trig.threshold_c, 0, 1) < 0:
            clear.add(catalog.trigger(trig).id(ref))
    low, high = limit_or(r.low_c, -math.inf), limit_or(r.high_c, math.inf)
    near, _out = kernels.accuracy_counts(last, low, high, device_accuracy(ref, accuracy_c))
    if near == 0:
        clear.add(catalog.ACCURACY.id(ref))
    return clear
