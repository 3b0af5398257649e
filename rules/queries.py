"""Stage 2 (verdicts): the SQL of the rules worker, parameterised; no logic lives here."""

from __future__ import annotations

from typing import Final

# Class limits published for dashboards and the API (one row per product class of the loaded packs).
UPSERT_RULE_CLASS: Final = """
INSERT INTO rule_class (product_class, pack_id, pack_version, description, low_c, high_c, source, updated_at)
VALUES (%(product_class)s, %(pack_id)s, %(pack_version)s, %(description)s, %(low_c)s, %(high_c)s,
        %(source)s, now())
ON CONFLICT (product_class) DO UPDATE SET
    pack_id = EXCLUDED.pack_id, pack_version = EXCLUDED.pack_version, description = EXCLUDED.description,
    low_c = EXCLUDED.low_c, high_c = EXCLUDED.high_c, source = EXCLUDED.source, updated_at = now()
"""

# The gateway->rules outbox: rows other workers hold are skipped, never waited for.
TAKE_TELEMETRY_BATCHES: Final = """
SELECT batch_id, series_ids, t_min, t_max
FROM ingest_batch
WHERE kind = 'telemetry'
ORDER BY batch_id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""

DELETE_BATCHES: Final = "DELETE FROM ingest_batch WHERE batch_id = ANY(%(batch_ids)s)"

# Serialises evaluation of one series across workers that took different batches touching it.
# Two-key form: the first key namespaces the lock (hashtext of a fixed label), the second is the series.
LOCK_SERIES: Final = (
    "SELECT pg_advisory_xact_lock(hashtext('rules.series'), mod(%(series_id)s, 2147483647)::int)"
)

TEMPERATURE_SERIES: Final = """
SELECT series_id, device_id, channel
FROM series
WHERE series_id = ANY(%(series_ids)s) AND (channel = 'temp' OR channel LIKE 'temp:%%')
ORDER BY series_id
"""

# Mounts of the device overlapping [t_lo, t_hi], with the asset's configured class and mode.
MOUNTS_OVERLAPPING: Final = """
SELECT m.asset_id, m.valid_from, m.valid_to, a.product_class, a.mode
FROM device_mount m
JOIN asset a USING (asset_id)
WHERE m.device_id = %(device_id)s
  AND m.valid_from <= %(t_hi)s
  AND (m.valid_to IS NULL OR m.valid_to > %(t_lo)s)
ORDER BY m.valid_from
"""

# Stored verdicts of this series and asset overlapping [t_lo, t_hi]: the window grows to cover them.
STORED_VERDICT_SPAN: Final = """
SELECT min(start_time), max(end_time) FROM (
    SELECT start_time, end_time FROM excursion
    WHERE series_id = %(series_id)s AND asset_id = %(asset_id)s
      AND start_time <= %(t_hi)s AND end_time >= %(t_lo)s
    UNION ALL
    SELECT start_time, end_time FROM chain_break
    WHERE kind = 'gap' AND series_id = %(series_id)s AND asset_id = %(asset_id)s
      AND start_time <= %(t_hi)s AND end_time >= %(t_lo)s
) AS v
"""

# "In range" below mirrors rules.kernels.out_of_range, negated; a NULL limit is no limit.
_IN_RANGE: Final = """
  AND value IS NOT NULL AND value <> 'NaN'::float8
  AND (%(low_c)s::float8 IS NULL OR value > %(low_c)s::float8
       OR (%(low_inclusive)s AND value = %(low_c)s::float8))
  AND (%(high_c)s::float8 IS NULL OR value < %(high_c)s::float8
       OR (%(high_inclusive)s AND value = %(high_c)s::float8))
"""

# The last in-range reading strictly before t: a run of out-of-range readings cannot cross it.
LAST_IN_RANGE_BEFORE: Final = (
    """
SELECT max(time) FROM reading
WHERE series_id = %(series_id)s AND time < %(t)s AND time >= %(seg_lo)s
"""
    + _IN_RANGE
)

# The first in-range reading strictly after t.
FIRST_IN_RANGE_AFTER: Final = (
    """
SELECT min(time) FROM reading
WHERE series_id = %(series_id)s AND time > %(t)s AND time < %(seg_hi)s
"""
    + _IN_RANGE
)

# Readings of the slice, as exact epoch microseconds (NULL value = dropout -> NaN).
READINGS: Final = """
SELECT (extract(epoch FROM time) * 1000000)::int8 AS t_us, value
FROM reading
WHERE series_id = %(series_id)s AND time >= %(t_lo)s AND time <= %(t_hi)s AND time < %(seg_hi)s
ORDER BY time
"""

# Replace the verdicts of a re-evaluated slice: rows lying wholly inside it are recomputed.
DELETE_EXCURSIONS_IN: Final = """
DELETE FROM excursion
WHERE series_id = %(series_id)s AND start_time >= %(t_lo)s AND end_time <= %(t_hi)s
"""

DELETE_GAPS_IN: Final = """
DELETE FROM chain_break
WHERE kind = 'gap' AND series_id = %(series_id)s AND start_time >= %(t_lo)s AND end_time <= %(t_hi)s
"""

UPSERT_EXCURSION: Final = """
INSERT INTO excursion (series_id, asset_id, product_class, rule_id, pack_version, start_time, end_time,
                       open, peak_c, limit_low_c, limit_high_c, readings)
VALUES (%(series_id)s, %(asset_id)s, %(product_class)s, %(rule_id)s, %(pack_version)s, %(start_time)s,
        %(end_time)s, %(open)s, %(peak_c)s, %(limit_low_c)s, %(limit_high_c)s, %(readings)s)
ON CONFLICT (series_id, rule_id, start_time) DO UPDATE SET
    asset_id = EXCLUDED.asset_id, product_class = EXCLUDED.product_class,
    pack_version = EXCLUDED.pack_version, end_time = EXCLUDED.end_time, open = EXCLUDED.open,
    peak_c = EXCLUDED.peak_c, limit_low_c = EXCLUDED.limit_low_c, limit_high_c = EXCLUDED.limit_high_c,
    readings = EXCLUDED.readings, computed_at = now()
"""

UPSERT_GAP: Final = """
INSERT INTO chain_break (kind, series_id, asset_id, rule_id, pack_version, start_time, end_time,
                         allowed_s, detail)
VALUES ('gap', %(series_id)s, %(asset_id)s, %(rule_id)s, %(pack_version)s, %(start_time)s,
        %(end_time)s, %(allowed_s)s, %(detail)s)
ON CONFLICT (kind, series_id, rule_id, start_time) DO UPDATE SET
    asset_id = EXCLUDED.asset_id, pack_version = EXCLUDED.pack_version, end_time = EXCLUDED.end_time,
    allowed_s = EXCLUDED.allowed_s, detail = EXCLUDED.detail, computed_at = now()
"""

# Hand a verdict to the ledger once: the outbox row is written only if no verdict of the same kind,
# series and rule overlapping it in time was emitted before (so late data that moves the start of a
# closed excursion, merges two, or splits a gap does not re-emit it), and the emission is recorded
# in the same statement. Rows of one series are
# evaluated under LOCK_SERIES, so the NOT EXISTS check does not race; the primary key of
# verdict_emitted would turn a race into an error, never into a duplicate.
EMIT_ONCE: Final = """
WITH ob AS (
    INSERT INTO verdict_outbox (kind, payload)
    SELECT %(kind)s, %(payload)s
    WHERE NOT EXISTS (
        SELECT 1 FROM verdict_emitted
        WHERE kind = %(kind)s AND series_id = %(series_id)s AND rule_id = %(rule_id)s
          AND start_time <= %(end_time)s AND end_time >= %(start_time)s
    )
    RETURNING outbox_id
)
INSERT INTO verdict_emitted (kind, series_id, rule_id, start_time, end_time, outbox_id)
SELECT %(kind)s, %(series_id)s, %(rule_id)s, %(start_time)s, %(end_time)s, outbox_id FROM ob
RETURNING outbox_id
"""
