"""Stage 2 (verdicts): the SQL of geofence crossings: positions, stored crossings, their outbox."""

from __future__ import annotations

from typing import Final

# Position series (lat and lon channels) among those a run touched.
POSITION_SERIES: Final = """
SELECT series_id, device_id, channel
FROM series
WHERE series_id = ANY(%(series_ids)s) AND channel IN ('lat', 'lon')
ORDER BY series_id
"""

# The assets a device was mounted on over [t_lo, t_hi], with the mount's span (its positions are theirs).
DEVICE_MOUNTS: Final = """
SELECT asset_id, valid_from, valid_to FROM device_mount
WHERE device_id = %(device_id)s AND valid_from <= %(t_hi)s AND (valid_to IS NULL OR valid_to > %(t_lo)s)
ORDER BY valid_from
"""

# Serialises the judging of one asset's crossings across workers (taken in asset order, after every
# series lock of the run and before any lot lock).
LOCK_ASSET: Final = "SELECT pg_advisory_xact_lock(hashtext('rules.geofence'), hashtext(%(asset_id)s))"

# An asset's positions: a lat and a lon reading of one device at one device time, of every device while
# mounted on it; dropouts (NULL, NaN) and values off the globe are no position.
_POSITIONS: Final = """
SELECT la.time, m.device_id, la.value, lo.value
FROM device_mount m
JOIN series sa ON sa.device_id = m.device_id AND sa.channel = 'lat'
JOIN series so ON so.device_id = m.device_id AND so.channel = 'lon'
JOIN reading la ON la.series_id = sa.series_id
JOIN reading lo ON lo.series_id = so.series_id AND lo.time = la.time
WHERE m.asset_id = %(asset_id)s
  AND la.time >= m.valid_from AND (m.valid_to IS NULL OR la.time < m.valid_to)
  AND la.value BETWEEN -90 AND 90 AND lo.value BETWEEN -180 AND 180
"""
POSITIONS_IN: Final = (
    _POSITIONS
    + """
  AND la.time BETWEEN %(t_lo)s AND %(t_hi)s
ORDER BY la.time, m.device_id
"""
)
# The latest position before `t` and the first one after it.
POSITION_BEFORE: Final = (
    _POSITIONS
    + """
  AND la.time < %(t)s
ORDER BY la.time DESC, m.device_id DESC
LIMIT 1
"""
)
POSITION_AFTER: Final = (
    _POSITIONS
    + """
  AND la.time > %(t)s
ORDER BY la.time, m.device_id
LIMIT 1
"""
)

# The crossings stored for an asset in (t_lo, t_hi] (t_lo NULL: from the first), locked.
STORED: Final = """
SELECT location_id, direction, crossed_at, device_id, lat, lon FROM geofence_crossing
WHERE asset_id = %(asset_id)s
  AND (%(t_lo)s::timestamptz IS NULL OR crossed_at > %(t_lo)s) AND crossed_at <= %(t_hi)s
ORDER BY crossed_at, location_id
FOR UPDATE
"""

INSERT: Final = """
INSERT INTO geofence_crossing (asset_id, location_id, direction, crossed_at, device_id, lat, lon)
VALUES (%(asset_id)s, %(location_id)s, %(direction)s, %(crossed_at)s, %(device_id)s, %(lat)s, %(lon)s)
"""

DELETE: Final = """
DELETE FROM geofence_crossing
WHERE asset_id = %(asset_id)s AND location_id = %(location_id)s AND direction = %(direction)s
  AND crossed_at = %(crossed_at)s
"""

OUTBOX: Final = "INSERT INTO geofence_outbox (payload) VALUES (%(payload)s)"
