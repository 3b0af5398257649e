"""Stage 2 (verdicts): pure numba kernels over one time-sorted series (int64 epoch-ms, float64 values).

Contract for every kernel: arrays are contiguous, 1-D, of equal length and sorted by time (ties
allowed); NaN in `v` is a dropout. Kernels return arrays of run indices (or per-run figures); they
hold no objects, do no logging, datetimes or I/O, and never validate: `rules.engine` does that and
turns indices into typed results. No fastmath (it would license numba to assume no NaN). Every kernel
has a pure-Python oracle in tests/test_rules_kernels.py.

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

Multi-series variants take many series in one call: `offsets` (int64, length n_series + 1) marks
series s as the slice [offsets[s], offsets[s+1]) of the concatenated, series-sorted arrays; per-series
parameters are arrays of length n_series; returned indices are global, with the series of each run.

Later rules (hysteresis, cumulative budgets, MKT, shelf life) add kernels here with the same contract.
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
    """Runs of out-of-range readings lasting at least `min_duration_ms`: (start_idx, end_idx)."""
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
        if out_of_range(x, low, high, low_inclusive, high_inclusive):
            if start < 0:
                start = i
            last = i
        elif start >= 0:
            if t_ms[last] - t_ms[start] >= min_duration_ms:
                starts[k] = start
                ends[k] = last
                k += 1
            start = -1
    if start >= 0 and t_ms[last] - t_ms[start] >= min_duration_ms:
        starts[k] = start
        ends[k] = last
        k += 1
    return starts[:k].copy(), ends[:k].copy()


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


@parallel_kernel
def excursion_runs_multi(
    offsets: IntArray,
    t_ms: IntArray,
    v: FloatArray,
    low: FloatArray,
    high: FloatArray,
    low_inclusive: NDArray[np.bool_],
    high_inclusive: NDArray[np.bool_],
    min_duration_ms: IntArray,
) -> tuple[IntArray, IntArray, IntArray]:
    """`excursion_runs` over many series at once: (start_idx, end_idx, series_idx), series-sorted."""
    n_series = offsets.shape[0] - 1
    buf_s = np.empty(t_ms.shape[0], dtype=np.int64)
    buf_e = np.empty(t_ms.shape[0], dtype=np.int64)
    counts = np.zeros(n_series, dtype=np.int64)
    # Each series writes only inside its own slice of the buffers: no two iterations share memory.
    for s in numba.prange(n_series):
        a = offsets[s]
        b = offsets[s + 1]
        st, en = excursion_runs(
            t_ms[a:b], v[a:b], low[s], high[s], low_inclusive[s], high_inclusive[s], min_duration_ms[s]
        )
        k = st.shape[0]
        buf_s[a : a + k] = st + a
        buf_e[a : a + k] = en + a
        counts[s] = k
    return _compact(offsets, counts, buf_s, buf_e)


@parallel_kernel
def gap_runs_multi(
    offsets: IntArray, t_ms: IntArray, v: FloatArray, max_gap_ms: IntArray
) -> tuple[IntArray, IntArray, IntArray]:
    """`gap_runs` over many series at once: (start_idx, end_idx, series_idx), series-sorted."""
    n_series = offsets.shape[0] - 1
    buf_s = np.empty(t_ms.shape[0], dtype=np.int64)
    buf_e = np.empty(t_ms.shape[0], dtype=np.int64)
    counts = np.zeros(n_series, dtype=np.int64)
    for s in numba.prange(n_series):
        a = offsets[s]
        b = offsets[s + 1]
        st, en = gap_runs(t_ms[a:b], v[a:b], max_gap_ms[s])
        k = st.shape[0]
        buf_s[a : a + k] = st + a
        buf_e[a : a + k] = en + a
        counts[s] = k
    return _compact(offsets, counts, buf_s, buf_e)


@kernel
def _compact(
    offsets: IntArray, counts: IntArray, buf_s: IntArray, buf_e: IntArray
) -> tuple[IntArray, IntArray, IntArray]:
    """Gather per-series runs (series s has counts[s] runs at buf[offsets[s]:]) into dense arrays."""
    total = 0
    for s in range(counts.shape[0]):
        total += counts[s]
    out_s = np.empty(total, dtype=np.int64)
    out_e = np.empty(total, dtype=np.int64)
    out_series = np.empty(total, dtype=np.int64)
    pos = 0
    for s in range(counts.shape[0]):
        a = offsets[s]
        for j in range(counts[s]):
            out_s[pos] = buf_s[a + j]
            out_e[pos] = buf_e[a + j]
            out_series[pos] = s
            pos += 1
    return out_s, out_e, out_series
