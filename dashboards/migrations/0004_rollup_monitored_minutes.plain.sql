-- Stage 4 (dashboards): the monitored minutes of a series, by index alone (plain PostgreSQL's rollup table;
-- the TimescaleDB half has its own file). The compliance panels read, for every excursion in a range, the
-- minutes of its series that hold a reading (reading_1m.minutes > 0) between its start and end: one probe
-- per excursion, an index-only scan here rather than a visit of the table's rows (a quarter of 300
-- loggers with an excursion every five days: 80 ms to 20 ms).
CREATE INDEX reading_1m_monitored ON reading_1m (series_id, bucket) WHERE minutes > 0;
