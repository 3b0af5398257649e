-- Stage 3 (scorecards): per shipment, what the scorecards judge from its legs, the devices mounted on their
-- assets, the geofence crossings and the hourly rollups: judged once the shipment is over and its data
-- settled (traceability.scorecards.facts), so a quarter's scoreboard reads one row per shipment instead of
-- its tracks. A fact holds nothing that depends on the period asked for or on exemptions (both are applied
-- when it is read), and is dropped when what it was judged from changes: the shipment or its legs, a mount,
-- an asset's place in its vehicle, a crossing (0027) and readings arriving late for its time (the marks
-- below). A shipment without a fact is judged when read, from the same statement.
CREATE TABLE shipment_fact (
    shipment_id  text PRIMARY KEY REFERENCES shipment ON DELETE CASCADE,
    judged_at    timestamptz NOT NULL DEFAULT now(),
    thresholds   text NOT NULL,                  -- the trajectory thresholds judged under (weights file)
    dep_from     timestamptz NOT NULL,           -- the device time its judgement read data over
    dep_to       timestamptz NOT NULL,
    assets       text[] NOT NULL,                -- its legs' assets, in leg order
    carriers     text[] NOT NULL,                -- its legs' carriers
    devices      text[] NOT NULL,                -- devices mounted on those assets during its planned window
    exit_at      timestamptz,                    -- first exit from the origin's geofence in the planned window
    enter_at     timestamptz,                    -- first entry into the destination's
    anomalies    integer,                        -- trajectory anomalies in its transit (NULL: no part judged)
    f_kind       text[] NOT NULL,                -- each anomaly, in time order
    f_from       timestamptz[] NOT NULL,
    f_to         timestamptz[] NOT NULL,
    f_figure     double precision[] NOT NULL,
    leg_nos      integer[] NOT NULL,             -- every leg, and whether it had temperature evidence
    leg_ok       boolean[] NOT NULL,
    h_from_leg   integer[] NOT NULL,             -- each handoff (leg to next leg) and its evidence on each side
    h_to_leg     integer[] NOT NULL,
    h_at         timestamptz[] NOT NULL,
    h_from_asset text[] NOT NULL,
    h_to_asset   text[] NOT NULL,
    h_before     boolean[] NOT NULL,
    h_after      boolean[] NOT NULL,
    CHECK (dep_to > dep_from)
);

-- Readings stored for a time a fact may have been judged over (device time over an hour old when stored:
-- an upload after an outage, a spool replayed, a late device); each drops the facts it overlaps when the
-- judge takes it, and until then keeps them from being read. Written with the gateway's batch, in its
-- transaction; readings newer than that fall after every fact's time (a fact's time ends over two hours
-- before it is judged: traceability.scorecards.facts).
CREATE TABLE shipment_fact_mark (
    mark_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id   bigint NOT NULL,                  -- ingest_batch: taken once the rules worker has consumed it
    series_ids bigint[] NOT NULL,
    t_min      timestamptz NOT NULL,
    t_max      timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- How long after its time a shipment's fact is judged, and how old a stored reading must be to mark facts
-- (one truth: both read this).
CREATE FUNCTION shipment_fact_settle() RETURNS interval LANGUAGE sql IMMUTABLE AS $$ SELECT interval '1 hour' $$;

CREATE FUNCTION shipment_fact_mark_batch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'telemetry' AND cardinality(NEW.series_ids) > 0
       AND NEW.t_min < now() - shipment_fact_settle() THEN
        INSERT INTO shipment_fact_mark (batch_id, series_ids, t_min, t_max)
        VALUES (NEW.batch_id, NEW.series_ids, NEW.t_min, NEW.t_max);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER ingest_batch_shipment_fact AFTER INSERT ON ingest_batch
    FOR EACH ROW EXECUTE FUNCTION shipment_fact_mark_batch();

-- The shipments whose facts the marks overlap: a marked series' device, every asset it was mounted on
-- during the mark (and the vehicle holding such an asset, and the compartments of it), the legs on those
-- assets, the facts whose time meets the mark's.
CREATE FUNCTION shipment_fact_marked(marks bigint[] DEFAULT NULL)
RETURNS TABLE (shipment_id text) LANGUAGE sql STABLE AS $$
WITH mk AS (
    SELECT k.t_min, k.t_max, s.device_id
    FROM shipment_fact_mark k CROSS JOIN LATERAL unnest(k.series_ids) x(series_id)
    JOIN series s ON s.series_id = x.series_id
    WHERE marks IS NULL OR k.mark_id = ANY(marks)
), a AS (
    SELECT DISTINCT m.asset_id, mk.t_min, mk.t_max
    FROM mk JOIN device_mount m ON m.device_id = mk.device_id
         AND m.valid_from <= mk.t_max AND COALESCE(m.valid_to, 'infinity') >= mk.t_min
), aa AS (
    SELECT asset_id, t_min, t_max FROM a
    UNION SELECT x.parent_asset_id, a.t_min, a.t_max FROM a JOIN asset x USING (asset_id)
          WHERE x.parent_asset_id IS NOT NULL
    UNION SELECT c.asset_id, a.t_min, a.t_max FROM a JOIN asset c ON c.parent_asset_id = a.asset_id
)
SELECT DISTINCT f.shipment_id
FROM aa JOIN shipment_leg l ON l.asset_id = aa.asset_id
JOIN shipment_fact f ON f.shipment_id = l.shipment_id AND f.dep_from <= aa.t_max AND f.dep_to >= aa.t_min
$$;
