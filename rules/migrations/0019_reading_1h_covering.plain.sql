-- Stage 2 (verdicts), the rollups later stages read: the hourly rollup's value columns in an index on
-- (series_id, bucket), so a series' hours over a window (the scorecards' trajectory and evidence checks,
-- hundreds of thousands of windows a quarter) are read from the index alone, not from heap pages the
-- refreshes scattered. Plain PostgreSQL only: on TimescaleDB reading_1h is a continuous aggregate.
CREATE INDEX reading_1h_series_values ON reading_1h (series_id, bucket) INCLUDE (n, sum_c, min_c, max_c);
