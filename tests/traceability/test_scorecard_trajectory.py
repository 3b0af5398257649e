"""Tests: trajectory anomalies judged in SQL on the hourly position rollups equal a plain-Python oracle over
any hourly track (jumps, impossible speeds, standing still, silence), and hand-built tracks give the
anomalies they were built with."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from traceability.scorecards import queries
from traceability.scorecards.weights import default_weights

T0 = datetime(2026, 10, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
W = default_weights()
Hour = tuple[float, float, float, float]  # lat_lo, lat_hi, lon_lo, lon_hi (the mean: their midpoint)


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(h)))


def oracle(n_hours: int, track: dict[int, Hour]) -> list[tuple[str, int, int]]:
    """(kind, first hour, hour after) of every anomaly, by the definitions in docs/scorecards.md."""
    out: list[tuple[str, int, int]] = []
    reach = W.max_speed_kmh * 1000.0
    prev: tuple[int, float, float] | None = None
    still: list[int] = []
    silent: list[int] = []
    for h in range(n_hours):
        p = track.get(h)
        if p is None:
            if len(still) >= W.still_hours:
                out.append(("standing_still", still[0], still[-1] + 1))
            still = []
            silent.append(h)
            continue
        if len(silent) >= W.silent_hours:
            out.append(("silence", silent[0], silent[-1] + 1))
        silent = []
        lat_lo, lat_hi, lon_lo, lon_hi = p
        lat, lon = (lat_lo + lat_hi) / 2, (lon_lo + lon_hi) / 2
        extent = _distance_m(lat_lo, lon_lo, lat_hi, lon_hi)
        if extent > reach:
            out.append(("position_jump", h, h + 1))
        if prev is not None and _distance_m(prev[1], prev[2], lat, lon) > reach * (h - prev[0]):
            out.append(("impossible_speed", prev[0], h + 1))
        prev = (h, lat, lon)
        if extent <= W.still_m:
            still.append(h)
        else:
            if len(still) >= W.still_hours:
                out.append(("standing_still", still[0], still[-1] + 1))
            still = []
    if len(still) >= W.still_hours:
        out.append(("standing_still", still[0], still[-1] + 1))
    if len(silent) >= W.silent_hours:
        out.append(("silence", silent[0], silent[-1] + 1))
    return sorted(out, key=lambda x: (x[1], x[0]))


def judged(
    conn: psycopg.Connection[Any],
    n_hours: int,
    track: dict[int, Hour],
    parts: list[tuple[int, int]] | None = None,
    spare_device: bool = False,
) -> list[tuple[Any, ...]]:
    """Store the track as one device's hourly lat/lon rollup rows on a new asset; judge it in SQL over
    ``parts`` (hours [a, b); default: the whole track), each part's anomalies in hours from its start.
    ``spare_device``: a second device with position series and no rows is mounted too (the query's
    general path, which merges several series per hour)."""
    asset, device = f"T-{uuid.uuid4().hex[:8]}", f"d-{uuid.uuid4().hex[:8]}"
    conn.execute("INSERT INTO asset (asset_id, kind, name) VALUES (%s, 'reefer_truck', %s)", (asset, asset))
    conn.execute("INSERT INTO device (device_id, kind) VALUES (%s, 'gps_tracker')", (device,))
    conn.execute(
        "INSERT INTO device_mount (device_id, asset_id, valid_from) VALUES (%s, %s, %s)",
        (device, asset, T0 - timedelta(days=1)),
    )
    if spare_device:
        spare = f"d-{uuid.uuid4().hex[:8]}"
        conn.execute("INSERT INTO device (device_id, kind) VALUES (%s, 'gps_tracker')", (spare,))
        conn.execute(
            "INSERT INTO device_mount (device_id, asset_id, valid_from) VALUES (%s, %s, %s)",
            (spare, asset, T0 - timedelta(days=1)),
        )
        for ch in ("lat", "lon"):
            conn.execute("INSERT INTO series (device_id, channel) VALUES (%s, %s)", (spare, ch))
    ids = {}
    for ch in ("lat", "lon"):
        row = conn.execute(
            "INSERT INTO series (device_id, channel) VALUES (%s, %s) RETURNING series_id", (device, ch)
        ).fetchone()
        assert row is not None
        ids[ch] = row[0]
    rows = []
    for h, (lat_lo, lat_hi, lon_lo, lon_hi) in track.items():
        t = T0 + h * HOUR
        for ch, lo, hi in (("lat", lat_lo, lat_hi), ("lon", lon_lo, lon_hi)):
            rows.append((t, ids[ch], lo + hi, lo, hi, (lo + hi) / 2, t, t + timedelta(minutes=59)))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO reading_1h (bucket, series_id, readings, n, sum_c, min_c, max_c, avg_c, minutes,"
            " first_time, last_time, skewed, lag_le_1s, lag_le_5s, lag_le_30s, lag_le_60s, lag_le_300s,"
            " lag_le_3600s) VALUES (%s, %s, 2, 2, %s, %s, %s, %s, 2, %s, %s, 0, 2, 2, 2, 2, 2, 2)",
            rows,
        )
    cuts = parts if parts is not None else [(0, n_hours)]
    params = {
        "pid": list(range(len(cuts))),
        "asset": [asset] * len(cuts),
        "a": [T0 + a * HOUR for a, _ in cuts],
        "b": [T0 + b * HOUR for _, b in cuts],
        "reach_m": W.max_speed_kmh * 1000.0,
        "still_m": W.still_m,
        "still_hours": W.still_hours,
        "silent_hours": W.silent_hours,
    }
    found = conn.execute(queries.TRAJECTORY_ANOMALIES, params).fetchall()
    if parts is not None:
        return sorted(
            (pid, kind, int((a - T0) / HOUR) - cuts[pid][0], int((b - T0) / HOUR) - cuts[pid][0])
            for pid, kind, a, b, _ in found
        )
    out = [(kind, int((a - T0) / HOUR), int((b - T0) / HOUR)) for _, kind, a, b, _ in found]
    return sorted(out, key=lambda x: (x[1], x[0]))


def _at(lat: float, lon: float, spread: float = 0.0) -> Hour:
    return (lat, lat + spread, lon, lon + spread)


@pytest.mark.parametrize(
    ("name", "n", "track", "expected"),
    [
        ("moving steadily", 4, {h: _at(22 + 0.5 * h, 108, 0.4) for h in range(4)}, []),
        ("parked four hours", 4, {h: _at(22, 108) for h in range(4)}, [("standing_still", 0, 4)]),
        ("silent in the middle", 6, {0: _at(22, 108, 0.2), 4: _at(22.5, 108, 0.2), 5: _at(22.6, 108, 0.2)},
         [("silence", 1, 4)]),
        ("a jump inside an hour", 2, {0: _at(22, 108, 0.2), 1: (22.2, 25.0, 108, 108.1)},
         [("impossible_speed", 0, 2), ("position_jump", 1, 2)]),
        ("nothing at all", 5, {}, [("silence", 0, 5)]),
    ],
)  # fmt: skip
def test_hand_built_tracks(
    conn: psycopg.Connection[Any], name: str, n: int, track: dict[int, Hour], expected: list[Any]
) -> None:
    assert judged(conn, n, track) == expected, name
    assert oracle(n, track) == expected, name


_coord = st.floats(21.0, 23.0, allow_nan=False)
_spread = st.sampled_from([0.0, 0.0005, 0.01, 0.5, 2.0])


@st.composite
def tracks(draw: st.DrawFn) -> tuple[int, dict[int, Hour]]:
    n = draw(st.integers(1, 14))
    present = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    track: dict[int, Hour] = {}
    for h, ok in enumerate(present):
        if ok:
            lat, lon, s = draw(_coord), draw(st.floats(107.0, 109.0)), draw(_spread)
            if draw(st.booleans()) and h - 1 in track:  # stay put: standing still runs
                lat, lon, s = track[h - 1][0], track[h - 1][2], 0.0
            track[h] = _at(lat, lon, s)
    return n, track


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=tracks(), spare_device=st.booleans())
def test_sql_equals_the_oracle_on_any_track(
    conn: psycopg.Connection[Any], case: tuple[int, dict[int, Hour]], spare_device: bool
) -> None:
    n, track = case
    assert judged(conn, n, track, spare_device=spare_device) == oracle(n, track)


@st.composite
def cut_tracks(draw: st.DrawFn) -> tuple[int, dict[int, Hour], list[tuple[int, int]]]:
    n, track = draw(tracks())
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        a = draw(st.integers(0, n - 1))
        parts.append((a, draw(st.integers(a + 1, n))))
    return n, track, parts


_FAR = {0: _at(21, 107), 1: _at(23, 109), 2: _at(21, 107)}
_PARKED = {h: _at(22, 108) for h in range(6)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cut_tracks(), spare_device=st.booleans())
@example(
    case=(3, _FAR, [(0, 2), (1, 3)]), spare_device=False
)  # a pair across a part's start is not that part's
@example(
    case=(6, _PARKED, [(0, 4), (2, 6), (1, 3)]), spare_device=False
)  # a still run cut at the edges, kept if long enough
@example(
    case=(6, {0: _at(22, 108, 0.2), 5: _at(22.1, 108, 0.2)}, [(0, 3), (2, 6), (3, 4)]), spare_device=False
)  # silences cut
def test_parts_of_one_track_are_judged_each_on_its_own_hours(
    conn: psycopg.Connection[Any],
    case: tuple[int, dict[int, Hour], list[tuple[int, int]]],
    spare_device: bool,
) -> None:
    """Several parts of one asset's track (apart, touching or overlapping), judged in one query, give
    each part what the oracle finds in that part's hours alone."""
    n, track, parts = case
    expected = sorted(
        (pid, kind, x, y)
        for pid, (a, b) in enumerate(parts)
        for kind, x, y in oracle(b - a, {h - a: p for h, p in track.items() if a <= h < b})
    )
    assert judged(conn, n, track, parts, spare_device) == expected
