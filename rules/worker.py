"""Stage 2 (verdicts): the rules worker: takes ingest_batch rows, re-evaluates series, writes verdicts.

One `run_once` is one transaction: take up to `batch_limit` telemetry rows of the gateway's outbox
(``FOR UPDATE SKIP LOCKED``, so workers side by side never take the same row), re-evaluate every
temperature series they touched over the touched device-time window, replace the series' excursion
and gap rows in that window, hand newly closed excursions and new chain breaks to the ledger's
outbox (once each, ever), delete the ingest_batch rows and commit.

The re-evaluated slice of a series, per mount of its device on an asset that has a product class:
the touched window [t_min, t_max], widened by the class's longest rule window, widened again to cover
stored verdicts overlapping the touched window, then out to the last in-range reading before it and
the first in-range reading after it (an excursion cannot cross an in-range reading, and every gap
next to new data lies inside), clipped to the mount interval. Verdict rows lying wholly inside the
slice are deleted and recomputed. Evaluation is on device time only.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import psycopg
import structlog
from psycopg.types.json import Jsonb

from rules import engine, queries
from rules.models import (
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


@dataclass(slots=True)
class RunStats:
    """What one run_once did (for logs and tests)."""

    batches: int = 0
    series: int = 0
    excursions: int = 0
    gaps: int = 0
    emitted: int = 0


class RulesWorker:
    """Consumes the gateway's telemetry outbox and keeps excursion / chain_break rows current."""

    def __init__(self, conninfo: str, packs_dir: Path | None = None, *, batch_limit: int = 32) -> None:
        if batch_limit < 1:
            raise ValueError("batch_limit must be >= 1")
        self._conninfo = conninfo
        self._packs = load_packs(packs_dir)  # a bad pack stops the service here, naming file and key
        self._batch_limit = batch_limit
        self._conn: Conn | None = None
        self._started = False
        self.last_run = RunStats()

    @property
    def packs(self) -> PackSet:
        return self._packs

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Compile the kernels and publish the class limits; run_once/run_forever call it if needed."""
        engine.warm_up()
        self.sync_classes()
        self._started = True

    def close(self) -> None:
        """Close the worker's connection (a later run_once opens a new one)."""
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
        with conn.transaction():
            rows = conn.execute(queries.TAKE_TELEMETRY_BATCHES, {"limit": self._batch_limit}).fetchall()
            if rows:
                windows: dict[int, tuple[datetime, datetime]] = {}
                for _batch_id, series_ids, t_min, t_max in rows:
                    for sid in series_ids:
                        lo, hi = windows.get(sid, (t_min, t_max))
                        windows[sid] = (min(lo, t_min), max(hi, t_max))
                found = conn.execute(queries.TEMPERATURE_SERIES, {"series_ids": sorted(windows)}).fetchall()
                # Ascending series order for the advisory locks: two workers never deadlock on them.
                for series_id, device_id, channel in found:
                    conn.execute(queries.LOCK_SERIES, {"series_id": series_id})
                    w_lo, w_hi = windows[series_id]
                    self._evaluate_series(conn, _Series(series_id, device_id, channel), w_lo, w_hi, stats)
                    stats.series += 1
                conn.execute(queries.DELETE_BATCHES, {"batch_ids": [r[0] for r in rows]})
        stats.batches = len(rows)
        self.last_run = stats
        if rows:
            # Routine evaluations are debug; a run that sent verdicts to the ledger is worth a line.
            (log.info if stats.emitted else log.debug)(
                "rules.run_once",
                batches=stats.batches,
                series=stats.series,
                excursions=stats.excursions,
                gaps=stats.gaps,
                emitted=stats.emitted,
            )
        return len(rows)

    def _evaluate_series(
        self, conn: Conn, s: _Series, w_lo: datetime, w_hi: datetime, stats: RunStats
    ) -> None:
        mounts = conn.execute(
            queries.MOUNTS_OVERLAPPING, {"device_id": s.device_id, "t_lo": w_lo, "t_hi": w_hi}
        ).fetchall()
        if not mounts:
            log.warning("rules.series_unmounted", series_id=s.series_id, device_id=s.device_id)
        for asset_id, valid_from, valid_to, product_class, mode in mounts:
            ref = self._packs.lookup(product_class) if product_class is not None else None
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
            )
            self._evaluate_segment(conn, seg, max(w_lo, seg.seg_lo), min(w_hi, seg.seg_hi - ONE_US), stats)

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
        )
        allowed_s = rules.max_interval_s(seg.mode)
        gaps = engine.find_gaps(t_ms, v, max_gap_ms=allowed_s * 1000)

        owned = {"series_id": s.series_id, "t_lo": t_lo, "t_hi": t_hi}
        conn.execute(queries.DELETE_EXCURSIONS_IN, owned)
        conn.execute(queries.DELETE_GAPS_IN, owned)

        base = _PayloadBase(seg, allowed_s)
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
                stats.emitted += _emit(conn, payload, s.series_id, rule_id, start, end)

        for gap in gaps:
            start, end = from_epoch_us(int(t_us[gap.start_idx])), from_epoch_us(int(t_us[gap.end_idx]))
            rule_id = seg.ref.rule_id("gap")
            gap_s = (end - start).total_seconds()
            detail = {
                "gap_s": gap_s,
                "mode": seg.mode,
                "device_id": s.device_id,
                "channel": s.channel,
                "pack_id": seg.ref.pack_id,
                "source": rules.max_interval.transport.source
                if seg.mode == "transport"
                else rules.max_interval.storage.source,
            }
            conn.execute(
                queries.UPSERT_GAP,
                {
                    "series_id": s.series_id,
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
            reason = f"no temperature record for {gap_s:.0f} s (allowed {allowed_s} s in {seg.mode})"
            payload = base.payload(
                "chain_break", "gap", rule_id, start, end, reason, None, gap, float(allowed_s)
            )
            stats.emitted += _emit(conn, payload, s.series_id, rule_id, start, end)


def _scalar(row: tuple[Any, ...] | None) -> Any:
    return None if row is None else row[0]


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else x


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
