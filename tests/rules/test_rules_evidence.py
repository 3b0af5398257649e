"""Tests for evidence quality through the rules worker on a real PostgreSQL: the recording interval of each
transport mode, humidity limits, calibration, the accuracy chain, and multi-temperature compartments."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_support import stub_entry
from rules_support import T0, Conn, add_readings, add_series, at, drain, lot_outbox
from typer.testing import CliRunner

import registry.store as registry
from coldchain.cli import app
from registry.models import Asset, Device, Lot, Mount
from rules import alarms, engine
from rules.packs import Humidity, load_packs
from rules.worker import RulesWorker

# A test pack (the shipped packs are data of their own): one class per concern, figures chosen so each
# rule can be told apart, a pack default accuracy of 0.7 °C.
PACK = """
format = 1
id = "evidence_test"
version = "1"
title = "Evidence-quality test pack"
goods = "food"

[accuracy]
value = 0.7
source = "test: the pack's default accuracy"

[classes.store_2_8]
description = "2 to 8 °C with humidity limits"
low_c = 2.0
high_c = 8.0
source = "test"
min_duration = { seconds = 600, source = "test" }
humidity = { low_pct = 35.0, high_pct = 75.0, source = "test: GSP store 35-75 %RH" }

[classes.store_2_8.max_interval]
storage = { seconds = 1800, source = "test: storage" }
transport = { seconds = 300, source = "test: transport" }
road = { seconds = 600, source = "test: road" }
rail = { seconds = 1200, source = "test: rail" }
sea = { seconds = 3600, source = "test: sea" }

[classes.frozen_acc]
description = "frozen, class accuracy 1.0 °C"
high_c = -18.0
source = "test"
min_duration = { seconds = 600, source = "test" }
accuracy = { value = 1.0, source = "test: class accuracy" }

[classes.frozen_acc.max_interval]
storage = { seconds = 1800, source = "test" }
transport = { seconds = 1800, source = "test" }

[classes.frozen_pack]
description = "frozen, no class accuracy (the pack's default applies)"
high_c = -18.0
source = "test"
min_duration = { seconds = 600, source = "test" }

[classes.frozen_pack.max_interval]
storage = { seconds = 1800, source = "test" }
transport = { seconds = 1800, source = "test" }

[classes.store_only]
description = "2 to 8 °C, humidity limits that hold in storage only"
low_c = 2.0
high_c = 8.0
source = "test"
min_duration = { seconds = 600, source = "test" }
humidity = { low_pct = 35.0, high_pct = 75.0, modes = ["storage"], source = "test: a storage rule" }

[classes.store_only.max_interval]
storage = { seconds = 1800, source = "test" }
transport = { seconds = 1800, source = "test" }
"""


@pytest.fixture
def packs_dir(tmp_path: Path) -> Path:
    (tmp_path / "evidence_test.toml").write_text(PACK, encoding="utf-8")
    return tmp_path


def asset(conn: Conn, asset_id: str, kind: str, product_class: str | None = None, **kw: Any) -> None:
    registry.add_assets(conn, [Asset(asset_id, kind, asset_id, product_class=product_class, **kw)])


def device(conn: Conn, device_id: str, asset_id: str, **kw: Any) -> None:
    registry.add_devices(conn, [Device(device_id, "temp_logger", **kw)])
    registry.add_mounts(conn, [Mount(device_id, asset_id, T0 - dt.timedelta(days=1))])


def lot_on(conn: Conn, lot_id: str, product_class: str, asset_id: str, seq: int) -> None:
    """A lot packed in its own pallet, the pallet's custody leg on the asset from minute 0."""
    registry.add_lots(conn, [Lot(lot_id, product_class)])
    pallet = f"urn:epc:id:sscc:6901234.{seq:010d}"
    stub_entry(conn, seq, f"e{seq}", at(0))
    conn.execute(
        "INSERT INTO containment (child_id, parent_id, t0, start_seq) VALUES (%s, %s, %s, %s)",
        (lot_id, pallet, at(-60), seq),
    )
    conn.execute(
        "INSERT INTO custody_leg (epc, asset_id, t_start, start_seq) VALUES (%s, %s, %s, %s)",
        (pallet, asset_id, at(0), seq),
    )


def last_lot_verdict(conn: Conn, lot_id: str) -> tuple[str, list[str]]:
    [*_, last] = [p for p in lot_outbox(conn) if p.lot_id == lot_id]
    return last.result, last.reasons


def gap_rows(conn: Conn, asset_id: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT allowed_s, detail->>'mode', detail->>'source' FROM chain_break"
        " WHERE kind = 'gap' AND asset_id = %s ORDER BY start_time",
        (asset_id,),
    ).fetchall()


def every(step_min: int, until_min: int, value: float) -> list[tuple[float, float | None]]:
    return [(float(m), value) for m in range(0, until_min + 1, step_min)]


# -- transport modes -------------------------------------------------------------------------------------


def test_transport_mode_of_each_asset_kind_and_mounting(conn: Conn) -> None:
    asset(conn, "TRUCK", "reefer_truck")
    asset(conn, "COMP", "truck_compartment", parent_asset_id="TRUCK")
    asset(conn, "WAGON", "rail_wagon")
    asset(conn, "SHIP", "vessel")
    asset(conn, "ROOM", "cold_room")  # storage by kind, whatever its mode column says
    asset(conn, "BOX-LOOSE", "passive_box")
    asset(conn, "CONT-LOOSE", "reefer_container")
    asset(conn, "CONT-RAIL", "reefer_container", parent_asset_id="WAGON")
    asset(conn, "CONT-ROAD", "reefer_container", parent_asset_id="TRUCK")
    asset(conn, "CONT-SEA", "reefer_container", parent_asset_id="SHIP")
    asset(conn, "CONT-YARD", "reefer_container", parent_asset_id="SHIP", mode="storage")  # plugged in
    asset(conn, "BOX-RAIL", "passive_box", parent_asset_id="CONT-RAIL")
    want = {
        "TRUCK": "road",
        "COMP": "road",
        "WAGON": "rail",
        "SHIP": "sea",
        "ROOM": "storage",
        "BOX-LOOSE": "transport",
        "CONT-LOOSE": "sea",
        "CONT-RAIL": "rail",
        "CONT-ROAD": "road",
        "CONT-SEA": "sea",
        "CONT-YARD": "storage",
        "BOX-RAIL": "rail",
    }
    assert {a: registry.transport_mode(conn, a) for a in want} == want
    assert registry.transport_mode(conn, "NO-SUCH-ASSET") is None


def test_pack_interval_per_mode_falls_back_to_transport(packs_dir: Path) -> None:
    packs = load_packs(packs_dir)
    r = packs["store_2_8"].rules
    assert [r.max_interval_s(m) for m in ("storage", "transport", "road", "rail", "sea")] == [
        1800,
        300,
        600,
        1200,
        3600,
    ]
    f = packs["frozen_acc"].rules
    assert [f.max_interval_s(m) for m in ("road", "rail", "sea")] == [1800, 1800, 1800]


def test_gaps_judged_by_the_interval_of_the_transport_mode(db_url: str, conn: Conn, packs_dir: Path) -> None:
    asset(conn, "TRUCK", "reefer_truck", "store_2_8")
    asset(conn, "WAGON", "rail_wagon")
    asset(conn, "CONT-RAIL", "reefer_container", "store_2_8", parent_asset_id="WAGON")
    asset(conn, "CONT-SEA", "reefer_container", "store_2_8")
    for a in ("TRUCK", "CONT-RAIL", "CONT-SEA"):
        device(conn, f"dev-{a}", a, accuracy_c=0.5)
        # A record every 15 min: too sparse on the road (10 min), enough on rail (20 min) and at sea (1 h).
        add_readings(conn, add_series(conn, f"dev-{a}", "temp"), every(15, 60, 5.0))
    worker = RulesWorker(db_url, packs_dir)
    try:
        drain(worker)
    finally:
        worker.close()
    assert gap_rows(conn, "TRUCK") == [(600.0, "road", "test: road")] * 4
    assert gap_rows(conn, "CONT-RAIL") == []
    assert gap_rows(conn, "CONT-SEA") == []
    published = conn.execute(
        "SELECT road_max_gap_s, rail_max_gap_s, sea_max_gap_s, humidity_low_pct, humidity_high_pct"
        " FROM rule_class WHERE product_class = 'store_2_8'"
    ).fetchone()
    assert published == (600.0, 1200.0, 3600.0, 35.0, 75.0)
    # The dashboards allow each asset the interval of its mode (silent devices, devices online).
    allowed = conn.execute(
        "SELECT asset_id, transport_mode, allowed_s FROM v_asset_scope"
        " WHERE product_class = 'store_2_8' ORDER BY asset_id"
    ).fetchall()
    assert allowed == [("CONT-RAIL", "rail", 1200.0), ("CONT-SEA", "sea", 3600.0), ("TRUCK", "road", 600.0)]


def test_a_container_moved_from_a_wagon_to_a_truck_takes_the_road_interval(
    db_url: str, conn: Conn, packs_dir: Path
) -> None:
    asset(conn, "WAGON", "rail_wagon")
    asset(conn, "TRUCK", "reefer_truck")
    asset(conn, "CONT", "reefer_container", "store_2_8", parent_asset_id="WAGON")
    device(conn, "dev-c", "CONT", accuracy_c=0.5)
    sid = add_series(conn, "dev-c", "temp")
    worker = RulesWorker(db_url, packs_dir)
    try:
        add_readings(conn, sid, every(15, 60, 5.0))
        drain(worker)
        assert gap_rows(conn, "CONT") == []
        conn.execute("UPDATE asset SET parent_asset_id = 'TRUCK' WHERE asset_id = 'CONT'")
        add_readings(conn, sid, [(75.0, 5.0)])  # 15 min after the last: too long on the road
        drain(worker)
        assert gap_rows(conn, "CONT")[-1] == (600.0, "road", "test: road")
    finally:
        worker.close()


# -- humidity --------------------------------------------------------------------------------------------


def test_humidity_outside_the_class_limits_alarms_and_marks_the_lot(
    db_url: str, conn: Conn, packs_dir: Path
) -> None:
    asset(conn, "ROOM", "cold_room", "store_2_8", mode="storage")
    device(conn, "dev-r", "ROOM", accuracy_c=0.5)
    temp = add_series(conn, "dev-r", "temp")
    rh = add_series(conn, "dev-r", "rh")
    lot = "urn:epc:class:lgtin:6901234.012345.H1"
    lot_on(conn, lot, "store_2_8", "ROOM", 1)
    add_readings(conn, temp, every(5, 120, 5.0))
    worker = RulesWorker(db_url, packs_dir)
    try:
        # 40 %RH, then 80 %RH from minute 30 on (still so at the latest reading).
        add_readings(conn, rh, [(m, 40.0 if m < 30 else 80.0) for m, _ in every(5, 60, 0.0)])
        drain(worker)
        [a] = [x for x in alarms.list_alarms(conn, asset_id="ROOM") if x["kind"] == "humidity"]
        assert (a["state"], a["rule_id"]) == ("open", "evidence_test/store_2_8/humidity")
        assert "humidity above 75.0 %RH" in a["reason"]
        result, reasons = last_lot_verdict(conn, lot)
        assert result == "excursion"
        assert any("humidity above 75.0 %RH" in r and "(peak 80.0 %RH)" in r for r in reasons)

        # Back to 50 %RH: the alarm resolves; the lot keeps its humidity excursion.
        add_readings(conn, rh, [(m, 50.0) for m, _ in every(5, 120, 0.0) if m > 60])
        drain(worker)
        [a] = [x for x in alarms.list_alarms(conn, asset_id="ROOM") if x["kind"] == "humidity"]
        assert a["state"] == "resolved"
        assert last_lot_verdict(conn, lot)[0] == "excursion"
    finally:
        worker.close()


def test_humidity_at_the_limits_and_a_short_spike_pass(db_url: str, conn: Conn, packs_dir: Path) -> None:
    asset(conn, "ROOM", "cold_room", "store_2_8", mode="storage")
    device(conn, "dev-r", "ROOM", accuracy_c=0.5)
    lot = "urn:epc:class:lgtin:6901234.012345.H2"
    lot_on(conn, lot, "store_2_8", "ROOM", 1)
    add_readings(conn, add_series(conn, "dev-r", "temp"), every(5, 120, 5.0))
    # 35 and 75 %RH are inside (inclusive); 90 %RH for 5 min is shorter than the 10-min minimum duration.
    points = [(m, 35.0 if m < 40 else 75.0) for m, _ in every(5, 120, 0.0)]
    points = [(m, 90.0 if 60 <= m <= 65 else v) for m, v in points]
    add_readings(conn, add_series(conn, "dev-r", "rh"), points)
    worker = RulesWorker(db_url, packs_dir)
    try:
        drain(worker)
    finally:
        worker.close()
    assert [x for x in alarms.list_alarms(conn) if x["kind"] == "humidity"] == []
    assert last_lot_verdict(conn, lot)[0] == "pass"


def test_humidity_limits_of_storage_judge_a_cold_room_not_a_truck(
    db_url: str, conn: Conn, packs_dir: Path
) -> None:
    """Limits that hold in storage only (the drug GSP's 35-75 %RH is a storage rule): 90 %RH for two hours
    is an excursion in a cold room and nothing on a truck, live and in the lot's verdict."""
    for n, (asset_id, kind, mode) in enumerate(
        [("ROOM", "cold_room", "storage"), ("TRUCK", "reefer_truck", None)]
    ):
        asset(conn, asset_id, kind, "store_only", **({"mode": mode} if mode else {}))
        device(conn, f"dev-{asset_id}", asset_id, accuracy_c=0.5)
        add_readings(conn, add_series(conn, f"dev-{asset_id}", "temp"), every(5, 120, 5.0))
        add_readings(conn, add_series(conn, f"dev-{asset_id}", "rh"), every(5, 120, 90.0))
        lot_on(conn, f"urn:epc:class:lgtin:6901234.012345.M{n}", "store_only", asset_id, 10 + n)
    worker = RulesWorker(db_url, packs_dir)
    try:
        drain(worker)
    finally:
        worker.close()
    humid = {x["asset_id"] for x in alarms.list_alarms(conn) if x["kind"] == "humidity"}
    assert humid == {"ROOM"}
    assert last_lot_verdict(conn, "urn:epc:class:lgtin:6901234.012345.M0")[0] == "excursion"
    assert last_lot_verdict(conn, "urn:epc:class:lgtin:6901234.012345.M1")[0] == "pass"


# -- calibration -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("due", "want"), [(dt.date(2025, 12, 31), "indeterminate"), (T0.date(), "pass")])
def test_a_device_past_its_calibration_date_is_indeterminate_not_pass(
    db_url: str, conn: Conn, packs_dir: Path, due: dt.date, want: str
) -> None:
    asset(conn, "ROOM", "cold_room", "store_2_8", mode="storage")
    device(conn, "dev-c", "ROOM", accuracy_c=0.5, calibration_due=due)
    lot = "urn:epc:class:lgtin:6901234.012345.C1"
    lot_on(conn, lot, "store_2_8", "ROOM", 1)
    sid = add_series(conn, "dev-c", "temp")
    add_readings(conn, sid, every(5, 120, 5.0))  # all on 2026-01-01, well inside 2-8 °C
    worker = RulesWorker(db_url, packs_dir)
    try:
        drain(worker)
    finally:
        worker.close()
    result, reasons = last_lot_verdict(conn, lot)
    assert result == want
    series = conn.execute(
        "SELECT verdict FROM verdict_history WHERE subject_kind = 'series' AND subject_id = %s"
        " ORDER BY version DESC LIMIT 1",
        (f"{sid}@ROOM",),
    ).fetchone()
    assert series == (want,)
    calibration = [x for x in alarms.list_alarms(conn, asset_id="ROOM") if x["kind"] == "calibration"]
    if want == "pass":
        assert calibration == []
        return
    assert any("25 readings taken after the device's calibration was due (2025-12-31)" in r for r in reasons)
    [a] = calibration
    assert (a["state"], a["severity"]) == ("open", "warning")


def test_calibration_lapses_the_day_after_the_due_date() -> None:
    lapse = engine.calibration_lapse_ms(dt.date(2026, 1, 1))
    assert lapse == int(dt.datetime(2026, 1, 2, tzinfo=dt.UTC).timestamp()) * 1000
    t = np.array([lapse - 1, lapse, lapse + 1], dtype=np.int64)
    v = np.array([5.0, np.nan, 5.0])
    assert engine.past_calibration(t, v, lapse).tolist() == [2]
    assert engine.past_calibration(t, v, None).tolist() == []
    assert engine.calibration_lapse_ms(None) is None


# -- accuracy: device, then class, then pack default --------------------------------------------------------


def test_accuracy_comes_from_the_device_then_the_class_then_the_pack(packs_dir: Path) -> None:
    packs = load_packs(packs_dir)
    assert engine.device_accuracy(packs["frozen_acc"], 0.2) == 0.2
    assert engine.device_accuracy(packs["frozen_acc"], None) == 1.0
    assert engine.device_accuracy(packs["frozen_pack"], None) == 0.7
    assert engine.device_accuracy(packs["frozen_pack"], 0.0) == 0.0


@pytest.mark.parametrize(
    ("product_class", "stated", "peak", "want"),
    [
        ("frozen_acc", None, -17.2, "indeterminate"),  # 0.8 °C over: within the class's ±1.0 °C
        ("frozen_acc", 0.5, -17.2, "excursion"),  # the device's own ±0.5 °C comes first
        ("frozen_pack", None, -17.5, "indeterminate"),  # 0.5 °C over: within the pack's ±0.7 °C
        ("frozen_pack", None, -17.2, "excursion"),  # 0.8 °C over: beyond it
    ],
)
def test_a_reading_within_the_accuracy_that_applies_is_indeterminate(
    db_url: str,
    conn: Conn,
    packs_dir: Path,
    product_class: str,
    stated: float | None,
    peak: float,
    want: str,
) -> None:
    asset(conn, "ROOM", "cold_room", product_class, mode="storage")
    device(conn, "dev-a", "ROOM", accuracy_c=stated)
    stored = conn.execute("SELECT accuracy_c FROM device WHERE device_id = 'dev-a'").fetchone()
    assert stored == (stated,)  # nothing fills in an accuracy the device does not state
    lot = "urn:epc:class:lgtin:6901234.012345.A1"
    lot_on(conn, lot, product_class, "ROOM", 1)
    points = [(m, peak if 30 <= m <= 60 else -20.0) for m, _ in every(5, 120, 0.0)]
    add_readings(conn, add_series(conn, "dev-a", "temp"), points)
    worker = RulesWorker(db_url, packs_dir)
    try:
        drain(worker)
    finally:
        worker.close()
    assert last_lot_verdict(conn, lot)[0] == want


def test_a_negative_accuracy_is_refused_by_the_registry(conn: Conn) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        registry.add_devices(conn, [Device("dev-bad", "temp_logger", accuracy_c=-0.1)])


# -- multi-temperature vehicles ----------------------------------------------------------------------------


def test_each_compartment_is_judged_by_its_own_probe_and_class(
    db_url: str, conn: Conn, packs_dir: Path
) -> None:
    asset(conn, "TRUCK", "reefer_truck")  # no class of its own: its compartments have theirs
    asset(conn, "FRZ", "truck_compartment", "frozen_pack", parent_asset_id="TRUCK", probe="temp:1")
    asset(conn, "CHL", "truck_compartment", "store_2_8", parent_asset_id="TRUCK", probe="temp:2")
    device(conn, "rc", "TRUCK", accuracy_c=0.5)
    frz, chl = add_series(conn, "rc", "temp:1"), add_series(conn, "rc", "temp:2")
    frozen_lot = "urn:epc:class:lgtin:6901234.012345.F1"
    chilled_lot = "urn:epc:class:lgtin:6901234.012345.F2"
    lot_on(conn, frozen_lot, "frozen_pack", "FRZ", 1)
    lot_on(conn, chilled_lot, "store_2_8", "CHL", 2)
    add_readings(conn, frz, every(5, 120, -20.0))  # frozen and fine; a chilled class would call it out
    # 5 °C, then 11 °C for 30 min: an excursion of the chilled compartment only.
    add_readings(conn, chl, [(m, 11.0 if 40 <= m <= 70 else 5.0) for m, _ in every(5, 120, 0.0)])
    worker = RulesWorker(db_url, packs_dir)
    try:
        drain(worker)
    finally:
        worker.close()
    rows = conn.execute("SELECT series_id, asset_id, product_class, rule_id FROM excursion").fetchall()
    assert rows == [(chl, "CHL", "store_2_8", "evidence_test/store_2_8/range")]
    assert last_lot_verdict(conn, frozen_lot)[0] == "pass"
    result, reasons = last_lot_verdict(conn, chilled_lot)
    assert result == "excursion"
    assert all(f"series {chl}:" in r for r in reasons)
    # Each compartment's gaps are its own probe's, at the road interval.
    assert gap_rows(conn, "TRUCK") == []


def test_a_compartment_probe_does_not_cover_the_vehicle_gaps(
    db_url: str, conn: Conn, packs_dir: Path
) -> None:
    asset(conn, "TRUCK", "reefer_truck", "store_2_8")
    asset(conn, "FRZ", "truck_compartment", "frozen_pack", parent_asset_id="TRUCK", probe="temp:2")
    device(conn, "rc", "TRUCK", accuracy_c=0.5)
    own, comp = add_series(conn, "rc", "temp:1"), add_series(conn, "rc", "temp:2")
    # The vehicle's own probe is silent from minute 30 to 60; the compartment's reports throughout.
    add_readings(conn, own, [(m, 5.0) for m, _ in every(5, 120, 0.0) if not 30 < m < 60])
    add_readings(conn, comp, every(5, 120, -20.0))
    worker = RulesWorker(db_url, packs_dir)
    try:
        drain(worker)
    finally:
        worker.close()
    rows = conn.execute(
        "SELECT series_id, asset_id, start_time, end_time FROM chain_break WHERE kind = 'gap'"
    ).fetchall()
    assert rows == [(own, "TRUCK", at(30), at(60))]


# -- the offline check ---------------------------------------------------------------------------------------


def test_rules_check_judges_the_mode_interval_and_the_rh_column(tmp_path: Path, packs_dir: Path) -> None:
    start_ms = int(T0.timestamp()) * 1000

    def check(rh: float, mode: str) -> tuple[int, str]:
        lines = ["time,temp_c,rh"] + [f"{start_ms + m * 900_000},5.0,{rh}" for m in range(9)]  # every 15 min
        path = tmp_path / "logger.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        args = [
            "rules",
            "check",
            str(path),
            "--class",
            "store_2_8",
            "--mode",
            mode,
            "--packs-dir",
            str(packs_dir),
        ]
        res = CliRunner().invoke(app, args)
        return res.exit_code, res.stdout

    assert check(50.0, "rail")[1].split(": ")[1].startswith("PASS")
    code, out = check(50.0, "road")  # 15 min between records: beyond the road's 10 min
    assert code == 0
    assert "BROKEN" in out
    assert "(allowed 600 s in road)" in out
    code, out = check(80.0, "sea")
    assert code == 0
    assert "EXCURSION" in out
    assert "humidity above 75.0 %RH for 7200 s (peak 80.0 %RH)" in out
    assert (
        CliRunner()
        .invoke(app, ["rules", "check", "x.csv", "--class", "store_2_8", "--mode", "air"])
        .exit_code
        == 2
    )


_RH = st.one_of(st.floats(0.0, 100.0), st.just(math.nan), st.sampled_from([35.0, 75.0]))


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.integers(1, 600_000), min_size=0, max_size=40),
    values=st.lists(_RH, min_size=40, max_size=40),
    low=st.one_of(st.none(), st.just(35.0)),
    high=st.one_of(st.none(), st.just(75.0)),
    min_ms=st.integers(0, 1_800_000),
)
def test_humidity_runs_match_an_oracle(
    steps: list[int], values: list[float], low: float | None, high: float | None, min_ms: int
) -> None:
    """Runs of consecutive non-NaN readings outside [low, high] (bounds inside), NaN neither ending nor
    extending a run, kept when last - first >= min_ms; the peak the value furthest outside."""
    if low is None and high is None:
        high = 75.0
    t = np.cumsum(np.array([0, *steps], dtype=np.int64))
    v = np.array(values[: t.shape[0]], dtype=np.float64)
    limits = Humidity(low_pct=low, high_pct=high, source="test")
    lo, hi = (-math.inf if low is None else low), (math.inf if high is None else high)
    want: list[tuple[int, int, float]] = []
    run: list[int] = []
    for i in [*(k for k in range(len(v)) if not math.isnan(v[k])), None]:
        if i is not None and not lo <= v[i] <= hi:
            run.append(i)
            continue
        if run and t[run[-1]] - t[run[0]] >= min_ms:
            dist = [max(lo - v[k], v[k] - hi) for k in run]
            want.append((run[0], run[-1], float(v[run[dist.index(max(dist))]])))
        run = []
    assert engine.humidity_runs(t, v, limits, min_ms) == want
