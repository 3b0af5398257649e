"""Tests for the full rule-set kernels in rules.kernels, each against a plain-Python oracle (Hypothesis)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import engine, kernels, kernels_multi
from rules.packs import load_packs

KELVIN = 273.15
MIN = 60_000

# -- oracles (plain Python, from the documented semantics) ------------------------------------------------


def is_out(x: float, low: float, high: float, li: bool, hi: bool) -> bool:
    return (x < low if li else x <= low) or (x > high if hi else x >= high)


def valid_idx(v: list[float]) -> list[int]:
    return [i for i, x in enumerate(v) if not math.isnan(x)]


def oracle_hyst(
    t: list[int], v: list[float], low: float, high: float, li: bool, hi: bool, hyst: float, min_ms: int
) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    cur: list[int] = []
    for i in valid_idx(v):
        x = v[i]
        if not cur:
            if is_out(x, low, high, li, hi):
                cur = [i]
        elif is_out(x, low, high, li, hi) or not (low + hyst <= x <= high - hyst):
            cur.append(i)
        else:
            runs.append((cur[0], cur[-1]))
            cur = []
    if cur:
        runs.append((cur[0], cur[-1]))
    return [(a, b) for a, b in runs if t[b] - t[a] >= min_ms]


def oracle_spans(t: list[int], v: list[float], pred: object) -> list[tuple[int, int]]:
    idx = valid_idx(v)
    return [(t[a], t[b]) for a, b in itertools.pairwise(idx) if pred(v[a])]  # type: ignore[operator]


def covered(spans: list[tuple[int, int]], lo: int, hi: int) -> int:
    return sum(max(0, min(b, hi) - max(a, lo)) for a, b in spans)


def oracle_cum(
    t: list[int], v: list[float], low: float, high: float, li: bool, hi: bool, window: int
) -> tuple[int, int]:
    spans = oracle_spans(t, v, lambda x: is_out(x, low, high, li, hi))
    total = sum(b - a for a, b in spans)
    # Brute force over every window edge at a reading time (either side).
    best = 0
    for tau in t:
        best = max(best, covered(spans, tau, tau + window), covered(spans, tau - window, tau))
    return total, best


def oracle_trigger(
    t: list[int], v: list[float], kind: int, side: int, thr: float, sec: int, window: int
) -> int:
    def beyond(x: float) -> bool:
        return x >= thr if side > 0 else x <= thr

    idx = valid_idx(v)
    for pos, i in enumerate(idx):
        if kind == 0 and beyond(v[i]):
            return i
        if kind == 1 and beyond(v[i]):
            j = pos
            while j > 0 and beyond(v[idx[j - 1]]):
                j -= 1
            if t[i] - t[idx[j]] >= sec:
                return i
        if kind == 2:
            spans = [(t[a], t[b]) for a, b in itertools.pairwise(idx[: pos + 1]) if beyond(v[a])]
            c = covered(spans, t[i] - window, t[i])
            if c >= sec and (sec > 0 or beyond(v[i])):
                return i
    return -1


def oracle_gaps_tight(
    t: list[int], v: list[float], gap: int, oor_gap: int, low: float, high: float, li: bool, hi: bool
) -> list[tuple[int, int, int]]:
    out = []
    for a, b in itertools.pairwise(valid_idx(v)):
        lim = min(gap, oor_gap) if is_out(v[a], low, high, li, hi) else gap
        if t[b] - t[a] > lim:
            out.append((a, b, lim))
    return out


def oracle_mkt(t: list[int], v: list[float], window: int, dhr: float) -> list[float]:
    idx = valid_idx(v)
    out = [math.nan] * len(v)
    for pos, i in enumerate(idx):
        num = den = 0.0
        for a, b in itertools.pairwise(idx[: pos + 1]):
            lo, hi = max(t[a], t[i] - window), t[b]
            if hi > lo:
                num += (hi - lo) * math.exp(-dhr / (v[a] + KELVIN))
                den += hi - lo
        if den > 0:
            out[i] = dhr / -math.log(num / den) - KELVIN
    return out


def oracle_faults(
    t: list[int], v: list[float], flat_ms: int, spike: float, rate: float
) -> tuple[int, int, int]:
    idx = valid_idx(v)
    n_rate = 0
    for a, b in itertools.pairwise(idx):
        dv, dt = abs(v[b] - v[a]), t[b] - t[a]
        if dv > 0 and (dt == 0 or dv * 60_000 / dt > rate):
            n_rate += 1
    n_spike = 0
    for a, b, c in zip(idx, idx[1:], idx[2:], strict=False):
        d1, d2 = v[b] - v[a], v[b] - v[c]
        if (d1 > spike and d2 > spike) or (d1 < -spike and d2 < -spike):
            n_spike += 1
    n_flat = 0
    groups: list[list[int]] = []
    for i in idx:
        if groups and v[groups[-1][-1]] == v[i]:
            groups[-1].append(i)
        else:
            groups.append([i])
    n_flat = sum(1 for g in groups if t[g[-1]] - t[g[0]] >= flat_ms)
    return n_flat, n_spike, n_rate


def oracle_states(t: list[int], v: list[float], state: float, min_ms: int) -> list[tuple[int, int]]:
    idx = valid_idx(v)
    out = []
    cur: list[int] = []
    for i in idx:
        if v[i] == state:
            cur.append(i)
        elif cur:
            if t[i] - t[cur[0]] >= min_ms:
                out.append((cur[0], i))
            cur = []
    if cur and t[cur[-1]] - t[cur[0]] >= min_ms:
        out.append((cur[0], cur[-1]))
    return out


def oracle_shelf(
    t: list[int], v: list[float], model: int, ref_c: float, life_h: float, param: float
) -> float:
    used = 0.0
    for a, b in itertools.pairwise(valid_idx(v)):
        x = v[a]
        if model == 0:
            rate = math.exp(param / 0.008314462618 * (1 / (ref_c + KELVIN) - 1 / (x + KELVIN)))
        else:
            rate = 0.0 if x <= param else ((x - param) / (ref_c - param)) ** 2
        used += (t[b] - t[a]) * rate / (life_h * 3_600_000)
    return used


# -- strategies ----------------------------------------------------------------------------------------

values = st.one_of(st.just(math.nan), st.integers(-3, 11).map(float), st.floats(-5, 12, allow_nan=False))


@st.composite
def series(draw: st.DrawFn, max_size: int = 30) -> tuple[np.ndarray, np.ndarray]:
    steps = draw(st.lists(st.sampled_from([0, MIN, MIN, 2 * MIN, 5 * MIN, 40 * MIN]), max_size=max_size))
    start = draw(st.integers(1_700_000_000_000, 1_800_000_000_000))
    t = np.array([start, *(start + s for s in np.cumsum(steps).tolist())], dtype=np.int64)
    n = draw(st.integers(0, len(t)))
    v = np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=np.float64)
    return t[:n], v


bounds = st.tuples(
    st.sampled_from([0.0, 2.0, -math.inf]),
    st.sampled_from([4.0, 8.0, math.inf]),
    st.booleans(),
    st.booleans(),
)
SETTINGS = settings(max_examples=150, deadline=None)


@SETTINGS
@given(series(), bounds, st.sampled_from([0.0, 0.5, 1.0]), st.sampled_from([0, MIN, 10 * MIN]))
def test_hyst_runs(
    tv: tuple[np.ndarray, np.ndarray], b: tuple[float, float, bool, bool], hyst: float, min_ms: int
) -> None:
    t, v = tv
    low, high, li, hi = b
    st_, en = kernels.hyst_runs(t, v, low, high, li, hi, hyst, min_ms)
    assert list(zip(st_.tolist(), en.tolist(), strict=True)) == oracle_hyst(
        t.tolist(), v.tolist(), low, high, li, hi, hyst, min_ms
    )
    if hyst == 0.0:  # equals the plain excursion kernel
        s0, e0 = kernels.excursion_runs(t, v, low, high, li, hi, min_ms)
        assert (s0.tolist(), e0.tolist()) == (st_.tolist(), en.tolist())


@SETTINGS
@given(series(), bounds, st.sampled_from([MIN, 10 * MIN, 60 * MIN]))
def test_cum_oor_max(
    tv: tuple[np.ndarray, np.ndarray], b: tuple[float, float, bool, bool], window: int
) -> None:
    t, v = tv
    low, high, li, hi = b
    assert kernels.cum_oor_max(t, v, low, high, li, hi, window) == oracle_cum(
        t.tolist(), v.tolist(), low, high, li, hi, window
    )


@SETTINGS
@given(
    series(),
    st.sampled_from([0, 1, 2]),
    st.sampled_from([1, -1]),
    st.sampled_from([-0.5, 2.0, 8.0]),
    st.sampled_from([0, MIN, 10 * MIN]),
    st.sampled_from([10 * MIN, 60 * MIN]),
)
def test_trigger_fire(
    tv: tuple[np.ndarray, np.ndarray], kind: int, side: int, thr: float, sec: int, window: int
) -> None:
    t, v = tv
    if kind == 0:
        sec = 0
    got = kernels.trigger_fire(t, v, kind, side, thr, sec, window)
    assert got == oracle_trigger(t.tolist(), v.tolist(), kind, side, thr, sec, window)


@SETTINGS
@given(series(), bounds, st.sampled_from([5 * MIN, 30 * MIN]), st.sampled_from([2 * MIN, 5 * MIN]))
def test_gaps_tight(
    tv: tuple[np.ndarray, np.ndarray], b: tuple[float, float, bool, bool], gap: int, oor: int
) -> None:
    t, v = tv
    low, high, li, hi = b
    s, e, a = kernels.gap_runs_tight(t, v, gap, oor, low, high, li, hi)
    got = list(zip(s.tolist(), e.tolist(), a.tolist(), strict=True))
    assert got == oracle_gaps_tight(t.tolist(), v.tolist(), gap, oor, low, high, li, hi)


@SETTINGS
@given(series(), st.sampled_from([10 * MIN, 60 * MIN, 10**9]), st.sampled_from([10_000.0, 8_000.0]))
def test_mkt_rolling(tv: tuple[np.ndarray, np.ndarray], window: int, dhr: float) -> None:
    t, v = tv
    got = kernels.mkt_rolling(t, v, window, dhr).tolist()
    exp = oracle_mkt(t.tolist(), v.tolist(), window, dhr)
    assert len(got) == len(exp)
    for g, e in zip(got, exp, strict=True):
        assert (math.isnan(g) and math.isnan(e)) or g == pytest.approx(e, abs=1e-6)


def test_mkt_constant_and_known_value() -> None:
    t = np.arange(0, 10 * MIN, MIN, dtype=np.int64)
    assert kernels.mkt_rolling(t, np.full(10, 5.0), 10**9, 10_000.0)[-1] == pytest.approx(5.0)
    # Half the time at 20 °C and half at 30 °C: MKT lies above the arithmetic mean (25 °C).
    v = np.array([20.0] * 5 + [30.0] * 5)
    t2 = np.arange(0, 11 * MIN, MIN, dtype=np.int64)[:10]
    m = kernels.mkt_rolling(t2, v, 10**9, 10_000.0)[-1]
    assert m == pytest.approx(oracle_mkt(t2.tolist(), v.tolist(), 10**9, 10_000.0)[-1])


@SETTINGS
@given(
    series(), st.sampled_from([2 * MIN, 10 * MIN]), st.sampled_from([3.0, 6.0]), st.sampled_from([1.0, 5.0])
)
def test_fault_flags(tv: tuple[np.ndarray, np.ndarray], flat: int, spike: float, rate: float) -> None:
    t, v = tv
    assert kernels.fault_flags(t, v, flat, spike, rate) == oracle_faults(
        t.tolist(), v.tolist(), flat, spike, rate
    )


@SETTINGS
@given(series(), st.sampled_from([0.0, 1.0]), st.sampled_from([0, MIN, 10 * MIN]))
def test_state_runs(tv: tuple[np.ndarray, np.ndarray], state: float, min_ms: int) -> None:
    t, v = tv
    v = np.where(np.isnan(v), v, (v > 4).astype(np.float64))
    s, e = kernels.state_runs(t, v, state, min_ms)
    assert list(zip(s.tolist(), e.tolist(), strict=True)) == oracle_states(
        t.tolist(), v.tolist(), state, min_ms
    )


@SETTINGS
@given(series(), st.sampled_from([0.0, 0.5, 1.0]))
def test_accuracy_counts(tv: tuple[np.ndarray, np.ndarray], acc: float) -> None:
    _t, v = tv
    xs = [x for x in v.tolist() if not math.isnan(x)]
    near = sum(1 for x in xs if abs(x - 2.0) <= acc or abs(x - 8.0) <= acc)
    out = sum(
        1 for x in xs if not (abs(x - 2.0) <= acc or abs(x - 8.0) <= acc) and (x < 2 - acc or x > 8 + acc)
    )
    assert kernels.accuracy_counts(v, 2.0, 8.0, acc) == (near, out)


@SETTINGS
@given(series(), st.sampled_from([(0, -18.0, 8760.0, 80.0), (1, 0.0, 240.0, -10.0)]))
def test_shelf_life(tv: tuple[np.ndarray, np.ndarray], m: tuple[int, float, float, float]) -> None:
    t, v = tv
    got = kernels.shelf_life_used(t, v, *m)
    assert got == pytest.approx(oracle_shelf(t.tolist(), v.tolist(), *m), rel=1e-9, abs=1e-12)


def test_shelf_life_additive_over_history() -> None:
    t = np.arange(0, 100 * MIN, MIN, dtype=np.int64)
    v = np.linspace(-2, 9, 100)
    whole = kernels.shelf_life_used(t, v, 1, 0.0, 240.0, -10.0)
    parts = kernels.shelf_life_used(t[:50], v[:50], 1, 0.0, 240.0, -10.0) + kernels.shelf_life_used(
        t[49:], v[49:], 1, 0.0, 240.0, -10.0
    )
    assert whole == pytest.approx(parts)
    # At the reference temperature, life is consumed at exactly 1/ref_life per hour.
    flat = np.zeros(61)
    th = np.arange(0, 61 * MIN, MIN, dtype=np.int64)
    assert kernels.shelf_life_used(th, flat, 1, 0.0, 240.0, -10.0) == pytest.approx(1 / 240)
    assert kernels.shelf_life_used(th, np.full(61, -18.0), 0, -18.0, 8760.0, 80.0) == pytest.approx(1 / 8760)


@SETTINGS
@given(series(max_size=20))
def test_evaluate_multi_equals_evaluate_one(tv: tuple[np.ndarray, np.ndarray]) -> None:
    t, v = tv
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
    cut = len(t) // 2
    off = np.array([0, cut, len(t)], dtype=np.int64)
    multi = kernels_multi.evaluate_multi(off, t, v, np.stack([p, p]))
    for s in range(2):
        one = np.full(14, np.nan)
        kernels_multi.evaluate_one(t[off[s] : off[s + 1]], v[off[s] : off[s + 1]], p, one)
        np.testing.assert_array_equal(one, multi[s])


# -- the wrapper: refusal and verdicts ----------------------------------------------------------------------

PACKS = load_packs()


def test_unsorted_refused_empty_and_single() -> None:
    ref = PACKS["chilled"]
    with pytest.raises(ValueError, match="sorted"):
        engine.evaluate_series(np.array([2, 1], dtype=np.int64), np.array([1.0, 1.0]), ref, "storage")
    empty = engine.evaluate_series(np.empty(0, dtype=np.int64), np.empty(0), ref, "storage")
    assert (empty.verdict, empty.readings, empty.mkt_c, empty.min_c) == ("broken", 0, None, None)
    one = engine.evaluate_series(np.array([0], dtype=np.int64), np.array([2.0]), ref, "storage")
    assert (one.verdict, one.readings, one.excursions, one.gaps) == ("pass", 1, [], [])
    dup = engine.evaluate_series(
        np.array([0, 0, MIN], dtype=np.int64), np.array([2.0, 2.0, np.nan]), ref, "storage"
    )
    assert dup.verdict == "pass"


def minutes(vals: list[float], step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(0, len(vals) * step * MIN, step * MIN, dtype=np.int64)[: len(vals)], np.array(vals)


def test_verdict_semantics() -> None:
    ref = PACKS["pharma_2_8"]
    assert engine.evaluate_series(*minutes([5.0] * 30), ref, "storage").verdict == "pass"
    near = engine.evaluate_series(*minutes([5.0] * 10 + [7.7] * 5 + [5.0] * 10), ref, "storage")
    assert near.verdict == "indeterminate"
    exc = engine.evaluate_series(*minutes([5.0] * 10 + [9.5] * 5 + [5.0] * 10), ref, "storage")
    assert exc.verdict == "excursion"
    assert [(e.duration_s, e.peak_c, e.rule_id) for e in exc.excursions] == [
        (240.0, 9.5, "cn_drug_gsp/pharma_2_8/range")
    ]
    long = engine.evaluate_series(*minutes([5.0] * 10 + [9.5] * 40 + [5.0] * 10), ref, "storage")
    assert long.verdict == "broken"
    assert any("single-event" in r for r in long.reasons)
    # The out-of-range interval is 2 min: a 3-min spacing after an out-of-range reading is a gap.
    t = np.array([0, MIN, 2 * MIN, 5 * MIN, 6 * MIN], dtype=np.int64)
    gapped = engine.evaluate_series(t, np.array([5.0, 9.5, 9.5, 9.5, 5.0]), ref, "storage")
    assert [(g.duration_s, g.allowed_s) for g in gapped.gaps] == [(180.0, 120.0)]
    # Transport interval 5 min, storage 30 min.
    t2 = np.array([0, 10 * MIN], dtype=np.int64)
    assert engine.evaluate_series(t2, np.array([5.0, 5.0]), ref, "storage").verdict == "pass"
    assert engine.evaluate_series(t2, np.array([5.0, 5.0]), ref, "transport").verdict == "broken"


def test_hysteresis_and_defrost() -> None:
    ref = PACKS["chilled"]  # hysteresis 0.5 °C, min 10 min, defrost up to 30 min / +3 °C
    vals = [2.0] * 5 + [6.0] * 5 + [3.8] * 10 + [2.0] * 5  # 3.8 is inside the dead band
    ev = engine.evaluate_series(*minutes(vals), ref, "storage")
    assert [e.duration_s for e in ev.suspended] == [840.0]  # a defrost-like rise: suspended
    assert ev.verdict == "indeterminate"  # 3.8 lies within the ±0.5 °C accuracy of 4 °C
    hot = engine.evaluate_series(*minutes([2.0] * 5 + [9.0] * 15 + [2.0] * 5), ref, "storage")
    assert [e.peak_c for e in hot.excursions] == [9.0]
    assert hot.verdict == "excursion"


def test_usp_crt_mkt_and_band() -> None:
    ref = PACKS["usp_crt"]
    ok = engine.evaluate_series(*minutes([22.0] * 100 + [27.0] * 30 + [22.0] * 100), ref, "storage")
    assert ok.verdict == "excursion"  # within the 15–30 °C excursion band, MKT ≤ 25 °C
    assert ok.mkt_c is not None
    assert ok.mkt_c < 25.0
    hot = engine.evaluate_series(*minutes([27.0] * 200), ref, "storage")
    assert hot.verdict == "broken"
    assert any("MKT" in r for r in hot.reasons)
    # Above the band but within the transient-spike allowance (≤ 40 °C, ≤ 24 h): an excursion.
    spike = engine.evaluate_series(*minutes([22.0] * 10 + [31.0] * 3 + [22.0] * 10), ref, "storage")
    assert spike.verdict == "excursion"
    out = engine.evaluate_series(*minutes([22.0] * 10 + [41.0] * 3 + [22.0] * 10), ref, "storage")
    assert out.verdict == "broken"
    assert any("band" in r for r in out.reasons)


def test_who_pqs_triggers_and_door_power() -> None:
    ref = PACKS["pqs_2_8"]
    ev = engine.evaluate_series(*minutes([5.0] * 3 + [-0.5] * 61 + [5.0] * 3), ref, "storage")
    assert [x.name for x in ev.triggers] == ["freeze"]
    chilled = PACKS["chilled"]
    t, v = minutes([2.0] * 60)
    door = minutes([0.0] * 5 + [1.0] * 40 + [0.0] * 15)
    power = minutes([1.0] * 10 + [0.0] * 5 + [1.0] * 45)
    ev2 = engine.evaluate_series(t, v, chilled, "storage", door=door, power=power)
    assert [(s.kind, s.duration_s) for s in ev2.states] == [("door", 2400.0)]
    assert ev2.verdict == "broken"
