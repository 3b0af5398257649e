-- Stage 2 (verdicts): readings per series and bucket of any width, from the raw rows or a rollup.
-- The one place that chooses the source by the bucket width a panel asks for: a day or wider reads
-- reading_1d, an hour or wider reading_1h, a minute or wider reading_1m, anything finer the raw rows.
-- The rollup's buckets are re-binned into `width` buckets (date_bin, origin 2000-01-01 UTC); a rollup
-- bucket straddling a range edge counts whole, so the edges are as fine as the source's buckets.
-- `series` NULL: every series. Same result columns as the rollup relations.
CREATE FUNCTION readings_binned(width interval, t_from timestamptz, t_to timestamptz,
                                series bigint[] DEFAULT NULL)
RETURNS TABLE (bucket timestamptz, series_id bigint, readings bigint, n bigint, sum_c double precision,
               min_c double precision, max_c double precision, avg_c double precision, minutes bigint,
               first_time timestamptz, last_time timestamptz, skewed bigint, lag_max_s double precision,
               lag_le_1s bigint, lag_le_5s bigint, lag_le_30s bigint, lag_le_60s bigint,
               lag_le_300s bigint, lag_le_3600s bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    origin CONSTANT timestamptz := TIMESTAMPTZ '2000-01-01 00:00:00+00';
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
        RETURN QUERY EXECUTE
            'SELECT date_bin($4, time, $5), series_id, count(*), count(value), sum(value), min(value),'
            ' max(value), avg(value), count(DISTINCT date_bin(interval ''1 minute'', time, $5))'
            '  FILTER (WHERE value IS NOT NULL), min(time), max(time),'
            ' count(*) FILTER (WHERE flags & 1 = 1),'
            ' max(extract(epoch FROM received_at - time))::double precision,'
            ' count(*) FILTER (WHERE received_at - time <= interval ''1 second''),'
            ' count(*) FILTER (WHERE received_at - time <= interval ''5 seconds''),'
            ' count(*) FILTER (WHERE received_at - time <= interval ''30 seconds''),'
            ' count(*) FILTER (WHERE received_at - time <= interval ''60 seconds''),'
            ' count(*) FILTER (WHERE received_at - time <= interval ''300 seconds''),'
            ' count(*) FILTER (WHERE received_at - time <= interval ''3600 seconds'')'
            ' FROM reading WHERE time >= $1 AND time < $2' || which || ' GROUP BY 1, 2'
            USING t_from, t_to, series, width, origin;
    ELSIF width = src_width THEN
        -- The rollup's own buckets: read them as they are, nothing to re-bin.
        RETURN QUERY EXECUTE format(
            'SELECT bucket, series_id, readings, n, sum_c, min_c, max_c, avg_c, minutes, first_time,'
            ' last_time, skewed, lag_max_s, lag_le_1s, lag_le_5s, lag_le_30s, lag_le_60s, lag_le_300s,'
            ' lag_le_3600s FROM %I WHERE bucket > $1 - $4 AND bucket < $2', src) || which
            USING t_from, t_to, series, src_width;
    ELSE
        RETURN QUERY EXECUTE format(
            'SELECT date_bin($4, bucket, $5), series_id, sum(readings)::bigint, sum(n)::bigint,'
            ' sum(sum_c), min(min_c), max(max_c), sum(sum_c) / NULLIF(sum(n), 0), sum(minutes)::bigint,'
            ' min(first_time), max(last_time), sum(skewed)::bigint, max(lag_max_s),'
            ' sum(lag_le_1s)::bigint, sum(lag_le_5s)::bigint, sum(lag_le_30s)::bigint,'
            ' sum(lag_le_60s)::bigint, sum(lag_le_300s)::bigint, sum(lag_le_3600s)::bigint'
            ' FROM %I WHERE bucket > $1 - $6 AND bucket < $2', src) || which || ' GROUP BY 1, 2'
            USING t_from, t_to, series, width, origin, src_width;
    END IF;
END
$$;
