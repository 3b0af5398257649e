-- Stage 1 (ingest): TimescaleDB-only: hypertable, compression and retention for readings.
-- Applied only when CREATE EXTENSION timescaledb succeeds; plain PostgreSQL keeps the BRIN index.
SELECT create_hypertable('reading', 'time', chunk_time_interval => interval '1 day', migrate_data => true);
ALTER TABLE reading SET (timescaledb.compress, timescaledb.compress_segmentby = 'series_id',
                         timescaledb.compress_orderby = 'time');
SELECT add_compression_policy('reading', interval '7 days');
