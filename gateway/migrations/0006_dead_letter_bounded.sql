-- Stage 1 (ingest): a dead letter keeps a bounded prefix of the payload (gateway_dead_letter_prefix_bytes)
-- with the length and sha256 of the whole payload, so one hostile message cannot fill the database and
-- the bytes kept can still be matched against a copy of the full payload.
ALTER TABLE dead_letter
    ADD COLUMN payload_bytes  bigint,          -- length of the whole payload; > length(payload): truncated
    ADD COLUMN payload_sha256 bytea;           -- sha256 of the whole payload
UPDATE dead_letter SET payload_bytes = length(payload), payload_sha256 = sha256(payload);
ALTER TABLE dead_letter ADD CONSTRAINT dead_letter_payload_digest CHECK (
    (payload_bytes IS NULL) = (payload_sha256 IS NULL)
    AND (payload_bytes IS NULL OR (payload_bytes >= length(payload) AND length(payload_sha256) = 32))
);
