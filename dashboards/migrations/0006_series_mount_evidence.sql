-- Stage 4 (dashboards): each asset's series as the registry's asset_evidence_series defines its evidence, the
-- same the rules stage judges it on and the trace shows: a compartment of a multi-temperature vehicle has
-- the probe it names on the vehicle's devices, the vehicle its own devices' series but those probes.
-- [valid_from, valid_to): the mount the series holds through (valid_to 'infinity': still mounted). is_temp: a
-- temperature channel (temp, temp:<probe>). The function is joined once per asset (LATERAL, inlined).
CREATE OR REPLACE VIEW v_series_mount AS
SELECT e.series_id,
       e.device_id,
       e.channel,
       (e.channel = 'temp' OR e.channel LIKE 'temp:%') AS is_temp,
       a.asset_id,
       e.valid_from,
       COALESCE(e.valid_to, 'infinity')                AS valid_to
FROM asset a
CROSS JOIN LATERAL asset_evidence_series(a.asset_id) e;
