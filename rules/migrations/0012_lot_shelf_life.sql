-- Stage 2 (verdicts): each lot's remaining shelf life, beside its verdict.
-- Written by the rules stage on every judgement of the lot (rules.worker.lots), from the temperature
-- history the lot inherited through containment, under its class's model (Arrhenius or square-root).
-- The figures hold as of `as_of`, the end of the last reading that covers the lot.
CREATE TABLE lot_shelf_life (
    lot_id          text PRIMARY KEY REFERENCES lot ON DELETE CASCADE,
    product_class   text NOT NULL,
    pack_id         text NOT NULL,
    pack_version    text NOT NULL,
    verdict_version integer,                   -- the lot's verdict_history version it goes with
    model           text NOT NULL CHECK (model IN ('arrhenius', 'sqrt')),
    ref_c           double precision NOT NULL, -- the model's reference temperature
    ref_life_h      double precision NOT NULL, -- shelf life at ref_c
    used            double precision NOT NULL CHECK (used >= 0),  -- fraction of ref_life_h consumed
    remaining_h     double precision NOT NULL CHECK (remaining_h >= 0),  -- hours left at ref_c
    evidence_s      double precision NOT NULL CHECK (evidence_s >= 0),   -- time readings cover
    unevidenced_s   double precision NOT NULL CHECK (unevidenced_s >= 0), -- custody time no reading covers
    first_time      timestamptz,               -- start of the lot's first custody leg
    as_of           timestamptz,               -- end of the last reading that covers the lot
    computed_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- FEFO: the lots at a location in order of remaining life.
CREATE INDEX lot_shelf_life_remaining ON lot_shelf_life (remaining_h, lot_id);
