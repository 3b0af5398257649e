-- Stage 1 (ingest): spool replay counts the records it applies per segment. upto only says how far a
-- segment is applied; records counts each applying transaction, so a record applied twice shows as
-- records > upto + 1 instead of hiding behind GREATEST(upto, ...).
ALTER TABLE gateway_spool_applied ADD COLUMN records bigint NOT NULL DEFAULT 0;
UPDATE gateway_spool_applied SET records = upto + 1;
