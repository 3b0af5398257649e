-- Stage 3 (ledger): RFID reads of readers that had no read point, kept to be turned into events once one is
-- configured. Until now the worker only logged such reads: a dock door registered after its reader went live
-- never got the events of the goods it had already seen.
-- One row per reader: the time range of its reads that no read point mapped (widened as more arrive). The
-- ledger worker moves a row back to the rfid outbox (ingest_batch) as soon as the reader has a read point.
CREATE TABLE rfid_unmapped (
    device_id text PRIMARY KEY REFERENCES device,
    t_min     timestamptz NOT NULL,
    t_max     timestamptz NOT NULL,
    noted_at  timestamptz NOT NULL DEFAULT now()   -- the last time reads were left unmapped
);

-- The reads already left unmapped (readers with reads and still no read point).
INSERT INTO rfid_unmapped (device_id, t_min, t_max)
SELECT r.device_id, min(r.time), max(r.time) FROM rfid_read r
WHERE NOT EXISTS (SELECT 1 FROM read_point p WHERE p.device_id = r.device_id)
GROUP BY r.device_id;
