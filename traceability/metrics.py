"""Stage 3, ledger: the ledger worker's Prometheus metrics: its queue, its runs, capture jobs, checkpoints,
and the chain's verification on a timer.

The queue (rfid ingest batches and verdict_outbox rows waiting, and the age of the oldest), the capture
jobs by state and the newest checkpoint's age are read from the database when scraped. The runs and the
events appended are counted by the worker after each commit. ``verify_once`` verifies the whole chain
and every checkpoint as ``GET /ledger/verify`` does (the pinned key file, its checkpoint log) and sets
coldchain_ledger_verify_ok; ``run_forever`` does so every ``verify_every_s`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from traceability import queries
from traceability.ledger.verify import VerifyResult

log = logging.getLogger(__name__)

# One run of the worker: one small transaction, to a full batch of BATCH_ROWS rows of both outboxes.
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A verification streams ≈ 400k entries a second: a second covers a large ledger, minutes a huge one.
VERIFY_BUCKETS = (0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# Seconds between two verifications of the whole chain (COLDCHAIN_LEDGER_VERIFY_EVERY_S).
VERIFY_EVERY_S = 300.0
# A scrape waits this long for the database, then goes without the gauges it reads there.
SCRAPE_CONNECT_TIMEOUT_S = 5


class LedgerState(Collector):
    """The gauges read from the database at each scrape."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        p = "coldchain_ledger_"
        return (
            GaugeMetricFamily(
                p + "queue_depth", "rfid ingest batches, verdict_outbox and geofence_outbox rows waiting"
            ),
            GaugeMetricFamily(p + "queue_lag_seconds", "Age of the oldest waiting row (0: none)"),
            GaugeMetricFamily(
                p + "capture_jobs", "Capture jobs by state (pending, succeeded, failed)", labels=["state"]
            ),
            GaugeMetricFamily(p + "checkpoint_age_seconds", "Seconds since the newest checkpoint was signed"),
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=SCRAPE_CONNECT_TIMEOUT_S
            ) as conn:
                queue = conn.execute(queries.QUEUE_STATE).fetchone()
                jobs = conn.execute(queries.CAPTURE_JOB_STATES).fetchall()
                age = conn.execute(queries.CHECKPOINT_AGE).fetchone()
        except psycopg.Error as exc:  # the scrape still serves the counters; these gauges go missing
            log.warning("ledger metrics: the database could not be read: %s", exc)
            return
        assert queue is not None
        depth, lag, capture, checkpoint = self._families()
        depth.add_metric([], float(queue[0]))
        lag.add_metric([], float(queue[1]))
        for state, n in jobs:
            capture.add_metric([state], float(n))
        yield from (depth, lag, capture)
        if age is not None:  # no checkpoint signed yet: no age
            checkpoint.add_metric([], float(age[0]))
            yield checkpoint


class VerifyOk(Collector):
    """coldchain_ledger_verify_ok, once a verification has ended (none before: a first verification of a
    large ledger takes a while, and is no failure meanwhile)."""

    def __init__(self) -> None:
        self.value: float | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "coldchain_ledger_verify_ok",
            "1: the last verification found the chain and its checkpoints intact; 0: it did not",
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.value is not None:
            family = self._family()
            family.add_metric([], self.value)
            yield family


class LedgerMetrics:
    """The ledger worker's metrics, in a registry of its own (serve it with start_http_server).
    ``ledger_key``: the ledger's key file, whose public half pins the checkpoints' signatures."""

    def __init__(
        self, conninfo: str, *, ledger_key: Path | None = None, verify_every_s: float = VERIFY_EVERY_S
    ) -> None:
        if verify_every_s <= 0:
            raise ValueError("verify_every_s must be > 0")
        self._conninfo = conninfo
        self.ledger_key = ledger_key
        self.verify_every_s = verify_every_s
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        p = "coldchain_ledger_"
        r.register(LedgerState(conninfo))
        self.batch_seconds = Histogram(
            p + "batch_seconds",
            "Time of one run that found work (both outboxes)",
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.events_appended = Counter(p + "events_appended", "Events the worker appended", registry=r)
        self.verify_ok = VerifyOk()
        r.register(self.verify_ok)
        self.verify_seconds = Histogram(
            p + "verify_seconds",
            "Time of one verification of the whole chain",
            buckets=VERIFY_BUCKETS,
            registry=r,
        )

    def ran(self, seconds: float, appended: int) -> None:
        """One committed run that found work: its time and the events it appended."""
        self.batch_seconds.observe(seconds)
        self.events_appended.inc(appended)

    def verify_once(self) -> VerifyResult | None:
        """Verify the chain and every checkpoint now and set verify_ok; the result, None when the key file
        or its checkpoint log is unreadable (not ok either). A database that cannot be reached raises."""
        from traceability.web.views import verify_ledger  # what GET /ledger/verify and the pages check

        t0 = time.perf_counter()
        with psycopg.connect(self._conninfo) as conn:
            result = verify_ledger(conn, self.ledger_key)
        self.verify_seconds.observe(time.perf_counter() - t0)
        ok = result is not None and result.ok
        self.verify_ok.value = 1.0 if ok else 0.0
        if not ok:
            why = "; ".join(result.problems) if result is not None else "key file or log unreadable"
            log.error("ledger verification failed: %s", why)
        return result

    def run_forever(self, stop: threading.Event) -> None:
        """Verify now, then every ``verify_every_s`` seconds until ``stop`` is set. A database that cannot
        be reached is logged and retried at the next turn (verify_ok keeps its last value)."""
        while True:
            try:
                self.verify_once()
            except psycopg.OperationalError as exc:
                log.warning("ledger verification skipped: the database could not be reached: %s", exc)
            if stop.wait(self.verify_every_s):
                return
