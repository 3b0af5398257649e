"""Composition root: `coldchain bench rules`: the numba rule engine vs pandas vs plain Python, same data.

One run generates `series` × `per_series` readings with numpy (1-min logging with jitter, duplicate
timestamps, gaps of 15–90 min, NaN dropouts, excursions of 5–90 min, stuck-sensor stretches), then
evaluates the whole default rule set of a class (hysteresis excursions with minimum duration, total
and windowed cumulative time out of range, gaps with the tighter out-of-range interval, rolling MKT,
accuracy band, sensor faults, shelf life) three ways:
- numba: `rules.kernels_multi.evaluate_multi` (parallel over series: `numba.prange` around the
  per-series kernels), the engine the service runs; timed on every numba thread and then on one, on
  the same data, for the parallel scaling (`numba_rps` / `numba_1t_rps`; both summaries must be equal);
- pandas: the same rule set written with pandas/numpy vectorised operations (groupby, shift,
  ffill, cumulative sums, searchsorted on a series-offset time axis), in `rules_peers`;
- python: a plain-Python loop implementation, on a sample of series, in `rules_peers`.
All three produce the 14-column summary of `rules.kernels_multi.SUMMARY` per series and must agree.

Unless `--no-latency` (or `--quick`), it also measures the alarm latency under a steady load on a
private PostgreSQL: trucks stream one reading per batch, a worker polls like `run_forever`, and the
latency of each alarm is `opened_at - trigger_committed_at` (reading committed -> alarm row); the
load and the measurement are `alarm_latency`'s.
"""

from __future__ import annotations

import math
import os
import time
from typing import Annotated, Any

import numba
import numpy as np
import typer

from coldchain.bench.alarm_latency import measure_alarm_latency
from coldchain.bench.app import bench_app, host_probe, steal_meter
from coldchain.bench.rules_peers import FloatArray, IntArray, evaluate_pandas, evaluate_python
from coldchain.cli.common import emit_json, fail
from coldchain.logs import configure_logging
from rules import kernels_multi
from rules.packs import ClassRef, load_packs

MKT_WINDOW_S = 86_400  # rolling MKT window when the class names none (24 h, as USP CCT)
DHR_K = 10_000.0


def benchable(ref: ClassRef) -> bool:
    """Whether the bench's whole rule set applies to a class: it needs the class's sensor-fault
    thresholds, shelf-life model and device accuracy."""
    r = ref.rules
    return r.faults is not None and r.shelf_life is not None and r.accuracy is not None


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


def _timed_multi(
    offsets: IntArray, t_ms: IntArray, v: FloatArray, params: FloatArray, threads: int
) -> tuple[FloatArray, float]:
    """`evaluate_multi` on `threads` numba threads: (summary, seconds). The thread count is restored."""
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        out = kernels_multi.evaluate_multi(offsets, t_ms, v, params)
        return out, time.perf_counter() - t0
    finally:
        numba.set_num_threads(before)


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
    # The same call on every core numba was given, then on one thread: the parallel scaling, same data.
    threads = int(numba.get_num_threads())  # every core, unless NUMBA_NUM_THREADS says fewer
    nb, numba_s = _timed_multi(offsets, t_ms, v, params, threads)
    nb_1t, numba_1t_s = _timed_multi(offsets, t_ms, v, params, 1)

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
    parallel_agree = bool(np.array_equal(nb, nb_1t, equal_nan=True))
    pandas_rps = n / pandas_s
    return {
        "bench": "rules",
        "numba_rps": round(numba_rps),
        "pandas_rps": round(pandas_rps),
        "python_rps": round(py_n / python_s),
        "speedup_vs_pandas": round(numba_rps / pandas_rps, 1),
        "numba_1t_rps": round(n / numba_1t_s),
        "numba_threads": threads,
        "parallel_scaling": round(numba_1t_s / numba_s, 2),
        "agree": not bad_pd and not bad_py and parallel_agree,
        "parallel_agree": parallel_agree,
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
        "numba_1t_s": round(numba_1t_s, 3),
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
    codes = ", ".join(c.code for c in known.classes() if benchable(c))
    if class_code not in known:
        fail(f"--class: no product class {class_code!r} (choose from {codes})")
    if not benchable(known[class_code]):
        fail(
            f"--class: {class_code!r} has no sensor-fault thresholds, shelf-life model or accuracy, which"
            f" the bench's rule set needs (choose from {codes})"
        )
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
            f"numba {result['numba_rps']:,} r/s on {result['numba_threads']} threads "
            f"({result['numba_1t_rps']:,} r/s on 1: x{result['parallel_scaling']}), "
            f"pandas {result['pandas_rps']:,} r/s, python {result['python_rps']:,} r/s, "
            f"agree={result['agree']}, alarm latency p95 {result['alarm_latency_p95_ms']} ms"
        )
    emit_json(result)
