"""Tests for the verdict history, late data and lot verdicts, against the real worker and PostgreSQL."""

from __future__ import annotations

import itertools
import shutil
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rules_support import (
    LOT,
    Conn,
    add_asset,
    add_device,
    add_readings,
    add_series,
    at,
    custody,
    drain,
    lot_outbox,
)

from rules.packs import DEFAULT_PACKS_DIR, load_packs
from rules.worker import RulesWorker


def history(conn: Conn, subject: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT version, verdict, items, arrived, change, pack_version FROM verdict_history"
        " WHERE subject_id = %s ORDER BY version",
        (subject,),
    ).fetchall()


def test_late_data_amends_verdict_and_says_why(conn: Conn, db_url: str) -> None:
    add_asset(conn, "TRUCK-1", "reefer_truck", "chilled", "transport")
    add_device(conn, "rc-1", "TRUCK-1", "reefer_controller")
    sid = add_series(conn, "rc-1", "temp:1")
    subject = f"{sid}@TRUCK-1"
    worker = RulesWorker(db_url)
    try:
        add_readings(conn, sid, [(m, 2.0) for m in range(0, 31)])
        drain(worker)
        assert [h[1] for h in history(conn, subject)] == ["pass"]
        add_readings(conn, sid, [(m, 2.0) for m in range(60, 91)])
        drain(worker)
        v = history(conn, subject)
        assert [h[1] for h in v] == ["pass", "broken"]
        assert v[1][4]["from"] == "pass"
        assert v[1][4]["to"] == "broken"
        assert v[1][4]["added"] == [
            {
                "kind": "gap",
                "rule_id": "cn_food/chilled/gap",
                "start": "2026-01-01T00:30:00.000Z",
                "end": "2026-01-01T01:00:00.000Z",
                "open": False,
            }
        ]
        # The logger uploads the missing half hour late: the gap goes, the verdict returns to pass.
        add_readings(conn, sid, [(m, 2.0) for m in range(31, 60)])
        drain(worker)
        v = history(conn, subject)
        assert [h[1] for h in v] == ["pass", "broken", "pass"]
        version, verdict, items, arrived, change, pack_version = v[2]
        expected: tuple[object, ...] = (3, "pass", [], load_packs()["chilled"].pack_version)
        assert (version, verdict, items, pack_version) == expected
        assert (arrived["t_min"], arrived["t_max"]) == (
            "2026-01-01T00:31:00.000Z",
            "2026-01-01T00:59:00.000Z",
        )
        assert len(arrived["batch_ids"]) == 1
        assert change["removed"][0]["kind"] == "gap"
        assert change["added"] == []
        # Re-evaluating without any change adds no version.
        conn.execute(
            "INSERT INTO ingest_batch (kind, series_ids, t_min, t_max) VALUES ('telemetry', %s, %s, %s)",
            ([sid], at(0), at(90)),
        )
        drain(worker)
        assert len(history(conn, subject)) == 3
    finally:
        worker.close()


# -- arrival order does not matter -------------------------------------------------------------------------

value = st.sampled_from([2.0, 2.0, 2.0, 3.8, 5.0, 9.0, -1.0, None])


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[tuple[float, float | None]], list[list[int]]]:
    n = draw(st.integers(5, 45))
    minutes = sorted(draw(st.sets(st.integers(0, 90), min_size=n, max_size=n)))
    points = [(float(m), draw(value)) for m in minutes]
    order = draw(st.permutations(list(range(len(points)))))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(points) - 1)), max_size=6)))
    batches = [list(order[a:b]) for a, b in itertools.pairwise([0, *cuts, len(points)]) if b > a]
    return points, batches


def final_state(conn: Conn, sid: int, asset: str) -> tuple[Any, ...]:
    exc = conn.execute(
        "SELECT start_time, end_time, open, peak_c, readings FROM excursion WHERE series_id = %s ORDER BY 1",
        (sid,),
    ).fetchall()
    gaps = conn.execute(
        "SELECT start_time, end_time, allowed_s FROM chain_break WHERE series_id = %s ORDER BY 1", (sid,)
    ).fetchall()
    last = conn.execute(
        "SELECT verdict, items FROM verdict_history WHERE subject_id = %s ORDER BY version DESC LIMIT 1",
        (f"{sid}@{asset}",),
    ).fetchone()
    return exc, gaps, last


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories())
def test_arrival_batches_give_the_same_final_verdicts(
    conn: Conn, db_url: str, h: tuple[list[tuple[float, float | None]], list[list[int]]]
) -> None:
    points, batches = h
    tag = uuid.uuid4().hex[:8]
    worker = RulesWorker(db_url)
    try:
        sids = []
        for which in ("once", "batched"):
            asset = f"T-{which}-{tag}"
            add_asset(conn, asset, "reefer_truck", "chilled", "transport")
            add_device(conn, f"d-{which}-{tag}", asset, "reefer_controller")
            sids.append((add_series(conn, f"d-{which}-{tag}", "temp"), asset))
        (once, a_once), (batched, a_batched) = sids
        add_readings(conn, once, points)
        drain(worker)
        for batch in batches:
            add_readings(conn, batched, [points[i] for i in batch])
            drain(worker)
        exc1, gaps1, last1 = final_state(conn, once, a_once)
        exc2, gaps2, last2 = final_state(conn, batched, a_batched)
        assert exc2 == exc1
        assert gaps2 == gaps1
        assert last2 == last1
    finally:
        worker.close()


# -- lot verdicts ------------------------------------------------------------------------------------------


def test_lot_judged_against_its_own_class_through_the_asset(conn: Conn, db_url: str) -> None:
    # The truck has no configured class: it is judged against the strictest class of the lots it holds.
    add_asset(conn, "TRUCK-9", "reefer_truck", None, "transport")
    add_device(conn, "rc-9", "TRUCK-9", "reefer_controller")
    sid = add_series(conn, "rc-9", "temp:1")
    conn.execute("INSERT INTO lot (lot_id, product_class) VALUES (%s, 'pharma_2_8')", (LOT,))
    custody(conn, "TRUCK-9", 0, 120)
    worker = RulesWorker(db_url)
    try:
        add_readings(conn, sid, [(m, 5.0) for m in range(0, 30)])
        drain(worker)
        [v1] = lot_outbox(conn)
        assert (v1.lot_id, v1.product_class, v1.result, v1.pack_id) == (
            LOT,
            "pharma_2_8",
            "pass",
            "cn_drug_gsp",
        )
        assert v1.verdict_id == f"lot_verdict:{LOT}:v1"
        # 10 min at 9.5 °C: an excursion for 2–8 °C drugs (and the asset's alarm under that class).
        add_readings(conn, sid, [(m, 9.5) for m in range(30, 41)] + [(m, 5.0) for m in range(41, 50)])
        drain(worker)
        v = lot_outbox(conn)
        assert [x.result for x in v] == ["pass", "excursion"]
        assert any("excursion" in r for r in v[1].reasons)
        rule = conn.execute("SELECT DISTINCT rule_id FROM excursion WHERE series_id = %s", (sid,)).fetchall()
        assert rule == [("cn_drug_gsp/pharma_2_8/range",)]
        # A 10-minute silence in transport (5 min allowed for drugs): the chain is broken.
        add_readings(conn, sid, [(m, 5.0) for m in range(60, 70)])
        drain(worker)
        last = lot_outbox(conn)[-1]
        assert (last.result, last.verdict_id) == ("broken", f"lot_verdict:{LOT}:v3")
        hist = conn.execute(
            "SELECT version, verdict FROM verdict_history WHERE subject_kind = 'lot' ORDER BY version"
        ).fetchall()
        assert hist == [(1, "pass"), (2, "excursion"), (3, "broken")]
    finally:
        worker.close()


# -- pack versions: a stored verdict keeps the version it was made under -------------------------------


def test_stored_verdicts_keep_their_pack_version(conn: Conn, db_url: str, tmp_path: Path) -> None:
    shipped = load_packs()
    old = shipped.packs["cn_food"].version
    for pack in DEFAULT_PACKS_DIR.glob("*.toml"):
        shutil.copy(pack, tmp_path / pack.name)
    add_asset(conn, "TRUCK-V", "reefer_truck", "chilled", "transport")
    add_device(conn, "rc-v", "TRUCK-V", "reefer_controller")
    sid = add_series(conn, "rc-v", "temp:1")
    subject = f"{sid}@TRUCK-V"
    worker = RulesWorker(db_url, tmp_path)
    try:
        add_readings(conn, sid, [(m, 2.0) for m in range(0, 31)])
        drain(worker)
    finally:
        worker.close()
    # The pack is revised: a new version is loaded; the verdict made under the old one stays as it was.
    food = tmp_path / "cn_food.toml"
    food.write_text(
        food.read_text(encoding="utf-8").replace(f'version = "{old}"', 'version = "2099.1"', 1),
        encoding="utf-8",
    )
    before = history(conn, subject)
    worker = RulesWorker(db_url, tmp_path)
    try:
        add_readings(conn, sid, [(m, 2.0) for m in range(60, 91)])  # a 30 min gap in transport: broken
        drain(worker)
    finally:
        worker.close()
    v = history(conn, subject)
    assert [(h[0], h[1], h[5]) for h in v] == [(1, "pass", old), (2, "broken", "2099.1")]
    assert v[0] == before[0]
    [(gap_version,)] = conn.execute(
        "SELECT pack_version FROM chain_break WHERE series_id = %s", (sid,)
    ).fetchall()
    assert gap_version == "2099.1"
    [(published,)] = conn.execute(
        "SELECT pack_version FROM rule_class WHERE product_class = 'chilled'"
    ).fetchall()
    assert published == "2099.1"
