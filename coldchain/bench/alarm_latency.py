"""Composition root: `coldchain bench rules`'s alarm latency: reading committed -> alarm row, under load."""

from __future__ import annotations

import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


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
