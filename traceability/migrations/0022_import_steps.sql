-- Stage 3 (ledger): the imported cold-chain food flow per batch, derived from the ledger (traceability/ledger/
-- derive.py): one row per lot and ledger event that is a step of it. The steps and their extension fields are
-- those of traceability/epcis/multimodal.py; the rules stage's flow checker follows them (rules/engine/flow.py,
-- which also counts the partial releases and the clearance time from discharge to release). Geofence events
-- (cc:geofence) are no steps: only the flow's own events are.
CREATE TABLE import_step (
    lot_id                text NOT NULL,
    step                  text NOT NULL CHECK (step IN (
                              'discharge', 'inspection', 'disinfection', 'trace_code', 'entry', 'release',
                              'onward')),
    seq                   bigint NOT NULL,
    event_time            timestamptz NOT NULL,
    quantity              double precision,      -- the batch's quantity the step is about (NULL: not stated)
    uom                   text,
    conformant            boolean,               -- inspection: its result; NULL for other steps
    site                  text,                  -- the inspection, disinfection or first receiving site
    certificates          text[],                -- inspection and quarantine certificate numbers
    trace_code            text,                  -- trace_code: the code the first receiving site issued
    disinfection_required boolean,               -- inspection: the result asks for disinfection
    PRIMARY KEY (lot_id, seq, step)
);
CREATE INDEX import_step_seq ON import_step (seq);
CREATE INDEX import_step_trace_code ON import_step (trace_code) WHERE trace_code IS NOT NULL;

CREATE TRIGGER import_step_seqs_insert AFTER INSERT ON import_step REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION derived_seqs_in_ledger('seq');
CREATE TRIGGER import_step_seqs_update AFTER UPDATE ON import_step REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION derived_seqs_in_ledger('seq');

-- The steps of the events no errorDeclaration names: the flow as it stands. Every reader of a lot's steps (the
-- flow checker, the trace, the scan page's trace codes) reads this view; import_step keeps the steps of
-- declared events too (derive changes no row on a declaration), so the rules stage can find the lots a
-- declaration touches (rules.queries.FLOW_LOTS_MOVED).
CREATE VIEW live_import_step AS
SELECT s.* FROM import_step s JOIN ledger_event e ON e.seq = s.seq
WHERE NOT EXISTS (SELECT 1 FROM ledger_event d WHERE d.declares_error AND d.event_id = e.event_id);
