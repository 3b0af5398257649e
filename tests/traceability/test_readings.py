"""Tests: the chart's downsampling keeps every peak (Hypothesis, against a plain-Python oracle), and the
state-channel markers and track thinning."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traceability.readings import downsample, state_changes, thin


def oracle(t: list[int], v: list[float], max_points: int) -> list[int]:
    """Plain Python: every reading with a value when at most max_points have one; else, in each of
    max_points // 2 buckets of ceil(span / buckets) ms from the first such reading, the first reading at
    the bucket's minimum and the first at its maximum."""
    valid = [i for i, x in enumerate(v) if not math.isnan(x)]
    if len(valid) <= max_points:
        return valid
    buckets = max_points // 2
    t0 = t[valid[0]]
    width = max(1, math.ceil((t[valid[-1]] - t0 + 1) / buckets))
    groups: dict[int, list[int]] = {}
    for i in valid:
        groups.setdefault((t[i] - t0) // width, []).append(i)
    kept: set[int] = set()
    for members in groups.values():
        kept.add(min(members, key=lambda i: (v[i], i)))
        kept.add(min(members, key=lambda i: (-v[i], i)))
    return sorted(kept)


values = st.one_of(
    st.floats(min_value=-100, max_value=150, allow_nan=False, width=64),
    st.just(math.nan),  # a dropout
    st.sampled_from([0.0, -0.0, 2.0, 8.5]),  # ties
)


@st.composite
def series(draw: st.DrawFn) -> tuple[list[int], list[float], int]:
    t = sorted(draw(st.lists(st.integers(0, 40 * 86_400_000), max_size=400)))
    v = draw(st.lists(values, min_size=len(t), max_size=len(t)))
    max_points = draw(st.integers(2, 60))
    return t, v, max_points


def _arrays(t: list[int], v: list[float]) -> tuple[np.ndarray[tuple[int], np.dtype[np.int64]], np.ndarray]:
    return np.array(t, dtype=np.int64), np.array(v, dtype=np.float64)


@settings(max_examples=500, deadline=None)
@given(series())
def test_downsample_is_the_oracle(case: tuple[list[int], list[float], int]) -> None:
    t, v, max_points = case
    assert downsample(*_arrays(t, v), max_points).tolist() == oracle(t, v, max_points)


@settings(max_examples=500, deadline=None)
@given(series())
def test_downsample_keeps_every_peak(case: tuple[list[int], list[float], int]) -> None:
    t, v, max_points = case
    kept = downsample(*_arrays(t, v), max_points).tolist()
    valid = [i for i, x in enumerate(v) if not math.isnan(x)]
    assert len(kept) <= max_points
    assert kept == sorted(set(kept))  # time order, no repeats
    assert all(not math.isnan(v[i]) for i in kept)  # a dropout is never drawn
    if valid:  # the series' own extremes
        assert min(v[i] for i in kept) == min(v[i] for i in valid)
        assert max(v[i] for i in kept) == max(v[i] for i in valid)
    if len(valid) <= max_points:
        assert kept == valid  # nothing dropped when it fits
        return
    buckets = max_points // 2
    width = max(1, math.ceil((t[valid[-1]] - t[valid[0]] + 1) / buckets))
    for b in {(t[i] - t[valid[0]]) // width for i in valid}:  # each bucket's extremes
        inside = [i for i in valid if (t[i] - t[valid[0]]) // width == b]
        drawn = [v[i] for i in kept if i in inside]
        assert min(drawn) == min(v[i] for i in inside)
        assert max(drawn) == max(v[i] for i in inside)


@settings(max_examples=300, deadline=None)
@given(series())
def test_downsample_is_idempotent(case: tuple[list[int], list[float], int]) -> None:
    t, v, max_points = case
    tt, vv = _arrays(t, v)
    kept = downsample(tt, vv, max_points)
    again = downsample(tt[kept], vv[kept], max_points)
    assert again.tolist() == list(range(kept.size))


def test_downsample_a_month_of_minutes_keeps_a_one_minute_spike() -> None:
    t = np.arange(43_200, dtype=np.int64) * 60_000
    v = np.full(43_200, 3.0)
    v[12_345] = 12.0
    v[30_000] = -4.0
    v[::997] = np.nan
    kept = downsample(t, v, 2_000)
    assert kept.size <= 2_000
    assert {12_345, 30_000} <= set(kept.tolist())


def test_downsample_refuses_fewer_than_two_points() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        downsample(np.array([1], dtype=np.int64), np.array([1.0]), 1)


def test_state_changes() -> None:
    door = np.array([0, 0, 1, 1, np.nan, 1, 0, 0, 1], dtype=np.float64)
    assert state_changes("door", door) == [(2, "door_open"), (6, "door_closed"), (8, "door_open")]
    assert state_changes("door", np.array([1, 0.0])) == [(0, "door_open"), (1, "door_closed")]
    power = np.array([1, 0, 0, 1], dtype=np.float64)
    assert state_changes("power", power) == [(1, "power_off"), (3, "power_on")]
    assert state_changes("power", np.array([0.0])) == [(0, "power_off")]
    assert state_changes("power", np.array([np.nan])) == []


@given(st.integers(0, 5_000), st.integers(2, 500))
def test_thin_keeps_the_ends(n: int, max_points: int) -> None:
    picked = thin(n, max_points).tolist()
    assert len(picked) == min(n, max_points)
    assert picked == sorted(set(picked))
    if n:
        assert picked[0] == 0
        assert picked[-1] == n - 1
