"""Tests for rules.worker against a real PostgreSQL: verdicts, re-evaluation, outbox, SKIP LOCKED."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import msgspec
import psycopg
import pytest
from rules_support import (
    Conn,
    add_asset,
    add_batch,
    add_device,
    add_readings,
    add_series,
    at,
)

from rules.models import VerdictPayload
from rules.packs import load_packs
from rules.worker import RulesWorker

FOOD_VERSION = load_packs().packs["cn_food"].version


def excursions(conn: Conn, series_id: int) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT start_time, end_time, open, peak_c, readings, rule_id, pack_version, asset_id,"
        " product_class, limit_low_c, limit_high_c FROM excursion WHERE series_id = %s ORDER BY start_time",
        (series_id,),
    ).fetchall()


def gaps(conn: Conn, series_id: int) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT start_time, end_time, allowed_s, rule_id, asset_id, detail->>'mode' FROM chain_break"
        " WHERE kind = 'gap' AND series_id = %s ORDER BY start_time",
        (series_id,),
    ).fetchall()


def outbox(conn: Conn) -> list[tuple[str, dict[str, Any]]]:
    return [(k, p) for k, p in conn.execute("SELECT kind, payload FROM verdict_outbox ORDER BY outbox_id")]


def queue_len(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM ingest_batch").fetchone()
    assert row is not None
    return int(row[0])


def truck(conn: Conn, device: str = "truck-rc", asset: str = "TRUCK-1") -> int:
    add_asset(conn, asset, "reefer_truck", "chilled", "transport")
    add_device(conn, device, asset, "reefer_controller")
    return add_series(conn, device, "temp:1")


def chilled_profile(minutes: Iterable[int]) -> list[tuple[float, float | None]]:
    """2 °C, a 5-min blip to 6 °C at 10..14 (too short), an excursion to 8–9 °C at 30..44."""
    out: list[tuple[float, float | None]] = []
    for m in minutes:
        v: float | None = 2.0
        if 10 <= m <= 14:
            v = 6.0
        elif 30 <= m <= 44:
            v = 9.0 if m == 37 else 8.0
        if m == 40:
            v = None  # a dropout inside the excursion neither ends nor extends it
        out.append((m, v))
    return out


def test_chilled_truck_excursion_and_gap(db_url: str, conn: Conn) -> None:
    sid = truck(conn)
    door = add_series(conn, "truck-rc", "door")
    # Minutes 0..60 and 100..120: a 40-min gap in transport (allowed 10 min).
    add_readings(conn, sid, chilled_profile([*range(61), *range(100, 121)]))
    add_readings(conn, door, [(0, 0.0), (120, 1.0)])
    worker = RulesWorker(db_url)
    try:
        assert worker.run_once() == 2
        assert queue_len(conn) == 0
        [exc] = excursions(conn, sid)
        assert exc == (
            at(30),
            at(44),
            False,
            9.0,
            14,
            "cn_food/chilled/range",
            FOOD_VERSION,
            "TRUCK-1",
            "chilled",
            0.0,
            4.0,
        )
        [gap] = gaps(conn, sid)
        assert gap == (at(60), at(100), 600.0, "cn_food/chilled/gap", "TRUCK-1", "road")
        assert excursions(conn, door) == []

        ob = outbox(conn)
        assert [k for k, _ in ob] == ["excursion_closed", "chain_break"]
        e, g = ob[0][1], ob[1][1]
        msgspec.convert(e, VerdictPayload)  # the payload matches its declared format
        msgspec.convert(g, VerdictPayload)
        assert e["verdict"] == "excursion_closed"
        assert e["kind"] == "excursion"
        assert (e["asset_id"], e["series_id"], e["device_id"], e["channel"]) == (
            "TRUCK-1",
            sid,
            "truck-rc",
            "temp:1",
        )
        assert (e["product_class"], e["rule_id"], e["pack_id"], e["pack_version"]) == (
            "chilled",
            "cn_food/chilled/range",
            "cn_food",
            FOOD_VERSION,
        )
        assert (e["start"], e["end"]) == ("2026-01-01T00:30:00.000Z", "2026-01-01T00:44:00.000Z")
        assert (e["peak_c"], e["min_c"], e["max_c"], e["readings"], e["duration_s"]) == (
            9.0,
            8.0,
            9.0,
            14,
            840.0,
        )
        assert e["mean_c"] == pytest.approx((13 * 8.0 + 9.0) / 14)
        assert (e["limit_low_c"], e["limit_high_c"]) == (0.0, 4.0)
        assert e["limits"]["low_c"] == 0.0
        assert e["limits"]["high_c"] == 4.0
        assert e["limits"]["min_duration_s"] == 600
        assert e["limits"]["max_interval_s"] == 600
        assert "above 4.0" in e["reason"]
        assert (
            e["verdict_id"]
            == f"excursion_closed:cn_food/chilled/range:{sid}:{int(at(30).timestamp() * 1000)}"
        )
        assert g["verdict"] == "chain_break"
        assert g["kind"] == "gap"
        assert g["allowed_s"] == 600.0
        assert (g["start"], g["end"], g["duration_s"], g["peak_c"]) == (
            "2026-01-01T01:00:00.000Z",
            "2026-01-01T01:40:00.000Z",
            2400.0,
            None,
        )
        assert (g["min_c"], g["max_c"], g["readings"]) == (2.0, 2.0, 2)

        # The class limits were published.
        rows = conn.execute(
            "SELECT product_class, low_c, high_c, pack_version FROM rule_class"
            " WHERE pack_id = 'cn_food' ORDER BY 1"
        ).fetchall()
        assert ("chilled", 0.0, 4.0, FOOD_VERSION) in rows
        assert ("frozen", None, -18.0, FOOD_VERSION) in rows
        assert {r[0] for r in rows} == set(load_packs().packs["cn_food"].classes)

        # Nothing queued: nothing done. A redelivered batch re-evaluates to the same verdicts, no new outbox.
        assert worker.run_once() == 0
        add_batch(conn, [sid], 0, 120)
        assert worker.run_once() == 1
        assert len(excursions(conn, sid)) == 1
        assert len(gaps(conn, sid)) == 1
        assert len(outbox(conn)) == 2
    finally:
        worker.close()


def test_frozen_cold_room_open_then_closed(db_url: str, conn: Conn) -> None:
    add_asset(conn, "COLDROOM-1", "cold_room", "frozen", "storage")
    add_device(conn, "room-logger", "COLDROOM-1")
    sid = add_series(conn, "room-logger", "temp")
    # Every 5 min: -20 °C; -15 °C at 60..80 (20 min, at the −15 °C tolerance: an excursion, no band
    # break); nothing 100..145 (55 min > 30 allowed in storage); -16 °C from 170 to the latest reading
    # at 180 (10 min: an excursion, still open).
    minutes = [m for m in range(0, 181, 5) if not 100 <= m <= 145]
    pts: list[tuple[float, float | None]] = [
        (m, -15.0 if 60 <= m <= 80 else -16.0 if m >= 170 else -20.0) for m in minutes
    ]
    add_readings(conn, sid, pts)
    worker = RulesWorker(db_url)
    try:
        assert worker.run_once() == 1
        ex = excursions(conn, sid)
        assert [(r[0], r[1], r[2], r[3], r[4]) for r in ex] == [
            (at(60), at(80), False, -15.0, 5),
            (at(170), at(180), True, -16.0, 3),
        ]
        assert ex[0][9:] == (None, -18.0)
        assert gaps(conn, sid) == [(at(95), at(150), 1800.0, "cn_food/frozen/gap", "COLDROOM-1", "storage")]
        assert [k for k, _ in outbox(conn)] == ["excursion_closed", "chain_break"]  # the open one waits

        # Late data: more -16 °C, then back to -20 °C: the open excursion closes and is emitted once.
        add_readings(conn, sid, [(185, -16.0), (190, -20.0), (195, -20.0)])
        assert worker.run_once() == 1
        ex = excursions(conn, sid)
        assert [(r[0], r[1], r[2], r[4]) for r in ex] == [
            (at(60), at(80), False, 5),
            (at(170), at(185), False, 4),
        ]
        ob = outbox(conn)
        assert [k for k, _ in ob] == ["excursion_closed", "chain_break", "excursion_closed"]
        assert ob[2][1]["end"] == "2026-01-01T03:05:00.000Z"
        assert ob[2][1]["mode"] == "storage"
        assert ob[2][1]["limits"]["max_interval_s"] == 1800

        add_batch(conn, [sid], 0, 195)
        assert worker.run_once() == 1
        assert len(outbox(conn)) == 3
        assert len(excursions(conn, sid)) == 2
    finally:
        worker.close()


def test_late_data_re_evaluates_without_duplicate_outbox(db_url: str, conn: Conn) -> None:
    sid = truck(conn)
    worker = RulesWorker(db_url)
    try:
        # 0..24 and 30..35 (25..29 still in the device's buffer): out of range since 30, only 5 min so
        # far: not yet an excursion.
        add_readings(conn, sid, chilled_profile([*range(25), *range(30, 36)]))
        assert worker.run_once() == 1
        assert excursions(conn, sid) == []
        # 36..50: the excursion 30..44 is complete.
        add_readings(conn, sid, chilled_profile(range(36, 51)))
        assert worker.run_once() == 1
        assert [(r[0], r[1], r[2]) for r in excursions(conn, sid)] == [(at(30), at(44), False)]
        # 100..110 after silence since 50: a chain break.
        add_readings(conn, sid, chilled_profile(range(100, 111)))
        assert worker.run_once() == 1
        assert [(r[0], r[1]) for r in gaps(conn, sid)] == [(at(50), at(100))]
        assert [k for k, _ in outbox(conn)] == ["excursion_closed", "chain_break"]

        # The device uploads its buffer late, out of order: 70..99 first (the gap shrinks to 50..70) ...
        add_readings(conn, sid, [(m, 2.0) for m in range(70, 100)])
        assert worker.run_once() == 1
        assert [(r[0], r[1]) for r in gaps(conn, sid)] == [(at(50), at(70))]
        # ... then 51..69: no gap left at all. The emitted chain break is corrected, then withdrawn.
        add_readings(conn, sid, [(m, 2.0) for m in range(51, 70)])
        assert worker.run_once() == 1
        assert gaps(conn, sid) == []
        kinds = [k for k, _ in outbox(conn)]
        assert kinds == ["excursion_closed", "chain_break", "verdict_correction", "verdict_correction"]
        shrunk, gone = (p for k, p in outbox(conn)[2:])
        assert shrunk["replacement"]["end"] == "2026-01-01T01:10:00.000Z"
        assert gone["replacement"] is None
        assert gone["withdrawn"]["verdict_id"] == shrunk["replacement"]["verdict_id"]

        # The buffered 25..29 arrive last, out of range too: the excursion now starts at 25. Its row is
        # replaced and so is the verdict the ledger holds (a correction); nothing is emitted twice.
        add_readings(conn, sid, [(m, 7.0) for m in range(25, 30)])
        assert worker.run_once() == 1
        ex = excursions(conn, sid)
        assert [(r[0], r[1], r[2], r[4]) for r in ex] == [(at(25), at(44), False, 19)]
        rows = outbox(conn)
        assert [k for k, _ in rows][4:] == ["verdict_correction"]
        assert rows[4][1]["declared"] == [rows[0][1]["verdict_id"]]
        assert rows[4][1]["replacement"]["start"] == "2026-01-01T00:25:00.000Z"
        conn.execute(  # the window judged again (a redelivered batch): nothing new for the ledger
            "INSERT INTO ingest_batch (kind, series_ids, t_min, t_max) VALUES ('telemetry', %s, %s, %s)",
            ([sid], at(0), at(110)),
        )
        assert worker.run_once() == 1
        assert len(outbox(conn)) == 5
    finally:
        worker.close()


def test_mount_change_splits_evaluation_by_asset(db_url: str, conn: Conn) -> None:
    add_asset(conn, "ROOM-A", "cold_room", "chilled", "storage")
    add_asset(conn, "TRUCK-B", "reefer_truck", "frozen", "transport")
    conn.execute("INSERT INTO device (device_id, kind) VALUES ('mover', 'temp_logger')")
    conn.execute(
        "INSERT INTO device_mount (device_id, asset_id, valid_from, valid_to) VALUES"
        " ('mover', 'ROOM-A', %s, %s), ('mover', 'TRUCK-B', %s, NULL)",
        (at(-60), at(60), at(60)),
    )
    sid = add_series(conn, "mover", "temp")
    # 2 °C in the chilled room (0..59): fine; -16 °C in the frozen truck (60..90): an excursion above
    # −18 °C within the −15 °C tolerance, still open at the latest reading.
    add_readings(conn, sid, [(m, 2.0 if m < 60 else -16.0) for m in range(0, 91)])
    worker = RulesWorker(db_url)
    try:
        assert worker.run_once() == 1
        ex = excursions(conn, sid)
        assert [(r[0], r[1], r[2], r[7], r[8]) for r in ex] == [(at(60), at(90), True, "TRUCK-B", "frozen")]
        assert gaps(conn, sid) == []
        assert outbox(conn) == []
    finally:
        worker.close()


def test_skip_locked_batches_are_left_to_their_holder(db_url: str, conn: Conn) -> None:
    a = truck(conn, "truck-a", "TRUCK-A")
    b = truck(conn, "truck-b", "TRUCK-B")
    add_readings(conn, a, chilled_profile(range(61)))
    add_readings(conn, b, chilled_profile(range(61)))
    worker = RulesWorker(db_url)
    try:
        with psycopg.connect(db_url) as holder:  # another worker, mid-transaction on the first row
            row = holder.execute(
                "SELECT batch_id FROM ingest_batch ORDER BY batch_id LIMIT 1 FOR UPDATE SKIP LOCKED"
            ).fetchone()
            assert row is not None
            held = row[0]
            assert worker.run_once() == 1  # takes only the row nobody holds
            assert worker.run_once() == 0
            assert [r[0] for r in conn.execute("SELECT batch_id FROM ingest_batch")] == [held]
            assert excursions(conn, a) == []
            assert len(excursions(conn, b)) == 1
            holder.rollback()
        assert worker.run_once() == 1
        assert len(excursions(conn, a)) == 1
        assert [k for k, _ in outbox(conn)] == ["excursion_closed", "excursion_closed"]
    finally:
        worker.close()


def test_two_workers_share_the_queue(db_url: str, conn: Conn) -> None:
    sids = [truck(conn, f"truck-{i}", f"TRUCK-{i}") for i in range(3)]
    # Six batches over three series, several per series, so both workers meet on the same series.
    for sid in sids:
        add_readings(conn, sid, chilled_profile(range(31)))
        add_readings(conn, sid, chilled_profile(range(31, 61)))
    workers = [RulesWorker(db_url, batch_limit=1) for _ in range(2)]
    for w in workers:
        w.start()  # compile and publish before the race
    counts = [0, 0]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def drain(i: int) -> None:
        try:
            barrier.wait()
            while (n := workers[i].run_once()) > 0:
                counts[i] += n
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in workers:
        w.close()
    assert errors == []
    assert sum(counts) == 6  # every row consumed exactly once across both workers
    assert queue_len(conn) == 0
    for sid in sids:
        assert [(r[0], r[1]) for r in excursions(conn, sid)] == [(at(30), at(44))]
    ids = [p["verdict_id"] for _, p in outbox(conn)]
    assert len(ids) == 3
    assert len(set(ids)) == 3


def test_run_forever_stops(db_url: str, conn: Conn) -> None:
    sid = truck(conn)
    add_readings(conn, sid, chilled_profile(range(61)))
    worker = RulesWorker(db_url)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), kwargs={"poll_s": 0.05})
    thread.start()
    # Wait (bounded) for the queue to drain, then stop.
    for _ in range(200):
        if queue_len(conn) == 0:
            break
        threading.Event().wait(0.05)
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert queue_len(conn) == 0
    assert len(excursions(conn, sid)) == 1


def test_rule_class_publishes_the_packs_recording_intervals(db_url: str, conn: Conn) -> None:
    """rule_class carries each class's allowed recording interval as its pack states it (the trace
    reads these): a 2–8 °C drug in Drug GSP, 30 min in storage and 5 min in transport."""
    worker = RulesWorker(db_url)
    try:
        assert worker.sync_classes() == len(list(worker.packs.classes()))
        rows = dict(
            (r[0], (r[1], r[2]))
            for r in conn.execute(
                "SELECT product_class, storage_max_gap_s, transport_max_gap_s FROM rule_class"
            ).fetchall()
        )
        assert rows["pharma_2_8"] == (1800.0, 300.0)
        for ref in worker.packs.classes():
            want = (
                float(ref.rules.max_interval.storage.seconds),
                float(ref.rules.max_interval.transport.seconds),
            )
            assert rows[ref.code] == want, ref.code
    finally:
        worker.close()
