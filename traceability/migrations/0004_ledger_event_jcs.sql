-- Stage 3 (ledger): bind each event's canonical bytes into the chain (fast full verification).
-- event_jcs = the RFC 8785 (JCS) canonical UTF-8 bytes of the stored event; entry_hash now covers
-- sha256(event_jcs) (see traceability/ledger.py). Rows written before this migration have no
-- event_jcs and fail verification (there are none in production).
ALTER TABLE ledger_event ADD COLUMN event_jcs bytea;

-- What the API serves (the jsonb) and what is indexed (event_id, event_type) is what the chain covers:
-- a validated CHECK holds for every row, whatever triggers are disabled; `verify` checks that this
-- constraint is still present, validated and unchanged instead of re-parsing every event.
ALTER TABLE ledger_event ADD CONSTRAINT ledger_event_event_is_jcs CHECK (
    event_jcs IS NULL
    OR (event = convert_from(event_jcs, 'UTF8')::jsonb
        AND event_id = event->>'eventID'
        AND event_type = event->>'type')
);

-- Rows now carry the event twice (jsonb and bytes, ~1.4 KB together) and pass the default 2 KB TOAST
-- threshold, where PostgreSQL would compress them in place; verification reads every row's bytes, so keep
-- rows up to a page uncompressed and inline.
ALTER TABLE ledger_event SET (toast_tuple_target = 8160);
