-- Stage 2 (verdicts): each class's mean-kinetic-temperature rule, as its pack states it.

-- The MKT limit, the rolling window it is judged over and ΔH/R (NULL where the class sets no MKT rule).
-- The trace reads these for an excursion's MKT over the class's window: one definition, the pack's.
ALTER TABLE rule_class ADD COLUMN mkt_limit_c double precision;
ALTER TABLE rule_class ADD COLUMN mkt_window_s double precision;
ALTER TABLE rule_class ADD COLUMN mkt_dh_r_k double precision;
