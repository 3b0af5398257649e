"""Stage 3, scorecards: the SQL the indicators read: registry windows, the readings' rollups (reading_1d,
reading_1h, reading_1m), the gateway's per device-day counters, verdicts, crossings and alarms."""

from __future__ import annotations

from typing import Final

# Temperature series (one truth: traceability.queries.TEMPERATURE_SERIES, same predicate).
_TEMP: Final = "(s.channel = 'temp' OR s.channel LIKE 'temp:%%')"

# Every mount overlapping the period, clipped to it, with its asset's allowed recording interval, transport
# mode and class limits (dashboards' v_asset_scope: the one place those are resolved per asset), its
# carrier and site, the device's calibration and how many temperature series it has.
MOUNT_WINDOWS: Final = (
    """
SELECT m.device_id, m.asset_id, v.asset_name,
       GREATEST(m.valid_from, %(start)s) AS w_start,
       LEAST(COALESCE(m.valid_to, 'infinity'), %(end)s) AS w_end,
       v.allowed_s, COALESCE(v.transport_mode, 'transport') AS tmode, v.low_c, v.high_c,
       v.product_class, v.carrier_id, v.site_id, d.calibration_due, d.status,
       (SELECT count(*) FROM series s WHERE s.device_id = m.device_id AND """
    + _TEMP
    + """) AS temp_series
FROM device_mount m
JOIN device d USING (device_id)
JOIN v_asset_scope v USING (asset_id)
WHERE m.valid_from < %(end)s AND COALESCE(m.valid_to, 'infinity') > %(start)s
ORDER BY m.device_id, m.valid_from"""
)

# Readings of the temperature series of each part's device in [a, b): `src` 'd' reads reading_1d, 'h'
# reading_1h (the caller splits a window into whole days and the hours at its edges).
PART_READINGS: Final = (
    """
WITH p AS (
    SELECT * FROM unnest(%(pid)s::int[], %(dev)s::text[], %(src)s::text[], %(a)s::timestamptz[],
                         %(b)s::timestamptz[]) AS u(pid, device_id, src, a, b)
), r AS (
    SELECT p.pid, r.readings, r.lag_le_60s, r.lag_le_300s, r.lag_le_3600s
    FROM p JOIN series s ON s.device_id = p.device_id AND """
    + _TEMP
    + """
    JOIN reading_1d r ON p.src = 'd' AND r.series_id = s.series_id AND r.bucket >= p.a AND r.bucket < p.b
    UNION ALL
    SELECT p.pid, r.readings, r.lag_le_60s, r.lag_le_300s, r.lag_le_3600s
    FROM p JOIN series s ON s.device_id = p.device_id AND """
    + _TEMP
    + """
    JOIN reading_1h r ON p.src = 'h' AND r.series_id = s.series_id AND r.bucket >= p.a AND r.bucket < p.b
)
SELECT pid, sum(readings), sum(lag_le_60s), sum(lag_le_300s), sum(lag_le_3600s) FROM r GROUP BY pid"""
)

# Minutes with a temperature value, and of those the minutes in [low, high] (inclusive; NULL: no limit on
# that side), per part: a day or hour bucket wholly in range counts whole, one that is not is taken apart
# into its hours, then its minutes (reading_1m), so only the buckets holding an excursion are read finer.
PART_IN_RANGE: Final = (
    """
WITH p AS (
    SELECT * FROM unnest(%(pid)s::int[], %(dev)s::text[], %(src)s::text[], %(a)s::timestamptz[],
                         %(b)s::timestamptz[], %(low)s::float8[], %(high)s::float8[])
             AS u(pid, device_id, src, a, b, low, high)
), ser AS (
    SELECT p.*, s.series_id FROM p JOIN series s ON s.device_id = p.device_id AND """
    + _TEMP
    + """
), d AS (
    SELECT ser.pid, ser.series_id, ser.low, ser.high, r.bucket, r.minutes,
           COALESCE(r.min_c >= COALESCE(ser.low, '-infinity') AND r.max_c <= COALESCE(ser.high, 'infinity'),
                    false) AS ok
    FROM ser JOIN reading_1d r ON ser.src = 'd' AND r.series_id = ser.series_id
         AND r.bucket >= ser.a AND r.bucket < ser.b
), h AS (
    SELECT ser.pid, ser.series_id, ser.low, ser.high, r.bucket, r.minutes, true AS counted,
           COALESCE(r.min_c >= COALESCE(ser.low, '-infinity') AND r.max_c <= COALESCE(ser.high, 'infinity'),
                    false) AS ok
    FROM ser JOIN reading_1h r ON ser.src = 'h' AND r.series_id = ser.series_id
         AND r.bucket >= ser.a AND r.bucket < ser.b
    UNION ALL
    SELECT d.pid, d.series_id, d.low, d.high, r.bucket, r.minutes, false,
           COALESCE(r.min_c >= COALESCE(d.low, '-infinity') AND r.max_c <= COALESCE(d.high, 'infinity'),
                    false)
    FROM d JOIN reading_1h r ON NOT d.ok AND r.series_id = d.series_id
         AND r.bucket >= d.bucket AND r.bucket < d.bucket + interval '1 day'
), m AS (
    SELECT h.pid, r.minutes
    FROM h JOIN reading_1m r ON NOT h.ok AND r.series_id = h.series_id
         AND r.bucket >= h.bucket AND r.bucket < h.bucket + interval '1 hour'
    WHERE r.min_c >= COALESCE(h.low, '-infinity') AND r.max_c <= COALESCE(h.high, 'infinity')
)
SELECT pid, sum(monitored), sum(in_range) FROM (
    SELECT pid, minutes AS monitored, CASE WHEN ok THEN minutes ELSE 0 END AS in_range FROM d
    UNION ALL
    SELECT pid, CASE WHEN counted THEN minutes ELSE 0 END, CASE WHEN ok THEN minutes ELSE 0 END FROM h
    UNION ALL
    SELECT pid, 0, minutes FROM m
) x GROUP BY pid"""
)

# The gateway's per device-day counters over the period's days, per device (with the asset it was mounted
# on that day: the latest mount overlapping the day), leaving out the (device, day) pairs exempt from
# conformance (%(cx_*)s) or sequence integrity (%(sx_*)s).
DEVICE_DAYS: Final = """
WITH dd AS (
    SELECT dd.*, (SELECT m.asset_id FROM device_mount m
                  WHERE m.device_id = dd.device_id AND m.valid_from < dd.day + 1
                    AND COALESCE(m.valid_to, 'infinity') > dd.day::timestamptz
                  ORDER BY m.valid_from DESC LIMIT 1) AS asset_id,
           EXISTS (SELECT 1 FROM unnest(%(cx_dev)s::text[], %(cx_day)s::date[]) x(d, day)
                   WHERE x.d = dd.device_id AND x.day = dd.day) AS c_exempt,
           EXISTS (SELECT 1 FROM unnest(%(sx_dev)s::text[], %(sx_day)s::date[]) x(d, day)
                   WHERE x.d = dd.device_id AND x.day = dd.day) AS s_exempt
    FROM device_day dd WHERE dd.day >= %(first)s AND dd.day < %(stop)s
)
SELECT device_id, asset_id,
       COALESCE(sum(received) FILTER (WHERE NOT c_exempt), 0),
       COALESCE(sum(accepted) FILTER (WHERE NOT c_exempt), 0),
       COALESCE(sum(dead) FILTER (WHERE NOT c_exempt), 0),
       COALESCE(sum(readings) FILTER (WHERE NOT s_exempt), 0),
       COALESCE(sum(seq_missing) FILTER (WHERE NOT s_exempt), 0),
       count(*) FILTER (WHERE c_exempt), count(*) FILTER (WHERE s_exempt)
FROM dd GROUP BY device_id, asset_id ORDER BY device_id, asset_id NULLS FIRST"""
DEAD_BY_REASON: Final = """
SELECT device_id, reason, sum(n)
FROM device_day_dead dd
WHERE day >= %(first)s AND day < %(stop)s
  AND NOT EXISTS (SELECT 1 FROM unnest(%(cx_dev)s::text[], %(cx_day)s::date[]) x(d, day)
                  WHERE x.d = dd.device_id AND x.day = dd.day)
GROUP BY device_id, reason ORDER BY device_id, reason"""

# Shipments of the period (planned start, else registration, in [start, end)), with their window, origin and
# destination (and whether each has a geofence), shipper, and the first exit from the origin's geofence and
# first entry into the destination's by any asset of its legs within the planned window (geofence_crossing).
SHIPMENTS: Final = """
WITH s AS (
    SELECT s.shipment_id, s.shipper_party_id, s.origin_location_id, s.destination_location_id,
           s.planned_start, s.planned_end, COALESCE(s.planned_start, s.created_at) AS t_ref,
           ARRAY(SELECT l.asset_id FROM shipment_leg l WHERE l.shipment_id = s.shipment_id
                 AND l.asset_id IS NOT NULL ORDER BY l.leg_no) AS assets,
           ARRAY(SELECT DISTINCT l.carrier_party_id FROM shipment_leg l WHERE l.shipment_id = s.shipment_id
                 AND l.carrier_party_id IS NOT NULL) AS carriers
    FROM shipment s
    WHERE COALESCE(s.planned_start, s.created_at) >= %(start)s
      AND COALESCE(s.planned_start, s.created_at) < %(end)s
)
SELECT s.shipment_id, s.shipper_party_id, s.origin_location_id, s.destination_location_id,
       s.planned_start, s.planned_end, s.t_ref, s.assets, s.carriers,
       EXISTS (SELECT 1 FROM geofence g WHERE g.location_id = s.origin_location_id) AS origin_fenced,
       EXISTS (SELECT 1 FROM geofence g WHERE g.location_id = s.destination_location_id)
           AS destination_fenced,
       (SELECT min(c.crossed_at) FROM geofence_crossing c
        WHERE c.asset_id = ANY(s.assets) AND c.location_id = s.origin_location_id AND c.direction = 'exit'
          AND c.crossed_at >= COALESCE(s.planned_start, '-infinity')
          AND c.crossed_at <= COALESCE(s.planned_end, 'infinity')) AS exit_at,
       (SELECT min(c.crossed_at) FROM geofence_crossing c
        WHERE c.asset_id = ANY(s.assets) AND c.location_id = s.destination_location_id
          AND c.direction = 'enter'
          AND c.crossed_at >= COALESCE(s.planned_start, '-infinity')
          AND c.crossed_at <= COALESCE(s.planned_end, 'infinity')) AS enter_at
FROM s ORDER BY s.shipment_id"""

# The legs of the given shipments with their windows (the leg's, else the shipment's).
LEGS: Final = """
SELECT l.shipment_id, l.leg_no, l.mode, l.carrier_party_id, l.asset_id,
       COALESCE(l.planned_start, s.planned_start) AS t_start, COALESCE(l.planned_end, s.planned_end) AS t_end
FROM shipment_leg l JOIN shipment s USING (shipment_id)
WHERE l.shipment_id = ANY(%s)
ORDER BY l.shipment_id, l.leg_no"""


# Great-circle distance (haversine, mean Earth radius 6 371 008.8 m: IUGG) between two positions, metres.
def _haversine(lat1: str, lon1: str, lat2: str, lon2: str) -> str:
    return (
        f"(2 * 6371008.8 * asin(LEAST(1, sqrt(power(sin(radians({lat2} - {lat1}) / 2), 2)"
        f" + cos(radians({lat1})) * cos(radians({lat2})) * power(sin(radians({lon2} - {lon1}) / 2), 2)))))"
    )


def _track(hours: str) -> str:
    """One asset's position hours (``hours``: bucket, lat_lo, lat_hi, lat, lon_lo, lon_hi, lon) in time
    order, each with the position hour before and after it, keeping only the hours that may hold an
    anomaly (see TRAJECTORY_ANOMALIES), told apart by bounds of the distance, which is at least the
    latitude's arc and at most the latitude's and longitude's arcs together (the exact test follows)."""
    return (
        """
        SELECT y.*, """
        + _haversine("y.lat_lo", "y.lon_lo", "y.lat_hi", "y.lon_hi")
        + """ AS extent_m
        FROM (
            SELECT h.*, lag(h.bucket) OVER w AS prev_bucket, lag(h.lat) OVER w AS prev_lat,
                   lag(h.lon) OVER w AS prev_lon, lead(h.bucket) OVER w AS next_bucket
            FROM ("""
        + hours
        + """
            ) h WINDOW w AS (ORDER BY h.bucket)
        ) y
        WHERE y.prev_bucket IS NULL OR y.next_bucket IS NULL
           OR y.bucket - y.prev_bucket > %(silent_hours)s * interval '1 hour'
           OR 6371008.8 * radians(y.lat_hi - y.lat_lo) <= %(still_m)s
           OR 6371008.8 * radians(y.lat_hi - y.lat_lo + y.lon_hi - y.lon_lo) > %(reach_m)s
           OR 6371008.8 * radians(abs(y.lat - y.prev_lat) + abs(y.lon - y.prev_lon))
              > %(reach_m)s * EXTRACT(EPOCH FROM y.bucket - y.prev_bucket) / 3600"""
    )


# The trajectory anomalies of each part (a leg's asset over [a, b) of a transit, hour-aligned), judged on
# the hourly position rollups (lat and lon of the devices mounted on the asset): a position jump (an hour
# whose extent is beyond what %(reach_m)s covers in an hour), an impossible speed (consecutive hourly mean
# positions farther apart than %(reach_m)s per hour between them), standing still (%(still_hours)s or more
# consecutive hours each within %(still_m)s) and silence (%(silent_hours)s or more consecutive hours
# without a position). One row per anomaly: (pid, kind, from, to, figure: metres, km/h or hours).
# Each asset's track is read once over the span of its parts, in time order, and judged once: its jump
# hours, its pairs of consecutive position hours, its runs of still hours and its silent runs; a part then
# takes what lies inside it (a pair whose both hours are in it; a run cut at its edges, kept when what
# is left is long enough). This equals judging each part's hours on their own, as cutting a run only
# shortens it, and a part's first position hour has no earlier one inside it.
TRAJECTORY_ANOMALIES: Final = (
    """
WITH p AS (
    SELECT * FROM unnest(%(pid)s::int[], %(asset)s::text[], %(a)s::timestamptz[], %(b)s::timestamptz[])
             AS u(pid, asset_id, a, b)
), x AS (
    SELECT asset_id, min(a) AS a, max(b) AS b FROM p GROUP BY asset_id
), ser AS MATERIALIZED (
    -- each asset's position series once: the devices mounted on it, when
    SELECT x.asset_id, s.series_id, s.channel, s.valid_from, s.valid_to
    FROM x CROSS JOIN LATERAL asset_evidence_series(x.asset_id) s
    WHERE s.channel IN ('lat', 'lon')
), k AS (
    -- an asset whose track over its span is one lat and one lon series of one mount (the common case)
    -- has its hours joined in time order; any other has its series' hours merged per hour
    SELECT x.asset_id, x.a, x.b,
           count(*) = 2 AND count(*) FILTER (WHERE s.channel = 'lat') = 1
               AND min(s.valid_from) <= x.a AND COALESCE(max(s.valid_to), 'infinity') >= x.b
               AND min(s.valid_from) = max(s.valid_from) AS single,
           max(s.series_id) FILTER (WHERE s.channel = 'lat') AS lat_id,
           max(s.series_id) FILTER (WHERE s.channel = 'lon') AS lon_id
    FROM x LEFT JOIN ser s USING (asset_id)
    GROUP BY x.asset_id, x.a, x.b
), m AS (
    -- each asset's position hours in time order with the one before and after; only the hours that hold
    -- an anomaly, begin or end a silence, or stand still are kept
    SELECT k.asset_id, t.* FROM k CROSS JOIN LATERAL ("""
    + _track(
        """
        SELECT la.bucket, la.min_c AS lat_lo, la.max_c AS lat_hi, la.sum_c / la.n AS lat,
               lo.min_c AS lon_lo, lo.max_c AS lon_hi, lo.sum_c / lo.n AS lon
        FROM reading_1h la
        JOIN reading_1h lo ON lo.series_id = k.lon_id AND lo.bucket = la.bucket
             AND lo.bucket >= k.a AND lo.bucket < k.b AND lo.n > 0
        WHERE la.series_id = k.lat_id AND la.bucket >= k.a AND la.bucket < k.b AND la.n > 0"""
    )
    + """
    ) t WHERE k.single
    UNION ALL
    SELECT k.asset_id, t.* FROM k CROSS JOIN LATERAL ("""
    + _track(
        """
        SELECT r.bucket,
               min(r.min_c) FILTER (WHERE s.channel = 'lat') AS lat_lo,
               max(r.max_c) FILTER (WHERE s.channel = 'lat') AS lat_hi,
               sum(r.sum_c) FILTER (WHERE s.channel = 'lat')
                   / sum(r.n) FILTER (WHERE s.channel = 'lat') AS lat,
               min(r.min_c) FILTER (WHERE s.channel = 'lon') AS lon_lo,
               max(r.max_c) FILTER (WHERE s.channel = 'lon') AS lon_hi,
               sum(r.sum_c) FILTER (WHERE s.channel = 'lon')
                   / sum(r.n) FILTER (WHERE s.channel = 'lon') AS lon
        FROM ser s
        -- per series, an index range scan of its hours (never a join over every rollup row)
        CROSS JOIN LATERAL (
            SELECT r.bucket, r.min_c, r.max_c, r.sum_c, r.n FROM reading_1h r
            WHERE r.series_id = s.series_id
              AND r.bucket >= GREATEST(k.a, date_bin(interval '1 hour', s.valid_from,
                                                     TIMESTAMPTZ '2000-01-01 00:00:00+00'))
              AND r.bucket < LEAST(k.b, COALESCE(s.valid_to, 'infinity')) AND r.n > 0
            OFFSET 0  -- kept a subquery: the planner would otherwise hash every rollup row
        ) r
        WHERE s.asset_id = k.asset_id
        GROUP BY r.bucket
        HAVING count(*) FILTER (WHERE s.channel = 'lat') > 0
           AND count(*) FILTER (WHERE s.channel = 'lon') > 0"""
    )
    + """
    ) t WHERE NOT k.single
), found AS (
    -- per asset: jump hours, pairs too far apart, runs of still hours, silent runs (before the first
    -- position hour, between two, after the last; a track with none is silent all along)
    SELECT asset_id, 'position_jump' AS kind, bucket AS t_from, bucket + interval '1 hour' AS t_to,
           extent_m AS figure, NULL::timestamptz AS pair_from
    FROM m WHERE extent_m > %(reach_m)s
    UNION ALL
    SELECT asset_id, 'impossible_speed', prev_bucket, bucket + interval '1 hour',
           """
    + _haversine("prev_lat", "prev_lon", "lat", "lon")
    + """ / 1000 / (EXTRACT(EPOCH FROM bucket - prev_bucket) / 3600), prev_bucket
    FROM m WHERE prev_bucket IS NOT NULL
      AND """
    + _haversine("prev_lat", "prev_lon", "lat", "lon")
    + """ > %(reach_m)s * EXTRACT(EPOCH FROM bucket - prev_bucket) / 3600
    UNION ALL
    SELECT asset_id, 'standing_still', min(bucket), max(bucket) + interval '1 hour', NULL, NULL
    FROM (SELECT asset_id, bucket,
                 bucket - (row_number() OVER (PARTITION BY asset_id ORDER BY bucket)) * interval '1 hour'
                     AS island
          FROM m WHERE extent_m <= %(still_m)s) still
    GROUP BY asset_id, island HAVING count(*) >= %(still_hours)s
    UNION ALL
    SELECT m.asset_id, 'silence', COALESCE(m.prev_bucket + interval '1 hour', k.a), m.bucket, NULL, NULL
    FROM m JOIN k USING (asset_id)
    WHERE m.bucket - COALESCE(m.prev_bucket + interval '1 hour', k.a) >= %(silent_hours)s * interval '1 hour'
    UNION ALL
    SELECT m.asset_id, 'silence', m.bucket + interval '1 hour', k.b, NULL, NULL
    FROM m JOIN k USING (asset_id)
    WHERE m.next_bucket IS NULL
      AND k.b - (m.bucket + interval '1 hour') >= %(silent_hours)s * interval '1 hour'
    UNION ALL
    SELECT k.asset_id, 'silence', k.a, k.b, NULL, NULL
    FROM k WHERE NOT EXISTS (SELECT 1 FROM m WHERE m.asset_id = k.asset_id)  -- an asset's first hour is in m
), cut AS (
    SELECT p.pid, f.kind, f.figure,
           CASE WHEN f.kind IN ('standing_still', 'silence') THEN GREATEST(f.t_from, p.a) ELSE f.t_from END
               AS t_from,
           CASE WHEN f.kind IN ('standing_still', 'silence') THEN LEAST(f.t_to, p.b) ELSE f.t_to END AS t_to
    FROM found f JOIN p ON p.asset_id = f.asset_id AND f.t_from < p.b AND f.t_to > p.a
    WHERE CASE f.kind
        WHEN 'position_jump' THEN f.t_from >= p.a
        WHEN 'impossible_speed' THEN f.pair_from >= p.a AND f.t_to <= p.b
        ELSE LEAST(f.t_to, p.b) - GREATEST(f.t_from, p.a)
             >= (CASE f.kind WHEN 'silence' THEN %(silent_hours)s ELSE %(still_hours)s END)
                * interval '1 hour'
    END
)
SELECT pid, kind, t_from, t_to,
       CASE WHEN kind IN ('standing_still', 'silence') THEN EXTRACT(EPOCH FROM t_to - t_from) / 3600
            ELSE figure END AS figure
FROM cut
ORDER BY 1, 3, 2"""
)


# Whether each check's asset has a temperature value in an hour bucket overlapping [a, b) from a device
# mounted on it then: the temperature evidence of a leg or of one side of a handoff.
EVIDENCE: Final = (
    """
WITH p AS (
    SELECT * FROM unnest(%(pid)s::int[], %(asset)s::text[], %(a)s::timestamptz[], %(b)s::timestamptz[])
             AS u(pid, asset_id, a, b)
), ser AS MATERIALIZED (
    -- each asset's temperature series once (not once per check): the devices mounted on it, when
    SELECT x.asset_id, s.series_id, s.valid_from, s.valid_to
    FROM (SELECT DISTINCT asset_id FROM p) x
    CROSS JOIN LATERAL asset_evidence_series(x.asset_id) s
    WHERE """
    + _TEMP
    + """
)
SELECT p.pid FROM p
WHERE EXISTS (
    SELECT 1 FROM ser s
    JOIN reading_1h r ON r.series_id = s.series_id
         AND r.bucket >= date_bin(interval '1 hour', GREATEST(p.a, s.valid_from),
                                  TIMESTAMPTZ '2000-01-01 00:00:00+00')
         AND r.bucket < LEAST(p.b, COALESCE(s.valid_to, 'infinity'))
    WHERE s.asset_id = p.asset_id AND r.n > 0)"""
)

# The lots the given shipments carry, with their owner and latest lot verdict (rules' verdict_history).
LOTS: Final = """
SELECT sl.shipment_id, sl.lot_id, lo.owner_party_id,
       (SELECT h.verdict FROM verdict_history h WHERE h.subject_kind = 'lot' AND h.subject_id = sl.lot_id
        ORDER BY h.version DESC LIMIT 1) AS verdict
FROM shipment_lot sl JOIN lot lo USING (lot_id)
WHERE sl.shipment_id = ANY(%s)
ORDER BY sl.lot_id, sl.shipment_id"""

# Alarms opened in the period, with the asset's carrier and site and the device of the series.
ALARMS: Final = """
SELECT a.alarm_id, a.asset_id, v.carrier_id, v.site_id, s.device_id, a.kind, a.severity, a.opened_at,
       a.acknowledged_at, EXTRACT(EPOCH FROM a.acknowledged_at - a.opened_at)::float8 AS ack_s
FROM alarm a
LEFT JOIN v_asset_scope v USING (asset_id)
LEFT JOIN series s ON s.series_id = a.series_id
WHERE a.opened_at >= %(start)s AND a.opened_at < %(end)s
ORDER BY a.alarm_id"""

# Registered assets that carry or hold goods (a compartment counts through its vehicle, a passive box carries
# no device), with whether a device mounted on them in the period sent anything in it (reading_1d).
ASSETS_LIVE: Final = """
SELECT v.asset_id, v.carrier_id, v.site_id,
       ARRAY(SELECT DISTINCT m.device_id FROM device_mount m JOIN device d USING (device_id)
             WHERE m.asset_id = v.asset_id AND d.status = 'active'
               AND m.valid_from < %(end)s AND COALESCE(m.valid_to, 'infinity') > %(start)s
               AND EXISTS (SELECT 1 FROM series s JOIN reading_1d r ON r.series_id = s.series_id
                           WHERE s.device_id = m.device_id
                             AND r.bucket >= date_bin(interval '1 day', GREATEST(m.valid_from, %(start)s),
                                                      TIMESTAMPTZ '2000-01-01 00:00:00+00')
                             AND r.bucket < LEAST(COALESCE(m.valid_to, 'infinity'), %(end)s))
             ORDER BY 1) AS live_devices
FROM v_asset_scope v
WHERE v.asset_kind NOT IN ('truck_compartment', 'passive_box')
ORDER BY v.asset_id"""

# Memory for the period's sorts and hash aggregates (hundreds of thousands of hourly rows at a fleet's
# size) for the rest of the caller's transaction, so they stay off disk.
WORK_MEM: Final = "SELECT set_config('work_mem', '128MB', true)"

EXEMPTIONS: Final = """
SELECT indicator, subject_kind, subject_id, starts_at, ends_at, reason, granted_by, granted_at
FROM scorecard_exemption
WHERE starts_at < %(end)s AND ends_at > %(start)s
ORDER BY starts_at, exemption_id"""
INSERT_EXEMPTION: Final = """
INSERT INTO scorecard_exemption (indicator, subject_kind, subject_id, starts_at, ends_at, reason, granted_by,
                                 granted_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"""

# Names of the subjects of one kind.
NAMES: Final = {
    "carrier": "SELECT party_id, name FROM party WHERE role = 'carrier' OR party_id = ANY(%s)",
    "shipper": "SELECT party_id, name FROM party WHERE role = 'shipper' OR party_id = ANY(%s)",
    "device": "SELECT device_id, device_id FROM device WHERE device_id = ANY(%s)",
    "asset": "SELECT asset_id, name FROM asset WHERE asset_id = ANY(%s)",
    "site": "SELECT location_id, name FROM location WHERE location_id = ANY(%s)",
}
# Which of the given subjects a scoped caller sees (migration 0020's cc_sees_*): a party its own, an asset
# by cc_sees_asset, a device by an asset it was mounted on, a site by its party.
VISIBLE: Final = {
    "carrier": "SELECT x FROM unnest(%(ids)s::text[]) x WHERE cc_sees_all(%(role)s) OR x = %(party)s",
    "shipper": "SELECT x FROM unnest(%(ids)s::text[]) x WHERE cc_sees_all(%(role)s) OR x = %(party)s",
    "asset": "SELECT x FROM unnest(%(ids)s::text[]) x WHERE cc_sees_asset(%(role)s, %(party)s, x)",
    "device": """SELECT x FROM unnest(%(ids)s::text[]) x
WHERE cc_sees_all(%(role)s)
   OR EXISTS (SELECT 1 FROM device_mount m WHERE m.device_id = x
              AND cc_sees_asset(%(role)s, %(party)s, m.asset_id))""",
    "site": """SELECT x FROM unnest(%(ids)s::text[]) x
WHERE cc_sees_all(%(role)s)
   OR EXISTS (SELECT 1 FROM location l WHERE l.location_id = x AND l.party_id = %(party)s)""",
}
