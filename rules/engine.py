"""Stage 2 (verdicts): validating wrapper over rules.kernels, turning index runs into typed results.

The kernels trust their inputs; this module checks them (1-D, equal lengths, int64 times, float64
values, sorted by time; non-contiguous input is copied) and raises ValueError otherwise. Semantics of
runs (NaN handling, minimum duration, open runs) are documented in rules.kernels. `evaluate_series`
also refuses temperatures outside what a probe can read (the gateway's `CHANNEL_RANGES["temp"]`, the
range every stored reading passed): the MKT and shelf-life maths divide by the absolute temperature
and by a logarithm of it, which absolute zero or an astronomic value make zero. `check_accuracy` is
the range of a device accuracy an inspector may state (`coldchain rules check --accuracy`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, Literal

import msgspec
import numpy as np
from numpy.typing import NDArray

from gateway.decode import CHANNEL_RANGES
from rules import kernels
from rules.packs import ClassRef, Mode

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

# Temperatures a probe can read: anything else is a broken sensor or encoding (and ingest refuses it).
TEMP_RANGE_C: Final = CHANNEL_RANGES["temp"]
# An accuracy is a dead band on each side of a limit: at ±10 °C it already spans the whole range of every
# shipped class (the widest bounded one, 2–8 °C, is 6 °C wide), and no cold-chain probe is specified
# more loosely (the packs' figures are 0.5 and 1 °C).
MAX_ACCURACY_C: Final = 10.0


def check_accuracy(accuracy_c: float) -> float:
    """A device accuracy (°C) usable as a dead band; ValueError naming the allowed range otherwise."""
    if not 0.0 <= accuracy_c <= MAX_ACCURACY_C:  # NaN fails both comparisons
        raise ValueError(f"device accuracy must lie within 0..{MAX_ACCURACY_C:g} °C, got {accuracy_c!r}")
    return float(accuracy_c)


def check_temperatures(v: FloatArray) -> None:
    """Refuse a temperature outside TEMP_RANGE_C (NaN is a dropout and allowed)."""
    lo, hi = TEMP_RANGE_C
    bad = np.flatnonzero(~np.isnan(v) & ((v < lo) | (v > hi)))
    if bad.shape[0]:
        i = int(bad[0])
        raise ValueError(
            f"reading {i}: {float(v[i])!r} °C lies outside {lo:g}..{hi:g}, the range a probe can read"
        )


class Excursion(msgspec.Struct, frozen=True, kw_only=True):
    """A run of out-of-range readings that lasted at least the minimum duration."""

    start_idx: int
    end_idx: int
    t_start_ms: int  # device time of the first out-of-range reading
    t_end_ms: int  # device time of the last out-of-range reading
    peak_c: float  # the value furthest outside the limits
    min_c: float
    max_c: float
    mean_c: float
    readings: int  # non-NaN readings in the run (all out of range)
    reaches_end: bool  # the run ends at the last non-NaN reading given (still open, as far as known)

    @property
    def duration_ms(self) -> int:
        return self.t_end_ms - self.t_start_ms


class Gap(msgspec.Struct, frozen=True, kw_only=True):
    """Two consecutive non-NaN readings further apart than the allowed recording interval."""

    start_idx: int
    end_idx: int
    t_start_ms: int  # device time of the last reading before the gap
    t_end_ms: int  # device time of the first reading after it
    min_c: float  # over the readings in [t_start_ms, t_end_ms]: the two bounding readings
    max_c: float
    mean_c: float
    readings: int
    allowed_ms: int = 0  # the recording interval that was exceeded

    @property
    def gap_ms(self) -> int:
        return self.t_end_ms - self.t_start_ms


class RangeLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Temperature limits of one series for the multi-series wrappers (None = no limit on that side)."""

    low_c: float | None
    high_c: float | None
    low_inclusive: bool = True
    high_inclusive: bool = True
    min_duration_ms: int = 0


def _check_arrays(t_ms: NDArray[np.generic], v: NDArray[np.generic]) -> tuple[IntArray, FloatArray]:
    if not isinstance(t_ms, np.ndarray) or not isinstance(v, np.ndarray):
        raise ValueError("t_ms and v must be numpy arrays")
    if t_ms.ndim != 1 or v.ndim != 1:
        raise ValueError(f"t_ms and v must be 1-D, got {t_ms.ndim}-D and {v.ndim}-D")
    if t_ms.shape[0] != v.shape[0]:
        raise ValueError(f"t_ms and v differ in length: {t_ms.shape[0]} != {v.shape[0]}")
    if t_ms.dtype != np.int64:
        raise ValueError(f"t_ms must be int64 epoch milliseconds, got {t_ms.dtype}")
    if v.dtype != np.float64:
        raise ValueError(f"v must be float64, got {v.dtype}")
    return np.ascontiguousarray(t_ms, dtype=np.int64), np.ascontiguousarray(v, dtype=np.float64)


def check_series(t_ms: NDArray[np.generic], v: NDArray[np.generic]) -> tuple[IntArray, FloatArray]:
    """Validate one series for the kernels; return contiguous int64 times and float64 values."""
    t, x = _check_arrays(t_ms, v)
    if t.shape[0] > 1 and bool(np.any(t[1:] < t[:-1])):
        raise ValueError("t_ms must be sorted by device time (non-decreasing)")
    return t, x


def _limit(value: float | None, absent: float) -> float:
    if value is None:
        return absent
    if math.isnan(value):
        raise ValueError("a limit must not be NaN (pass None for no limit)")
    return float(value)


def find_excursions(
    t_ms: NDArray[np.generic],
    v: NDArray[np.generic],
    *,
    low_c: float | None,
    high_c: float | None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    min_duration_ms: int = 0,
    hysteresis_c: float = 0.0,
) -> list[Excursion]:
    """Excursions of one series outside [low_c, high_c] lasting at least `min_duration_ms`; with a
    hysteresis, a run ends only at a reading at least `hysteresis_c` back inside the limits."""
    t, x = check_series(t_ms, v)
    if min_duration_ms < 0:
        raise ValueError("min_duration_ms must be >= 0")
    if not hysteresis_c >= 0:
        raise ValueError("hysteresis_c must be >= 0")
    low = _limit(low_c, -math.inf)
    high = _limit(high_c, math.inf)
    starts, ends = kernels.hyst_runs(
        t,
        x,
        low,
        high,
        bool(low_inclusive),
        bool(high_inclusive),
        float(max(hysteresis_c, 0.0)),
        int(min_duration_ms),
    )
    if starts.shape[0] == 0:
        return []
    vmin, vmax, vmean, count = kernels.run_stats(x, starts, ends)
    peaks = kernels.run_peaks(x, starts, ends, low, high)
    valid = np.flatnonzero(~np.isnan(x))
    last_valid = int(valid[-1]) if valid.shape[0] else -1
    return [
        Excursion(
            start_idx=int(s),
            end_idx=int(e),
            t_start_ms=int(t[s]),
            t_end_ms=int(t[e]),
            peak_c=float(peaks[r]),
            min_c=float(vmin[r]),
            max_c=float(vmax[r]),
            mean_c=float(vmean[r]),
            readings=int(count[r]),
            reaches_end=int(e) == last_valid,
        )
        for r, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True))
    ]


def find_gaps(t_ms: NDArray[np.generic], v: NDArray[np.generic], *, max_gap_ms: int) -> list[Gap]:
    """Gaps in the evidence of one series: consecutive non-NaN readings more than `max_gap_ms` apart."""
    t, x = check_series(t_ms, v)
    if max_gap_ms < 0:
        raise ValueError("max_gap_ms must be >= 0")
    starts, ends = kernels.gap_runs(t, x, int(max_gap_ms))
    return _gaps(t, x, starts, ends, np.full(starts.shape[0], int(max_gap_ms), dtype=np.int64))


def _gaps(t: IntArray, x: FloatArray, starts: IntArray, ends: IntArray, allowed: IntArray) -> list[Gap]:
    """Gap results of the kernels' index runs, with the figures over each gap's bounding readings."""
    if starts.shape[0] == 0:
        return []
    vmin, vmax, vmean, count = kernels.run_stats(x, starts, ends)
    return [
        Gap(
            start_idx=int(s),
            end_idx=int(e),
            t_start_ms=int(t[s]),
            t_end_ms=int(t[e]),
            min_c=float(vmin[r]),
            max_c=float(vmax[r]),
            mean_c=float(vmean[r]),
            readings=int(count[r]),
            allowed_ms=int(allowed[r]),
        )
        for r, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True))
    ]


def find_gaps_tight(
    t_ms: NDArray[np.generic],
    v: NDArray[np.generic],
    *,
    max_gap_ms: int,
    oor_gap_ms: int,
    low_c: float | None,
    high_c: float | None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> list[Gap]:
    """Gaps against `max_gap_ms`, tightened to `oor_gap_ms` after an out-of-range reading."""
    t, x = check_series(t_ms, v)
    if max_gap_ms < 0 or oor_gap_ms < 0:
        raise ValueError("gap intervals must be >= 0")
    low = _limit(low_c, -math.inf)
    high = _limit(high_c, math.inf)
    starts, ends, allowed = kernels.gap_runs_tight(
        t, x, int(max_gap_ms), int(oor_gap_ms), low, high, bool(low_inclusive), bool(high_inclusive)
    )
    return _gaps(t, x, starts, ends, allowed)


def check_offsets(offsets: NDArray[np.generic], n: int) -> IntArray:
    """Validate series offsets over n concatenated readings: int64, 0 first, n last, non-decreasing."""
    if not isinstance(offsets, np.ndarray) or offsets.ndim != 1 or offsets.dtype != np.int64:
        raise ValueError("offsets must be a 1-D int64 numpy array")
    if offsets.shape[0] < 1 or int(offsets[0]) != 0 or int(offsets[-1]) != n:
        raise ValueError(f"offsets must start at 0 and end at the number of readings ({n})")
    off = np.ascontiguousarray(offsets)
    if bool(np.any(off[1:] < off[:-1])):
        raise ValueError("offsets must be non-decreasing")
    return off


def _check_multi(
    offsets: NDArray[np.generic], t_ms: NDArray[np.generic], v: NDArray[np.generic]
) -> tuple[IntArray, IntArray, FloatArray]:
    t, x = _check_arrays(t_ms, v)
    off = check_offsets(offsets, t.shape[0])
    # Sorted within each series; time may only go back where a new series starts.
    back = np.flatnonzero(t[1:] < t[:-1]) + 1
    if back.shape[0] and not bool(np.all(np.isin(back, off))):
        raise ValueError("t_ms must be sorted by device time (non-decreasing) within each series")
    return off, t, x


def find_excursions_multi(
    offsets: NDArray[np.generic],
    t_ms: NDArray[np.generic],
    v: NDArray[np.generic],
    limits: Sequence[RangeLimits],
) -> list[list[Excursion]]:
    """`find_excursions` for many series in one call (series s = [offsets[s], offsets[s+1])).

    Indices in the results are global (into the concatenated arrays); one list per series."""
    off, t, x = _check_multi(offsets, t_ms, v)
    n_series = off.shape[0] - 1
    if len(limits) != n_series:
        raise ValueError(f"{len(limits)} limits for {n_series} series")
    low = np.array([_limit(lim.low_c, -math.inf) for lim in limits], dtype=np.float64)
    high = np.array([_limit(lim.high_c, math.inf) for lim in limits], dtype=np.float64)
    low_inc = np.array([lim.low_inclusive for lim in limits], dtype=np.bool_)
    high_inc = np.array([lim.high_inclusive for lim in limits], dtype=np.bool_)
    min_ms = np.array([lim.min_duration_ms for lim in limits], dtype=np.int64)
    if bool(np.any(min_ms < 0)):
        raise ValueError("min_duration_ms must be >= 0")
    starts, ends, series = kernels.excursion_runs_multi(off, t, x, low, high, low_inc, high_inc, min_ms)
    out: list[list[Excursion]] = [[] for _ in range(n_series)]
    if starts.shape[0] == 0:
        return out
    vmin, vmax, vmean, count = kernels.run_stats(x, starts, ends)
    valid = ~np.isnan(x)
    for r, (s, e, k) in enumerate(zip(starts.tolist(), ends.tolist(), series.tolist(), strict=True)):
        peak = kernels.run_peaks(x, starts[r : r + 1], ends[r : r + 1], low[k], high[k])
        later = valid[e + 1 : int(off[k + 1])]
        out[k].append(
            Excursion(
                start_idx=s,
                end_idx=e,
                t_start_ms=int(t[s]),
                t_end_ms=int(t[e]),
                peak_c=float(peak[0]),
                min_c=float(vmin[r]),
                max_c=float(vmax[r]),
                mean_c=float(vmean[r]),
                readings=int(count[r]),
                reaches_end=not bool(later.any()),
            )
        )
    return out


def find_gaps_multi(
    offsets: NDArray[np.generic], t_ms: NDArray[np.generic], v: NDArray[np.generic], max_gap_ms: Sequence[int]
) -> list[list[Gap]]:
    """`find_gaps` for many series in one call; global indices, one list per series."""
    off, t, x = _check_multi(offsets, t_ms, v)
    n_series = off.shape[0] - 1
    if len(max_gap_ms) != n_series:
        raise ValueError(f"{len(max_gap_ms)} max_gap_ms for {n_series} series")
    gap_ms = np.array(max_gap_ms, dtype=np.int64)
    if bool(np.any(gap_ms < 0)):
        raise ValueError("max_gap_ms must be >= 0")
    starts, ends, series = kernels.gap_runs_multi(off, t, x, gap_ms)
    out: list[list[Gap]] = [[] for _ in range(n_series)]
    if starts.shape[0] == 0:
        return out
    vmin, vmax, vmean, count = kernels.run_stats(x, starts, ends)
    for r, (s, e, k) in enumerate(zip(starts.tolist(), ends.tolist(), series.tolist(), strict=True)):
        out[k].append(
            Gap(
                start_idx=s,
                end_idx=e,
                t_start_ms=int(t[s]),
                t_end_ms=int(t[e]),
                min_c=float(vmin[r]),
                max_c=float(vmax[r]),
                mean_c=float(vmean[r]),
                readings=int(count[r]),
            )
        )
    return out


def warm_up() -> None:
    """Compile (or load from the on-disk cache) every kernel on tiny arrays; call at worker start."""
    t = np.array([0, 60_000, 120_000, 1_000_000], dtype=np.int64)
    x = np.array([1.0, 9.0, np.nan, 2.0], dtype=np.float64)
    find_excursions(t, x, low_c=0.0, high_c=4.0, min_duration_ms=0)
    find_gaps(t, x, max_gap_ms=600_000)
    kernels.hyst_runs(t, x, 0.0, 4.0, True, True, 0.5, 0)
    kernels.cum_oor_max(t, x, 0.0, 4.0, True, True, 600_000)
    kernels.gap_runs_tight(t, x, 600_000, 120_000, 0.0, 4.0, True, True)
    kernels.mkt_rolling(t, x, 600_000, DEFAULT_DHR_K)
    kernels.trigger_fire(t, x, 2, 1, 8.0, 60_000, 600_000)
    kernels.state_runs(t, x, 1.0, 0)
    kernels.fault_flags(t, x, 600_000, 5.0, 5.0)
    kernels.accuracy_counts(x, 0.0, 4.0, 0.5)
    kernels.shelf_life_used(t, x, 0, 0.0, 240.0, 80.0)


# -- the full rule set over one series (offline check, lot verdicts, alarms) ----------------------------

Verdict = Literal["pass", "indeterminate", "excursion", "broken"]
_RANK: dict[str, int] = {"pass": 0, "indeterminate": 1, "excursion": 2, "broken": 3}
DEFAULT_DHR_K = 10_000.0  # ΔH/R for MKT when a class names none (USP <1079.2>)


def worst(a: Verdict, b: Verdict) -> Verdict:
    """The more severe of two verdicts (broken > excursion > indeterminate > pass)."""
    return a if _RANK[a] >= _RANK[b] else b


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
    level: Verdict  # the verdict it implies: broken, excursion or indeterminate
    severity: str  # alarm severity: critical (breaks the chain), the trigger's own, info
    reason: str
    start_ms: int
    end_ms: int
    value: float | None = None  # mkt: the MKT (°C); cumulative: the worst window's time out of range (s)


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
    mkt_prefix: MktPrefix | None = None,
) -> Evaluation:
    """Apply every rule of `ref`'s class to one temperature series (and door/power channels if given).

    Verdict, most severe first: broken (a gap beyond the recording interval, an excursion beyond the
    single-event or cumulative allowance, a reading outside the hard band, MKT above its limit, door
    open or power lost beyond its limit, or no reading at all), excursion (a counted excursion beyond
    the device accuracy, or a fired trigger), indeterminate (a reading within the device accuracy of a
    limit, an excursion within it, or a sensor fault), else pass.

    With `mkt_prefix` the series is a slice of a longer history and MKT is judged at its last reading
    only, over the class's whole MKT window (see `mkt_at_end`); without it, the highest rolling MKT."""
    t, x = check_series(t_ms, v)
    check_temperatures(x)
    r = ref.rules
    low = _limit(r.low_c, -math.inf)
    high = _limit(r.high_c, math.inf)
    acc = accuracy_c if accuracy_c is not None else (r.accuracy.value if r.accuracy else 0.0)
    reasons: list[str] = []
    verdict: Verdict = "pass"
    breaches: list[Breach] = []
    t_first = int(t[0]) if t.shape[0] else 0
    t_last = int(t[-1]) if t.shape[0] else 0

    def flag(level: Verdict, why: str) -> None:
        nonlocal verdict
        verdict = worst(verdict, level)
        reasons.append(why)

    def breach(
        rule: str, level: Verdict, severity: str, why: str, start: int, end: int, value: float | None = None
    ) -> None:
        flag(level, why)
        breaches.append(
            Breach(
                rule_id=ref.rule_id(rule),
                level=level,
                severity=severity,
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
        flag("broken", "no temperature reading: no evidence")

    starts, ends = kernels.hyst_runs(
        t, x, low, high, r.low_inclusive, r.high_inclusive, r.hysteresis_c, r.min_duration.seconds * 1000
    )
    peaks = kernels.run_peaks(x, starts, ends, low, high) if starts.shape[0] else np.empty(0)
    _vmin, _vmax, _vmean, count = kernels.run_stats(x, starts, ends)
    range_id = ref.rule_id("range")
    counted: list[ExcursionOut] = []
    suspended: list[ExcursionOut] = []
    for k, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        peak = float(peaks[k])
        dur_ms = int(t[e] - t[s])
        dist = max(low - peak, peak - high)
        out = ExcursionOut(
            start_ms=int(t[s]),
            end_ms=int(t[e]),
            duration_s=dur_ms / 1000,
            peak_c=peak,
            rule_id=range_id,
            readings=int(count[k]),
            certain=dist > acc,
        )
        d = r.defrost
        if d is not None and peak > high and dur_ms <= d.max_s * 1000 and peak <= high + d.max_rise_c:
            suspended.append(msgspec.structs.replace(out, suspended=True))
            continue
        counted.append(out)
        if not out.certain:
            flag("indeterminate", f"excursion at {peak} °C within the device accuracy (±{acc} °C)")
            continue
        flag("excursion", f"excursion for {out.duration_s:.0f} s, peak {peak} °C")
        al = r.allowances
        if al is not None and al.single_event is not None and out.duration_s > al.single_event.seconds:
            flag(
                "broken",
                f"excursion of {out.duration_s:.0f} s exceeds the single-event allowance of "
                f"{al.single_event.seconds} s ({ref.rule_id('single_event')})",
            )

    window_ms = r.allowances.cumulative.window_s * 1000 if r.allowances and r.allowances.cumulative else 1
    total_ms, cmax_ms = kernels.cum_oor_max(t, x, low, high, r.low_inclusive, r.high_inclusive, window_ms)
    if r.allowances is not None and r.allowances.cumulative is not None:
        cum = r.allowances.cumulative
        if cmax_ms > cum.seconds * 1000:
            breach(
                "cumulative",
                "broken",
                "critical",
                f"{cmax_ms / 1000:.0f} s out of range within {cum.window_s} s exceeds the cumulative "
                f"allowance of {cum.seconds} s ({ref.rule_id('cumulative')})",
                *oor_span(),
                cmax_ms / 1000,
            )
    else:
        cmax_ms = total_ms

    gap_id = ref.rule_id("gap")
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
        flag("broken", f"no record for {g.duration_s:.0f} s (allowed {g.allowed_s:.0f} s in {mode})")

    if r.band is not None:
        b_lo = -math.inf if r.band.low_c is None else r.band.low_c
        b_hi = math.inf if r.band.high_c is None else r.band.high_c
        outside = valid & ((x < b_lo) | (x > b_hi))
        if bool(outside.any()):
            out_idx = np.flatnonzero(outside)
            breach(
                "band",
                "broken",
                "critical",
                f"reading outside the permitted band [{b_lo}, {b_hi}] °C ({ref.rule_id('band')})",
                int(t[out_idx[0]]),
                int(t[out_idx[-1]]),
            )

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
            "mkt",
            "broken",
            "critical",
            f"MKT {mkt_c:.2f} °C over {r.mkt.window_s} s exceeds {r.mkt.limit_c} °C ({ref.rule_id('mkt')})",
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
                sid = ref.rule_id("door_open" if kind == "door" else "power_loss")
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
                flag("broken", f"{kind} {'open' if kind == 'door' else 'lost'} for {dur:.0f} s ({sid})")

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
            tid = ref.rule_id(f"trigger.{trig.name}")
            fired.append(
                TriggerOut(
                    name=trig.name, kind=trig.kind, severity=trig.severity, at_ms=int(t[idx]), rule_id=tid
                )
            )
            breach(
                f"trigger.{trig.name}",
                "excursion",
                trig.severity,
                f"{trig.kind} trigger {trig.name} fired ({tid})",
                int(t[idx]),
                int(t[idx]),
            )

    near, _clear = kernels.accuracy_counts(x, low, high, acc)
    if near and verdict == "pass":
        close = np.flatnonzero(valid & ((np.abs(x - low) <= acc) | (np.abs(x - high) <= acc)))
        breach(
            "accuracy",
            "indeterminate",
            "info",
            f"{near} readings within the device accuracy (±{acc} °C) of a limit",
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
                "faults",
                "indeterminate",
                "info",
                f"sensor faults: {fl} flatline, {sp} spike, {rt} rate of change",
                t_first,
                t_last,
            )

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


# -- chain-breaking runs the live worker stores as chain_break rows (rules.worker) ------------------------


def cumulative_breaks(
    t_ms: NDArray[np.generic],
    v: NDArray[np.generic],
    *,
    low_c: float | None,
    high_c: float | None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    window_ms: int,
    allowance_ms: int,
) -> list[tuple[int, int, int]]:
    """Where time out of range within a window of `window_ms` exceeds `allowance_ms`, as
    (first index, last index, worst ms): the out-of-range readings of every exceeding window, windows
    sharing a reading merged into one break. Windows and sample-and-hold spans as
    ``kernels.cum_oor_max`` (a window starting at a span's start or ending at a span's end), so there
    is a break exactly when its maximum exceeds the allowance. Indices are into (t_ms, v); the last
    index is the last out-of-range reading of the break."""
    t, x = check_series(t_ms, v)
    low = _limit(low_c, -math.inf)
    high = _limit(high_c, math.inf)
    valid = np.flatnonzero(~np.isnan(x))
    if valid.shape[0] < 2:
        return []
    tv, xv = t[valid], x[valid]
    bad = (xv < low) | (xv > high)
    if not low_inclusive:
        bad |= xv == low
    if not high_inclusive:
        bad |= xv == high
    ks = np.flatnonzero(bad[:-1])
    if ks.shape[0] == 0:
        return []
    a, b, idx = tv[ks], tv[ks + 1], valid[ks]
    cum = np.cumsum(b - a)

    def covered(at: IntArray) -> IntArray:
        j = np.searchsorted(a, at, side="right")
        k = np.maximum(j - 1, 0)
        total = np.where(j > 0, cum[k] - np.maximum(b[k] - at, 0), 0)
        return total.astype(np.int64)

    c1 = covered(a + window_ms) - covered(a)  # windows [a_r, a_r + W)
    c2 = covered(b) - covered(b - window_ms)  # windows [b_r - W, b_r)
    hi1 = np.searchsorted(a, a + window_ms, side="left") - 1
    lo2 = np.searchsorted(b, b - window_ms, side="right")
    spans: list[tuple[int, int, int]] = []
    for r in np.flatnonzero(c1 > allowance_ms).tolist():
        spans.append((r, int(hi1[r]), int(c1[r])))
    for r in np.flatnonzero(c2 > allowance_ms).tolist():
        spans.append((int(lo2[r]), r, int(c2[r])))
    spans.sort()
    merged: list[list[int]] = []
    for lo, hi, c in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
            merged[-1][2] = max(merged[-1][2], c)
        else:
            merged.append([lo, hi, c])
    return [(int(idx[lo]), int(idx[hi]), c) for lo, hi, c in merged]


def band_runs(v: NDArray[np.generic], *, low_c: float | None, high_c: float | None) -> list[tuple[int, int]]:
    """Runs of consecutive non-NaN readings outside the hard band [low_c, high_c] (NaN dropouts
    neither end nor extend a run), as (first index, last index)."""
    if not isinstance(v, np.ndarray) or v.ndim != 1 or v.dtype != np.float64:
        raise ValueError("v must be a 1-D float64 numpy array")
    x: FloatArray = np.ascontiguousarray(v, dtype=np.float64)
    lo = _limit(low_c, -math.inf)
    hi = _limit(high_c, math.inf)
    valid = np.flatnonzero(~np.isnan(x))
    xv = x[valid]
    out = (xv < lo) | (xv > hi)
    runs: list[tuple[int, int]] = []
    start = -1
    for k, o in enumerate(out.tolist()):
        if o and start < 0:
            start = k
        elif not o and start >= 0:
            runs.append((int(valid[start]), int(valid[k - 1])))
            start = -1
    if start >= 0:
        runs.append((int(valid[start]), int(valid[-1])))
    return runs
