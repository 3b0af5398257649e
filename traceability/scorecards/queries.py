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
# on that day: the latest mount overlapping the day, joined set-wise), leaving out the (device, day) pairs
# exempt from conformance (%(cx_*)s) or sequence integrity (%(sx_*)s).
DEVICE_DAYS: Final = """
WITH cx AS (
    SELECT DISTINCT d, day FROM unnest(%(cx_dev)s::text[], %(cx_day)s::date[]) x(d, day)
), sx AS (
    SELECT DISTINCT d, day FROM unnest(%(sx_dev)s::text[], %(sx_day)s::date[]) x(d, day)
), mt AS (
    SELECT device_id, asset_id, valid_from, COALESCE(valid_to, 'infinity') AS valid_to FROM device_mount
    WHERE valid_from < %(stop)s::date + 1 AND COALESCE(valid_to, 'infinity') > %(first)s::date::timestamptz
), dd AS (
    SELECT DISTINCT ON (dd.device_id, dd.day) dd.*, mt.asset_id,
           cx.d IS NOT NULL AS c_exempt, sx.d IS NOT NULL AS s_exempt
    FROM device_day dd
    LEFT JOIN mt ON mt.device_id = dd.device_id AND mt.valid_from < dd.day + 1
                AND mt.valid_to > dd.day::timestamptz
    LEFT JOIN cx ON cx.d = dd.device_id AND cx.day = dd.day
    LEFT JOIN sx ON sx.d = dd.device_id AND sx.day = dd.day
    WHERE dd.day >= %(first)s AND dd.day < %(stop)s
    ORDER BY dd.device_id, dd.day, mt.valid_from DESC
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
    latitude's arc and at most the latitude's and longitude's arcs together (the exact test follows);
    ``island``: for an hour within %(still_m)s, the key of its run of such hours (NULL otherwise)."""
    return (
        """
        SELECT z.*, CASE WHEN z.extent_m <= %(still_m)s THEN z.bucket - interval '1 hour' * row_number()
                         OVER (PARTITION BY z.extent_m <= %(still_m)s ORDER BY z.bucket) END AS island
        FROM (
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
                  > %(reach_m)s * EXTRACT(EPOCH FROM y.bucket - y.prev_bucket) / 3600
        ) z"""
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
_TRAJECTORY_CTES: Final = (
    """
x AS (
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
    FROM m WHERE island IS NOT NULL
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
), fd AS MATERIALIZED (
    -- anomalies and parts by the days they touch, so each anomaly meets only the parts of its days
    SELECT f.*, d FROM found f CROSS JOIN LATERAL generate_series(
        date_bin(interval '1 day', f.t_from, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
        f.t_to - interval '1 microsecond', interval '1 day') d
), pd AS MATERIALIZED (
    SELECT p.*, d FROM p CROSS JOIN LATERAL generate_series(
        date_bin(interval '1 day', p.a, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
        p.b - interval '1 microsecond', interval '1 day') d
), cut0 AS (
    -- each anomaly in the parts it overlaps (once per part: on the first day both touch)
    SELECT p.pid, f.kind, f.figure,
           CASE WHEN f.kind IN ('standing_still', 'silence') THEN GREATEST(f.t_from, p.a) ELSE f.t_from END
               AS t_from,
           CASE WHEN f.kind IN ('standing_still', 'silence') THEN LEAST(f.t_to, p.b) ELSE f.t_to END AS t_to
    FROM fd f JOIN pd p ON p.asset_id = f.asset_id AND p.d = f.d AND f.t_from < p.b AND f.t_to > p.a
         AND f.d = date_bin(interval '1 day', GREATEST(f.t_from, p.a), TIMESTAMPTZ '2000-01-01 00:00:00+00')
    WHERE CASE f.kind
        WHEN 'position_jump' THEN f.t_from >= p.a
        WHEN 'impossible_speed' THEN f.pair_from >= p.a AND f.t_to <= p.b
        ELSE LEAST(f.t_to, p.b) - GREATEST(f.t_from, p.a)
             >= (CASE f.kind WHEN 'silence' THEN %(silent_hours)s ELSE %(still_hours)s END)
                * interval '1 hour'
    END
), cut AS (
    SELECT pid, kind, t_from, t_to,
           CASE WHEN kind IN ('standing_still', 'silence') THEN EXTRACT(EPOCH FROM t_to - t_from) / 3600
                ELSE figure END::float8 AS figure
    FROM cut0
)"""
)
TRAJECTORY_ANOMALIES: Final = (
    """
WITH p AS (
    SELECT * FROM unnest(%(pid)s::int[], %(asset)s::text[], %(a)s::timestamptz[], %(b)s::timestamptz[])
             AS u(pid, asset_id, a, b)
), """
    + _TRAJECTORY_CTES
    + """
SELECT pid, kind, t_from, t_to, figure FROM cut ORDER BY 1, 3, 2"""
)


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
# size) for the rest of the caller's transaction, so they stay off disk; and no JIT compilation: the
# statements' estimated costs grow with the rollups' size past jit_above_cost, and compiling the
# shipment statement's expressions takes seconds, more than evaluating them.
TRANSACTION_SETTINGS: Final = "SELECT set_config('work_mem', '128MB', true), set_config('jit', 'off', true)"

# Around the shipment statement: its CTEs join each other on shipment and lot ids, where the planner,
# without statistics for a CTE, expects a few hundred rows and may loop over one for each row of another,
# or sort both sides of hundreds of thousands of rows to merge them where one side is empty; its per-row
# index probes are LATERAL subqueries, loops by construction. Hash joins only.
HASH_JOINS: Final = """
SELECT current_setting('enable_nestloop'), current_setting('enable_mergejoin'),
       set_config('enable_nestloop', 'off', true), set_config('enable_mergejoin', 'off', true)"""
RESTORE_JOINS: Final = (
    "SELECT set_config('enable_nestloop', %s, true), set_config('enable_mergejoin', %s, true)"
)

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


def _ceil_hour(t: str) -> str:
    """``t`` rounded up to the rollups' hour (the start of the first hour bucket starting at or after it)."""
    binned = f"date_bin(interval '1 hour', {t}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
    return f"(CASE WHEN {binned} = {t} THEN {t} ELSE {binned} + interval '1 hour' END)"


def _exempt(indicator: str, at: str, subjects: str, source: str = "ex") -> str:
    """The indexes (into the caller's list) of the exemptions of ``indicator`` covering time ``at`` that
    name a subject of the atom; ``subjects`` is SQL true when (ex.kind, ex.id) is one of them; ``source``
    the relation the exemptions are read from, as ``ex``."""
    return (
        f"CASE WHEN (SELECT count(*) = 0 FROM ex) THEN '{{{{}}}}'::int[] ELSE"  # none: not asked per row
        f" ARRAY(SELECT ex.i FROM {source} ex WHERE ex.indicator IN ('{indicator}', '*') AND ex.a <= {at}"
        f" AND {at} < ex.b AND ({subjects}) ORDER BY ex.i) END"
    )


def _shipment_subject(alias: str) -> str:
    return (
        f"CASE ex.kind WHEN 'carrier' THEN ex.id = ANY({alias}.carriers)"
        f" WHEN 'asset' THEN ex.id = ANY({alias}.assets) WHEN 'device' THEN ex.id = ANY({alias}.devices)"
        f" WHEN 'site' THEN ex.id = {alias}.origin WHEN 'shipper' THEN ex.id = {alias}.shipper ELSE false END"
    )


# The ids of one subject kind a shipment counts for (the carriers and assets of its legs, the devices
# mounted on those assets during it, its origin site, its shipper).
_SHIPMENT_IDS: Final = {
    "carrier": "{a}.carriers",
    "asset": "{a}.assets",
    "device": "{a}.devices",
    "site": "ARRAY[{a}.origin]",
    "shipper": "ARRAY[{a}.shipper]",
}

# The shipment-side atoms of the period, judged in one statement: track matching and trajectory anomalies
# per shipment, handover per pair of consecutive legs, lots without a break and lots covered on every leg
# per lot. Shipments: planned start (else registration) in [%(start)s, %(end)s). %(only)s (NULL: all)
# keeps the atoms of the subjects of that kind named in it: ``tr`` holds the shipments whose atoms are
# kept, ``lt`` the lots (a lot is kept when one of its subjects is named). ``ex``: the period's exemptions.
_SHIPMENT_CTES: Final = (
    """
WITH ex AS (
    SELECT * FROM unnest(%(x_i)s::int[], %(x_ind)s::text[], %(x_kind)s::text[], %(x_id)s::text[],
                         %(x_a)s::timestamptz[], %(x_b)s::timestamptz[]) AS u(i, indicator, kind, id, a, b)
), s0 AS MATERIALIZED (
    -- the period's shipments; ``judged``: its facts (shipment_fact) are read, as they were judged under the
    -- trajectory thresholds asked for, its planned window lies in the period (nothing of it is clipped)
    -- and no reading stored late for its time has marked them
    SELECT s.shipment_id AS sid, s.shipper_party_id AS shipper, s.origin_location_id AS origin,
           s.destination_location_id AS dest, s.planned_start AS p_start, s.planned_end AS p_end,
           COALESCE(s.planned_start, s.created_at) AS t_ref,
           COALESCE(f.shipment_id IS NOT NULL AND %(facts)s AND s.planned_start >= %(start)s
                    AND s.planned_end <= %(end)s AND k.shipment_id IS NULL, false) AS judged,
           f.assets, f.carriers, f.devices, f.exit_at, f.enter_at, f.anomalies,
           cardinality(f.leg_nos) AS legs, cardinality(array_positions(f.leg_ok, false)) AS bad,
           cardinality(f.h_to_leg) AS handoffs
    FROM shipment s
    LEFT JOIN shipment_fact f
           ON %(facts)s AND f.shipment_id = s.shipment_id AND f.thresholds = %(thresholds)s
    LEFT JOIN (SELECT DISTINCT shipment_id FROM shipment_fact_marked()) k ON k.shipment_id = s.shipment_id
    WHERE ((s.planned_start >= %(start)s AND s.planned_start < %(end)s)
           OR (s.planned_start IS NULL AND s.created_at >= %(start)s AND s.created_at < %(end)s))
      AND (%(judge)s::text[] IS NULL OR s.shipment_id = ANY(%(judge)s::text[]))
), fx AS (
    SELECT * FROM s0 WHERE judged
), s AS (
    -- the others, judged here
    SELECT sid, shipper, origin, dest, p_start, p_end, t_ref FROM s0 WHERE NOT judged
), l AS (
    -- the legs with their windows (the leg's, else the shipment's) and the leg before each
    SELECT l.shipment_id AS sid, l.leg_no, l.carrier_party_id AS carrier, l.asset_id,
           COALESCE(l.planned_start, s.p_start) AS la, COALESCE(l.planned_end, s.p_end) AS lb,
           lag(l.leg_no) OVER w AS prev_leg, lag(l.asset_id) OVER w AS prev_asset,
           lag(COALESCE(l.planned_end, s.p_end)) OVER w AS prev_lb
    FROM shipment_leg l JOIN s ON s.sid = l.shipment_id
    WINDOW w AS (PARTITION BY l.shipment_id ORDER BY l.leg_no)
), la AS (
    SELECT sid, array_agg(asset_id ORDER BY leg_no) FILTER (WHERE asset_id IS NOT NULL) AS assets,
           array_agg(DISTINCT carrier) FILTER (WHERE carrier IS NOT NULL) AS carriers
    FROM l GROUP BY sid
), dv AS (
    -- the devices mounted on its assets in the period (and during its planned window, when it has one)
    SELECT l.sid, array_agg(DISTINCT m.device_id) AS devices
    FROM l JOIN s USING (sid) JOIN device_mount m ON m.asset_id = l.asset_id
    WHERE m.valid_from < %(end)s AND COALESCE(m.valid_to, 'infinity') > %(start)s
      AND (s.p_start IS NULL OR s.p_end IS NULL
           OR (GREATEST(m.valid_from, %(start)s) < s.p_end
               AND LEAST(COALESCE(m.valid_to, 'infinity'), %(end)s) > s.p_start))
    GROUP BY l.sid
), cx AS (
    -- the first exit from the origin's geofence and first entry into the destination's by an asset of
    -- its legs within the planned window (each leg's asset's crossings in that window, by index range)
    SELECT l.sid,
           min(c.crossed_at) FILTER (WHERE c.location_id = s.origin AND c.direction = 'exit') AS exit_at,
           min(c.crossed_at) FILTER (WHERE c.location_id = s.dest AND c.direction = 'enter') AS enter_at
    FROM l JOIN s USING (sid)
    CROSS JOIN LATERAL (
        SELECT c.location_id, c.direction, c.crossed_at FROM geofence_crossing c
        WHERE c.asset_id = l.asset_id AND c.crossed_at >= COALESCE(s.p_start, '-infinity')
          AND c.crossed_at <= COALESCE(s.p_end, 'infinity')
        OFFSET 0  -- kept a subquery: joined, the planner would hash every crossing of the asset
    ) c
    GROUP BY l.sid
), fenced AS (
    SELECT DISTINCT location_id FROM geofence
), sj AS (
    -- each shipment with its subjects and crossings: judged here, or its facts
    SELECT s.*, COALESCE(la.assets, '{{}}') AS assets, COALESCE(la.carriers, '{{}}') AS carriers,
           COALESCE(dv.devices, '{{}}') AS devices, cx.exit_at, cx.enter_at, NULL::bigint AS legs,
           NULL::bigint AS bad, NULL::bigint AS anomalies
    FROM s LEFT JOIN la USING (sid) LEFT JOIN dv USING (sid) LEFT JOIN cx USING (sid)
    UNION ALL
    SELECT sid, shipper, origin, dest, p_start, p_end, t_ref, assets, carriers, devices, exit_at, enter_at,
           legs, bad, anomalies
    FROM fx
), sh AS (
    SELECT sj.*, fo.location_id IS NOT NULL AS o_fenced, fd.location_id IS NOT NULL AS d_fenced
    FROM sj LEFT JOIN fenced fo ON fo.location_id = sj.origin
    LEFT JOIN fenced fd ON fd.location_id = sj.dest
), tr AS (
    -- the kept shipments, with their exemptions and their transit: from leaving the origin (else the
    -- planned start) to reaching the destination (else the planned end), clipped to the period, at hours
    SELECT sh.*, """
    + _exempt("track_matching", "sh.t_ref", _shipment_subject("sh"))
    + """ AS x_track, """
    + _exempt("trajectory_anomalies", "sh.t_ref", _shipment_subject("sh"))
    + """ AS x_traj, """
    + _exempt("handover", "sh.t_ref", _shipment_subject("sh"))
    + """ AS x_hand,
           CASE WHEN tb > ta THEN ta END AS span_a, CASE WHEN tb > ta THEN tb END AS span_b
    FROM sh CROSS JOIN LATERAL (
        SELECT """
    + _ceil_hour("GREATEST(COALESCE(sh.exit_at, sh.p_start), %(start)s)")
    + """ AS ta, """
    + _ceil_hour("LEAST(COALESCE(sh.enter_at, sh.p_end), %(end)s)")
    + """ AS tb
    ) t
    WHERE %(only)s::text[] IS NULL OR {ids_sh} && %(only)s::text[]
), p AS (
    -- the parts judged for trajectory anomalies: each leg's asset over the hours of the transit it spans
    SELECT (row_number() OVER ())::int AS pid, sid, asset_id, a, b FROM (
        SELECT tr.sid, l.asset_id,
               GREATEST("""
    + _ceil_hour("COALESCE(l.la, tr.span_a)")
    + """, tr.span_a) AS a,
               LEAST("""
    + _ceil_hour("COALESCE(l.lb, tr.span_b)")
    + """, tr.span_b) AS b
        FROM tr JOIN l USING (sid)
        WHERE tr.span_a IS NOT NULL AND cardinality(tr.x_traj) = 0 AND l.asset_id IS NOT NULL
    ) q WHERE b > a
), """
    + _TRAJECTORY_CTES
    + """, an AS (
    -- trajectory anomalies per kept shipment judged here with a part judged (a judged one's: tr.anomalies)
    SELECT p.sid, count(cut.pid) AS n FROM p LEFT JOIN cut USING (pid) GROUP BY p.sid
), sl AS (
    SELECT sl.shipment_id AS sid, sl.lot_id, lo.owner_party_id AS owner
    FROM shipment_lot sl JOIN lot lo USING (lot_id) JOIN s0 ON s0.sid = sl.shipment_id
), lk AS (
    -- the lots kept when subjects are named: those with a shipment counting for one of them
    SELECT DISTINCT sl.lot_id FROM sl JOIN sh USING (sid) CROSS JOIN LATERAL unnest({ids_lot}) x(id)
    WHERE %(only)s::text[] IS NOT NULL AND x.id = ANY(%(only)s::text[])
), ho AS (
    -- the handoffs of the kept shipments: one leg to the next, at the first's end (else the next's start);
    -- with their evidence on each side when their shipment's facts hold it
    SELECT l.sid, l.prev_leg AS from_leg, l.leg_no AS to_leg, l.prev_asset AS from_asset,
           l.asset_id AS to_asset, COALESCE(l.prev_lb, l.la) AS at, NULL::boolean AS before,
           NULL::boolean AS after
    FROM l JOIN tr USING (sid) WHERE l.prev_leg IS NOT NULL
    UNION ALL
    SELECT fx.sid, h.* FROM fx JOIN tr USING (sid) JOIN shipment_fact f ON f.shipment_id = fx.sid
    CROSS JOIN LATERAL unnest(f.h_from_leg, f.h_to_leg, f.h_from_asset, f.h_to_asset, f.h_at, f.h_before,
                              f.h_after) h
    WHERE fx.handoffs > 0
), lsid AS (
    -- the shipments judged here carrying a kept lot
    SELECT DISTINCT sl.sid FROM sl JOIN s USING (sid)
    WHERE %(only)s::text[] IS NULL OR sl.lot_id IN (SELECT lot_id FROM lk)
), ck AS (
    -- temperature evidence asked for of the shipments judged here: every leg of a shipment carrying a
    -- kept lot (every leg, when judging), and both sides of every handoff that is not exempt
    SELECT 'leg' AS side, l.sid, l.leg_no, l.asset_id, l.la AS a, l.lb AS b
    FROM l WHERE l.asset_id IS NOT NULL AND l.la IS NOT NULL AND l.lb > l.la
      AND (%(judge)s::text[] IS NOT NULL OR l.sid IN (SELECT sid FROM lsid))
    UNION ALL
    SELECT 'out', ho.sid, ho.to_leg, ho.from_asset, ho.at - interval '1 hour', ho.at
    FROM ho JOIN tr USING (sid) WHERE ho.from_asset IS NOT NULL AND ho.at IS NOT NULL
      AND ho.before IS NULL AND cardinality(tr.x_hand) = 0
    UNION ALL
    SELECT 'in', ho.sid, ho.to_leg, ho.to_asset, ho.at, ho.at + interval '1 hour'
    FROM ho JOIN tr USING (sid) WHERE ho.to_asset IS NOT NULL AND ho.at IS NOT NULL
      AND ho.before IS NULL AND cardinality(tr.x_hand) = 0
), tser AS MATERIALIZED (
    -- each asset's temperature series once: the devices mounted on it, when
    SELECT x.asset_id, s.series_id, s.valid_from, s.valid_to
    FROM (SELECT DISTINCT asset_id FROM ck) x
    CROSS JOIN LATERAL asset_evidence_series(x.asset_id) s
    WHERE """
    + _TEMP
    + """
), ev AS (
    -- whether the asset has a temperature value in an hour bucket overlapping [a, b) from a device
    -- mounted on it then (each check joined to its asset's series, one index probe per series)
    SELECT ck.side, ck.sid, ck.leg_no, COALESCE(bool_or(EXISTS (
        SELECT 1 FROM reading_1h r
        WHERE r.series_id = t.series_id
          AND r.bucket >= date_bin(interval '1 hour', GREATEST(ck.a, t.valid_from),
                                   TIMESTAMPTZ '2000-01-01 00:00:00+00')
          AND r.bucket < LEAST(ck.b, COALESCE(t.valid_to, 'infinity')) AND r.n > 0)), false) AS ok
    FROM ck LEFT JOIN tser t ON t.asset_id = ck.asset_id
    GROUP BY ck.side, ck.sid, ck.leg_no
), lgl AS (
    -- the legs judged here of the shipments carrying a kept lot (every leg, when judging), and whether
    -- each had temperature evidence
    SELECT l.sid, l.leg_no, l.la, l.lb, COALESCE(ev.ok, false) AS ok
    FROM l LEFT JOIN ev ON ev.side = 'leg' AND ev.sid = l.sid AND ev.leg_no = l.leg_no
    WHERE %(judge)s::text[] IS NOT NULL OR l.sid IN (SELECT sid FROM lsid)
), lgs AS (
    -- per shipment judged here: legs, and legs without evidence
    SELECT sid, count(*) AS legs, count(*) FILTER (WHERE NOT ok) AS bad FROM lgl GROUP BY sid
), lt AS (
    -- the kept lots, in one pass over their shipments: a lot's ids of kind {kind} (its shipments'; but as
    -- shipper: its owner, else its shipments' shippers), first time, shipments, legs and legs without
    -- evidence (each shipment once: on the row of its first id), and its verdict
    SELECT sl.lot_id, min(sh.t_ref) AS ref,
           array_agg(sl.sid ORDER BY sl.sid) FILTER (WHERE x.o IS NULL OR x.o = 1) AS shipments,
           COALESCE(array_agg(DISTINCT x.id ORDER BY x.id) FILTER (WHERE x.id IS NOT NULL AND x.id <> ''),
                    '{{}}') AS ids,
           COALESCE(sum(COALESCE(sh.legs, g.legs)) FILTER (WHERE x.o IS NULL OR x.o = 1), 0)::bigint AS legs,
           COALESCE(sum(COALESCE(sh.bad, g.bad)) FILTER (WHERE x.o IS NULL OR x.o = 1), 0)::bigint AS bad,
           (SELECT h.verdict FROM verdict_history h WHERE h.subject_kind = 'lot' AND h.subject_id = sl.lot_id
            ORDER BY h.version DESC LIMIT 1) AS verdict
    FROM sl JOIN sh USING (sid) LEFT JOIN lgs g USING (sid)
    LEFT JOIN LATERAL unnest({ids_lot}) WITH ORDINALITY x(id, o) ON true
    GROUP BY sl.lot_id
    HAVING %(only)s::text[] IS NULL OR sl.lot_id IN (SELECT lot_id FROM lk)
), lxm AS (
    -- the exemptions naming a subject of a lot (then matched on indicator and time per lot)
    SELECT DISTINCT sl.lot_id, ex.*
    FROM sl JOIN sh USING (sid)
    JOIN ex ON CASE ex.kind WHEN 'shipper' THEN ex.id = COALESCE(sl.owner, sh.shipper)
                            ELSE ex.kind <> 'shipper' AND ({lot_subject}) END
), lx AS (
    SELECT lt.*,
           """
    + _exempt(
        "lots_unbroken",
        "lt.ref",
        "ex.lot_id = lt.lot_id",
        "lxm",
    )
    + """ AS x_unbroken, """
    + _exempt(
        "coverage_lots",
        "lt.ref",
        "ex.lot_id = lt.lot_id",
        "lxm",
    )
    + """ AS x_cover
    FROM lt
), atoms AS (
    -- indicator, numerator, denominator, exemptions used, ids of kind {kind}, and what the drill-down shows
    SELECT 'track_matching' AS ind, tr.sid, NULL::text AS lot_id,
           CASE WHEN cardinality(tr.x_track) > 0 OR NOT (tr.origin IS NOT NULL AND tr.dest IS NOT NULL
                     AND tr.o_fenced AND tr.d_fenced) THEN 0
                WHEN tr.exit_at <= tr.enter_at THEN 1 ELSE 0 END::float8 AS num,
           CASE WHEN cardinality(tr.x_track) > 0 OR NOT (tr.origin IS NOT NULL AND tr.dest IS NOT NULL
                     AND tr.o_fenced AND tr.d_fenced) THEN 0 ELSE 1 END::float8 AS den,
           tr.x_track AS used, {ids_tr} AS ids,
           CASE WHEN cardinality(tr.x_track) > 0 THEN 'exempt'
                WHEN NOT (tr.origin IS NOT NULL AND tr.dest IS NOT NULL AND tr.o_fenced AND tr.d_fenced)
                    THEN 'no_geofence'
                WHEN tr.exit_at <= tr.enter_at THEN 'matched'
                WHEN tr.exit_at IS NULL THEN 'never_left_origin'
                ELSE 'never_reached_destination' END AS what,
           NULL::int AS n, NULL::float8 AS hours, NULL::int AS from_leg, NULL::int AS to_leg,
           NULL::timestamptz AS at, NULL::text AS from_asset, NULL::text AS to_asset,
           NULL::boolean AS before, NULL::boolean AS after
    FROM tr
    UNION ALL
    SELECT 'trajectory_anomalies', tr.sid, NULL,
           CASE WHEN cardinality(tr.x_traj) > 0 THEN 0
                WHEN COALESCE(an.n, tr.anomalies) IS NOT NULL THEN COALESCE(an.n, tr.anomalies)
                WHEN EXTRACT(EPOCH FROM tr.span_b - tr.span_a) / 3600 >= %(silent_hours)s THEN 1
                ELSE 0 END,
           CASE WHEN cardinality(tr.x_traj) > 0 THEN 0
                ELSE EXTRACT(EPOCH FROM tr.span_b - tr.span_a) / 3600 END,
           tr.x_traj, {ids_tr},
           CASE WHEN cardinality(tr.x_traj) > 0 THEN 'exempt'
                WHEN COALESCE(an.n, tr.anomalies) IS NULL THEN 'unjudged'
                ELSE 'judged' END,
           COALESCE(an.n, tr.anomalies), EXTRACT(EPOCH FROM tr.span_b - tr.span_a) / 3600, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL
    FROM tr LEFT JOIN an USING (sid)
    WHERE cardinality(tr.x_traj) > 0 OR tr.span_a IS NOT NULL
    UNION ALL
    SELECT 'handover', ho.sid, NULL,
           CASE WHEN cardinality(tr.x_hand) = 0 AND COALESCE(ho.before, o.ok, false)
                     AND COALESCE(ho.after, i.ok, false) THEN 1 ELSE 0 END,
           CASE WHEN cardinality(tr.x_hand) > 0 THEN 0 ELSE 1 END,
           tr.x_hand, {ids_tr}, CASE WHEN cardinality(tr.x_hand) > 0 THEN 'exempt' ELSE 'judged' END,
           NULL, NULL, ho.from_leg, ho.to_leg, ho.at, ho.from_asset, ho.to_asset,
           COALESCE(ho.before, o.ok, false), COALESCE(ho.after, i.ok, false)
    FROM ho JOIN tr USING (sid)
    LEFT JOIN ev o ON o.side = 'out' AND o.sid = ho.sid AND o.leg_no = ho.to_leg
    LEFT JOIN ev i ON i.side = 'in' AND i.sid = ho.sid AND i.leg_no = ho.to_leg
    UNION ALL
    SELECT 'lots_unbroken', NULL, lx.lot_id,
           CASE WHEN cardinality(lx.x_unbroken) = 0 AND lx.verdict IS DISTINCT FROM 'broken' THEN 1
                ELSE 0 END,
           CASE WHEN cardinality(lx.x_unbroken) > 0 THEN 0 ELSE 1 END,
           lx.x_unbroken, lx.ids, CASE WHEN cardinality(lx.x_unbroken) > 0 THEN 'exempt' ELSE 'judged' END,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM lx
    UNION ALL
    SELECT 'coverage_lots', NULL, lx.lot_id,
           CASE WHEN cardinality(lx.x_cover) = 0 AND lx.legs > 0 AND lx.bad = 0 THEN 1
                ELSE 0 END,
           CASE WHEN cardinality(lx.x_cover) > 0 THEN 0 ELSE 1 END,
           lx.x_cover, lx.ids, CASE WHEN cardinality(lx.x_cover) > 0 THEN 'exempt' ELSE 'judged' END,
           lx.legs, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM lx
)"""
)

_SHIPMENT_BOARD: Final = """
SELECT a.ind, x.id, sum(a.num) AS num, sum(a.den) AS den, count(*) AS n,
       string_agg(array_to_string(a.used, ','), ',') FILTER (WHERE cardinality(a.used) > 0) AS used
FROM atoms a CROSS JOIN LATERAL unnest(a.ids) x(id)
WHERE x.id IS NOT NULL AND x.id <> ''
GROUP BY a.ind, x.id"""

_SHIPMENT_DRILL: Final = """, fa AS (
    -- each kept shipment's trajectory anomalies, in time order
    SELECT p.sid, array_agg(cut.kind ORDER BY cut.t_from, cut.kind) AS f_kind,
           array_agg(cut.t_from ORDER BY cut.t_from, cut.kind) AS f_from,
           array_agg(cut.t_to ORDER BY cut.t_from, cut.kind) AS f_to,
           array_agg(cut.figure ORDER BY cut.t_from, cut.kind) AS f_figure
    FROM cut JOIN p USING (pid) GROUP BY p.sid
    UNION ALL
    SELECT fx.sid, f.f_kind, f.f_from, f.f_to, f.f_figure
    FROM fx JOIN tr USING (sid) JOIN shipment_fact f ON f.shipment_id = fx.sid
    WHERE fx.anomalies > 0 AND cardinality(tr.x_traj) = 0
), lun AS (
    -- per kept lot, its shipments' legs without evidence
    SELECT sl.lot_id, array_agg(u.sid || '#' || u.leg_no ORDER BY u.sid, u.leg_no) AS uncovered
    FROM lt JOIN sl USING (lot_id) JOIN (
        SELECT sid, leg_no FROM lgl WHERE NOT ok
        UNION ALL
        SELECT fx.sid, g.leg_no FROM fx JOIN shipment_fact f ON f.shipment_id = fx.sid
        CROSS JOIN LATERAL unnest(f.leg_nos, f.leg_ok) g(leg_no, ok)
        WHERE fx.bad > 0 AND NOT g.ok
    ) u USING (sid)
    GROUP BY sl.lot_id
)
SELECT a.ind, a.sid, a.lot_id, a.num, a.den, a.used, a.ids, a.what, a.n, a.hours, a.from_leg, a.to_leg, a.at,
       a.from_asset, a.to_asset, a.before, a.after, tr.origin, tr.dest, tr.p_start, tr.p_end, tr.exit_at,
       tr.enter_at, tr.span_a, tr.span_b, lx.shipments, lx.verdict, COALESCE(lun.uncovered, '{}'), fa.f_kind,
       fa.f_from, fa.f_to, fa.f_figure
FROM atoms a LEFT JOIN tr USING (sid) LEFT JOIN lx USING (lot_id)
LEFT JOIN fa ON a.ind = 'trajectory_anomalies' AND fa.sid = a.sid
LEFT JOIN lun ON a.ind = 'coverage_lots' AND lun.lot_id = a.lot_id
ORDER BY a.ind, a.sid NULLS LAST, a.from_leg NULLS FIRST, a.lot_id"""


# What a shipment's facts hold (shipment_fact), judged by the same statement over the shipments named in
# %(judge)s with no period (-infinity, infinity), no exemptions and no subject asked for: its subjects and
# crossings, its trajectory anomalies, every leg's evidence, each handoff's evidence on both sides, and the
# device time all of it was read from (the planned windows, the legs' and an hour each side of a handoff,
# widened by an hour for the rollups' buckets). A change to what this judges (or to the CTEs it shares with
# the board) changes what existing facts would say: its migration empties shipment_fact, to be judged again.
_SHIPMENT_JUDGE: Final = """, fa AS (
    SELECT p.sid, array_agg(cut.kind ORDER BY cut.t_from, cut.kind) AS f_kind,
           array_agg(cut.t_from ORDER BY cut.t_from, cut.kind) AS f_from,
           array_agg(cut.t_to ORDER BY cut.t_from, cut.kind) AS f_to,
           array_agg(cut.figure ORDER BY cut.t_from, cut.kind) AS f_figure
    FROM cut JOIN p USING (pid) GROUP BY p.sid
), jl AS (
    SELECT sid, array_agg(leg_no ORDER BY leg_no) AS leg_nos, array_agg(ok ORDER BY leg_no) AS leg_ok,
           min(la) AS la, max(lb) AS lb
    FROM lgl GROUP BY sid
), jh AS (
    SELECT ho.sid, array_agg(ho.from_leg ORDER BY ho.to_leg) AS h_from_leg,
           array_agg(ho.to_leg ORDER BY ho.to_leg) AS h_to_leg, array_agg(ho.at ORDER BY ho.to_leg) AS h_at,
           array_agg(ho.from_asset ORDER BY ho.to_leg) AS h_from_asset,
           array_agg(ho.to_asset ORDER BY ho.to_leg) AS h_to_asset,
           array_agg(COALESCE(o.ok, false) ORDER BY ho.to_leg) AS h_before,
           array_agg(COALESCE(i.ok, false) ORDER BY ho.to_leg) AS h_after,
           min(ho.at) AS a, max(ho.at) AS b
    FROM ho
    LEFT JOIN ev o ON o.side = 'out' AND o.sid = ho.sid AND o.leg_no = ho.to_leg
    LEFT JOIN ev i ON i.side = 'in' AND i.sid = ho.sid AND i.leg_no = ho.to_leg
    GROUP BY ho.sid
)
SELECT tr.sid,
       LEAST(tr.p_start, jl.la, jh.a - interval '1 hour') - interval '1 hour' AS dep_from,
       GREATEST(tr.p_end, jl.lb, jh.b + interval '1 hour') + interval '1 hour' AS dep_to,
       tr.assets, tr.carriers, tr.devices, tr.exit_at, tr.enter_at, an.n,
       COALESCE(fa.f_kind, '{}'), COALESCE(fa.f_from, '{}'), COALESCE(fa.f_to, '{}'),
       COALESCE(fa.f_figure, '{}'), COALESCE(jl.leg_nos, '{}'), COALESCE(jl.leg_ok, '{}'),
       COALESCE(jh.h_from_leg, '{}'), COALESCE(jh.h_to_leg, '{}'), COALESCE(jh.h_at, '{}'),
       COALESCE(jh.h_from_asset, '{}'), COALESCE(jh.h_to_asset, '{}'), COALESCE(jh.h_before, '{}'),
       COALESCE(jh.h_after, '{}')
FROM tr LEFT JOIN an USING (sid) LEFT JOIN fa USING (sid) LEFT JOIN jl USING (sid) LEFT JOIN jh USING (sid)
WHERE tr.p_start IS NOT NULL AND tr.p_end IS NOT NULL"""


# The ids of one subject kind a lot counts for (``sl``: its shipment_lot row with the lot's owner).
_LOT_IDS: Final = {**_SHIPMENT_IDS, "shipper": "ARRAY[COALESCE({l}.owner, {a}.shipper)]"}


def shipment_atoms(kind: str, part: str) -> str:
    """The shipment-side statement for subject kind ``kind``: ``part`` "board" (per indicator and subject
    id: numerator, denominator, atoms, exemptions used), "drill" (every atom with what it shows, a
    shipment's trajectory anomalies with it) or "judge" (a shipment_fact row per shipment named)."""
    ids = _SHIPMENT_IDS[kind]
    ctes = _SHIPMENT_CTES.format(
        kind=kind,
        ids_sh=ids.format(a="sh"),
        ids_tr=ids.format(a="tr"),
        ids_lot=_LOT_IDS[kind].format(a="sh", l="sl"),
        lot_subject=_shipment_subject("sh"),
    )
    tail = {"board": _SHIPMENT_BOARD, "drill": _SHIPMENT_DRILL, "judge": _SHIPMENT_JUDGE}[part]
    return ctes + tail
