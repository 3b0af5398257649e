-- Stage 2 (verdicts): excursions, chain breaks and the rules->ledger outbox.
-- An excursion: a run of readings of one series outside its class limits for at least the
-- class's minimum duration. Re-evaluation replaces the rows overlapping the re-evaluated window.
CREATE TABLE excursion (
    excursion_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    series_id     bigint NOT NULL REFERENCES series,
    asset_id      text REFERENCES asset,
    product_class text NOT NULL,
    rule_id       text NOT NULL,               -- e.g. cn_food/chilled/range
    pack_version  text NOT NULL,
    start_time    timestamptz NOT NULL,        -- device time of the first out-of-range reading
    end_time      timestamptz NOT NULL,        -- device time of the last out-of-range reading
    open          boolean NOT NULL,            -- still out of range at the latest reading
    peak_c        double precision NOT NULL,   -- furthest value from the limits
    limit_low_c   double precision,
    limit_high_c  double precision,
    readings      integer NOT NULL,
    computed_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (series_id, rule_id, start_time)
);
CREATE INDEX excursion_asset ON excursion (asset_id, start_time);

-- A break in the chain (断链): missing evidence (gap), an excursion beyond the allowance,
-- a handoff nobody monitored, power loss or door open beyond its limit.
CREATE TABLE chain_break (
    chain_break_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('gap', 'excursion', 'handoff', 'power', 'door')),
    series_id      bigint REFERENCES series,
    asset_id       text REFERENCES asset,
    lot_id         text REFERENCES lot,
    rule_id        text NOT NULL,
    pack_version   text NOT NULL,
    start_time     timestamptz NOT NULL,
    end_time       timestamptz NOT NULL,
    allowed_s      double precision NOT NULL,  -- the interval or allowance that was exceeded
    detail         jsonb NOT NULL DEFAULT '{}',
    computed_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, series_id, rule_id, start_time)
);
CREATE INDEX chain_break_asset ON chain_break (asset_id, start_time);

-- Transactional outbox to the ledger: verdicts that matter to a lot. The ledger stage takes rows
-- with FOR UPDATE SKIP LOCKED and deletes them in the transaction that appends the ledger events.
CREATE TABLE verdict_outbox (
    outbox_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('excursion_closed', 'chain_break')),
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The limits of every product class in the loaded rule packs, published by the rules stage at start
-- so that dashboards and the API can show limits without reading pack files.
CREATE TABLE rule_class (
    product_class text PRIMARY KEY,
    pack_id       text NOT NULL,
    pack_version  text NOT NULL,
    description   text NOT NULL,
    low_c         double precision,            -- NULL = no lower limit
    high_c        double precision,            -- NULL = no upper limit
    source        text NOT NULL,               -- standard and clause
    updated_at    timestamptz NOT NULL DEFAULT now()
);
