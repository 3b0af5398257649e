-- Stage 1 (ingest): a seq jump beyond the window is pending until a later message confirms it. The jump
-- message's readings are stored, but its range moves neither next_seq nor received, so the device's own
-- messages below it are still counted (one stray seq cannot switch gap counting off). jump_seq ..
-- jump_next is the pending message's range, jump_received its readings stored; all NULL/0 when none.
ALTER TABLE device_seq ADD COLUMN jump_seq bigint;
ALTER TABLE device_seq ADD COLUMN jump_next bigint;
ALTER TABLE device_seq ADD COLUMN jump_received bigint NOT NULL DEFAULT 0;
