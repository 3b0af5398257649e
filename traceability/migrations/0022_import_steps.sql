-- Stage 3 (ledger): the imported cold-chain food flow per batch, derived from the ledger (traceability/ledger/
-- derive.py): one row per lot and ledger event that is a step of it. The steps and their extension fields are
-- those of traceability/epcis/multimodal.py; the rules stage's flow checker follows them (rules/engine/flow.py,
-- which also counts the partial releases and the clearance time from discharge to release).
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
