"""Stage 2 (verdicts): the rules worker's Prometheus metrics: its queue, its runs, its verdicts and alarms.

The queue (telemetry ingest_batch rows waiting, and the age of the oldest) is read from the database
when scraped, so it is right whichever worker took the rows; the runs, verdicts and alarms are counted
by this worker after each run's commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rules import queries

if TYPE_CHECKING:  # rules.worker imports this module: a run-time import would be circular
    from rules.worker.apply import RunStats

log = structlog.get_logger("rules.metrics")

# A run: a few ms for one small batch, seconds for a full batch of long series after an outage.
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Alarm events counted: an alarm raised, or one escalated (each at the severity it reached).
ALARM_EVENTS = ("opened", "escalated")
# A scrape waits this long for the database, then goes without the queue gauges.
SCRAPE_CONNECT_TIMEOUT_S = 5


class RulesQueue(Collector):
    """coldchain_rules_queue_depth and _lag_seconds, read from ingest_batch at each scrape."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "coldchain_rules_queue_depth", "Telemetry ingest_batch rows waiting for the rules worker"
            ),
            GaugeMetricFamily(
                "coldchain_rules_queue_lag_seconds", "Age of the oldest waiting telemetry batch (0: none)"
            ),
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=SCRAPE_CONNECT_TIMEOUT_S
            ) as conn:
                row = conn.execute(queries.QUEUE_STATE).fetchone()
        except psycopg.Error as exc:  # the scrape still serves the counters; the gauges go missing
            log.warning("rules.metrics_queue_unread", error=str(exc))
            return
        assert row is not None
        depth, lag = self._families()
        depth.add_metric([], float(row[0]))
        lag.add_metric([], float(row[1]))
        yield depth
        yield lag


class RulesMetrics:
    """The rules worker's metrics, in a registry of its own (serve it with start_http_server)."""

    def __init__(self, conninfo: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        p = "coldchain_rules_"
        self.queue = RulesQueue(conninfo)
        r.register(self.queue)
        self.quarantines = Counter(
            p + "batches_quarantined",
            "Telemetry batches taken off the queue because their evaluation raised",
            registry=r,
        )
        self.lot_quarantines = Counter(
            p + "lots_quarantined",
            "Lots whose judging raised, kept in lot_quarantine with their error while the run went on",
            registry=r,
        )
        self.batch_seconds = Histogram(
            p + "batch_seconds",
            "Time of one run that found work (take, judge, commit)",
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.verdicts = Counter(
            p + "verdicts", "Verdicts sent to the ledger (verdict_outbox rows), by kind", ["kind"], registry=r
        )
        self.alarms = Counter(
            p + "alarms", "Alarms raised or escalated, by the severity reached", ["severity"], registry=r
        )

    def quarantined(self) -> None:
        """A telemetry batch whose evaluation raised was taken off the queue."""
        self.quarantines.inc()

    def lots_quarantined(self, n: int) -> None:
        """`n` lots whose judging raised were quarantined by a committed run."""
        if n:
            self.lot_quarantines.inc(n)

    def ran(self, stats: RunStats, seconds: float) -> None:
        """One committed run that found work: its time, its verdicts and its alarm events."""
        self.batch_seconds.observe(seconds)
        for kind, n in stats.verdicts.items():
            self.verdicts.labels(kind=kind).inc(n)
        for event, alarm in stats.pending:
            if event in ALARM_EVENTS:
                self.alarms.labels(severity=str(alarm["severity"])).inc()
