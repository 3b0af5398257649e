"""Tests helper, scorecards: a quarter of rollup rows for N trucks written directly (one 20-hour trip per
truck and day, hourly lat/lon and temperature), and the carrier scoreboard timed on it.

Run: python -m tests.traceability.scorecard_load DB_URL TRUCKS [--no-fill] (an empty database is migrated,
then filled; --no-fill times one filled before). Prints one JSON line with the host probe's figures."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import psycopg

from coldchain.bench.app import host_probe
from coldchain.migrate import migrate
from traceability.scorecards import compute
from traceability.scorecards.period import parse_period

CARRIERS = 10

_FILL = [
    "INSERT INTO rule_class (product_class, pack_id, pack_version, description, low_c, high_c, source,"
    " transport_max_gap_s) VALUES ('load-chilled', 'load', '1', 'load', 2, 8, 'load', 60)"
    " ON CONFLICT DO NOTHING",
    "INSERT INTO party (party_id, name, role) SELECT 'C' || c, 'Carrier ' || c, 'carrier'"
    " FROM generate_series(1, %(carriers)s) c",
    "INSERT INTO location (location_id, name, kind, lat, lon) VALUES"
    " ('L-A', 'Depot A', 'cold_store', 31.0, 121.0), ('L-B', 'Depot B', 'cold_store', 32.0, 120.0)",
    "INSERT INTO geofence (location_id, shape, center_lat, center_lon, radius_m) VALUES"
    " ('L-A', 'circle', 31.0, 121.0, 500), ('L-B', 'circle', 32.0, 120.0, 500)",
    "INSERT INTO asset (asset_id, kind, name, operator_party_id, product_class)"
    " SELECT 'T' || t, 'reefer_truck', 'Truck ' || t, 'C' || (t %% %(carriers)s + 1), 'load-chilled'"
    " FROM generate_series(1, %(trucks)s) t",
    "INSERT INTO device (device_id, kind, calibration_due) SELECT 'D' || t, 'temp_logger', '2027-06-30'"
    " FROM generate_series(1, %(trucks)s) t",
    "INSERT INTO device_mount (device_id, asset_id, valid_from) SELECT 'D' || t, 'T' || t, '2026-09-01'"
    " FROM generate_series(1, %(trucks)s) t",
    "INSERT INTO series (device_id, channel) SELECT 'D' || t, ch FROM generate_series(1, %(trucks)s) t,"
    " unnest(ARRAY['temp', 'lat', 'lon']) ch",
    # Temperature: every day and hour of the quarter, 60 readings an hour, all in range.
    "INSERT INTO reading_1d (bucket, series_id, readings, n, sum_c, min_c, max_c, avg_c, minutes, first_time,"
    " last_time, skewed, lag_le_1s, lag_le_5s, lag_le_30s, lag_le_60s, lag_le_300s, lag_le_3600s)"
    " SELECT d, s.series_id, 1440, 1440, 7200, 4, 6, 5, 1440, d, d + interval '1439 minutes', 0,"
    " 1440, 1440, 1440, 1440, 1440, 1440 FROM series s,"
    " generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 day', interval '1 day') d"
    " WHERE s.channel = 'temp'",
    "INSERT INTO reading_1h (bucket, series_id, readings, n, sum_c, min_c, max_c, avg_c, minutes, first_time,"
    " last_time, skewed, lag_le_1s, lag_le_5s, lag_le_30s, lag_le_60s, lag_le_300s, lag_le_3600s)"
    " SELECT h, s.series_id, 60, 60, 300, 4, 6, 5, 60, h, h + interval '59 minutes', 0,"
    " 60, 60, 60, 60, 60, 60"
    " FROM series s, generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 hour',"
    " interval '1 hour') h WHERE s.channel = 'temp'",
    # Positions: hours 02..21 of each day, moving 30 km an hour from A towards B.
    "INSERT INTO reading_1h (bucket, series_id, readings, n, sum_c, min_c, max_c, avg_c, minutes, first_time,"
    " last_time, skewed, lag_le_1s, lag_le_5s, lag_le_30s, lag_le_60s, lag_le_300s, lag_le_3600s)"
    " SELECT h, s.series_id, 60, 60, 60 * v, v - 0.1, v + 0.1, v, 60, h, h + interval '59 minutes', 0,"
    " 60, 60, 60, 60, 60, 60"
    " FROM series s, generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 day',"
    " interval '1 day') d, generate_series(2, 21) k,"
    " LATERAL (SELECT d + k * interval '1 hour' AS h,"
    "   CASE s.channel WHEN 'lat' THEN 31.0 + (k - 2) * 0.05 ELSE 121.0 - (k - 2) * 0.05 END AS v) x"
    " WHERE s.channel IN ('lat', 'lon')",
    "INSERT INTO device_day (device_id, day, received, accepted, dead, readings, seq_missing)"
    " SELECT 'D' || t, d::date, 4320, 4320, 0, 4320, 0 FROM generate_series(1, %(trucks)s) t,"
    " generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 day', interval '1 day') d",
    "INSERT INTO shipment (shipment_id, origin_location_id, destination_location_id, planned_start,"
    " planned_end) SELECT 'S' || t || '-' || to_char(d, 'YYYYMMDD'), 'L-A', 'L-B', d + interval '2 hours',"
    " d + interval '22 hours' FROM generate_series(1, %(trucks)s) t,"
    " generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 day', interval '1 day') d",
    "INSERT INTO shipment_leg (shipment_id, leg_no, mode, carrier_party_id, asset_id)"
    " SELECT s.shipment_id, 1, 'road', a.operator_party_id, a.asset_id FROM shipment s"
    " JOIN asset a ON a.asset_id = 'T' || split_part(substr(s.shipment_id, 2), '-', 1)",
    "INSERT INTO geofence_crossing (asset_id, location_id, direction, crossed_at, device_id, lat, lon)"
    " SELECT l.asset_id, x.loc, x.dir, s.planned_start + x.off, 'D' || substr(l.asset_id, 2), 31, 121"
    " FROM shipment s JOIN shipment_leg l USING (shipment_id),"
    " (VALUES ('L-A', 'exit', interval '10 minutes'), ('L-B', 'enter', interval '19 hours'))"
    " x(loc, dir, off)",
]


def fill(url: str, trucks: int, period: str = "2026Q4") -> None:
    """Migrate the database at ``url`` and write the quarter's rows for ``trucks`` trucks."""
    migrate(url)
    p = parse_period(period)
    params: dict[str, Any] = {"trucks": trucks, "carriers": CARRIERS, "start": p.start, "end": p.end}
    with psycopg.connect(url, autocommit=True) as conn:
        for sql in _FILL:
            conn.execute(sql, params)
        conn.execute("VACUUM ANALYZE")


def timed(url: str, period: str = "2026Q4") -> float:
    """Seconds the whole carrier scoreboard of ``period`` takes."""
    with psycopg.connect(url) as conn:
        t0 = time.perf_counter()
        compute.scoreboard(conn, parse_period(period), "carrier")
        return time.perf_counter() - t0


if __name__ == "__main__":
    db, n = sys.argv[1], int(sys.argv[2])
    if len(sys.argv) < 4 or sys.argv[3] != "--no-fill":
        fill(db, n)
    probe = host_probe()
    took = timed(db)
    print(json.dumps({"trucks": n, "scoreboard_s": round(took, 2), "host": probe()}))
