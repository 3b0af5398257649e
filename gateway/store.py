"""Stage 1, ingest: query module and COPY writer that stores decoded batches in one transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, MutableMapping, Sequence
from typing import Any, Final, LiteralString

import msgspec
import psycopg

from gateway.decode import Batch, RawMessage, Rejected, RfidBatch, StatusBatch, TelemetryBatch

SeriesKey = tuple[str, str]  # (device_id, channel)
SeriesCache = MutableMapping[SeriesKey, int]

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# Staging tables live per connection; ON COMMIT DELETE ROWS empties them at every commit.
CREATE_STAGE_READING: Final = """
CREATE TEMP TABLE IF NOT EXISTS stage_reading (
    t_ms bigint NOT NULL, series_id bigint NOT NULL, value double precision,
    received_ms bigint NOT NULL, flags smallint NOT NULL
) ON COMMIT DELETE ROWS"""
COPY_STAGE_READING: Final = (
    "COPY stage_reading (t_ms, series_id, value, received_ms, flags) FROM STDIN (FORMAT BINARY)"
)
STAGE_READING_TYPES: Final = ["int8", "int8", "float8", "int8", "int2"]

# Move staged readings in (duplicates of redelivered messages are dropped by the unique key) and
# write the outbox row for the rules workers over what was actually inserted.
INSERT_READINGS: Final = """
WITH ins AS (
    INSERT INTO reading (time, series_id, value, received_at, flags)
    SELECT timestamptz 'epoch' + t_ms * interval '1 millisecond', series_id, value,
           timestamptz 'epoch' + received_ms * interval '1 millisecond', flags
    FROM stage_reading
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
SELECT agg.n, (SELECT count(*) FROM outbox) FROM agg"""

CREATE_STAGE_RFID: Final = """
CREATE TEMP TABLE IF NOT EXISTS stage_rfid (
    t_ms bigint NOT NULL, device_id text NOT NULL, epc text NOT NULL, antenna integer,
    rssi double precision, received_ms bigint NOT NULL
) ON COMMIT DELETE ROWS"""
COPY_STAGE_RFID: Final = (
    "COPY stage_rfid (t_ms, device_id, epc, antenna, rssi, received_ms) FROM STDIN (FORMAT BINARY)"
)
STAGE_RFID_TYPES: Final = ["int8", "text", "text", "int4", "float8", "int8"]

INSERT_RFID: Final = """
WITH ins AS (
    INSERT INTO rfid_read (time, device_id, epc, antenna, rssi, received_at)
    SELECT timestamptz 'epoch' + t_ms * interval '1 millisecond', device_id, epc, antenna, rssi,
           timestamptz 'epoch' + received_ms * interval '1 millisecond'
    FROM stage_rfid
    ON CONFLICT (device_id, epc, time) DO NOTHING
    RETURNING device_id, time
), agg AS (
    SELECT count(*) AS n, array_agg(DISTINCT device_id) AS device_ids, min(time) AS t_min, max(time) AS t_max
    FROM ins
), outbox AS (
    INSERT INTO ingest_batch (kind, device_ids, t_min, t_max)
    SELECT 'rfid', device_ids, t_min, t_max FROM agg WHERE n > 0
    RETURNING batch_id
)
SELECT agg.n, (SELECT count(*) FROM outbox) FROM agg"""

SELECT_DEVICES: Final = "SELECT device_id, status FROM device WHERE device_id = ANY(%s)"

INSERT_SERIES: Final = """
INSERT INTO series (device_id, channel)
SELECT d, c FROM unnest(%s::text[], %s::text[]) AS u(d, c)
ON CONFLICT (device_id, channel) DO NOTHING"""
SELECT_SERIES: Final = """
SELECT s.series_id, s.device_id, s.channel
FROM series s JOIN unnest(%s::text[], %s::text[]) AS u(d, c) ON s.device_id = u.d AND s.channel = u.c"""

# Newest receive time wins: a Last Will carries the time of the connect that registered it,
# so the device's own "t" cannot order status messages.
UPSERT_STATUS: Final = """
INSERT INTO device_status (device_id, status, updated_at) VALUES (%s, %s, %s)
ON CONFLICT (device_id) DO UPDATE SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at
WHERE device_status.updated_at <= EXCLUDED.updated_at"""

# Readings produced but never received: a batch starting beyond next_seq leaves a gap. A batch
# starting before next_seq (redelivery or late fill) only moves next_seq forward; the missing count
# is therefore an upper bound when messages arrive out of order. A boot's seq starts at 0.
UPSERT_SEQ: Final = """
INSERT INTO device_seq (device_id, boot, next_seq, missing)
VALUES (%(device_id)s, %(boot)s, %(first_seq)s::bigint + %(n)s::bigint, %(first_seq)s::bigint)
ON CONFLICT (device_id, boot) DO UPDATE SET
    missing = device_seq.missing + GREATEST(%(first_seq)s::bigint - device_seq.next_seq, 0),
    next_seq = GREATEST(device_seq.next_seq, EXCLUDED.next_seq)"""

INSERT_DEAD_LETTER: Final = """
INSERT INTO dead_letter (received_at, topic, payload, reason, detail) VALUES (%s, %s, %s, %s, %s)"""


class WriteResult(msgspec.Struct, kw_only=True):
    """What one committed transaction wrote."""

    messages: int = 0
    readings_written: int = 0  # rows new to `reading` (redelivered duplicates excluded)
    rfid_written: int = 0
    status_updates: int = 0
    dead_letters: int = 0
    ingest_batches: int = 0


def ts(t_ms: int) -> dt.datetime:
    """Epoch ms as an aware UTC datetime (exact: integer microseconds)."""
    return _EPOCH + dt.timedelta(milliseconds=t_ms)


def write(
    conn: psycopg.Connection[Any],
    items: Sequence[tuple[RawMessage, Batch | Rejected]],
    cache: SeriesCache | None = None,
) -> WriteResult:
    """Store decoded messages in ONE transaction (committed on return); dead-letter the rest.

    `cache` maps (device_id, channel) -> series_id across calls; it only learns ids after commit."""
    result = WriteResult(messages=len(items))
    learned: dict[SeriesKey, int] = {}
    with conn.transaction(), conn.cursor() as cur:
        dead: list[tuple[RawMessage, str, str]] = [
            (raw, d.reason, d.detail) for raw, d in items if isinstance(d, Rejected)
        ]
        decoded = [(raw, d) for raw, d in items if not isinstance(d, Rejected)]
        accepted: list[Batch] = []
        if decoded:
            cur.execute(SELECT_DEVICES, (sorted({b.device_id for _, b in decoded}),))
            status_of: dict[str, str] = {row[0]: row[1] for row in cur.fetchall()}
            for raw, b in decoded:
                st = status_of.get(b.device_id)
                if st is None:
                    dead.append((raw, "unknown_device", f"device {b.device_id!r} is not registered"))
                elif st == "decommissioned":
                    dead.append((raw, "decommissioned", f"device {b.device_id!r} is decommissioned"))
                else:
                    accepted.append(b)
        telemetry = [b for b in accepted if isinstance(b, TelemetryBatch)]
        rfid = [b for b in accepted if isinstance(b, RfidBatch)]
        status = [b for b in accepted if isinstance(b, StatusBatch)]
        if telemetry:
            series = _resolve_series(cur, telemetry, cache if cache is not None else {}, learned)
            n, outbox = _write_readings(cur, telemetry, series)
            result.readings_written += n
            result.ingest_batches += outbox
        if rfid:
            n, outbox = _write_rfid(cur, rfid)
            result.rfid_written += n
            result.ingest_batches += outbox
        if status:
            result.status_updates = _write_status(cur, status)
        _update_seq(cur, [b for b in accepted if not isinstance(b, StatusBatch)])
        if dead:
            cur.executemany(
                INSERT_DEAD_LETTER,
                [
                    (ts(raw.received_at_ms), _text(raw.topic), raw.payload, reason, _text(detail))
                    for raw, reason, detail in dead
                ],
            )
        result.dead_letters = len(dead)
    if cache is not None:
        cache.update(learned)
    return result


def _text(s: str) -> str:
    """PostgreSQL text cannot hold NUL: keep it visible, escaped."""
    return s.replace("\x00", "\\x00")


def _resolve_series(
    cur: psycopg.Cursor[Any],
    batches: Iterable[TelemetryBatch],
    cache: SeriesCache,
    learned: dict[SeriesKey, int],
) -> dict[SeriesKey, int]:
    """series_id of every (device, channel) in the batches, creating series rows as needed."""
    keys = {(b.device_id, ch) for b in batches for ch in set(b.channel)}
    found = {k: cache[k] for k in keys if k in cache}
    missing = sorted(keys - found.keys())  # sorted: concurrent gateways lock new keys in one order
    if missing:
        devices = [k[0] for k in missing]
        channels = [k[1] for k in missing]
        cur.execute(INSERT_SERIES, (devices, channels))
        cur.execute(SELECT_SERIES, (devices, channels))
        for series_id, device_id, channel in cur.fetchall():
            found[(device_id, channel)] = series_id
            learned[(device_id, channel)] = series_id
    return found


def _write_readings(
    cur: psycopg.Cursor[Any], batches: Sequence[TelemetryBatch], series: dict[SeriesKey, int]
) -> tuple[int, int]:
    cur.execute(CREATE_STAGE_READING)
    with cur.copy(COPY_STAGE_READING) as cp:
        cp.set_types(STAGE_READING_TYPES)
        for b in batches:
            rx = b.received_at_ms
            dev = b.device_id
            for t_ms, ch, v, fl in zip(b.t_ms, b.channel, b.value, b.flags, strict=True):
                cp.write_row((t_ms, series[(dev, ch)], v, rx, fl))
    return _counts(cur, INSERT_READINGS)


def _write_rfid(cur: psycopg.Cursor[Any], batches: Sequence[RfidBatch]) -> tuple[int, int]:
    cur.execute(CREATE_STAGE_RFID)
    with cur.copy(COPY_STAGE_RFID) as cp:
        cp.set_types(STAGE_RFID_TYPES)
        for b in batches:
            for t_ms, epc, ant, rssi in zip(b.t_ms, b.epc, b.antenna, b.rssi, strict=True):
                cp.write_row((t_ms, b.device_id, epc, ant, rssi, b.received_at_ms))
    return _counts(cur, INSERT_RFID)


def _counts(cur: psycopg.Cursor[Any], query: LiteralString) -> tuple[int, int]:
    cur.execute(query)
    row = cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _write_status(cur: psycopg.Cursor[Any], batches: Sequence[StatusBatch]) -> int:
    latest: dict[str, StatusBatch] = {}
    for b in batches:
        prev = latest.get(b.device_id)
        if prev is None or prev.received_at_ms <= b.received_at_ms:
            latest[b.device_id] = b
    rows = [(d, b.status, ts(b.received_at_ms)) for d, b in sorted(latest.items())]
    cur.executemany(UPSERT_STATUS, rows)
    return len(rows)


def _update_seq(cur: psycopg.Cursor[Any], batches: Sequence[TelemetryBatch | RfidBatch]) -> None:
    if not batches:
        return
    params = sorted(
        ({"device_id": b.device_id, "boot": b.boot, "first_seq": b.seq, "n": len(b)} for b in batches),
        key=lambda p: (p["device_id"], p["boot"], p["first_seq"]),
    )
    cur.executemany(UPSERT_SEQ, params)
