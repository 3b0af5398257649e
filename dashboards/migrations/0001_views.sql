-- Stage 4 (dashboards): read-only views Grafana queries. Plain SQL that runs on PostgreSQL 15+ and on
-- TimescaleDB alike (date_bin in the panels, never time_bucket); the views own no data.

-- Each asset with the limits of its configured product class (NULL limits: no class, or no limit).
CREATE VIEW v_asset_limits AS
SELECT a.asset_id,
       a.name          AS asset_name,
       a.kind          AS asset_kind,
       a.mode,
       a.product_class,
       rc.low_c,
       rc.high_c,
       rc.description  AS class_description,
       rc.pack_id,
       rc.pack_version,
       rc.source       AS limit_source
FROM asset a
LEFT JOIN rule_class rc ON rc.product_class = a.product_class;

-- Temperature readings (channels temp and temp:<probe>) attributed to the asset the device was
-- mounted on at the reading's device time. A filter on "time" reaches the reading table (BRIN index,
-- hypertable chunk exclusion). temp_c NULL is a dropout.
CREATE VIEW v_asset_temperature AS
SELECT r.time,
       m.asset_id,
       a.name      AS asset_name,
       s.device_id,
       s.channel,
       r.series_id,
       r.value     AS temp_c
FROM reading r
JOIN series s ON s.series_id = r.series_id
JOIN device_mount m ON m.device_id = s.device_id
                   AND m.valid_from <= r.time
                   AND (m.valid_to IS NULL OR r.time < m.valid_to)
JOIN asset a ON a.asset_id = m.asset_id
WHERE s.channel = 'temp' OR s.channel LIKE 'temp:%';

-- Every excursion with its asset, device channel, limits as evaluated and duration.
CREATE VIEW v_excursions AS
SELECT e.excursion_id,
       e.asset_id,
       a.name                                       AS asset_name,
       e.product_class,
       s.device_id,
       s.channel,
       e.rule_id,
       e.pack_version,
       e.start_time,
       e.end_time,
       e.open,
       e.peak_c,
       e.limit_low_c,
       e.limit_high_c,
       e.readings,
       extract(epoch FROM e.end_time - e.start_time)::double precision AS duration_s,
       e.computed_at
FROM excursion e
JOIN series s ON s.series_id = e.series_id
LEFT JOIN asset a ON a.asset_id = e.asset_id;

-- What an operator acts on now: excursions still open, or closed within the last 24 hours.
CREATE VIEW v_open_excursions AS
SELECT *
FROM v_excursions
WHERE open OR end_time > now() - interval '24 hours';

-- Every break in the chain with its asset, lot and series, and how long it lasted against its allowance.
CREATE VIEW v_chain_breaks AS
SELECT b.chain_break_id,
       b.kind,
       b.asset_id,
       a.name                                       AS asset_name,
       b.lot_id,
       l.description                                AS lot_description,
       s.device_id,
       s.channel,
       b.rule_id,
       b.pack_version,
       b.start_time,
       b.end_time,
       extract(epoch FROM b.end_time - b.start_time)::double precision AS duration_s,
       b.allowed_s,
       b.detail,
       b.computed_at
FROM chain_break b
LEFT JOIN series s ON s.series_id = b.series_id
LEFT JOIN asset a ON a.asset_id = b.asset_id
LEFT JOIN lot l ON l.lot_id = b.lot_id;
