"""Tests for rules.kernels_multi: the parallel path (numba prange over series, on every thread and on
one) equals the per-series kernels called one series at a time (Hypothesis)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import kernels, kernels_multi

MIN = 60_000
ALL_THREADS = int(numba.config.NUMBA_NUM_THREADS)

values = st.one_of(
    st.sampled_from([-3.0, 0.0, 2.0, 3.8, 4.0, 4.2, 8.0, 9.5, math.nan]),
    st.floats(-30, 40, allow_nan=False),
)


Many = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@contextmanager
def threads(n: int) -> Iterator[None]:
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


@st.composite
def one_series(draw: st.DrawFn) -> tuple[list[int], list[float]]:
    n = draw(st.integers(0, 40))
    steps = draw(st.lists(st.sampled_from([0, MIN, MIN, 2 * MIN, 5 * MIN, 40 * MIN]), min_size=n, max_size=n))
    start = draw(st.integers(1_700_000_000_000, 1_800_000_000_000))
    t = [start + s for s in np.cumsum([0, *steps])[:n].tolist()]
    v = draw(st.lists(values, min_size=n, max_size=n))
    return t, v


@st.composite
def params(draw: st.DrawFn) -> list[float]:
    """One series' `evaluate_one` parameter vector (its order is kernels_multi.evaluate_one's)."""
    low = draw(st.sampled_from([-math.inf, -1.0, 0.0, 2.0]))
    high = draw(st.sampled_from([4.0, 8.0, math.inf]))
    return [
        low,
        high,
        float(draw(st.booleans())),
        float(draw(st.booleans())),
        draw(st.sampled_from([0.0, 0.5])),
        draw(st.sampled_from([0, MIN, 10 * MIN])),
        draw(st.sampled_from([5 * MIN, 30 * MIN])),
        draw(st.sampled_from([2 * MIN, 5 * MIN])),
        draw(st.sampled_from([60 * MIN, 24 * 60 * MIN])),
        draw(st.sampled_from([60 * MIN, 24 * 60 * MIN])),
        draw(st.sampled_from([8_000.0, 10_000.0])),
        draw(st.sampled_from([0.0, 0.5, 1.0])),
        draw(st.sampled_from([10 * MIN, 360 * MIN])),
        draw(st.sampled_from([3.0, 5.0])),
        draw(st.sampled_from([1.0, 3.0])),
        float(draw(st.integers(0, 1))),
        draw(st.sampled_from([0.0, 4.0])),
        draw(st.sampled_from([240.0, 8760.0])),
        draw(st.sampled_from([-10.0, 80.0])),
    ]


@st.composite
def many(draw: st.DrawFn) -> Many:
    """Concatenated series (offsets, t, v) and one parameter row per series."""
    parts = draw(st.lists(st.tuples(one_series(), params()), min_size=0, max_size=12))
    offsets = np.cumsum([0, *(len(t) for (t, _), _ in parts)]).astype(np.int64)
    t = np.array([x for (ts, _), _ in parts for x in ts], dtype=np.int64)
    v = np.array([x for (_, vs), _ in parts for x in vs], dtype=np.float64)
    p = np.array([row for _, row in parts], dtype=np.float64).reshape(len(parts), 19)
    return offsets, t, v, p


SETTINGS = settings(max_examples=150, deadline=None)


def serial_evaluate(offsets: np.ndarray, t: np.ndarray, v: np.ndarray, p: np.ndarray) -> np.ndarray:
    out = np.full((offsets.shape[0] - 1, len(kernels_multi.SUMMARY)), np.nan)
    for s in range(offsets.shape[0] - 1):
        a, b = int(offsets[s]), int(offsets[s + 1])
        kernels_multi.evaluate_one(t[a:b], v[a:b], p[s], out[s])
    return out


@SETTINGS
@given(many())
def test_evaluate_multi_parallel_equals_serial(
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    offsets, t, v, p = data
    want = serial_evaluate(offsets, t, v, p)
    with threads(ALL_THREADS):
        wide = kernels_multi.evaluate_multi(offsets, t, v, p)
    with threads(1):
        narrow = kernels_multi.evaluate_multi(offsets, t, v, p)
    # Bit for bit (NaN where NaN): each series is computed by the same code whatever thread runs it.
    np.testing.assert_array_equal(wide, want)
    np.testing.assert_array_equal(narrow, want)


@SETTINGS
@given(many())
def test_run_kernels_parallel_equal_serial(
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    offsets, t, v, p = data
    n = offsets.shape[0] - 1
    low, high = p[:, 0].copy(), p[:, 1].copy()
    li, hi = p[:, 2] > 0.5, p[:, 3] > 0.5
    min_ms = p[:, 5].astype(np.int64)
    gap_ms = p[:, 6].astype(np.int64)
    exc: list[tuple[int, int, int]] = []
    gaps: list[tuple[int, int, int]] = []
    for s in range(n):
        a, b = int(offsets[s]), int(offsets[s + 1])
        st_, en = kernels.excursion_runs(t[a:b], v[a:b], low[s], high[s], li[s], hi[s], min_ms[s])
        exc += [(x + a, y + a, s) for x, y in zip(st_.tolist(), en.tolist(), strict=True)]
        gs, ge = kernels.gap_runs(t[a:b], v[a:b], gap_ms[s])
        gaps += [(x + a, y + a, s) for x, y in zip(gs.tolist(), ge.tolist(), strict=True)]
    for k in (ALL_THREADS, 1):
        with threads(k):
            e = kernels_multi.excursion_runs_multi(offsets, t, v, low, high, li, hi, min_ms)
            g = kernels_multi.gap_runs_multi(offsets, t, v, gap_ms)
        assert list(zip(*(x.tolist() for x in e), strict=True)) == exc
        assert list(zip(*(x.tolist() for x in g), strict=True)) == gaps


def test_more_series_than_threads_all_computed() -> None:
    # Many series of distinct lengths: every one is computed, in its own row, whichever thread ran it.
    rng = np.random.default_rng(3)
    lens = rng.integers(0, 300, size=257)
    offsets = np.cumsum([0, *lens.tolist()]).astype(np.int64)
    t = np.concatenate([np.arange(k, dtype=np.int64) * MIN for k in lens.tolist()])
    v = rng.normal(3.0, 3.0, size=t.shape[0])
    p = np.array(
        [
            0,
            4,
            1,
            1,
            0.5,
            10 * MIN,
            10 * MIN,
            5 * MIN,
            60 * MIN,
            60 * MIN,
            1e4,
            0.5,
            60 * MIN,
            5,
            3,
            1,
            0,
            240,
            -10.0,
        ]
    )
    pp = np.ascontiguousarray(np.broadcast_to(p, (lens.shape[0], p.shape[0])))
    with threads(ALL_THREADS):
        wide = kernels_multi.evaluate_multi(offsets, t, v, pp)
    np.testing.assert_array_equal(wide, serial_evaluate(offsets, t, v, pp))
    assert (wide[:, 0] == lens).all()  # n_valid: no NaN here, so every reading of its own series
