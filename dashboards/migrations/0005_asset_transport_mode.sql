-- Stage 4 (dashboards): an asset's allowed recording interval by its transport mode (road, rail, sea,
-- storage), as the rules stage judges gaps: the mode is the registry's asset_transport_mode, the interval
-- of each mode the one rule_class publishes for it (NULL until the rules stage has published it: then the
-- class's transport interval). An asset whose class names none (or that has no class) is allowed one hour.
CREATE OR REPLACE VIEW v_asset_scope AS
SELECT a.asset_id,
       a.name                                        AS asset_name,
       a.kind                                        AS asset_kind,
       a.mode,
       a.product_class,
       CASE WHEN p.role = 'carrier' THEN a.operator_party_id END AS carrier_id,
       CASE WHEN p.role = 'carrier' THEN p.name END  AS carrier_name,
       a.location_id                                 AS site_id,
       l.name                                        AS site_name,
       l.lat                                         AS site_lat,
       l.lon                                         AS site_lon,
       rc.low_c,
       rc.high_c,
       COALESCE(CASE tm.transport_mode
                    WHEN 'storage' THEN rc.storage_max_gap_s
                    WHEN 'road' THEN COALESCE(rc.road_max_gap_s, rc.transport_max_gap_s)
                    WHEN 'rail' THEN COALESCE(rc.rail_max_gap_s, rc.transport_max_gap_s)
                    WHEN 'sea' THEN COALESCE(rc.sea_max_gap_s, rc.transport_max_gap_s)
                    ELSE rc.transport_max_gap_s END,
                3600)::double precision              AS allowed_s,
       tm.transport_mode
FROM asset a
CROSS JOIN LATERAL (SELECT asset_transport_mode(a.asset_id) AS transport_mode) tm
LEFT JOIN party p ON p.party_id = a.operator_party_id
LEFT JOIN location l ON l.location_id = a.location_id
LEFT JOIN rule_class rc ON rc.product_class = a.product_class;
