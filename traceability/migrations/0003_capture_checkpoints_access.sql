-- Stage 3 (ledger): capture jobs, error declarations, signed checkpoints, lot lineage, bonded status,
-- API keys and the inspectors' audit log.

-- An errorDeclaration repeats the eventID of the event it declares wrong (EPCIS 2.0 7.4.1.2), so an
-- eventID may appear twice: once as the event, once as its declaration.
ALTER TABLE ledger_event ADD COLUMN declares_error boolean NOT NULL DEFAULT false;
ALTER TABLE ledger_event DROP CONSTRAINT ledger_event_event_id_key;
CREATE UNIQUE INDEX ledger_event_event_id ON ledger_event (event_id, declares_error);
CREATE INDEX ledger_event_biz_step ON ledger_event (biz_step, event_time);

-- GS1 REST bindings capture job: one per POST /epcis/capture (all or nothing: captureErrorBehaviour
-- 'rollback').
CREATE TABLE capture_job (
    capture_id  text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    running     boolean NOT NULL,
    success     boolean NOT NULL,
    events      integer NOT NULL DEFAULT 0,
    first_seq   bigint,
    last_seq    bigint,
    errors      jsonb NOT NULL DEFAULT '[]',
    captured_by text
);

-- Ed25519 signatures over the chain head; append-only like the ledger.
CREATE TABLE ledger_checkpoint (
    checkpoint_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq           bigint NOT NULL REFERENCES ledger_event,
    entry_hash    text NOT NULL,
    signed_at     timestamptz NOT NULL,
    public_key    text NOT NULL,               -- raw 32-byte Ed25519 public key, lowercase hex
    signature     text NOT NULL                -- 64-byte signature, lowercase hex
);
CREATE TRIGGER ledger_checkpoint_no_update BEFORE UPDATE OR DELETE ON ledger_checkpoint
    FOR EACH ROW EXECUTE FUNCTION ledger_event_refuse_change();

-- Lot lineage from TransformationEvents: input lot/EPC -> output lot/EPC.
CREATE TABLE lineage (
    input_id   text NOT NULL,
    output_id  text NOT NULL,
    seq        bigint NOT NULL REFERENCES ledger_event,
    event_time timestamptz NOT NULL,
    PRIMARY KEY (input_id, output_id, seq)
);
CREATE INDEX lineage_output ON lineage (output_id);

-- Bonded status per lot as the ledger says it: first-line entry admission, second-line release.
CREATE TABLE bonded_status (
    lot_id     text NOT NULL,
    status     text NOT NULL CHECK (status IN ('bonded', 'released', 'domestic')),
    line       text CHECK (line IN ('first', 'second')),
    seq        bigint NOT NULL REFERENCES ledger_event,
    event_time timestamptz NOT NULL,
    PRIMARY KEY (lot_id, seq)
);

-- Business transactions (B/L, rail waybill, through document) named by events, for trace lookups.
CREATE TABLE biz_transaction (
    biz_transaction text NOT NULL,
    type            text,
    seq             bigint NOT NULL REFERENCES ledger_event,
    PRIMARY KEY (biz_transaction, seq)
);

CREATE TABLE api_key (
    key_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL,
    role       text NOT NULL CHECK (role IN ('inspector', 'operator', 'capture', 'admin')),
    key_hash   text NOT NULL UNIQUE,           -- sha256 of the secret, hex; the secret is never stored
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

CREATE TABLE audit_log (
    audit_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    key_id     bigint REFERENCES api_key,
    role       text NOT NULL,
    method     text NOT NULL,
    path       text NOT NULL,
    query      text NOT NULL DEFAULT '',
    status     integer NOT NULL
);
CREATE INDEX audit_log_key ON audit_log (key_id, at);

-- Every identifier an event names (epcList, childEPCs, parentID, input/output lists, quantity classes),
-- for the trace query and MATCH_epc lookups without scanning the event JSON.
CREATE TABLE event_subject (
    subject_id text NOT NULL,
    seq        bigint NOT NULL REFERENCES ledger_event,
    role       text NOT NULL,                  -- epc, child, parent, input, output, class
    PRIMARY KEY (subject_id, seq, role)
);
CREATE INDEX event_subject_seq ON event_subject (seq);
