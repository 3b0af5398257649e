"""Tests for rules.kernels / rules.engine: each kernel against a pure-Python oracle (Hypothesis)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import engine, kernels

# -- pure-Python oracles (written from the documented semantics, not from the kernels) ----------------


def oracle_out(x: float, low: float, high: float, low_inc: bool, high_inc: bool) -> bool:
    below = x < low if low_inc else x <= low
    above = x > high if high_inc else x >= high
    return below or above


def oracle_excursions(
    t: list[int], v: list[float], low: float, high: float, low_inc: bool, high_inc: bool, min_ms: int
) -> list[tuple[int, int]]:
    # Split the non-NaN readings into maximal groups of consecutive out-of-range ones.
    valid = [i for i, x in enumerate(v) if not math.isnan(x)]
    runs: list[list[int]] = []
    current: list[int] = []
    for i in valid:
        if oracle_out(v[i], low, high, low_inc, high_inc):
            current.append(i)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [(r[0], r[-1]) for r in runs if t[r[-1]] - t[r[0]] >= min_ms]


def oracle_gaps(t: list[int], v: list[float], max_gap_ms: int) -> list[tuple[int, int]]:
    valid = [i for i, x in enumerate(v) if not math.isnan(x)]
    return [(a, b) for a, b in itertools.pairwise(valid) if t[b] - t[a] > max_gap_ms]


def oracle_stats(v: list[float], s: int, e: int) -> tuple[float, float, float, int]:
    xs = [x for x in v[s : e + 1] if not math.isnan(x)]
    if not xs:
        return math.nan, math.nan, math.nan, 0
    return min(xs), max(xs), sum(xs) / len(xs), len(xs)


def oracle_peak(v: list[float], s: int, e: int, low: float, high: float) -> float:
    best: float | None = None
    peak = math.nan
    for x in v[s : e + 1]:
        if math.isnan(x):
            continue
        d = max(low - x, x - high)
        if best is None or d > best:
            best, peak = d, x
    return peak


# -- strategies ----------------------------------------------------------------------------------------

# Small integer-ish temperatures so bounds are hit exactly; NaN is a dropout.
values = st.one_of(st.just(math.nan), st.integers(-25, 12).map(float), st.floats(-30, 15, allow_nan=False))


@st.composite
def series(draw: st.DrawFn, max_size: int = 40) -> tuple[np.ndarray, np.ndarray]:
    # Steps of 0 give duplicate timestamps; large steps give gaps.
    steps = draw(
        st.lists(st.sampled_from([0, 60_000, 60_000, 120_000, 600_000, 2_400_000]), max_size=max_size)
    )
    start = draw(st.integers(1_700_000_000_000, 1_800_000_000_000))
    t = np.array([start, *(start + s for s in np.cumsum(steps).tolist())], dtype=np.int64)
    n = draw(st.integers(0, len(t)))
    t = t[:n]
    v = np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=np.float64)
    return t, v


limits = st.tuples(
    st.one_of(st.none(), st.integers(-20, 2).map(float)),
    st.one_of(st.none(), st.integers(3, 8).map(float)),
    st.booleans(),
    st.booleans(),
)


def _inf(x: float | None, absent: float) -> float:
    return absent if x is None else x


# -- property tests --------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(series(), limits, st.sampled_from([0, 60_000, 600_000, 1_200_000]))
def test_excursion_runs_match_oracle(
    tv: tuple[np.ndarray, np.ndarray],
    lim: tuple[float | None, float | None, bool, bool],
    min_ms: int,
) -> None:
    t, v = tv
    low, high, low_inc, high_inc = lim
    lo, hi = _inf(low, -math.inf), _inf(high, math.inf)
    starts, ends = kernels.excursion_runs(t, v, lo, hi, low_inc, high_inc, min_ms)
    expected = oracle_excursions(t.tolist(), v.tolist(), lo, hi, low_inc, high_inc, min_ms)
    assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == expected

    found = engine.find_excursions(
        t, v, low_c=low, high_c=high, low_inclusive=low_inc, high_inclusive=high_inc, min_duration_ms=min_ms
    )
    assert [(e.start_idx, e.end_idx) for e in found] == expected
    vl = v.tolist()
    valid = [i for i, x in enumerate(vl) if not math.isnan(x)]
    for e in found:
        vmin, vmax, vmean, count = oracle_stats(vl, e.start_idx, e.end_idx)
        assert (e.min_c, e.max_c, e.readings) == (vmin, vmax, count)
        assert e.mean_c == pytest.approx(vmean)
        assert e.peak_c == oracle_peak(vl, e.start_idx, e.end_idx, lo, hi)
        assert e.t_start_ms == t[e.start_idx]
        assert e.t_end_ms == t[e.end_idx]
        assert e.duration_ms >= min_ms
        assert e.reaches_end == (e.end_idx == valid[-1])


@settings(max_examples=300, deadline=None)
@given(series(), st.sampled_from([0, 60_000, 600_000, 1_800_000]))
def test_gap_runs_match_oracle(tv: tuple[np.ndarray, np.ndarray], max_gap_ms: int) -> None:
    t, v = tv
    starts, ends = kernels.gap_runs(t, v, max_gap_ms)
    expected = oracle_gaps(t.tolist(), v.tolist(), max_gap_ms)
    assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == expected
    found = engine.find_gaps(t, v, max_gap_ms=max_gap_ms)
    assert [(g.start_idx, g.end_idx) for g in found] == expected
    for g in found:
        assert g.gap_ms > max_gap_ms
        vmin, vmax, vmean, count = oracle_stats(v.tolist(), g.start_idx, g.end_idx)
        assert (g.min_c, g.max_c, g.readings) == (vmin, vmax, count)
        assert g.mean_c == pytest.approx(vmean)


# -- examples ------------------------------------------------------------------------------------------

MIN = 60_000


def _t(minutes: list[int]) -> np.ndarray:
    return np.array([m * MIN for m in minutes], dtype=np.int64)


def test_empty_series() -> None:
    t = np.empty(0, dtype=np.int64)
    v = np.empty(0, dtype=np.float64)
    assert engine.find_excursions(t, v, low_c=0.0, high_c=4.0, min_duration_ms=0) == []
    assert engine.find_gaps(t, v, max_gap_ms=0) == []


def test_single_reading() -> None:
    t, v = _t([0]), np.array([9.0])
    [exc] = engine.find_excursions(t, v, low_c=0.0, high_c=4.0, min_duration_ms=0)
    assert (exc.start_idx, exc.end_idx, exc.peak_c, exc.readings, exc.reaches_end) == (0, 0, 9.0, 1, True)
    assert engine.find_excursions(t, v, low_c=0.0, high_c=4.0, min_duration_ms=MIN) == []
    assert engine.find_gaps(t, v, max_gap_ms=0) == []


def test_nan_inside_run_neither_ends_nor_extends_it() -> None:
    t = _t(list(range(12)))
    v = np.array([2, 9, 9, np.nan, np.nan, 9, 9, 9, 9, 9, 9, 2], dtype=np.float64)
    [exc] = engine.find_excursions(t, v, low_c=0.0, high_c=4.0, min_duration_ms=9 * MIN)
    assert (exc.start_idx, exc.end_idx, exc.readings) == (1, 10, 8)
    # A NaN after the run does not extend it either.
    v2 = np.array([2, 9, 9, 9, np.nan, np.nan, np.nan, 2], dtype=np.float64)
    assert (
        engine.find_excursions(_t(list(range(8))), v2, low_c=0.0, high_c=4.0, min_duration_ms=3 * MIN) == []
    )


def test_open_run_shorter_than_minimum_is_not_an_excursion() -> None:
    t = _t(list(range(10)))
    v = np.array([2, 2, 2, 2, 2, 9, 9, 9, 9, 9], dtype=np.float64)
    assert engine.find_excursions(t, v, low_c=0.0, high_c=4.0, min_duration_ms=10 * MIN) == []
    [exc] = engine.find_excursions(t, v, low_c=0.0, high_c=4.0, min_duration_ms=4 * MIN)
    assert exc.reaches_end


def test_inclusive_and_exclusive_bounds() -> None:
    t, v = _t([0, 1, 2]), np.array([0.0, 4.0, -18.0])
    assert engine.find_excursions(t[:2], v[:2], low_c=0.0, high_c=4.0) == []
    runs = engine.find_excursions(
        t[:2], v[:2], low_c=0.0, high_c=4.0, low_inclusive=False, high_inclusive=False
    )
    assert [(e.start_idx, e.end_idx) for e in runs] == [(0, 1)]
    assert engine.find_excursions(t[2:], v[2:], low_c=None, high_c=-18.0) == []
    assert len(engine.find_excursions(t[2:], v[2:], low_c=None, high_c=-18.0, high_inclusive=False)) == 1


def test_gap_is_strictly_longer_than_allowed_and_skips_nan() -> None:
    t = _t([0, 10, 20, 25, 70])
    v = np.array([1.0, 1.0, np.nan, 1.0, 1.0])
    gaps = engine.find_gaps(t, v, max_gap_ms=10 * MIN)
    # 0->10 is exactly the allowed interval (no gap); the NaN at 20 is no evidence, so 10->25 is a gap.
    assert [(g.start_idx, g.end_idx, g.gap_ms) for g in gaps] == [(1, 3, 15 * MIN), (3, 4, 45 * MIN)]


def test_duplicate_timestamps_are_accepted() -> None:
    t = _t([0, 0, 5, 5, 20])
    v = np.array([9.0, 9.0, 9.0, 1.0, 9.0])
    runs = engine.find_excursions(t, v, low_c=0.0, high_c=4.0, min_duration_ms=5 * MIN)
    assert [(e.start_idx, e.end_idx) for e in runs] == [(0, 2)]


def test_unsorted_and_malformed_input_rejected() -> None:
    v = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="sorted"):
        engine.find_excursions(_t([5, 1]), v, low_c=0.0, high_c=4.0)
    with pytest.raises(ValueError, match="sorted"):
        engine.find_gaps(_t([5, 1]), v, max_gap_ms=1)
    with pytest.raises(ValueError, match="length"):
        engine.find_gaps(_t([1, 2, 3]), v, max_gap_ms=1)
    with pytest.raises(ValueError, match="int64"):
        engine.find_gaps(np.array([1.0, 2.0]), v, max_gap_ms=1)
    with pytest.raises(ValueError, match="float64"):
        engine.find_gaps(_t([1, 2]), np.array([1, 2], dtype=np.int64), max_gap_ms=1)
    with pytest.raises(ValueError, match="1-D"):
        engine.find_gaps(_t([1, 2]).reshape(1, 2), v.reshape(1, 2), max_gap_ms=1)


def test_non_contiguous_input_is_copied() -> None:
    t = _t(list(range(20)))[::2]
    v = np.array([9.0] * 20)[::2]
    assert not t.flags.c_contiguous
    [exc] = engine.find_excursions(t, v, low_c=0.0, high_c=4.0, min_duration_ms=0)
    assert (exc.start_idx, exc.end_idx, exc.readings) == (0, 9, 10)


def test_warm_up_runs() -> None:
    engine.warm_up()


# -- multi-series variants ------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(series(max_size=15), limits, st.sampled_from([0, 60_000, 600_000])),
        max_size=4,
    )
)
def test_multi_series_variants_match_per_series_oracle(
    parts: list[tuple[tuple[np.ndarray, np.ndarray], tuple[float | None, float | None, bool, bool], int]],
) -> None:
    ts = [p[0][0] for p in parts]
    vs = [p[0][1] for p in parts]
    offsets = np.array([0, *np.cumsum([len(t) for t in ts]).tolist()], dtype=np.int64)
    t = np.concatenate([np.empty(0, dtype=np.int64), *ts])
    v = np.concatenate([np.empty(0, dtype=np.float64), *vs])
    lims = [
        engine.RangeLimits(low_c=lo, high_c=hi, low_inclusive=li, high_inclusive=hinc, min_duration_ms=ms)
        for (_, (lo, hi, li, hinc), ms) in parts
    ]
    found = engine.find_excursions_multi(offsets, t, v, lims)
    gaps = engine.find_gaps_multi(offsets, t, v, [ms for (_, _, ms) in parts])
    assert len(found) == len(gaps) == len(parts)
    for k, ((ti, vi), (lo, hi, li, hinc), ms) in enumerate(parts):
        a = int(offsets[k])
        lo_f, hi_f = _inf(lo, -math.inf), _inf(hi, math.inf)
        expected = oracle_excursions(ti.tolist(), vi.tolist(), lo_f, hi_f, li, hinc, ms)
        assert [(e.start_idx - a, e.end_idx - a) for e in found[k]] == expected
        single = engine.find_excursions(
            ti, vi, low_c=lo, high_c=hi, low_inclusive=li, high_inclusive=hinc, min_duration_ms=ms
        )
        assert [(e.peak_c, e.readings, e.reaches_end) for e in found[k]] == [
            (e.peak_c, e.readings, e.reaches_end) for e in single
        ]
        assert [(g.start_idx - a, g.end_idx - a) for g in gaps[k]] == oracle_gaps(
            ti.tolist(), vi.tolist(), ms
        )


def test_multi_series_validation() -> None:
    t = _t([5, 9, 1, 2])  # time goes back only where series 1 starts
    v = np.array([9.0, 9.0, 9.0, 9.0])
    lim = engine.RangeLimits(low_c=0.0, high_c=4.0)
    found = engine.find_excursions_multi(np.array([0, 2, 4], dtype=np.int64), t, v, [lim, lim])
    assert [[(e.start_idx, e.end_idx) for e in runs] for runs in found] == [[(0, 1)], [(2, 3)]]
    with pytest.raises(ValueError, match="within each series"):
        engine.find_excursions_multi(np.array([0, 1, 4], dtype=np.int64), t, v, [lim, lim])
    with pytest.raises(ValueError, match="offsets must start at 0"):
        engine.find_gaps_multi(np.array([0, 2], dtype=np.int64), t, v, [1])
    with pytest.raises(ValueError, match="limits for"):
        engine.find_excursions_multi(np.array([0, 4], dtype=np.int64), _t([1, 2, 3, 4]), v, [lim, lim])
