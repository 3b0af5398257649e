-- Stage 3 (ledger): append-only hash-chained EPCIS 2.0 events, read-point configuration,
-- and containment / custody legs derived from the ledger.
CREATE TABLE ledger_event (
    seq         bigint PRIMARY KEY,            -- 1, 2, 3, ... no holes
    event_id    text NOT NULL UNIQUE,          -- EPCIS eventID (the event hash when the event had none)
    event_type  text NOT NULL,                 -- ObjectEvent, AggregationEvent, ...
    event_time  timestamptz NOT NULL,
    record_time timestamptz NOT NULL DEFAULT now(),
    biz_step    text,
    event       jsonb NOT NULL,                -- the EPCIS event as stored and hashed
    event_hash  text NOT NULL,                 -- ni:///sha-256;<hex>?ver=CBV2.0
    prev_hash   text NOT NULL,                 -- entry_hash of seq-1 (64 zeros for seq 1)
    entry_hash  text NOT NULL                  -- sha256(prev_hash || event_hash), hex
);
CREATE INDEX ledger_event_time ON ledger_event (event_time);

CREATE FUNCTION ledger_event_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_event is append-only: % refused (record a correction as a new event)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER ledger_event_no_update BEFORE UPDATE OR DELETE ON ledger_event
    FOR EACH ROW EXECUTE FUNCTION ledger_event_refuse_change();
CREATE TRIGGER ledger_event_no_truncate BEFORE TRUNCATE ON ledger_event
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_event_refuse_change();

-- Per-reader configuration: what a tag read at this read point means in business terms.
CREATE TABLE read_point (
    device_id     text PRIMARY KEY REFERENCES device,
    read_point_id text NOT NULL,               -- SGLN of the dock door
    biz_location  text NOT NULL REFERENCES location,
    biz_step      text NOT NULL CHECK (biz_step IN ('shipping', 'receiving', 'storing', 'loading',
                                                    'unloading', 'inspecting', 'arriving', 'departing')),
    disposition   text NOT NULL,
    custodian     text REFERENCES party        -- who holds custody after this step
);

-- Derived from the ledger: "child was inside parent / at location from t0 to t1 (NULL = still)".
CREATE TABLE containment (
    containment_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    child_id       text NOT NULL,              -- EPC or LGTIN class URI
    parent_id      text,                       -- EPC of the enclosing unit or asset
    location_id    text REFERENCES location,
    t0             timestamptz NOT NULL,
    t1             timestamptz,
    start_seq      bigint NOT NULL REFERENCES ledger_event,
    end_seq        bigint REFERENCES ledger_event,
    CHECK ((parent_id IS NULL) <> (location_id IS NULL))
);
CREATE INDEX containment_child ON containment (child_id, t0);
CREATE INDEX containment_parent ON containment (parent_id, t0);

-- Derived from the ledger: a custody leg of a traced unit, from one handoff to the next.
CREATE TABLE custody_leg (
    custody_leg_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    epc            text NOT NULL,              -- the unit that moved (SSCC, SGTIN)
    custodian      text REFERENCES party,
    location_id    text REFERENCES location,   -- where the leg sits (storage) or starts (transport)
    asset_id       text REFERENCES asset,      -- what carried or held it
    t_start        timestamptz NOT NULL,
    t_end          timestamptz,
    start_seq      bigint NOT NULL REFERENCES ledger_event,
    end_seq        bigint REFERENCES ledger_event
);
CREATE INDEX custody_leg_epc ON custody_leg (epc, t_start);
