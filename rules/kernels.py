"""Stage 2 (verdicts): pure numba kernels over one time-sorted series (int64 epoch-ms, float64 values).

Contract for every kernel: arrays are contiguous, 1-D, of equal length and sorted by time (ties
allowed); NaN in `v` is a dropout. Kernels return arrays of run indices (or per-run figures); they
hold no objects, do no logging, datetimes or I/O, and never validate: `rules.engine` does that and
turns indices into typed results. No fastmath (it would license numba to assume no NaN). Every kernel
has a pure-Python oracle in tests/rules/test_rules_kernels.py.

Semantics decided here:
- A reading is out of range when below `low` (or equal to it with an exclusive bound) or above `high`
  (or equal with an exclusive bound). An absent limit is passed as -inf / +inf.
- NaN readings neither extend nor break an excursion run: a run is a maximal sequence of out-of-range
  non-NaN readings with nothing but NaN readings between them. Its start/end are the indices of its
  first/last out-of-range non-NaN reading.
- A run counts as an excursion only when t[end] - t[start] >= min_duration_ms, open or not: a run
  still open at the last reading but shorter than the minimum duration is not yet an excursion.
- A gap is a pair of consecutive non-NaN readings (NaN readings are no evidence) whose spacing is
  strictly greater than `max_gap_ms`; start/end are the indices of those two readings.

Multi-series variants (many series in one call) live in `rules.kernels_multi`.

Further semantics (the full rule set):
- Hysteresis: `hyst_runs` starts a run at an out-of-range reading and ends it only at a reading back
  inside the limits by at least `hyst` (low + hyst <= x <= high - hyst); readings in the dead band
  extend a started run. The run's end is the last non-NaN reading before the clearing one. With
  hyst = 0 it equals `excursion_runs`.
- Time out of range is sample-and-hold: the span from a non-NaN reading to the next non-NaN reading
  counts as out of range when the first one is. `cum_oor_max` is the largest such total within any
  window of `window_ms` (the optimum has a window edge on a reading time, so those are all tried).
- Triggers (WHO PQS E006): thresholds are inclusive; instant = first reading at or beyond it;
  consecutive = first reading at which a run at or beyond it has lasted `seconds`; cumulative = first
  reading at which the sample-and-hold time at or beyond it within the trailing window reaches `seconds`.
- MKT is time-weighted (sample-and-hold), over the trailing window ending at each non-NaN reading.
- A state run (door open, power lost) lasts from its first reading in the state to the first
  non-NaN reading out of it (or to its last reading while still in it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
from numpy.typing import NDArray

F = TypeVar("F", bound=Callable[..., Any])

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


def kernel(fn: F) -> F:
    """Compile `fn` with numba in nopython mode, cached on disk; no fastmath (NaN must stay NaN)."""
    return cast(F, numba.njit(cache=True, nogil=True)(fn))


def parallel_kernel(fn: F) -> F:
    """As `kernel`, with `numba.prange` loops run in parallel.

    Calling parallel kernels from several Python threads at once needs numba's `tbb` or `omp`
    threading layer (the `workqueue` fallback aborts on concurrent use): the rules worker therefore
    evaluates series one by one with the single-series kernels."""
    return cast(F, numba.njit(cache=True, nogil=True, parallel=True)(fn))


@kernel
def out_of_range(x: float, low: float, high: float, low_inclusive: bool, high_inclusive: bool) -> bool:
    """True when the non-NaN value `x` violates the limits (absent limits are -inf / +inf)."""
    if x < low or (x == low and not low_inclusive):
        return True
    return x > high or (x == high and not high_inclusive)


@kernel
def excursion_runs(
    t_ms: IntArray,
    v: FloatArray,
    low: float,
    high: float,
    low_inclusive: bool,
    high_inclusive: bool,
    min_duration_ms: int,
) -> tuple[IntArray, IntArray]:
    """Runs of out-of-range readings lasting at least `min_duration_ms`: (start_idx, end_idx).

    The dead band of zero width: a run ends at the first in-range reading."""
    return hyst_runs(t_ms, v, low, high, low_inclusive, high_inclusive, 0.0, min_duration_ms)


@kernel
def gap_runs(t_ms: IntArray, v: FloatArray, max_gap_ms: int) -> tuple[IntArray, IntArray]:
    """Consecutive non-NaN readings spaced more than `max_gap_ms` apart: (start_idx, end_idx)."""
    n = t_ms.shape[0]
    starts = np.empty(n, dtype=np.int64)
    ends = np.empty(n, dtype=np.int64)
    k = 0
    prev = -1
    for i in range(n):
        if np.isnan(v[i]):
            continue
        if prev >= 0 and t_ms[i] - t_ms[prev] > max_gap_ms:
            starts[k] = prev
            ends[k] = i
            k += 1
        prev = i
    return starts[:k].copy(), ends[:k].copy()


@kernel
def run_stats(
    v: FloatArray, starts: IntArray, ends: IntArray
) -> tuple[FloatArray, FloatArray, FloatArray, IntArray]:
    """Per run [start, end] (inclusive): min, max, mean and count of the non-NaN values (NaN if none)."""
    m = starts.shape[0]
    vmin = np.full(m, np.nan)
    vmax = np.full(m, np.nan)
    vmean = np.full(m, np.nan)
    count = np.zeros(m, dtype=np.int64)
    for r in range(m):
        lo = np.inf
        hi = -np.inf
        total = 0.0
        c = 0
        for i in range(starts[r], ends[r] + 1):
            x = v[i]
            if np.isnan(x):
                continue
            lo = min(lo, x)
            hi = max(hi, x)
            total += x
            c += 1
        if c > 0:
            vmin[r] = lo
            vmax[r] = hi
            vmean[r] = total / c
        count[r] = c
    return vmin, vmax, vmean, count


@kernel
def run_peaks(v: FloatArray, starts: IntArray, ends: IntArray, low: float, high: float) -> FloatArray:
    """Per run: the non-NaN value furthest outside the limits (the first one on ties; NaN if none)."""
    m = starts.shape[0]
    peaks = np.full(m, np.nan)
    for r in range(m):
        best = -np.inf
        for i in range(starts[r], ends[r] + 1):
            x = v[i]
            if np.isnan(x):
                continue
            d = max(low - x, x - high)
            if np.isnan(peaks[r]) or d > best:
                best = d
                peaks[r] = x
    return peaks


# -- the full rule set --------------------------------------------------------------------------------

KELVIN = 273.15
GAS_R_KJ = 0.008314462618  # kJ/(mol·K)


@numba.njit(cache=True, nogil=True, inline="always")  # inlined into the loops that call it
def _shelf_rate(x: float, model: int, ref_c: float, param: float) -> float:
    """Relative rate of spoilage at x °C, 1 at ref_c: model 0 Arrhenius, exp(Ea/R · (1/T_ref − 1/T))
    (param = Ea in kJ/mol); model 1 square-root, ((x − T_min) / (ref_c − T_min))², 0 at or below
    T_min (param = T_min in °C). The one definition both shelf-life kernels use."""
    if model == 0:
        return float(np.exp(param / GAS_R_KJ * (1.0 / (ref_c + KELVIN) - 1.0 / (x + KELVIN))))
    return 0.0 if x <= param else ((x - param) / (ref_c - param)) ** 2


@numba.njit(cache=True, nogil=True, inline="always")  # inlined into the loops that call it
def _keep_run(
    t_ms: IntArray, starts: IntArray, ends: IntArray, k: int, start: int, end: int, min_ms: int
) -> int:
    """Record the run [start, end] at slot k when t[end] - t[start] >= min_ms; the next free slot."""
    if t_ms[end] - t_ms[start] < min_ms:
        return k
    starts[k] = start
    ends[k] = end
    return k + 1


@kernel
def hyst_runs(
    t_ms: IntArray,
    v: FloatArray,
    low: float,
    high: float,
    low_inclusive: bool,
    high_inclusive: bool,
    hyst: float,
    min_duration_ms: int,
) -> tuple[IntArray, IntArray]:
    """Excursion runs with a dead band of `hyst` lasting at least `min_duration_ms`: (start, end)."""
    n = t_ms.shape[0]
    starts = np.empty(n, dtype=np.int64)
    ends = np.empty(n, dtype=np.int64)
    k = 0
    start = -1
    last = -1
    for i in range(n):
        x = v[i]
        if np.isnan(x):
            continue
        if start < 0:
            if out_of_range(x, low, high, low_inclusive, high_inclusive):
                start = i
                last = i
        elif out_of_range(x, low, high, low_inclusive, high_inclusive) or x < low + hyst or x > high - hyst:
            last = i
        else:
            k = _keep_run(t_ms, starts, ends, k, start, last, min_duration_ms)
            start = -1
    if start >= 0:
        k = _keep_run(t_ms, starts, ends, k, start, last, min_duration_ms)
    return starts[:k].copy(), ends[:k].copy()


@kernel
def oor_spans(
    t_ms: IntArray, v: FloatArray, low: float, high: float, low_inclusive: bool, high_inclusive: bool
) -> tuple[IntArray, IntArray]:
    """Sample-and-hold spans [a, b) of time out of range, one per out-of-range non-NaN reading that has
    a later non-NaN reading: (a_ms, b_ms), time-sorted and disjoint."""
    n = t_ms.shape[0]
    a = np.empty(n, dtype=np.int64)
    b = np.empty(n, dtype=np.int64)
    k = 0
    prev = -1
    for i in range(n):
        if np.isnan(v[i]):
            continue
        if prev >= 0 and out_of_range(v[prev], low, high, low_inclusive, high_inclusive):
            a[k] = t_ms[prev]
            b[k] = t_ms[i]
            k += 1
        prev = i
    return a[:k].copy(), b[:k].copy()


@kernel
def _covered(a: IntArray, b: IntArray, cum: IntArray, x: int) -> int:
    """Total length of the disjoint sorted spans [a, b) lying before time x (cum = prefix lengths)."""
    j = np.searchsorted(a, x, side="right")  # spans starting at or before x
    if j == 0:
        return 0
    total = cum[j - 1]
    if b[j - 1] > x:
        total -= b[j - 1] - x
    return int(total)


@kernel
def cum_oor_max(
    t_ms: IntArray,
    v: FloatArray,
    low: float,
    high: float,
    low_inclusive: bool,
    high_inclusive: bool,
    window_ms: int,
) -> tuple[int, int]:
    """(total out-of-range ms, largest out-of-range ms within any window of `window_ms`)."""
    a, b = oor_spans(t_ms, v, low, high, low_inclusive, high_inclusive)
    m = a.shape[0]
    if m == 0:
        return 0, 0
    cum = np.cumsum(b - a)
    best = 0
    for r in range(m):
        # Windows starting at a span's start, and windows ending at a span's end.
        c1 = _covered(a, b, cum, a[r] + window_ms) - _covered(a, b, cum, a[r])
        c2 = _covered(a, b, cum, b[r]) - _covered(a, b, cum, b[r] - window_ms)
        best = max(best, c1, c2)
    return int(cum[m - 1]), best


@kernel
def trigger_fire(
    t_ms: IntArray, v: FloatArray, kind: int, side: int, threshold: float, seconds_ms: int, window_ms: int
) -> int:
    """Index of the reading at which a WHO-PQS trigger fires, or -1.

    kind: 0 instant, 1 consecutive, 2 cumulative; side: 1 high (x >= threshold), -1 low (x <= it)."""
    n = t_ms.shape[0]
    start = -1
    # Cumulative: sample-and-hold spans beyond the threshold, kept in a queue (pos .. k).
    qa = np.empty(n, dtype=np.int64)
    qb = np.empty(n, dtype=np.int64)
    k = 0
    head = 0
    total = 0
    prev = -1
    for i in range(n):
        x = v[i]
        if np.isnan(x):
            continue
        beyond = x >= threshold if side > 0 else x <= threshold
        if kind == 0:
            if beyond:
                return i
        elif kind == 1:
            if beyond:
                if start < 0:
                    start = i
                if t_ms[i] - t_ms[start] >= seconds_ms:
                    return i
            else:
                start = -1
        else:
            if prev >= 0:
                px = v[prev]
                if (px >= threshold) if side > 0 else (px <= threshold):
                    qa[k] = t_ms[prev]
                    qb[k] = t_ms[i]
                    total += t_ms[i] - t_ms[prev]
                    k += 1
            lo = t_ms[i] - window_ms
            while head < k and qb[head] <= lo:
                total -= qb[head] - qa[head]
                head += 1
            clipped = total
            if head < k and qa[head] < lo:
                clipped -= lo - qa[head]
            if clipped >= seconds_ms and (seconds_ms > 0 or beyond):
                return i
        prev = i
    return -1


@kernel
def gap_runs_tight(
    t_ms: IntArray,
    v: FloatArray,
    max_gap_ms: int,
    oor_gap_ms: int,
    low: float,
    high: float,
    low_inclusive: bool,
    high_inclusive: bool,
) -> tuple[IntArray, IntArray, IntArray]:
    """Gaps against the recording interval, `oor_gap_ms` after an out-of-range reading:
    (start_idx, end_idx, allowed_ms)."""
    n = t_ms.shape[0]
    starts = np.empty(n, dtype=np.int64)
    ends = np.empty(n, dtype=np.int64)
    allowed = np.empty(n, dtype=np.int64)
    k = 0
    prev = -1
    for i in range(n):
        if np.isnan(v[i]):
            continue
        if prev >= 0:
            lim = max_gap_ms
            if out_of_range(v[prev], low, high, low_inclusive, high_inclusive):
                lim = min(max_gap_ms, oor_gap_ms)
            if t_ms[i] - t_ms[prev] > lim:
                starts[k] = prev
                ends[k] = i
                allowed[k] = lim
                k += 1
        prev = i
    return starts[:k].copy(), ends[:k].copy(), allowed[:k].copy()


@kernel
def mkt_rolling(t_ms: IntArray, v: FloatArray, window_ms: int, delta_h_r_k: float) -> FloatArray:
    """Time-weighted MKT (°C) over the trailing window ending at each reading (NaN where undefined:
    NaN readings and readings with no held span yet)."""
    n = t_ms.shape[0]
    out = np.full(n, np.nan)
    # Spans [ta, tb) with value x (sample-and-hold); weights scaled by exp(dhr/T_ref) for range.
    ta = np.empty(n, dtype=np.int64)
    tb = np.empty(n, dtype=np.int64)
    w = np.empty(n, dtype=np.float64)
    k = 0
    head = 0
    t_ref = 20.0 + KELVIN
    num = 0.0
    den = 0.0
    prev = -1
    for i in range(n):
        if np.isnan(v[i]):
            continue
        if prev >= 0 and t_ms[i] > t_ms[prev]:
            ta[k] = t_ms[prev]
            tb[k] = t_ms[i]
            w[k] = np.exp(delta_h_r_k / t_ref - delta_h_r_k / (v[prev] + KELVIN))
            dt = float(t_ms[i] - t_ms[prev])
            num += dt * w[k]
            den += dt
            k += 1
        prev = i
        lo = t_ms[i] - window_ms
        while head < k and tb[head] <= lo:
            dt = float(tb[head] - ta[head])
            num -= dt * w[head]
            den -= dt
            head += 1
        if head == k:
            num = 0.0
            den = 0.0
            continue
        cn = num
        cd = den
        if ta[head] < lo:
            cut = float(lo - ta[head])
            cn -= cut * w[head]
            cd -= cut
        if cd > 0 and cn > 0:
            out[i] = delta_h_r_k / (delta_h_r_k / t_ref - np.log(cn / cd)) - KELVIN
    return out


@kernel
def fault_flags(
    t_ms: IntArray, v: FloatArray, flatline_ms: int, spike_c: float, max_rate_c_per_min: float
) -> tuple[int, int, int]:
    """Counts of sensor faults: (flatline runs lasting >= flatline_ms, isolated spikes, impossible
    rate-of-change steps) over the non-NaN readings in order."""
    n = t_ms.shape[0]
    flat = 0
    spikes = 0
    rate = 0
    run_start = -1
    counted = False
    p2 = -1
    p1 = -1
    for i in range(n):
        x = v[i]
        if np.isnan(x):
            continue
        if p1 >= 0:
            dv = abs(x - v[p1])
            dt = t_ms[i] - t_ms[p1]
            if dv > 0 and (dt == 0 or dv * 60_000.0 / dt > max_rate_c_per_min):
                rate += 1
            if x == v[p1]:
                if not counted and t_ms[i] - t_ms[run_start] >= flatline_ms:
                    flat += 1
                    counted = True
            else:
                run_start = i
                counted = False
            if p2 >= 0:
                d1 = v[p1] - v[p2]
                d2 = v[p1] - x
                if (d1 > spike_c and d2 > spike_c) or (d1 < -spike_c and d2 < -spike_c):
                    spikes += 1
        else:
            run_start = i
        p2 = p1
        p1 = i
    return flat, spikes, rate


@kernel
def state_runs(t_ms: IntArray, v: FloatArray, state: float, min_ms: int) -> tuple[IntArray, IntArray]:
    """Runs of a 0/1 channel in `state` lasting at least `min_ms`: (start_idx, end_idx), end being the
    first non-NaN reading out of the state (or the last reading in it while still open)."""
    n = t_ms.shape[0]
    starts = np.empty(n, dtype=np.int64)
    ends = np.empty(n, dtype=np.int64)
    k = 0
    start = -1
    last = -1
    for i in range(n):
        x = v[i]
        if np.isnan(x):
            continue
        if x == state:
            if start < 0:
                start = i
            last = i
        elif start >= 0:
            k = _keep_run(t_ms, starts, ends, k, start, i, min_ms)
            start = -1
    if start >= 0:
        k = _keep_run(t_ms, starts, ends, k, start, last, min_ms)
    return starts[:k].copy(), ends[:k].copy()


@kernel
def accuracy_counts(v: FloatArray, low: float, high: float, accuracy: float) -> tuple[int, int]:
    """(readings within `accuracy` of a limit — indeterminate, readings beyond a limit by more than it)."""
    near = 0
    clear_out = 0
    for i in range(v.shape[0]):
        x = v[i]
        if np.isnan(x):
            continue
        if abs(x - low) <= accuracy or abs(x - high) <= accuracy:
            near += 1
        elif x < low - accuracy or x > high + accuracy:
            clear_out += 1
    return near, clear_out


@kernel
def shelf_life_used(
    t_ms: IntArray, v: FloatArray, model: int, ref_c: float, ref_life_h: float, param: float
) -> float:
    """Fraction of the reference shelf life consumed (additive, sample-and-hold).

    model 0 Arrhenius (param = Ea in kJ/mol), 1 square-root (param = T_min in °C)."""
    used = 0.0
    prev = -1
    life_ms = ref_life_h * 3_600_000.0
    for i in range(t_ms.shape[0]):
        if np.isnan(v[i]):
            continue
        if prev >= 0:
            rate = _shelf_rate(v[prev], model, ref_c, param)
            used += float(t_ms[i] - t_ms[prev]) * rate / life_ms
        prev = i
    return used


@kernel
def shelf_rates(v: FloatArray, model: int, ref_c: float, param: float) -> FloatArray:
    """The relative rate of spoilage at each temperature (1 at the reference temperature; NaN for NaN)."""
    out = np.empty(v.shape[0])
    for i in range(v.shape[0]):
        out[i] = np.nan if np.isnan(v[i]) else _shelf_rate(v[i], model, ref_c, param)
    return out
