-- Stage 2 (verdicts): readings per series and bucket of any width, from the raw rows or a rollup.
-- The one place that chooses the source by the bucket width a panel asks for: a day or wider reads
-- reading_1d, an hour or wider reading_1h, a minute or wider reading_1m, anything finer the raw rows.
-- The rollup's buckets are re-binned into `width` buckets (date_bin, origin 2000-01-01 UTC); a rollup
-- bucket straddling a range edge counts whole, so the edges are as fine as the source's buckets.
-- `series` NULL: every series. Same result columns as the rollup relations.
-- One row of readings per series and bucket: the rollups' columns, and what every function below returns.
CREATE TYPE reading_bin AS (
    bucket timestamptz, series_id bigint, readings bigint, n bigint, sum_c double precision,
    min_c double precision, max_c double precision, avg_c double precision, minutes bigint,
    first_time timestamptz, last_time timestamptz, skewed bigint, lag_max_s double precision,
    lag_le_1s bigint, lag_le_5s bigint, lag_le_30s bigint, lag_le_60s bigint,
    lag_le_300s bigint, lag_le_3600s bigint
);

-- The readings of `series` (NULL: every series) in [t_from, t_to), per series and date_bin(width)
-- bucket, with every rollup column: the one aggregation of raw rows, which the minute rollup (plain
-- PostgreSQL), readings_binned's finest widths and the panels' raw reference path all read.
CREATE FUNCTION readings_from_raw(width interval, t_from timestamptz, t_to timestamptz,
                                  series bigint[] DEFAULT NULL)
RETURNS SETOF reading_bin
LANGUAGE sql STABLE AS $$
SELECT date_bin(width, r.time, TIMESTAMPTZ '2000-01-01 00:00:00+00'), r.series_id,
       count(*), count(r.value), sum(r.value), min(r.value), max(r.value), avg(r.value),
       count(DISTINCT date_bin(interval '1 minute', r.time, TIMESTAMPTZ '2000-01-01 00:00:00+00'))
           FILTER (WHERE r.value IS NOT NULL),
       min(r.time), max(r.time),
       count(*) FILTER (WHERE r.flags & 1 = 1),
       max(extract(epoch FROM r.received_at - r.time))::double precision,
       count(*) FILTER (WHERE r.received_at - r.time <= interval '1 second'),
       count(*) FILTER (WHERE r.received_at - r.time <= interval '5 seconds'),
       count(*) FILTER (WHERE r.received_at - r.time <= interval '30 seconds'),
       count(*) FILTER (WHERE r.received_at - r.time <= interval '60 seconds'),
       count(*) FILTER (WHERE r.received_at - r.time <= interval '300 seconds'),
       count(*) FILTER (WHERE r.received_at - r.time <= interval '3600 seconds')
FROM reading r
WHERE r.time >= t_from AND r.time < t_to AND (series IS NULL OR r.series_id = ANY(series))
GROUP BY 1, 2
$$;

-- The rows of rollup `src` (reading_1m, _1h or _1d) whose buckets start in [lo, hi), re-binned into
-- date_bin(width) buckets: the one aggregation of rollup rows, which the hour and day rollups (plain
-- PostgreSQL) and readings_binned's coarser widths read.
CREATE FUNCTION rollup_rebin(src text, width interval, lo timestamptz, hi timestamptz,
                             series bigint[] DEFAULT NULL)
RETURNS SETOF reading_bin
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF src NOT IN ('reading_1m', 'reading_1h', 'reading_1d') THEN
        RAISE EXCEPTION 'rollup_rebin: % is not a rollup', src;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT date_bin($4, bucket, TIMESTAMPTZ ''2000-01-01 00:00:00+00''), series_id,'
        ' sum(readings)::bigint, sum(n)::bigint, sum(sum_c), min(min_c), max(max_c),'
        ' sum(sum_c) / NULLIF(sum(n), 0), sum(minutes)::bigint, min(first_time), max(last_time),'
        ' sum(skewed)::bigint, max(lag_max_s), sum(lag_le_1s)::bigint, sum(lag_le_5s)::bigint,'
        ' sum(lag_le_30s)::bigint, sum(lag_le_60s)::bigint, sum(lag_le_300s)::bigint,'
        ' sum(lag_le_3600s)::bigint'
        ' FROM %I WHERE bucket >= $1 AND bucket < $2', src)
        || CASE WHEN series IS NULL THEN '' ELSE ' AND series_id = ANY($3)' END || ' GROUP BY 1, 2'
        USING lo, hi, series, width;
END
$$;

CREATE FUNCTION readings_binned(width interval, t_from timestamptz, t_to timestamptz,
                                series bigint[] DEFAULT NULL)
RETURNS SETOF reading_bin
LANGUAGE plpgsql STABLE AS $$
DECLARE
    which text := CASE WHEN series IS NULL THEN '' ELSE ' AND series_id = ANY($3)' END;
    src text;
    src_width interval;
BEGIN
    IF width >= interval '1 day' THEN
        src := 'reading_1d'; src_width := interval '1 day';
    ELSIF width >= interval '1 hour' THEN
        src := 'reading_1h'; src_width := interval '1 hour';
    ELSIF width >= interval '1 minute' THEN
        src := 'reading_1m'; src_width := interval '1 minute';
    END IF;
    IF src IS NULL THEN
        -- EXECUTE: planned for these arguments (a series array or none), never a generic plan.
        RETURN QUERY EXECUTE 'SELECT * FROM readings_from_raw($1, $2, $3, $4)'
            USING width, t_from, t_to, series;
    ELSIF width = src_width THEN
        -- The rollup's own buckets: read them as they are, nothing to re-bin.
        RETURN QUERY EXECUTE format(
            'SELECT bucket, series_id, readings, n, sum_c, min_c, max_c, avg_c, minutes, first_time,'
            ' last_time, skewed, lag_max_s, lag_le_1s, lag_le_5s, lag_le_30s, lag_le_60s, lag_le_300s,'
            ' lag_le_3600s FROM %I WHERE bucket > $1 - $4 AND bucket < $2', src) || which
            USING t_from, t_to, series, src_width;
    ELSE
        -- Every rollup bucket overlapping [t_from, t_to): those starting after t_from - its width.
        RETURN QUERY SELECT * FROM rollup_rebin(src, width, t_from - src_width + interval '1 microsecond',
                                                t_to, series);
    END IF;
END
$$;
