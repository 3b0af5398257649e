"""Stage 2 (verdicts): the rules worker: takes ingest_batch rows, reads, plans, applies in one transaction.

One `run_once` is one transaction: take up to `batch_limit` telemetry rows of the gateway's outbox
(`rules.worker.outbox`), and for every temperature series they touched, on every asset its device was
mounted on, read the slice around the touched device-time window (`rules.worker.reads`), plan its
excursions, gaps, profile chain breaks, alarms and ledger hand-overs (`rules.worker.policy`,
`rules.worker.live`), and apply the plan (`rules.worker.apply`); then the series' verdict gets a new
verdict_history version when it or its evidence changed (`rules.worker.history`). Door and power
series the rows touched are judged the same way (`rules.worker.states`), and relative-humidity series
against their class's humidity limits (`rules.worker.humidity`); position (lat/lon) series give the
geofence crossings of the assets they were on (`rules.worker.geofences`). Every lot held by a touched
asset is re-judged against its own class through the assets that carried it (`rules.worker.lots`), a
changed lot verdict going to the ledger as a 'lot_verdict'. The taken rows are deleted. Every lot
whose custody the ledger changed since the last judged seq (a handoff, a leg closed, a unit packed or
unpacked) is re-judged too, at most `custody_limit` ledger seqs a run (`rules.worker.custody`), so a
custody change with no later telemetry still gets its lot verdict. The lots whose import steps those
seqs recorded have their import flow checked (`rules.worker.flow`: flow violations, chain
breaks of kind 'flow', with their alarms and ledger hand-overs). The whole is committed; alarm
events are published (MQTT / webhooks) after commit.

Series are locked in ascending order (advisory locks), then the lots to judge, so two workers never
deadlock on them nor race on a lot's version; the custody watermark is skipped when held. An
asset without a configured class is judged against the strictest class among the lots it holds.

Nothing is consumed silently: a window no mount with a class covers waits in `rules_waiting` until
the registry changes (`rules.worker.queue`), and a run that raises is retried one batch (then one
waiting window) per transaction, the one that raises on its own quarantined with an alarm. Each lot is
judged under a savepoint of its own: a lot whose judging raises is quarantined with its error and an
alarm, and the run (its batches, the custody watermark) goes on.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import psycopg
import structlog

from rules import engine, queries
from rules.alarms import AlarmNotifier, MqttPublisher, Webhook
from rules.metrics import RulesMetrics
from rules.models import iso_utc
from rules.packs import ClassRef, Mode, PackSet, load_packs
from rules.worker import custody, flow, geofences, history, lots, outbox, queue, reads, shipper
from rules.worker.apply import RunStats, apply
from rules.worker.humidity import plan_humidity
from rules.worker.live import plan_profile
from rules.worker.plan import Segment
from rules.worker.policy import plan_slice
from rules.worker.reads import FAR_FUTURE, ONE_US
from rules.worker.states import plan_state

log = structlog.get_logger("rules.worker")

# Longest a busy worker goes without bringing the readings' rollups up to date.
ROLLUP_EVERY_S = 10.0

Conn = psycopg.Connection[tuple[Any, ...]]
Mount = tuple[str, datetime, datetime | None, str | None, Mode, bool, ClassRef | None]


class RulesWorker:
    """Consumes the gateway's telemetry outbox and keeps excursion / chain_break rows current."""

    def __init__(
        self,
        conninfo: str,
        packs_dir: Path | None = None,
        *,
        batch_limit: int = 32,
        custody_limit: int = 256,
        alert_publisher: MqttPublisher | None = None,
        webhooks: Sequence[Webhook] = (),
        escalate_after_s: int | None = None,
    ) -> None:
        """`batch_limit`: ingest_batch rows a run takes; `custody_limit`: ledger seqs a run judges the
        custody changes of; `alert_publisher`: a connected paho client (owned by the caller) for alarm events;
        `webhooks`: URLs and HMAC secrets; `escalate_after_s`: condition duration after which an open
        alarm escalates to critical (default: the class's single-event allowance, else 3 × its
        minimum duration)."""
        if batch_limit < 1:
            raise ValueError("batch_limit must be >= 1")
        if custody_limit < 1:
            raise ValueError("custody_limit must be >= 1")
        self._conninfo = conninfo
        self._packs = load_packs(packs_dir)  # a bad pack stops the service here, naming file and key
        self._batch_limit = batch_limit
        self._custody_limit = custody_limit
        self._conn: Conn | None = None
        self._started = False
        self._escalate_after_s = escalate_after_s
        self.notifier = AlarmNotifier(alert_publisher, webhooks)
        self.last_run = RunStats()
        self._taken: list[outbox.Batch] = []  # the batches the run in progress took
        self._taken_waiting: dict[int, outbox.Touched] = {}  # and the waiting windows
        # Prometheus metrics of this worker (the composition root serves its registry, or not).
        self.metrics = RulesMetrics(conninfo)

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
        """Upsert one rule_class row per class of the loaded packs (its limits, its allowed recording
        intervals per mode, its MKT rule and its humidity limits); return the number of classes."""
        conn = self._connection()
        n = 0
        with conn.transaction():
            for ref in self._packs.classes():
                r = ref.rules
                conn.execute(
                    queries.UPSERT_RULE_CLASS,
                    {
                        "product_class": ref.code,
                        "pack_id": ref.pack_id,
                        "pack_version": ref.pack_version,
                        "description": r.description,
                        "low_c": r.low_c,
                        "high_c": r.high_c,
                        "source": r.source,
                        "storage_max_gap_s": float(r.max_interval_s("storage")),
                        "transport_max_gap_s": float(r.max_interval_s("transport")),
                        "mkt_limit_c": None if r.mkt is None else r.mkt.limit_c,
                        "mkt_window_s": None if r.mkt is None else float(r.mkt.window_s),
                        "mkt_dh_r_k": None if r.mkt is None else r.mkt.delta_h_r_k,
                        "road_max_gap_s": float(r.max_interval_s("road")),
                        "rail_max_gap_s": float(r.max_interval_s("rail")),
                        "sea_max_gap_s": float(r.max_interval_s("sea")),
                        "humidity_low_pct": None if r.humidity is None else r.humidity.low_pct,
                        "humidity_high_pct": None if r.humidity is None else r.humidity.high_pct,
                    },
                )
                n += 1
        return n

    def run_forever(self, stop: threading.Event, poll_s: float = 0.2) -> None:
        """Run until `stop` is set; sleep `poll_s` whenever a run found no work."""
        if not self._started:
            self.start()
        rollups_due = 0.0
        try:
            while not stop.is_set():
                worked = self.run_once()
                # The rollups catch up whenever the outbox is empty, and at least every ROLLUP_EVERY_S
                # under load, so a busy worker never leaves the dashboards' rollups behind for long.
                if worked == 0 or time.monotonic() >= rollups_due:
                    worked += self.refresh_rollups()
                    rollups_due = time.monotonic() + ROLLUP_EVERY_S
                if worked == 0:
                    stop.wait(poll_s)
        finally:
            self.close()

    def refresh_rollups(self, max_ranges: int = 100) -> int:
        """Recompute the rollup buckets of up to `max_ranges` queued raw-row ranges (plain PostgreSQL; on
        TimescaleDB refresh policies keep them and this returns 0); return how many were taken. A database
        error is logged and leaves the queue as it was: the rollups wait, the verdicts do not."""
        try:
            row = self._connection().execute(queries.REFRESH_ROLLUPS, {"max_rows": max_ranges}).fetchone()
        except psycopg.errors.TransactionRollback as exc:  # a deadlock or serialisation failure
            log.error("rules.rollup_refresh_failed", error=str(exc).splitlines()[0])
            return 0
        except psycopg.OperationalError:
            raise  # the database is gone: the worker's own handling applies
        except psycopg.Error as exc:
            log.error("rules.rollup_refresh_failed", error=str(exc).splitlines()[0])
            return 0
        return int(row[0]) if row else 0

    # -- one round ---------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Consume up to `batch_limit` telemetry ingest_batch rows, the waiting telemetry whose registry
        changed, and judge the custody changes of up to `custody_limit` ledger seqs, in one transaction;
        return how many rows, windows and seqs (0: no work).

        When the run raises (not for a lost database or a deadlock, which the caller sees), the batches
        are judged one at a time and a batch that raises on its own is quarantined with its error and an
        alarm, so the queue goes on."""
        if not self._started:
            self.start()
        try:
            return self._run(self._batch_limit, custody=True)
        except (psycopg.OperationalError, psycopg.errors.TransactionRollback):
            raise
        except Exception as exc:  # any error of a run: the batches are isolated below
            log.error("rules.run_failed", error=queue.error_text(exc))
            return self._isolate()

    def _isolate(self) -> int:
        """Judge up to `batch_limit` batches one per transaction, then the waiting windows whose registry
        changed one per transaction, quarantining each that raises on its own."""
        done = 0
        for waiting in (0, 1):
            for _ in range(self._batch_limit):
                try:
                    n = self._run(1 - waiting, custody=False, waiting_limit=waiting)
                except (psycopg.OperationalError, psycopg.errors.TransactionRollback):
                    raise
                except Exception as exc:  # the batch's or window's own error: it is quarantined
                    if not self._taken and not self._taken_waiting:
                        raise  # neither's: the caller sees it
                    self._quarantine(exc)
                    done += 1
                    continue
                if n == 0:
                    break
                done += n
        return done

    def _quarantine(self, exc: Exception) -> None:
        """Quarantine what the failed one-item run took, in a transaction of its own."""
        conn = self._connection()
        with conn.transaction():
            if self._taken:
                events = queue.quarantine(conn, self._taken[0], exc, self._class_of(conn))
            else:
                [(series_id, w)] = self._taken_waiting.items()
                events = queue.quarantine_waiting(conn, series_id, w, exc, self._class_of(conn))
        self.metrics.quarantined()
        for event, alarm in events:
            self.notifier.publish(event, alarm)

    def _run(self, batch_limit: int, *, custody: bool, waiting_limit: int = queue.WAITING_PER_RUN) -> int:
        """One run: up to `batch_limit` batches, up to `waiting_limit` waiting windows whose registry
        changed, and the custody changes when `custody`."""
        stats = RunStats()
        t0 = time.perf_counter()
        self._taken, self._taken_waiting = [], {}  # a failure before the take is no batch's
        conn = self._connection()
        with conn.transaction():
            batches = outbox.take(conn, batch_limit)
            self._taken = batches
            waiting = queue.take_waiting(conn, waiting_limit) if waiting_limit else {}
            self._taken_waiting = waiting
            to_judge: list[tuple[str, str, dict[str, Any]]] = []  # (lot, its class, what arrived)
            if batches or waiting:
                windows = queue.merge(outbox.touched(batches), waiting)
                assets: dict[str, tuple[datetime, datetime]] = {}

                def touch(asset_id: str, lo: datetime, hi: datetime) -> None:
                    a, b = assets.get(asset_id, (lo, hi))
                    assets[asset_id] = (min(a, lo), max(b, hi))

                # Temperature, then state (door, power, defrost), then humidity series, each kind judged by
                # its own evaluator; each kind's series in ascending order, so the advisory locks never
                # deadlock.
                for kind_query, evaluate in (
                    (queries.TEMPERATURE_SERIES, self._evaluate_series),
                    (queries.STATE_SERIES, self._evaluate_state),
                    (queries.HUMIDITY_SERIES, self._evaluate_humidity),
                ):
                    found = conn.execute(kind_query, {"series_ids": sorted(windows)}).fetchall()
                    for series_id, device_id, channel in found:
                        conn.execute(queries.LOCK_SERIES, {"series_id": series_id})
                        w = windows[series_id]
                        for asset_id in evaluate(conn, series_id, device_id, channel, w, stats):
                            touch(asset_id, w.t_min, w.t_max)
                        stats.series += 1
                # Positions last: their series locks after the other kinds', each asset's after them all.
                stats.crossings += geofences.judge(conn, windows, datetime.now(UTC))
                for asset_id, (lo, hi) in sorted(assets.items()):
                    to_judge += self._held_lots(conn, asset_id, lo, hi)
                outbox.done(conn, batches)
            if custody:
                to_judge += self._custody_lots(conn, stats)
            # Ascending lot order, each lot locked (after every series lock): two workers judging one lot
            # take turns on its version and never deadlock. Stable: a lot held by several touched assets
            # is judged in their order, then for its custody change.
            failed: set[str] = set()
            for lot_id, product_class, arrived in sorted(to_judge, key=lambda j: j[0]):
                if lot_id not in failed and not self._judge_lot_isolated(
                    conn, lot_id, product_class, arrived, stats
                ):
                    failed.add(lot_id)
            for series_id, w in waiting.items():  # judged without error: a requeued batch's alarm clears
                stats.pending += queue.cleared(conn, series_id, w)
        stats.batches = len(batches)
        self._taken, self._taken_waiting = [], {}
        self.last_run = stats
        if batches or stats.custody_seqs:
            self.metrics.ran(stats, time.perf_counter() - t0)
        self.metrics.lots_quarantined(stats.lots_quarantined)
        for event, alarm in stats.pending:  # after commit: subscribers never see a rolled-back alarm
            self.notifier.publish(event, alarm)
        stats.pending.clear()
        if batches or stats.custody_seqs:
            # Routine evaluations are debug; a run that sent verdicts to the ledger is worth a line.
            (log.info if stats.emitted else log.debug)(
                "rules.run_once",
                batches=stats.batches,
                custody_seqs=stats.custody_seqs,
                lots=stats.lots,
                series=stats.series,
                excursions=stats.excursions,
                gaps=stats.gaps,
                emitted=stats.emitted,
                alarms=stats.alarms,
                history=stats.history,
                lot_verdicts=stats.lot_verdicts,
                breaks=stats.breaks,
                crossings=stats.crossings,
                flow_violations=stats.flow_violations,
            )
        return len(batches) + len(waiting) + stats.custody_seqs

    def _segments(
        self, conn: Conn, series_id: int, device_id: str, channel: str, w: outbox.Touched
    ) -> list[tuple[str, Segment | None, ClassRef | None]]:
        """Per mount of the device overlapping the window: its asset, the segment and its class."""
        out: list[tuple[str, Segment | None, ClassRef | None]] = []
        for asset_id, valid_from, valid_to, product_class, mode, compartment, ref in self._mounts(
            conn, device_id, channel, w.t_min, w.t_max
        ):
            if ref is None:
                log.warning(
                    "rules.no_class", series_id=series_id, asset_id=asset_id, product_class=product_class
                )
                out.append((asset_id, None, None))
                continue
            seg = Segment(
                series_id=series_id,
                device_id=device_id,
                channel=channel,
                asset_id=asset_id,
                mode=mode,
                seg_lo=valid_from,
                seg_hi=valid_to if valid_to is not None else FAR_FUTURE,
                mounted_now=valid_to is None,
                committed_at=w.committed_at,
                compartment=compartment,
            )
            out.append((asset_id, seg, ref))
        return out

    def _evaluate_series(
        self, conn: Conn, series_id: int, device_id: str, channel: str, w: outbox.Touched, stats: RunStats
    ) -> list[str]:
        """Evaluate the series on every asset it was mounted on in the window; return those assets."""
        segments = self._segments(conn, series_id, device_id, channel, w)
        self._wait_if_uncovered(conn, series_id, device_id, w, segments)
        for _asset_id, seg, ref in segments:
            if seg is None or ref is None:
                continue
            lo, hi = max(w.t_min, seg.seg_lo), min(w.t_max, seg.seg_hi - ONE_US)
            inputs = reads.slice_inputs(conn, seg, ref, lo, hi, self._escalate_after_s)
            apply(conn, plan_slice(inputs), stats)
            shipper.judge(conn, inputs, stats)  # the shipment profile in force, beside the class
            standing: list[engine.Breach] = []
            live = reads.profile_inputs(conn, seg, ref, lo, hi)
            if live is not None:
                plan, standing = plan_profile(live)
                apply(conn, plan, stats)
            verdict, items, reasons = history.series_verdict(ref, reads.evidence(conn, seg), standing)
            subject = f"{seg.series_id}@{seg.asset_id}"
            entry = history.history_entry(
                "series",
                subject,
                verdict,
                ref,
                items,
                reasons,
                w.arrived(),
                reads.last_version(conn, "series", subject),
            )
            if entry is not None:
                apply(conn, history.as_plan(entry), stats)
        return [asset_id for asset_id, _seg, _ref in segments]

    def _evaluate_state(
        self, conn: Conn, series_id: int, device_id: str, channel: str, w: outbox.Touched, stats: RunStats
    ) -> list[str]:
        """Door-open (door = 1) and power-loss (power = 0) runs beyond the class limit. Returns the
        assets (their lots are re-judged: lot verdicts include these channels)."""
        segments = self._segments(conn, series_id, device_id, channel, w)
        self._wait_if_uncovered(conn, series_id, device_id, w, segments)
        for _asset_id, seg, ref in segments:
            if seg is None or ref is None:
                continue
            limit = ref.rules.door_open if channel == "door" else ref.rules.power_loss
            if limit is None:
                continue
            inputs = reads.state_inputs(conn, seg, ref, w.t_min, w.t_max, self._escalate_after_s)
            apply(conn, plan_state(inputs), stats)
        return [asset_id for asset_id, _seg, _ref in segments]

    def _evaluate_humidity(
        self, conn: Conn, series_id: int, device_id: str, channel: str, w: outbox.Touched, stats: RunStats
    ) -> list[str]:
        """Relative humidity outside the class's humidity limits: the asset's humidity alarm. Returns the
        assets (their lots are re-judged: lot verdicts include the rh channel)."""
        segments = self._segments(conn, series_id, device_id, channel, w)
        self._wait_if_uncovered(conn, series_id, device_id, w, segments)
        for _asset_id, seg, ref in segments:
            if seg is None or ref is None or ref.rules.humidity is None:
                continue
            inputs = reads.humidity_inputs(conn, seg, ref, w.t_min, w.t_max, self._escalate_after_s)
            if inputs is not None:
                apply(conn, plan_humidity(inputs), stats)
        return [asset_id for asset_id, _seg, _ref in segments]

    def _wait_if_uncovered(
        self,
        conn: Conn,
        series_id: int,
        device_id: str,
        w: outbox.Touched,
        segments: list[tuple[str, Segment | None, ClassRef | None]],
    ) -> None:
        """Keep the window waiting for the registry when a mount with a class does not cover all of it."""
        reason = uncovered(segments, w.t_min, w.t_max)
        if reason is not None:
            log.warning("rules.waiting", series_id=series_id, device_id=device_id, reason=reason)
            queue.note_waiting(conn, series_id, device_id, w, reason)

    def _mounts(
        self, conn: Conn, device_id: str, channel: str, w_lo: datetime, w_hi: datetime
    ) -> list[Mount]:
        """The device's mounts overlapping the window (the asset a series of `channel` is judged on: the
        mounted asset, or its compartment that names the probe; from, to, product class, transport mode,
        whether a compartment), each with the class it is judged by: the asset's own, else the strictest
        class of the goods the asset held."""
        rows = conn.execute(
            queries.MOUNTS_OVERLAPPING,
            {"device_id": device_id, "channel": channel, "t_lo": w_lo, "t_hi": w_hi},
        ).fetchall()
        return [
            (
                asset_id,
                valid_from,
                valid_to,
                product_class,
                cast("Mode", mode),
                bool(compartment),
                self._judged_by(conn, asset_id, product_class, w_lo, w_hi),
            )
            for asset_id, valid_from, valid_to, product_class, mode, compartment in rows
        ]

    def _judged_by(
        self, conn: Conn, asset_id: str, product_class: str | None, t_lo: datetime, t_hi: datetime
    ) -> ClassRef | None:
        """The class an asset is judged by over [t_lo, t_hi]: its configured one (None when no loaded pack
        defines it), else the strictest class of the goods it held."""
        if product_class is not None:
            return self._packs.lookup(product_class)
        return self._strictest_held(conn, asset_id, t_lo, t_hi)

    def _class_of(self, conn: Conn) -> queue.ClassOf:
        """The class code an asset's quarantine alarm carries: the class it is judged by, else (a class no
        loaded pack defines) its configured one."""

        def class_of(asset_id: str, product_class: str | None, t_lo: datetime, t_hi: datetime) -> str | None:
            ref = self._judged_by(conn, asset_id, product_class, t_lo, t_hi)
            return product_class if ref is None else ref.code

        return class_of

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

    def _held_lots(
        self, conn: Conn, asset_id: str, t_lo: datetime, t_hi: datetime
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """Every lot the asset held in [t_lo, t_hi], with its class and what arrived on the asset."""
        held = conn.execute(
            queries.LOTS_ON_ASSET, {"asset_id": asset_id, "t_lo": t_lo, "t_hi": t_hi}
        ).fetchall()
        arrived = {"asset_id": asset_id, "t_min": iso_utc(t_lo), "t_max": iso_utc(t_hi)}
        return [(str(lot_id), str(product_class), arrived) for lot_id, product_class in held]

    def _custody_lots(self, conn: Conn, stats: RunStats) -> list[tuple[str, str, dict[str, Any]]]:
        """The lots whose custody the next ledger seqs after the watermark changed, with the seqs as
        what arrived; the watermark advances past them (in this run's transaction). None when another
        worker holds the watermark or it is at the ledger's head."""
        judged = custody.lock(conn)
        if judged is None:
            return []
        seqs = custody.seq_range(judged, custody.head(conn), self._custody_limit)
        if seqs is None:
            return []
        moved = custody.moved_lots(conn, seqs)
        self._flow(conn, seqs, stats)
        custody.advance(conn, seqs)
        stats.custody_seqs += seqs.hi - seqs.lo
        return [(lot_id, product_class, seqs.arrived()) for lot_id, product_class in moved]

    def _flow(self, conn: Conn, seqs: custody.SeqRange, stats: RunStats) -> None:
        """Check the import flow of the lots with an import step among the seqs (`rules.worker.flow`)."""
        run = flow.judge(conn, seqs, datetime.now(UTC))
        stats.flow_violations += run.raised + run.withdrawn
        stats.emitted += run.raised + run.withdrawn
        stats.pending += run.pending
        stats.alarms += len(run.pending)

    def _judge_lot_isolated(
        self, conn: Conn, lot_id: str, product_class: str, arrived: dict[str, Any], stats: RunStats
    ) -> bool:
        """Judge the lot under a savepoint; when its judging raises (not for a lost database or a deadlock),
        roll the lot back, quarantine it with its error and an alarm, and return False (the run goes on)."""
        pending = len(stats.pending)
        try:
            with conn.transaction():
                self._judge_lot(conn, lot_id, product_class, arrived, stats)
                stats.pending += queue.release_lot(conn, lot_id)
        except (psycopg.OperationalError, psycopg.errors.TransactionRollback):
            raise
        except Exception as exc:  # the lot's own error: it is quarantined, the run goes on
            del stats.pending[pending:]
            stats.pending += queue.quarantine_lot(
                conn, lot_id, product_class, arrived, exc, self._class_of(conn)
            )
            stats.lots_quarantined += 1
            return False
        return True

    def _judge_lot(
        self, conn: Conn, lot_id: str, product_class: str, arrived: dict[str, Any], stats: RunStats
    ) -> None:
        """Judge the lot against its own class through its custody legs; a new version when it changed."""
        ref = self._packs.lookup(product_class)
        if ref is None:
            log.warning("rules.lot_no_class", lot_id=lot_id, product_class=product_class)
            return
        conn.execute(queries.LOCK_LOT, {"lot_id": lot_id})
        judged = lots.judge_lot(ref, reads.lot_legs(conn, lot_id))
        last = reads.last_version(conn, "lot", lot_id)
        emitted = reads.last_emitted_lot(conn, lot_id)
        apply(conn, lots.plan_lot(lot_id, ref, judged, arrived, last, emitted=emitted), stats)
        stats.lots += 1


def uncovered(
    segments: list[tuple[str, Segment | None, ClassRef | None]], t_min: datetime, t_max: datetime
) -> str | None:
    """Why [t_min, t_max] cannot all be judged: 'no_class' (a mount's asset has no class), 'unmounted'
    (some of it lies outside every mount); None when mounts with a class cover it."""
    if any(seg is None or ref is None for _a, seg, ref in segments):
        return "no_class"
    covered = t_min
    for seg in sorted((s for _a, s, _r in segments if s is not None), key=lambda s: s.seg_lo):
        if seg.seg_lo > covered:
            return "unmounted"
        covered = max(covered, seg.seg_hi)
    return None if covered > t_max else "unmounted"
