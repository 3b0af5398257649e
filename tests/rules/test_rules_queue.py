"""Tests: nothing on the rules queue waits forever or is consumed silently (real worker, real PostgreSQL).

Telemetry that arrives before its device's mount or class waits and is judged when the registry changes;
a batch whose evaluation raises is quarantined with its error and an alarm, and the queue goes on."""

from __future__ import annotations

from typing import Any

from rules_support import Conn, add_asset, add_device, add_readings, add_series, at, drain

from rules.engine import catalog
from rules.worker import RulesWorker, queue


def history(conn: Conn, series_id: int) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT subject_id, verdict FROM verdict_history WHERE subject_id LIKE %s ORDER BY version",
        (f"{series_id}@%",),
    ).fetchall()


def waiting(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT series_id, reason, t_min, t_max FROM rules_waiting ORDER BY 1").fetchall()


def test_telemetry_before_its_mount_and_class_is_judged_when_the_registry_changes(
    conn: Conn, db_url: str
) -> None:
    conn.execute("INSERT INTO device (device_id, kind) VALUES ('early', 'temp_logger')")
    sid = add_series(conn, "early", "temp")
    worker = RulesWorker(db_url)
    try:
        # 20 min at 9 °C from a logger nobody has mounted yet: nothing to judge it against.
        add_readings(conn, sid, [(m, 9.0) for m in range(0, 21)] + [(m, 2.0) for m in range(21, 30)])
        drain(worker)
        assert conn.execute("SELECT count(*) FROM ingest_batch").fetchone() == (0,)
        assert waiting(conn) == [(sid, "unmounted", at(0), at(29))]
        assert history(conn, sid) == []
        assert worker.run_once() == 0  # the registry has not changed: the window is not taken again

        # Mounted on a truck that has no class (and carries no lot): still waiting, for a class now.
        add_asset(conn, "TRUCK-LATE", "reefer_truck", None, "transport")
        conn.execute(
            "INSERT INTO device_mount (device_id, asset_id, valid_from) VALUES ('early', 'TRUCK-LATE', %s)",
            (at(-60),),
        )
        assert worker.run_once() == 1
        assert waiting(conn) == [(sid, "no_class", at(0), at(29))]
        assert worker.run_once() == 0

        # The truck gets its class: the waiting window is judged, its excursion found.
        conn.execute("UPDATE asset SET product_class = 'chilled' WHERE asset_id = 'TRUCK-LATE'")
        assert worker.run_once() == 1
        assert waiting(conn) == []
        assert [h[1] for h in history(conn, sid)] == ["excursion"]
        rows = conn.execute(
            "SELECT start_time, end_time FROM excursion WHERE series_id = %s", (sid,)
        ).fetchall()
        assert rows == [(at(0), at(20))]
    finally:
        worker.close()


def test_a_mount_that_begins_inside_the_window_leaves_the_rest_waiting(conn: Conn, db_url: str) -> None:
    add_asset(conn, "ROOM-1", "cold_room", "chilled", "storage")
    conn.execute("INSERT INTO device (device_id, kind) VALUES ('half', 'temp_logger')")
    conn.execute(
        "INSERT INTO device_mount (device_id, asset_id, valid_from) VALUES ('half', 'ROOM-1', %s)", (at(10),)
    )
    sid = add_series(conn, "half", "temp")
    worker = RulesWorker(db_url)
    try:
        add_readings(conn, sid, [(m, 2.0) for m in range(0, 20)])
        drain(worker)
        assert [h[1] for h in history(conn, sid)] == ["pass"]  # the mounted part is judged now
        assert waiting(conn) == [(sid, "unmounted", at(0), at(19))]
    finally:
        worker.close()


def test_a_batch_that_raises_is_quarantined_with_an_alarm_and_the_queue_goes_on(
    conn: Conn, db_url: str
) -> None:
    add_asset(conn, "TRUCK-P", "reefer_truck", "chilled", "transport")
    add_device(conn, "poison", "TRUCK-P")
    bad = add_series(conn, "poison", "temp")
    add_asset(conn, "TRUCK-Q", "reefer_truck", "chilled", "transport")
    add_device(conn, "fine", "TRUCK-Q")
    good = add_series(conn, "fine", "temp")
    worker = RulesWorker(db_url)
    try:
        add_readings(conn, good, [(m, 2.0) for m in range(0, 10)])
        # A reading no probe can give (+∞ °C) got into the table: judging it raises, every time.
        add_readings(conn, bad, [(0, 2.0), (1, float("inf")), (2, 2.0)])
        add_readings(conn, good, [(m, 2.0) for m in range(10, 20)])
        poison_id = conn.execute(
            "SELECT batch_id FROM ingest_batch WHERE %s = ANY(series_ids)", (bad,)
        ).fetchone()
        assert poison_id is not None
        drain(worker)  # returns: the queue is not blocked
        assert conn.execute("SELECT count(*) FROM ingest_batch").fetchone() == (0,)
        [q] = queue.quarantined(conn)
        assert (q.batch_id, q.series_ids) == (poison_id[0], [bad])
        assert q.error.startswith("ValueError: reading 1: inf °C lies outside")
        assert history(conn, good) == [(f"{good}@TRUCK-Q", "pass")]  # the batches after it were judged
        alarm = conn.execute(
            "SELECT asset_id, kind, severity, state, reason FROM alarm WHERE rule_id = 'rules/quarantine'"
        ).fetchall()
        assert alarm == [
            (
                "TRUCK-P",
                "quarantine",
                "critical",
                "open",
                catalog.quarantined(poison_id[0], "ValueError"),
            )
        ]
        assert worker.metrics.quarantines._value.get() == 1

        # Sent back before the cause is fixed: it raises again and goes back to quarantine, and the
        # telemetry arriving meanwhile is judged.
        assert queue.requeue(conn, poison_id[0])
        add_readings(conn, good, [(m, 2.0) for m in range(20, 30)])
        drain(worker)
        assert [(q.batch_id, q.series_ids) for q in queue.quarantined(conn)] == [(poison_id[0], [bad])]
        assert conn.execute("SELECT count(*) FROM rules_waiting").fetchone() == (0,)
        assert history(conn, good)[-1] == (f"{good}@TRUCK-Q", "pass")
        assert worker.metrics.quarantines._value.get() == 2

        # The cause fixed (the impossible reading removed), the batch goes back and is judged.
        conn.execute("DELETE FROM reading WHERE series_id = %s AND value = 'Infinity'", (bad,))
        assert queue.requeue(conn, poison_id[0])
        assert not queue.requeue(conn, poison_id[0])
        drain(worker)
        assert queue.quarantined(conn) == []
        assert history(conn, bad) == [(f"{bad}@TRUCK-P", "pass")]
    finally:
        worker.close()
