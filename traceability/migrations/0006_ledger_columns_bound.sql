-- Stage 3 (ledger): every served column of a ledger row is bound to its chained bytes, and biz_step is the
-- bare CBV name whatever form the event gave (EQ_bizStep and the derivation compare bare names).
-- Until now the CHECK of 0004 bound the jsonb, event_id and event_type (and passed a row whose event lacked
-- the key: NULL is not false); event_time (the EPCIS time filters), biz_step (EQ_bizStep) and
-- declares_error (which events a trace marks as declared wrong) were free: with the triggers disabled, a row
-- could be hidden from a time window or unmarked, and `verify` would not see it. biz_step held the bizStep
-- as given, so an event using the Web URI of a CBV step did not match EQ_bizStep with its name, nor start a
-- custody leg. Such events already in a ledger keep the derived rows they got (none): this migration does
-- not re-derive. Adding the constraint reads every row under an exclusive lock on ledger_event.

-- These columns are not chained: aligning them with the events changes no hash. The ledger refuses
-- UPDATE, so for these statements the refusal is lifted (inside this migration's transaction).
-- event_time: an eventTime with more than six fraction digits was truncated, PostgreSQL rounds.
ALTER TABLE ledger_event DISABLE TRIGGER ledger_event_no_update;
UPDATE ledger_event SET biz_step = CASE
        WHEN biz_step LIKE 'https://ref.gs1.org/cbv/BizStep-%' THEN substr(biz_step, 33)
        ELSE substr(biz_step, 27) END
    WHERE biz_step LIKE 'https://ref.gs1.org/cbv/BizStep-%' OR biz_step LIKE 'urn:epcglobal:cbv:bizstep:%';
UPDATE ledger_event SET event_time = (event->>'eventTime')::timestamptz
    WHERE event_jcs IS NOT NULL AND event_time <> (event->>'eventTime')::timestamptz;
UPDATE ledger_event SET declares_error = event ? 'errorDeclaration'
    WHERE event_jcs IS NOT NULL AND declares_error <> (event ? 'errorDeclaration');
ALTER TABLE ledger_event ENABLE TRIGGER ledger_event_no_update;

ALTER TABLE ledger_event DROP CONSTRAINT ledger_event_event_is_jcs;
ALTER TABLE ledger_event ADD CONSTRAINT ledger_event_event_is_jcs CHECK (
    event_jcs IS NULL
    OR (event = convert_from(event_jcs, 'UTF8')::jsonb
        AND event_id IS NOT DISTINCT FROM event->>'eventID'
        AND event_type IS NOT DISTINCT FROM event->>'type'
        AND event_time IS NOT DISTINCT FROM (event->>'eventTime')::timestamptz
        AND biz_step IS NOT DISTINCT FROM (CASE
            WHEN event->>'bizStep' LIKE 'https://ref.gs1.org/cbv/BizStep-%' THEN substr(event->>'bizStep', 33)
            WHEN event->>'bizStep' LIKE 'urn:epcglobal:cbv:bizstep:%' THEN substr(event->>'bizStep', 27)
            ELSE event->>'bizStep' END)
        AND declares_error = (event ? 'errorDeclaration'))
);
