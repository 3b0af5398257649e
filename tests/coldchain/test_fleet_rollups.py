"""Tests: the fleet's scorecard tables written directly equal what the gateway's writer and the rules worker
leave (the bench's `ingest` and `judge`), table by table, and so does the carrier scoreboard."""

from __future__ import annotations

import math
from typing import Any

import psycopg
import pytest

from coldchain.bench.scorecard import START_MS, WRITE_CHUNK, carrier_board, ingest, judge
from coldchain.fleet import period_of, seed_fleet
from coldchain.fleet_rollups import FleetBuildError, build
from firmware_sim.devices import HOUR_MS
from firmware_sim.fleet_world import fleet

# Five carriers (one per fault profile) of two trucks over two days: 28 800 samples, so the bench's
# ingest commits six transactions, two of them holding two devices' messages, and late samples cross a day.
FLEET = fleet(carriers=5, trucks_per_carrier=2, period_ms=48 * HOUR_MS)
# A smaller transaction than the bench's, so transactions end inside devices and days as well.
PER_TX = 1700

_ROLLUP = (
    "bucket, series_id, readings, n, sum_c, min_c, max_c, avg_c, minutes, first_time, last_time, skewed,"
    " lag_max_s, lag_le_1s, lag_le_5s, lag_le_30s, lag_le_60s, lag_le_300s, lag_le_3600s"
)
_TEMP_HOURS_OUT_OF_RANGE = """
SELECT m.* FROM reading_1m m
JOIN series s ON s.series_id = m.series_id AND (s.channel = 'temp' OR s.channel LIKE 'temp:%%')
JOIN device_mount dm ON dm.device_id = s.device_id
JOIN v_asset_scope v ON v.asset_id = dm.asset_id
JOIN reading_1h h ON h.series_id = m.series_id
     AND h.bucket = date_bin(interval '1 hour', m.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00')
WHERE NOT COALESCE(h.min_c >= COALESCE(v.low_c, '-infinity') AND h.max_c <= COALESCE(v.high_c, 'infinity'),
                   false)
ORDER BY m.series_id, m.bucket"""
# Every table the scorecards read (traceability/scorecards/queries.py), in a stable order; columns stamped
# with the time of writing (rule_class.updated_at, geofence_crossing.judged_at, shipment.created_at) are
# left out.
TABLES: dict[str, str] = {
    "series": "SELECT * FROM series ORDER BY series_id",
    "reading_1h": f"SELECT {_ROLLUP} FROM reading_1h ORDER BY series_id, bucket",
    "reading_1d": f"SELECT {_ROLLUP} FROM reading_1d ORDER BY series_id, bucket",
    "reading_1m (hours not wholly in range)": _TEMP_HOURS_OUT_OF_RANGE,
    "device_day": "SELECT * FROM device_day ORDER BY device_id, day",
    "device_day_dead": "SELECT * FROM device_day_dead ORDER BY device_id, day, reason",
    "geofence_crossing": (
        "SELECT asset_id, location_id, direction, crossed_at, device_id, lat, lon FROM geofence_crossing"
        " ORDER BY asset_id, location_id, direction, crossed_at"
    ),
    "lot verdicts": (
        "SELECT subject_id, version, verdict, reasons FROM verdict_history WHERE subject_kind = 'lot'"
        " ORDER BY subject_id, version"
    ),
    "alarm": "SELECT alarm_id, asset_id, series_id, kind, severity, opened_at FROM alarm ORDER BY alarm_id",
    "rule_class": "SELECT product_class, low_c, high_c, transport_max_gap_s FROM rule_class ORDER BY 1",
    "v_asset_scope": "SELECT * FROM v_asset_scope ORDER BY asset_id",
    "device_mount": "SELECT * FROM device_mount ORDER BY device_id, valid_from",
    "shipment": (
        "SELECT shipment_id, shipper_party_id, origin_location_id, destination_location_id, planned_start,"
        " planned_end, closed_at FROM shipment ORDER BY shipment_id"
    ),
    "shipment_leg": "SELECT * FROM shipment_leg ORDER BY shipment_id, leg_no",
    "shipment_lot": "SELECT * FROM shipment_lot ORDER BY shipment_id, lot_id",
    "geofence": "SELECT * FROM geofence ORDER BY location_id",
}
# Sums (and the means made of them) add up in the order the database scans the rows: equal to the last
# bits, which is all this allows.
SUM_COLUMNS = {4, 7}


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def _differences(name: str, got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> list[str]:
    if len(got) != len(want):
        return [f"{name}: {len(got)} rows built, {len(want)} from the pipeline"]
    out = []
    for g, w in zip(got, want, strict=True):
        for i, (a, b) in enumerate(zip(g, w, strict=True)):
            close = (
                name.startswith("reading_")
                and i in SUM_COLUMNS
                and isinstance(a, float)
                and isinstance(b, float)
                and math.isclose(a, b, rel_tol=1e-12)
            )
            if a != b and not close:
                out.append(f"{name}: built {g}, pipeline {w}")
                break
    return out


def _scoreboard(url: str) -> Any:
    start, end = period_of(FLEET, START_MS)
    with psycopg.connect(url) as conn:
        return carrier_board(conn, "2d", start, end)


def test_direct_build_equals_the_pipeline(db_url: str, second_db_url: str) -> None:
    pipeline, direct = db_url, second_db_url
    for url in (pipeline, direct):
        with psycopg.connect(url) as conn:
            seed_fleet(conn, FLEET, START_MS)
            conn.commit()
    counts = ingest(pipeline, FLEET, START_MS, per_transaction=PER_TX)
    judge(pipeline)
    built = build(direct, FLEET, START_MS, messages_per_transaction=PER_TX)

    assert built.readings == counts["readings"]
    assert built.messages == counts["messages"]
    assert built.dead_letters == counts["dead_letters"] > 0
    problems: list[str] = []
    for name, query in TABLES.items():
        want = _rows(pipeline, query)
        if name in ("reading_1h", "reading_1d", "device_day", "geofence_crossing", "series"):
            assert want, f"the pipeline left no {name} rows: nothing compared"
        problems += _differences(name, _rows(direct, query), want)[:5]
    assert not problems, "\n".join(problems)
    assert _scoreboard(direct) == _scoreboard(pipeline)


def test_direct_build_refuses_a_fleet_it_cannot_write(db_url: str) -> None:
    # No registry: no device is mounted, so nothing can be said about its asset.
    with pytest.raises(FleetBuildError, match="not mounted"):
        build(db_url, FLEET, START_MS, messages_per_transaction=WRITE_CHUNK)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM reading_1h").fetchone() == (0,)
