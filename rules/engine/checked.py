"""Stage 2 (verdicts): checked wrappers over rules.kernels, turning index runs into typed results.

The kernels trust their inputs; this module checks them (1-D, equal lengths, int64 times, float64
values, sorted by time; non-contiguous input is copied) and raises ValueError otherwise. Semantics of
runs (NaN handling, minimum duration, open runs) are documented in rules.kernels. `check_temperatures`
(run by `rules.engine.profile.evaluate_series`) refuses temperatures outside what a probe can read
(the gateway's `CHANNEL_RANGES["temp"]`, the range every stored reading passed): the MKT and
shelf-life maths divide by the absolute temperature and by a logarithm of it, which absolute zero or
an astronomic value make zero. `check_accuracy` is the range of a device accuracy an inspector may
state (`coldchain rules check --accuracy`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import msgspec
import numpy as np
from numpy.typing import NDArray

from gateway.decode import CHANNEL_RANGES
from rules import kernels, kernels_multi

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

# Temperatures a probe can read: anything else is a broken sensor or encoding (and ingest refuses it).
TEMP_RANGE_C: Final = CHANNEL_RANGES["temp"]
# An accuracy is a dead band on each side of a limit: at ±10 °C it already spans the whole range of every
# shipped class (the widest bounded one, 2–8 °C, is 6 °C wide), and no cold-chain probe is specified
# more loosely (the packs' figures are 0.5 and 1 °C).
MAX_ACCURACY_C: Final = 10.0
DEFAULT_DHR_K: Final = 10_000.0  # ΔH/R for MKT when a class names none (USP <1079.2>)


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


def limit_or(value: float | None, absent: float) -> float:
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
    low = limit_or(low_c, -math.inf)
    high = limit_or(high_c, math.inf)
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
    peaks = kernels.run_peaks(x, starts, ends, low, high)
    valid = np.flatnonzero(~np.isnan(x))
    last_valid = int(valid[-1]) if valid.shape[0] else -1
    return _excursions(t, x, starts, ends, peaks, [e == last_valid for e in ends.tolist()])


def _excursions(
    t: IntArray, x: FloatArray, starts: IntArray, ends: IntArray, peaks: FloatArray, reaches_end: list[bool]
) -> list[Excursion]:
    """Excursion results of the kernels' index runs, with the figures over each run's readings."""
    vmin, vmax, vmean, count = kernels.run_stats(x, starts, ends)
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
            reaches_end=reaches_end[r],
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
    low = limit_or(low_c, -math.inf)
    high = limit_or(high_c, math.inf)
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
    low = np.array([limit_or(lim.low_c, -math.inf) for lim in limits], dtype=np.float64)
    high = np.array([limit_or(lim.high_c, math.inf) for lim in limits], dtype=np.float64)
    low_inc = np.array([lim.low_inclusive for lim in limits], dtype=np.bool_)
    high_inc = np.array([lim.high_inclusive for lim in limits], dtype=np.bool_)
    min_ms = np.array([lim.min_duration_ms for lim in limits], dtype=np.int64)
    if bool(np.any(min_ms < 0)):
        raise ValueError("min_duration_ms must be >= 0")
    starts, ends, series = kernels_multi.excursion_runs_multi(off, t, x, low, high, low_inc, high_inc, min_ms)
    out: list[list[Excursion]] = [[] for _ in range(n_series)]
    if starts.shape[0] == 0:
        return out
    valid = ~np.isnan(x)
    peaks = np.empty(starts.shape[0], dtype=np.float64)
    reaches_end: list[bool] = []
    for r, (e, k) in enumerate(zip(ends.tolist(), series.tolist(), strict=True)):
        peaks[r] = kernels.run_peaks(x, starts[r : r + 1], ends[r : r + 1], low[k], high[k])[0]
        reaches_end.append(not bool(valid[e + 1 : int(off[k + 1])].any()))
    for exc, k in zip(_excursions(t, x, starts, ends, peaks, reaches_end), series.tolist(), strict=True):
        out[k].append(exc)
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
    starts, ends, series = kernels_multi.gap_runs_multi(off, t, x, gap_ms)
    out: list[list[Gap]] = [[] for _ in range(n_series)]
    if starts.shape[0] == 0:
        return out
    no_allowance = np.zeros(starts.shape[0], dtype=np.int64)  # the multi-series gaps name none
    for gap, k in zip(_gaps(t, x, starts, ends, no_allowance), series.tolist(), strict=True):
        out[k].append(gap)
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
