-- Stage 2 (verdicts): the readings' rollups: the queue of raw-row ranges whose rollups are out of date.
-- reading_1m, reading_1h and reading_1d hold per series and bucket the same columns on every server:
-- on TimescaleDB continuous aggregates (0008_rollups.timescale.sql), on plain PostgreSQL tables the
-- rules worker keeps from this queue (0008_rollups.plain.sql). A trigger fills it on plain PostgreSQL
-- only; on TimescaleDB it stays empty and refresh policies do the work.
CREATE TABLE rollup_pending (
    pending_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    series_ids bigint[] NOT NULL,
    t_min      timestamptz NOT NULL,
    t_max      timestamptz NOT NULL
);
