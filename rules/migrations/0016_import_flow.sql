-- Stage 2 (verdicts): import-flow violations (rules/engine/flow.py) as chain breaks of kind 'flow'.

-- A flow violation is a chain break of a lot (lot_id), not of a series: no series, the asset holding the lot
-- at the offending step when one is known; rule_id 'flow/<violation>', start and end the offending step's
-- event time, its ledger seq, reason and (step_missing) the missing step in detail. One row per lot, rule,
-- offending step and missing step: a release with neither discharge nor disinfection before it has two.
ALTER TABLE chain_break DROP CONSTRAINT chain_break_kind_check;
ALTER TABLE chain_break ADD CONSTRAINT chain_break_kind_check
    CHECK (kind IN ('gap', 'excursion', 'handoff', 'power', 'door', 'flow'));
ALTER TABLE chain_break ADD CONSTRAINT chain_break_flow_lot CHECK (kind <> 'flow' OR lot_id IS NOT NULL);
CREATE UNIQUE INDEX chain_break_flow
    ON chain_break (lot_id, rule_id, start_time, ((detail ->> 'seq')), (coalesce(detail ->> 'missing', '')))
    WHERE kind = 'flow';

-- The ledger hears of a violation (and of its withdrawal) through the same outbox (payload:
-- rules.models.FlowViolationPayload).
ALTER TABLE verdict_outbox DROP CONSTRAINT verdict_outbox_kind_check;
ALTER TABLE verdict_outbox ADD CONSTRAINT verdict_outbox_kind_check
    CHECK (kind IN ('excursion_closed', 'chain_break', 'lot_verdict', 'verdict_correction', 'flow_violation'));
