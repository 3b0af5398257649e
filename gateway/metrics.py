"""Stage 1 (ingest): the gateway's bookkeeping: Prometheus metrics and the counters stats() returns."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from gateway.store import WriteResult

# Batch sizes: one message up to a full batch of 500 messages of 50 readings.
_BATCH_BUCKETS = (1, 5, 10, 50, 100, 500, 1_000, 5_000, 10_000, 25_000, 50_000)
# Commit latency, seconds: from 1 ms (a few rows) to 10 s (a huge replay under load).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


# The counters of GatewayService.stats(), each kept beside its Prometheus metric.
STAT_NAMES: Final = (
    "messages",
    "readings_written",
    "rfid_written",
    "status_updates",
    "dead_letters",
    "ingest_batches",
    "batches_committed",
    "reconnects",
    "events_written",
    "spooled_messages",
    "replayed_messages",
    "seq_gaps",
    "seq_anomalies",
)


class GatewayMetrics:
    """Counters, gauges and histograms of one gateway, in a registry of its own (no per-device labels),
    and the plain counters of stats(): both move together, in one method per event."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        p = "coldchain_gateway_"
        self.messages_received = Counter(p + "messages_received", "MQTT messages received", registry=r)
        self.messages_written = Counter(
            p + "messages_written", "Messages committed to the database or spooled", registry=r
        )
        self.readings_received = Counter(
            p + "readings_received", "Readings in accepted messages (incl. redelivered)", registry=r
        )
        self.readings_written = Counter(p + "readings_written", "Readings newly stored", registry=r)
        self.rfid_written = Counter(p + "rfid_reads_written", "RFID tag reads newly stored", registry=r)
        self.events_written = Counter(p + "events_written", "Device events newly stored", registry=r)
        self.dead_letters = Counter(p + "dead_letters", "Messages dead-lettered", ["reason"], registry=r)
        self.batch_messages = Histogram(
            p + "batch_messages", "Messages per committed transaction", buckets=_BATCH_BUCKETS, registry=r
        )
        self.batch_readings = Histogram(
            p + "batch_readings", "Readings per committed transaction", buckets=_BATCH_BUCKETS, registry=r
        )
        self.commit_seconds = Histogram(
            p + "commit_seconds",
            "Time to write and commit one transaction",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(p + "queue_depth", "Messages received, not yet written", registry=r)
        self.spool_bytes = Gauge(p + "spool_bytes", "Bytes in the on-disk spool", registry=r)
        self.spooled_messages = Counter(
            p + "spooled_messages", "Messages written to the spool while the database was down", registry=r
        )
        self.seconds_since_commit = Gauge(
            p + "seconds_since_last_commit", "Seconds since the last committed transaction", registry=r
        )
        self.sequence_gaps = Counter(
            p + "sequence_gaps", "Readings devices produced that never arrived ((boot, seq) gaps)", registry=r
        )
        self.sequence_anomalies = Counter(
            p + "sequence_anomalies",
            "(boot, seq) jumps beyond the plausible window (device_anomaly)",
            registry=r,
        )
        self.reconnects = Counter(p + "broker_reconnects", "Reconnections to the broker", registry=r)
        self.db_unavailable = Counter(
            p + "database_unavailable", "Write attempts that found the database unreachable", registry=r
        )
        self._last_commit = time.monotonic()
        self.seconds_since_commit.set_function(lambda: time.monotonic() - self._last_commit)

    def stats(self) -> dict[str, int]:
        """A copy of the plain counters."""
        with self._lock:
            return dict(self._stats)

    def received(self) -> None:
        """One message came in from the broker."""
        with self._lock:
            self._stats["messages"] += 1
        self.messages_received.inc()

    def reconnected(self) -> None:
        with self._lock:
            self._stats["reconnects"] += 1
        self.reconnects.inc()

    def spooled(self, messages: int) -> None:
        with self._lock:
            self._stats["spooled_messages"] += messages
        self.spooled_messages.inc(messages)

    def wrote(self, result: WriteResult, replayed: int = 0) -> None:
        """One transaction committed what `result` says (`replayed`: messages of it from the spool)."""
        self._last_commit = time.monotonic()
        self.messages_written.inc(result.messages)
        self.readings_received.inc(result.readings_received)
        self.readings_written.inc(result.readings_written)
        self.rfid_written.inc(result.rfid_written)
        self.events_written.inc(result.events_written)
        self.sequence_gaps.inc(result.seq_gaps)
        self.sequence_anomalies.inc(result.seq_anomalies)
        self.batch_messages.observe(result.messages)
        self.batch_readings.observe(result.readings_received)
        for reason, n in result.dead_reasons.items():
            self.dead_letters.labels(reason=reason).inc(n)
        with self._lock:
            st = self._stats
            st["readings_written"] += result.readings_written
            st["rfid_written"] += result.rfid_written
            st["events_written"] += result.events_written
            st["status_updates"] += result.status_updates
            st["dead_letters"] += result.dead_letters
            st["ingest_batches"] += result.ingest_batches
            st["seq_gaps"] += result.seq_gaps
            st["seq_anomalies"] += result.seq_anomalies
            st["replayed_messages"] += replayed
            st["batches_committed"] += 1

    def bind(self, queue_depth: Callable[[], float], spool_bytes: Callable[[], float]) -> None:
        self.queue_depth.set_function(queue_depth)
        self.spool_bytes.set_function(spool_bytes)

    def wsgi_app(self) -> Any:
        """A WSGI app serving /metrics for this registry (mount it anywhere)."""
        return make_wsgi_app(self.registry)
