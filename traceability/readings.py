"""Stage 3 (trace): the readings behind a leg's chart: an asset's temperature series over a window,
downsampled without losing a peak, with door / power / defrost markers and the GPS track.

Which readings are a leg's evidence is ``queries.MOUNTED_READINGS`` (what the trace's temperature summary
counts, too): the series that are the asset's evidence (the registry's ``asset_evidence_series``: a
compartment's probe on its vehicle's devices; a vehicle's own devices but its compartments' probes) during
the window, read only while mounted.
They come over packed in one bytea (``queries.ASSET_READINGS``) and are read into numpy arrays without a
Python object per reading; each temperature series is then cut down to at most ``max_points`` by
``downsample`` (each time bucket's minimum and maximum kept, so no peak is ever lost), in numpy (≈ 1 ms
for a 30-day minute series): bucketing in SQL costs the server several times more for the same answer
(the figures are beside ``queries.ASSET_READINGS``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import psycopg
from numpy.typing import NDArray

from traceability import queries
from traceability.readings_model import (
    DEFAULT_MAX_POINTS,
    AssetReadings,
    LegReadings,
    Marker,
    MarkerKind,
    Point,
    SeriesPoints,
    TrackPoint,
)
from traceability.trace_model import CustodyLeg, Trace

Conn = psycopg.Connection[Any]
IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

# -- downsampling (pure) -----------------------------------------------------------------------------------


def bucket_width(t_first: int, t_last: int, buckets: int) -> int:
    """The width of the time buckets ``downsample`` cuts [t_first, t_last] into: the least whole width
    (≥ 1) that makes at most ``buckets`` of them, the first starting at ``t_first``."""
    return max(1, -(-(t_last - t_first + 1) // buckets))


def downsample(t_ms: IntArray, v: FloatArray, max_points: int) -> NDArray[np.intp]:
    """The indices, ascending (so in time order), of the readings a chart of at most ``max_points`` points
    draws: every reading when no more than ``max_points`` have a value, else, in each of ``max_points // 2``
    equal time buckets (``bucket_width``, from the first reading with a value), the first reading at the
    bucket's minimum and the first at its maximum. No peak is lost: each bucket's extremes, hence the
    series' own, are kept. A NaN (dropout) is never drawn. ``t_ms`` must be in ascending order."""
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, not {max_points}")
    valid = np.flatnonzero(~np.isnan(v))
    n = valid.size
    if n <= max_points:
        return valid
    t = t_ms[valid]
    x = v[valid]
    width = bucket_width(int(t[0]), int(t[-1]), max_points // 2)
    bucket = (t - t[0]) // width
    starts = np.flatnonzero(np.diff(bucket, prepend=bucket[0] - 1))
    of_point = np.repeat(np.arange(starts.size), np.diff(starts, append=n))
    position = np.arange(n)
    firsts = [
        np.minimum.reduceat(np.where(x == extreme.reduceat(x, starts)[of_point], position, n), starts)
        for extreme in (np.minimum, np.maximum)
    ]
    kept: NDArray[np.intp] = valid[np.union1d(firsts[0], firsts[1])]
    return kept


def thin(n: int, max_points: int) -> NDArray[np.intp]:
    """At most ``max_points`` indices of ``n`` points, evenly spread, the first and the last always kept
    (a GPS track's line: positions have no peak to keep)."""
    if n <= max_points:
        return np.arange(n)
    picked: NDArray[np.intp] = np.unique(np.linspace(0, n - 1, max_points).round().astype(np.intp))
    return picked


# The marker of a change of a state channel (value 1 = door open / power on), and of a device event.
STATE_MARKERS: Final[dict[str, tuple[MarkerKind, MarkerKind]]] = {
    "door": ("door_closed", "door_open"),
    "power": ("power_off", "power_on"),
}
# The state a chart window may open in unannounced: an open door or a power cut is marked at the window's
# first reading (a closed door, or power on, is the normal state and needs no marker there).
_ABNORMAL: Final[dict[str, int]] = {"door": 1, "power": 0}
EVENT_MARKERS: Final[dict[tuple[str, str], MarkerKind]] = {
    ("door", "open"): "door_open",
    ("door", "closed"): "door_closed",
    ("power", "off"): "power_off",
    ("power", "battery"): "power_off",  # mains lost, running on the battery
    ("power", "on"): "power_on",
    ("defrost", "start"): "defrost_start",
    ("defrost", "end"): "defrost_end",
}


def state_changes(channel: str, v: FloatArray) -> list[tuple[int, MarkerKind]]:
    """(index, marker) of each reading of a 0/1 state channel ('door', 'power') whose state differs from
    the previous reading's (a dropout skipped); the first reading only when it is in the abnormal state."""
    valid = np.flatnonzero(~np.isnan(v))
    if valid.size == 0:
        return []
    state = (v[valid] >= 0.5).astype(np.int8)
    changed = np.flatnonzero(np.diff(state, prepend=np.int8(1 - _ABNORMAL[channel])))
    kinds = STATE_MARKERS[channel]
    return [(int(valid[i]), kinds[int(state[i])]) for i in changed]


# -- reading them --------------------------------------------------------------------------------------------

# A reading as ASSET_READINGS packs it: series, time (µs since 2000-01-01) and value, big-endian.
_READING: Final = np.dtype([("s", ">i8"), ("t", ">i8"), ("v", ">f8")])
_PG_EPOCH_MS: Final = 946_684_800_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _unpack(packed: bytes | None) -> dict[int, tuple[IntArray, FloatArray]]:
    """(t_ms, value) of each series' readings, in time order."""
    if not packed:
        return {}
    rows = np.frombuffer(packed, dtype=_READING)
    order = np.lexsort((rows["t"], rows["s"]))
    series_id = rows["s"][order].astype(np.int64)
    t_ms = rows["t"][order].astype(np.int64) // 1000 + _PG_EPOCH_MS
    v = rows["v"][order].astype(np.float64)
    starts = np.flatnonzero(np.diff(series_id, prepend=series_id[0] - 1))
    ends = np.append(starts[1:], series_id.size)
    return {int(series_id[a]): (t_ms[a:b], v[a:b]) for a, b in zip(starts, ends, strict=True)}


def _time(t_ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=t_ms)


def _aware(t: datetime, name: str) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"{name} must carry its UTC offset")
    return t.astimezone(UTC)


def asset_readings(
    conn: Conn,
    asset_id: str,
    t_from: datetime,
    t_to: datetime,
    max_points: int = DEFAULT_MAX_POINTS,
    seen_by: Mapping[str, str | None] = queries.EVERYTHING,
) -> AssetReadings | None:
    """The chart of ``asset_id`` over [t_from, t_to): its evidence's temperature series (readings while
    mounted only), each downsampled to at most ``max_points`` points, door / power /
    defrost markers, and the GPS track (at most ``max_points`` positions). None when the asset is unknown,
    or not one ``seen_by`` (a scope's parameters) may read."""
    t_from, t_to = _aware(t_from, "t_from"), _aware(t_to, "t_to")
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, not {max_points}")
    if conn.execute(queries.ASSET_VISIBLE, {**seen_by, "asset": asset_id}).fetchone() is None:
        return None
    window = {"asset": asset_id, "t_from": t_from, "t_to": t_to}
    seen = [(a, b) for a, b in conn.execute(queries.ASSET_WINDOWS, {**seen_by, **window}).fetchall()]
    # Only what falls in the windows the reader sees the asset in (a carrier of one leg: that leg's).
    keep = None if seen == [(t_from, t_to)] else _Windows(seen)
    temperature: list[SeriesPoints] = []
    markers: list[Marker] = []
    gps: dict[str, dict[str, tuple[IntArray, FloatArray]]] = {}
    with conn.cursor(binary=True) as cur:
        row = cur.execute(queries.ASSET_READINGS, window).fetchone()
    of_series = _unpack(None if row is None else row[0])
    if keep is not None:
        kept = {sid: keep.arrays(t_ms, v) for sid, (t_ms, v) in of_series.items()}
        of_series = {sid: tv for sid, tv in kept.items() if tv[0].size}
    series_rows = conn.execute(queries.SERIES_OF_IDS, (list(of_series),)).fetchall() if of_series else []
    for series_id, device_id, channel, is_temperature in series_rows:
        t_ms, v = of_series[series_id]
        if is_temperature:
            temperature.append(_series(series_id, device_id, channel, t_ms, v, max_points))
        elif channel in STATE_MARKERS:
            markers.extend(
                Marker(_time(int(t_ms[i])), kind, device_id) for i, kind in state_changes(channel, v)
            )
        else:  # lat, lon
            gps.setdefault(device_id, {})[channel] = (t_ms, v)
    for t, device_id, kind, state in conn.execute(queries.ASSET_DEVICE_EVENTS, window).fetchall():
        found = EVENT_MARKERS.get((kind, state))
        if found is not None and (keep is None or keep.holds(t)):
            markers.append(Marker(t.astimezone(UTC), found, device_id))
    return AssetReadings(
        asset_id=asset_id,
        t_from=t_from,
        t_to=t_to,
        max_points=max_points,
        temperature=temperature,
        markers=sorted(set(markers), key=lambda m: (m.t, m.device_id, m.kind)),
        track=_track(gps.values(), max_points),
    )


class _Windows:
    """Half-open time windows [a, b): which readings and markers fall in one."""

    def __init__(self, windows: Iterable[tuple[datetime, datetime]]) -> None:
        self.windows = [(a, b) for a, b in windows]
        self.ms = [(_ms(a), _ms(b)) for a, b in self.windows]

    def holds(self, t: datetime) -> bool:
        return any(a <= t < b for a, b in self.windows)

    def arrays(self, t_ms: IntArray, v: FloatArray) -> tuple[IntArray, FloatArray]:
        inside = np.zeros(t_ms.shape, dtype=bool)
        for a, b in self.ms:
            inside |= (t_ms >= a) & (t_ms < b)
        return t_ms[inside], v[inside]


def _ms(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(milliseconds=1)


def _series(
    series_id: int, device_id: str, channel: str, t_ms: IntArray, v: FloatArray, max_points: int
) -> SeriesPoints:
    kept = downsample(t_ms, v, max_points)
    readings = int(np.count_nonzero(~np.isnan(v)))
    return SeriesPoints(
        series_id=series_id,
        device_id=device_id,
        channel=channel,
        readings=readings,
        downsampled=kept.size < readings,
        points=[Point(_time(t), x) for t, x in zip(t_ms[kept].tolist(), v[kept].tolist(), strict=True)],
    )


def _track(devices: Iterable[dict[str, tuple[IntArray, FloatArray]]], max_points: int) -> list[TrackPoint]:
    """Positions where a device read latitude and longitude at the same time, in time order, thinned."""
    parts: list[tuple[IntArray, FloatArray, FloatArray]] = []
    for channels in devices:
        if "lat" not in channels or "lon" not in channels:
            continue
        (t_lat, lat), (t_lon, lon) = channels["lat"], channels["lon"]
        t, i, j = np.intersect1d(t_lat, t_lon, assume_unique=True, return_indices=True)
        ok = ~(np.isnan(lat[i]) | np.isnan(lon[j]))
        parts.append((t[ok], lat[i][ok], lon[j][ok]))
    if not parts:
        return []
    t = np.concatenate([p[0] for p in parts])
    lat, lon = np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
    order = np.argsort(t, kind="stable")
    picked = order[thin(order.size, max_points)]
    return [
        TrackPoint(_time(ti), a, o)
        for ti, a, o in zip(t[picked].tolist(), lat[picked].tolist(), lon[picked].tolist(), strict=True)
    ]


def leg_readings(
    conn: Conn, trace: Trace, max_points: int = DEFAULT_MAX_POINTS, *, now: datetime | None = None
) -> list[LegReadings]:
    """The chart readings of each custody leg of the trace, in its order: its asset over [t_start, t_end),
    an open leg up to ``now`` (or just past its last reading, when that is later); None for a leg with no
    asset."""
    at = datetime.now(UTC) if now is None else _aware(now, "now")
    out: list[LegReadings] = []
    for leg in trace.custody:
        if leg.asset is None:
            out.append(LegReadings(leg.leg_id, None))
            continue
        readings = asset_readings(conn, leg.asset.asset_id, leg.t_start, _leg_end(leg, at), max_points)
        out.append(LegReadings(leg.leg_id, readings))
    return out


def _leg_end(leg: CustodyLeg, now: datetime) -> datetime:
    if leg.t_end is not None:
        return leg.t_end
    end = max(now, leg.t_start + timedelta(microseconds=1))
    last = leg.temperature.last_reading
    if last is not None:
        end = max(end, last + timedelta(microseconds=1))
    return end
