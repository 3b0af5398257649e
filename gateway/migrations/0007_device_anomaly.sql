-- Stage 1 (ingest): device anomalies. A (boot, seq) jump beyond gateway_seq_jump_max is recorded here and
-- its skipped range kept in device_seq.skipped, so missing = next_seq - received - skipped counts only
-- readings a device plausibly produced and never delivered.
CREATE TABLE device_anomaly (
    anomaly_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id    text NOT NULL REFERENCES device,
    boot         bigint NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('seq_jump')),
    received_at  timestamptz NOT NULL,          -- gateway receive time of the message
    expected_seq bigint NOT NULL,               -- the next seq the gateway knew of (0 on a new boot)
    seq          bigint NOT NULL,               -- the seq the message carried
    skipped      bigint NOT NULL,               -- seq numbers passed over: seq - expected_seq
    topic        text NOT NULL
);
CREATE INDEX device_anomaly_device ON device_anomaly (device_id, boot);

ALTER TABLE device_seq ADD COLUMN skipped bigint NOT NULL DEFAULT 0;
