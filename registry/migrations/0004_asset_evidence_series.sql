-- Stage 0½, reference data: which series are an asset's evidence, the one definition the rules stage (what it
-- judges an asset on), the trace (a leg's readings and chart) and the dashboards (v_series_mount) read.
--
-- The series of asset p_asset_id, each with the mount it holds through ([valid_from, valid_to), valid_to NULL:
-- still mounted); a series read only while that mount holds:
--   * every series of the devices mounted on the asset, but a probe channel that a compartment of it names
--     (asset.probe): that probe measures the compartment, not the vehicle;
--   * for a compartment (an asset naming a probe), that probe channel of the devices mounted on its parent.
-- A series mounted twice on the asset appears once per mount. Callers pick channels (temperature: temp,
-- temp:<probe>) and clip to their own window. One SELECT, STABLE, not STRICT: the planner inlines it, so a
-- LATERAL call per leg or per asset reads device_mount by its asset index, not a function call per row.
CREATE FUNCTION asset_evidence_series(p_asset_id text)
RETURNS TABLE (series_id bigint, device_id text, channel text, valid_from timestamptz, valid_to timestamptz)
LANGUAGE sql STABLE AS $$
SELECT s.series_id, s.device_id, s.channel, m.valid_from, m.valid_to
FROM device_mount m
JOIN series s ON s.device_id = m.device_id
WHERE m.asset_id = p_asset_id
  AND NOT EXISTS (SELECT 1 FROM asset c WHERE c.parent_asset_id = p_asset_id AND c.probe = s.channel)
UNION ALL
SELECT s.series_id, s.device_id, s.channel, m.valid_from, m.valid_to
FROM asset x
JOIN device_mount m ON m.asset_id = x.parent_asset_id
JOIN series s ON s.device_id = m.device_id AND s.channel = x.probe
WHERE x.asset_id = p_asset_id AND x.probe IS NOT NULL
$$;
