-- Stage 1 (ingest): spool replay bookkeeping. A gateway that spooled batches to disk while the database
-- was down records, in the transaction that replays a spool record, how far that spool segment is applied,
-- so a crash during replay never stores a record (or its dead letters) twice.
CREATE TABLE gateway_spool_applied (
    segment    text PRIMARY KEY,               -- spool segment file name (unique per gateway run)
    upto       bigint NOT NULL,                -- highest record index of the segment already committed
    applied_at timestamptz NOT NULL DEFAULT now()
);
