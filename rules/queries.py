"""Stage 2 (verdicts): the SQL of the rules worker, parameterised; no logic lives here."""

from __future__ import annotations

from typing import Final

# Class limits published for dashboards and the API (one row per product class of the loaded packs).
UPSERT_RULE_CLASS: Final = """
INSERT INTO rule_class (product_class, pack_id, pack_version, description, low_c, high_c, source,
                        storage_max_gap_s, transport_max_gap_s, mkt_limit_c, mkt_window_s, mkt_dh_r_k,
                        road_max_gap_s, rail_max_gap_s, sea_max_gap_s, humidity_low_pct, humidity_high_pct,
                        updated_at)
VALUES (%(product_class)s, %(pack_id)s, %(pack_version)s, %(description)s, %(low_c)s, %(high_c)s,
        %(source)s, %(storage_max_gap_s)s, %(transport_max_gap_s)s, %(mkt_limit_c)s, %(mkt_window_s)s,
        %(mkt_dh_r_k)s, %(road_max_gap_s)s, %(rail_max_gap_s)s, %(sea_max_gap_s)s, %(humidity_low_pct)s,
        %(humidity_high_pct)s, now())
ON CONFLICT (product_class) DO UPDATE SET
    pack_id = EXCLUDED.pack_id, pack_version = EXCLUDED.pack_version, description = EXCLUDED.description,
    low_c = EXCLUDED.low_c, high_c = EXCLUDED.high_c, source = EXCLUDED.source,
    storage_max_gap_s = EXCLUDED.storage_max_gap_s, transport_max_gap_s = EXCLUDED.transport_max_gap_s,
    mkt_limit_c = EXCLUDED.mkt_limit_c, mkt_window_s = EXCLUDED.mkt_window_s,
    mkt_dh_r_k = EXCLUDED.mkt_dh_r_k, road_max_gap_s = EXCLUDED.road_max_gap_s,
    rail_max_gap_s = EXCLUDED.rail_max_gap_s, sea_max_gap_s = EXCLUDED.sea_max_gap_s,
    humidity_low_pct = EXCLUDED.humidity_low_pct, humidity_high_pct = EXCLUDED.humidity_high_pct,
    updated_at = now()
"""

# The gateway->rules outbox: rows other workers hold are skipped, never waited for.
TAKE_TELEMETRY_BATCHES: Final = """
SELECT batch_id, series_ids, t_min, t_max, created_at
FROM ingest_batch
WHERE kind = 'telemetry'
ORDER BY batch_id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""

# The readings' rollups: recompute the buckets of queued raw-row ranges (rules/migrations/0008).
REFRESH_ROLLUPS: Final = "SELECT rollup_refresh_pending(%(max_rows)s)"

DELETE_BATCHES: Final = "DELETE FROM ingest_batch WHERE batch_id = ANY(%(batch_ids)s)"

# What waits for the rules stage (its metrics): telemetry rows, and the age in seconds of the oldest (0 when
# none). Both on the (kind, batch_id) index.
QUEUE_STATE: Final = """
SELECT count(*),
       coalesce(extract(epoch FROM clock_timestamp() - (
           SELECT created_at FROM ingest_batch WHERE kind = 'telemetry' ORDER BY batch_id LIMIT 1)), 0)
FROM ingest_batch
WHERE kind = 'telemetry'
"""

# Serialises evaluation of one series across workers that took different batches touching it.
# Two-key form: the first key namespaces the lock (hashtext of a fixed label), the second is the series.
LOCK_SERIES: Final = (
    "SELECT pg_advisory_xact_lock(hashtext('rules.series'), mod(%(series_id)s, 2147483647)::int)"
)

# Serialises the judging of one lot (its verdict_history versions) across workers; taken in lot order,
# after every series lock of the run.
LOCK_LOT: Final = "SELECT pg_advisory_xact_lock(hashtext('rules.lot'), hashtext(%(lot_id)s))"

TEMPERATURE_SERIES: Final = """
SELECT series_id, device_id, channel
FROM series
WHERE series_id = ANY(%(series_ids)s) AND (channel = 'temp' OR channel LIKE 'temp:%%')
ORDER BY series_id
"""

# Mounts of the device overlapping [t_lo, t_hi], with the asset a series of `channel` is judged on, its
# configured class, its transport mode (registry's asset_transport_mode) and whether it is a compartment: a
# probe channel that a compartment of the mounted asset names (asset.probe) is that compartment's evidence.
MOUNTS_OVERLAPPING: Final = """
SELECT a.asset_id, m.valid_from, m.valid_to, a.product_class, asset_transport_mode(a.asset_id),
       c.asset_id IS NOT NULL AS compartment
FROM device_mount m
LEFT JOIN asset c ON c.parent_asset_id = m.asset_id AND c.probe = %(channel)s
JOIN asset a ON a.asset_id = COALESCE(c.asset_id, m.asset_id)
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

# "Clearing" below mirrors rules.kernels.hyst_runs: in range and at least the hysteresis inside the
# limits (with hyst_c = 0: rules.kernels.out_of_range, negated); a NULL limit is no limit.
_IN_RANGE: Final = """
  AND value IS NOT NULL AND value <> 'NaN'::float8
  AND (%(low_c)s::float8 IS NULL OR value > %(low_c)s::float8
       OR (%(low_inclusive)s AND value = %(low_c)s::float8))
  AND (%(high_c)s::float8 IS NULL OR value < %(high_c)s::float8
       OR (%(high_inclusive)s AND value = %(high_c)s::float8))
  AND (%(low_c)s::float8 IS NULL OR value >= %(low_c)s::float8 + %(hyst_c)s::float8)
  AND (%(high_c)s::float8 IS NULL OR value <= %(high_c)s::float8 - %(hyst_c)s::float8)
"""

# The last clearing reading strictly before t: an excursion run cannot cross it.
LAST_IN_RANGE_BEFORE: Final = (
    """
SELECT max(time) FROM reading
WHERE series_id = %(series_id)s AND time < %(t)s AND time >= %(seg_lo)s
"""
    + _IN_RANGE
)

# The first clearing reading strictly after t.
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

# -- telemetry that waits for the registry, and batches that raised (rules.worker.queue) ---------------
# What judging a device's telemetry depends on in the registry, hashed: its mounts, their assets' classes
# and modes, and how many custody legs each asset has (an asset without a class is judged by its lots);
# the same of each compartment of a mounted asset (a child asset naming a probe of its devices).
_REGISTRY_SIG = """
(SELECT md5(coalesce(string_agg(concat_ws('|', m.asset_id, m.valid_from, m.valid_to, a.product_class, a.mode,
            (SELECT count(*) FROM custody_leg cl WHERE cl.asset_id = m.asset_id),
            (SELECT string_agg(concat_ws('|', c.asset_id, c.probe, c.product_class, c.mode,
                        (SELECT count(*) FROM custody_leg cl WHERE cl.asset_id = c.asset_id)),
                    ',' ORDER BY c.asset_id)
             FROM asset c WHERE c.parent_asset_id = m.asset_id AND c.probe IS NOT NULL)),
        ';' ORDER BY m.valid_from, m.asset_id), ''))
 FROM device_mount m JOIN asset a USING (asset_id) WHERE m.device_id = {device})
"""
NOTE_WAITING: Final = (
    """
INSERT INTO rules_waiting (series_id, device_id, t_min, t_max, batch_ids, reason, registry_sig)
VALUES (%(series_id)s, %(device_id)s, %(t_min)s, %(t_max)s, %(batch_ids)s, %(reason)s, """
    + _REGISTRY_SIG.format(device="%(device_id)s")
    + """)
ON CONFLICT (series_id) DO UPDATE SET
    t_min = least(rules_waiting.t_min, excluded.t_min),
    t_max = greatest(rules_waiting.t_max, excluded.t_max),
    batch_ids = (rules_waiting.batch_ids || excluded.batch_ids)[
        greatest(1, cardinality(rules_waiting.batch_ids) + cardinality(excluded.batch_ids) - 99):],
    reason = excluded.reason,
    registry_sig = excluded.registry_sig,
    noted_at = clock_timestamp()
"""
)
# Waiting telemetry whose registry changed since it was noted, taken off the table (the run judges it
# and notes it again if it still cannot be judged).
TAKE_WAITING: Final = (
    """
DELETE FROM rules_waiting WHERE series_id IN (
    SELECT w.series_id FROM rules_waiting w
    WHERE w.registry_sig <> """
    + _REGISTRY_SIG.format(device="w.device_id")
    + """
    ORDER BY w.series_id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
RETURNING series_id, t_min, t_max, batch_ids, noted_at
"""
)
# Take one telemetry row off the queue for quarantine (none: another worker took it meanwhile).
QUARANTINE_BATCH: Final = """
WITH gone AS (
    DELETE FROM ingest_batch WHERE batch_id = %(batch_id)s AND kind = 'telemetry'
    RETURNING batch_id, series_ids, t_min, t_max, created_at
)
INSERT INTO batch_quarantine (batch_id, series_ids, t_min, t_max, created_at, error)
SELECT batch_id, series_ids, t_min, t_max, created_at, %(error)s FROM gone
RETURNING batch_id
"""
# Take a waiting window that raised off rules_waiting into quarantine, under its latest batch id.
QUARANTINE_WAITING: Final = """
WITH gone AS (
    DELETE FROM rules_waiting WHERE series_id = %(series_id)s
    RETURNING series_id, t_min, t_max, batch_ids, noted_at
)
INSERT INTO batch_quarantine (batch_id, series_ids, t_min, t_max, created_at, error)
SELECT (SELECT max(b) FROM unnest(batch_ids) b), ARRAY[series_id], t_min, t_max, noted_at, %(error)s
FROM gone
ON CONFLICT (batch_id) DO UPDATE SET
    series_ids = (SELECT array_agg(DISTINCT s ORDER BY s)
                  FROM unnest(batch_quarantine.series_ids || excluded.series_ids) s),
    t_min = least(batch_quarantine.t_min, excluded.t_min),
    t_max = greatest(batch_quarantine.t_max, excluded.t_max),
    error = excluded.error
RETURNING batch_id
"""
# The assets a quarantined batch's series were on over its window, with their configured classes (the
# worker resolves the class each is judged by).
ASSETS_OF_SERIES: Final = """
SELECT DISTINCT m.asset_id, a.product_class
FROM series s
JOIN device_mount m USING (device_id)
JOIN asset a USING (asset_id)
WHERE s.series_id = ANY(%(series_ids)s)
  AND m.valid_from <= %(t_hi)s AND (m.valid_to IS NULL OR m.valid_to > %(t_lo)s)
ORDER BY m.asset_id
"""
# A quarantined batch back to the worker: its series wait with a signature no registry has, so the next
# run takes them.
REQUEUE_QUARANTINED: Final = """
WITH back AS (
    DELETE FROM batch_quarantine WHERE batch_id = %(batch_id)s
    RETURNING batch_id, series_ids, t_min, t_max
)
INSERT INTO rules_waiting AS w (series_id, device_id, t_min, t_max, batch_ids, reason, registry_sig)
SELECT s.series_id, s.device_id, b.t_min, b.t_max, ARRAY[b.batch_id], 'requeued', ''
FROM back b JOIN series s ON s.series_id = ANY(b.series_ids)
ON CONFLICT (series_id) DO UPDATE SET
    t_min = least(w.t_min, excluded.t_min), t_max = greatest(w.t_max, excluded.t_max),
    batch_ids = w.batch_ids || excluded.batch_ids, reason = 'requeued', registry_sig = ''
RETURNING series_id
"""
QUARANTINED: Final = """
SELECT batch_id, series_ids, t_min, t_max, created_at, error, quarantined_at
FROM batch_quarantine ORDER BY batch_id
"""
# Whether anything quarantined is still on the asset: a batch whose series were on it over the batch's
# window (as ASSETS_OF_SERIES finds them), or a lot it held when the lot was quarantined.
QUARANTINE_REMAINS: Final = """
SELECT EXISTS (
    SELECT 1 FROM batch_quarantine q
    JOIN series s ON s.series_id = ANY(q.series_ids)
    JOIN device_mount m USING (device_id)
    WHERE m.asset_id = %(asset_id)s
      AND m.valid_from <= q.t_max AND (m.valid_to IS NULL OR m.valid_to > q.t_min)
) OR EXISTS (SELECT 1 FROM lot_quarantine WHERE asset_id = %(asset_id)s)
"""
# The asset holding a lot now (the open custody leg of the lot or of a unit containing it, a leg without an
# asset counting for the fixed asset at its location), its configured class and when the leg began.
LOT_HOLDER: Final = """
SELECT a.asset_id, a.product_class, cl.t_start, now()
FROM custody_leg cl
LEFT JOIN asset fa ON cl.asset_id IS NULL AND fa.location_id = cl.location_id
JOIN asset a ON a.asset_id = COALESCE(cl.asset_id, fa.asset_id)
WHERE cl.t_end IS NULL
  AND (cl.epc = %(lot_id)s
       OR EXISTS (SELECT 1 FROM containment c
                  WHERE c.child_id = %(lot_id)s AND c.parent_id = cl.epc AND c.t1 IS NULL))
ORDER BY cl.t_start DESC, a.asset_id
LIMIT 1
"""
# A lot whose judging raised, with its error (rules migration 0014); judged again on its next touch.
QUARANTINE_LOT: Final = """
INSERT INTO lot_quarantine (lot_id, product_class, asset_id, arrived, error)
VALUES (%(lot_id)s, %(product_class)s, %(asset_id)s, %(arrived)s, %(error)s)
ON CONFLICT (lot_id) DO UPDATE SET
    product_class = excluded.product_class, asset_id = excluded.asset_id, arrived = excluded.arrived,
    error = excluded.error, quarantined_at = clock_timestamp()
"""
# A quarantined lot judged without error leaves quarantine; returns the asset its alarm was raised on.
RELEASE_LOT: Final = "DELETE FROM lot_quarantine WHERE lot_id = %(lot_id)s RETURNING asset_id, now()"


# -- what the ledger holds (rules.worker.corrections) ---------------------------------------------------
# Rows of one series are judged under LOCK_SERIES, so reading and replacing what the ledger holds does
# not race; the primary key of verdict_emitted would turn a race into an error, never into a duplicate.
# The emitted verdicts of a kind, series and rule overlapping a span, locked: a new verdict keeps,
# replaces or adds to them. Spans that only touch (a gap ending at the reading the next one starts at)
# are two verdicts; one with the same start is the same verdict (an MKT break is an instant).
EMITTED_OVERLAPPING: Final = """
SELECT verdict_id, start_time, end_time, fingerprint, asset_id FROM verdict_emitted
WHERE kind = %(kind)s AND series_id = %(series_id)s AND rule_id = %(rule_id)s
  AND ((start_time < %(end_time)s AND end_time > %(start_time)s) OR start_time = %(start_time)s)
ORDER BY start_time
FOR UPDATE
"""
# The emitted verdicts of these rules lying wholly inside a re-judged window of the series on the asset.
EMITTED_INSIDE: Final = """
SELECT verdict_id, rule_id, start_time, end_time FROM verdict_emitted
WHERE kind = %(kind)s AND series_id = %(series_id)s AND rule_id = ANY(%(rule_ids)s)
  AND (asset_id = %(asset_id)s OR asset_id IS NULL)
  AND start_time >= %(t_lo)s AND end_time <= %(t_hi)s
ORDER BY start_time
FOR UPDATE
"""
FORGET_EMITTED: Final = "DELETE FROM verdict_emitted WHERE verdict_id = ANY(%(verdict_ids)s)"
OUTBOX: Final = (
    "INSERT INTO verdict_outbox (kind, payload) VALUES (%(kind)s, %(payload)s) RETURNING outbox_id"
)
NOTE_EMITTED: Final = """
INSERT INTO verdict_emitted
    (kind, series_id, rule_id, start_time, end_time, outbox_id, asset_id, verdict_id, fingerprint)
VALUES (%(kind)s, %(series_id)s, %(rule_id)s, %(start_time)s, %(end_time)s, %(outbox_id)s, %(asset_id)s,
        %(verdict_id)s, %(fingerprint)s)
"""


# -- alarms (rules.alarms) ------------------------------------------------------------------------------

_ALARM_COLUMNS = """
alarm_id, asset_id, rule_id, kind, severity, state, series_id, product_class, pack_version, reason,
condition_start, condition_end, peak_c, escalation, escalated_at, opened_at, trigger_committed_at,
acknowledged_at, acknowledged_by, ack_note, resolved_at, resolved_by, resolve_note, updated_at,
shipment_id, profile_version, source
"""

_ALARM_FILTERS = """ FROM alarm
WHERE (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(asset_id)s::text IS NULL OR asset_id = %(asset_id)s)
  AND (%(severity)s::text IS NULL OR severity = %(severity)s)
  AND (%(kind)s::text IS NULL OR kind = %(kind)s)"""
# A reader of the trace API sees the alarms of an asset whose condition began while it may read the asset:
# cc_sees_asset_at(role, party, asset, at), the one definition of who sees an asset when (the ledger stage's
# migration 0020, applied after this stage's).
_ALARM_SEEN = (
    " AND (cc_sees_all(%(role)s) OR cc_sees_asset_at(%(role)s, %(party)s, asset_id, condition_start))"
)
_ALARM_ORDER = " ORDER BY alarm_id DESC LIMIT %(limit)s"
ALARM_LIST: Final = "SELECT " + _ALARM_COLUMNS + _ALARM_FILTERS + _ALARM_ORDER
ALARM_LIST_SEEN: Final = "SELECT " + _ALARM_COLUMNS + _ALARM_FILTERS + _ALARM_SEEN + _ALARM_ORDER
ALARM_KINDS: Final = "SELECT DISTINCT kind FROM alarm ORDER BY kind"
ALARM_GET_FOR_UPDATE: Final = (
    "SELECT " + _ALARM_COLUMNS + " FROM alarm WHERE alarm_id = %(alarm_id)s FOR UPDATE"
)
ALARM_GET_SEEN_FOR_UPDATE: Final = (
    "SELECT " + _ALARM_COLUMNS + " FROM alarm WHERE alarm_id = %(alarm_id)s" + _ALARM_SEEN + " FOR UPDATE"
)
ALARM_ACK: Final = (
    """UPDATE alarm SET state = 'acknowledged', acknowledged_at = clock_timestamp(),
acknowledged_by = %(by)s, ack_note = %(note)s, updated_at = clock_timestamp()
WHERE alarm_id = %(alarm_id)s RETURNING """
    + _ALARM_COLUMNS
)
ALARM_RESOLVE: Final = (
    """UPDATE alarm SET state = 'resolved', resolved_at = clock_timestamp(), resolved_by = %(by)s,
resolve_note = %(note)s, condition_end = COALESCE(%(condition_end)s, condition_end),
    updated_at = clock_timestamp()
WHERE alarm_id = %(alarm_id)s RETURNING """
    + _ALARM_COLUMNS
)
ALARM_UNRESOLVED: Final = (
    "SELECT "
    + _ALARM_COLUMNS
    + " FROM alarm WHERE asset_id = %(asset_id)s AND rule_id = %(rule_id)s AND state <> 'resolved' FOR UPDATE"
)
ALARM_INSERT: Final = (
    """INSERT INTO alarm (asset_id, rule_id, kind, severity, state, series_id, product_class, pack_version,
    reason, condition_start, condition_end, peak_c, trigger_committed_at, shipment_id, profile_version,
    source)
VALUES (%(asset_id)s, %(rule_id)s, %(kind)s, %(severity)s, 'open', %(series_id)s, %(product_class)s,
    %(pack_version)s, %(reason)s, %(condition_start)s, %(condition_end)s, %(peak_c)s,
    %(trigger_committed_at)s, %(shipment_id)s, %(profile_version)s, %(source)s)
RETURNING """
    + _ALARM_COLUMNS
)
ALARM_UPDATE: Final = (
    """UPDATE alarm SET condition_end = %(condition_end)s, peak_c = %(peak_c)s, reason = %(reason)s,
    severity = %(severity)s, escalation = escalation + %(escalate)s,
    escalated_at = CASE WHEN %(escalate)s > 0 THEN clock_timestamp() ELSE escalated_at END,
    profile_version = COALESCE(%(profile_version)s, profile_version), source = COALESCE(%(source)s, source),
    updated_at = clock_timestamp()
WHERE alarm_id = %(alarm_id)s RETURNING """
    + _ALARM_COLUMNS
)

# -- verdict history and lot verdicts ----------------------------------------------------------------------

# The evidence a series verdict rests on: its excursion and chain_break rows on one asset (a chain break
# of kind 'excursion', beyond the class's allowance, is told from an excursion row as 'excursion_break').
SERIES_EVIDENCE: Final = """
SELECT 'excursion' AS kind, rule_id, start_time, end_time, open, peak_c
FROM excursion WHERE series_id = %(series_id)s AND asset_id = %(asset_id)s
UNION ALL
SELECT CASE WHEN kind = 'excursion' THEN 'excursion_break' ELSE kind END, rule_id, start_time, end_time,
       false, NULL::float8
FROM chain_break WHERE series_id = %(series_id)s AND asset_id = %(asset_id)s
ORDER BY 3, 1, 2
"""

# The lot's latest version the ledger heard of (a version whose result changed), with its judged span.
LAST_EMITTED_LOT: Final = """
SELECT version, verdict, span_end FROM verdict_history
WHERE subject_kind = 'lot' AND subject_id = %(lot_id)s
  AND (change->>'from' IS NULL OR change->>'from' <> change->>'to')
ORDER BY version DESC LIMIT 1
"""

LAST_HISTORY: Final = """
SELECT version, verdict, items FROM verdict_history
WHERE subject_kind = %(subject_kind)s AND subject_id = %(subject_id)s
ORDER BY version DESC LIMIT 1
"""

INSERT_HISTORY: Final = """
INSERT INTO verdict_history (subject_kind, subject_id, version, verdict, product_class, pack_id,
                             pack_version, items, reasons, arrived, change, span_end)
VALUES (%(subject_kind)s, %(subject_id)s, %(version)s, %(verdict)s, %(product_class)s, %(pack_id)s,
        %(pack_version)s, %(items)s, %(reasons)s, %(arrived)s, %(change)s, %(span_end)s)
RETURNING history_id, computed_at
"""

# Lots held by an asset (through the units in its custody legs, or directly) during [t_lo, t_hi].
# A leg without an asset counts for the fixed assets at the leg's location (a cold room).
LOTS_ON_ASSET: Final = """
WITH legs AS (
    SELECT cl.epc, cl.t_start, cl.t_end
    FROM custody_leg cl
    LEFT JOIN asset fa ON cl.asset_id IS NULL AND fa.location_id = cl.location_id
    WHERE COALESCE(cl.asset_id, fa.asset_id) = %(asset_id)s
      AND cl.t_start <= %(t_hi)s AND (cl.t_end IS NULL OR cl.t_end >= %(t_lo)s)
)
SELECT DISTINCT l.lot_id, l.product_class
FROM legs g
JOIN containment c ON c.parent_id = g.epc
JOIN lot l ON l.lot_id = c.child_id
WHERE c.t0 <= COALESCE(g.t_end, 'infinity') AND COALESCE(c.t1, 'infinity') >= g.t_start
UNION
SELECT l.lot_id, l.product_class FROM legs g JOIN lot l ON l.lot_id = g.epc
ORDER BY 1
"""

# ('9999-01-01' stands for "no end": psycopg cannot return 'infinity' as a datetime.)
# The intervals during which a lot was held by each asset: custody legs of the lot itself or of a
# unit containing it, clipped to the containment interval.
LOT_LEGS: Final = """
SELECT COALESCE(cl.asset_id, fa.asset_id) AS asset_id, asset_transport_mode(a.asset_id) AS mode,
       GREATEST(cl.t_start, c.t0) AS t_from,
       LEAST(COALESCE(cl.t_end, '9999-01-01+00'), COALESCE(c.t1, '9999-01-01+00')) AS t_to
FROM containment c
JOIN custody_leg cl ON cl.epc = c.parent_id
LEFT JOIN asset fa ON cl.asset_id IS NULL AND fa.location_id = cl.location_id
LEFT JOIN asset a ON a.asset_id = COALESCE(cl.asset_id, fa.asset_id)
WHERE c.child_id = %(lot_id)s
  AND c.t0 <= COALESCE(cl.t_end, '9999-01-01+00') AND COALESCE(c.t1, '9999-01-01+00') >= cl.t_start
UNION ALL
SELECT COALESCE(cl.asset_id, fa.asset_id), asset_transport_mode(a.asset_id), cl.t_start,
       COALESCE(cl.t_end, '9999-01-01+00')
FROM custody_leg cl
LEFT JOIN asset fa ON cl.asset_id IS NULL AND fa.location_id = cl.location_id
LEFT JOIN asset a ON a.asset_id = COALESCE(cl.asset_id, fa.asset_id)
WHERE cl.epc = %(lot_id)s
ORDER BY 3, 1
"""

# The temperature series that are an asset's evidence during [t_from, t_to) (the registry's
# asset_evidence_series: a compartment's is the probe it names on its vehicle's devices, the vehicle's its
# own mounts but those probes), with the device's stated accuracy (NULL: none stated) and calibration due
# date.
ASSET_TEMP_SERIES: Final = """
SELECT e.series_id, d.accuracy_c, d.calibration_due, GREATEST(e.valid_from, %(t_from)s) AS t_from,
       LEAST(COALESCE(e.valid_to, '9999-01-01+00'), %(t_to)s) AS t_to
FROM asset_evidence_series(%(asset_id)s) e
JOIN device d ON d.device_id = e.device_id
WHERE (e.channel = 'temp' OR e.channel LIKE 'temp:%%') AND e.valid_from < %(t_to)s
  AND COALESCE(e.valid_to, '9999-01-01+00') > %(t_from)s
ORDER BY e.series_id
"""

SERIES_READINGS: Final = """
SELECT (extract(epoch FROM time) * 1000)::int8 AS t_ms, value
FROM reading
WHERE series_id = %(series_id)s AND time >= %(t_from)s AND time < %(t_to)s
ORDER BY time
"""

OPEN_EXCURSION_ON_ASSET: Final = """
SELECT 1 FROM excursion WHERE asset_id = %(asset_id)s AND rule_id = %(rule_id)s AND open LIMIT 1
"""

# A lot's remaining shelf life beside its verdict (rules migration 0012), replaced on every judgement.
UPSERT_LOT_SHELF_LIFE: Final = """
INSERT INTO lot_shelf_life (lot_id, product_class, pack_id, pack_version, verdict_version, model, ref_c,
                            ref_life_h, used, remaining_h, evidence_s, unevidenced_s, first_time, as_of)
VALUES (%(lot_id)s, %(product_class)s, %(pack_id)s, %(pack_version)s, %(verdict_version)s, %(model)s,
        %(ref_c)s, %(ref_life_h)s, %(used)s, %(remaining_h)s, %(evidence_s)s, %(unevidenced_s)s,
        %(first_time)s, %(as_of)s)
ON CONFLICT (lot_id) DO UPDATE SET
    product_class = EXCLUDED.product_class, pack_id = EXCLUDED.pack_id,
    pack_version = EXCLUDED.pack_version, verdict_version = EXCLUDED.verdict_version,
    model = EXCLUDED.model, ref_c = EXCLUDED.ref_c, ref_life_h = EXCLUDED.ref_life_h,
    used = EXCLUDED.used, remaining_h = EXCLUDED.remaining_h, evidence_s = EXCLUDED.evidence_s,
    unevidenced_s = EXCLUDED.unevidenced_s, first_time = EXCLUDED.first_time, as_of = EXCLUDED.as_of,
    computed_at = clock_timestamp()
"""

DELETE_LOT_SHELF_LIFE: Final = "DELETE FROM lot_shelf_life WHERE lot_id = %(lot_id)s"

LOT_VERDICT_OUTBOX: Final = """
INSERT INTO verdict_outbox (kind, payload) VALUES ('lot_verdict', %(payload)s) RETURNING outbox_id
"""

# -- door-open and power-loss channels -----------------------------------------------------------------

STATE_SERIES: Final = """
SELECT series_id, device_id, channel
FROM series
WHERE series_id = ANY(%(series_ids)s) AND channel IN ('door', 'power')
ORDER BY series_id
"""

# Relative-humidity series among those a run touched (judged against their class's humidity limits).
HUMIDITY_SERIES: Final = """
SELECT series_id, device_id, channel
FROM series
WHERE series_id = ANY(%(series_ids)s) AND channel = 'rh'
ORDER BY series_id
"""

# A state run cannot cross a reading outside the state: the slice reaches out to the nearest ones.
LAST_OUT_OF_STATE_BEFORE: Final = """
SELECT max(time) FROM reading
WHERE series_id = %(series_id)s AND time < %(t)s AND time >= %(seg_lo)s
  AND value IS NOT NULL AND value <> 'NaN'::float8 AND value <> %(state)s
"""

FIRST_OUT_OF_STATE_AFTER: Final = """
SELECT min(time) FROM reading
WHERE series_id = %(series_id)s AND time > %(t)s AND time < %(seg_hi)s
  AND value IS NOT NULL AND value <> 'NaN'::float8 AND value <> %(state)s
"""

DELETE_STATE_BREAKS_IN: Final = """
DELETE FROM chain_break
WHERE kind = %(kind)s AND series_id = %(series_id)s AND start_time >= %(t_lo)s AND end_time <= %(t_hi)s
"""

# A chain_break row of any kind (gap, door, power, a profile rule's excursion break), replacing
# the one of the same kind, series, rule and start.
UPSERT_CHAIN_BREAK: Final = """
INSERT INTO chain_break (kind, series_id, asset_id, rule_id, pack_version, start_time, end_time,
                         allowed_s, detail)
VALUES (%(kind)s, %(series_id)s, %(asset_id)s, %(rule_id)s, %(pack_version)s, %(start_time)s,
        %(end_time)s, %(allowed_s)s, %(detail)s)
ON CONFLICT (kind, series_id, rule_id, start_time) DO UPDATE SET
    asset_id = EXCLUDED.asset_id, pack_version = EXCLUDED.pack_version, end_time = EXCLUDED.end_time,
    allowed_s = EXCLUDED.allowed_s, detail = EXCLUDED.detail, computed_at = now()
"""

# -- the live class profile (rules.worker.live) ----------------------------------------------

# What the device states about its evidence: its accuracy (NULL: none) and when its calibration is due.
DEVICE_QUALITY: Final = "SELECT accuracy_c, calibration_due FROM device WHERE device_id = %(device_id)s"

# The latest reading of the series while mounted (the live evaluation ends there).
LATEST_READING: Final = """
SELECT max(time) FROM reading
WHERE series_id = %(series_id)s AND time >= %(seg_lo)s AND time < %(seg_hi)s
"""

# The MKT window's part before a slice (rules.engine.MktPrefix), aggregated in PostgreSQL so that a
# 30-day window never travels to the worker: sample-and-hold spans between consecutive non-NaN
# readings from the last one at or before the window start `lo` up to the slice's first reading `s`,
# clipped at `lo`; weights exp(ΔH/R / 293.15 − ΔH/R / (value + 273.15)) as rules.kernels.mkt_rolling.
MKT_PREFIX: Final = """
WITH r AS (
    SELECT time, value FROM reading
    WHERE series_id = %(series_id)s AND time >= %(seg_lo)s AND time <= %(s)s
      AND value IS NOT NULL AND value <> 'NaN'::float8
      AND time >= COALESCE((
          SELECT max(time) FROM reading
          WHERE series_id = %(series_id)s AND time <= %(lo)s AND time >= %(seg_lo)s
            AND value IS NOT NULL AND value <> 'NaN'::float8), %(lo)s)
), sp AS (
    SELECT time AS ta, lead(time) OVER (ORDER BY time) AS tb, value FROM r
), d AS (
    SELECT (extract(epoch FROM tb - GREATEST(ta, %(lo)s)) * 1000)::float8 AS dur_ms,
           exp(%(dhr)s::float8 / 293.15 - %(dhr)s::float8 / (value + 273.15)) AS w
    FROM sp WHERE tb IS NOT NULL AND tb > ta AND tb > %(lo)s
)
SELECT COALESCE(sum(dur_ms * w), 0)::float8, COALESCE(sum(dur_ms), 0)::float8 FROM d
"""

# Gaps are device-wide: the readings of every temperature probe of the device in [t_lo, t_hi]
# (a gap is a time when no probe reported), and the probe series the gap rows are filed under. A probe
# that a compartment of the asset names (asset.probe) is the compartment's evidence, not the asset's.
_ASSET_PROBE: Final = """
  AND NOT EXISTS (SELECT 1 FROM asset c WHERE c.parent_asset_id = %(asset_id)s AND c.probe = s.channel)"""

DEVICE_TEMP_READINGS: Final = (
    """
SELECT (extract(epoch FROM r.time) * 1000000)::int8 AS t_us, r.value
FROM reading r JOIN series s USING (series_id)
WHERE s.device_id = %(device_id)s AND (s.channel = 'temp' OR s.channel LIKE 'temp:%%')
  AND r.time >= %(t_lo)s AND r.time <= %(t_hi)s AND r.time < %(seg_hi)s"""
    + _ASSET_PROBE
    + """
ORDER BY r.time, r.series_id
"""
)

PRIMARY_TEMP_SERIES: Final = (
    """
SELECT series_id, channel FROM series s
WHERE device_id = %(device_id)s AND (channel = 'temp' OR channel LIKE 'temp:%%')"""
    + _ASSET_PROBE
    + """
ORDER BY series_id LIMIT 1
"""
)

# Door and power channels of the devices mounted on an asset during [t_from, t_to).
ASSET_STATE_READINGS: Final = """
SELECT (extract(epoch FROM r.time) * 1000)::int8 AS t_ms, r.value
FROM device_mount m
JOIN series s ON s.device_id = m.device_id AND s.channel = %(channel)s
JOIN reading r ON r.series_id = s.series_id
WHERE m.asset_id = %(asset_id)s AND m.valid_from < %(t_to)s
  AND COALESCE(m.valid_to, '9999-01-01+00') > %(t_from)s
  AND r.time >= GREATEST(m.valid_from, %(t_from)s)
  AND r.time < LEAST(COALESCE(m.valid_to, '9999-01-01+00'), %(t_to)s)
ORDER BY r.time
"""

# -- chain breaks of the class profile (rules.worker.policy, rules.worker.live) ---------------------
# Kind 'excursion' (an excursion beyond the class's allowance), told apart by rule_id: …/single_event,
# …/cumulative, …/band (rows per re-evaluated slice, like gaps) and …/mkt (one row per time MKT stood
# above its limit, judged at the latest reading: never replaced by a slice).

# Stored profile breaks of the series on the asset overlapping [t_lo, t_hi] (not MKT): the slice
# grows to cover them, so that a re-evaluation replaces them whole.
PROFILE_BREAK_SPAN: Final = """
SELECT min(start_time), max(end_time) FROM chain_break
WHERE kind = 'excursion' AND series_id = %(series_id)s AND asset_id = %(asset_id)s
  AND rule_id <> %(mkt_rule)s AND start_time <= %(t_hi)s AND end_time >= %(t_lo)s
"""

DELETE_PROFILE_BREAKS_IN: Final = """
DELETE FROM chain_break
WHERE kind = 'excursion' AND series_id = %(series_id)s AND asset_id = %(asset_id)s
  AND rule_id <> %(mkt_rule)s AND start_time >= %(t_lo)s AND end_time <= %(t_hi)s
"""

# The MKT break still standing (open) for the series on the asset, if any.
OPEN_MKT_BREAK: Final = """
SELECT chain_break_id, start_time, end_time, detail FROM chain_break
WHERE kind = 'excursion' AND series_id = %(series_id)s AND asset_id = %(asset_id)s
  AND rule_id = %(rule_id)s AND (detail->>'open')::boolean
ORDER BY start_time DESC LIMIT 1
FOR UPDATE
"""

UPDATE_MKT_BREAK: Final = """
UPDATE chain_break SET end_time = %(end_time)s, detail = %(detail)s, computed_at = now()
WHERE chain_break_id = %(chain_break_id)s
"""

DELETE_CHAIN_BREAK: Final = "DELETE FROM chain_break WHERE chain_break_id = %(chain_break_id)s"

# -- custody changes -------------------------------------------------------------------------------
# The rules stage's watermark over the ledger; a worker that finds it locked leaves the work to its holder.
LOCK_CUSTODY_WATERMARK: Final = """
SELECT judged_seq FROM custody_watermark WHERE singleton FOR UPDATE SKIP LOCKED
"""

ADVANCE_CUSTODY_WATERMARK: Final = """
UPDATE custody_watermark SET judged_seq = %(seq)s, judged_at = now() WHERE singleton
"""

# Appends are serialised by the ledger's lock and commit in seq order: the visible seqs are 1..head.
LEDGER_HEAD: Final = "SELECT COALESCE(max(seq), 0) FROM ledger_event"

# Lots whose custody legs (`LOT_LEGS`) the ledger seqs in (lo, hi] changed: the units and lots those seqs
# moved (a containment or custody_leg row of theirs opened or closed by the seq, found through the
# subjects the seq names; an AggregationEvent DELETE naming no child empties its parent), then the lots
# among them and the lots inside them.
LOTS_MOVED: Final = """
WITH named AS (
    SELECT DISTINCT subject_id, seq FROM event_subject WHERE seq > %(lo)s AND seq <= %(hi)s
), moved AS (
    SELECT n.subject_id AS epc FROM named n
    WHERE EXISTS (SELECT 1 FROM containment c
                  WHERE c.child_id = n.subject_id AND (c.start_seq = n.seq OR c.end_seq = n.seq))
       OR EXISTS (SELECT 1 FROM custody_leg cl
                  WHERE cl.epc = n.subject_id AND (cl.start_seq = n.seq OR cl.end_seq = n.seq))
    UNION
    SELECT c.child_id FROM named n JOIN containment c ON c.parent_id = n.subject_id AND c.end_seq = n.seq
)
SELECT l.lot_id, l.product_class FROM moved m JOIN lot l ON l.lot_id = m.epc
UNION
SELECT l.lot_id, l.product_class
FROM moved m JOIN containment c ON c.parent_id = m.epc JOIN lot l ON l.lot_id = c.child_id
ORDER BY 1
"""


# -- the import flow (rules.worker.flow, rules migration 0016; import_step is the ledger stage's) -----
# The registered lots with an import step among the ledger seqs (lo, hi], or with a step whose event an
# errorDeclaration among them declares wrong (import_step keeps the steps of declared events; the lot's flow
# changes without a step of its own among the seqs).
FLOW_LOTS_MOVED: Final = """
SELECT s.lot_id FROM import_step s JOIN lot USING (lot_id)
WHERE s.seq > %(lo)s AND s.seq <= %(hi)s
UNION
SELECT s.lot_id FROM ledger_event d
JOIN ledger_event e ON e.event_id = d.event_id AND NOT e.declares_error
JOIN import_step s ON s.seq = e.seq
JOIN lot l ON l.lot_id = s.lot_id
WHERE d.declares_error AND d.seq > %(lo)s AND d.seq <= %(hi)s
ORDER BY 1
"""
# The lot's steps as the flow stands (live_import_step: no step of an event declared wrong).
FLOW_STEPS_OF_LOT: Final = """
SELECT step, seq, event_time, quantity, uom, conformant, site, certificates, trace_code, disinfection_required
FROM live_import_step WHERE lot_id = %(lot_id)s ORDER BY event_time, seq
"""
FLOW_BREAKS_OF_LOT: Final = """
SELECT chain_break_id, rule_id, (detail ->> 'seq')::bigint, asset_id, start_time, detail
FROM chain_break WHERE kind = 'flow' AND lot_id = %(lot_id)s
ORDER BY chain_break_id
"""
# The asset holding a lot at t: the asset whose tag encloses it (through its units, upwards), else a fixed
# asset where it (or what encloses it) is; else an asset of a shipment carrying the lot (shipment_lot → its
# legs' asset or container, as shipment_of_asset matches them: the leg under way at t first, then the
# latest begun before t, then the earliest); else a fixed asset at the offending event's bizLocation or
# readPoint.
FLOW_HOLDER_AT: Final = """
WITH RECURSIVE up AS (
    SELECT c.parent_id, c.location_id, 1 AS depth FROM containment c
    WHERE c.child_id = %(lot_id)s AND c.t0 <= %(t)s AND (c.t1 IS NULL OR c.t1 > %(t)s)
    UNION
    SELECT c.parent_id, c.location_id, up.depth + 1 FROM containment c JOIN up ON c.child_id = up.parent_id
    WHERE c.t0 <= %(t)s AND (c.t1 IS NULL OR c.t1 > %(t)s) AND up.depth < 8
),
held AS (
    SELECT a.asset_id, up.depth, 0 AS pref FROM up JOIN asset a ON a.epc = up.parent_id
    UNION ALL
    SELECT a.asset_id, up.depth, 1 FROM up JOIN asset a ON a.location_id = up.location_id
    UNION ALL
    SELECT a.asset_id,
           (row_number() OVER (ORDER BY
               (coalesce(l.planned_start, s.planned_start, '-infinity') <= %(t)s
                AND %(t)s < coalesce(l.planned_end, s.planned_end, 'infinity')) DESC,
               (coalesce(l.planned_start, s.planned_start, '-infinity') <= %(t)s) DESC,
               CASE WHEN coalesce(l.planned_start, s.planned_start, '-infinity') <= %(t)s
                    THEN coalesce(l.planned_start, s.planned_start) END DESC NULLS LAST,
               coalesce(l.planned_start, s.planned_start) NULLS LAST,
               l.shipment_id, l.leg_no))::int,
           2
    FROM shipment_lot sl JOIN shipment s USING (shipment_id) JOIN shipment_leg l USING (shipment_id)
    JOIN asset a ON a.asset_id = l.asset_id
                    OR (l.container_number IS NOT NULL AND a.epc = 'urn:epc:id:bic:' || l.container_number)
    WHERE sl.lot_id = %(lot_id)s
    UNION ALL
    SELECT a.asset_id, 99, 3 FROM ledger_event e
    JOIN asset a ON a.location_id IN (e.event -> 'bizLocation' ->> 'id', e.event -> 'readPoint' ->> 'id')
    WHERE e.seq = %(seq)s
)
SELECT asset_id FROM held ORDER BY pref, depth, asset_id LIMIT 1
"""
FLOW_EVENT_ID: Final = "SELECT event_id FROM ledger_event WHERE seq = %(seq)s"
INSERT_FLOW_BREAK: Final = """
INSERT INTO chain_break (kind, series_id, asset_id, lot_id, rule_id, pack_version, start_time, end_time,
                         allowed_s, detail)
VALUES ('flow', NULL, %(asset_id)s, %(lot_id)s, %(rule_id)s, %(pack_version)s, %(t)s, %(t)s, 0, %(detail)s)
"""
DELETE_FLOW_BREAK: Final = """
DELETE FROM chain_break WHERE chain_break_id = %(chain_break_id)s AND kind = 'flow'
"""
FLOW_OUTBOX: Final = """
INSERT INTO verdict_outbox (kind, payload) VALUES ('flow_violation', %(payload)s) RETURNING outbox_id
"""
