-- Stage 2 (verdicts): each class's recording interval per transport mode and its humidity limits, as its
-- pack states them (rules.packs: RecordingInterval.limit, Humidity).

-- The interval that applies to an asset in road, rail and sea transport (the pack's own figure for the mode,
-- else its transport interval: the worker writes the one that applies, never NULL for a class). Which mode an
-- asset is in is the registry's asset_transport_mode.
ALTER TABLE rule_class ADD COLUMN road_max_gap_s double precision;
ALTER TABLE rule_class ADD COLUMN rail_max_gap_s double precision;
ALTER TABLE rule_class ADD COLUMN sea_max_gap_s double precision;
-- Relative-humidity limits (%RH, inclusive; NULL: no limit on that side, or none at all).
ALTER TABLE rule_class ADD COLUMN humidity_low_pct double precision;
ALTER TABLE rule_class ADD COLUMN humidity_high_pct double precision;
