"""Stage 2 (verdicts): geofence crossings of the assets whose devices' positions a run touched.

For every lat/lon series the run's batches (or waiting windows) touched, the assets its device was
mounted on over the window are re-judged: their positions over the window, with the position just before
it and the one just after (a late position changes the crossing at the next one), give the crossings
(`rules.engine.crossings`), which replace those stored for that span. What changed goes to the ledger
through `geofence_outbox` in the same transaction: a new crossing, a moved one (its event corrected) or
a withdrawn one (its event declared wrong); a redelivered batch changes nothing and sends nothing. The
position series are locked (ascending, after the run's other series), then each asset (ascending), so
two workers never judge one asset's crossings at once nor deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
import psycopg
import structlog
from psycopg.types.json import Jsonb

from registry.models import Geofence
from registry.shipments import geofences
from rules import geofence_queries as q
from rules import queries
from rules.engine.crossings import Change, Crossing, Position, crossings, diff
from rules.models import CrossingPayload, iso_utc
from rules.worker.outbox import Touched
from rules.worker.queue import note_waiting

log = structlog.get_logger("rules.geofences")

Conn = psycopg.Connection[tuple[Any, ...]]


def assets_touched(conn: Conn, windows: dict[int, Touched]) -> dict[str, tuple[datetime, datetime]]:
    """Lock the touched position series (ascending) and return, per asset their devices were mounted on,
    the device-time window to re-judge (the union over its devices, clipped to the mounts). A window no
    mount covers in full waits in rules_waiting (reason 'unmounted') until the device's mounts change."""
    found = conn.execute(q.POSITION_SERIES, {"series_ids": sorted(windows)}).fetchall()
    devices: dict[str, list[int]] = {}
    for series_id, device_id, _channel in found:
        conn.execute(queries.LOCK_SERIES, {"series_id": series_id})
        devices.setdefault(device_id, []).append(series_id)
    assets: dict[str, tuple[datetime, datetime]] = {}
    for device_id, series_ids in sorted(devices.items()):
        lo = min(windows[s].t_min for s in series_ids)
        hi = max(windows[s].t_max for s in series_ids)
        mounts = conn.execute(q.DEVICE_MOUNTS, {"device_id": device_id, "t_lo": lo, "t_hi": hi}).fetchall()
        for asset_id, valid_from, valid_to in mounts:
            a_lo = max(lo, valid_from)
            a_hi = hi if valid_to is None else min(hi, valid_to)
            have = assets.get(asset_id)
            assets[asset_id] = (a_lo, a_hi) if have is None else (min(have[0], a_lo), max(have[1], a_hi))
        for series_id in series_ids:
            w = windows[series_id]
            if not covered([(f, t) for _a, f, t in mounts], w.t_min, w.t_max):
                log.warning("rules.waiting", series_id=series_id, device_id=device_id, reason="unmounted")
                note_waiting(conn, series_id, device_id, w, "unmounted")
    return assets


def covered(mounts: Sequence[tuple[datetime, datetime | None]], t_min: datetime, t_max: datetime) -> bool:
    """Whether the mounts' spans ([from, to), to None: still mounted) cover [t_min, t_max]."""
    reach = t_min
    for valid_from, valid_to in sorted(mounts, key=lambda m: m[0]):
        if valid_from > reach:
            return False
        if valid_to is None:
            return True
        reach = max(reach, valid_to)
    return reach > t_max


def judge(conn: Conn, windows: dict[int, Touched], computed_at: datetime) -> int:
    """Re-judge the crossings of every asset the touched position series were on; return how many
    crossings were added, moved or withdrawn (each one geofence_outbox row)."""
    assets = assets_touched(conn, windows)
    if not assets:
        return 0
    fences = geofences(conn)
    if not fences:
        return 0
    changed = 0
    for asset_id, (lo, hi) in sorted(assets.items()):
        conn.execute(q.LOCK_ASSET, {"asset_id": asset_id})
        changed += judge_asset(conn, asset_id, lo, hi, fences, computed_at)
    return changed


def _position(row: Sequence[Any] | None) -> Position | None:
    return None if row is None else Position(row[0], str(row[1]), float(row[2]), float(row[3]))


def judge_asset(
    conn: Conn, asset_id: str, lo: datetime, hi: datetime, fences: Sequence[Geofence], computed_at: datetime
) -> int:
    """Re-judge the asset's crossings over [lo, hi] (under its lock): store what changed and hand it to
    the ledger; return the number of changes."""
    params = {"asset_id": asset_id, "t_lo": lo, "t_hi": hi}
    inside = [_position(r) for r in conn.execute(q.POSITIONS_IN, params).fetchall()]
    before = _position(conn.execute(q.POSITION_BEFORE, {"asset_id": asset_id, "t": lo}).fetchone())
    after = _position(conn.execute(q.POSITION_AFTER, {"asset_id": asset_id, "t": hi}).fetchone())
    positions = [p for p in (before, *inside, after) if p is not None]
    judged = crossings(positions, fences)
    # The span whose crossings the positions judged: after the position before the window (it crosses
    # nothing here) up to the position after it.
    span_lo = None if before is None else before.t
    span_hi = hi if after is None else after.t
    stored = [
        Crossing(str(loc), direction, t, str(dev), float(lat), float(lon))
        for loc, direction, t, dev, lat, lon in conn.execute(
            q.STORED, {"asset_id": asset_id, "t_lo": span_lo, "t_hi": span_hi}
        ).fetchall()
    ]
    change = diff(stored, judged)
    if change:
        _apply(conn, asset_id, change, lo, hi, computed_at)
        log.info(
            "rules.geofence_crossings",
            asset_id=asset_id,
            added=len(change.added),
            moved=len(change.moved),
            withdrawn=len(change.withdrawn),
        )
    return len(change.added) + len(change.moved) + len(change.withdrawn)


def late_reason(lo: datetime, hi: datetime) -> str:
    """Why a crossing the ledger holds changed: the positions that arrived late."""
    return f"positions with device time {iso_utc(lo)} to {iso_utc(hi)} arrived after the crossing was judged"


def _apply(
    conn: Conn, asset_id: str, change: Change, lo: datetime, hi: datetime, computed_at: datetime
) -> None:
    """Replace the stored crossings that changed and write one outbox row per change."""
    reason = late_reason(lo, hi)
    for old in [*change.withdrawn, *(old for old, _new in change.moved)]:
        conn.execute(q.DELETE, {"asset_id": asset_id, **_row(old)})
    for new in [*change.added, *(new for _old, new in change.moved)]:
        conn.execute(q.INSERT, {"asset_id": asset_id, **_row(new)})
    payloads = [_payload(asset_id, c, computed_at) for c in change.added]
    payloads += [
        _payload(asset_id, new, computed_at, corrects=old, reason=reason) for old, new in change.moved
    ]
    payloads += [
        _payload(asset_id, old, computed_at, withdrawn=True, reason=reason) for old in change.withdrawn
    ]
    for payload in sorted(payloads, key=lambda p: (p.at, p.location_id, p.crossing)):
        conn.execute(q.OUTBOX, {"payload": Jsonb(msgspec.to_builtins(payload))})


def _row(c: Crossing) -> dict[str, Any]:
    return {
        "location_id": c.location_id,
        "direction": c.direction,
        "crossed_at": c.t,
        "device_id": c.device_id,
        "lat": c.lat,
        "lon": c.lon,
    }


def _payload(
    asset_id: str,
    c: Crossing,
    computed_at: datetime,
    *,
    corrects: Crossing | None = None,
    withdrawn: bool = False,
    reason: str | None = None,
) -> CrossingPayload:
    return CrossingPayload(
        crossing=c.direction,
        asset_id=asset_id,
        location_id=c.location_id,
        at=iso_utc(c.t),
        device_id=c.device_id,
        lat=c.lat,
        lon=c.lon,
        corrects=None if corrects is None else iso_utc(corrects.t),
        withdrawn=withdrawn,
        reason=reason,
        computed_at=iso_utc(computed_at),
    )
