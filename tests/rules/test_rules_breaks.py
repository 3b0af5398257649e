"""Tests for the class-profile chain breaks of the live worker against a real PostgreSQL: an excursion
beyond the single-event or cumulative allowance, readings outside the hard band and MKT above its limit
become chain_break rows of kind 'excursion' (rule …/single_event, …/cumulative, …/band, …/mkt), each
handed to the ledger once; plus engine.cumulative_breaks against the kernel (property)."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from rules_support import (
    Conn,
    add_asset,
    add_batch,
    add_device,
    add_readings,
    add_series,
    at,
    drain,
)

from rules import engine, kernels
from rules.models import VerdictPayload
from rules.worker import RulesWorker


def room(conn: Conn, asset: str, product_class: str, device: str) -> int:
    add_asset(conn, asset, "cold_room", product_class, "storage")
    add_device(conn, device, asset)
    return add_series(conn, device, "temp")


def breaks(conn: Conn, rule_suffix: str = "") -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT kind, series_id, asset_id, rule_id, start_time, end_time, allowed_s, detail FROM chain_break"
        " WHERE kind = 'excursion' AND rule_id LIKE %s ORDER BY start_time",
        (f"%{rule_suffix}",),
    ).fetchall()


def emitted(conn: Conn, rule_suffix: str = "") -> list[dict[str, Any]]:
    return [
        p
        for (p,) in conn.execute(
            "SELECT payload FROM verdict_outbox WHERE kind = 'chain_break' AND payload->>'kind' = 'excursion'"
            " AND payload->>'rule_id' LIKE %s ORDER BY outbox_id",
            (f"%{rule_suffix}",),
        )
    ]


def test_pharma_cumulative_allowance_is_one_chain_break(conn: Conn, db_url: str) -> None:
    sid = room(conn, "COLD-1", "pharma_2_8", "cold-1")
    worker = RulesWorker(db_url)
    try:
        # Three 25-min excursions (each within the 30-min single-event allowance), 30 min apart:
        # 75 min out of range within 24 h, beyond the 60-min cumulative allowance. In 20-min batches.
        pts: list[tuple[float, float | None]] = [
            (float(m), 9.0 if m % 55 >= 30 and m < 170 else 5.0) for m in range(200)
        ]
        for chunk in range(0, 200, 20):
            add_readings(conn, sid, pts[chunk : chunk + 20])
            drain(worker)
        [row] = breaks(conn)
        kind, series_id, asset_id, rule_id, start, end, allowed_s, detail = row
        assert (kind, series_id, asset_id, rule_id) == (
            "excursion",
            sid,
            "COLD-1",
            "cn_drug_gsp/pharma_2_8/cumulative",
        )
        # The out-of-range readings of the exceeding window: the first excursion's first reading to the
        # third's last one; 75 min held out of range (each run's last reading holds to the next one).
        assert (start, end, allowed_s) == (at(30), at(164), 3600.0)
        assert detail["out_of_range_s"] == 4500.0
        assert detail["window_s"] == 86400
        assert detail["peak_c"] == 9.0
        [p] = emitted(conn)
        msgspec.convert(p, VerdictPayload)
        assert (p["verdict"], p["kind"], p["rule_id"], p["allowed_s"]) == (
            "chain_break",
            "excursion",
            "cn_drug_gsp/pharma_2_8/cumulative",
            3600.0,
        )
        assert (
            p["verdict_id"]
            == f"chain_break:cn_drug_gsp/pharma_2_8/cumulative:{sid}:{int(at(30).timestamp() * 1000)}"
        )
        assert p["start"] == "2026-01-01T00:30:00.000Z"
        # The series verdict rests on the stored break.
        items = conn.execute(
            "SELECT verdict, items FROM verdict_history WHERE subject_id = %s ORDER BY version DESC LIMIT 1",
            (f"{sid}@COLD-1",),
        ).fetchone()
        assert items is not None
        assert items[0] == "broken"
        assert any(
            i.get("kind") == "excursion_break" and i["rule_id"].endswith("/cumulative") for i in items[1]
        )

        # A redelivered batch re-evaluates to the same break: no new row, no new outbox entry.
        add_batch(conn, [sid], 0, 199)
        drain(worker)
        assert len(breaks(conn)) == 1
        assert len(emitted(conn)) == 1
        # Late data extending the breach (a fourth excursion within the window): the row grows, the
        # break is not emitted again.
        add_readings(conn, sid, [(float(m), 9.0 if 200 <= m < 215 else 5.0) for m in range(200, 230)])
        drain(worker)
        [row] = breaks(conn)
        assert (row[4], row[5]) == (at(30), at(214))
        assert row[7]["out_of_range_s"] == 5400.0
        assert len(emitted(conn)) == 1
    finally:
        worker.close()


def test_single_event_break_removed_by_late_data(conn: Conn, db_url: str) -> None:
    sid = room(conn, "COLD-2", "pharma_2_8", "cold-2")
    worker = RulesWorker(db_url)
    try:
        # 9 °C from 10 to 45 (35 min > the 30-min single-event allowance), minute 27 not yet uploaded.
        add_readings(conn, sid, [(float(m), 9.0 if 10 <= m <= 45 else 5.0) for m in range(60) if m != 27])
        drain(worker)
        [row] = breaks(conn)
        assert row[3:7] == ("cn_drug_gsp/pharma_2_8/single_event", at(10), at(45), 1800.0)
        assert row[7]["duration_s"] == 2100.0
        assert row[7]["open"] is False
        [p] = emitted(conn)
        assert p["rule_id"] == "cn_drug_gsp/pharma_2_8/single_event"
        assert p["peak_c"] == 9.0
        # Re-evaluation: nothing new.
        add_batch(conn, [sid], 0, 59)
        drain(worker)
        assert len(breaks(conn)) == 1
        assert len(emitted(conn)) == 1
        # Minute 27 arrives late, in range: two excursions of 16 and 17 min, each within the allowance.
        # The break row goes (the ledger already has it: emitted verdicts are never taken back).
        add_readings(conn, sid, [(27.0, 5.0)])
        drain(worker)
        assert breaks(conn) == []
        assert len(emitted(conn)) == 1
        row2 = conn.execute(
            "SELECT verdict FROM verdict_history WHERE subject_id = %s ORDER BY version DESC LIMIT 1",
            (f"{sid}@COLD-2",),
        ).fetchone()
        assert row2 == ("excursion",)
    finally:
        worker.close()


def test_usp_crt_mkt_breach_is_one_chain_break(conn: Conn, db_url: str) -> None:
    sid = room(conn, "CRT-1", "usp_crt", "crt-1")
    worker = RulesWorker(db_url)
    try:
        # A day at 26–28 °C (inside the 15–30 °C band) every 20 min: MKT over 30 days above 25 °C.
        add_readings(conn, sid, [(float(m), 26.0 + (m // 20) % 3) for m in range(0, 1440, 20)])
        drain(worker)
        [row] = breaks(conn)
        assert row[3:7] == ("usp/usp_crt/mkt", at(1420), at(1420), 0.0)
        assert row[7]["limit_c"] == 25.0
        assert row[7]["mkt_c"] > 25.0
        assert row[7]["open"] is True
        # One more hour, still above: the same break, extended; not emitted again.
        add_readings(conn, sid, [(float(m), 27.0) for m in range(1440, 1500, 20)])
        drain(worker)
        [row] = breaks(conn)
        assert (row[4], row[5]) == (at(1420), at(1480))
        add_batch(conn, [sid], 0, 1480)
        drain(worker)
        assert len(breaks(conn)) == 1
        [p] = emitted(conn)
        msgspec.convert(p, VerdictPayload)
        assert (p["rule_id"], p["kind"], p["allowed_s"], p["start"]) == (
            "usp/usp_crt/mkt",
            "excursion",
            0.0,
            "2026-01-01T23:40:00.000Z",
        )
        assert "MKT" in p["reason"]
    finally:
        worker.close()


def test_mkt_break_closes_and_a_new_one_is_emitted(conn: Conn, db_url: str) -> None:
    sid = room(conn, "CCT-1", "usp_cct", "cct-1")  # MKT ≤ 8 °C over 24 h, band 0–15 °C
    worker = RulesWorker(db_url)
    try:
        add_readings(conn, sid, [(float(m), 9.0) for m in range(0, 181, 30)])
        drain(worker)
        assert [(r[4], r[5], r[7]["open"]) for r in breaks(conn, "/mkt")] == [(at(180), at(180), True)]
        # A day at 4 °C: MKT over 24 h falls under 8 °C; the break closes at its last judged reading.
        add_readings(conn, sid, [(float(m), 4.0) for m in range(210, 1800, 30)])
        drain(worker)
        assert [(r[4], r[5], r[7]["open"]) for r in breaks(conn, "/mkt")] == [(at(180), at(180), False)]
        # Above again: a second break, emitted.
        add_readings(conn, sid, [(float(m), 14.0) for m in range(1800, 3300, 30)])
        drain(worker)
        got = breaks(conn, "/mkt")
        assert len(got) == 2
        assert got[1][7]["open"] is True
        assert len(emitted(conn, "/mkt")) == 2
    finally:
        worker.close()


def test_band_breach_is_one_chain_break(conn: Conn, db_url: str) -> None:
    sid = room(conn, "CRT-2", "usp_crt", "crt-2")
    worker = RulesWorker(db_url)
    try:
        # 22 °C, then 42 °C (outside the 15–30 °C band and above the 40 °C spike allowance) from 10 to
        # 14 with a dropout at 12.
        pts: list[tuple[float, float | None]] = [
            (float(m), None if m == 12 else 42.0 if 10 <= m <= 14 else 22.0) for m in range(30)
        ]
        add_readings(conn, sid, pts)
        drain(worker)
        [row] = breaks(conn, "/band")
        assert row[3:7] == ("usp/usp_crt/band", at(10), at(14), 0.0)
        assert (row[7]["band_low_c"], row[7]["band_high_c"], row[7]["peak_c"]) == (15.0, 30.0, 42.0)
        add_batch(conn, [sid], 0, 29)
        add_readings(conn, sid, [(float(m), 22.0) for m in range(30, 40)])
        drain(worker)
        assert len(breaks(conn, "/band")) == 1
        [p] = emitted(conn, "/band")
        assert (p["start"], p["end"], p["readings"], p["max_c"]) == (
            "2026-01-01T00:10:00.000Z",
            "2026-01-01T00:14:00.000Z",
            4,
            42.0,
        )
    finally:
        worker.close()


# -- engine.cumulative_breaks against the kernel -------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.one_of(st.floats(-5, 15, allow_nan=False), st.just(math.nan)), min_size=0, max_size=40),
    st.lists(st.integers(0, 300_000), min_size=40, max_size=40),
    st.integers(1, 3_000_000),
    st.integers(0, 1_500_000),
)
def test_cumulative_breaks_exist_exactly_when_the_kernel_max_exceeds(
    values: list[float], steps: list[int], window: int, allowance: int
) -> None:
    n = len(values)
    t = np.cumsum(np.array(steps[:n], dtype=np.int64))
    x = np.array(values, dtype=np.float64)
    got = engine.cumulative_breaks(t, x, low_c=2.0, high_c=8.0, window_ms=window, allowance_ms=allowance)
    _total, cmax = kernels.cum_oor_max(t, x, 2.0, 8.0, True, True, window)
    assert bool(got) == (cmax > allowance)
    if got:
        assert max(w for _, _, w in got) == cmax
    for i, j, _w in got:
        assert i <= j
        assert not (2.0 <= x[i] <= 8.0)  # a break starts and ends at out-of-range readings
        assert not (2.0 <= x[j] <= 8.0)
    starts = [i for i, _, _ in got]
    assert starts == sorted(starts)
