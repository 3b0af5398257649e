-- Stage 3 (ledger): RFID reads of readers that had no read point, kept to be turned into events once one is
-- configured. Until now the worker only logged such reads: a dock door registered after its reader went live
-- never got the events of the goods it had already seen.
-- One row per reader: the time range of its reads that no read point mapped (widened as more arrive). The
-- ledger worker moves a row back to the rfid outbox (ingest_batch) as soon as the reader has a read point.
-- Reads stored before this migration are not entered: a reader without a read point now may have had one
-- when its reads came, and its reads then are events already (re-reading them under a new read point would
-- append other events for them).
CREATE TABLE rfid_unmapped (
    device_id text PRIMARY KEY REFERENCES device,
    t_min     timestamptz NOT NULL,
    t_max     timestamptz NOT NULL,
    noted_at  timestamptz NOT NULL DEFAULT now()   -- the last time reads were left unmapped
);
