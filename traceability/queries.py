"""Stage 3, ledger: the SQL of the ledger, its derived tables, the worker and the trace; list binding."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final


def text_arrays(*lists: Iterable[str]) -> tuple[str, ...]:
    """Each list as one text, then a delimiter found in none of their values: the statements take them as
    ``string_to_array(%s, %s)``. Binding a Python list costs ≈ 3 µs an element (each one dumped in Python,
    then parsed by the server's ``array_in``); one joined text costs a small fraction of that. Empty strings
    are left out (no identifier is empty)."""
    items = [[v for v in values if v] for values in lists]
    # A newline first (never in an URI); else the first character in none of the values.
    for code in itertools.chain((10,), range(1, 0xD800), range(0xE000, 0x110000)):
        delimiter = chr(code)
        texts = [delimiter.join(values) for values in items]
        if all(t.count(delimiter) == max(0, len(v) - 1) for t, v in zip(texts, items, strict=True)):
            return (*texts, delimiter)
    raise ValueError("no delimiter: the values hold every character")  # pragma: no cover


def named_text_arrays(**lists: Iterable[str]) -> dict[str, str]:
    """`text_arrays` as named parameters: each list's text under its name, the delimiter under ``d``."""
    *texts, delimiter = text_arrays(*lists.values())
    return {**dict(zip(lists, texts, strict=True)), "d": delimiter}


# --- who may read what: the cc_sees_* functions of migration 0020, asked with %(role)s and %(party)s --------
# The parameters under which every cc_sees_* answers yes: an operator's own tools (the CLI, the workers).
# Each query asks ``cc_sees_all(role) OR cc_sees_x(...)``: for a role that reads everything the planner folds
# the condition away (cc_sees_all is immutable), so such a reader pays nothing for it.
EVERYTHING: Final[Mapping[str, str | None]] = MappingProxyType({"role": "admin", "party": None})
VISIBLE_LOTS = """
SELECT l FROM unnest(%(lots)s::text[]) l
WHERE (cc_sees_all(%(role)s) OR cc_sees_lot(%(role)s, %(party)s, l))
ORDER BY 1
"""
ASSET_VISIBLE = """
SELECT 1 FROM asset
WHERE asset_id = %(asset)s AND (cc_sees_all(%(role)s) OR cc_sees_asset(%(role)s, %(party)s, asset_id))
"""
# The parts of [%(t_from)s, %(t_to)s) in which the reader sees the asset (cc_asset_windows), in order.
ASSET_WINDOWS = """
SELECT greatest(t_from, %(t_from)s), least(t_to, %(t_to)s)
FROM cc_asset_windows(%(role)s, %(party)s, %(asset)s)
WHERE t_from < %(t_to)s AND t_to > %(t_from)s
ORDER BY 1, 2
"""


# Serialises appends: one transaction at a time extends the chain. Key = the ASCII of "ccledger",
# a constant no other component uses; released at commit/rollback.
LEDGER_LOCK_KEY = 0x63636C6564676572
LOCK_LEDGER = "SELECT pg_advisory_xact_lock(%s)"

EVENT_SEQS_BY_IDS = (
    "SELECT event_id, declares_error, seq FROM ledger_event WHERE event_id = ANY(string_to_array(%s, %s))"
)
# The seq and content of the events already under these eventIDs (recordTime apart: the repository's own).
EVENT_CONTENT_BY_IDS = (
    "SELECT event_id, declares_error, seq, event - 'recordTime' FROM ledger_event"
    " WHERE event_id = ANY(string_to_array(%s, %s))"
)
# The name of the ledger's unique index on (eventID, declares an error): an append of an eventID it holds
# is refused under this name (capture then writes the document again with its eventIDs looked up).
EVENT_ID_INDEX = "ledger_event_event_id"
EVENT_BY_ID = "SELECT event FROM ledger_event WHERE event_id = %s AND NOT declares_error"
# The ledger's events of a rules verdict id (cc:verdictId) that no errorDeclaration names yet, in order.
LIVE_EVENTS_OF_VERDICT = """
SELECT e.event FROM ledger_event e
WHERE e.event ? 'cc:verdictId' AND e.event ->> 'cc:verdictId' = %s AND NOT e.declares_error
  AND NOT EXISTS (SELECT 1 FROM ledger_event d WHERE d.event_id = e.event_id AND d.declares_error)
ORDER BY e.seq
"""
LEDGER_HEAD = "SELECT seq, entry_hash FROM ledger_event ORDER BY seq DESC LIMIT 1"
# New entries, in seq order (their jsonb ``event`` is generated from ``event_jcs``): the columns an append
# writes, and its COPY.
COPY_EVENT_COLUMNS = (
    "seq", "event_id", "event_type", "event_time", "biz_step", "event_hash", "prev_hash", "entry_hash",
    "declares_error", "event_jcs",
)  # fmt: skip
COPY_EVENTS = f"COPY ledger_event ({', '.join(COPY_EVENT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
# Verification streams (binary rows, fetched in chunks): the chained columns, plus the served ones when
# they are compared.
CHAIN_JCS = "SELECT seq, event_hash, prev_hash, entry_hash, event_jcs FROM ledger_event ORDER BY seq"
CHAIN_WITH_JSON = """
SELECT seq, event_hash, prev_hash, entry_hash, event_jcs, event_id, event_type, event::text,
       event_time, biz_step, declares_error
FROM ledger_event ORDER BY seq
"""
# How the served columns are bound to the chained bytes: the CHECK (validated?, its definition), and the
# jsonb's generation (kind, expression, the body and volatility of each function it calls, which a
# superuser could replace; NULL for one that is not an SQL-standard body).
JCS_BINDING = """
SELECT (SELECT convalidated FROM pg_constraint
        WHERE conrelid = 'ledger_event'::regclass AND conname = %(check)s AND contype = 'c'),
       (SELECT pg_get_constraintdef(oid) FROM pg_constraint
        WHERE conrelid = 'ledger_event'::regclass AND conname = %(check)s AND contype = 'c'),
       a.attgenerated::text, pg_get_expr(d.adbin, d.adrelid),
       (SELECT string_agg(pg_get_function_sqlbody(f.oid) || ' ' || f.provolatile::text, '; ' ORDER BY f.oid)
        FROM pg_proc f JOIN pg_depend x ON x.refclassid = 'pg_proc'::regclass AND x.refobjid = f.oid
        WHERE x.classid = 'pg_attrdef'::regclass AND x.objid = d.oid)
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = 'ledger_event'::regclass AND a.attname = 'event' AND NOT a.attisdropped
"""

# --- derived tables, batched (derive.Derivation): read once, write once per table ---------------------------
# A union, not an OR: each side reads its index (child; parent), where the OR of both was planned as a scan
# of the whole table at every append.
BATCH_CONTAINMENT = """
SELECT containment_id, child_id, parent_id, location_id, t0, t1, start_seq, end_seq FROM containment
WHERE child_id = ANY(string_to_array(%(children)s, %(d)s))
UNION
SELECT containment_id, child_id, parent_id, location_id, t0, t1, start_seq, end_seq FROM containment
WHERE parent_id = ANY(string_to_array(%(parents)s, %(d)s)) AND t1 IS NULL
ORDER BY containment_id
"""
BATCH_OPEN_LEGS = """
SELECT custody_leg_id, epc, custodian, location_id, asset_id, t_start, t_end, start_seq, end_seq
FROM custody_leg WHERE epc = ANY(string_to_array(%s, %s)) AND t_end IS NULL ORDER BY custody_leg_id
"""
BATCH_READ_POINTS = """
SELECT read_point_id, biz_step, device_id, custodian, biz_location FROM read_point
WHERE read_point_id = ANY(string_to_array(%s, %s))
"""
# The locations named, and those of the read points named (a read point's business location is a location:
# a foreign key). A union, so that each side uses its primary key.
BATCH_LOCATIONS = """
SELECT location_id FROM location WHERE location_id = ANY(string_to_array(%(places)s, %(d)s))
UNION
SELECT biz_location FROM read_point WHERE read_point_id = ANY(string_to_array(%(read_points)s, %(d)s))
"""
BATCH_PARTIES = "SELECT party_id FROM party WHERE party_id = ANY(string_to_array(%s, %s))"
BATCH_ASSETS = """
SELECT asset_id, epc, location_id FROM asset
WHERE epc = ANY(string_to_array(%(epcs)s, %(d)s)) OR location_id = ANY(string_to_array(%(places)s, %(d)s))
"""
BATCH_CLOSE_CONTAINMENT = """
UPDATE containment c SET t1 = u.t1, end_seq = u.s
FROM unnest(%s::bigint[], %s::timestamptz[], %s::bigint[]) AS u(id, t1, s) WHERE c.containment_id = u.id
"""
BATCH_UPDATE_LEGS = """
UPDATE custody_leg g SET asset_id = u.a, t_end = u.t1, end_seq = u.s
FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::bigint[]) AS u(id, a, t1, s)
WHERE g.custody_leg_id = u.id
"""

# --- rederive: the derived tables rebuilt from the ledger ------------------------------------------------
LEDGER_EVENTS_AFTER = "SELECT seq, event FROM ledger_event WHERE seq > %s ORDER BY seq LIMIT %s"
# When each seq was recorded: its row's record_time, else (a row this transaction is about to append) the
# transaction's time, which is what the row's record_time default will be.
RECORD_TIMES = """
SELECT s.seq, COALESCE(e.record_time, now())
FROM unnest(%s::bigint[]) AS s(seq) LEFT JOIN ledger_event e USING (seq)
"""
# {table}, {old} (its copy) and {columns} (its content) are identifiers composed with psycopg.sql.
REDERIVE_KEEP_OLD = "CREATE TEMP TABLE {old} ON COMMIT DROP AS SELECT {columns} FROM {table}"
REDERIVE_EMPTY = "DELETE FROM {table}"  # not TRUNCATE: readers keep the old rows until the commit
REDERIVE_COMPARE = """
SELECT (SELECT count(*) FROM {old}), (SELECT count(*) FROM {table}),
       (SELECT count(*) FROM (SELECT {columns} FROM {table} EXCEPT ALL SELECT {columns} FROM {old}) m),
       (SELECT count(*) FROM (SELECT {columns} FROM {old} EXCEPT ALL SELECT {columns} FROM {table}) x)
"""

# --- worker: rfid ---------------------------------------------------------------------------------
TAKE_RFID_BATCHES = """
SELECT batch_id, device_ids, t_min, t_max FROM ingest_batch
WHERE kind = 'rfid' ORDER BY batch_id LIMIT %s FOR UPDATE SKIP LOCKED
"""
DELETE_BATCHES = "DELETE FROM ingest_batch WHERE batch_id = ANY(%s)"
# Readers without a read point: the time range of their reads is kept (one row per reader, widened), rows
# locked in device order...
NOTE_UNMAPPED = """
INSERT INTO rfid_unmapped AS u (device_id, t_min, t_max)
SELECT d, t0, t1 FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[]) AS n(d, t0, t1) ORDER BY d
ON CONFLICT (device_id) DO UPDATE
SET t_min = least(u.t_min, excluded.t_min), t_max = greatest(u.t_max, excluded.t_max), noted_at = now()
"""
# ...and goes back to the rfid outbox once the reader has one, in batches of at most a day of reads (the
# rows locked in device order too, so this and a worker noting readers cannot wait on each other).
REQUEUE_UNMAPPED = """
WITH mapped AS (
    SELECT u.device_id FROM rfid_unmapped u JOIN read_point p ON p.device_id = u.device_id
    ORDER BY u.device_id FOR UPDATE OF u
), moved AS (
    DELETE FROM rfid_unmapped u USING mapped m WHERE u.device_id = m.device_id
    RETURNING u.device_id, u.t_min, u.t_max
)
INSERT INTO ingest_batch (kind, device_ids, t_min, t_max)
SELECT 'rfid', ARRAY[m.device_id], greatest(m.t_min, d), least(m.t_max, d + interval '1 day')
FROM moved m, generate_series(
    date_bin('1 day', m.t_min, timestamptz '2000-01-01 00:00Z'), m.t_max, interval '1 day'
) AS d
"""
RFID_READS = """
SELECT r.device_id, r.time, r.epc, (a.asset_id IS NOT NULL) AS is_asset, a.asset_id
FROM rfid_read r LEFT JOIN asset a ON a.epc = r.epc
WHERE r.device_id = ANY(%(devices)s) AND r.time BETWEEN %(t_min)s AND %(t_max)s
ORDER BY r.device_id, r.time, r.epc
"""
READ_POINTS = """
SELECT device_id, read_point_id, biz_location, biz_step, disposition, custodian
FROM read_point WHERE device_id = ANY(%s)
"""

# --- worker: verdicts -----------------------------------------------------------------------------
TAKE_VERDICTS = """
SELECT outbox_id, kind, payload FROM verdict_outbox ORDER BY outbox_id LIMIT %s FOR UPDATE SKIP LOCKED
"""
DELETE_VERDICTS = "DELETE FROM verdict_outbox WHERE outbox_id = ANY(%s)"

# --- worker: metrics (read at each scrape) --------------------------------------------------------
# Rows waiting for the ledger worker (rfid ingest batches, verdicts, geofence crossings), and the age in
# seconds of the oldest of them (0 when none); each on its table's ordered index.
QUEUE_STATE = """
SELECT (SELECT count(*) FROM ingest_batch WHERE kind = 'rfid') + (SELECT count(*) FROM verdict_outbox)
           + (SELECT count(*) FROM geofence_outbox),
       coalesce(extract(epoch FROM clock_timestamp() - least(
           (SELECT created_at FROM ingest_batch WHERE kind = 'rfid' ORDER BY batch_id LIMIT 1),
           (SELECT created_at FROM verdict_outbox ORDER BY outbox_id LIMIT 1),
           (SELECT created_at FROM geofence_outbox ORDER BY outbox_id LIMIT 1))), 0)
"""
# Capture jobs by state: pending (running), succeeded, failed; every state, 0 when it has none.
CAPTURE_JOB_STATES = """
SELECT s.state, count(j.capture_id)
FROM (VALUES ('pending'), ('succeeded'), ('failed')) AS s (state)
LEFT JOIN capture_job j
  ON s.state = CASE WHEN j.running THEN 'pending' WHEN j.success THEN 'succeeded' ELSE 'failed' END
GROUP BY s.state ORDER BY s.state
"""
# Seconds since the newest checkpoint was signed; no row when none was.
CHECKPOINT_AGE = """
SELECT extract(epoch FROM clock_timestamp() - signed_at) FROM ledger_checkpoint
ORDER BY checkpoint_id DESC LIMIT 1
"""
ASSET_BY_ID = "SELECT asset_id, epc, location_id, kind FROM asset WHERE asset_id = %s"
# Goods (unit EPCs) inside an asset during [start, end]: children of its tag, or placed at its location.
GOODS_IN_ASSET = """
SELECT DISTINCT c.child_id FROM containment c
WHERE ((%(epc)s::text IS NOT NULL AND c.parent_id = %(epc)s)
       OR (%(location)s::text IS NOT NULL AND c.location_id = %(location)s))
  AND c.t0 <= %(end)s AND (c.t1 IS NULL OR c.t1 > %(start)s)
  AND c.child_id LIKE 'urn:epc:id:%%'
ORDER BY 1
"""

# --- trace ----------------------------------------------------------------------------------------
LOT = """
SELECT lot_id, gtin, batch, product_class, description, origin_country, hs_code, bonded_status
FROM lot WHERE lot_id = %s
"""
RULE_CLASS = """
SELECT product_class, pack_id, pack_version, low_c, high_c, source, storage_max_gap_s, transport_max_gap_s,
       mkt_limit_c, mkt_window_s, mkt_dh_r_k, road_max_gap_s, rail_max_gap_s, sea_max_gap_s
FROM rule_class WHERE product_class = %s
"""
# The rules stage's verdict of a lot: the latest version of its verdict history.
LOT_VERDICT = """
SELECT version, verdict, reasons FROM verdict_history
WHERE subject_kind = 'lot' AND subject_id = %s
ORDER BY version DESC LIMIT 1
"""
# The lot's remaining shelf life as the rules stage stored it beside its verdict (rules migration 0012).
LOT_SHELF_LIFE = """
SELECT model, ref_c, ref_life_h, used, remaining_h, evidence_s, unevidenced_s, first_time, as_of,
       pack_version, verdict_version, computed_at
FROM lot_shelf_life WHERE lot_id = %s
"""
# --- FEFO ------------------------------------------------------------------------------------------
LOCATION_NAME = "SELECT name FROM location WHERE location_id = %s"
# The lots at a location now (the location or any place under it, through whatever units enclose them, by
# the open containment intervals), first-expired first: in order of remaining shelf life at the reference
# temperature (a lot without a stored shelf life last), then most of its life used, then lot id.
FEFO_AT_LOCATION = """
WITH RECURSIVE places AS (
    SELECT location_id FROM location WHERE location_id = %(location)s
    UNION
    SELECT l.location_id FROM location l JOIN places p ON l.parent_location_id = p.location_id
),
here AS (
    SELECT c.child_id, c.location_id, c.t0 AS since, 1 AS depth
    FROM containment c JOIN places USING (location_id)
    WHERE c.t1 IS NULL
    UNION ALL
    SELECT c.child_id, here.location_id, GREATEST(c.t0, here.since), here.depth + 1
    FROM containment c JOIN here ON c.parent_id = here.child_id
    WHERE c.t1 IS NULL AND here.depth < 8
),
lots AS (
    SELECT DISTINCT ON (l.lot_id) l.lot_id, l.product_class, l.description, here.location_id, here.since
    FROM here JOIN lot l ON l.lot_id = here.child_id
    WHERE (cc_sees_all(%(role)s) OR cc_sees_lot(%(role)s, %(party)s, l.lot_id))
    ORDER BY l.lot_id, here.since
)
SELECT lots.lot_id, lots.product_class, lots.description, lots.location_id, lots.since,
       s.model, s.ref_life_h, s.used, s.remaining_h, s.unevidenced_s, s.as_of, s.pack_version,
       v.verdict, v.version
FROM lots
LEFT JOIN lot_shelf_life s ON s.lot_id = lots.lot_id
LEFT JOIN LATERAL (
    SELECT verdict, version FROM verdict_history
    WHERE subject_kind = 'lot' AND subject_id = lots.lot_id ORDER BY version DESC LIMIT 1
) v ON true
ORDER BY s.remaining_h ASC NULLS LAST, s.used DESC NULLS LAST, lots.lot_id
LIMIT %(limit)s
"""
# Every version of the lot's verdict, oldest first.
LOT_VERDICT_HISTORY = """
SELECT version, verdict, computed_at, change->>'from', reasons, arrived->>'t_min', arrived->>'t_max'
FROM verdict_history
WHERE subject_kind = 'lot' AND subject_id = %s
ORDER BY version
"""
# The errorDeclarations among these seqs: the declaration, and what the declared event stated.
DECLARATIONS = """
SELECT seq, event_id, event->'errorDeclaration', coalesce(event->>'cc:lotVerdict', event->>'cc:verdict')
FROM ledger_event WHERE declares_error AND seq = ANY(%s) ORDER BY seq
"""
# Corrective events by eventID: their account of the change and what they state.
CORRECTIVE_EVENTS = """
SELECT event_id, event->>'cc:correctionReason', coalesce(event->>'cc:lotVerdict', event->>'cc:verdict')
FROM ledger_event WHERE NOT declares_error AND event_id = ANY(%s)
"""
# Everything that enclosed the lot, transitively, each with the interval during which it did.
UNITS_OF_LOT = """
WITH RECURSIVE up AS (
    SELECT c.child_id, c.parent_id, c.t0, c.t1, 1 AS depth
    FROM containment c WHERE c.child_id = %(lot)s AND c.parent_id IS NOT NULL
    UNION ALL
    SELECT c.child_id, c.parent_id, GREATEST(c.t0, up.t0),
           CASE WHEN c.t1 IS NULL THEN up.t1 WHEN up.t1 IS NULL THEN c.t1 ELSE LEAST(c.t1, up.t1) END,
           up.depth + 1
    FROM containment c JOIN up ON c.child_id = up.parent_id
    WHERE c.parent_id IS NOT NULL AND up.depth < 8
      AND c.t0 < COALESCE(up.t1, 'infinity') AND COALESCE(c.t1, 'infinity') > up.t0
)
SELECT up.child_id, up.parent_id, up.t0, up.t1, up.depth, a.asset_id
FROM up LEFT JOIN asset a ON a.epc = up.parent_id
ORDER BY up.depth, up.t0, up.parent_id
"""
PLACEMENTS = """
SELECT c.child_id, c.location_id, l.name, c.t0, c.t1, c.start_seq, c.end_seq
FROM containment c JOIN location l USING (location_id)
WHERE c.child_id = ANY(%s) ORDER BY c.t0, c.child_id
"""
# What a leg's (or a chart's) evidence is, one truth for both: the series ``s`` that are the evidence of
# the asset of window ``g`` (asset_id, t_start, t_end; t_end NULL = still open) by the registry's
# ``asset_evidence_series`` (a compartment's: the probe it names on its vehicle's devices; a vehicle's: its
# own devices' series but those probes), whose mount overlaps the window, with their readings ``r`` while
# mounted there. The function is joined once per window (LATERAL; the planner inlines it), never per reading.
MOUNTED_READINGS = """
    JOIN LATERAL asset_evidence_series(g.asset_id) s
         ON s.valid_from < COALESCE(g.t_end, 'infinity') AND COALESCE(s.valid_to, 'infinity') > g.t_start
    JOIN reading r ON r.series_id = s.series_id
         AND r.time >= GREATEST(g.t_start, s.valid_from)
         AND r.time < LEAST(COALESCE(g.t_end, 'infinity'), COALESCE(s.valid_to, 'infinity'))
"""
TEMPERATURE_SERIES = "(s.channel = 'temp' OR s.channel LIKE 'temp:%%')"
# The allowed recording interval of a leg's asset, by its transport mode ``tmode`` (the registry's
# ``asset_transport_mode``: storage, road, rail, sea, or transport for an asset of no known mode), the
# class's figures from its pack as parameters (``rule_class`` publishes each mode's figure, the transport
# one where the pack gives none: ``RecordingInterval.limit``).
MODE_INTERVAL = """CASE tmode WHEN 'storage' THEN %(storage_gap)s::interval
                   WHEN 'road' THEN %(road_gap)s::interval
                   WHEN 'rail' THEN %(rail_gap)s::interval
                   WHEN 'sea' THEN %(sea_gap)s::interval
                   ELSE %(transport_gap)s::interval END"""
# The time a reading ``p`` represents, in seconds, defined once for every time-weighted figure (and the same
# rule as the rules stage's ``rules.engine.shelf.held_ms``): it holds until its series' next record
# (``p.next_time``, whatever that record's value), at most the allowed recording interval of the asset's mode
# (a longer silence is missing evidence, not more of the reading before it); the series' last record and a
# dropout (NULL value) hold nothing (NULL).
HELD_S = (
    "CASE WHEN p.next_time IS NOT NULL AND p.value IS NOT NULL"
    " THEN LEAST(EXTRACT(EPOCH FROM p.next_time - p.time), EXTRACT(EPOCH FROM "
    + MODE_INTERVAL
    + ")) END AS held_s"
)
# The mean term of the MKT formula (DOMAIN.md) over rows (value, held_s): Σ tᵢ·e^(−ΔH/(R·Tᵢ)) / Σ tᵢ, each
# reading weighted by the time it represents; when no reading holds any time (a single one), their plain
# mean. MKT = (ΔH/R) / −ln(term).
MKT_TERM = """COALESCE(
               SUM(held_s * exp(-%(mkt_dh_r)s::float8 / (value + 273.15))) / NULLIF(SUM(held_s), 0),
               AVG(exp(-%(mkt_dh_r)s::float8 / (value + 273.15))))"""
# Custody legs of the units, with the temperature evidence of the devices mounted on each leg's asset
# during the leg: readings, dropouts, min/max/mean and the longest per-series time out of [low, high]
# (each reading counts until the series' next reading inside the leg).
LEGS_WITH_EVIDENCE = (
    """
WITH legs AS (
    SELECT l.custody_leg_id, l.epc, l.custodian, l.location_id, l.asset_id, l.t_start, l.t_end,
           l.start_seq, l.end_seq, asset_transport_mode(l.asset_id) AS tmode
    FROM custody_leg l WHERE l.epc = ANY(%(units)s)
),
pts AS (
    SELECT g.custody_leg_id, r.series_id, r.time, r.value,
           lead(r.time) OVER (PARTITION BY g.custody_leg_id, r.series_id ORDER BY r.time) AS next_time
    FROM legs g"""
    + MOUNTED_READINGS
    + "    WHERE "
    + TEMPERATURE_SERIES
    + """
),
per_series AS (
    SELECT custody_leg_id, series_id,
           SUM(EXTRACT(EPOCH FROM next_time - time)) FILTER (
               WHERE value < %(low)s::float8 OR value > %(high)s::float8) AS out_s
    FROM pts GROUP BY custody_leg_id, series_id
),
stats AS (
    SELECT custody_leg_id, COUNT(value) AS readings, COUNT(*) - COUNT(value) AS dropouts,
           MIN(value) AS min_c, MAX(value) AS max_c, AVG(value) AS mean_c,
           COUNT(DISTINCT series_id) AS series,
           """
    + MKT_TERM
    + """ AS mkt_mean_term,
           MAX(EXTRACT(EPOCH FROM next_time - time)) AS max_gap_s,
           MIN(time) AS first_time, MAX(time) AS last_time
    FROM (
        -- Time-weighted MKT: each reading weighted by the time it represents (HELD_S).
        SELECT p.*, """
    + HELD_S
    + """
        FROM pts p JOIN legs g USING (custody_leg_id)
    ) held
    GROUP BY custody_leg_id
),
gaps AS (
    SELECT p.custody_leg_id, COUNT(*) AS gaps
    FROM pts p JOIN legs g USING (custody_leg_id)
    WHERE p.next_time - p.time > """
    + MODE_INTERVAL
    + """
    GROUP BY p.custody_leg_id
)
SELECT g.custody_leg_id, g.epc, g.custodian, p.name AS custodian_name,
       g.location_id, loc.name AS location_name,
       g.asset_id, a.name AS asset_name, a.kind AS asset_kind, g.t_start, g.t_end, g.start_seq, g.end_seq,
       COALESCE(st.readings, 0), COALESCE(st.dropouts, 0), st.min_c, st.max_c, st.mean_c,
       COALESCE(st.series, 0),
       CASE WHEN %(low)s::float8 IS NULL AND %(high)s::float8 IS NULL THEN NULL
            ELSE COALESCE((SELECT MAX(COALESCE(ps.out_s, 0)) FROM per_series ps
                           WHERE ps.custody_leg_id = g.custody_leg_id), 0) END AS out_of_range_s,
       st.mkt_mean_term, st.max_gap_s, COALESCE(gp.gaps, 0), st.first_time, st.last_time, g.tmode
FROM legs g
LEFT JOIN gaps gp ON gp.custody_leg_id = g.custody_leg_id
LEFT JOIN party p ON p.party_id = g.custodian
LEFT JOIN location loc ON loc.location_id = g.location_id
LEFT JOIN asset a ON a.asset_id = g.asset_id
LEFT JOIN stats st ON st.custody_leg_id = g.custody_leg_id
ORDER BY g.t_start, g.custody_leg_id
"""
)
# The excursions on the legs' assets, each with the MKT mean term of its series over the class's MKT window
# ending at the excursion's end (NULL without a window), time-weighted as a leg's MKT is (HELD_S, MKT_TERM).
EXCURSIONS_OF_LEGS = (
    """
SELECT l.custody_leg_id, e.excursion_id, e.series_id, s.device_id, s.channel, e.rule_id, e.pack_version,
       e.start_time, e.end_time, e.open, e.peak_c, e.limit_low_c, e.limit_high_c, e.readings, m.term
FROM custody_leg l
JOIN excursion e ON e.asset_id = l.asset_id
     AND e.start_time < COALESCE(l.t_end, 'infinity') AND e.end_time >= l.t_start
LEFT JOIN series s ON s.series_id = e.series_id
CROSS JOIN LATERAL (SELECT asset_transport_mode(l.asset_id) AS tmode) tm
LEFT JOIN LATERAL (
    SELECT """
    + MKT_TERM
    + """ AS term
    FROM (
        SELECT p.value, """
    + HELD_S
    + """
        FROM (
            SELECT r.value, r.time, lead(r.time) OVER (ORDER BY r.time) AS next_time
            FROM reading r
            WHERE r.series_id = e.series_id
              AND r.time > e.end_time - make_interval(secs => %(mkt_window_s)s::float8)
              AND r.time <= e.end_time
        ) p
        WHERE p.value IS NOT NULL
    ) w
) m ON %(mkt_window_s)s::float8 IS NOT NULL
WHERE l.custody_leg_id = ANY(%(legs)s)
ORDER BY e.start_time, e.excursion_id
"""
)
BREAKS_OF_LEGS = """
SELECT l.custody_leg_id, b.chain_break_id, b.kind, b.series_id, b.rule_id, b.pack_version,
       b.start_time, b.end_time, b.allowed_s, b.detail
FROM custody_leg l
JOIN chain_break b ON (b.asset_id = l.asset_id OR b.lot_id = %(lot)s)
     AND b.start_time < COALESCE(l.t_end, 'infinity') AND b.end_time >= l.t_start
     AND b.kind <> 'flow'  -- a lot's import-flow violations are the lot's, not a leg's (LOT_BREAKS)
WHERE l.custody_leg_id = ANY(%(legs)s)
ORDER BY b.start_time, b.chain_break_id
"""
# The runs outside a shipper's profile (rules stage: profile_excursion) on the assets of the lot's legs while
# they held it, of the shipments the lot is in (another shipper's profile on a shared asset is not the lot's).
PROFILE_EXCURSIONS_OF_LEGS = """
SELECT DISTINCT p.kind, p.asset_id, p.series_id, p.shipment_id, p.profile_version, p.rule_id, p.source,
       p.start_time, p.end_time, p.open, p.peak_c, p.limit_low_c, p.limit_high_c, p.allowed_s,
       p.profile_excursion_id
FROM custody_leg l
JOIN profile_excursion p ON p.asset_id = l.asset_id
     AND p.start_time < COALESCE(l.t_end, 'infinity') AND p.end_time >= l.t_start
WHERE l.custody_leg_id = ANY(%(legs)s)
  AND EXISTS (SELECT 1 FROM shipment_lot sl WHERE sl.shipment_id = p.shipment_id AND sl.lot_id = %(lot)s)
ORDER BY p.start_time, p.profile_excursion_id
"""
# The lot's import-flow steps, and the lots a trace code names (live_import_step: the derived steps of the
# events no errorDeclaration names).
IMPORT_STEPS_OF_LOT = """
SELECT step, seq, event_time, quantity, uom, conformant, site, certificates, trace_code, disinfection_required
FROM live_import_step WHERE lot_id = %s ORDER BY event_time, seq
"""
LOTS_BY_TRACE_CODE = """
SELECT DISTINCT s.lot_id FROM live_import_step s JOIN lot USING (lot_id)
WHERE s.trace_code = %s AND s.step = 'trace_code' ORDER BY s.lot_id
"""
LOT_BREAKS = """
SELECT chain_break_id, kind, series_id, rule_id, pack_version, start_time, end_time, allowed_s, detail
FROM chain_break WHERE lot_id = %s ORDER BY start_time
"""
# Ledger events naming the lot or one of the goods units enclosing it (event_subject, derived).
EVENTS_OF_IDS = """
WITH named AS (SELECT DISTINCT s.seq FROM event_subject s WHERE s.subject_id = ANY(%(ids)s))
SELECT e.seq, e.event_id, e.event_type, e.biz_step, e.event_time, e.event->>'action', e.declares_error
FROM ledger_event e
WHERE e.seq IN (
    SELECT seq FROM named
    UNION
    SELECT d.seq FROM ledger_event d
    WHERE d.declares_error AND d.event_id IN (SELECT n.event_id FROM ledger_event n JOIN named USING (seq))
)
ORDER BY e.seq
"""
# --- trace: resolution of an id to lots, lineage, shipments -------------------------------------------
LOTS_BY_ID_OR_BATCH = "SELECT lot_id FROM lot WHERE lot_id = %(id)s OR batch = %(id)s ORDER BY lot_id"
ASSET_EPC_BY_ID = "SELECT epc FROM asset WHERE asset_id = %s OR epc = %s"
# Lot classes ever inside a unit or asset (downwards through containment, any time): the SQL function
# lots_under (traceability/migrations/0016_lots_under.sql), which the dashboards read too.
LOTS_UNDER = "SELECT lot_id FROM lots_under(%(roots)s::text[]) ORDER BY 1"
# Units that ever enclosed an EPC (upwards), e.g. the SSCC an SGTIN was packed in.
UNITS_ABOVE = """
WITH RECURSIVE up AS (
    SELECT c.parent_id, 1 AS depth FROM containment c WHERE c.child_id = %(id)s AND c.parent_id IS NOT NULL
    UNION
    SELECT c.parent_id, up.depth + 1 FROM containment c JOIN up ON c.child_id = up.parent_id
    WHERE c.parent_id IS NOT NULL AND up.depth < 8
)
SELECT DISTINCT parent_id FROM up
"""
# Business transactions linked to one (named together on any event: B/L + waybill + through document).
LINKED_TRANSACTIONS = """
WITH hit AS (
    SELECT DISTINCT seq FROM biz_transaction
    WHERE biz_transaction = %(id)s OR biz_transaction LIKE '%%/' || %(id)s
),
linked AS (SELECT DISTINCT b.biz_transaction FROM biz_transaction b JOIN hit USING (seq))
SELECT DISTINCT b.seq FROM biz_transaction b JOIN linked USING (biz_transaction)
"""
SUBJECT_KNOWN = "SELECT 1 FROM event_subject WHERE subject_id = %s LIMIT 1"
SUBJECTS_OF_SEQS = "SELECT DISTINCT subject_id FROM event_subject WHERE seq = ANY(%s)"
LINEAGE_UP = """
WITH RECURSIVE up AS (
    SELECT input_id, output_id, seq, event_time, 1 AS depth FROM lineage WHERE output_id = %(id)s
    UNION
    SELECT l.input_id, l.output_id, l.seq, l.event_time, up.depth + 1
    FROM lineage l JOIN up ON l.output_id = up.input_id WHERE up.depth < 16
)
SELECT input_id, output_id, seq, event_time, depth FROM up ORDER BY depth, input_id
"""
LINEAGE_DOWN = """
WITH RECURSIVE down AS (
    SELECT input_id, output_id, seq, event_time, 1 AS depth FROM lineage WHERE input_id = %(id)s
    UNION
    SELECT l.input_id, l.output_id, l.seq, l.event_time, down.depth + 1
    FROM lineage l JOIN down ON l.input_id = down.output_id WHERE down.depth < 16
)
SELECT input_id, output_id, seq, event_time, depth FROM down ORDER BY depth, output_id
"""
SHIPMENTS_OF_SEQS = """
SELECT e.seq, e.event_time, e.biz_step, e.event->'bizTransactionList', e.event->'destinationList',
       e.event->'readPoint'->>'id',
       e.event->>'https://ns.coldchain.example/epcis/transportMode', e.event->>'cc:transportMode'
FROM ledger_event e
WHERE e.seq = ANY(%s) AND NOT e.declares_error
  AND e.biz_step = ANY(%s)
ORDER BY e.seq
"""
CUSTODIANS_OF_UNITS = """
SELECT DISTINCT ON (l.custodian) l.custodian, p.name, p.role, min(l.t_start) OVER (PARTITION BY l.custodian)
FROM custody_leg l JOIN party p ON p.party_id = l.custodian WHERE l.epc = ANY(%s)
"""
BONDED_OF_LOT = """
SELECT status, line, seq, event_time FROM bonded_status WHERE lot_id = %s ORDER BY event_time, seq
"""
FIRST_EVENT_OF_IDS = """
SELECT e.seq, e.event_time, e.biz_step, e.event->'readPoint'->>'id', e.event->'bizLocation'->>'id'
FROM ledger_event e WHERE e.seq IN (SELECT seq FROM event_subject WHERE subject_id = ANY(%s))
ORDER BY e.event_time, e.seq LIMIT 1
"""

HEALTH = "SELECT max(seq) FROM ledger_event"

# --- capture jobs ---------------------------------------------------------------------------------
# A finished job: a new row (captured here and now), or the pending row of a queued job (its body dropped).
INSERT_CAPTURE_JOB = """
INSERT INTO capture_job (capture_id, finished_at, running, success, events, first_seq, last_seq, errors,
                         already_captured, captured_by)
VALUES (%(id)s, now(), false, %(success)s, %(events)s, %(first)s, %(last)s, %(errors)s, %(already)s, %(by)s)
ON CONFLICT (capture_id) DO UPDATE SET
    finished_at = now(), running = false, success = EXCLUDED.success, events = EXCLUDED.events,
    first_seq = EXCLUDED.first_seq, last_seq = EXCLUDED.last_seq, errors = EXCLUDED.errors,
    already_captured = EXCLUDED.already_captured, body = NULL
"""
# The capture queue (migration 0011): POST /epcis/capture stores the body as a pending job, and announces it
# on the capture channel (delivered at its commit) to the capture workers listening there.
ENQUEUE_CAPTURE_JOB = """
INSERT INTO capture_job (capture_id, running, success, body, captured_by) VALUES (%s, true, true, %s, %s)
"""
CAPTURE_CHANNEL = "coldchain_capture"
ANNOUNCE_CAPTURE_JOB = f"SELECT pg_notify('{CAPTURE_CHANNEL}', '')"
LISTEN_CAPTURE_JOBS = f"LISTEN {CAPTURE_CHANNEL}"
# The oldest pending jobs that no other worker holds, not those this worker has in hand already.
NEXT_CAPTURE_JOBS = """
SELECT capture_id, body, captured_by FROM capture_job
WHERE running AND body IS NOT NULL AND NOT (capture_id = ANY(%s::text[]))
ORDER BY created_at, capture_id LIMIT %s FOR UPDATE SKIP LOCKED
"""
# A pending job's row, locked for the transaction that finishes it (none: taken by another, or done).
TAKE_CAPTURE_JOB = """
SELECT 1 FROM capture_job WHERE capture_id = %s AND running FOR UPDATE SKIP LOCKED
"""
PENDING_CAPTURE_JOBS = "SELECT EXISTS (SELECT 1 FROM capture_job WHERE running)"
CAPTURE_JOB = """
SELECT capture_id, running, success, events, first_seq, last_seq, errors, already_captured FROM capture_job
WHERE capture_id = %(id)s AND cc_sees_all(%(role)s)
"""

# --- checkpoints and bundles ------------------------------------------------------------------------
INSERT_CHECKPOINT = """
INSERT INTO ledger_checkpoint (seq, entry_hash, signed_at, public_key, signature)
VALUES (%(seq)s, %(entry_hash)s, %(signed_at)s, %(public_key)s, %(signature)s)
RETURNING checkpoint_id
"""
LATEST_CHECKPOINT = """
SELECT checkpoint_id, seq, entry_hash, signed_at, public_key, signature FROM ledger_checkpoint
ORDER BY checkpoint_id DESC LIMIT 1
"""
ALL_CHECKPOINTS = """
SELECT checkpoint_id, seq, entry_hash, signed_at, public_key, signature FROM ledger_checkpoint
ORDER BY checkpoint_id
"""
LINKS_BETWEEN = """
SELECT seq, event_hash, encode(sha256(event_jcs), 'hex'), entry_hash FROM ledger_event
WHERE seq BETWEEN %s AND %s ORDER BY seq
"""
PREV_HASH_AT = "SELECT prev_hash FROM ledger_event WHERE seq = %s"
EVENTS_JCS_AT_SEQS = "SELECT seq, event_jcs FROM ledger_event WHERE seq = ANY(%s) ORDER BY seq"

# --- access --------------------------------------------------------------------------------------------
INSERT_API_KEY = """
INSERT INTO api_key (name, role, party_id, key_hash, key_prefix)
VALUES (%(name)s, %(role)s, %(party)s, %(hash)s, %(prefix)s)
"""
# The keys a revocation names: by id, or by the prefix of the secret (at most two, to see an ambiguity).
API_KEYS_NAMED = """
SELECT key_id, name, role, key_prefix, revoked_at IS NOT NULL FROM api_key
WHERE key_id = %(id)s OR (%(prefix)s::text IS NOT NULL AND key_prefix LIKE %(prefix)s || '%%')
ORDER BY key_id LIMIT 2
"""
REVOKE_API_KEY = "UPDATE api_key SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL"
API_KEY_BY_HASH = (
    "SELECT key_id, name, role, party_id FROM api_key WHERE key_hash = %s AND revoked_at IS NULL"
)
PARTY_KNOWN = "SELECT 1 FROM party WHERE party_id = %s"
INSERT_AUDIT = """
INSERT INTO audit_log (key_id, role, party_id, method, path, query, status)
VALUES (%(key)s, %(role)s, %(party)s, %(method)s, %(path)s, %(query)s, %(status)s)
"""

# --- readings: the points, markers and track behind a leg's chart (traceability.readings) ------------------
# The chart's window as the ``g`` of MOUNTED_READINGS: one asset over [t_from, t_to).
_READINGS_WINDOW = """
    FROM (SELECT %(asset)s::text AS asset_id, %(t_from)s::timestamptz AS t_start,
                 %(t_to)s::timestamptz AS t_end) g"""
# Every reading of the mounted devices' temperature, door, power and GPS series in the window, packed in one
# bytea: per reading its series (int8send), time (timestamptz_send: int8 µs since 2000-01-01) and value
# (float8send; a dropout NaN), big-endian, in no set order (readings.py sorts them). One plain aggregate: no
# row and no Python object per reading, and no ORDER BY or GROUP BY, whose sort of every reading costs more
# than the read itself. Measured on a 30-day minute series (43 200 readings): ≈ 19 ms, against ≈ 45 ms
# grouped by series, ≈ 55 ms as binary COPY rows and 55 to 95 ms bucketed in SQL (date_bin, each bucket's
# extremes and their times).
ASSET_READINGS = (
    """
SELECT string_agg(int8send(r.series_id) || timestamptz_send(r.time)
                  || float8send(COALESCE(r.value, 'NaN'::float8)), ''::bytea)"""
    + _READINGS_WINDOW
    + MOUNTED_READINGS
    + "    WHERE "
    + TEMPERATURE_SERIES
    + " OR s.channel IN ('door', 'power', 'lat', 'lon')\n"
)
# The series those readings name, each with whether it is a temperature series.
SERIES_OF_IDS = (
    "SELECT s.series_id, s.device_id, s.channel, "
    + TEMPERATURE_SERIES
    + " AS temperature FROM series s WHERE s.series_id = ANY(%s) ORDER BY s.device_id, s.channel"
)
# The door, power and defrost events of the devices mounted on the asset in the window, while mounted.
ASSET_DEVICE_EVENTS = """
SELECT e.time, e.device_id, e.kind, e.value->>'state'
FROM device_mount m
JOIN device_event e ON e.device_id = m.device_id AND e.kind IN ('door', 'power', 'defrost')
     AND e.time >= GREATEST(%(t_from)s::timestamptz, m.valid_from)
     AND e.time < LEAST(%(t_to)s::timestamptz, COALESCE(m.valid_to, 'infinity'))
WHERE m.asset_id = %(asset)s AND m.valid_from < %(t_to)s::timestamptz
  AND COALESCE(m.valid_to, 'infinity') > %(t_from)s::timestamptz
ORDER BY e.time, e.device_id, e.kind
"""

# --- reports: the key data elements of a lot's events (FSMA 204 style), by ledger seq -------------------
# Each event's hash, where and with which documents it happened, its quantities, sources and destinations,
# and the registry's names of its business location and read point.
REPORT_EVENTS_AT_SEQS = """
SELECT e.seq, e.event_hash, e.entry_hash,
       e.event->'bizLocation'->>'id', bl.name, e.event->'readPoint'->>'id', rp.name,
       e.event->'bizTransactionList', e.event->'sourceList', e.event->'destinationList',
       e.event->'quantityList', e.event->'childQuantityList', e.event->'inputQuantityList',
       e.event->'outputQuantityList', e.event->>'disposition', e.event->>'parentID'
FROM ledger_event e
LEFT JOIN location bl ON bl.location_id = e.event->'bizLocation'->>'id'
LEFT JOIN location rp ON rp.location_id = e.event->'readPoint'->>'id'
WHERE e.seq = ANY(%s)
ORDER BY e.seq
"""

# --- checkpoints: the newest signed at a seq (a report names its head by seq) ----------------------------
CHECKPOINT_AT_SEQ = """
SELECT checkpoint_id, seq, entry_hash, signed_at, public_key, signature FROM ledger_checkpoint
WHERE seq = %s ORDER BY checkpoint_id DESC LIMIT 1
"""
