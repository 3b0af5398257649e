"""Tests for the live class profile (rules.worker.live) against a real PostgreSQL: MKT over
its whole window, cumulative allowance, accuracy-aware indeterminate, door runs in lot verdicts,
device-wide gaps; and the MKT prefix against the rolling kernel (oracle / property)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rules_support import (
    LOT,
    Conn,
    add_asset,
    add_device,
    add_readings,
    add_series,
    custody,
    drain,
    lot_outbox,
)

from rules import alarms, engine, kernels
from rules.worker import RulesWorker


def open_rules(conn: Conn, asset: str) -> dict[str, dict[str, Any]]:
    return {a["rule_id"]: a for a in alarms.list_alarms(conn, asset_id=asset) if a["state"] != "resolved"}


def last_verdict(conn: Conn, subject: str) -> str:
    row = conn.execute(
        "SELECT verdict FROM verdict_history WHERE subject_id = %s ORDER BY version DESC LIMIT 1", (subject,)
    ).fetchone()
    assert row is not None
    return str(row[0])


# -- MKT prefix: oracle and property -----------------------------------------------------------------------


def prefix_oracle(t: list[int], x: list[float], s_ms: int, lo: int, dhr: float) -> engine.MktPrefix:
    """Plain Python: held spans between non-NaN readings ending at or before s_ms, clipped at lo."""
    pts = [(a, b) for a, b in zip(t, x, strict=True) if not math.isnan(b) and a <= s_ms]
    num = den = 0.0
    for (ta, xa), (tb, _xb) in itertools.pairwise(pts):
        if tb > ta and tb > lo:
            d = float(tb - max(ta, lo))
            num += d * math.exp(dhr / (20.0 + kernels.KELVIN) - dhr / (xa + kernels.KELVIN))
            den += d
    return engine.MktPrefix(weighted_ms=num, span_ms=den)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(-5, 40, allow_nan=False), st.just(math.nan)),
        min_size=2,
        max_size=40,
    ),
    st.lists(st.integers(0, 600_000), min_size=40, max_size=40),
    st.integers(1, 5_000_000),
    st.data(),
)
def test_mkt_at_end_with_prefix_equals_rolling_over_the_whole_series(
    values: list[float], steps: list[int], window: int, data: st.DataObject
) -> None:
    n = len(values)
    t = np.cumsum(np.array(steps[:n], dtype=np.int64))
    x = np.array(values, dtype=np.float64)
    valid = [i for i in range(n) if not math.isnan(values[i])]
    if not valid:
        return
    k = data.draw(st.sampled_from(valid))  # the slice starts at a non-NaN reading
    lo = int(t[-1]) - window
    pre = prefix_oracle(t.tolist(), values, int(t[k]), lo, 10_000.0)
    got = engine.mkt_at_end(t[k:], x[k:], window, 10_000.0, pre)
    want = float(kernels.mkt_rolling(t, x, window, 10_000.0)[-1])
    if math.isnan(want):
        assert got is None or not math.isnan(got)
        return
    assert got is not None
    assert got == pytest.approx(want, abs=1e-6)


# -- the live worker -------------------------------------------------------------------------------------


def room(conn: Conn, asset: str, product_class: str, device: str, mode: str = "storage") -> int:
    add_asset(conn, asset, "cold_room", product_class, mode)
    add_device(conn, device, asset)
    return add_series(conn, device, "temp")


def test_usp_crt_mkt_over_its_window_raises_the_mkt_alarm(conn: Conn, db_url: str) -> None:
    sid = room(conn, "CRT-1", "usp_crt", "crt-1")
    worker = RulesWorker(db_url)
    try:
        # A day at 26–28 °C (inside the 15–30 °C band), every 20 min; then one more hour. The live
        # slice is the class look-back (30 min): the rest of the 30-day MKT window comes from the
        # aggregate prefix, never read into the worker.
        day = [(float(m), 26.0 + (m // 20) % 3) for m in range(0, 1440, 20)]
        add_readings(conn, sid, day)
        drain(worker)
        add_readings(conn, sid, [(float(m), 27.0) for m in range(1440, 1500, 20)])
        drain(worker)
        got = open_rules(conn, "CRT-1")
        assert "usp/usp_crt/mkt" in got
        mkt = got["usp/usp_crt/mkt"]
        assert (mkt["kind"], mkt["severity"]) == ("mkt", "critical")
        # The same figure as the rolling kernel over every reading (what `rules check` computes).
        pts = [*day, *[(float(m), 27.0) for m in range(1440, 1500, 20)]]
        t = np.array([int(m * 60_000) for m, _ in pts], dtype=np.int64)
        x = np.array([v for _, v in pts], dtype=np.float64)
        want = kernels.mkt_rolling(t, x, 2_592_000_000, 10_000.0)[-1]
        assert f"MKT {want:.2f} °C" in mkt["reason"]
        assert last_verdict(conn, f"{sid}@CRT-1") == "broken"
    finally:
        worker.close()


def test_pharma_cumulative_allowance_over_its_window(conn: Conn, db_url: str) -> None:
    sid = room(conn, "COLD-1", "pharma_2_8", "cold-1")
    worker = RulesWorker(db_url)
    try:
        # Three 25-min excursions (each within the 30-min single-event allowance), 30 min apart:
        # 75 min out of range within 24 h, beyond the 60-min cumulative allowance.
        pts: list[tuple[float, float | None]] = []
        for m in range(0, 200):
            pts.append((float(m), 9.0 if m % 55 >= 30 else 5.0))
        for chunk in range(0, 200, 20):
            add_readings(conn, sid, pts[chunk : chunk + 20])
            drain(worker)
        got = open_rules(conn, "COLD-1")
        assert "cn_drug_gsp/pharma_2_8/cumulative" in got
        assert got["cn_drug_gsp/pharma_2_8/cumulative"]["severity"] == "critical"
        assert last_verdict(conn, f"{sid}@COLD-1") == "broken"
    finally:
        worker.close()


def test_reading_within_device_accuracy_of_a_limit_is_indeterminate(conn: Conn, db_url: str) -> None:
    sid = room(conn, "COLD-2", "pharma_2_8", "cold-2")
    conn.execute("UPDATE device SET accuracy_c = 0.3 WHERE device_id = 'cold-2'")
    worker = RulesWorker(db_url)
    try:
        add_readings(conn, sid, [(float(m), 5.0) for m in range(0, 30)])
        drain(worker)
        assert last_verdict(conn, f"{sid}@COLD-2") == "pass"
        # 7.8 °C is in range but within the device's ±0.3 °C of the 8 °C limit: indeterminate.
        add_readings(conn, sid, [(30.0, 7.8), (31.0, 5.0)])
        drain(worker)
        assert last_verdict(conn, f"{sid}@COLD-2") == "indeterminate"
        # Its info alarm was raised, and resolved by the 5 °C reading after it (the condition cleared).
        got = {a["rule_id"]: a for a in alarms.list_alarms(conn, asset_id="COLD-2")}
        assert got["cn_drug_gsp/pharma_2_8/accuracy"]["severity"] == "info"
        assert got["cn_drug_gsp/pharma_2_8/accuracy"]["state"] == "resolved"
        items = conn.execute(
            "SELECT items FROM verdict_history WHERE subject_id = %s ORDER BY version DESC LIMIT 1",
            (f"{sid}@COLD-2",),
        ).fetchone()
        assert items is not None
        assert {
            "kind": "rule",
            "rule_id": "cn_drug_gsp/pharma_2_8/accuracy",
            "level": "indeterminate",
        } in items[0]
    finally:
        worker.close()


def test_lot_verdict_broken_by_a_door_open_run(conn: Conn, db_url: str) -> None:
    add_asset(conn, "VAN-1", "reefer_truck", "pharma_2_8", "transport")
    add_device(conn, "van-1", "VAN-1", "reefer_controller")
    sid = add_series(conn, "van-1", "temp:1")
    door = add_series(conn, "van-1", "door")
    conn.execute("INSERT INTO lot (lot_id, product_class) VALUES (%s, 'pharma_2_8')", (LOT,))
    custody(conn, "VAN-1", 0, 120)
    worker = RulesWorker(db_url)
    try:
        add_readings(conn, sid, [(float(m), 5.0) for m in range(0, 30)])
        add_readings(conn, door, [(0.0, 0.0)])
        drain(worker)
        assert [v.result for v in lot_outbox(conn)] == ["pass"]
        # The door stays open 10 min (5 min allowed); temperatures stay in range. Only the door
        # channel arrives: the lot is re-judged all the same.
        add_readings(conn, door, [(5.0, 1.0), (10.0, 1.0), (15.0, 0.0)])
        drain(worker)
        last = lot_outbox(conn)[-1]
        assert last.result == "broken"
        assert any("door open" in r for r in last.reasons)
    finally:
        worker.close()


def test_gap_is_device_wide_across_probes(conn: Conn, db_url: str) -> None:
    add_asset(conn, "TRUCK-7", "reefer_truck", "chilled", "transport")
    add_device(conn, "rc-7", "TRUCK-7", "reefer_controller")
    p1 = add_series(conn, "rc-7", "temp:1")
    p2 = add_series(conn, "rc-7", "temp:2")
    worker = RulesWorker(db_url)
    try:
        # Probe 2 is silent from 10 to 40 while probe 1 reports: no gap (the asset had evidence).
        add_readings(conn, p1, [(float(m), 2.0) for m in range(0, 61)])
        add_readings(conn, p2, [(float(m), 2.0) for m in [*range(0, 11), *range(40, 61)]])
        drain(worker)
        assert conn.execute("SELECT count(*) FROM chain_break").fetchone() == (0,)
        # The whole device drops out from 60 to 90 (10 min allowed in transport): one break, not two.
        add_readings(conn, p1, [(float(m), 2.0) for m in range(90, 100)])
        add_readings(conn, p2, [(float(m), 2.0) for m in range(90, 100)])
        drain(worker)
        rows = conn.execute("SELECT kind, series_id, allowed_s FROM chain_break").fetchall()
        assert rows == [("gap", p1, 600.0)]
        emitted = conn.execute("SELECT count(*) FROM verdict_outbox WHERE kind = 'chain_break'").fetchone()
        assert emitted == (1,)
    finally:
        worker.close()
