-- Stage 3 (capture): a capture job lists the events of its document that the ledger held already, with
-- the same content (idempotent captures), each as {"eventID": ..., "seq": ...}.
ALTER TABLE capture_job ADD COLUMN already_captured jsonb NOT NULL DEFAULT '[]';
