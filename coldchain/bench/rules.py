"""Composition root: `coldchain bench rules`: the numba rule engine vs pandas vs plain Python, same data.

One run generates `series` × `per_series` readings with numpy (1-min logging with jitter, duplicate
timestamps, gaps of 15–90 min, NaN dropouts, excursions of 5–90 min, stuck-sensor stretches), then
evaluates the whole default rule set of a class (hysteresis excursions with minimum duration, total
and windowed cumulative time out of range, gaps with the tighter out-of-range interval, rolling MKT,
accuracy band, sensor faults, shelf life) three ways:
- numba: `rules.kernels_multi.evaluate_multi` (parallel over series), the engine the service runs;
- pandas: the same rule set written with pandas/numpy vectorised operations (groupby, shift,
  ffill, cumulative sums, searchsorted on a series-offset time axis);
- python: a plain-Python loop implementation, on a sample of series.
All three produce the 14-column summary of `rules.kernels_multi.SUMMARY` per series and must agree.

Unless `--no-latency` (or `--quick`), it also measures the alarm latency under a steady load on a
private PostgreSQL: trucks stream one reading per batch, a worker polls like `run_forever`, and the
latency of each alarm is `opened_at - trigger_committed_at` (reading committed -> alarm row).
"""

from __future__ import annotations

import bisect
import itertools
import math
import os
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped,unused-ignore]
import typer
from numpy.typing import NDArray

from coldchain.bench.app import bench_app, host_probe, steal_meter
from coldchain.cli.common import emit_json, fail
from coldchain.logs import configure_logging
from rules import kernels_multi
from rules.packs import ClassRef, load_packs

KELVIN = 273.15
GAS_R_KJ = 0.008314462618
MKT_WINDOW_S = 86_400  # rolling MKT window when the class names none (24 h, as USP CCT)
DHR_K = 10_000.0

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


def class_params(ref: ClassRef) -> FloatArray:
    """The kernel parameter vector of `evaluate_one` for a class (transport mode)."""
    r = ref.rules
    if r.faults is None or r.shelf_life is None or r.accuracy is None:
        raise ValueError(f"class {ref.code} lacks faults/shelf_life/accuracy for the bench rule set")
    cum_w = r.allowances.cumulative.window_s if r.allowances and r.allowances.cumulative else 86_400
    sl = r.shelf_life
    param = sl.ea_kj_mol if sl.model == "arrhenius" else sl.t_min_c
    assert param is not None
    return np.array(
        [
            -math.inf if r.low_c is None else r.low_c,
            math.inf if r.high_c is None else r.high_c,
            float(r.low_inclusive),
            float(r.high_inclusive),
            r.hysteresis_c,
            r.min_duration.seconds * 1000,
            r.max_interval_s("transport") * 1000,
            r.oor_interval_s("transport") * 1000,
            cum_w * 1000,
            (r.mkt.window_s if r.mkt else MKT_WINDOW_S) * 1000,
            r.mkt.delta_h_r_k if r.mkt else DHR_K,
            r.accuracy.value,
            r.faults.flatline_s * 1000,
            r.faults.spike_c,
            r.faults.max_rate_c_per_min,
            0.0 if sl.model == "arrhenius" else 1.0,
            sl.ref_c,
            sl.ref_life_h,
            param,
        ],
        dtype=np.float64,
    )


# -- data ----------------------------------------------------------------------------------------------


def generate(n_series: int, per_series: int, seed: int = 4) -> tuple[IntArray, IntArray, FloatArray]:
    """(offsets, t_ms, v): series-sorted, time-sorted within each series, vectorised numpy."""
    rng = np.random.default_rng(seed)
    shape = (n_series, per_series)
    step = 60_000 + rng.integers(-2_000, 2_001, size=shape)
    step[rng.random(shape) < 0.002] = 0  # duplicate timestamps
    gap = rng.random(shape) < 0.0008
    step[gap] += rng.integers(15, 91, size=int(gap.sum())) * 60_000  # gaps of 15-90 min
    step[:, 0] = 0
    t0 = 1_767_225_600_000 + rng.integers(0, 86_400_000, size=(n_series, 1))
    t = (t0 + np.cumsum(step, axis=1)).astype(np.int64)

    base = rng.uniform(1.0, 3.0, size=(n_series, 1))
    v = base + rng.normal(0.0, 0.25, size=shape)
    # Excursions: ~4 per series, 5-90 readings long, +2..+8 °C (some below: -3 °C), via a cumsum of steps.
    k = 4 * n_series
    rows = rng.integers(0, n_series, size=k)
    starts = rng.integers(0, per_series, size=k)
    ends = np.minimum(starts + rng.integers(5, 91, size=k), per_series - 1)
    amp = np.where(rng.random(k) < 0.8, rng.uniform(2.0, 8.0, size=k), -3.0)
    bump = np.zeros((n_series, per_series + 1))
    np.add.at(bump, (rows, starts), amp)
    np.add.at(bump, (rows, ends), -amp)
    v += np.cumsum(bump, axis=1)[:, :per_series]
    # A stuck sensor on 1 % of the series: 400 identical readings.
    stuck = np.flatnonzero(rng.random(n_series) < 0.01)
    if per_series > 400:
        for s in stuck.tolist():
            a = int(rng.integers(0, per_series - 400))
            v[s, a : a + 400] = v[s, a]
    v = np.round(v, 2)  # loggers report 0.01 °C
    v[rng.random(shape) < 0.003] = np.nan  # dropouts
    offsets = np.arange(0, (n_series + 1) * per_series, per_series, dtype=np.int64)
    return offsets, t.reshape(-1), v.reshape(-1)


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


# Tolerances per SUMMARY column: counts and milliseconds exact; floats to rounding.
_RTOL = {"mkt_max_c": 0.0, "mean_c": 1e-9, "shelf_used": 1e-9}
_ATOL = {"mkt_max_c": 1e-6, "shelf_used": 1e-12}


def compare(a: FloatArray, b: FloatArray) -> list[str]:
    """Names of SUMMARY columns on which two summaries disagree (NaN equals NaN)."""
    bad = []
    for k, name in enumerate(kernels_multi.SUMMARY):
        if not np.allclose(
            a[:, k], b[:, k], rtol=_RTOL.get(name, 0.0), atol=_ATOL.get(name, 0.0), equal_nan=True
        ):
            bad.append(name)
    return bad


def run_bench(n_series: int, per_series: int, sample: int, class_code: str) -> dict[str, Any]:
    ref = load_packs()[class_code]
    p = class_params(ref)
    t_gen = time.perf_counter()
    offsets, t_ms, v = generate(n_series, per_series)
    gen_s = time.perf_counter() - t_gen
    n = int(t_ms.shape[0])
    params = np.ascontiguousarray(np.broadcast_to(p, (n_series, p.shape[0])))

    w_off, w_t, w_v = generate(4, 200, seed=1)  # compile / load the kernel cache outside the timing
    kernels_multi.evaluate_multi(w_off, w_t, w_v, params[:4])
    t0 = time.perf_counter()
    nb = kernels_multi.evaluate_multi(offsets, t_ms, v, params)
    numba_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    pdv = evaluate_pandas(offsets, t_ms, v, p)
    pandas_s = time.perf_counter() - t0

    rng = np.random.default_rng(7)
    picks = np.sort(rng.choice(n_series, size=min(sample, n_series), replace=False))
    pl = p.tolist()
    py_rows = []
    py_n = 0
    t0 = time.perf_counter()
    for s in picks.tolist():
        a, b = int(offsets[s]), int(offsets[s + 1])
        py_rows.append(evaluate_python(t_ms[a:b].tolist(), v[a:b].tolist(), pl))
        py_n += b - a
    python_s = time.perf_counter() - t0
    py = np.array(py_rows, dtype=np.float64).reshape(len(py_rows), len(kernels_multi.SUMMARY))

    bad_pd = compare(nb, pdv)
    bad_py = compare(nb[picks], py)
    numba_rps = n / numba_s
    pandas_rps = n / pandas_s
    return {
        "bench": "rules",
        "numba_rps": round(numba_rps),
        "pandas_rps": round(pandas_rps),
        "python_rps": round(py_n / python_s),
        "speedup_vs_pandas": round(numba_rps / pandas_rps, 1),
        "agree": not bad_pd and not bad_py,
        "disagree_pandas": bad_pd,
        "disagree_python": bad_py,
        "series": n_series,
        "readings": n,
        "nan_readings": int(np.isnan(v).sum()),
        "excursions": int(nb[:, 1].sum()),
        "gaps": int(nb[:, 5].sum()),
        "python_sample_series": len(py_rows),
        "python_sample_readings": py_n,
        "numba_s": round(numba_s, 3),
        "pandas_s": round(pandas_s, 3),
        "python_s": round(python_s, 3),
        "generate_s": round(gen_s, 3),
        "class": class_code,
        "pack_version": ref.pack_version,
        "rules": [
            "hysteresis_excursions",
            "time_out_of_range",
            "cumulative_window",
            "gaps_tight_interval",
            "rolling_mkt",
            "accuracy_band",
            "sensor_faults",
            "shelf_life",
        ],
        "cpus": os.cpu_count(),
    }


def steady_load_alarm_latencies(url: str, trucks: int = 20, minutes: int = 40) -> list[float]:
    """Alarm latencies (ms, sorted) on the migrated database `url`: `trucks` reefer trucks each commit one
    reading per device-minute as its own ingest batch (~400 readings/s offered), each going out of range at
    its own minute, while a worker polls like `run_forever`. Latency = alarm.opened_at - the commit time of
    the batch that raised it. Used by `bench rules` and by the slow end-to-end test."""
    import psycopg

    from registry.models import Asset, Device, Mount
    from registry.store import add_assets, add_devices, add_mounts, ensure_series
    from rules.worker import RulesWorker

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with psycopg.connect(url, autocommit=True) as conn:
        sids = []
        for k in range(trucks):
            asset, device = f"TRUCK-{k}", f"rc-{k}"
            add_assets(conn, [Asset(asset, "reefer_truck", asset, product_class="chilled", mode="transport")])
            add_devices(conn, [Device(device, "reefer_controller")])
            add_mounts(conn, [Mount(device, asset, t0 - timedelta(days=1))])
            sids.append(ensure_series(conn, [(device, "temp:1")])[(device, "temp:1")])
        stop = threading.Event()
        worker = RulesWorker(url)
        worker.start()
        thread = threading.Thread(target=worker.run_forever, args=(stop, 0.05), daemon=True)
        thread.start()
        try:
            for minute in range(minutes):
                t = t0 + timedelta(minutes=minute)
                for k, sid in enumerate(sids):
                    hot = minute >= 5 + (k % 10)
                    with conn.transaction():
                        conn.execute(
                            "INSERT INTO reading (time, series_id, value, received_at)"
                            " VALUES (%s, %s, %s, now())",
                            (t, sid, 9.0 if hot else 2.0),
                        )
                        conn.execute(
                            "INSERT INTO ingest_batch (kind, series_ids, t_min, t_max)"
                            " VALUES ('telemetry', %s, %s, %s)",
                            ([sid], t, t),
                        )
                time.sleep(0.05)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if conn.execute("SELECT count(*) FROM ingest_batch").fetchone() == (0,):
                    break
                time.sleep(0.1)
        finally:
            stop.set()
            thread.join(30)
        lat = sorted(
            float(r[0])
            for r in conn.execute(
                "SELECT extract(epoch FROM opened_at - trigger_committed_at) * 1000 FROM alarm"
                " WHERE kind = 'excursion'"
            ).fetchall()
        )
    return lat


def measure_alarm_latency(trucks: int = 20, minutes: int = 40) -> dict[str, Any]:
    """Alarm latency (ms) under a steady load, on a private embedded PostgreSQL."""
    from coldchain.embedded import EmbeddedPostgres
    from coldchain.migrate import migrate

    with tempfile.TemporaryDirectory(prefix="coldchain-bench-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pgdata")
        url = pg.start()
        try:
            migrate(url)
            lat = steady_load_alarm_latencies(url, trucks, minutes)
        finally:
            pg.stop()
    if not lat:
        return {"alarm_latency_p50_ms": None, "alarm_latency_p95_ms": None, "alarms": 0}
    return {
        "alarm_latency_p50_ms": round(lat[len(lat) // 2], 1),
        "alarm_latency_p95_ms": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1),
        "alarm_latency_max_ms": round(lat[-1], 1),
        "alarms": len(lat),
        "latency_load_readings_per_s": round(trucks / 0.05),
    }


@bench_app.command("rules")
def bench_rules(
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object as the last line.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Small data (smoke test).")] = False,
    series: Annotated[int, typer.Option(help="Number of series.")] = 10_000,
    per_series: Annotated[int, typer.Option(help="Readings per series.")] = 5_000,
    sample: Annotated[int, typer.Option(help="Series evaluated by the plain-Python oracle.")] = 20,
    class_code: Annotated[str, typer.Option("--class", help="Class whose rule set is run.")] = "chilled",
    latency: Annotated[bool, typer.Option(help="Also measure alarm latency on a private PostgreSQL.")] = True,
) -> None:
    """Numba rule engine vs a pandas implementation vs plain Python, on the same generated data."""
    known = load_packs()
    if class_code not in known:
        codes = ", ".join(c.code for c in known.classes())
        fail(f"--class: no product class {class_code!r} (choose from {codes})")
    if min(series, per_series, sample) < 1:
        fail("--series, --per-series and --sample must be at least 1")
    if quick:
        series, per_series, sample, latency = 200, 600, 10, False
    if latency:
        configure_logging("warning")  # the worker's logs to stderr: stdout carries only the JSON line
    steal = steal_meter()
    probe = host_probe()
    result = run_bench(series, per_series, sample, class_code)
    result.update(measure_alarm_latency() if latency else {"alarm_latency_p95_ms": None})
    result["cpu_steal_pct"] = steal()
    result["host_probe_ms"] = probe()
    if not json_out:
        typer.echo(
            f"numba {result['numba_rps']:,} r/s, pandas {result['pandas_rps']:,} r/s, "
            f"python {result['python_rps']:,} r/s, agree={result['agree']}"
        )
    emit_json(result)
