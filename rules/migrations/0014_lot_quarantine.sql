-- Stage 2 (verdicts): lots whose judging raised, kept with their error so that the run goes on.

-- A lot whose judging raised is rolled back to a savepoint of its own: the run's other lots and batches
-- are judged and the custody watermark advances. The lot waits here with its error (the `rules/quarantine`
-- alarm open on the asset holding it) until a later judging of it, on its next telemetry or custody
-- change, succeeds.
CREATE TABLE lot_quarantine (
    lot_id         text PRIMARY KEY,
    product_class  text NOT NULL,
    asset_id       text,                  -- the asset holding it when quarantined (NULL: none)
    arrived        jsonb NOT NULL,        -- what its judging was for (a window on an asset, custody seqs)
    error          text NOT NULL,         -- the exception's type and first line
    quarantined_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX lot_quarantine_asset ON lot_quarantine (asset_id);
