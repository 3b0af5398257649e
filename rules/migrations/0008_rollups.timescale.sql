-- Stage 2 (verdicts): the readings' rollups on TimescaleDB: real-time continuous aggregates.
-- Applied only when CREATE EXTENSION timescaledb succeeds (0008_rollups.plain.sql is the other half):
-- the same relation names and columns, kept by TimescaleDB's refresh policies; each hour aggregate is
-- built on the minute one and the day on the hour (hierarchical, TimescaleDB 2.9+), and each reads
-- the raw rows its last refresh has not covered yet (materialized_only = false), so a panel never lags.

CREATE MATERIALIZED VIEW reading_1m WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(interval '1 minute', time) AS bucket,
       series_id,
       count(*) AS readings,
       count(value) AS n,
       sum(value) AS sum_c,
       min(value) AS min_c,
       max(value) AS max_c,
       avg(value) AS avg_c,
       max(CASE WHEN value IS NULL THEN 0 ELSE 1 END)::bigint AS minutes,
       min(time) AS first_time,
       max(time) AS last_time,
       sum(CASE WHEN flags & 1 = 1 THEN 1 ELSE 0 END)::bigint AS skewed,
       max(extract(epoch FROM received_at - time))::double precision AS lag_max_s,
       sum(CASE WHEN received_at - time <= interval '1 second' THEN 1 ELSE 0 END)::bigint AS lag_le_1s,
       sum(CASE WHEN received_at - time <= interval '5 seconds' THEN 1 ELSE 0 END)::bigint AS lag_le_5s,
       sum(CASE WHEN received_at - time <= interval '30 seconds' THEN 1 ELSE 0 END)::bigint AS lag_le_30s,
       sum(CASE WHEN received_at - time <= interval '60 seconds' THEN 1 ELSE 0 END)::bigint AS lag_le_60s,
       sum(CASE WHEN received_at - time <= interval '300 seconds' THEN 1 ELSE 0 END)::bigint AS lag_le_300s,
       sum(CASE WHEN received_at - time <= interval '3600 seconds' THEN 1 ELSE 0 END)::bigint AS lag_le_3600s
FROM reading
GROUP BY 1, 2
WITH NO DATA;

CREATE MATERIALIZED VIEW reading_1h WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(interval '1 hour', bucket) AS bucket,
       series_id,
       sum(readings)::bigint AS readings,
       sum(n)::bigint AS n,
       sum(sum_c) AS sum_c,
       min(min_c) AS min_c,
       max(max_c) AS max_c,
       sum(sum_c) / NULLIF(sum(n), 0) AS avg_c,
       sum(minutes)::bigint AS minutes,
       min(first_time) AS first_time,
       max(last_time) AS last_time,
       sum(skewed)::bigint AS skewed,
       max(lag_max_s) AS lag_max_s,
       sum(lag_le_1s)::bigint AS lag_le_1s,
       sum(lag_le_5s)::bigint AS lag_le_5s,
       sum(lag_le_30s)::bigint AS lag_le_30s,
       sum(lag_le_60s)::bigint AS lag_le_60s,
       sum(lag_le_300s)::bigint AS lag_le_300s,
       sum(lag_le_3600s)::bigint AS lag_le_3600s
FROM reading_1m
GROUP BY 1, 2
WITH NO DATA;

CREATE MATERIALIZED VIEW reading_1d WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(interval '1 day', bucket) AS bucket,
       series_id,
       sum(readings)::bigint AS readings,
       sum(n)::bigint AS n,
       sum(sum_c) AS sum_c,
       min(min_c) AS min_c,
       max(max_c) AS max_c,
       sum(sum_c) / NULLIF(sum(n), 0) AS avg_c,
       sum(minutes)::bigint AS minutes,
       min(first_time) AS first_time,
       max(last_time) AS last_time,
       sum(skewed)::bigint AS skewed,
       max(lag_max_s) AS lag_max_s,
       sum(lag_le_1s)::bigint AS lag_le_1s,
       sum(lag_le_5s)::bigint AS lag_le_5s,
       sum(lag_le_30s)::bigint AS lag_le_30s,
       sum(lag_le_60s)::bigint AS lag_le_60s,
       sum(lag_le_300s)::bigint AS lag_le_300s,
       sum(lag_le_3600s)::bigint AS lag_le_3600s
FROM reading_1h
GROUP BY 1, 2
WITH NO DATA;

-- Each policy's window reaches back to the beginning (start_offset NULL): a refresh recomputes only
-- the buckets whose raw rows changed since the last one (TimescaleDB's invalidation log), so a late
-- reading of any age (a logger read out on arrival, a spooled gateway) is rolled up, and a database
-- that held readings before this migration has them all materialised by the first run.
SELECT add_continuous_aggregate_policy('reading_1m', start_offset => NULL,
       end_offset => interval '1 minute', schedule_interval => interval '1 minute');
SELECT add_continuous_aggregate_policy('reading_1h', start_offset => NULL,
       end_offset => interval '1 hour', schedule_interval => interval '10 minutes');
SELECT add_continuous_aggregate_policy('reading_1d', start_offset => NULL,
       end_offset => interval '1 day', schedule_interval => interval '1 hour');

-- Refresh policies do the work: nothing is queued on TimescaleDB.
CREATE FUNCTION rollup_refresh_pending(max_rows integer DEFAULT 1000) RETURNS integer
LANGUAGE sql AS $$ SELECT 0 $$;
