-- Stage 0½, reference data: what the rules stage needs to judge evidence quality: a device's accuracy stated
-- or not, which probe measures a compartment, and the one mapping from an asset to its transport mode.

-- A device states its accuracy or it does not (NULL). The rules stage takes the device's, else its class's,
-- else its pack's default (rules.engine.breaks.device_accuracy): a default written into every device row
-- would hide the class's figure (frozen goods: ±1.0 °C). Rows written before keep the value they hold.
ALTER TABLE device ALTER COLUMN accuracy_c DROP DEFAULT;
ALTER TABLE device ALTER COLUMN accuracy_c DROP NOT NULL;
ALTER TABLE device ADD CONSTRAINT device_accuracy_c_not_negative
    CHECK (accuracy_c >= 0 AND accuracy_c <> 'NaN'::float8);

-- A compartment of a multi-temperature vehicle (an asset with a parent) names the probe channel that measures
-- it (temp or temp:<probe>) on the devices mounted on its parent: that series is judged against the
-- compartment's class, on the compartment, and is the compartment's evidence for the lots it holds.
ALTER TABLE asset ADD COLUMN probe text
    CHECK (probe IS NULL OR ((probe = 'temp' OR probe LIKE 'temp:%') AND parent_asset_id IS NOT NULL));
CREATE UNIQUE INDEX asset_parent_probe ON asset (parent_asset_id, probe) WHERE probe IS NOT NULL;

-- The transport mode an asset's recording interval is chosen by: 'storage', 'road', 'rail', 'sea', or
-- 'transport' (a conveyance of no known mode). The one definition; the rules worker and the dashboards read it.
--   * an asset whose own mode is 'storage', and every cold room: storage;
--   * a reefer truck and a truck compartment: road (GB 29753 is a road-vehicle standard);
--   * a rail wagon: rail; a vessel: sea;
--   * a reefer container or a passive box takes the mode of what it is mounted on (its parent asset, up the
--     chain): a container on a truck chassis is road, on a wagon rail, on a vessel sea; a container mounted on
--     nothing known is sea (the port's containers arrive by sea), a passive box on nothing known 'transport'.
-- NULL for an unknown asset.
CREATE FUNCTION asset_transport_mode(p_asset_id text) RETURNS text
LANGUAGE sql STABLE AS $$
WITH RECURSIVE up AS (
    SELECT a.kind, a.mode, a.parent_asset_id, 0 AS depth FROM asset a WHERE a.asset_id = p_asset_id
    UNION ALL
    -- Carriers are followed only through containers and boxes; 8 levels stop a parent cycle.
    SELECT p.kind, p.mode, p.parent_asset_id, up.depth + 1
    FROM up JOIN asset p ON p.asset_id = up.parent_asset_id
    WHERE up.kind IN ('reefer_container', 'passive_box') AND up.depth < 8
)
SELECT CASE
    WHEN NOT EXISTS (SELECT 1 FROM up) THEN NULL
    WHEN (SELECT mode FROM up WHERE depth = 0) = 'storage' THEN 'storage'
    ELSE COALESCE(
        (SELECT CASE kind WHEN 'cold_room' THEN 'storage'
                          WHEN 'reefer_truck' THEN 'road'
                          WHEN 'truck_compartment' THEN 'road'
                          WHEN 'rail_wagon' THEN 'rail'
                          WHEN 'vessel' THEN 'sea' END
         FROM up WHERE kind NOT IN ('reefer_container', 'passive_box') ORDER BY depth LIMIT 1),
        CASE WHEN EXISTS (SELECT 1 FROM up WHERE kind = 'reefer_container') THEN 'sea' ELSE 'transport' END)
END
$$;
