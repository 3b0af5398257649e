-- Stage 2 (verdicts): corrections of verdicts the ledger holds, and a queue where nothing waits forever.

-- What the ledger holds of each emitted verdict: its id (the ledger event's cc:verdictId), the asset it
-- was judged on and a fingerprint of its figures. Late data that changes an emitted verdict replaces
-- its row and sends a 'verdict_correction' to the ledger (an errorDeclaration of the old event, with
-- the new verdict event as its corrective event); one that removes it withdraws the row the same way.
ALTER TABLE verdict_emitted ADD COLUMN asset_id text;
ALTER TABLE verdict_emitted ADD COLUMN verdict_id text;
ALTER TABLE verdict_emitted ADD COLUMN fingerprint text;  -- NULL: emitted before fingerprints were kept
UPDATE verdict_emitted
SET verdict_id = kind || ':' || rule_id || ':' || series_id || ':'
    || floor(extract(epoch FROM start_time) * 1000)::bigint;
ALTER TABLE verdict_emitted ALTER COLUMN verdict_id SET NOT NULL;
CREATE INDEX verdict_emitted_span ON verdict_emitted (series_id, start_time);

ALTER TABLE verdict_outbox DROP CONSTRAINT verdict_outbox_kind_check;
ALTER TABLE verdict_outbox ADD CONSTRAINT verdict_outbox_kind_check
    CHECK (kind IN ('excursion_closed', 'chain_break', 'lot_verdict', 'verdict_correction'));

-- The device time up to which a lot version's evidence was judged: data arriving at or before it is
-- late for that version, and a changed result then corrects the version the ledger holds.
ALTER TABLE verdict_history ADD COLUMN span_end timestamptz;

-- Telemetry the worker could not judge yet: its device had no mount, or the asset no class, over part
-- of the window. One row per series (windows merged); `registry_sig` is what the device's judging
-- depends on in the registry (its mounts, their assets' classes and modes, the custody legs on them) as
-- it was, so the row is taken again as soon as that changes, not on every run.
CREATE TABLE rules_waiting (
    series_id    bigint PRIMARY KEY REFERENCES series,
    device_id    text NOT NULL,
    t_min        timestamptz NOT NULL,
    t_max        timestamptz NOT NULL,
    batch_ids    bigint[] NOT NULL,        -- the latest ingest_batch ids folded in (at most 100)
    reason       text NOT NULL CHECK (reason IN ('unmounted', 'no_class', 'requeued')),
    registry_sig text NOT NULL,
    noted_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- An ingest_batch row whose evaluation raised: taken off the queue with its error so the queue goes on
-- (the readings stay in `reading`); an operator re-queues it once the cause is fixed (it then waits in
-- rules_waiting, taken on the next run).
CREATE TABLE batch_quarantine (
    batch_id       bigint PRIMARY KEY,
    series_ids     bigint[] NOT NULL,
    t_min          timestamptz NOT NULL,
    t_max          timestamptz NOT NULL,
    created_at     timestamptz NOT NULL,   -- when the gateway committed it
    error          text NOT NULL,          -- the exception's type and first line
    quarantined_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
