"""Alarm latency under a steady load (slow): reading committed -> alarm row, through the real worker.

Twenty trucks each send one reading per device-minute as their own batch (a steady stream as the
gateway commits it); a worker in its own thread polls like `run_forever`. Every truck goes out of range
at a different point; the latency of each alarm is `alarm.opened_at - trigger_committed_at` (the commit
time of the ingest batch that raised it). The p95 is printed for the README; the test asserts that
every alarm was raised and its latency recorded, never a speed.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from rules_support import (
    add_asset,
    add_device,
    add_series,
    at,
)

from rules.worker import RulesWorker

TRUCKS = 20
MINUTES = 40


@pytest.mark.slow
def test_alarm_latency_under_steady_load(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        sids = []
        for k in range(TRUCKS):
            add_asset(conn, f"TRUCK-{k}", "reefer_truck", "chilled", "transport")
            add_device(conn, f"rc-{k}", f"TRUCK-{k}", "reefer_controller")
            sids.append(add_series(conn, f"rc-{k}", "temp:1"))
        stop = threading.Event()
        worker = RulesWorker(db_url)
        worker.start()
        thread = threading.Thread(target=worker.run_forever, args=(stop, 0.05), daemon=True)
        thread.start()
        try:
            for minute in range(MINUTES):
                for k, sid in enumerate(sids):
                    hot = minute >= 5 + (k % 10)  # each truck goes out of range at its own minute
                    with conn.transaction():
                        conn.execute(
                            "INSERT INTO reading (time, series_id, value, received_at)"
                            " VALUES (%s, %s, %s, now())",
                            (at(minute), sid, 9.0 if hot else 2.0),
                        )
                        conn.execute(
                            "INSERT INTO ingest_batch (kind, series_ids, t_min, t_max)"
                            " VALUES ('telemetry', %s, %s, %s)",
                            ([sid], at(minute), at(minute)),
                        )
                time.sleep(0.05)  # ~400 readings/s offered
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if conn.execute("SELECT count(*) FROM ingest_batch").fetchone() == (0,):
                    break
                time.sleep(0.1)
        finally:
            stop.set()
            thread.join(30)
        rows: list[tuple[Any, ...]] = conn.execute(
            "SELECT asset_id, extract(epoch FROM opened_at - trigger_committed_at) * 1000 FROM alarm"
            " WHERE kind = 'excursion' ORDER BY 2"
        ).fetchall()
    assert len(rows) == TRUCKS
    lat = sorted(float(r[1]) for r in rows)
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
    print(f"alarm_latency_ms p50={lat[len(lat) // 2]:.1f} p95={p95:.1f} max={lat[-1]:.1f} n={len(lat)}")
    assert all(x >= 0 for x in lat)
