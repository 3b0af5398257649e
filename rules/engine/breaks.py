"""Stage 2 (verdicts): the break rules over one slice: defrost, accuracy, single event, cumulative, band,
and the evidence-quality rules (calibration, humidity).

The band rule honours its inclusive bounds and transient-spike allowance (`band_breaks`).

Each predicate is the one definition of its rule: `evaluate_series` (offline check, lot verdicts) and
the live worker's chain_break rows and alarms all judge through them.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
from numpy.typing import NDArray

from rules import kernels
from rules.engine.checked import FloatArray, IntArray, check_series, limit_or
from rules.packs import Band, ClassRef, ClassRules, Humidity


def suspended_by_defrost(rules: ClassRules, peak_c: float, duration_ms: int) -> bool:
    """A warm excursion within the class's defrost allowance (time and rise): listed, not counted."""
    d = rules.defrost
    high = limit_or(rules.high_c, math.inf)
    return d is not None and peak_c > high and duration_ms <= d.max_s * 1000 and peak_c <= high + d.max_rise_c


def beyond_accuracy(rules: ClassRules, peak_c: float, accuracy_c: float) -> bool:
    """The peak lies further than the device accuracy outside the range: the excursion is certain."""
    low = limit_or(rules.low_c, -math.inf)
    high = limit_or(rules.high_c, math.inf)
    return max(low - peak_c, peak_c - high) > accuracy_c


def device_accuracy(ref: ClassRef, accuracy_c: float | None) -> float:
    """The accuracy a reading is judged with: the device's stated one, else its class's, else its pack's
    default, else 0 (only a reading exactly at a limit is then in doubt)."""
    if accuracy_c is not None:
        return accuracy_c
    if ref.rules.accuracy is not None:
        return ref.rules.accuracy.value
    return ref.pack.accuracy.value if ref.pack.accuracy is not None else 0.0


def calibration_lapse_ms(calibration_due: dt.date | None) -> int | None:
    """Device time (epoch ms) from which a device is past its calibration: 00:00 UTC of the day after its
    `calibration_due` date (the due date itself is still covered). None: no date recorded, nothing lapses."""
    if calibration_due is None:
        return None
    day_after = dt.datetime.combine(calibration_due + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return int(day_after.timestamp()) * 1000


def past_calibration(
    t_ms: NDArray[np.int64], v: NDArray[np.float64], lapse_ms: int | None
) -> NDArray[np.intp]:
    """Indices of the non-NaN readings taken at or after `lapse_ms` (a device past its calibration)."""
    if lapse_ms is None:
        return np.empty(0, dtype=np.intp)
    return np.flatnonzero(~np.isnan(v) & (t_ms >= lapse_ms))


def humidity_runs(
    t_ms: NDArray[np.generic], rh: NDArray[np.generic], limits: Humidity, min_duration_ms: int
) -> list[tuple[int, int, float]]:
    """Runs of relative-humidity readings outside the class's limits (bounds inclusive: a reading at a
    bound is in range) lasting at least `min_duration_ms` (the class's minimum duration, as for
    temperature), as (first index, last index, peak %RH). NaN dropouts neither end nor extend a run."""
    t, x = check_series(t_ms, rh)
    low = limit_or(limits.low_pct, -math.inf)
    high = limit_or(limits.high_pct, math.inf)
    starts, ends = kernels.hyst_runs(t, x, low, high, True, True, 0.0, min_duration_ms)
    if starts.shape[0] == 0:
        return []
    peaks = kernels.run_peaks(x, starts, ends, low, high)
    return [
        (int(a), int(b), float(peaks[k]))
        for k, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True))
    ]


def single_event_s(rules: ClassRules) -> int | None:
    """The class's single-event allowance (s): an excursion longer than it breaks the chain."""
    al = rules.allowances
    return None if al is None or al.single_event is None else al.single_event.seconds


def peak_outside(x: NDArray[np.float64], low: float, high: float) -> float | None:
    """The non-NaN value furthest outside [low, high] (None without one)."""
    xv = x[~np.isnan(x)]
    if xv.shape[0] == 0:
        return None
    dist = np.maximum(low - xv, xv - high)
    return float(xv[int(np.argmax(dist))])


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
    low = limit_or(low_c, -math.inf)
    high = limit_or(high_c, math.inf)
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


def band_runs(
    v: NDArray[np.generic],
    *,
    low_c: float | None,
    high_c: float | None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> list[tuple[int, int]]:
    """Runs of consecutive non-NaN readings outside the hard band [low_c, high_c] (NaN dropouts
    neither end nor extend a run), as (first index, last index). An inclusive bound is inside the
    band; a reading equal to an exclusive one is outside it."""
    if not isinstance(v, np.ndarray) or v.ndim != 1 or v.dtype != np.float64:
        raise ValueError("v must be a 1-D float64 numpy array")
    x: FloatArray = np.ascontiguousarray(v, dtype=np.float64)
    lo = limit_or(low_c, -math.inf)
    hi = limit_or(high_c, math.inf)
    valid = np.flatnonzero(~np.isnan(x))
    xv = x[valid]
    out = (xv < lo) | (xv > hi)
    if not low_inclusive:
        out |= xv == lo
    if not high_inclusive:
        out |= xv == hi
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


def within_spike(t_ms: NDArray[np.generic], v: NDArray[np.generic], band: Band, run: tuple[int, int]) -> bool:
    """The run outside the band is a permitted transient spike: every reading of it lies above the
    band and at or below the spike's ceiling, and it lasts (first to last reading) at most the spike's
    seconds. Both bounds are inclusive: 40.0 °C for exactly 24 h is a permitted USP CRT spike."""
    sp = band.spike
    if sp is None or band.high_c is None:
        return False
    i, j = run
    x = v[i : j + 1]
    x = x[~np.isnan(x)]
    above = x > band.high_c if band.high_inclusive else x >= band.high_c
    return bool(above.all()) and float(x.max()) <= sp.high_c and int(t_ms[j] - t_ms[i]) <= sp.seconds * 1000


def band_breaks(t_ms: NDArray[np.generic], v: NDArray[np.generic], band: Band) -> list[tuple[int, int]]:
    """The runs outside the class's hard band that break the chain, as (first index, last index):
    every run of `band_runs` except a permitted transient spike (`within_spike`). The one definition
    of the band rule: the offline check, lot verdicts and the live worker's chain breaks use it."""
    t, x = check_series(t_ms, v)
    runs = band_runs(
        x,
        low_c=band.low_c,
        high_c=band.high_c,
        low_inclusive=band.low_inclusive,
        high_inclusive=band.high_inclusive,
    )
    return [run for run in runs if not within_spike(t, x, band, run)]
