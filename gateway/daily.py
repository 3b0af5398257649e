"""Stage 1 (ingest): per device and UTC day counters of messages received, accepted and dead-lettered (by
reason) and readings counted by (boot, seq), added up in the transaction that stores the messages."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import psycopg

from gateway.decode.common import RejectError, parse_time_ms, parse_topic
from gateway.models import Batch, RawMessage
from gateway.queries import UPSERT_DEVICE_DAY, UPSERT_DEVICE_DAY_DEAD

DayKey = tuple[str, dt.date]  # (device_id, UTC day)


def day_of_ms(t_ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(t_ms / 1000, tz=dt.UTC).date()


def _first_time_ms(payload: bytes) -> int | None:
    """The first reading's device time of a refused payload that is still JSON of the v1 shape (a schema
    violation elsewhere in it), else None."""
    try:
        doc = json.loads(payload)
        t = doc["readings"][0]["t"]
        return parse_time_ms(t)
    except (ValueError, TypeError, KeyError, IndexError, RecursionError, RejectError):
        return None


def message_day(raw: RawMessage, batch: Batch | None) -> dt.date:
    """A message's day: its first device time's UTC day when it can be read (from the decoded batch, or
    from a refused payload that is still JSON with a first reading's time), else its receive day."""
    if batch is not None:
        t = batch.t_ms
        if isinstance(t, int):
            return day_of_ms(t)
        if t:
            return day_of_ms(min(t))
    elif raw.whole_bytes is None:  # a payload over the size limit was refused unread, and is not read now
        first = _first_time_ms(raw.payload)
        if first is not None:
            try:
                return day_of_ms(first)
            except (OverflowError, OSError, ValueError):
                pass
    return day_of_ms(raw.received_at_ms)


def counted_device(raw: RawMessage) -> str | None:
    """The device a message counts for (its topic's), or None: a topic of no device, or a status message."""
    parsed = parse_topic(raw.topic)
    if parsed is None or parsed[1] == "status":
        return None
    return parsed[0]


class DayCounts:
    """What one transaction adds to device_day and device_day_dead."""

    def __init__(self) -> None:
        self.rows: dict[DayKey, list[int]] = {}  # received, accepted, dead, readings, seq_missing
        self.dead: dict[tuple[str, dt.date, str], int] = {}

    def _row(self, key: DayKey) -> list[int]:
        return self.rows.setdefault(key, [0, 0, 0, 0, 0])

    def message(self, raw: RawMessage, batch: Batch | None, *, new: bool, dead_reason: str | None) -> None:
        """One message: received (unless a redelivery storing nothing new), and accepted or dead."""
        device = counted_device(raw)
        if device is None or not (new or dead_reason is not None):
            return
        day = message_day(raw, batch)
        row = self._row((device, day))
        row[0] += 1
        if dead_reason is None:
            row[1] += 1
        else:
            row[2] += 1
            k = (device, day, dead_reason)
            self.dead[k] = self.dead.get(k, 0) + 1

    def readings(self, device: str, day: dt.date, received: int, missing_delta: int) -> None:
        row = self._row((device, day))
        row[3] += received
        row[4] += missing_delta

    def write(self, cur: psycopg.Cursor[Any]) -> None:
        """Add the counts (rows in key order, so concurrent gateways lock them in one order)."""
        keys = sorted(k for k, v in self.rows.items() if any(v))
        if keys:
            cols = list(zip(*((k[0], k[1], *self.rows[k]) for k in keys), strict=True))
            cur.execute(UPSERT_DEVICE_DAY, [list(c) for c in cols])
        dead = sorted(self.dead)
        if dead:
            devices, days, reasons = [k[0] for k in dead], [k[1] for k in dead], [k[2] for k in dead]
            cur.execute(UPSERT_DEVICE_DAY_DEAD, (devices, days, reasons, [self.dead[k] for k in dead]))
