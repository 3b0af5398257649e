-- Stage 2 (verdicts): lot verdicts in the ledger outbox, the verdict history and the alarm lifecycle.

-- Lot verdicts reach the ledger through the same outbox (payload: see rules.models.LotVerdictPayload).
ALTER TABLE verdict_outbox DROP CONSTRAINT verdict_outbox_kind_check;
ALTER TABLE verdict_outbox ADD CONSTRAINT verdict_outbox_kind_check
    CHECK (kind IN ('excursion_closed', 'chain_break', 'lot_verdict'));

-- Every version of a verdict: a series on an asset ('series', '<series_id>@<asset_id>') or a lot
-- ('lot', lot_id). A new version is written only when the verdict or its evidence (the excursions
-- and breaks it rests on) changed; it records what arrived (batches, device-time window) and why.
CREATE TABLE verdict_history (
    history_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject_kind  text NOT NULL CHECK (subject_kind IN ('series', 'lot')),
    subject_id    text NOT NULL,
    version       integer NOT NULL,
    verdict       text NOT NULL CHECK (verdict IN ('pass', 'indeterminate', 'excursion', 'broken')),
    product_class text NOT NULL,
    pack_id       text NOT NULL,
    pack_version  text NOT NULL,
    items         jsonb NOT NULL,             -- the evidence: [{kind, rule_id, start, end}, ...] sorted
    reasons       jsonb NOT NULL,             -- human-readable reasons of this verdict
    arrived       jsonb NOT NULL,             -- what arrived: {batch_ids, t_min, t_max}
    change        jsonb NOT NULL,             -- why it changed: {from, to, added: [...], removed: [...]}
    computed_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (subject_kind, subject_id, version)
);

-- Alarms: open -> acknowledged -> resolved; at most one unresolved alarm per asset and rule.
CREATE TABLE alarm (
    alarm_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asset_id        text NOT NULL REFERENCES asset,
    rule_id         text NOT NULL,
    kind            text NOT NULL,             -- excursion | gap | trigger | door | power
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state           text NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    series_id       bigint REFERENCES series,
    product_class   text,
    pack_version    text,
    reason          text NOT NULL,
    condition_start timestamptz NOT NULL,      -- device time the condition began
    condition_end   timestamptz,               -- device time it was last seen / cleared
    peak_c          double precision,
    escalation      integer NOT NULL DEFAULT 0,
    escalated_at    timestamptz,
    opened_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    trigger_committed_at timestamptz,          -- commit time of the ingest batch that raised it
    acknowledged_at timestamptz,
    acknowledged_by text,
    ack_note        text,
    resolved_at     timestamptz,
    resolved_by     text,                      -- 'auto' when the condition cleared
    resolve_note    text,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX alarm_one_open ON alarm (asset_id, rule_id) WHERE state <> 'resolved';
CREATE INDEX alarm_state ON alarm (state, opened_at);
