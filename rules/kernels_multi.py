"""Stage 2 (verdicts): numba kernels over many series in one call (the batch and bench engines).

`offsets` (int64, length n_series + 1) marks series s as the slice [offsets[s], offsets[s+1]) of the
concatenated, series-sorted arrays; per-series parameters are arrays of length n_series; returned
indices are global, with the series of each run. Semantics are those of the single-series kernels in
`rules.kernels`, which these call or mirror; `rules.engine` validates the inputs.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

from rules.kernels import (
    FloatArray,
    IntArray,
    accuracy_counts,
    cum_oor_max,
    excursion_runs,
    fault_flags,
    gap_runs,
    gap_runs_tight,
    hyst_runs,
    kernel,
    mkt_rolling,
    parallel_kernel,
    shelf_life_used,
)


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
    buf_s, buf_e, counts = _buffers(n_series, t_ms.shape[0])
    # Each series writes only inside its own slice of the buffers: no two iterations share memory.
    for s in numba.prange(n_series):
        a = offsets[s]
        b = offsets[s + 1]
        st, en = excursion_runs(
            t_ms[a:b], v[a:b], low[s], high[s], low_inclusive[s], high_inclusive[s], min_duration_ms[s]
        )
        _place(buf_s, buf_e, counts, s, a, st, en)
    return _compact(offsets, counts, buf_s, buf_e)


@parallel_kernel
def gap_runs_multi(
    offsets: IntArray, t_ms: IntArray, v: FloatArray, max_gap_ms: IntArray
) -> tuple[IntArray, IntArray, IntArray]:
    """`gap_runs` over many series at once: (start_idx, end_idx, series_idx), series-sorted."""
    n_series = offsets.shape[0] - 1
    buf_s, buf_e, counts = _buffers(n_series, t_ms.shape[0])
    for s in numba.prange(n_series):
        a = offsets[s]
        b = offsets[s + 1]
        st, en = gap_runs(t_ms[a:b], v[a:b], max_gap_ms[s])
        _place(buf_s, buf_e, counts, s, a, st, en)
    return _compact(offsets, counts, buf_s, buf_e)


@kernel
def _buffers(n_series: int, n: int) -> tuple[IntArray, IntArray, IntArray]:
    """Per-reading run buffers (starts, ends) and per-series run counts, for the `*_multi` kernels."""
    return np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64), np.zeros(n_series, dtype=np.int64)


@kernel
def _place(
    buf_s: IntArray, buf_e: IntArray, counts: IntArray, s: int, a: int, st: IntArray, en: IntArray
) -> None:
    """Write series s's runs (local indices st, en) into its slice of the buffers from `a`, globally."""
    k = st.shape[0]
    buf_s[a : a + k] = st + a
    buf_e[a : a + k] = en + a
    counts[s] = k


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


# Summary columns of `evaluate_multi` (the bench compares them across engines).
SUMMARY = (
    "n_valid",
    "excursions",
    "excursion_ms",
    "oor_ms",
    "cum_oor_max_ms",
    "gaps",
    "gap_ms",
    "mkt_max_c",
    "min_c",
    "max_c",
    "mean_c",
    "near_limit",
    "faults",
    "shelf_used",
)


@kernel
def evaluate_one(
    t_ms: IntArray,
    v: FloatArray,
    p: FloatArray,
    out: FloatArray,
) -> None:
    """The whole default rule set over one series; parameters in `p`, summary (SUMMARY order) to `out`.

    p: low, high, low_inc, high_inc, hyst, min_dur_ms, max_gap_ms, oor_gap_ms, cum_window_ms,
       mkt_window_ms, dhr_k, accuracy, flatline_ms, spike_c, max_rate, shelf_model, ref_c, ref_life_h,
       shelf_param."""
    low = p[0]
    high = p[1]
    li = p[2] > 0.5
    hi = p[3] > 0.5
    st, en = hyst_runs(t_ms, v, low, high, li, hi, p[4], int(p[5]))
    exc_ms = 0
    for r in range(st.shape[0]):
        exc_ms += t_ms[en[r]] - t_ms[st[r]]
    total, cmax = cum_oor_max(t_ms, v, low, high, li, hi, int(p[8]))
    gs, ge, _ga = gap_runs_tight(t_ms, v, int(p[6]), int(p[7]), low, high, li, hi)
    gap_ms = 0
    for r in range(gs.shape[0]):
        gap_ms += t_ms[ge[r]] - t_ms[gs[r]]
    mk = mkt_rolling(t_ms, v, int(p[9]), p[10])
    mkt_max = np.nan
    vmin = np.inf
    vmax = -np.inf
    s = 0.0
    c = 0
    for i in range(v.shape[0]):
        if not np.isnan(mk[i]) and (np.isnan(mkt_max) or mk[i] > mkt_max):
            mkt_max = mk[i]
        x = v[i]
        if not np.isnan(x):
            vmin = min(vmin, x)
            vmax = max(vmax, x)
            s += x
            c += 1
    near, _clear = accuracy_counts(v, low, high, p[11])
    f1, f2, f3 = fault_flags(t_ms, v, int(p[12]), p[13], p[14])
    out[0] = c
    out[1] = st.shape[0]
    out[2] = exc_ms
    out[3] = total
    out[4] = cmax
    out[5] = gs.shape[0]
    out[6] = gap_ms
    out[7] = mkt_max
    out[8] = vmin if c > 0 else np.nan
    out[9] = vmax if c > 0 else np.nan
    out[10] = s / c if c > 0 else np.nan
    out[11] = near
    out[12] = f1 + f2 + f3
    out[13] = shelf_life_used(t_ms, v, int(p[15]), p[16], p[17], p[18])


@parallel_kernel
def evaluate_multi(offsets: IntArray, t_ms: IntArray, v: FloatArray, params: FloatArray) -> FloatArray:
    """`evaluate_one` over many series in parallel: params (n_series, 19) -> summary (n_series, 14)."""
    n_series = offsets.shape[0] - 1
    out = np.full((n_series, 14), np.nan)
    for s in numba.prange(n_series):
        a = offsets[s]
        b = offsets[s + 1]
        evaluate_one(t_ms[a:b], v[a:b], params[s], out[s])
    return out
