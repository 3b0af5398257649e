"""Stage 1 (ingest): queue -> decoder -> writers, spool when the database is down, thread supervision."""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import psycopg

from gateway import store
from gateway.config import GatewayConfig
from gateway.decode import decode
from gateway.metrics import GatewayMetrics
from gateway.models import Batch, RawMessage, Rejected
from gateway.mqtt import GatewayError, Inbound, MqttAdapter
from gateway.queries import SELECT_SPOOL_MARK, UPSERT_SPOOL_MARK
from gateway.spool import Spool, replay

log = logging.getLogger(__name__)

_STORE_ERROR: Final = "store_error"
_SPOOL: Final = object()  # _write's answer when the batch should go to the spool

_Decoded = tuple[list[Inbound], list[tuple[RawMessage, Batch | Rejected]]]
# decode(topic, payload, received_at_ms): the pure decoder the service runs (a seam for tests).
Decoder = Callable[[str, bytes, int], Batch | Rejected]
# The receive clock, epoch ms: the wall clock, or a simulation's accelerated clock (a seam for tests).
Clock = Callable[[], int]


class GatewayService:
    """Subscribes to device topics, stores batches in one transaction each, acks after commit.

    Nothing opens in the constructor: `start()` connects, `stop()` drains, commits, acks, disconnects."""

    def __init__(
        self, config: GatewayConfig, *, decoder: Decoder | None = None, clock: Clock | None = None
    ) -> None:
        self.config = config
        self._clock = clock
        self.limits = config.limits
        self._decode: Decoder = decoder or functools.partial(
            decode, max_payload_bytes=config.limits.max_payload_bytes
        )
        self._queue: queue.Queue[Inbound] = queue.Queue(maxsize=config.queue_size)
        self._cond = threading.Condition()
        self._received = 0
        self._done = 0
        self._series_cache: dict[tuple[str, str], int] = {}
        self._error: BaseException | None = None
        self._stopping = threading.Event()
        self._writer_gone = threading.Event()
        self._mqtt: MqttAdapter | None = None
        # Writer threads, each with its own connection: one COPYs while another commits (the WAL flush)
        # or while PostgreSQL works on a second core. Rows of different messages commute (unique keys,
        # order-free gap counting), so transactions may commit in any order.
        self.writers = max(1, config.writers)
        self._local = threading.local()
        self._conns: list[psycopg.Connection[Any]] = []
        self._conns_lock = threading.Lock()
        self._writer_threads: list[threading.Thread] = []
        self._writers_left = 0
        # The spool and its replay are one writer's business at a time.
        self._spool_lock = threading.RLock()
        self._decoder: threading.Thread | None = None
        # Decoded batches waiting for a writer: one per writer plus one, so decoding overlaps writing
        # (writers wait on PostgreSQL with the GIL released) while memory stays bounded.
        self._decoded: queue.Queue[_Decoded | None] = queue.Queue(maxsize=self.writers + 1)
        # Database down: batches go to this spool (when configured), are acked once fsynced, and are
        # replayed in order when the database is back. Without it the writer waits (backpressure).
        self._spool = (
            Spool(config.spool_dir, config.spool_max_bytes) if config.spool_dir is not None else None
        )
        self._next_replay = 0.0
        self._replay_delay_s = 0.2
        self.metrics = GatewayMetrics()
        self.metrics.bind(
            lambda: float(self._queue.qsize()),
            lambda: float(self._spool.bytes if self._spool is not None else 0),
        )
        self.metrics_port = config.metrics_port
        self._metrics_server: Any = None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Open the database connection, connect and subscribe; returns once subscribed.

        Raises GatewayAuthError when the broker refuses the credentials, GatewayError on timeout,
        OSError / psycopg.OperationalError when the broker or database cannot be reached."""
        if self._mqtt is not None:
            raise GatewayError("already started")
        cfg = self.config
        if self._spool is not None:
            self._spool.open()
            try:
                psycopg.connect(cfg.database_url, connect_timeout=10).close()
            except psycopg.OperationalError as e:  # the spool takes over until it is back
                log.warning("gateway: database unavailable at start (%s); spooling", e)
        else:
            psycopg.connect(cfg.database_url, connect_timeout=10).close()  # fail fast on a bad URL
        if self.metrics_port is not None:
            from prometheus_client import start_http_server

            server, _ = start_http_server(self.metrics_port, cfg.metrics_host, registry=self.metrics.registry)
            self._metrics_server = server
            self.metrics_port = server.server_address[1]
        adapter = MqttAdapter(cfg, self._enqueue, self._on_connected, self._on_fatal, self._clock)
        self._mqtt = adapter
        self._writer_threads = [
            threading.Thread(target=self._run_writer, name=f"gateway-writer-{i}", daemon=True)
            for i in range(self.writers)
        ]
        self._writers_left = self.writers
        self._decoder = threading.Thread(target=self._run_decoder, name="gateway-decoder", daemon=True)
        for t in self._writer_threads:
            t.start()
        self._decoder.start()
        try:
            adapter.connect()
            deadline = time.monotonic() + cfg.connect_timeout_s
            while not adapter.subscribed.wait(0.05):
                if self._error is not None:
                    raise self._error
                if time.monotonic() > deadline:
                    raise GatewayError(
                        f"not subscribed to {adapter.topic} on {cfg.broker.host}:{cfg.broker.port} "
                        f"after {cfg.connect_timeout_s} s"
                    )
        except BaseException:
            self._shutdown(drain=False)
            raise

    def stop(self, timeout_s: float = 30.0) -> None:
        """Drain: write and commit everything queued, ack it, then disconnect and close."""
        if self._mqtt is None:
            return
        self._shutdown(drain=True, timeout_s=timeout_s)

    def _shutdown(self, *, drain: bool, timeout_s: float = 30.0) -> None:
        self._stopping.set()
        if self._mqtt is not None:
            self._mqtt.stopping.set()
        if not drain:
            self._writer_gone.set()
        for t in self._writer_threads:
            t.join(timeout_s)
        if self._decoder is not None:
            self._decoder.join(timeout_s)
            self._decoder = None
        if self._mqtt is not None:
            self._mqtt.close()  # the acks the writers queued go out ahead of the DISCONNECT packet
        with self._conns_lock:
            for conn in self._conns:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
            self._conns.clear()
        if self._spool is not None:
            self._spool.close_current()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None
        self._mqtt = None
        self._writer_threads = []

    @property
    def error(self) -> BaseException | None:
        """Why the gateway stopped working, if it did (refused credentials, a thread that died)."""
        return self._error

    def liveness(self) -> dict[str, bool]:
        """Per thread role ("decoder", "writer-0", ...): True while it runs. All False before start()."""
        alive = {"decoder": self._decoder is not None and self._decoder.is_alive()}
        for i in range(self.writers):
            threads = self._writer_threads
            alive[f"writer-{i}"] = i < len(threads) and threads[i].is_alive()
        return alive

    def _fail(self, role: str, e: BaseException) -> None:
        """A thread is dying of `e`: record it (the supervisor polls `error`) and wake every waiter."""
        log.error("gateway: the %s thread died", role, exc_info=e)
        if self._error is None:
            self._error = e
        with self._cond:
            self._cond.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """True once the queue is empty and every message received so far is committed and acked."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if self._error is not None:
                    raise GatewayError(f"gateway failed: {self._error}") from self._error
                if self._done >= self._received and self._queue.empty():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))

    def stats(self) -> dict[str, int]:
        """Counters since start: messages received, readings_written, dead_letters, batches_committed, ..."""
        out = self.metrics.stats()
        out["queue_depth"] = self._queue.qsize()
        out["spool_bytes"] = self._spool.bytes if self._spool is not None else 0
        return out

    def metrics_app(self) -> Any:
        """WSGI app serving this gateway's /metrics (Prometheus text format), to mount in any server."""
        return self.metrics.wsgi_app()

    # ---- from the MQTT adapter (network thread) ----------------------------------------------

    def _on_connected(self, generation: int) -> None:
        if generation > 1:
            self.metrics.reconnected()

    def _on_fatal(self, error: GatewayError) -> None:
        self._error = error
        with self._cond:
            self._cond.notify_all()

    def _enqueue(self, item: Inbound) -> None:
        with self._cond:
            self._received += 1
        self.metrics.received()
        while True:  # blocking put: a full queue holds the network thread = backpressure to the broker
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if self._writer_gone.is_set():
                    return  # not acked: the broker redelivers it to the next session

    # ---- decoder thread --------------------------------------------------------------------

    def _take_batch(self) -> list[Inbound]:
        try:
            first = self._queue.get(timeout=0.1)
        except queue.Empty:
            return []
        items = [first]
        deadline = time.monotonic() + self.config.max_wait_s
        while len(items) < self.config.max_batch:
            remaining = deadline - time.monotonic()
            try:
                items.append(
                    self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        return items

    def _decode_raw(self, raw: RawMessage) -> Batch | Rejected:
        if raw.whole_bytes is None:
            return self._decode(raw.topic, raw.payload, raw.received_at_ms)
        return decode(  # a kept prefix: refused as too large, whatever the decoder
            raw.topic,
            raw.payload,
            raw.received_at_ms,
            max_payload_bytes=self.limits.max_payload_bytes,
            payload_bytes=raw.whole_bytes,
        )

    def _run_decoder(self) -> None:
        """Batch and decode (pure, GIL-bound) ahead of the writer; None tells the writer input has ended."""
        try:
            while not self._writer_gone.is_set():
                items = self._take_batch()
                if not items:
                    if self._stopping.is_set():
                        break
                    continue
                decoded = [(it.raw, self._decode_raw(it.raw)) for it in items]
                while not self._writer_gone.is_set():
                    try:
                        self._decoded.put((items, decoded), timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as e:  # the supervisor sees it through error / wait_idle / liveness
            self._fail("decoder", e)
            self._writer_gone.set()  # nothing more will be decoded: stop the writers too
        finally:
            sentinels = self.writers  # one "input ended" per writer
            while sentinels and not self._writer_gone.is_set():
                try:
                    self._decoded.put(None, timeout=0.1)
                    sentinels -= 1
                except queue.Full:
                    continue

    # ---- writer threads --------------------------------------------------------------------

    def _run_writer(self) -> None:
        try:
            while not self._writer_gone.is_set():
                try:
                    got = self._decoded.get(timeout=0.1)
                except queue.Empty:
                    if self._spool is not None and self._spool.pending():
                        with self._spool_lock:
                            self._replay()
                    continue
                if got is None:
                    if self._spool is not None and self._spool.pending():
                        with self._spool_lock:
                            self._replay()  # one last try; else the spool waits on disk for the next start
                    break
                items, decoded = got
                spool = self._spool
                if spool is not None and spool.pending():
                    with self._spool_lock:
                        if spool.pending() and not self._replay():
                            self._spool_items(items)  # keep arrival order: behind the spooled batches
                            continue
                result = self._write(decoded)
                if result is None:
                    break  # stopping while the database is down: the broker redelivers
                if result is _SPOOL:
                    with self._spool_lock:
                        self._next_replay = max(self._next_replay, time.monotonic() + self._replay_delay_s)
                        self._spool_items(items)
                    continue
                assert isinstance(result, store.WriteResult)
                self._ack(items)
                self._account(result, len(items))
        except BaseException as e:  # the supervisor sees it through error / wait_idle / liveness
            self._fail(threading.current_thread().name.removeprefix("gateway-"), e)
        finally:
            self._drop_connection()
            with self._cond:
                self._writers_left -= 1
                last = self._writers_left <= 0
            if last or self._error is not None:
                self._writer_gone.set()

    def _ack(self, items: list[Inbound]) -> None:
        if self._mqtt is not None:
            self._mqtt.ack(items)

    def _account(self, result: store.WriteResult, acked: int, replayed: int = 0) -> None:
        self.metrics.wrote(result, replayed)
        with self._cond:
            self._done += acked
            self._cond.notify_all()

    def _spool_items(self, items: list[Inbound]) -> None:
        """Append to the spool (fsynced), then ack: the messages are safe on disk."""
        assert self._spool is not None
        self._spool.append([it.raw for it in items])
        self._ack(items)
        self.metrics.spooled(len(items))
        with self._cond:
            self._done += len(items)
            self._cond.notify_all()

    # ---- spool replay (a writer holding _spool_lock) ---------------------------------------

    def applied_upto(self, segment: str) -> int:
        """ReplaySink: the highest record of `segment` already committed (-1: none)."""
        conn = self._connection()
        row = conn.execute(SELECT_SPOOL_MARK, (segment,)).fetchone()
        conn.rollback()
        return int(row[0]) if row else -1

    def apply(self, raws: list[RawMessage], mark: tuple[str, int]) -> None:
        """ReplaySink: commit one spooled record with its mark, isolating a poison message."""
        decoded = [(r, self._decode_raw(r)) for r in raws]
        t0 = time.perf_counter()
        try:
            result = store.write(
                self._connection(), decoded, self._series_cache, spool_mark=mark, limits=self.limits
            )
        except psycopg.OperationalError:
            raise
        except psycopg.Error:
            # A poison message: _write isolates and dead-letters it, then the mark follows in a
            # transaction of its own.
            r = self._write(decoded)
            if not isinstance(r, store.WriteResult):
                raise psycopg.OperationalError("database lost during spool replay") from None
            result = r
            conn = self._connection()
            with conn.transaction():
                conn.execute(UPSERT_SPOOL_MARK, mark)
        self.metrics.commit_seconds.observe(time.perf_counter() - t0)
        self._account(result, 0, replayed=len(raws))

    def _replay(self) -> bool:
        """Replay the spool into the database, oldest first; True once it is empty."""
        spool = self._spool
        assert spool is not None
        if time.monotonic() < self._next_replay:
            return False
        try:
            replay(spool, self)
        except psycopg.OperationalError as e:
            self.metrics.db_unavailable.inc()
            log.warning("gateway: database still unavailable (%s); spooling", e)
            self._drop_connection()
            self._next_replay = time.monotonic() + self._replay_delay_s
            self._replay_delay_s = min(self._replay_delay_s * 2, 5.0)  # backoff up to 5 s
            return False
        self._replay_delay_s = 0.2
        return True

    # ---- database --------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        """This writer thread's connection."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self.config.database_url, connect_timeout=5)
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _drop_connection(self) -> None:
        """Close this writer thread's connection (it is reopened on next use)."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()
            with self._conns_lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            self._local.conn = None

    def _write(self, decoded: list[tuple[RawMessage, Batch | Rejected]]) -> store.WriteResult | object | None:
        """Write in one transaction; spool or retry while the database is unreachable; isolate poison.

        Returns the WriteResult, _SPOOL (database down, spool has room), or None (stopping)."""
        delay_s = 0.2
        while True:
            try:
                t0 = time.perf_counter()
                result = store.write(self._connection(), decoded, self._series_cache, limits=self.limits)
                self.metrics.commit_seconds.observe(time.perf_counter() - t0)
                return result
            except psycopg.OperationalError as e:
                self.metrics.db_unavailable.inc()
                self._drop_connection()
                if self._spool is not None and not self._spool.full():
                    log.warning(
                        "gateway: database unavailable (%s); spooling to %s", e, self._spool.directory
                    )
                    return _SPOOL
                log.warning("gateway: database unavailable (%s); retrying in %.1f s", e, delay_s)
                if self._stopping.wait(delay_s):
                    return None
                delay_s = min(delay_s * 2, 5.0)  # backoff up to 5 s between attempts
            except psycopg.Error as e:
                if len(decoded) == 1:
                    raw, _ = decoded[0]
                    log.error("gateway: storing %s failed (%s); dead-lettered", raw.topic, e)
                    rejected = Rejected(reason=_STORE_ERROR, detail=str(e)[:500])
                    return store.write(
                        self._connection(), [(raw, rejected)], self._series_cache, limits=self.limits
                    )
                total = store.WriteResult()
                for one in decoded:  # find the message that fails, keep the others
                    r = self._write([one])
                    if not isinstance(r, store.WriteResult):
                        return (
                            r  # stopping, or the database went away: the whole batch is spooled/redelivered
                        )
                    total.add(r)
                return total
