"""Stage 1 (ingest): the writer: stores decoded batches in one transaction each (COPY fast path)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, MutableMapping, Sequence
from itertools import chain
from typing import Any, Final, LiteralString

import msgspec
import numpy as np
import psycopg
from psycopg import errors

from gateway.daily import DayCounts, message_day
from gateway.limits import DEFAULT_LIMITS, IngestLimits
from gateway.models import Batch, EventBatch, RawMessage, Rejected, RfidBatch, StatusBatch, TelemetryBatch
from gateway.queries import (
    CONFLICTING_DUPLICATE,
    COPY_READING,
    COPY_STAGE_READING,
    COPY_STAGE_RFID,
    CREATE_STAGE_READING,
    CREATE_STAGE_RFID,
    INSERT_DEAD_LETTER,
    INSERT_EVENTS,
    INSERT_READINGS,
    INSERT_RFID,
    INSERT_TELEMETRY_OUTBOX,
    SELECT_CONFLICT_SEEN,
    SELECT_EVENT_CONFLICTS,
    SELECT_READING_CONFLICTS,
    SELECT_RFID_CONFLICTS,
    STAGE_READING_TYPES,
    STAGE_RFID_TYPES,
    UPSERT_SPOOL_MARK,
    UPSERT_STATUS,
    pg_text,
    ts,
)
from gateway.sequence import update_seq
from registry.store import device_statuses, ensure_series

SeriesKey = tuple[str, str]  # (device_id, channel)
SeriesCache = MutableMapping[SeriesKey, int]


class WriteResult(msgspec.Struct, kw_only=True):
    """What one committed transaction wrote."""

    messages: int = 0
    readings_written: int = 0  # rows new to `reading` (redelivered duplicates excluded)
    rfid_written: int = 0
    status_updates: int = 0
    events_written: int = 0
    dead_letters: int = 0
    ingest_batches: int = 0
    readings_received: int = 0  # readings in accepted messages (written + redelivered duplicates)
    seq_gaps: int = 0  # readings newly known to be missing, from (boot, seq) gaps
    seq_anomalies: int = 0  # (boot, seq) jumps beyond the plausible window (device_anomaly rows)
    dead_reasons: dict[str, int] = msgspec.field(default_factory=dict)

    def add(self, other: WriteResult) -> None:
        for name in self.__struct_fields__:
            if name == "dead_reasons":
                for k, v in other.dead_reasons.items():
                    self.dead_reasons[k] = self.dead_reasons.get(k, 0) + v
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))


def write(
    conn: psycopg.Connection[Any],
    items: Sequence[tuple[RawMessage, Batch | Rejected]],
    cache: SeriesCache | None = None,
    *,
    spool_mark: tuple[str, int] | None = None,
    limits: IngestLimits = DEFAULT_LIMITS,
) -> WriteResult:
    """Store decoded messages in ONE transaction (committed on return); dead-letter the rest.

    `cache` maps (device_id, channel) -> series_id across calls; it only learns ids after commit.
    `spool_mark` (segment, record index) is recorded in the same transaction when replaying the spool.
    A reading, RFID read or device event whose key is stored with another value is a conflicting_duplicate
    dead letter of its message (the message's other items are stored; the stored value stays)."""
    result = WriteResult(messages=len(items))
    learned: dict[SeriesKey, int] = {}
    with conn.transaction(), conn.cursor() as cur:
        dead: list[tuple[RawMessage, str, str]] = [
            (raw, d.reason, d.detail) for raw, d in items if isinstance(d, Rejected)
        ]
        decoded = [(raw, d) for raw, d in items if not isinstance(d, Rejected)]
        accepted: list[tuple[RawMessage, Batch]] = []
        if decoded:
            status_of = device_statuses(cur, {b.device_id for _, b in decoded})
            for raw, b in decoded:
                st = status_of.get(b.device_id)
                if st is None:
                    dead.append((raw, "unknown_device", f"device {b.device_id!r} is not registered"))
                elif st == "decommissioned":
                    dead.append((raw, "decommissioned", f"device {b.device_id!r} is decommissioned"))
                else:
                    accepted.append((raw, b))
        tel_raw = [(raw, b) for raw, b in accepted if isinstance(b, TelemetryBatch)]
        rfid_raw = [(raw, b) for raw, b in accepted if isinstance(b, RfidBatch)]
        ev_raw = [(raw, b) for raw, b in accepted if isinstance(b, EventBatch)]
        status = [b for _, b in accepted if isinstance(b, StatusBatch)]
        stored: dict[int, int] = {}  # id(batch) -> its readings / reads actually inserted
        found: list[tuple[RawMessage, Batch, _Conflict]] = []  # conflicting messages, in arrival order
        if tel_raw:
            telemetry = [b for _, b in tel_raw]
            series = _resolve_series(cur, telemetry, cache if cache is not None else {}, learned)
            result.readings_received = sum(len(b) for b in telemetry)
            conflicts: list[_Conflict] = []
            n, outbox = _write_readings_fast(conn, cur, telemetry, series, stored, conflicts)
            result.readings_written += n
            result.ingest_batches += outbox
            found.extend((*tel_raw[c.msg], c) for c in conflicts)
        if ev_raw:
            conflicts = []
            n, outbox = _write_events(cur, [b for _, b in ev_raw], conflicts)
            result.events_written += n
            result.ingest_batches += outbox
            found.extend((*ev_raw[c.msg], c) for c in conflicts)
        if rfid_raw:
            conflicts = []
            n, outbox = _write_rfid(cur, [b for _, b in rfid_raw], stored, conflicts)
            result.rfid_written += n
            result.ingest_batches += outbox
            found.extend((*rfid_raw[c.msg], c) for c in conflicts)
        if status:
            result.status_updates = _write_status(cur, status)
        for raw, b, c in _first_conflicts(cur, found):
            # Received, not stored: its seq numbers are no gap.
            stored[id(b)] = stored.get(id(b), 0) + c.items
            dead.append((raw, CONFLICTING_DUPLICATE, c.detail))
        seq_tracked = [
            (raw, b)
            for raw, b in accepted
            if isinstance(b, RfidBatch) or (isinstance(b, TelemetryBatch) and b.seq_tracked)
        ]
        missing_delta: dict[int, int] = {}
        result.seq_gaps, result.seq_anomalies = update_seq(
            cur, seq_tracked, stored, limits.seq_jump_max, missing_delta
        )
        if spool_mark is not None:
            cur.execute(UPSERT_SPOOL_MARK, spool_mark)
        for _, reason, _ in dead:
            result.dead_reasons[reason] = result.dead_reasons.get(reason, 0) + 1
        if dead:
            prefix = limits.dead_letter_prefix_bytes
            cur.executemany(
                INSERT_DEAD_LETTER,
                [
                    (
                        ts(raw.received_at_ms),
                        pg_text(raw.topic),
                        raw.payload[:prefix],
                        raw.payload_bytes(),
                        raw.payload_sha256(),
                        reason,
                        pg_text(detail),
                    )
                    for raw, reason, detail in dead
                ],
            )
        result.dead_letters = len(dead)
        _count_days(cur, accepted, dead, stored, seq_tracked, missing_delta)
    if cache is not None:
        cache.update(learned)
    return result


def _count_days(
    cur: psycopg.Cursor[Any],
    accepted: Sequence[tuple[RawMessage, Batch]],
    dead: Sequence[tuple[RawMessage, str, str]],
    stored: dict[int, int],
    seq_tracked: Sequence[tuple[RawMessage, Batch]],
    missing_delta: dict[int, int],
) -> None:
    """Add this transaction's messages to the per device and day counters (gateway.daily)."""
    counts = DayCounts()
    dead_raw = {id(raw): reason for raw, reason, _ in dead}
    for raw, b in accepted:
        if id(raw) in dead_raw:
            continue  # dead-lettered after decoding (a conflicting duplicate): counted below
        # A redelivered message whose items were all stored before adds nothing (an empty one counts).
        # Events are not tracked per message: each counts.
        new = isinstance(b, StatusBatch | EventBatch) or len(b) == 0 or stored.get(id(b), 0) > 0
        counts.message(raw, b, new=new, dead_reason=None)
    decoded = {id(raw): b for raw, b in accepted}
    for raw, reason, _ in dead:
        counts.message(raw, decoded.get(id(raw)), new=True, dead_reason=reason)
    for raw, b in seq_tracked:
        counts.readings(b.device_id, message_day(raw, b), stored.get(id(b), 0), missing_delta.get(id(b), 0))
    counts.write(cur)


class _Conflict(msgspec.Struct, frozen=True):
    """Items of one message (index `msg` in its kind's list) whose key holds another stored value."""

    msg: int
    items: int  # how many of its items conflict
    detail: str


def _first_conflicts(
    cur: psycopg.Cursor[Any], found: Sequence[tuple[RawMessage, Batch, _Conflict]]
) -> list[tuple[RawMessage, Batch, _Conflict]]:
    """The conflicting messages not seen before: a redelivered one (same topic and payload bytes) is
    already a dead letter, in the database or earlier in this transaction."""
    if not found:
        return []
    keys = [(pg_text(raw.topic), raw.payload_sha256()) for raw, _, _ in found]
    cur.execute(SELECT_CONFLICT_SEEN, ([k[0] for k in keys], [k[1] for k in keys]))
    seen = {(str(t), bytes(h)) for t, h in cur.fetchall()}
    first = []
    for key, item in zip(keys, found, strict=True):
        if key not in seen:
            seen.add(key)
            first.append(item)
    return first


def _resolve_series(
    cur: psycopg.Cursor[Any],
    batches: Iterable[TelemetryBatch],
    cache: SeriesCache,
    learned: dict[SeriesKey, int],
) -> dict[SeriesKey, int]:
    """series_id of every (device, channel) in the batches, creating series rows as needed."""
    keys = {(b.device_id, ch) for b in batches for ch in set(b.channel)}
    found = {k: cache[k] for k in keys if k in cache}
    missing = keys - found.keys()
    if missing:
        # The registry creates them in sorted order: concurrent gateways lock new keys in one order.
        created = ensure_series(cur, missing)
        found.update(created)
        learned.update(created)
    return found


def _write_readings(
    cur: psycopg.Cursor[Any],
    batches: Sequence[TelemetryBatch],
    series: dict[SeriesKey, int],
    stored: dict[int, int],
    conflicts: list[_Conflict],
) -> tuple[int, int]:
    """Staging path (redelivery): ON CONFLICT drops duplicates; learn which readings were new and which
    differ from the stored value (appended to `conflicts`)."""
    cur.execute(CREATE_STAGE_READING)
    with cur.copy(COPY_STAGE_READING) as cp:
        cp.set_types(STAGE_READING_TYPES)
        for i, b in enumerate(batches):
            rx = b.received_at_ms
            dev = b.device_id
            for t_ms, ch, v, fl in zip(b.t_ms, b.channel, b.value, b.flags, strict=True):
                cp.write_row((t_ms, series[(dev, ch)], v, rx, fl, i))
    cur.execute(INSERT_READINGS)
    rows = cur.fetchall()
    cur.execute(SELECT_READING_CONFLICTS)
    channel_of = {sid: ch for (_, ch), sid in series.items()}
    conflicts.extend(
        _conflict_details(
            (msg, str(channel_of.get(int(sid), sid)), t_ms, _value_text(old), _value_text(new))
            for msg, sid, t_ms, old, new in cur.fetchall()
        )
    )
    new = {(int(sid), int(t)) for sid, t, _ in rows}
    for b in batches:
        keys = ((series[(b.device_id, ch)], t_ms) for t_ms, ch in zip(b.t_ms, b.channel, strict=True))
        stored[id(b)] = _count_new(keys, new)
    return len(rows), int(rows[0][2]) if rows else 0


def _count_new(keys: Iterable[Hashable], new: set[Any]) -> int:
    """How many of one message's keys the insert stored (`new`, consumed: the same item twice in one
    transaction counts once)."""
    n = 0
    for key in keys:
        if key in new:
            new.discard(key)
            n += 1
    return n


# A conflict's detail names at most this many readings (the detail column is for people; the count is
# always given).
_CONFLICTS_NAMED: Final = 5


def _value_text(v: float | None) -> str:
    return "null" if v is None else repr(v)


def _conflict_details(rows: Iterable[tuple[Any, str, Any, str, str]]) -> list[_Conflict]:
    """One _Conflict per message from (message index, item name, t_ms, stored text, received text) rows."""
    per_msg: dict[int, list[str]] = {}
    for msg, name, t_ms, stored_text, sent_text in rows:
        per_msg.setdefault(int(msg), []).append(
            f"{name} at {ts(int(t_ms)).isoformat(timespec='milliseconds')}: "
            f"stored {stored_text}, received {sent_text}"
        )
    return [
        _Conflict(
            msg,
            len(found),
            f"{len(found)} item(s) differ from the stored value, which stays: "
            + "; ".join(found[:_CONFLICTS_NAMED]),
        )
        for msg, found in per_msg.items()
    ]


# Binary COPY rows for reading(time, series_id, value, received_at, flags): int16 field count, then per
# field an int32 length and the big-endian value (PostgreSQL COPY BINARY format); a NULL value is length -1
# with no bytes, so rows with and without a value have two fixed layouts.
PG_EPOCH_MS: Final = 946_684_800_000  # 2000-01-01, PostgreSQL's timestamp epoch
_ROW: Final = np.dtype(
    [
        ("n", ">i2"), ("l1", ">i4"), ("t", ">i8"), ("l2", ">i4"), ("s", ">i8"), ("l3", ">i4"),
        ("v", ">f8"), ("l4", ">i4"), ("rx", ">i8"), ("l5", ">i4"), ("f", ">i2"),
    ]
)  # fmt: skip
_ROW_NULL: Final = np.dtype(
    [
        ("n", ">i2"), ("l1", ">i4"), ("t", ">i8"), ("l2", ">i4"), ("s", ">i8"), ("l3", ">i4"),
        ("l4", ">i4"), ("rx", ">i8"), ("l5", ">i4"), ("f", ">i2"),
    ]
)  # fmt: skip
COPY_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
COPY_TRAILER: Final = b"\xff\xff"


def reading_copy_rows(
    t_ms: np.ndarray[Any, Any],
    series_id: np.ndarray[Any, Any],
    value: np.ndarray[Any, Any],
    received_ms: np.ndarray[Any, Any],
    flags: np.ndarray[Any, Any],
) -> bytes:
    """COPY BINARY tuples (no header/trailer) for `reading`; NaN values become NULL."""
    null = np.isnan(value)
    parts = []
    for dtype, mask in ((_ROW, ~null), (_ROW_NULL, null)):
        n = int(mask.sum())
        if n == 0:
            continue
        rows = np.empty(n, dtype=dtype)
        rows["n"] = 5
        rows["l1"] = 8
        rows["t"] = (t_ms[mask] - PG_EPOCH_MS) * 1000
        rows["l2"] = 8
        rows["s"] = series_id[mask]
        if dtype is _ROW:
            rows["l3"] = 8
            rows["v"] = value[mask]
        else:
            rows["l3"] = -1
        rows["l4"] = 8
        rows["rx"] = (received_ms[mask] - PG_EPOCH_MS) * 1000
        rows["l5"] = 2
        rows["f"] = flags[mask]
        parts.append(rows.tobytes())
    return b"".join(parts)


def _write_readings_fast(
    conn: psycopg.Connection[Any],
    cur: psycopg.Cursor[Any],
    batches: Sequence[TelemetryBatch],
    series: dict[SeriesKey, int],
    stored: dict[int, int],
    conflicts: list[_Conflict],
) -> tuple[int, int]:
    t_ms = np.array(list(chain.from_iterable(b.t_ms for b in batches)), dtype=np.int64)
    value = np.array(list(chain.from_iterable(b.value for b in batches)), dtype=np.float64)
    flags = np.array(list(chain.from_iterable(b.flags for b in batches)), dtype=np.int16)
    lengths = [len(b) for b in batches]
    rx = np.repeat(np.array([b.received_at_ms for b in batches], dtype=np.int64), lengths)
    sid_parts = []
    for b in batches:
        channels = set(b.channel)
        if len(channels) == 1:  # the common case: one channel per message
            sid_parts.append(np.full(len(b), series[(b.device_id, b.channel[0])], dtype=np.int64))
        else:
            per = {c: series[(b.device_id, c)] for c in channels}
            sid_parts.append(np.array([per[c] for c in b.channel], dtype=np.int64))
    sid = np.concatenate(sid_parts)
    data = COPY_HEADER + reading_copy_rows(t_ms, sid, value, rx, flags) + COPY_TRAILER
    try:
        with conn.transaction(), cur.copy(COPY_READING) as cp:
            cp.write(data)
    except errors.UniqueViolation:
        return _write_readings(cur, batches, series, stored, conflicts)
    for b, n in zip(batches, lengths, strict=True):
        stored[id(b)] = n
    cur.execute(
        INSERT_TELEMETRY_OUTBOX,
        (sorted({int(s) for s in np.unique(sid)}), int(t_ms.min()), int(t_ms.max())),
    )
    return len(t_ms), 1


def _write_events(
    cur: psycopg.Cursor[Any], batches: Sequence[EventBatch], conflicts: list[_Conflict]
) -> tuple[int, int]:
    cols: tuple[list[Any], ...] = ([], [], [], [], [], [])
    for i, b in enumerate(batches):
        for t, k, v in zip(b.t_ms, b.event_kind, b.value_json, strict=True):
            for col, x in zip(cols, (t, b.device_id, k, pg_text(v), b.received_at_ms, i), strict=True):
                col.append(x)
    n, outbox = _counts_params(cur, INSERT_EVENTS, cols)
    if n < len(cols[0]):  # some were at a stored key: a redelivery, or another value
        cur.execute(SELECT_EVENT_CONFLICTS, cols)
        conflicts.extend(_conflict_details(cur.fetchall()))
    return n, outbox


def _counts_params(cur: psycopg.Cursor[Any], query: LiteralString, params: Sequence[Any]) -> tuple[int, int]:
    cur.execute(query, params)
    row = cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _read_text(antenna: int | None, rssi: float | None) -> str:
    return f"antenna {'null' if antenna is None else antenna}, rssi {_value_text(rssi)}"


def _write_rfid(
    cur: psycopg.Cursor[Any], batches: Sequence[RfidBatch], stored: dict[int, int], conflicts: list[_Conflict]
) -> tuple[int, int]:
    cur.execute(CREATE_STAGE_RFID)
    staged = 0
    with cur.copy(COPY_STAGE_RFID) as cp:
        cp.set_types(STAGE_RFID_TYPES)
        for i, b in enumerate(batches):
            for t_ms, epc, ant, rssi in zip(b.t_ms, b.epc, b.antenna, b.rssi, strict=True):
                cp.write_row((t_ms, b.device_id, epc, ant, rssi, b.received_at_ms, i))
                staged += 1
    cur.execute(INSERT_RFID)
    rows = cur.fetchall()
    if len(rows) < staged:  # some were at a stored key: a redelivery, or another antenna / rssi
        cur.execute(SELECT_RFID_CONFLICTS)
        conflicts.extend(
            _conflict_details(
                (msg, str(epc), t_ms, _read_text(a0, r0), _read_text(a1, r1))
                for msg, epc, t_ms, a0, r0, a1, r1 in cur.fetchall()
            )
        )
    new = {(str(d), str(e), int(t)) for d, e, t, _ in rows}
    for b in batches:
        stored[id(b)] = _count_new(
            ((b.device_id, epc, t_ms) for t_ms, epc in zip(b.t_ms, b.epc, strict=True)), new
        )
    return len(rows), int(rows[0][3]) if rows else 0


def _write_status(cur: psycopg.Cursor[Any], batches: Sequence[StatusBatch]) -> int:
    latest: dict[str, StatusBatch] = {}
    for b in batches:
        prev = latest.get(b.device_id)
        if prev is None or prev.received_at_ms <= b.received_at_ms:
            latest[b.device_id] = b
    rows = [(d, b.status, ts(b.received_at_ms)) for d, b in sorted(latest.items())]
    cur.executemany(UPSERT_STATUS, rows)
    return len(rows)
