"""Composition root: the fleet's scorecard tables written directly, as ingest and the rules would leave them.

`coldchain bench scorecard` measures the carrier scorecards over a fleet whose readings would take hours to
push through the gateway and the rules worker at a quarter of 1 000 loggers. The scorecards read no raw
reading: only the registry, the rollups, the gateway's day counters, crossings, lot verdicts and alarms.
`build` writes exactly those rows for a fleet seeded by `coldchain.fleet.seed_fleet`, from the same
generator (`firmware_sim.fleet.samples`, its fates, LATE_MS and malformed payloads), numpy per device and
binary COPY, without the raw `reading` rows:

- `rule_class`: published by the rules worker's own `sync_classes` (as a worker does when it starts);
- `series`: one per device and channel, created by the registry's `ensure_series` in the order the
  gateway's writer creates them (devices in the generator's order, channels sorted);
- `reading_1h`, `reading_1d`: every column the plain-PostgreSQL refresh computes (rules/migrations 0008
  and 0009: `readings_from_raw` over the stored readings, then `rollup_rebin`), over the samples the
  gateway stores (sent at once or LATE_MS late; lost and malformed ones store nothing), each received at
  its upload time and flagged 0 as the bench's ingest writes them. Sums add up in time order: the database
  adds in the order it scans, so a sum may differ from the pipeline's in its last bits, never more;
- `reading_1m`: the scorecards read minute rows only for hours not wholly in the class range, and this
  fleet's readings never leave it (checked for every reading: a fleet that did would also open excursions
  and alarms), so no minute row is written;
- `device_day`, `device_day_dead`: the gateway's counters (gateway/migrations 0011, `gateway.daily`): each
  message on its day (`gateway.daily.message_day`), a malformed one refused for the reason the gateway's
  decoder gives it, readings counted by seq, and the change in readings missing by seq booked, as the
  writer books it, on the day of each transaction's highest-seq message of the device, with the bench's
  ingest transactions (`messages_per_transaction` messages in upload order, device after device);
- `geofence_crossing`: the rules stage's `rules.engine.crossings` over each device's stored positions on
  its asset (crossed_at, device, lat, lon; judged_at is the build's time);
- lot verdicts and alarms: none, as the rules worker judges this fleet: every temperature is in its class
  range, no two consecutive temperatures are as far apart as the asset's allowed recording interval
  (both checked per device; a fleet that breaks either is refused), and no lot's containment is in the
  ledger, so no lot is judged.

Not written (the scorecards read none of them): `reading`, `device_seq`, `dead_letter`, `ingest_batch`,
series verdicts in `verdict_history`, `geofence_outbox`. The test tests/coldchain/test_fleet_rollups.py
builds one fleet both ways and checks every table the scorecards read, and the carrier scoreboard, equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from firmware_sim.fleet import DeviceSamples
    from firmware_sim.fleet_world import Fleet
    from registry.models import Geofence

DAY_MS: Final = 86_400_000
HOUR_MS: Final = 3_600_000
# The rollup columns, in table order (rules/migrations/0008_rollups.plain.sql).
ROLLUP_COLUMNS: Final = (
    "bucket", "series_id", "readings", "n", "sum_c", "min_c", "max_c", "avg_c", "minutes", "first_time",
    "last_time", "skewed", "lag_max_s", "lag_le_1s", "lag_le_5s", "lag_le_30s", "lag_le_60s", "lag_le_300s",
    "lag_le_3600s",
)  # fmt: skip
# The receive-lag histogram's bounds, seconds (lag_le_1s ... lag_le_3600s: readings received at most this
# long after their device time).
LAG_BOUNDS_S: Final = (1, 5, 30, 60, 300, 3600)
# The rollups COPY in pieces of about this many bytes (memory, not speed).
FLUSH_BYTES: Final = 64 * 2**20

# Whether the rollups are plain tables (plain PostgreSQL) rather than TimescaleDB's continuous aggregates.
ROLLUPS_ARE_TABLES: Final = """
SELECT count(*) = 3 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind = 'r'
  AND c.relname IN ('reading_1m', 'reading_1h', 'reading_1d')"""
# Each device's mounts with their asset's class range and allowed recording interval.
DEVICE_SCOPE: Final = """
SELECT m.device_id, m.asset_id, m.valid_from, m.valid_to, v.low_c, v.high_c, v.allowed_s
FROM device_mount m JOIN v_asset_scope v USING (asset_id)
WHERE m.device_id = ANY(%s)
ORDER BY m.device_id, m.valid_from"""
COPY_CROSSINGS: Final = """
COPY geofence_crossing (asset_id, location_id, direction, crossed_at, device_id, lat, lon)
FROM STDIN (FORMAT BINARY)"""
CROSSING_TYPES: Final = ("text", "text", "text", "timestamptz", "text", "float8", "float8")


class FleetBuildError(ValueError):
    """A fleet the direct build cannot write as the pipeline would (a sentence a person understands)."""


@dataclass(frozen=True)
class BuildCounts:
    """What `build` wrote, and what the pipeline would have stored."""

    devices: int
    readings: int  # readings the rollups hold: what the gateway would have stored
    messages: int  # messages the devices sent (lost samples are never sent)
    dead_letters: int
    crossings: int
    rows_1h: int
    rows_1d: int


@dataclass(frozen=True)
class _Scope:
    asset_id: str
    valid_from_ms: int
    valid_to_ms: int | None
    low_c: float | None
    high_c: float | None
    allowed_ms: int


def _ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


def _ts(t_ms: int) -> datetime:
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC)


def _copy_rows(columns: Sequence[npt.NDArray[Any]]) -> bytes:
    """COPY BINARY tuples (no header, no trailer) of 8-byte columns (int64 or float64, no NULL)."""
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for i, col in enumerate(columns):
        fields += [(f"l{i}", ">i4"), (f"v{i}", ">f8" if col.dtype.kind == "f" else ">i8")]
    rows = np.empty(len(columns[0]), dtype=np.dtype(fields))
    rows["n"] = len(columns)
    for i, col in enumerate(columns):
        rows[f"l{i}"] = 8
        rows[f"v{i}"] = col
    return rows.tobytes()


def _pg_us(t_ms: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    from gateway.store import PG_EPOCH_MS

    return (t_ms - PG_EPOCH_MS) * 1000


class _Rollups:
    """reading_1h and reading_1d rows of every series, held as COPY BINARY bytes and sent in pieces."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._parts: dict[str, list[bytes]] = {"reading_1h": [], "reading_1d": []}
        self._held = 0
        self.rows = {"reading_1h": 0, "reading_1d": 0}

    def add(self, table: str, columns: Sequence[npt.NDArray[Any]]) -> None:
        data = _copy_rows(columns)
        self._parts[table].append(data)
        self._held += len(data)
        self.rows[table] += len(columns[0])
        if self._held >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        from gateway.store import COPY_HEADER, COPY_TRAILER

        for table, parts in self._parts.items():
            if not parts:
                continue
            stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, ROLLUP_COLUMNS))
            )
            with self._conn.cursor() as cur, cur.copy(stmt) as cp:
                cp.write(COPY_HEADER)
                for p in parts:
                    cp.write(p)
                cp.write(COPY_TRAILER)
            parts.clear()
        self._held = 0


def _rollups_of(
    out: _Rollups,
    series_id: int,
    t_ms: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    stored: npt.NDArray[np.bool_],
    lag_ms: npt.NDArray[np.int64],
) -> None:
    """One series' hour and day rows: what readings_from_raw gives each minute (one sample a minute, so one
    reading), rebinned into hours (rollup_rebin over the minutes), then days (over the hours)."""
    n_hours = len(t_ms) // 60
    shape = (n_hours, 60)
    st = stored.reshape(shape)
    readings = st.sum(axis=1).astype(np.int64)
    sums = np.cumsum(np.where(st, value.reshape(shape), 0.0), axis=1)[:, -1]  # in time order, as added
    mins = np.where(st, value.reshape(shape), np.inf).min(axis=1)
    maxs = np.where(st, value.reshape(shape), -np.inf).max(axis=1)
    t = t_ms.reshape(shape)
    first = np.where(st, t, np.iinfo(np.int64).max).min(axis=1)
    last = np.where(st, t, np.iinfo(np.int64).min).max(axis=1)
    lag = lag_ms.reshape(shape)
    lag_max_ms = np.where(st, lag, -1).max(axis=1)
    le = [(st & (lag <= b * 1000)).sum(axis=1).astype(np.int64) for b in LAG_BOUNDS_S]
    bucket = t[:, 0] // HOUR_MS * HOUR_MS
    zero = np.zeros(n_hours, dtype=np.int64)
    hours = [bucket, np.full(n_hours, series_id, dtype=np.int64), readings, readings, sums, mins, maxs,
             sums / np.maximum(readings, 1), readings, first, last, zero, lag_max_ms, *le]  # fmt: skip
    keep = readings > 0
    h = [col[keep] for col in hours]
    _add(out, "reading_1h", h)
    # Days from the hours present, in time order.
    day = h[0] // DAY_MS * DAY_MS
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    sums_d = np.array([np.cumsum(part)[-1] for part in np.split(h[4], starts[1:])], dtype=np.float64)
    n_d = np.add.reduceat(h[3], starts)
    days = [day[starts], h[1][starts], np.add.reduceat(h[2], starts), n_d, sums_d,
            np.minimum.reduceat(h[5], starts), np.maximum.reduceat(h[6], starts), sums_d / n_d,
            np.add.reduceat(h[8], starts), np.minimum.reduceat(h[9], starts),
            np.maximum.reduceat(h[10], starts), np.add.reduceat(h[11], starts),
            np.maximum.reduceat(h[12], starts), *(np.add.reduceat(c, starts) for c in h[13:])]  # fmt: skip
    _add(out, "reading_1d", days)


def _add(out: _Rollups, table: str, cols: list[npt.NDArray[Any]]) -> None:
    """Columns in ROLLUP_COLUMNS order, times in epoch ms and lag in ms, as the table's values."""
    cols = list(cols)
    for i in (0, 9, 10):  # bucket, first_time, last_time
        cols[i] = _pg_us(cols[i])
    cols[12] = cols[12].astype(np.float64) / 1000  # lag_max_s
    out.add(table, cols)


def _day_counts(
    dev: DeviceSamples, order: npt.NDArray[np.int64], offset: int, per_tx: int
) -> tuple[dict[int, list[int]], dict[tuple[int, str], int]]:
    """The device's device_day counters per UTC day (epoch-day number): received, accepted, dead, readings,
    seq_missing; and its dead letters per (day, reason). `order`: its messages in upload order; `offset`:
    how many messages the bench's ingest sends before the device's first."""
    from firmware_sim import encode
    from firmware_sim.fleet import MALFORMED, malformed_payload
    from firmware_sim.fleet_world import CHANNELS
    from gateway.daily import message_day
    from gateway.decode import decode
    from gateway.models import RawMessage, Rejected

    ch = len(CHANNELS)
    rows: dict[int, list[int]] = {}
    dead: dict[tuple[int, str], int] = {}
    day_of = dev.t_ms // DAY_MS
    acc = dev.fate[order] != MALFORMED
    a_idx = order[acc]
    for d, k in zip(*np.unique(day_of[a_idx], return_counts=True), strict=True):
        row = rows.setdefault(int(d), [0, 0, 0, 0, 0])
        row[0] += int(k)
        row[1] += int(k)
        row[3] += int(k) * ch
    topic = encode.topic(dev.device_id, "telemetry")
    upload = dev.upload_ms
    for k, i in enumerate(order[~acc].tolist()):
        payload = malformed_payload(dev.device_id, dev.seq(i), int(dev.t_ms[i]), k)
        raw = RawMessage(topic, payload, int(upload[i]))
        refused = decode(topic, payload, raw.received_at_ms)
        if not isinstance(refused, Rejected):
            raise FleetBuildError(f"{dev.device_id}: a malformed message the gateway would accept")
        d = (message_day(raw, None) - datetime(1970, 1, 1, tzinfo=UTC).date()).days
        row = rows.setdefault(d, [0, 0, 0, 0, 0])
        row[0] += 1
        row[2] += 1
        dead[(d, refused.reason)] = dead.get((d, refused.reason), 0) + 1
    # Readings missing by seq after each ingest transaction (gateway.sequence.update_seq: next_seq is the
    # highest seq + readings seen, received the readings counted), the change booked on the day of the
    # transaction's highest-seq message of the device.
    tx = ((offset + np.arange(len(order))) // per_tx)[acc]
    if len(a_idx):
        next_seq = np.maximum.accumulate((a_idx + 1) * ch)
        received = ch * np.arange(1, len(a_idx) + 1)
        ends = np.flatnonzero(np.r_[tx[1:] != tx[:-1], True])
        starts = np.r_[0, ends[:-1] + 1]
        missing = np.maximum(next_seq[ends] - received[ends], 0)
        delta = np.diff(missing, prepend=0)
        top = np.maximum.reduceat(a_idx, starts)
        for i, dm in zip(top.tolist(), delta.tolist(), strict=True):
            if dm:
                rows.setdefault(int(day_of[i]), [0, 0, 0, 0, 0])[4] += int(dm)
    return rows, dead


def _positions_kept(
    t_ms: npt.NDArray[np.int64],
    lat: npt.NDArray[np.float64],
    lon: npt.NDArray[np.float64],
    fences: Sequence[Geofence],
    inside: dict[tuple[float, float], tuple[bool, ...]],
) -> npt.NDArray[np.int64]:
    """Indices of the positions that can cross a fence: the first, and each whose inside/outside state
    (registry.geometry.contains, per fence, once per distinct position across the fleet: `inside`) differs
    from the position before it. A position in the same state as the one before it crosses nothing, and
    the next one's state is compared with an equal one, so `crossings` of the kept positions equals
    `crossings` of all of them."""
    from registry.geometry import contains

    if len(t_ms) == 0:
        return np.zeros(0, dtype=np.int64)
    both = np.empty(len(lat), dtype=np.complex128)  # (lat, lon) as one value: np.unique sorts it fast
    both.real, both.imag = lat, lon
    pairs, inverse = np.unique(both, return_inverse=True)
    state_of = np.empty((len(pairs), len(fences)), dtype=bool)
    for j, (la, lo) in enumerate(zip(pairs.real.tolist(), pairs.imag.tolist(), strict=True)):
        key = (la, lo)
        st = inside.get(key)
        if st is None:
            st = inside[key] = tuple(contains(f, la, lo) for f in fences)
        state_of[j] = st
    state = state_of[inverse.reshape(-1)]
    change = np.r_[True, (state[1:] != state[:-1]).any(axis=1)]
    return np.flatnonzero(change)


def _scope(conn: psycopg.Connection[Any], device_ids: list[str]) -> dict[str, _Scope]:
    rows = conn.execute(DEVICE_SCOPE, (device_ids,)).fetchall()
    out: dict[str, _Scope] = {}
    for device_id, asset_id, valid_from, valid_to, low, high, allowed_s in rows:
        if device_id in out:
            raise FleetBuildError(f"{device_id}: mounted more than once (the direct build takes one mount)")
        out[str(device_id)] = _Scope(
            str(asset_id),
            _ms(valid_from),
            None if valid_to is None else _ms(valid_to),
            None if low is None else float(low),
            None if high is None else float(high),
            round(float(allowed_s) * 1000),
        )
    missing = sorted(set(device_ids) - out.keys())
    if missing:
        raise FleetBuildError(f"{missing[0]}: not mounted (seed the fleet first: coldchain.fleet.seed_fleet)")
    assets = [s.asset_id for s in out.values()]
    if len(set(assets)) < len(assets):
        raise FleetBuildError("an asset carries more than one device (the direct build takes one each)")
    return out


def _check_verdicts(dev: DeviceSamples, scope: _Scope, stored: npt.NDArray[np.bool_]) -> None:
    """Refuse a device whose readings the rules would judge anything but a pass for (see the module)."""
    temp = dev.temp_c[stored]
    if np.isnan(temp).any() or np.isnan(dev.lat).any() or np.isnan(dev.lon).any():
        raise FleetBuildError(f"{dev.device_id}: a dropout (NaN) the direct build does not write")
    if (scope.low_c is not None and temp.min(initial=np.inf) < scope.low_c) or (
        scope.high_c is not None and temp.max(initial=-np.inf) > scope.high_c
    ):
        raise FleetBuildError(
            f"{dev.device_id}: a temperature outside its class range (the rules would judge it)"
        )
    t = dev.t_ms[stored]
    if len(t) > 1 and int(np.diff(t).max()) >= scope.allowed_ms:
        raise FleetBuildError(f"{dev.device_id}: a gap as long as its allowed recording interval")


def build(url: str, fleet: Fleet, start_ms: int, *, messages_per_transaction: int) -> BuildCounts:
    """Write the fleet's scorecard tables into the database at `url`, whose registry `seed_fleet` holds
    (one transaction; see the module for what is written). `messages_per_transaction`: the bench ingest's
    transaction size, which decides the days the missing-by-seq counts fall on."""
    from firmware_sim.fleet import LATE, LATE_MS, LOST, SENT, samples
    from firmware_sim.fleet_world import CHANNELS
    from gateway.queries import UPSERT_DEVICE_DAY, UPSERT_DEVICE_DAY_DEAD
    from registry.shipments import geofences
    from registry.store import ensure_series
    from rules.engine.crossings import Position, crossings
    from rules.worker import RulesWorker

    if messages_per_transaction < 1:
        raise ValueError("messages_per_transaction must be at least 1")
    worker = RulesWorker(url)
    try:
        worker.sync_classes()
    finally:
        worker.close()
    devices = [t.device_id for c in fleet.carriers for t in c.trucks]
    counts = {"readings": 0, "messages": 0, "dead": 0, "crossings": 0}
    with psycopg.connect(url) as conn:
        row = conn.execute(ROLLUPS_ARE_TABLES).fetchone()
        if not row or not row[0]:
            raise FleetBuildError(
                "the direct build writes the plain-PostgreSQL rollup tables; this database's rollups are "
                "not tables (TimescaleDB's continuous aggregates)"
            )
        scope = _scope(conn, devices)
        fences = geofences(conn)
        series = ensure_series(conn, ((d, ch) for d in devices for ch in CHANNELS))
        rollups = _Rollups(conn)
        inside: dict[tuple[float, float], tuple[bool, ...]] = {}
        offset = 0
        for dev in samples(fleet, start_ms):
            sc = scope[dev.device_id]
            stored = (dev.fate == SENT) | (dev.fate == LATE)
            _check_verdicts(dev, sc, stored)
            lag_ms = np.where(dev.fate == LATE, LATE_MS, 0).astype(np.int64)
            for ch, values in zip(CHANNELS, (dev.temp_c, dev.lat, dev.lon), strict=True):
                _rollups_of(rollups, series[(dev.device_id, ch)], dev.t_ms, values, stored, lag_ms)
            order = np.argsort(dev.upload_ms, kind="stable")
            order = order[dev.fate[order] != LOST]
            days, dead = _day_counts(dev, order, offset, messages_per_transaction)
            offset += len(order)
            _write_days(conn, dev.device_id, days, dead, UPSERT_DEVICE_DAY, UPSERT_DEVICE_DAY_DEAD)
            # Crossings: the device's stored positions while mounted, in time order.
            on = stored & (dev.t_ms >= sc.valid_from_ms)
            if sc.valid_to_ms is not None:
                on &= dev.t_ms < sc.valid_to_ms
            on &= (np.abs(dev.lat) <= 90) & (np.abs(dev.lon) <= 180)
            idx = np.flatnonzero(on)
            kept = idx[_positions_kept(dev.t_ms[idx], dev.lat[idx], dev.lon[idx], fences, inside)]
            positions = [
                Position(_ts(t), dev.device_id, la, lo)
                for t, la, lo in zip(
                    dev.t_ms[kept].tolist(), dev.lat[kept].tolist(), dev.lon[kept].tolist(), strict=True
                )
            ]
            judged = crossings(positions, fences) if fences else []
            if judged:
                with conn.cursor() as cur, cur.copy(COPY_CROSSINGS) as cp:
                    cp.set_types(list(CROSSING_TYPES))
                    for c in judged:
                        cp.write_row(
                            (sc.asset_id, c.location_id, c.direction, c.t, c.device_id, c.lat, c.lon)
                        )
            counts["crossings"] += len(judged)
            counts["readings"] += int(stored.sum()) * len(CHANNELS)
            counts["messages"] += len(order)
            counts["dead"] += sum(dead.values())
        rollups.flush()
        conn.commit()
    return BuildCounts(
        devices=len(devices),
        readings=counts["readings"],
        messages=counts["messages"],
        dead_letters=counts["dead"],
        crossings=counts["crossings"],
        rows_1h=rollups.rows["reading_1h"],
        rows_1d=rollups.rows["reading_1d"],
    )


def _write_days(
    conn: psycopg.Connection[Any],
    device_id: str,
    days: dict[int, list[int]],
    dead: dict[tuple[int, str], int],
    upsert_day: Any,
    upsert_dead: Any,
) -> None:
    """The device's day counters through the gateway's own upserts (gateway.queries)."""
    keys = sorted(d for d, v in days.items() if any(v))
    dates = [_ts(d * DAY_MS).date() for d in keys]
    if keys:
        cols = [[device_id] * len(keys), dates, *([days[d][i] for d in keys] for i in range(5))]
        conn.execute(upsert_day, cols)
    if dead:
        ks = sorted(dead)
        conn.execute(
            upsert_dead,
            ([device_id] * len(ks), [_ts(d * DAY_MS).date() for d, _ in ks], [r for _, r in ks],
             [dead[k] for k in ks]),
        )  # fmt: skip
