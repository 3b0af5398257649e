"""Stage 2 (verdicts): the SQL of shipment profiles: the version in force, and the profile_excursion rows."""

from __future__ import annotations

from typing import Final

# Whether any shipment with a profile has a leg on the asset (by id, or a container leg by the asset's
# ISO 6346 EPC, as shipment_of_asset matches them), or the series holds profile rows on it: without either,
# the asset's readings are judged by the class alone.
MAY_HAVE_PROFILE: Final = """
SELECT EXISTS (
    SELECT 1 FROM shipment_leg l
    JOIN shipment_profile p USING (shipment_id)
    LEFT JOIN asset a ON a.asset_id = %(asset_id)s
    WHERE l.asset_id = %(asset_id)s
       OR (l.container_number IS NOT NULL AND a.epc = 'urn:epc:id:bic:' || l.container_number)
) OR EXISTS (
    SELECT 1 FROM profile_excursion
    WHERE asset_id = %(asset_id)s AND series_id = ANY(%(series_ids)s)
)
"""

# Per device time (epoch µs): the shipment the asset carried goods for then (shipment_of_asset) and the
# newest version of its profile created at or before that time. Times under no profile are left out.
PROFILE_AT: Final = """
SELECT t.us, p.shipment_id, p.version, p.low_c, p.high_c, p.max_gap_s, p.source
FROM unnest(%(times_us)s::int8[]) AS t(us)
CROSS JOIN LATERAL (SELECT timestamptz 'epoch' + t.us * interval '1 microsecond' AS at) d
CROSS JOIN LATERAL (
    SELECT sp.shipment_id, sp.version, sp.low_c, sp.high_c, sp.max_gap_s, sp.source
    FROM shipment_profile sp
    WHERE sp.shipment_id = shipment_of_asset(%(asset_id)s, d.at) AND sp.created_at <= d.at
    ORDER BY sp.version DESC
    LIMIT 1
) p
"""

# The stored profile rows of the asset's series overlapping [t_lo, t_hi]: the window grows to cover them.
STORED_SPAN: Final = """
SELECT min(start_time), max(end_time) FROM profile_excursion
WHERE asset_id = %(asset_id)s AND series_id = ANY(%(series_ids)s)
  AND start_time <= %(t_hi)s AND end_time >= %(t_lo)s
"""

# The stored profile rows of one series on the asset wholly inside [t_lo, t_hi] (what a re-judging replaces).
STORED_IN: Final = """
SELECT kind, rule_id, start_time, end_time, open FROM profile_excursion
WHERE asset_id = %(asset_id)s AND series_id = %(series_id)s AND kind = %(kind)s
  AND start_time >= %(t_lo)s AND end_time <= %(t_hi)s
"""

DELETE_IN: Final = """
DELETE FROM profile_excursion
WHERE asset_id = %(asset_id)s AND series_id = %(series_id)s AND kind = %(kind)s
  AND start_time >= %(t_lo)s AND end_time <= %(t_hi)s
"""

UPSERT: Final = """
INSERT INTO profile_excursion (kind, series_id, asset_id, shipment_id, profile_version, rule_id, source,
                               start_time, end_time, open, peak_c, limit_low_c, limit_high_c, allowed_s,
                               readings)
VALUES (%(kind)s, %(series_id)s, %(asset_id)s, %(shipment_id)s, %(profile_version)s, %(rule_id)s,
        %(source)s, %(start_time)s, %(end_time)s, %(open)s, %(peak_c)s, %(limit_low_c)s, %(limit_high_c)s,
        %(allowed_s)s, %(readings)s)
ON CONFLICT (series_id, asset_id, rule_id, start_time) DO UPDATE SET
    kind = EXCLUDED.kind, shipment_id = EXCLUDED.shipment_id, profile_version = EXCLUDED.profile_version,
    source = EXCLUDED.source, end_time = EXCLUDED.end_time, open = EXCLUDED.open, peak_c = EXCLUDED.peak_c,
    limit_low_c = EXCLUDED.limit_low_c, limit_high_c = EXCLUDED.limit_high_c,
    allowed_s = EXCLUDED.allowed_s, readings = EXCLUDED.readings, computed_at = now()
"""

OPEN_ON_ASSET: Final = """
SELECT 1 FROM profile_excursion WHERE asset_id = %(asset_id)s AND rule_id = %(rule_id)s AND open LIMIT 1
"""
