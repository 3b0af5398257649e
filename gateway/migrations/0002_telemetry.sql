-- Stage 1 (ingest): raw telemetry, RFID reads, dead letters and the gateway->rules outbox.
-- Narrow readings: one row per (series, device time). The unique key absorbs redelivery.
CREATE TABLE reading (
    time        timestamptz NOT NULL,          -- device time, as sent
    series_id   bigint NOT NULL REFERENCES series,
    value       double precision,              -- NULL = dropout (NaN in the kernels)
    received_at timestamptz NOT NULL,          -- gateway receive time
    flags       smallint NOT NULL DEFAULT 0,   -- bit 0: device time ahead of receive time beyond tolerance
    UNIQUE (series_id, time)
);
CREATE INDEX reading_time_brin ON reading USING brin (time);

CREATE TABLE rfid_read (
    time        timestamptz NOT NULL,
    device_id   text NOT NULL REFERENCES device,  -- the reader
    epc         text NOT NULL,                    -- EPC pure-identity URI
    antenna     integer,
    rssi        double precision,
    received_at timestamptz NOT NULL,
    UNIQUE (device_id, epc, time)
);
CREATE INDEX rfid_read_time ON rfid_read (time);

CREATE TABLE device_event (
    time        timestamptz NOT NULL,
    device_id   text NOT NULL REFERENCES device,
    kind        text NOT NULL,                    -- door, power, defrost, setpoint, alarm
    value       jsonb NOT NULL,
    received_at timestamptz NOT NULL,
    UNIQUE (device_id, kind, time)
);

CREATE TABLE device_status (
    device_id  text PRIMARY KEY REFERENCES device,
    status     text NOT NULL,                     -- online / offline (Last Will)
    updated_at timestamptz NOT NULL
);

-- Per device and boot: highest sequence seen, and readings produced but never received.
CREATE TABLE device_seq (
    device_id text NOT NULL,
    boot      bigint NOT NULL,
    next_seq  bigint NOT NULL,
    missing   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, boot)
);

-- Anything the gateway could not accept: raw bytes kept, with the reason.
CREATE TABLE dead_letter (
    dead_letter_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at    timestamptz NOT NULL,
    topic          text NOT NULL,
    payload        bytea NOT NULL,
    reason         text NOT NULL,                 -- reason code, e.g. malformed_json, schema, device_mismatch
    detail         text NOT NULL DEFAULT ''
);
CREATE INDEX dead_letter_reason ON dead_letter (reason);

-- Transactional outbox: one row per committed gateway batch. Consumers take rows with
-- FOR UPDATE SKIP LOCKED and delete them in the transaction that writes their results.
CREATE TABLE ingest_batch (
    batch_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('telemetry', 'rfid', 'event')),
    created_at timestamptz NOT NULL DEFAULT now(),
    series_ids bigint[] NOT NULL DEFAULT '{}',    -- telemetry: series touched
    device_ids text[] NOT NULL DEFAULT '{}',      -- rfid/event: devices touched
    t_min      timestamptz NOT NULL,              -- min device time in the batch
    t_max      timestamptz NOT NULL               -- max device time in the batch
);
CREATE INDEX ingest_batch_kind ON ingest_batch (kind, batch_id);
