"""Stage 2 (verdicts): the rules worker: takes ingest_batch rows, re-evaluates series, writes verdicts.

One `run_once` is one transaction: take up to `batch_limit` telemetry rows of the gateway's outbox
(``FOR UPDATE SKIP LOCKED``, so workers side by side never take the same row), re-evaluate every
temperature series they touched over the touched device-time window, replace the series' excursion
and gap rows in that window, hand newly closed excursions and new chain breaks to the ledger's
outbox (once each, ever), delete the ingest_batch rows and commit.

The re-evaluated slice of a series, per mount of its device on an asset that has a product class:
the touched window [t_min, t_max], widened by the class's longest rule window, widened again to cover
stored verdicts overlapping the touched window, then out to the last clearing reading before it and
the first clearing reading after it (in range by at least the hysteresis: an excursion cannot cross
one, and every gap next to new data lies inside), clipped to the mount interval. Verdict rows lying
wholly inside the slice are deleted and recomputed. Evaluation is on device time only.

The class profile's chain breaks are stored and handed to the ledger the same way, as chain_break rows
of kind 'excursion' under their own rule ids: an excursion beyond the single-event allowance
(…/single_event), time out of range beyond the cumulative allowance within its window (…/cumulative),
readings outside the hard band (…/band), each replaced with its slice like a gap; and MKT above its
limit (…/mkt), judged at the latest reading, one row per time it stood above the limit.

In the same transaction: the series' verdict (from its excursion and chain-break rows) gets a new
version in verdict_history when it or its evidence changed, recording the batches that arrived and
what was added or removed; alarms are opened, escalated (by the condition's device-time duration) and
auto-resolved (rules.alarms); and every lot held by a touched asset is judged against its own class
through the assets that carried it, a changed lot verdict going to the ledger as a 'lot_verdict'.
Alarm events are published (MQTT / webhooks) after commit.

An asset without a configured class is judged against the strictest class among the lots it holds.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import psycopg
import structlog
from numpy.typing import NDArray
from psycopg.types.json import Jsonb

from rules import alarms, engine, kernels, queries
from rules.alarms import AlarmNotifier, Condition, MqttPublisher, Webhook
from rules.models import (
    LotVerdictPayload,
    VerdictKind,
    VerdictLimits,
    VerdictPayload,
    from_epoch_us,
    iso_utc,
    to_epoch_ms,
)
from rules.packs import ClassRef, Mode, PackSet, load_packs

log = structlog.get_logger("rules.worker")

# Stands in for "no end" (an open mount, no in-range reading after the window): PostgreSQL and
# Python both represent it exactly, and it keeps every bound a plain comparison.
FAR_FUTURE = datetime.fromisoformat("9999-01-01T00:00:00+00:00")
ONE_US = timedelta(microseconds=1)

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class _Series:
    series_id: int
    device_id: str
    channel: str


@dataclass(frozen=True, slots=True)
class _Segment:
    """A series while its device was mounted on one asset, with that asset's class and mode."""

    series: _Series
    asset_id: str
    mode: Mode
    ref: ClassRef
    seg_lo: datetime  # mount valid_from (inclusive)
    seg_hi: datetime  # mount valid_to (exclusive), FAR_FUTURE while still mounted
    mounted_now: bool
    arrived: dict[str, Any] = field(default_factory=dict)  # batches that triggered this evaluation
    committed_at: datetime | None = None  # commit time of the earliest of those batches


@dataclass(slots=True)
class RunStats:
    """What one run_once did (for logs and tests)."""

    batches: int = 0
    series: int = 0
    excursions: int = 0
    gaps: int = 0
    emitted: int = 0
    alarms: int = 0
    history: int = 0
    lot_verdicts: int = 0
    breaks: int = 0  # profile chain breaks (single event, cumulative, band, MKT) written


class RulesWorker:
    """Consumes the gateway's telemetry outbox and keeps excursion / chain_break rows current."""

    def __init__(
        self,
        conninfo: str,
        packs_dir: Path | None = None,
        *,
        batch_limit: int = 32,
        alert_publisher: MqttPublisher | None = None,
        webhooks: Sequence[Webhook] = (),
        escalate_after_s: int | None = None,
    ) -> None:
        """`alert_publisher`: a connected paho client (owned by the caller) for alarm events;
        `webhooks`: URLs and HMAC secrets; `escalate_after_s`: condition duration after which an open
        alarm escalates to critical (default: the class's single-event allowance, else 3 × its
        minimum duration)."""
        if batch_limit < 1:
            raise ValueError("batch_limit must be >= 1")
        self._conninfo = conninfo
        self._packs = load_packs(packs_dir)  # a bad pack stops the service here, naming file and key
        self._batch_limit = batch_limit
        self._conn: Conn | None = None
        self._started = False
        self._escalate_after_s = escalate_after_s
        self.notifier = AlarmNotifier(alert_publisher, webhooks)
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self.last_run = RunStats()

    @property
    def packs(self) -> PackSet:
        return self._packs

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Compile the kernels and publish the class limits; run_once/run_forever call it if needed."""
        engine.warm_up()
        self.sync_classes()
        self.notifier.start()
        self._started = True

    def close(self) -> None:
        """Close the worker's connection and drain the alarm notifier (a later run_once reopens)."""
        self.notifier.stop()
        self._started = False
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> Conn:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=True)
        return self._conn

    def sync_classes(self) -> int:
        """Upsert one rule_class row per class of the loaded packs; return the number of classes."""
        conn = self._connection()
        n = 0
        with conn.transaction():
            for ref in self._packs.classes():
                conn.execute(
                    queries.UPSERT_RULE_CLASS,
                    {
                        "product_class": ref.code,
                        "pack_id": ref.pack_id,
                        "pack_version": ref.pack_version,
                        "description": ref.rules.description,
                        "low_c": ref.rules.low_c,
                        "high_c": ref.rules.high_c,
                        "source": ref.rules.source,
                    },
                )
                n += 1
        return n

    def run_forever(self, stop: threading.Event, poll_s: float = 0.2) -> None:
        """Run until `stop` is set; sleep `poll_s` whenever the queue is empty."""
        if not self._started:
            self.start()
        try:
            while not stop.is_set():
                if self.run_once() == 0:
                    stop.wait(poll_s)
        finally:
            self.close()

    # -- one round ---------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Consume up to `batch_limit` telemetry ingest_batch rows in one transaction; return how many."""
        if not self._started:
            self.start()
        stats = RunStats()
        conn = self._connection()
        self._pending = []
        with conn.transaction():
            rows = conn.execute(queries.TAKE_TELEMETRY_BATCHES, {"limit": self._batch_limit}).fetchall()
            if rows:
                windows: dict[int, tuple[datetime, datetime]] = {}
                batches: dict[int, list[int]] = {}
                committed: dict[int, datetime] = {}
                for batch_id, series_ids, t_min, t_max, created_at in rows:
                    for sid in series_ids:
                        lo, hi = windows.get(sid, (t_min, t_max))
                        windows[sid] = (min(lo, t_min), max(hi, t_max))
                        batches.setdefault(sid, []).append(batch_id)
                        committed[sid] = min(committed.get(sid, created_at), created_at)
                found = conn.execute(queries.TEMPERATURE_SERIES, {"series_ids": sorted(windows)}).fetchall()
                touched: dict[str, tuple[datetime, datetime]] = {}
                # Ascending series order for the advisory locks: two workers never deadlock on them.
                for series_id, device_id, channel in found:
                    conn.execute(queries.LOCK_SERIES, {"series_id": series_id})
                    w_lo, w_hi = windows[series_id]
                    arrived = {
                        "batch_ids": batches[series_id],
                        "t_min": iso_utc(w_lo),
                        "t_max": iso_utc(w_hi),
                    }
                    for asset_id in self._evaluate_series(
                        conn,
                        _Series(series_id, device_id, channel),
                        w_lo,
                        w_hi,
                        stats,
                        arrived,
                        committed[series_id],
                    ):
                        lo, hi = touched.get(asset_id, (w_lo, w_hi))
                        touched[asset_id] = (min(lo, w_lo), max(hi, w_hi))
                    stats.series += 1
                states = conn.execute(queries.STATE_SERIES, {"series_ids": sorted(windows)}).fetchall()
                for series_id, device_id, channel in states:
                    conn.execute(queries.LOCK_SERIES, {"series_id": series_id})
                    w_lo, w_hi = windows[series_id]
                    for asset_id in self._evaluate_state_series(
                        conn, _Series(series_id, device_id, channel), w_lo, w_hi, committed[series_id], stats
                    ):
                        lo, hi = touched.get(asset_id, (w_lo, w_hi))
                        touched[asset_id] = (min(lo, w_lo), max(hi, w_hi))
                    stats.series += 1
                for asset_id, (lo, hi) in sorted(touched.items()):
                    self._judge_lots(conn, asset_id, lo, hi, stats)
                conn.execute(queries.DELETE_BATCHES, {"batch_ids": [r[0] for r in rows]})
        stats.batches = len(rows)
        self.last_run = stats
        for event, alarm in self._pending:  # after commit: subscribers never see a rolled-back alarm
            self.notifier.publish(event, alarm)
        self._pending = []
        if rows:
            # Routine evaluations are debug; a run that sent verdicts to the ledger is worth a line.
            (log.info if stats.emitted else log.debug)(
                "rules.run_once",
                batches=stats.batches,
                series=stats.series,
                excursions=stats.excursions,
                gaps=stats.gaps,
                emitted=stats.emitted,
                alarms=stats.alarms,
                history=stats.history,
                lot_verdicts=stats.lot_verdicts,
                breaks=stats.breaks,
            )
        return len(rows)

    def _evaluate_series(
        self,
        conn: Conn,
        s: _Series,
        w_lo: datetime,
        w_hi: datetime,
        stats: RunStats,
        arrived: dict[str, Any] | None = None,
        committed_at: datetime | None = None,
    ) -> list[str]:
        """Evaluate the series on every asset it was mounted on in the window; return those assets."""
        mounts = self._mounts(conn, s, w_lo, w_hi)
        if not mounts:
            log.warning("rules.series_unmounted", series_id=s.series_id, device_id=s.device_id)
        assets: list[str] = []
        for asset_id, valid_from, valid_to, product_class, mode, ref in mounts:
            assets.append(asset_id)
            if ref is None:
                log.warning(
                    "rules.no_class",
                    series_id=s.series_id,
                    asset_id=asset_id,
                    product_class=product_class,
                )
                continue
            seg = _Segment(
                series=s,
                asset_id=asset_id,
                mode=mode,
                ref=ref,
                seg_lo=valid_from,
                seg_hi=valid_to if valid_to is not None else FAR_FUTURE,
                mounted_now=valid_to is None,
                arrived=arrived or {},
                committed_at=committed_at,
            )
            self._evaluate_segment(conn, seg, max(w_lo, seg.seg_lo), min(w_hi, seg.seg_hi - ONE_US), stats)
        return assets

    def _evaluate_state_series(
        self, conn: Conn, s: _Series, w_lo: datetime, w_hi: datetime, committed_at: datetime, stats: RunStats
    ) -> list[str]:
        """Door-open (door = 1) and power-loss (power = 0) runs beyond the class limit: chain breaks
        of kind 'door' / 'power', with an alarm while the run is still going on. Returns the assets
        (their lots are re-judged: lot verdicts include these channels)."""
        kind = "door" if s.channel == "door" else "power"
        state = 1.0 if kind == "door" else 0.0
        assets: list[str] = []
        for asset_id, valid_from, valid_to, _, mode, ref in self._mounts(conn, s, w_lo, w_hi):
            assets.append(asset_id)
            limit = None if ref is None else (ref.rules.door_open if kind == "door" else ref.rules.power_loss)
            if ref is None or limit is None:
                continue
            seg_lo = valid_from
            seg_hi = valid_to if valid_to is not None else FAR_FUTURE
            bound = {"series_id": s.series_id, "state": state, "seg_lo": seg_lo, "seg_hi": seg_hi}
            before = _scalar(conn.execute(queries.LAST_OUT_OF_STATE_BEFORE, {**bound, "t": w_lo}).fetchone())
            after = _scalar(conn.execute(queries.FIRST_OUT_OF_STATE_AFTER, {**bound, "t": w_hi}).fetchone())
            t_lo = seg_lo if before is None else before
            t_hi = seg_hi - ONE_US if after is None else after
            rows = conn.execute(
                queries.READINGS, {"series_id": s.series_id, "t_lo": t_lo, "t_hi": t_hi, "seg_hi": seg_hi}
            ).fetchall()
            n = len(rows)
            t_us = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
            v = np.fromiter((math.nan if r[1] is None else r[1] for r in rows), dtype=np.float64, count=n)
            t_ms, x = engine.check_series(t_us // 1000, v)
            starts, ends = kernels.state_runs(t_ms, x, state, limit.seconds * 1000 + 1)
            conn.execute(
                queries.DELETE_STATE_BREAKS_IN,
                {"kind": kind, "series_id": s.series_id, "t_lo": t_lo, "t_hi": t_hi},
            )
            rule_id = ref.rule_id("door_open" if kind == "door" else "power_loss")
            seg = _Segment(
                series=s,
                asset_id=asset_id,
                mode=mode,
                ref=ref,
                seg_lo=seg_lo,
                seg_hi=seg_hi,
                mounted_now=valid_to is None,
                committed_at=committed_at,
            )
            open_run = False
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                start, end = from_epoch_us(int(t_us[a])), from_epoch_us(int(t_us[b]))
                dur = (end - start).total_seconds()
                still = bool(x[b] == state) and after is None and seg.mounted_now
                what = "door open" if kind == "door" else "power lost"
                reason = f"{what} for {dur:.0f} s (allowed {limit.seconds} s)"
                conn.execute(
                    queries.UPSERT_STATE_BREAK,
                    {
                        "kind": kind,
                        "series_id": s.series_id,
                        "asset_id": asset_id,
                        "rule_id": rule_id,
                        "pack_version": ref.pack_version,
                        "start_time": start,
                        "end_time": end,
                        "allowed_s": float(limit.seconds),
                        "detail": Jsonb({"open": still, "source": limit.source, "device_id": s.device_id}),
                    },
                )
                if still:
                    open_run = True
                    self._alarm(conn, seg, kind, rule_id, start, end, None, reason, stats)
                    continue
                nan = math.nan
                run = engine.Gap(
                    start_idx=a,
                    end_idx=b,
                    t_start_ms=0,
                    t_end_ms=0,
                    min_c=nan,
                    max_c=nan,
                    mean_c=nan,
                    readings=0,
                )
                payload = _PayloadBase(seg, ref.rules.max_interval_s(mode)).payload(
                    "chain_break", kind, rule_id, start, end, reason, None, run, float(limit.seconds)
                )
                if _emit(conn, payload, s.series_id, rule_id, start, end):
                    stats.emitted += 1
                    self._alarm(conn, seg, kind, rule_id, start, end, None, reason, stats)
                    cleared = alarms.auto_resolve(
                        conn,
                        asset_id=asset_id,
                        rule_id=rule_id,
                        condition_end=end,
                        note=f"{kind} back to normal",
                    )
                    if cleared is not None:
                        self._pending.append(("resolved", cleared))
            if not open_run and after is None and seg.mounted_now and n and bool(x[-1] != state):
                cleared = alarms.auto_resolve(
                    conn,
                    asset_id=asset_id,
                    rule_id=rule_id,
                    condition_end=from_epoch_us(int(t_us[-1])),
                    note=f"{kind} back to normal",
                )
                if cleared is not None:
                    self._pending.append(("resolved", cleared))
                    stats.alarms += 1
        return assets

    def _mounts(
        self, conn: Conn, s: _Series, w_lo: datetime, w_hi: datetime
    ) -> list[tuple[str, datetime, datetime | None, str | None, Mode, ClassRef | None]]:
        """The series' mounts overlapping the window (asset, from, to, product class, mode), each with the
        class it is judged by: the mount's own, else the strictest class of the goods the asset held."""
        rows = conn.execute(
            queries.MOUNTS_OVERLAPPING, {"device_id": s.device_id, "t_lo": w_lo, "t_hi": w_hi}
        ).fetchall()
        return [
            (
                asset_id,
                valid_from,
                valid_to,
                product_class,
                mode,
                self._packs.lookup(product_class)
                if product_class is not None
                else self._strictest_held(conn, asset_id, w_lo, w_hi),
            )
            for asset_id, valid_from, valid_to, product_class, mode in rows
        ]

    def _strictest_held(self, conn: Conn, asset_id: str, t_lo: datetime, t_hi: datetime) -> ClassRef | None:
        """The strictest class among the lots an asset holds: the narrowest range, then the lowest top."""
        held = conn.execute(
            queries.LOTS_ON_ASSET, {"asset_id": asset_id, "t_lo": t_lo, "t_hi": t_hi}
        ).fetchall()
        refs = [r for r in (self._packs.lookup(pc) for _lot, pc in held) if r is not None]
        if not refs:
            return None

        def key(ref: ClassRef) -> tuple[float, float, str]:
            lo = -math.inf if ref.rules.low_c is None else ref.rules.low_c
            hi = math.inf if ref.rules.high_c is None else ref.rules.high_c
            return (hi - lo, hi, ref.code)

        return min(refs, key=key)

    def _evaluate_segment(
        self, conn: Conn, seg: _Segment, lo: datetime, hi: datetime, stats: RunStats
    ) -> None:
        s, rules = seg.series, seg.ref.rules
        look = timedelta(seconds=rules.lookback_s)
        stored_lo, stored_hi = conn.execute(
            queries.STORED_VERDICT_SPAN,
            {"series_id": s.series_id, "asset_id": seg.asset_id, "t_lo": lo, "t_hi": hi},
        ).fetchone() or (None, None)
        lo0 = lo - look if stored_lo is None else min(lo - look, stored_lo)
        hi0 = hi + look if stored_hi is None else max(hi + look, stored_hi)
        lo0, hi0 = max(lo0, seg.seg_lo), min(hi0, seg.seg_hi - ONE_US)
        limits = {
            "series_id": s.series_id,
            "low_c": rules.low_c,
            "high_c": rules.high_c,
            "low_inclusive": rules.low_inclusive,
            "high_inclusive": rules.high_inclusive,
            "hyst_c": rules.hysteresis_c,
            "seg_lo": seg.seg_lo,
            "seg_hi": seg.seg_hi,
        }
        # No in-range reading before: the slice starts at the mount. None after: it runs to the
        # latest reading of the mount, so a run reaching it may still be open.
        before = _scalar(conn.execute(queries.LAST_IN_RANGE_BEFORE, {**limits, "t": lo0}).fetchone())
        after = _scalar(conn.execute(queries.FIRST_IN_RANGE_AFTER, {**limits, "t": hi0}).fetchone())
        t_lo = seg.seg_lo if before is None else before
        right_unbounded = after is None
        t_hi = seg.seg_hi - ONE_US if after is None else after
        # Stored profile chain breaks (beyond an allowance, outside the band) overlapping the slice:
        # widen it to cover them whole (a cumulative break may span several excursions), so that
        # they are replaced, never left beside their recomputed selves.
        mkt_rule = seg.ref.rule_id("mkt")
        for _ in range(8):
            got = conn.execute(
                queries.PROFILE_BREAK_SPAN,
                {
                    "series_id": s.series_id,
                    "asset_id": seg.asset_id,
                    "mkt_rule": mkt_rule,
                    "t_lo": t_lo,
                    "t_hi": t_hi,
                },
            ).fetchone()
            if got is None or got[0] is None or (got[0] >= t_lo and got[1] <= t_hi):
                break
            if got[0] < t_lo:
                before = _scalar(
                    conn.execute(queries.LAST_IN_RANGE_BEFORE, {**limits, "t": got[0]}).fetchone()
                )
                t_lo = seg.seg_lo if before is None else before
            if got[1] > t_hi:
                after = _scalar(
                    conn.execute(queries.FIRST_IN_RANGE_AFTER, {**limits, "t": got[1]}).fetchone()
                )
                right_unbounded = after is None
                t_hi = seg.seg_hi - ONE_US if after is None else after

        readings = conn.execute(
            queries.READINGS, {"series_id": s.series_id, "t_lo": t_lo, "t_hi": t_hi, "seg_hi": seg.seg_hi}
        ).fetchall()
        n = len(readings)
        t_us = np.fromiter((r[0] for r in readings), dtype=np.int64, count=n)
        v = np.fromiter((math.nan if r[1] is None else r[1] for r in readings), dtype=np.float64, count=n)
        t_ms = t_us // 1000

        excursions = engine.find_excursions(
            t_ms,
            v,
            low_c=rules.low_c,
            high_c=rules.high_c,
            low_inclusive=rules.low_inclusive,
            high_inclusive=rules.high_inclusive,
            min_duration_ms=rules.min_duration.seconds * 1000,
            hysteresis_c=rules.hysteresis_c,
        )
        allowed_s = rules.max_interval_s(seg.mode)
        # Gaps are device-wide: a gap is a time when no temperature probe of the device reported; the
        # rows are filed under the device's first probe series, so one dropout is one chain break.
        primary = conn.execute(queries.PRIMARY_TEMP_SERIES, {"device_id": s.device_id}).fetchone()
        g_series = s if primary is None else _Series(int(primary[0]), s.device_id, str(primary[1]))
        merged = conn.execute(
            queries.DEVICE_TEMP_READINGS,
            {"device_id": s.device_id, "t_lo": t_lo, "t_hi": t_hi, "seg_hi": seg.seg_hi},
        ).fetchall()
        g_us = np.fromiter((r[0] for r in merged), dtype=np.int64, count=len(merged))
        g_v = np.fromiter(
            (math.nan if r[1] is None else r[1] for r in merged), dtype=np.float64, count=len(merged)
        )
        gaps = engine.find_gaps_tight(
            g_us // 1000,
            g_v,
            max_gap_ms=allowed_s * 1000,
            oor_gap_ms=rules.oor_interval_s(seg.mode) * 1000,
            low_c=rules.low_c,
            high_c=rules.high_c,
            low_inclusive=rules.low_inclusive,
            high_inclusive=rules.high_inclusive,
        )

        owned = {"series_id": s.series_id, "t_lo": t_lo, "t_hi": t_hi}
        conn.execute(queries.DELETE_EXCURSIONS_IN, owned)
        conn.execute(queries.DELETE_GAPS_IN, {**owned, "series_id": g_series.series_id})

        base = _PayloadBase(seg, allowed_s)
        g_seg = seg if g_series == s else replace(seg, series=g_series)
        g_base = _PayloadBase(g_seg, allowed_s)
        range_id = seg.ref.rule_id("range")
        open_now: tuple[datetime, datetime, float] | None = None
        closed_new = False
        for exc in excursions:
            start, end = from_epoch_us(int(t_us[exc.start_idx])), from_epoch_us(int(t_us[exc.end_idx]))
            is_open = exc.reaches_end and right_unbounded and seg.mounted_now
            rule_id = seg.ref.rule_id("range")
            conn.execute(
                queries.UPSERT_EXCURSION,
                {
                    "series_id": s.series_id,
                    "asset_id": seg.asset_id,
                    "product_class": seg.ref.code,
                    "rule_id": rule_id,
                    "pack_version": seg.ref.pack_version,
                    "start_time": start,
                    "end_time": end,
                    "open": is_open,
                    "peak_c": exc.peak_c,
                    "limit_low_c": rules.low_c,
                    "limit_high_c": rules.high_c,
                    "readings": exc.readings,
                },
            )
            stats.excursions += 1
            if not is_open:
                side = "above" if rules.high_c is not None and exc.peak_c > rules.high_c else "below"
                limit = rules.high_c if side == "above" else rules.low_c
                reason = (
                    f"temperature {side} {limit} °C for {(end - start).total_seconds():.0f} s "
                    f"(peak {exc.peak_c} °C; minimum duration {rules.min_duration.seconds} s)"
                )
                payload = base.payload(
                    "excursion_closed", "excursion", rule_id, start, end, reason, exc.peak_c, exc, None
                )
                new = _emit(conn, payload, s.series_id, rule_id, start, end)
                stats.emitted += new
                if new:  # an excursion that closed before any alarm saw it open still raises one
                    self._alarm(conn, seg, "excursion", range_id, start, end, exc.peak_c, reason, stats)
                    closed_new = True
            else:
                open_now = (start, end, exc.peak_c)

        for gap in gaps:
            start, end = from_epoch_us(int(g_us[gap.start_idx])), from_epoch_us(int(g_us[gap.end_idx]))
            rule_id = seg.ref.rule_id("gap")
            gap_s = (end - start).total_seconds()
            detail = {
                "gap_s": gap_s,
                "mode": seg.mode,
                "device_id": s.device_id,
                "channel": g_series.channel,
                "pack_id": seg.ref.pack_id,
                "source": rules.max_interval.transport.source
                if seg.mode == "transport"
                else rules.max_interval.storage.source,
            }
            conn.execute(
                queries.UPSERT_GAP,
                {
                    "series_id": g_series.series_id,
                    "asset_id": seg.asset_id,
                    "rule_id": rule_id,
                    "pack_version": seg.ref.pack_version,
                    "start_time": start,
                    "end_time": end,
                    "allowed_s": float(allowed_s),
                    "detail": Jsonb(detail),
                },
            )
            stats.gaps += 1
            gap_allowed_s = gap.allowed_ms / 1000
            reason = f"no temperature record for {gap_s:.0f} s (allowed {gap_allowed_s:.0f} s in {seg.mode})"
            payload = g_base.payload(
                "chain_break", "gap", rule_id, start, end, reason, None, gap, gap_allowed_s
            )
            new = _emit(conn, payload, g_series.series_id, rule_id, start, end)
            stats.emitted += new
            if new:
                self._alarm(conn, g_seg, "gap", rule_id, start, end, None, reason, stats)

        self._write_profile_breaks(conn, seg, t_lo, t_hi, t_us, v, excursions, right_unbounded, stats)

        live = right_unbounded and seg.mounted_now  # the slice reaches the latest reading
        if live and open_now is not None:
            o_start, o_end, o_peak = open_now
            reason = (
                f"temperature out of range since {iso_utc(o_start)} "
                f"({(o_end - o_start).total_seconds():.0f} s, peak {o_peak} °C)"
            )
            self._alarm(conn, seg, "excursion", range_id, o_start, o_end, o_peak, reason, stats)
        elif (live or closed_new) and (
            conn.execute(
                queries.OPEN_EXCURSION_ON_ASSET, {"asset_id": seg.asset_id, "rule_id": range_id}
            ).fetchone()
            is None
        ):
            cleared = alarms.auto_resolve(
                conn,
                asset_id=seg.asset_id,
                rule_id=range_id,
                condition_end=from_epoch_us(int(t_us[-1])) if n else hi,
                note=f"back in range past the {rules.hysteresis_c} °C hysteresis",
            )
            if cleared is not None:
                self._pending.append(("resolved", cleared))
                stats.alarms += 1
        now = self._evaluate_profile(conn, seg, lo, hi, stats)
        self._record_series_verdict(conn, seg, stats, now)

    def _evaluate_profile(
        self, conn: Conn, seg: _Segment, lo: datetime, hi: datetime, stats: RunStats
    ) -> list[engine.Breach]:
        """The rest of the class profile, live: cumulative allowance, hard band, MKT, triggers, the
        device accuracy and sensor faults, through `engine.evaluate_series` (the same evaluation as
        `rules check` and lot verdicts). Returns the breaches standing at the latest reading.

        Three slices of one read: *now*, the class look-back ending at the series' latest reading
        (MKT over its whole window from the `MKT_PREFIX` aggregate, so a 30-day window is never
        read); *touched*, [lo − look-back, hi]; *before*, [lo − look-back, lo). A breach standing now,
        or found in the touched slice but not before it (new data made it), opens or updates the
        asset's alarm under its own rule id; a rule of the profile not standing now is resolved."""
        s, r = seg.series, seg.ref.rules
        bound = {"series_id": s.series_id, "seg_lo": seg.seg_lo, "seg_hi": seg.seg_hi}
        latest = _scalar(conn.execute(queries.LATEST_READING, bound).fetchone())
        if latest is None:
            return []
        look = timedelta(seconds=r.lookback_s)
        acc = _scalar(conn.execute(queries.DEVICE_ACCURACY, {"device_id": s.device_id}).fetchone())
        t_lo = max(seg.seg_lo, min(lo, latest) - look)
        rows = conn.execute(
            queries.READINGS, {"series_id": s.series_id, "t_lo": t_lo, "t_hi": latest, "seg_hi": seg.seg_hi}
        ).fetchall()
        n = len(rows)
        t_ms = np.fromiter((row[0] for row in rows), dtype=np.int64, count=n) // 1000
        v = np.fromiter((math.nan if row[1] is None else row[1] for row in rows), dtype=np.float64, count=n)

        def breaches(a: datetime, b: datetime, prefix: engine.MktPrefix | None) -> dict[str, engine.Breach]:
            i = int(np.searchsorted(t_ms, to_epoch_ms(a), side="left"))
            j = int(np.searchsorted(t_ms, to_epoch_ms(b), side="right"))
            if not bool((~np.isnan(v[i:j])).any()):
                return {}
            ev = engine.evaluate_series(
                t_ms[i:j], v[i:j], seg.ref, seg.mode, accuracy_c=acc, mkt_prefix=prefix
            )
            return {x.rule_id: x for x in ev.breaches}

        mkt_id = seg.ref.rule_id("mkt")
        prefix: engine.MktPrefix | None = None
        now_lo = max(seg.seg_lo, latest - look)
        if r.mkt is not None:
            i = int(np.searchsorted(t_ms, to_epoch_ms(now_lo), side="left"))
            first = np.flatnonzero(~np.isnan(v[i:]))
            if first.shape[0]:
                s_first = from_epoch_us(int(t_ms[i + int(first[0])]) * 1000)
                w_lo = latest - timedelta(seconds=r.mkt.window_s)
                num, den = (0.0, 0.0)
                if w_lo < s_first:
                    got = conn.execute(
                        queries.MKT_PREFIX, {**bound, "s": s_first, "lo": w_lo, "dhr": r.mkt.delta_h_r_k}
                    ).fetchone()
                    num, den = (0.0, 0.0) if got is None else (float(got[0]), float(got[1]))
                prefix = engine.MktPrefix(weighted_ms=num, span_ms=den)
        now = breaches(now_lo, latest, prefix)
        if r.mkt is not None:
            self._mkt_break(conn, seg, latest, now.get(mkt_id), stats)
        touched = {k: b for k, b in breaches(lo - look, hi, None).items() if k != mkt_id}
        before = {k: b for k, b in breaches(lo - look, lo - ONE_US, None).items() if k != mkt_id}
        for rule_id in sorted(set(now) | (set(touched) - set(before))):
            b = now.get(rule_id) or touched[rule_id]
            self._alarm(
                conn,
                seg,
                rule_id.split("/")[-1].split(".")[0],
                rule_id,
                from_epoch_us(b.start_ms * 1000),
                from_epoch_us(b.end_ms * 1000),
                None,
                b.reason,
                stats,
                severity=b.severity,
            )
        if seg.mounted_now:
            profile = ["cumulative", "band", "mkt", "accuracy", "faults"]
            profile += [f"trigger.{t.name}" for t in r.triggers]
            for rule in profile:
                rule_id = seg.ref.rule_id(rule)
                if rule_id in now:
                    continue
                cleared = alarms.auto_resolve(
                    conn,
                    asset_id=seg.asset_id,
                    rule_id=rule_id,
                    condition_end=latest,
                    note=f"{rule} clear over the look-back ending at the latest reading",
                )
                if cleared is not None:
                    self._pending.append(("resolved", cleared))
                    stats.alarms += 1
        return [now[k] for k in sorted(now)]

    def _write_profile_breaks(
        self,
        conn: Conn,
        seg: _Segment,
        t_lo: datetime,
        t_hi: datetime,
        t_us: NDArray[np.int64],
        v: NDArray[np.float64],
        excursions: Sequence[engine.Excursion],
        right_unbounded: bool,
        stats: RunStats,
    ) -> None:
        """Chain breaks (kind 'excursion') of the re-evaluated slice beyond the class's allowances or
        outside its hard band, as `engine.evaluate_series` judges them: an excursion longer than the
        single-event allowance (…/single_event; not one suspended as a defrost or within the device
        accuracy of the limit), time out of range beyond the cumulative allowance within its window
        (…/cumulative: the out-of-range readings of the exceeding windows), a run of readings outside
        the band (…/band). Rows wholly inside the slice are replaced; each break goes to the ledger
        once (a break overlapping an emitted one of the same rule is the same break)."""
        s, rules = seg.series, seg.ref.rules
        conn.execute(
            queries.DELETE_PROFILE_BREAKS_IN,
            {
                "series_id": s.series_id,
                "asset_id": seg.asset_id,
                "mkt_rule": seg.ref.rule_id("mkt"),
                "t_lo": t_lo,
                "t_hi": t_hi,
            },
        )
        n = t_us.shape[0]
        if n == 0:
            return
        t_ms = t_us // 1000
        low = -math.inf if rules.low_c is None else rules.low_c
        high = math.inf if rules.high_c is None else rules.high_c
        # (rule, first index, last index, allowed_s, still open, peak, detail, reason)
        found: list[tuple[str, int, int, float, bool, float | None, dict[str, Any], str]] = []
        al = rules.allowances
        live = right_unbounded and seg.mounted_now
        if al is not None and al.single_event is not None:
            single = al.single_event
            acc = _scalar(conn.execute(queries.DEVICE_ACCURACY, {"device_id": s.device_id}).fetchone())
            if acc is None:
                acc = rules.accuracy.value if rules.accuracy else 0.0
            d = rules.defrost
            for exc in excursions:
                dur_s = exc.duration_ms / 1000
                if dur_s <= single.seconds or max(low - exc.peak_c, exc.peak_c - high) <= acc:
                    continue
                if (
                    d is not None
                    and exc.peak_c > high
                    and dur_s <= d.max_s
                    and exc.peak_c <= high + d.max_rise_c
                ):
                    continue
                still = exc.reaches_end and live
                found.append(
                    (
                        "single_event",
                        exc.start_idx,
                        exc.end_idx,
                        float(single.seconds),
                        still,
                        exc.peak_c,
                        {"duration_s": dur_s, "peak_c": exc.peak_c, "source": single.source},
                        f"excursion of {dur_s:.0f} s{' so far' if still else ''} exceeds the single-event "
                        f"allowance of {single.seconds} s (peak {exc.peak_c} °C)",
                    )
                )
        if al is not None and al.cumulative is not None:
            cum = al.cumulative
            for i, j, worst_ms in engine.cumulative_breaks(
                t_ms,
                v,
                low_c=rules.low_c,
                high_c=rules.high_c,
                low_inclusive=rules.low_inclusive,
                high_inclusive=rules.high_inclusive,
                window_ms=cum.window_s * 1000,
                allowance_ms=cum.seconds * 1000,
            ):
                seg_v = v[i : j + 1]
                peak = _peak(seg_v, low, high)
                found.append(
                    (
                        "cumulative",
                        i,
                        j,
                        float(cum.seconds),
                        False,
                        peak,
                        {
                            "out_of_range_s": worst_ms / 1000,
                            "window_s": cum.window_s,
                            "peak_c": peak,
                            "source": cum.source,
                        },
                        f"{worst_ms / 1000:.0f} s out of range within {cum.window_s} s exceeds the "
                        f"cumulative allowance of {cum.seconds} s",
                    )
                )
        if rules.band is not None:
            band = rules.band
            b_lo = -math.inf if band.low_c is None else band.low_c
            b_hi = math.inf if band.high_c is None else band.high_c
            for i, j in engine.band_runs(v, low_c=band.low_c, high_c=band.high_c):
                peak = _peak(v[i : j + 1], b_lo, b_hi)
                still = live and not bool((~np.isnan(v[j + 1 :])).any())
                found.append(
                    (
                        "band",
                        i,
                        j,
                        0.0,
                        still,
                        peak,
                        {
                            "band_low_c": band.low_c,
                            "band_high_c": band.high_c,
                            "peak_c": peak,
                            "source": band.source,
                        },
                        f"readings outside the permitted band [{b_lo}, {b_hi}] °C (peak {peak} °C)",
                    )
                )
        base = _PayloadBase(seg, rules.max_interval_s(seg.mode))
        for rule, i, j, allowed, still, peak, detail, reason in found:
            rule_id = seg.ref.rule_id(rule)
            start, end = from_epoch_us(int(t_us[i])), from_epoch_us(int(t_us[j]))
            _upsert_profile_break(
                conn,
                seg,
                s.series_id,
                rule_id,
                (start, end),
                allowed,
                {**detail, "open": still, "mode": seg.mode, "pack_id": seg.ref.pack_id},
            )
            stats.breaks += 1
            payload = base.payload(
                "chain_break", "excursion", rule_id, start, end, reason, peak, _stats(v, i, j), allowed
            )
            stats.emitted += _emit(conn, payload, s.series_id, rule_id, start, end)

    def _mkt_break(
        self, conn: Conn, seg: _Segment, latest: datetime, standing: engine.Breach | None, stats: RunStats
    ) -> None:
        """The MKT chain break (kind 'excursion', rule …/mkt): MKT is judged at the latest reading over
        the class's window, so the row covers the readings at which it was judged above its limit, from
        the first to the latest; it stays open while MKT stands above the limit, and is closed when it
        no longer does. Late data that brings MKT back under the limit at a reading already judged
        takes that reading off the row (the row goes when nothing is left)."""
        mkt = seg.ref.rules.mkt
        assert mkt is not None
        s = seg.series
        rule_id = seg.ref.rule_id("mkt")
        row = conn.execute(
            queries.OPEN_MKT_BREAK, {"series_id": s.series_id, "asset_id": seg.asset_id, "rule_id": rule_id}
        ).fetchone()
        if standing is None or standing.value is None:
            if row is None:
                return
            break_id, start, end, detail = row
            if end < latest:  # judged above the limit up to `end`, not at the latest reading
                conn.execute(
                    queries.UPDATE_MKT_BREAK,
                    {"chain_break_id": break_id, "end_time": end, "detail": Jsonb({**detail, "open": False})},
                )
                return
            prev = detail.get("previous_end")
            if start >= latest or prev is None:
                conn.execute(queries.DELETE_CHAIN_BREAK, {"chain_break_id": break_id})
            else:
                conn.execute(
                    queries.UPDATE_MKT_BREAK,
                    {
                        "chain_break_id": break_id,
                        "end_time": datetime.fromisoformat(prev),
                        "detail": Jsonb({**detail, "open": False, "previous_end": None}),
                    },
                )
            stats.breaks += 1
            return
        mkt_c = float(standing.value)
        figures = {
            "mkt_c": round(mkt_c, 6),
            "limit_c": mkt.limit_c,
            "window_s": mkt.window_s,
            "delta_h_r_k": mkt.delta_h_r_k,
            "source": mkt.source,
            "mode": seg.mode,
            "pack_id": seg.ref.pack_id,
            "open": True,
        }
        stats.breaks += 1
        if row is not None:
            break_id, start, end, detail = row
            if latest > end:
                worst = max(mkt_c, float(detail.get("max_mkt_c", mkt_c)))
                detail = {**detail, **figures, "max_mkt_c": round(worst, 6), "previous_end": end.isoformat()}
                conn.execute(
                    queries.UPDATE_MKT_BREAK,
                    {"chain_break_id": break_id, "end_time": latest, "detail": Jsonb(detail)},
                )
            elif latest == end:  # re-judged at the same reading (late data before it)
                detail = {**detail, **figures, "max_mkt_c": round(max(mkt_c, float(detail["max_mkt_c"])), 6)}
                conn.execute(
                    queries.UPDATE_MKT_BREAK,
                    {"chain_break_id": break_id, "end_time": end, "detail": Jsonb(detail)},
                )
            return
        _upsert_profile_break(
            conn,
            seg,
            s.series_id,
            rule_id,
            (latest, latest),
            0.0,
            {**figures, "max_mkt_c": round(mkt_c, 6), "previous_end": None},
        )
        reason = f"MKT {mkt_c:.2f} °C over {mkt.window_s} s exceeds {mkt.limit_c} °C"
        nan = math.nan
        run = engine.Gap(
            start_idx=0, end_idx=0, t_start_ms=0, t_end_ms=0, min_c=nan, max_c=nan, mean_c=nan, readings=0
        )
        payload = _PayloadBase(seg, seg.ref.rules.max_interval_s(seg.mode)).payload(
            "chain_break", "excursion", rule_id, latest, latest, reason, None, run, 0.0
        )
        stats.emitted += _emit(conn, payload, s.series_id, rule_id, latest, latest)

    def _alarm(
        self,
        conn: Conn,
        seg: _Segment,
        kind: str,
        rule_id: str,
        start: datetime,
        end: datetime,
        peak_c: float | None,
        reason: str,
        stats: RunStats,
        *,
        severity: str | None = None,
    ) -> None:
        """Open or update the asset's alarm for this rule; escalate by the condition's duration
        (`severity` given: the rule's own, as the profile rules carry it)."""
        rules = seg.ref.rules
        if severity is not None:
            pass
        elif kind == "gap":
            severity = "warning"
        elif kind in ("door", "power"):
            severity = "critical"
        else:
            after = self._escalate_after_s
            if after is None:
                single = rules.allowances.single_event if rules.allowances else None
                after = single.seconds if single is not None else 3 * rules.min_duration.seconds
            severity = "critical" if (end - start).total_seconds() >= after else "warning"
        change = alarms.raise_or_update(
            conn,
            Condition(
                asset_id=seg.asset_id,
                rule_id=rule_id,
                kind=kind,
                severity=severity,
                series_id=seg.series.series_id,
                product_class=seg.ref.code,
                pack_version=seg.ref.pack_version,
                reason=reason,
                condition_start=start,
                condition_end=end,
                peak_c=peak_c,
                trigger_committed_at=seg.committed_at,
            ),
        )
        if change is not None:
            self._pending.append(change)
            stats.alarms += 1

    def _record_series_verdict(
        self, conn: Conn, seg: _Segment, stats: RunStats, standing: Sequence[engine.Breach] = ()
    ) -> None:
        """A new verdict_history version for the series on this asset when its verdict or evidence changed."""
        rules = seg.ref.rules
        rows = conn.execute(
            queries.SERIES_EVIDENCE, {"series_id": seg.series.series_id, "asset_id": seg.asset_id}
        ).fetchall()
        items = [
            {"kind": k, "rule_id": r, "start": iso_utc(a), "end": iso_utc(b), "open": bool(o)}
            for k, r, a, b, o, _peak in rows
        ]
        single = rules.allowances.single_event if rules.allowances else None
        reasons: list[str] = []
        verdict: engine.Verdict = "pass"
        for k, r, a, b, o, peak in rows:
            dur = (b - a).total_seconds()
            if k != "excursion":
                verdict = engine.worst(verdict, "broken")
                reasons.append(f"{k} {iso_utc(a)}..{iso_utc(b)} ({dur:.0f} s, {r})")
            elif single is not None and dur > single.seconds:
                verdict = engine.worst(verdict, "broken")
                reasons.append(
                    f"excursion {iso_utc(a)} of {dur:.0f} s beyond the {single.seconds} s allowance"
                )
            else:
                verdict = engine.worst(verdict, "excursion")
                reasons.append(f"excursion {iso_utc(a)} ({dur:.0f} s, peak {peak} °C{', open' if o else ''})")
        # The profile rules standing at the latest reading (cumulative, band, MKT, triggers, the
        # device accuracy, sensor faults): an indeterminate verdict comes from here.
        for b in standing:
            items.append({"kind": "rule", "rule_id": b.rule_id, "level": b.level})
            verdict = engine.worst(verdict, b.level)
            reasons.append(b.reason)
        subject = f"{seg.series.series_id}@{seg.asset_id}"
        if _record_history(conn, "series", subject, verdict, seg.ref, items, reasons, seg.arrived)[0]:
            stats.history += 1

    def _judge_lots(self, conn: Conn, asset_id: str, t_lo: datetime, t_hi: datetime, stats: RunStats) -> None:
        """Re-judge every lot the asset held in [t_lo, t_hi] against the lot's own class."""
        held = conn.execute(
            queries.LOTS_ON_ASSET, {"asset_id": asset_id, "t_lo": t_lo, "t_hi": t_hi}
        ).fetchall()
        for lot_id, product_class in held:
            ref = self._packs.lookup(product_class)
            if ref is None:
                log.warning("rules.lot_no_class", lot_id=lot_id, product_class=product_class)
                continue
            verdict, reasons, items, span = judge_lot(conn, lot_id, ref)
            arrived = {"asset_id": asset_id, "t_min": iso_utc(t_lo), "t_max": iso_utc(t_hi)}
            version, before = _record_history(conn, "lot", lot_id, verdict, ref, items, reasons, arrived)
            if version:
                stats.history += 1
            # The ledger hears of a lot verdict when its result changes (the history keeps every
            # change of evidence too).
            if version and before != verdict:
                payload = LotVerdictPayload(
                    verdict="lot_verdict",
                    verdict_id=f"lot_verdict:{lot_id}:v{version}",
                    lot_id=lot_id,
                    product_class=ref.code,
                    result=verdict,
                    reasons=reasons,
                    pack_id=ref.pack_id,
                    pack_version=ref.pack_version,
                    computed_at=iso_utc(datetime.now(UTC)),
                    version=version,
                    start=None if span is None else iso_utc(span[0]),
                    end=None if span is None else iso_utc(span[1]),
                )
                conn.execute(queries.LOT_VERDICT_OUTBOX, {"payload": Jsonb(msgspec.to_builtins(payload))})
                stats.lot_verdicts += 1


def judge_lot(
    conn: Conn, lot_id: str, ref: ClassRef
) -> tuple[engine.Verdict, list[str], list[dict[str, Any]], tuple[datetime, datetime] | None]:
    """A lot's verdict under its own class, through every asset that held it (custody legs).

    Each leg is evaluated with the full rule set on the temperature series of the devices mounted on
    its asset during the leg; a leg with no asset or no temperature reading is missing evidence
    (broken). The lot's verdict is the worst of its legs'. Also returns the device-time span of the
    evidence judged (first leg start .. last reading), None without any."""
    legs = conn.execute(queries.LOT_LEGS, {"lot_id": lot_id}).fetchall()
    verdict: engine.Verdict = "pass"
    reasons: list[str] = []
    items: list[dict[str, Any]] = []
    if not legs:
        return "indeterminate", ["no custody leg recorded for the lot yet"], [], None
    first: datetime | None = None
    last_t: datetime | None = None
    for asset_id, mode, t_from, t_to in legs:
        leg = f"{asset_id or 'unknown asset'} from {iso_utc(t_from)}"
        if asset_id is None:
            verdict = engine.worst(verdict, "broken")
            reasons.append(f"custody leg {leg}: no asset, so no temperature evidence")
            continue
        series = conn.execute(
            queries.ASSET_TEMP_SERIES, {"asset_id": asset_id, "t_from": t_from, "t_to": t_to}
        ).fetchall()
        covered = False
        channels: dict[str, tuple[NDArray[np.int64], NDArray[np.float64]] | None] = {}
        for channel in ("door", "power"):
            got = conn.execute(
                queries.ASSET_STATE_READINGS,
                {"asset_id": asset_id, "channel": channel, "t_from": t_from, "t_to": t_to},
            ).fetchall()
            channels[channel] = (
                (
                    np.array([g[0] for g in got], dtype=np.int64),
                    np.array([math.nan if g[1] is None else g[1] for g in got], dtype=np.float64),
                )
                if got
                else None
            )
        for series_id, accuracy_c, s_from, s_to in series:
            rows = conn.execute(
                queries.SERIES_READINGS, {"series_id": series_id, "t_from": s_from, "t_to": s_to}
            ).fetchall()
            if not rows:
                continue
            covered_before = covered
            covered = True
            first = s_from if first is None else min(first, s_from)
            t_end = from_epoch_us(int(rows[-1][0]) * 1000)
            last_t = t_end if last_t is None else max(last_t, t_end)
            t_ms = np.array([r[0] for r in rows], dtype=np.int64)
            v = np.array([math.nan if r[1] is None else r[1] for r in rows], dtype=np.float64)
            # The asset's door and power channels go with its first probe series (once per leg).
            ev = engine.evaluate_series(
                t_ms,
                v,
                ref,
                "storage" if mode == "storage" else "transport",
                accuracy_c=accuracy_c,
                door=None if covered_before else channels["door"],
                power=None if covered_before else channels["power"],
            )
            verdict = engine.worst(verdict, ev.verdict)
            reasons.extend(f"{asset_id} series {series_id}: {why}" for why in ev.reasons)
            items.append(
                {
                    "asset_id": asset_id,
                    "series_id": series_id,
                    "verdict": ev.verdict,
                    "excursions": len(ev.excursions),
                    "gaps": len(ev.gaps),
                    "from": iso_utc(s_from),
                }
            )
        if not covered:
            verdict = engine.worst(verdict, "broken")
            reasons.append(f"custody leg {leg}: no temperature reading (handoff not covered)")
    span = None if first is None or last_t is None else (first, max(first, last_t))
    return verdict, reasons, items, span


def _record_history(
    conn: Conn,
    subject_kind: str,
    subject_id: str,
    verdict: str,
    ref: ClassRef,
    items: list[dict[str, Any]],
    reasons: list[str],
    arrived: dict[str, Any],
) -> tuple[int, str | None]:
    """Insert the next version if the verdict or its items changed; return (the version or 0 when
    unchanged, the previous verdict or None)."""
    last = conn.execute(
        queries.LAST_HISTORY, {"subject_kind": subject_kind, "subject_id": subject_id}
    ).fetchone()
    if last is not None and last[1] == verdict and last[2] == items:
        return 0, str(last[1])
    before = [] if last is None else list(last[2])
    key = [msgspec.json.encode(i) for i in items]
    old = [msgspec.json.encode(i) for i in before]
    change = {
        "from": None if last is None else last[1],
        "to": verdict,
        "added": [i for i, k in zip(items, key, strict=True) if k not in old],
        "removed": [i for i, k in zip(before, old, strict=True) if k not in key],
    }
    version = 1 if last is None else int(last[0]) + 1
    conn.execute(
        queries.INSERT_HISTORY,
        {
            "subject_kind": subject_kind,
            "subject_id": subject_id,
            "version": version,
            "verdict": verdict,
            "product_class": ref.code,
            "pack_id": ref.pack_id,
            "pack_version": ref.pack_version,
            "items": Jsonb(items),
            "reasons": Jsonb(reasons),
            "arrived": Jsonb(arrived),
            "change": Jsonb(change),
        },
    )
    return version, None if last is None else str(last[1])


def _scalar(row: tuple[Any, ...] | None) -> Any:
    return None if row is None else row[0]


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else x


def _peak(x: NDArray[np.float64], low: float, high: float) -> float | None:
    """The non-NaN value furthest outside [low, high] (None without one)."""
    xv = x[~np.isnan(x)]
    if xv.shape[0] == 0:
        return None
    dist = np.maximum(low - xv, xv - high)
    return float(xv[int(np.argmax(dist))])


def _upsert_profile_break(
    conn: Conn,
    seg: _Segment,
    series_id: int,
    rule_id: str,
    span: tuple[datetime, datetime],
    allowed_s: float,
    detail: dict[str, Any],
) -> None:
    """Insert the chain_break row of a class-profile rule over ``span``, or extend the one it continues."""
    conn.execute(
        queries.UPSERT_PROFILE_BREAK,
        {
            "series_id": series_id,
            "asset_id": seg.asset_id,
            "rule_id": rule_id,
            "pack_version": seg.ref.pack_version,
            "start_time": span[0],
            "end_time": span[1],
            "allowed_s": allowed_s,
            "detail": Jsonb(detail),
        },
    )


def _stats(v: NDArray[np.float64], i: int, j: int) -> engine.Gap:
    """min / max / mean / count of the non-NaN readings v[i..j] (the payload's run figures)."""
    xv = v[i : j + 1]
    xv = xv[~np.isnan(xv)]
    nan = math.nan
    if xv.shape[0] == 0:
        return engine.Gap(
            start_idx=i, end_idx=j, t_start_ms=0, t_end_ms=0, min_c=nan, max_c=nan, mean_c=nan, readings=0
        )
    return engine.Gap(
        start_idx=i,
        end_idx=j,
        t_start_ms=0,
        t_end_ms=0,
        min_c=float(xv.min()),
        max_c=float(xv.max()),
        mean_c=float(xv.mean()),
        readings=int(xv.shape[0]),
    )


@dataclass(frozen=True, slots=True)
class _PayloadBase:
    seg: _Segment
    allowed_s: int

    def payload(
        self,
        verdict: VerdictKind,
        kind: str,
        rule_id: str,
        start: datetime,
        end: datetime,
        reason: str,
        peak_c: float | None,
        run: engine.Excursion | engine.Gap,
        allowed_s: float | None,
    ) -> VerdictPayload:
        seg, rules = self.seg, self.seg.ref.rules
        return VerdictPayload(
            verdict=verdict,
            verdict_id=f"{verdict}:{rule_id}:{seg.series.series_id}:{to_epoch_ms(start)}",
            kind=kind,
            reason=reason,
            asset_id=seg.asset_id,
            series_id=seg.series.series_id,
            device_id=seg.series.device_id,
            channel=seg.series.channel,
            product_class=seg.ref.code,
            mode=seg.mode,
            rule_id=rule_id,
            pack_id=seg.ref.pack_id,
            pack_version=seg.ref.pack_version,
            start=iso_utc(start),
            end=iso_utc(end),
            duration_s=(end - start).total_seconds(),
            peak_c=peak_c,
            min_c=_finite(run.min_c),
            max_c=_finite(run.max_c),
            mean_c=_finite(run.mean_c),
            readings=run.readings,
            allowed_s=allowed_s,
            limit_low_c=rules.low_c,
            limit_high_c=rules.high_c,
            limits=VerdictLimits(
                low_c=rules.low_c,
                high_c=rules.high_c,
                low_inclusive=rules.low_inclusive,
                high_inclusive=rules.high_inclusive,
                min_duration_s=rules.min_duration.seconds,
                max_interval_s=self.allowed_s,
                source=rules.source,
            ),
        )


def _emit(
    conn: Conn, payload: VerdictPayload, series_id: int, rule_id: str, start: datetime, end: datetime
) -> int:
    """Write the outbox row unless this verdict was emitted before; return 1 if written, else 0."""
    row = conn.execute(
        queries.EMIT_ONCE,
        {
            "kind": payload.verdict,
            "payload": Jsonb(msgspec.to_builtins(payload)),
            "series_id": series_id,
            "rule_id": rule_id,
            "start_time": start,
            "end_time": end,
        },
    ).fetchone()
    return 0 if row is None else 1
