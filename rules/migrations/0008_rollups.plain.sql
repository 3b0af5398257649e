-- Stage 2 (verdicts): the readings' rollups on plain PostgreSQL: tables the rules worker keeps.
-- Applied only where TimescaleDB is absent (0008_rollups.timescale.sql is the other half).
--
-- Plain PostgreSQL has no incremental materialised view (REFRESH MATERIALIZED VIEW recomputes all
-- of it), so the rollups are tables: every committed telemetry batch queues its series and device-time
-- range (a trigger on the gateway's ingest_batch, in the gateway's own transaction: nothing is missed,
-- whichever process wrote the batch); rollup_refresh_pending() recomputes exactly the buckets those
-- ranges touch, the minute buckets from the raw rows, the hour buckets from the minute buckets, the
-- day buckets from the hour buckets. A late reading re-aggregates its own buckets, so a rollup row
-- always equals the aggregate of the raw rows committed when it was last refreshed.

CREATE TABLE reading_1m (
    bucket       timestamptz NOT NULL,
    series_id    bigint NOT NULL,
    readings     bigint NOT NULL,
    n            bigint NOT NULL,
    sum_c        double precision,
    min_c        double precision,
    max_c        double precision,
    avg_c        double precision,
    minutes      bigint NOT NULL,
    first_time   timestamptz NOT NULL,
    last_time    timestamptz NOT NULL,
    skewed       bigint NOT NULL,
    lag_max_s    double precision,
    lag_le_1s    bigint NOT NULL,
    lag_le_5s    bigint NOT NULL,
    lag_le_30s   bigint NOT NULL,
    lag_le_60s   bigint NOT NULL,
    lag_le_300s  bigint NOT NULL,
    lag_le_3600s bigint NOT NULL,
    PRIMARY KEY (series_id, bucket)
);
CREATE INDEX reading_1m_bucket ON reading_1m (bucket);
CREATE TABLE reading_1h (LIKE reading_1m INCLUDING ALL);
CREATE TABLE reading_1d (LIKE reading_1m INCLUDING ALL);

CREATE FUNCTION rollup_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'telemetry' AND cardinality(NEW.series_ids) > 0 THEN
        INSERT INTO rollup_pending (series_ids, t_min, t_max) VALUES (NEW.series_ids, NEW.t_min, NEW.t_max);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER ingest_batch_rollup AFTER INSERT ON ingest_batch
    FOR EACH ROW EXECUTE FUNCTION rollup_enqueue();

-- Recompute every bucket of `series` (NULL: every series) overlapping [t_from, t_to], at each width:
-- the minutes from the raw rows (readings_from_raw), the hours from the minutes and the days from the
-- hours (rollup_rebin; both in rules/migrations/0009).
CREATE FUNCTION rollup_rebuild(series bigint[], t_from timestamptz, t_to timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    origin CONSTANT timestamptz := TIMESTAMPTZ '2000-01-01 00:00:00+00';
    which text := CASE WHEN series IS NULL THEN '' ELSE ' AND series_id = ANY($3)' END;
    lo timestamptz;
    hi timestamptz;
    w interval;
    src text;
    dst text;
BEGIN
    lo := date_bin(interval '1 minute', t_from, origin);
    hi := date_bin(interval '1 minute', t_to, origin) + interval '1 minute';
    EXECUTE 'DELETE FROM reading_1m WHERE bucket >= $1 AND bucket < $2' || which USING lo, hi, series;
    EXECUTE 'INSERT INTO reading_1m SELECT * FROM readings_from_raw(interval ''1 minute'', $1, $2, $3)'
        USING lo, hi, series;
    FOREACH w IN ARRAY ARRAY[interval '1 hour', interval '1 day'] LOOP
        src := CASE w WHEN interval '1 hour' THEN 'reading_1m' ELSE 'reading_1h' END;
        dst := CASE w WHEN interval '1 hour' THEN 'reading_1h' ELSE 'reading_1d' END;
        lo := date_bin(w, t_from, origin);
        hi := date_bin(w, t_to, origin) + w;
        EXECUTE format('DELETE FROM %I WHERE bucket >= $1 AND bucket < $2', dst) || which USING lo, hi, series;
        EXECUTE format('INSERT INTO %I SELECT * FROM rollup_rebin($1, $2, $3, $4, $5)', dst)
            USING src, w, lo, hi, series;
    END LOOP;
END
$$;

-- Take up to `max_rows` queued ranges (rows another refresher holds are skipped), recompute their
-- buckets, delete them; return how many ranges were taken (0: the rollups are up to date).
CREATE FUNCTION rollup_refresh_pending(max_rows integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    taken integer;
    groups jsonb;
    g jsonb;
BEGIN
    -- One refresher at a time rewrites buckets (two would delete and insert the same rows). The lock is
    -- taken before any queue row, in the order dashboards.rollups.refresh takes them: no deadlock.
    PERFORM pg_advisory_xact_lock(hashtext('coldchain.rollups'));
    WITH picked AS (
        SELECT pending_id FROM rollup_pending ORDER BY pending_id LIMIT max_rows FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM rollup_pending p USING picked WHERE p.pending_id = picked.pending_id
        RETURNING p.series_ids, p.t_min, p.t_max
    ), per_series AS (
        SELECT s AS series_id, min(gone.t_min) AS t_min, max(gone.t_max) AS t_max
        FROM gone, unnest(gone.series_ids) AS s GROUP BY s
    ), per_range AS (
        SELECT jsonb_build_object('series', jsonb_agg(series_id ORDER BY series_id),
                                  't_min', t_min, 't_max', t_max) AS g
        FROM per_series GROUP BY t_min, t_max
    )
    SELECT (SELECT count(*) FROM gone), coalesce(jsonb_agg(per_range.g), '[]'::jsonb)
    INTO taken, groups FROM per_range;
    IF taken = 0 THEN
        RETURN 0;
    END IF;
    FOR g IN SELECT value FROM jsonb_array_elements(groups) LOOP
        PERFORM rollup_rebuild(ARRAY(SELECT jsonb_array_elements_text(g -> 'series')::bigint),
                               (g ->> 't_min')::timestamptz, (g ->> 't_max')::timestamptz);
    END LOOP;
    RETURN taken;
END
$$;

-- A database that holds readings already: queue them a day at a time, so the rules worker builds their
-- rollups in bounded steps (a fresh database has none and queues nothing).
INSERT INTO rollup_pending (series_ids, t_min, t_max)
SELECT array_agg(DISTINCT series_id), min(time), max(time)
FROM reading
GROUP BY date_bin(interval '1 day', time, TIMESTAMPTZ '2000-01-01 00:00:00+00');
