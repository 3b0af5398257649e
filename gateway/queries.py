"""Stage 1 (ingest): the SQL text the gateway's writer runs, and the adapters of its parameters."""

from __future__ import annotations

import datetime as dt
from typing import Final

from psycopg import sql

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def ts(t_ms: int) -> dt.datetime:
    """Epoch ms as an aware UTC datetime (exact: integer microseconds)."""
    return _EPOCH + dt.timedelta(milliseconds=t_ms)


def pg_text(s: str) -> str:
    """PostgreSQL text cannot hold NUL: keep it visible, escaped."""
    return s.replace("\x00", "\\x00")


# Staging tables live per connection; ON COMMIT DELETE ROWS empties them at every commit.
# msg: the index of the reading's message in the transaction, to name it in a conflict's dead letter.
CREATE_STAGE_READING: Final = """
CREATE TEMP TABLE IF NOT EXISTS stage_reading (
    t_ms bigint NOT NULL, series_id bigint NOT NULL, value double precision,
    received_ms bigint NOT NULL, flags smallint NOT NULL, msg integer NOT NULL
) ON COMMIT DELETE ROWS"""
COPY_STAGE_READING: Final = (
    "COPY stage_reading (t_ms, series_id, value, received_ms, flags, msg) FROM STDIN (FORMAT BINARY)"
)
STAGE_READING_TYPES: Final = ["int8", "int8", "float8", "int8", "int2", "int4"]

# Move staged readings in (duplicates of redelivered messages are dropped by the unique key) and
# write the outbox row for the rules workers over what was actually inserted.
INSERT_READINGS: Final = """
WITH ins AS (
    INSERT INTO reading (time, series_id, value, received_at, flags)
    SELECT timestamptz 'epoch' + t_ms * interval '1 millisecond', series_id, value,
           timestamptz 'epoch' + received_ms * interval '1 millisecond', flags
    FROM stage_reading
    ORDER BY msg  -- of two values for one (series, time) in a transaction, the earlier message's stays
    ON CONFLICT (series_id, time) DO NOTHING
    RETURNING series_id, time
), agg AS (
    SELECT count(*) AS n, array_agg(DISTINCT series_id) AS series_ids, min(time) AS t_min, max(time) AS t_max
    FROM ins
), outbox AS (
    INSERT INTO ingest_batch (kind, series_ids, t_min, t_max)
    SELECT 'telemetry', series_ids, t_min, t_max FROM agg WHERE n > 0
    RETURNING batch_id
)
SELECT i.series_id, (extract(epoch FROM i.time) * 1000)::bigint, (SELECT count(*) FROM outbox) FROM ins i"""

# After INSERT_READINGS, in its transaction: staged readings whose (series, time) holds another value. The
# row stored first stays (a sensor value is never corrected); a staged row that was inserted matches
# itself. Runs only on the staging path, which a COPY without any duplicate never takes.
SELECT_READING_CONFLICTS: Final = """
SELECT s.msg, s.series_id, s.t_ms, r.value, s.value
FROM stage_reading s
JOIN reading r
  ON r.series_id = s.series_id AND r.time = timestamptz 'epoch' + s.t_ms * interval '1 millisecond'
WHERE r.value IS DISTINCT FROM s.value
ORDER BY s.msg, s.t_ms, s.series_id"""
CONFLICTING_DUPLICATE: Final = "conflicting_duplicate"

CREATE_STAGE_RFID: Final = """
CREATE TEMP TABLE IF NOT EXISTS stage_rfid (
    t_ms bigint NOT NULL, device_id text NOT NULL, epc text NOT NULL, antenna integer,
    rssi double precision, received_ms bigint NOT NULL, msg integer NOT NULL
) ON COMMIT DELETE ROWS"""
COPY_STAGE_RFID: Final = (
    "COPY stage_rfid (t_ms, device_id, epc, antenna, rssi, received_ms, msg) FROM STDIN (FORMAT BINARY)"
)
STAGE_RFID_TYPES: Final = ["int8", "text", "text", "int4", "float8", "int8", "int4"]

INSERT_RFID: Final = """
WITH ins AS (
    INSERT INTO rfid_read (time, device_id, epc, antenna, rssi, received_at)
    SELECT timestamptz 'epoch' + t_ms * interval '1 millisecond', device_id, epc, antenna, rssi,
           timestamptz 'epoch' + received_ms * interval '1 millisecond'
    FROM stage_rfid
    ORDER BY msg  -- of two reads of one (reader, epc, time) in a transaction, the earlier message's stays
    ON CONFLICT (device_id, epc, time) DO NOTHING
    RETURNING device_id, epc, time
), agg AS (
    SELECT count(*) AS n, array_agg(DISTINCT device_id) AS device_ids, min(time) AS t_min, max(time) AS t_max
    FROM ins
), outbox AS (
    INSERT INTO ingest_batch (kind, device_ids, t_min, t_max)
    SELECT 'rfid', device_ids, t_min, t_max FROM agg WHERE n > 0
    RETURNING batch_id
)
SELECT i.device_id, i.epc, (extract(epoch FROM i.time) * 1000)::bigint, (SELECT count(*) FROM outbox)
FROM ins i"""

# After INSERT_RFID, when fewer reads went in than were staged: staged reads whose (reader, epc, time)
# holds another antenna or rssi (the read stored first stays, as a sensor value does).
SELECT_RFID_CONFLICTS: Final = """
SELECT s.msg, s.epc, s.t_ms, r.antenna, r.rssi, s.antenna, s.rssi
FROM stage_rfid s
JOIN rfid_read r
  ON r.device_id = s.device_id AND r.epc = s.epc
 AND r.time = timestamptz 'epoch' + s.t_ms * interval '1 millisecond'
WHERE (r.antenna, r.rssi) IS DISTINCT FROM (s.antenna, s.rssi)
ORDER BY s.msg, s.t_ms, s.epc"""


# Newest receive time wins: a Last Will carries the time of the connect that registered it,
# so the device's own "t" cannot order status messages.
UPSERT_STATUS: Final = """
INSERT INTO device_status (device_id, status, updated_at) VALUES (%s, %s, %s)
ON CONFLICT (device_id) DO UPDATE SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at
WHERE device_status.updated_at <= EXCLUDED.updated_at"""

# Readings produced but never received, per (device, boot): next_seq is one past the highest seq counted,
# received counts readings received (stored, or refused as conflicting duplicates; a redelivered duplicate
# adds nothing, a late one fills its gap), skipped counts seq numbers passed over by confirmed jumps beyond
# the plausible window (device_anomaly), so missing = next_seq - received - skipped stays exact whatever
# order messages arrive in (several gateways sharing a subscription interleave them). A boot's seq starts
# at 0. jump_seq/jump_next/jump_received: the pending jump (see _SeqState). The row is locked (SELECT_SEQ)
# before it is computed, so the UPDATE writes absolute values.
INSERT_SEQ_ROWS: Final = """
INSERT INTO device_seq (device_id, boot, next_seq)
SELECT d, b, 0 FROM unnest(%s::text[], %s::bigint[]) AS u(d, b) ORDER BY d, b
ON CONFLICT (device_id, boot) DO NOTHING"""
UPDATE_SEQ: Final = """
UPDATE device_seq s SET next_seq = u.n, received = u.r, skipped = u.k, missing = u.m,
                        jump_seq = u.js, jump_next = u.jn, jump_received = u.jr
FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],
            %s::bigint[], %s::bigint[], %s::bigint[]) AS u(d, b, n, r, k, m, js, jn, jr)
WHERE s.device_id = u.d AND s.boot = u.b"""
INSERT_SEQ_ANOMALY: Final = """
INSERT INTO device_anomaly (device_id, boot, kind, received_at, expected_seq, seq, skipped, topic)
VALUES (%s, %s, 'seq_jump', %s, %s, %s, %s, %s)"""

INSERT_EVENTS: Final = """
WITH ins AS (
    INSERT INTO device_event (time, device_id, kind, value, received_at)
    SELECT timestamptz 'epoch' + t_ms * interval '1 millisecond', d, k, v::jsonb,
           timestamptz 'epoch' + rx * interval '1 millisecond'
    FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::integer[])
         AS u(t_ms, d, k, v, rx, msg)
    ORDER BY msg  -- of two events at one (device, kind, time) in a transaction, the earlier message's stays
    ON CONFLICT (device_id, kind, time) DO NOTHING
    RETURNING device_id, time
), agg AS (
    SELECT count(*) AS n, array_agg(DISTINCT device_id) AS device_ids, min(time) AS t_min, max(time) AS t_max
    FROM ins
), outbox AS (
    INSERT INTO ingest_batch (kind, device_ids, t_min, t_max)
    SELECT 'event', device_ids, t_min, t_max FROM agg WHERE n > 0
    RETURNING batch_id
)
SELECT agg.n, (SELECT count(*) FROM outbox) FROM agg"""

# After INSERT_EVENTS (same parameters), when fewer events went in than were sent: events whose
# (device, kind, time) holds another value (the event stored first stays).
SELECT_EVENT_CONFLICTS: Final = """
SELECT u.msg, u.k, u.t_ms, e.value::text, u.v
FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::integer[])
     AS u(t_ms, d, k, v, rx, msg)
JOIN device_event e
  ON e.device_id = u.d AND e.kind = u.k AND e.time = timestamptz 'epoch' + u.t_ms * interval '1 millisecond'
WHERE e.value IS DISTINCT FROM u.v::jsonb
ORDER BY u.msg, u.t_ms, u.k"""

# Fast path: one binary COPY straight into `reading`. A unique violation (a redelivered message) rolls
# back to the savepoint and the batch takes the staging path, whose ON CONFLICT absorbs duplicates.
COPY_READING: Final = "COPY reading (time, series_id, value, received_at, flags) FROM STDIN (FORMAT BINARY)"
INSERT_TELEMETRY_OUTBOX: Final = """
INSERT INTO ingest_batch (kind, series_ids, t_min, t_max)
VALUES ('telemetry', %s, timestamptz 'epoch' + %s * interval '1 millisecond',
        timestamptz 'epoch' + %s * interval '1 millisecond')"""

# Rows locked in key order (the sort sits below the row locks), so concurrent gateways cannot deadlock.
SELECT_SEQ: Final = """
SELECT device_id, boot, next_seq, received, skipped, missing, jump_seq, jump_next, jump_received
FROM device_seq
WHERE (device_id, boot) IN (SELECT * FROM unnest(%s::text[], %s::bigint[]))
ORDER BY device_id, boot FOR UPDATE"""

# Spool replay: which records of a spool segment are already in the database (same transaction as them).
# records counts the applying transactions: exactly upto + 1 unless a record was applied twice.
SELECT_SPOOL_MARK: Final = "SELECT upto FROM gateway_spool_applied WHERE segment = %s"
UPSERT_SPOOL_MARK: Final = """
INSERT INTO gateway_spool_applied (segment, upto, records) VALUES (%s, %s, 1)
ON CONFLICT (segment) DO UPDATE SET upto = GREATEST(gateway_spool_applied.upto, EXCLUDED.upto),
                                    records = gateway_spool_applied.records + 1,
                                    applied_at = now()"""

# Which conflicting messages are already dead letters (a redelivery: no second dead letter, and its
# readings are not received twice). The reason is a literal so the partial index (0009) serves it.
SELECT_CONFLICT_SEEN: Final = sql.SQL("""
SELECT DISTINCT d.topic, d.payload_sha256
FROM dead_letter d JOIN unnest(%s::text[], %s::bytea[]) AS u(topic, sha) ON d.payload_sha256 = u.sha
WHERE d.reason = {reason} AND d.topic = u.topic""").format(reason=sql.Literal(CONFLICTING_DUPLICATE))

INSERT_DEAD_LETTER: Final = """
INSERT INTO dead_letter (received_at, topic, payload, payload_bytes, payload_sha256, reason, detail)
VALUES (%s, %s, %s, %s, %s, %s, %s)"""

# Per device and day counters (migration 0011), added to in the storing transaction (gateway.daily).
UPSERT_DEVICE_DAY: Final = """
INSERT INTO device_day AS d (device_id, day, received, accepted, dead, readings, seq_missing)
SELECT * FROM unnest(%s::text[], %s::date[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],
                     %s::bigint[])
ON CONFLICT (device_id, day) DO UPDATE SET
    received = d.received + EXCLUDED.received, accepted = d.accepted + EXCLUDED.accepted,
    dead = d.dead + EXCLUDED.dead, readings = d.readings + EXCLUDED.readings,
    seq_missing = d.seq_missing + EXCLUDED.seq_missing"""
UPSERT_DEVICE_DAY_DEAD: Final = """
INSERT INTO device_day_dead AS d (device_id, day, reason, n)
SELECT * FROM unnest(%s::text[], %s::date[], %s::text[], %s::bigint[])
ON CONFLICT (device_id, day, reason) DO UPDATE SET n = d.n + EXCLUDED.n"""
