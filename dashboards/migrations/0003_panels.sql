-- Stage 4 (dashboards): the views and functions the panel queries of dashboards/queries.py read. Plain SQL
-- for PostgreSQL 15+ and TimescaleDB alike; reading volumes go through readings_binned (0002), never here.

-- Each asset with the five keys the dashboards' variables scope by (carrier, site, asset kind, product
-- class, asset), its class's limits and its allowed recording interval. The carrier is the operating
-- party when that party's role is 'carrier' (a cold store operating its own room is no carrier). The
-- allowed interval is the class's storage_max_gap_s or transport_max_gap_s by the asset's mode, as the
-- rules stage publishes them; an asset whose class names none (or that has no class) is allowed one hour.
CREATE VIEW v_asset_scope AS
SELECT a.asset_id,
       a.name                                        AS asset_name,
       a.kind                                        AS asset_kind,
       a.mode,
       a.product_class,
       CASE WHEN p.role = 'carrier' THEN a.operator_party_id END AS carrier_id,
       CASE WHEN p.role = 'carrier' THEN p.name END  AS carrier_name,
       a.location_id                                 AS site_id,
       l.name                                        AS site_name,
       l.lat                                         AS site_lat,
       l.lon                                         AS site_lon,
       rc.low_c,
       rc.high_c,
       COALESCE(CASE WHEN a.mode = 'storage' THEN rc.storage_max_gap_s ELSE rc.transport_max_gap_s END,
                3600)::double precision              AS allowed_s
FROM asset a
LEFT JOIN party p ON p.party_id = a.operator_party_id
LEFT JOIN location l ON l.location_id = a.location_id
LEFT JOIN rule_class rc ON rc.product_class = a.product_class;

-- Every series with the mounts of its device: the asset whose data the series is while mounted there
-- ([valid_from, valid_to), valid_to NULL = still). is_temp: a temperature channel (temp, temp:<probe>).
CREATE VIEW v_series_mount AS
SELECT s.series_id,
       s.device_id,
       s.channel,
       (s.channel = 'temp' OR s.channel LIKE 'temp:%') AS is_temp,
       m.asset_id,
       m.valid_from,
       COALESCE(m.valid_to, 'infinity')                AS valid_to
FROM series s
JOIN device_mount m ON m.device_id = s.device_id;

-- Each active device mounted on an asset at t_at, with its latest reading at or before t_at (any channel,
-- device time; NULL: none yet) and the interval its asset allows between records. A device is online at
-- t_at when t_at - last_seen <= allowed_s, silent otherwise. One index probe per series (series_id, time).
CREATE FUNCTION device_last_seen(t_at timestamptz)
RETURNS TABLE (device_id text, asset_id text, mounted_from timestamptz, last_seen timestamptz,
               allowed_s double precision)
LANGUAGE sql STABLE AS $$
SELECT d.device_id, m.asset_id, m.valid_from, seen.last_seen, sc.allowed_s
FROM device d
JOIN device_mount m ON m.device_id = d.device_id
                   AND m.valid_from <= t_at AND (m.valid_to IS NULL OR m.valid_to > t_at)
JOIN v_asset_scope sc ON sc.asset_id = m.asset_id
LEFT JOIN LATERAL (
    SELECT max(latest.time) AS last_seen
    FROM series s
    CROSS JOIN LATERAL (
        SELECT r.time FROM reading r
        WHERE r.series_id = s.series_id AND r.time <= t_at
        ORDER BY r.time DESC LIMIT 1
    ) latest
    WHERE s.device_id = d.device_id
) seen ON true
WHERE d.status = 'active'
$$;

-- The lots an asset carried, and when: the custody legs the ledger derived on the asset, and the lot
-- classes inside each leg's unit (lots_under, the trace's own definition). last_seen NULL: still aboard.
CREATE VIEW v_asset_lots AS
SELECT g.asset_id,
       u.lot_id,
       min(g.t_start)                                                    AS first_seen,
       NULLIF(max(COALESCE(g.t_end, 'infinity')), 'infinity')            AS last_seen
FROM custody_leg g
CROSS JOIN LATERAL lots_under(ARRAY[g.epc]) u
WHERE g.asset_id IS NOT NULL
GROUP BY g.asset_id, u.lot_id;

-- The 95th percentile of receive lag from the rollups' lag histogram: the smallest bound (1, 5, 30, 60,
-- 300, 3600 s) under which at least 95 % of the readings arrived; above an hour the histogram has no bound,
-- and the largest lag seen stands for it (an upper bound). NULL without readings.
CREATE FUNCTION lag_p95_s(readings numeric, le_1s numeric, le_5s numeric, le_30s numeric, le_60s numeric,
                          le_300s numeric, le_3600s numeric, lag_max_s double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
SELECT CASE
    WHEN readings IS NULL OR readings = 0 THEN NULL
    WHEN le_1s >= 0.95 * readings THEN 1
    WHEN le_5s >= 0.95 * readings THEN 5
    WHEN le_30s >= 0.95 * readings THEN 30
    WHEN le_60s >= 0.95 * readings THEN 60
    WHEN le_300s >= 0.95 * readings THEN 300
    WHEN le_3600s >= 0.95 * readings THEN 3600
    ELSE GREATEST(lag_max_s, 3600)
END::double precision
$$;

-- An identifier as one URL path segment, as traceability/web/paths.py quote_id writes it: unreserved
-- characters and :@!$&'()*+,;= kept, every other UTF-8 byte percent-encoded (upper-case hex).
CREATE FUNCTION url_path_segment(ident text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
SELECT COALESCE(string_agg(
    CASE WHEN c ~ '^[A-Za-z0-9:@!$&''()*+,;=._~-]$' THEN c
         ELSE upper(regexp_replace(encode(convert_to(c, 'UTF8'), 'hex'), '(..)', '%\1', 'g')) END,
    '' ORDER BY i), '')
FROM regexp_split_to_table(ident, '') WITH ORDINALITY AS t(c, i)
$$;

-- readings_binned's output computed from the raw rows, whatever the width: the reference the tests and
-- `coldchain bench dashboards` hold the rollup path against (never read by a panel). Its edges are those
-- of readings_binned: whole source buckets (1 day, 1 hour or 1 minute, by the width) overlapping
-- [t_from, t_to), exactly [t_from, t_to) below a minute.
CREATE FUNCTION readings_binned_raw(width interval, t_from timestamptz, t_to timestamptz,
                                    series bigint[] DEFAULT NULL)
RETURNS SETOF reading_bin
LANGUAGE sql STABLE AS $$
WITH src AS (
    SELECT CASE WHEN width >= interval '1 day' THEN interval '1 day'
                WHEN width >= interval '1 hour' THEN interval '1 hour'
                WHEN width >= interval '1 minute' THEN interval '1 minute' END AS w
), edges AS (
    SELECT CASE WHEN w IS NULL THEN t_from ELSE date_bin(w, t_from, timestamptz '2000-01-01 00:00Z') END AS lo,
           CASE WHEN w IS NULL THEN t_to
                ELSE date_bin(w, t_to - interval '1 microsecond', timestamptz '2000-01-01 00:00Z') + w END AS hi
    FROM src
)
SELECT b.* FROM edges e, readings_from_raw(width, e.lo, e.hi, series) b
$$;

-- Dead letters by receive time (the data-quality panel counts a range of them).
CREATE INDEX dead_letter_received_at ON dead_letter (received_at);
-- Alarms by when they opened (the alarm panels and the open-at-a-time predicate).
CREATE INDEX alarm_opened_at ON alarm (opened_at);
