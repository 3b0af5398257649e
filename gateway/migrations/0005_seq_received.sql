-- Stage 1 (ingest): exact gap counting under reordering. device_seq.received counts the readings actually
-- stored per (device, boot); missing = next_seq - received, so batches arriving out of order (several
-- gateways on one shared subscription) or late no longer inflate the count.
ALTER TABLE device_seq ADD COLUMN received bigint NOT NULL DEFAULT 0;
UPDATE device_seq SET received = GREATEST(next_seq - missing, 0);
