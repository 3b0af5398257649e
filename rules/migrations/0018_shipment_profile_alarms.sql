-- Stage 2 (verdicts): readings judged against a shipper's per-shipment alarm profile, and the alarms citing it.

-- A run of readings outside a shipment profile's band ('range') or a recording interval longer than the
-- profile's ('gap'), on an asset while it carried goods for the shipment, under the profile version in force
-- at the readings' device time. Beside the class verdicts, never instead of them: the excursion and
-- chain_break tables, the series and lot verdicts and the ledger know nothing of these rows. Re-judged like
-- the class verdicts (late data replaces the rows of the window it falls in).
CREATE TABLE profile_excursion (
    profile_excursion_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('range', 'gap')),
    series_id       bigint NOT NULL REFERENCES series,
    asset_id        text NOT NULL REFERENCES asset,
    shipment_id     text NOT NULL,
    profile_version integer NOT NULL,
    rule_id         text NOT NULL,                -- shipment/<shipment_id>/range | shipment/<shipment_id>/gap
    source          text NOT NULL,                -- the shipper's specification the version cites
    start_time      timestamptz NOT NULL,         -- device time of the first reading of the run / before the gap
    end_time        timestamptz NOT NULL,         -- device time of the last reading of the run / after the gap
    open            boolean NOT NULL,             -- a range run still outside at the latest reading
    peak_c          double precision,             -- range: the value furthest outside the profile's band
    limit_low_c     double precision,
    limit_high_c    double precision,
    allowed_s       double precision,             -- gap: the profile's recording interval
    readings        integer NOT NULL,
    computed_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (shipment_id, profile_version) REFERENCES shipment_profile ON DELETE CASCADE,
    UNIQUE (series_id, asset_id, rule_id, start_time)
);
CREATE INDEX profile_excursion_asset ON profile_excursion (asset_id, start_time);

-- An alarm raised under a shipment profile cites it: the shipment, the version and the shipper's
-- specification (NULL for the rule packs' alarms, which cite their pack through product_class/pack_version).
ALTER TABLE alarm ADD COLUMN shipment_id text;
ALTER TABLE alarm ADD COLUMN profile_version integer;
ALTER TABLE alarm ADD COLUMN source text;
