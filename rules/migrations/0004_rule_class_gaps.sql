-- Stage 2 (verdicts): the allowed recording interval of each class, as its pack states it.

-- The longest allowed spacing between temperature records for an asset in storage and in transport
-- (the pack's max_interval; NULL where a pack names none). The trace reads these: one definition.
ALTER TABLE rule_class ADD COLUMN storage_max_gap_s double precision;
ALTER TABLE rule_class ADD COLUMN transport_max_gap_s double precision;
