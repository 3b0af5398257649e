"""Composition root: the readings bench: a 30-day leg at 1-minute data downsampled for its chart.

``measure_leg_downsample`` puts a reefer container with one probe logging every minute for 30 days
(43 200 readings, a warm excursion every day, a few dropouts) into a migrated database, through the
registry's store and the gateway's binary COPY writer, then times ``traceability.readings.asset_readings``
over the 30 days at 2 000 points (the issue's target: < 50 ms), after one untimed warm-up call.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

DAYS = 30
MINUTE_MS = 60_000
READINGS = DAYS * 24 * 60
MAX_POINTS = 2_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _series_values(rng: np.random.Generator) -> np.ndarray[Any, np.dtype[np.float64]]:
    """2 °C ± 0.3 with a 40-minute rise to 9 °C every day and one dropout in 500 readings."""
    v = 2.0 + rng.normal(0.0, 0.3, READINGS)
    minute = np.arange(READINGS)
    v[(minute % 1440 >= 600) & (minute % 1440 < 640)] = 9.0
    v[rng.random(READINGS) < 0.002] = np.nan
    return v


def seed_leg(conn: psycopg.Connection[Any]) -> str:
    """The bench's asset, device, mount, series and 43 200 readings; returns the asset id."""
    from gateway.queries import COPY_READING
    from gateway.store import COPY_HEADER, COPY_TRAILER, reading_copy_rows
    from registry.models import Asset, Device, Mount
    from registry.store import add_assets, add_devices, add_mounts, ensure_series

    tag = uuid.uuid4().hex[:8]
    asset_id, device_id = f"BENCH-READINGS-{tag}", f"bench-readings-{tag}"
    add_assets(conn, [Asset(asset_id, "reefer_container", f"Bench reefer {tag}")])
    add_devices(conn, [Device(device_id, "reefer_controller")])
    add_mounts(conn, [Mount(device_id, asset_id, T0 - timedelta(days=1))])
    series_id = ensure_series(conn, [(device_id, "temp:1")])[(device_id, "temp:1")]
    t_ms = int(T0.timestamp() * 1000) + np.arange(READINGS, dtype=np.int64) * MINUTE_MS
    value = _series_values(np.random.default_rng(14))
    rows = reading_copy_rows(
        t_ms,
        np.full(READINGS, series_id, dtype=np.int64),
        value,
        t_ms,
        np.zeros(READINGS, dtype=np.int16),
    )
    with conn.cursor() as cur, cur.copy(COPY_READING) as copy:
        copy.write(COPY_HEADER + rows + COPY_TRAILER)
    conn.execute("ANALYZE reading")
    conn.commit()
    return asset_id


def measure_leg_downsample(conninfo: str, *, repeats: int = 20) -> dict[str, Any]:
    """p50 / p95 ms of ``asset_readings`` over a 30-day, 1-minute leg at 2 000 points in the (migrated)
    database at ``conninfo``; its rows stay there (the trace bench's database is dropped whole). Also the
    p50 of ``downsample`` alone on the same arrays, to tell the kernel from the read."""
    from traceability.readings import asset_readings, downsample

    with psycopg.connect(conninfo) as conn:
        asset_id = seed_leg(conn)
        t_to = T0 + timedelta(days=DAYS)
        warm = asset_readings(conn, asset_id, T0, t_to, MAX_POINTS)
        assert warm is not None
        assert len(warm.temperature) == 1
        timings = []
        for _ in range(repeats):
            t = time.perf_counter()
            found = asset_readings(conn, asset_id, T0, t_to, MAX_POINTS)
            timings.append((time.perf_counter() - t) * 1000)
        assert found is not None
        series = found.temperature[0]
        conn.rollback()
    t_ms = int(T0.timestamp() * 1000) + np.arange(READINGS, dtype=np.int64) * MINUTE_MS
    value = _series_values(np.random.default_rng(14))
    kernel = []
    for _ in range(repeats):
        t = time.perf_counter()
        downsample(t_ms, value, MAX_POINTS)
        kernel.append((time.perf_counter() - t) * 1000)
    return {
        "bench": "readings",
        "leg_downsample_p50_ms": round(float(np.percentile(timings, 50)), 2),
        "leg_downsample_p95_ms": round(float(np.percentile(timings, 95)), 2),
        "downsample_kernel_p50_ms": round(float(np.percentile(kernel, 50)), 3),
        "readings": series.readings,
        "points": len(series.points),
        "max_points": MAX_POINTS,
        "repeats": repeats,
    }
