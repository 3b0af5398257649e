"""Composition root: `coldchain bench rules`'s peers of the numba engine: pandas and plain Python."""

from __future__ import annotations

import bisect
import itertools
import math

import numpy as np
import pandas as pd  # type: ignore[import-untyped,unused-ignore]
from numpy.typing import NDArray

from rules import kernels_multi

KELVIN = 273.15
GAS_R_KJ = 0.008314462618

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


# -- pandas implementation -------------------------------------------------------------------------------


def _covered(
    a: FloatArray, b: FloatArray, cum: FloatArray, w: FloatArray | None, x: FloatArray
) -> FloatArray:
    """Weighted length of the sorted disjoint spans [a, b) before each x (cum: prefix of weighted lengths)."""
    j = np.searchsorted(a, x, side="right")
    ok = j > 0
    jj = np.maximum(j - 1, 0)
    over = np.maximum(b[jj] - x, 0.0)
    if w is not None:
        over = over * w[jj]
    res: FloatArray = np.where(ok, cum[jj] - over, 0.0)
    return res


def evaluate_pandas(offsets: IntArray, t_ms: IntArray, v: FloatArray, p: FloatArray) -> FloatArray:
    """The bench rule set over every series with pandas/numpy vectorised operations (SUMMARY order)."""
    n_series = offsets.shape[0] - 1
    sid_all = np.repeat(np.arange(n_series, dtype=np.int64), np.diff(offsets))
    df = pd.DataFrame({"sid": sid_all, "t": t_ms, "v": v})
    df = df[df["v"].notna()].reset_index(drop=True)  # NaN readings are no evidence for any rule
    low, high, li, hi, hyst = p[0], p[1], p[2] > 0.5, p[3] > 0.5, p[4]
    min_dur, gap_ms, oor_gap, cum_w, mkt_w, dhr, acc = p[5], p[6], p[7], p[8], p[9], p[10], p[11]
    flat_ms, spike_c, max_rate, model, ref_c, life_h, param = p[12], p[13], p[14], p[15], p[16], p[17], p[18]
    out = pd.DataFrame(index=pd.RangeIndex(n_series))
    g = df.groupby("sid", sort=False)
    x = df["v"]
    is_out = ((x < low) | ((x == low) & (not li))) | ((x > high) | ((x == high) & (not hi)))
    df["out"] = is_out
    df["t_next"] = g["t"].shift(-1)
    df["v_next"] = g["v"].shift(-1)
    df["v_prev"] = g["v"].shift(1)
    has_next = df["t_next"].notna()
    dt_next = (df["t_next"] - df["t"]).fillna(0.0)

    # Hysteresis excursions: a dead-band reading belongs to a run when the last reading outside the
    # dead band before it was out of range.
    clear = ~is_out & (x >= low + hyst) & (x <= high - hyst)
    state = pd.Series(np.where(is_out, 1.0, np.where(clear, 0.0, np.nan))).groupby(df["sid"]).ffill()
    in_run = state == 1.0
    prev_in = in_run.groupby(df["sid"]).shift(1, fill_value=False).astype(bool)
    run_id = (in_run & ~prev_in).cumsum()
    runs = (
        df[in_run]
        .assign(run=run_id[in_run])
        .groupby("run")
        .agg(sid=("sid", "first"), a=("t", "first"), b=("t", "last"))
    )
    runs = runs[(runs["b"] - runs["a"]) >= min_dur]
    rg = runs.assign(d=runs["b"] - runs["a"]).groupby("sid")
    out["excursions"] = rg.size()
    out["excursion_ms"] = rg["d"].sum()

    # Time out of range (sample-and-hold) and its largest total within any window.
    spans = df[is_out & has_next]
    out["oor_ms"] = spans.assign(d=dt_next[spans.index]).groupby("sid")["d"].sum()
    big = float(2 * (int(t_ms.max()) - int(t_ms.min())) + 4 * max(cum_w, mkt_w) + 1)
    a = (spans["t"] + spans["sid"] * big).to_numpy(np.float64)
    b = (spans["t_next"] + spans["sid"] * big).to_numpy(np.float64)
    cum = np.cumsum(b - a)
    c1 = _covered(a, b, cum, None, a + cum_w) - _covered(a, b, cum, None, a)
    c2 = _covered(a, b, cum, None, b) - _covered(a, b, cum, None, b - cum_w)
    out["cum_oor_max_ms"] = (
        pd.Series(np.maximum(c1, c2), index=spans["sid"].to_numpy()).groupby(level=0).max()
    )

    # Gaps, the interval tightening after an out-of-range reading.
    allowed = np.where(is_out, min(gap_ms, oor_gap), gap_ms)
    gaps = df[has_next & (dt_next > allowed)]
    gg = gaps.assign(d=dt_next[gaps.index]).groupby("sid")
    out["gaps"] = gg.size()
    out["gap_ms"] = gg["d"].sum()

    # Rolling MKT over the trailing window at each reading (prefix sums on the offset time axis).
    pos = df[has_next & (dt_next > 0)]
    t_ref = 20.0 + KELVIN
    wgt = np.exp(dhr / t_ref - dhr / (pos["v"].to_numpy() + KELVIN))
    pa = (pos["t"] + pos["sid"] * big).to_numpy(np.float64)
    pb = (pos["t_next"] + pos["sid"] * big).to_numpy(np.float64)
    cum_n = np.cumsum((pb - pa) * wgt)
    cum_d = np.cumsum(pb - pa)
    tx = (df["t"] + df["sid"] * big).to_numpy(np.float64)
    num = _covered(pa, pb, cum_n, wgt, tx) - _covered(pa, pb, cum_n, wgt, tx - mkt_w)
    den = _covered(pa, pb, cum_d, None, tx) - _covered(pa, pb, cum_d, None, tx - mkt_w)
    ok = (den > 0) & (num > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mkt = np.where(ok, dhr / (dhr / t_ref - np.log(num / den)) - KELVIN, np.nan)
    df["mkt"] = mkt
    out["mkt_max_c"] = df.groupby("sid")["mkt"].max()

    agg = g["v"].agg(["count", "min", "max", "mean"])
    out["n_valid"] = agg["count"]
    out["min_c"] = agg["min"]
    out["max_c"] = agg["max"]
    out["mean_c"] = agg["mean"]
    out["near_limit"] = ((x - low).abs().le(acc) | (x - high).abs().le(acc)).groupby(df["sid"]).sum()

    # Sensor faults: impossible rate, isolated spikes, flatline stretches.
    dv = (df["v_next"] - x).abs()
    rate = (
        has_next & (dv > 0) & ((dt_next == 0) | (dv * 60_000.0 / dt_next.where(dt_next > 0, 1.0) > max_rate))
    )
    d1 = x - df["v_prev"]
    d2 = x - df["v_next"]
    spike = ((d1 > spike_c) & (d2 > spike_c)) | ((d1 < -spike_c) & (d2 < -spike_c))
    new_flat = (x != df["v_prev"]) | df["v_prev"].isna()
    fl = (
        df.assign(grp=new_flat.cumsum())
        .groupby("grp")
        .agg(sid=("sid", "first"), a=("t", "first"), b=("t", "last"))
    )
    flats = fl[(fl["b"] - fl["a"]) >= flat_ms].groupby("sid").size()
    faults = rate.groupby(df["sid"]).sum() + spike.groupby(df["sid"]).sum()
    out["faults"] = faults.add(flats, fill_value=0)

    # Shelf life, additive.
    if model < 0.5:
        rr = np.exp(param / GAS_R_KJ * (1.0 / (ref_c + KELVIN) - 1.0 / (x + KELVIN)))
    else:
        rr = np.where(x <= param, 0.0, ((x - param) / (ref_c - param)) ** 2)
    used = pd.Series(np.where(has_next, dt_next * rr / (life_h * 3_600_000.0), 0.0))
    out["shelf_used"] = used.groupby(df["sid"]).sum()

    # Every column but the value statistics is a count or a sum: a series with none has 0.
    counts = [c for c in kernels_multi.SUMMARY if c not in ("mkt_max_c", "min_c", "max_c", "mean_c")]
    out[counts] = out[counts].fillna(0.0)
    res: FloatArray = out[list(kernels_multi.SUMMARY)].to_numpy(np.float64)
    return res


# -- plain-Python implementation -----------------------------------------------------------------------------


def evaluate_python(t: list[int], v: list[float], p: list[float]) -> list[float]:
    """The bench rule set over one series, in plain Python loops (SUMMARY order)."""
    low, high, li, hi, hyst = p[0], p[1], p[2] > 0.5, p[3] > 0.5, p[4]
    min_dur, gap_ms, oor_gap, cum_w, mkt_w, dhr, acc = p[5], p[6], p[7], p[8], p[9], p[10], p[11]
    flat_ms, spike_c, max_rate, model, ref_c, life_h, param = p[12], p[13], p[14], p[15], p[16], p[17], p[18]
    idx = [i for i, x in enumerate(v) if not math.isnan(x)]

    def out_of(x: float) -> bool:
        return (x < low or (x == low and not li)) or (x > high or (x == high and not hi))

    exc = 0
    exc_ms = 0
    start = last = -1
    for i in idx:
        x = v[i]
        if start < 0:
            if out_of(x):
                start = last = i
        elif out_of(x) or not (low + hyst <= x <= high - hyst):
            last = i
        else:
            if t[last] - t[start] >= min_dur:
                exc += 1
                exc_ms += t[last] - t[start]
            start = -1
    if start >= 0 and t[last] - t[start] >= min_dur:
        exc += 1
        exc_ms += t[last] - t[start]

    pairs = list(itertools.pairwise(idx))
    sa = [t[i] for i, j in pairs if out_of(v[i])]
    sb = [t[j] for i, j in pairs if out_of(v[i])]
    pref = [0]
    for a, b in zip(sa, sb, strict=True):
        pref.append(pref[-1] + b - a)

    def cov(xx: float) -> float:
        j = bisect.bisect_right(sa, xx)
        return 0.0 if j == 0 else pref[j] - max(0.0, sb[j - 1] - xx)

    cmax = 0.0
    for a, b in zip(sa, sb, strict=True):
        cmax = max(cmax, cov(a + cum_w) - cov(a), cov(b) - cov(b - cum_w))

    gaps = 0
    g_ms = 0
    for i, j in pairs:
        lim = min(gap_ms, oor_gap) if out_of(v[i]) else gap_ms
        if t[j] - t[i] > lim:
            gaps += 1
            g_ms += t[j] - t[i]

    # Rolling MKT, two pointers over held spans.
    t_ref = 20.0 + KELVIN
    spans: list[tuple[int, int, float]] = []
    head = 0
    num = den = 0.0
    mkt_max = math.nan
    prev = -1
    for i in idx:
        if prev >= 0 and t[i] > t[prev]:
            w = math.exp(dhr / t_ref - dhr / (v[prev] + KELVIN))
            spans.append((t[prev], t[i], w))
            num += (t[i] - t[prev]) * w
            den += t[i] - t[prev]
        prev = i
        lo = t[i] - mkt_w
        while head < len(spans) and spans[head][1] <= lo:
            a, b, w = spans[head]
            num -= (b - a) * w
            den -= b - a
            head += 1
        if head == len(spans):
            num = den = 0.0
            continue
        cn, cd = num, den
        a, b, w = spans[head]
        if a < lo:
            cn -= (lo - a) * w
            cd -= lo - a
        if cd > 0 and cn > 0:
            m = dhr / (dhr / t_ref - math.log(cn / cd)) - KELVIN
            mkt_max = m if math.isnan(mkt_max) else max(mkt_max, m)

    xs = [v[i] for i in idx]
    near = sum(1 for x in xs if abs(x - low) <= acc or abs(x - high) <= acc)
    faults = 0
    for i, j in pairs:
        dv, dt = abs(v[j] - v[i]), t[j] - t[i]
        if dv > 0 and (dt == 0 or dv * 60_000.0 / dt > max_rate):
            faults += 1
    for a, b, c in zip(idx, idx[1:], idx[2:], strict=False):
        d1, d2 = v[b] - v[a], v[b] - v[c]
        if (d1 > spike_c and d2 > spike_c) or (d1 < -spike_c and d2 < -spike_c):
            faults += 1
    run_a = -1
    for k, i in enumerate(idx):
        if k == 0 or v[i] != v[idx[k - 1]]:
            if run_a >= 0 and t[idx[k - 1]] - t[run_a] >= flat_ms:
                faults += 1
            run_a = i
    if idx and t[idx[-1]] - t[run_a] >= flat_ms:
        faults += 1

    used = 0.0
    for i, j in pairs:
        x = v[i]
        if model < 0.5:
            rate = math.exp(param / GAS_R_KJ * (1.0 / (ref_c + KELVIN) - 1.0 / (x + KELVIN)))
        else:
            rate = 0.0 if x <= param else ((x - param) / (ref_c - param)) ** 2
        used += (t[j] - t[i]) * rate / (life_h * 3_600_000.0)

    n = len(xs)
    return [
        float(n),
        float(exc),
        float(exc_ms),
        float(sum(b - a for a, b in zip(sa, sb, strict=True))),
        float(cmax),
        float(gaps),
        float(g_ms),
        mkt_max,
        min(xs) if n else math.nan,
        max(xs) if n else math.nan,
        sum(xs) / n if n else math.nan,
        float(near),
        float(faults),
        used,
    ]
