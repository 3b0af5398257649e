-- Stage 2 (verdicts): the verdicts already handed to the ledger outbox, so that re-evaluation
-- (late data, a redelivered batch, a second worker) never emits the same verdict twice.
-- verdict_outbox rows are deleted by the ledger stage once consumed, so they cannot serve as this
-- record. A verdict overlapping in time an emitted one of the same kind, series and rule counts as
-- the same verdict (late data may move its start or merge/split it) and is not emitted again.
CREATE TABLE verdict_emitted (
    kind        text NOT NULL CHECK (kind IN ('excursion_closed', 'chain_break')),
    series_id   bigint NOT NULL REFERENCES series,
    rule_id     text NOT NULL,
    start_time  timestamptz NOT NULL,
    end_time    timestamptz NOT NULL,          -- as emitted; a later amendment does not re-emit
    outbox_id   bigint NOT NULL,               -- the verdict_outbox row written (may be consumed since)
    emitted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, series_id, rule_id, start_time)
);
