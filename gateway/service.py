"""Stage 1, ingest: the MQTT -> PostgreSQL gateway service (paho adapter, writer thread, ack after commit)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Final

import msgspec
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway import store
from gateway.decode import Batch, RawMessage, Rejected, decode

log = logging.getLogger(__name__)

TOPIC_FILTER: Final = "cc/v1/dev/+/+"
# The broker keeps the gateway's session (subscription + unacked messages) for a day of downtime.
SESSION_EXPIRY_S: Final = 86_400
# CONNACK / SUBACK reason codes that no amount of reconnecting will fix (MQTT 5.0, 3.2.2.2).
_FATAL_REASONS: Final = frozenset({133, 134, 135, 138, 140})  # bad client id, bad user/pass, not authorised,
#                                                               banned, bad auth method
_STORE_ERROR: Final = "store_error"


class GatewayError(RuntimeError):
    """The gateway cannot go on: the supervisor should see this, not a silent loop."""


class GatewayAuthError(GatewayError):
    """The broker refused the gateway's credentials or authorisation."""


class _Inbound(msgspec.Struct, frozen=True):
    raw: RawMessage
    mid: int
    qos: int
    generation: int  # connection the message came in on: acks only make sense on that one


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class GatewayService:
    """Subscribes to device topics, stores batches in one transaction each, acks after commit.

    Nothing opens in the constructor: `start()` connects, `stop()` drains, commits, acks, disconnects."""

    def __init__(
        self,
        conninfo: str,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        client_id: str = "coldchain-gateway",
        shared_group: str | None = "gateways",
        max_batch: int = 500,
        max_wait_s: float = 0.05,
        queue_size: int = 10_000,
        keepalive_s: int = 30,
        connect_timeout_s: float = 10.0,
        mqtt5: bool = True,
    ) -> None:
        self.conninfo = conninfo
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.client_id = client_id
        self.topic = f"$share/{shared_group}/{TOPIC_FILTER}" if shared_group else TOPIC_FILTER
        self.max_batch = max_batch  # messages per transaction
        self.max_wait_s = max_wait_s  # how long a batch waits to fill once its first message is in
        self.keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self.mqtt5 = mqtt5  # False: MQTT 3.1.1 (clean_session=False) for brokers without v5, e.g. amqtt
        self._queue: queue.Queue[_Inbound] = queue.Queue(maxsize=queue_size)
        self._cond = threading.Condition()
        self._received = 0
        self._done = 0
        self._generation = 0
        self._stats: dict[str, int] = dict.fromkeys(
            (
                "messages",
                "readings_written",
                "rfid_written",
                "status_updates",
                "dead_letters",
                "ingest_batches",
                "batches_committed",
                "reconnects",
            ),
            0,
        )
        self._series_cache: dict[tuple[str, str], int] = {}
        self._error: BaseException | None = None
        self._subscribed = threading.Event()
        self._stopping = threading.Event()
        self._writer_gone = threading.Event()
        self._client: mqtt.Client | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._writer: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Open the database connection, connect and subscribe; returns once subscribed.

        Raises GatewayAuthError when the broker refuses the credentials, GatewayError on timeout,
        OSError / psycopg.OperationalError when the broker or database cannot be reached."""
        if self._client is not None:
            raise GatewayError("already started")
        self._conn = psycopg.connect(self.conninfo)
        if self.mqtt5:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5, manual_ack=True
            )
        else:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,
                manual_ack=True,
            )
        if self.username is not None:
            client.username_pw_set(self.username, self._password)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        self._writer = threading.Thread(target=self._run_writer, name="gateway-writer", daemon=True)
        self._writer.start()
        try:
            if self.mqtt5:
                props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # untyped in paho
                props.SessionExpiryInterval = SESSION_EXPIRY_S
                client.connect(
                    self.host, self.port, keepalive=self.keepalive_s, clean_start=False, properties=props
                )
            else:
                client.connect(self.host, self.port, keepalive=self.keepalive_s)
            client.loop_start()
            deadline = time.monotonic() + self.connect_timeout_s
            while not self._subscribed.wait(0.05):
                if self._error is not None:
                    raise self._error
                if time.monotonic() > deadline:
                    raise GatewayError(
                        f"not subscribed to {self.topic} on {self.host}:{self.port} "
                        f"after {self.connect_timeout_s} s"
                    )
        except BaseException:
            self._shutdown(drain=False)
            raise

    def stop(self, timeout_s: float = 30.0) -> None:
        """Drain: write and commit everything queued, ack it, then disconnect and close."""
        if self._client is None:
            return
        self._shutdown(drain=True, timeout_s=timeout_s)

    def _shutdown(self, *, drain: bool, timeout_s: float = 30.0) -> None:
        self._stopping.set()
        if not drain:
            self._writer_gone.set()
        if self._writer is not None:
            self._writer.join(timeout_s)
        client = self._client
        if client is not None:
            # Acks queued by the writer sit in paho's out queue ahead of the DISCONNECT packet.
            client.disconnect()
            client.loop_stop()
        if self._conn is not None:
            self._conn.close()
        self._client = None
        self._conn = None
        self._writer = None

    @property
    def error(self) -> BaseException | None:
        """Why the gateway stopped working, if it did (refused credentials, writer failure)."""
        return self._error

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
        with self._cond:
            out = dict(self._stats)
        out["queue_depth"] = self._queue.qsize()
        return out

    # ---- paho callbacks (network thread): decide nothing, only enqueue ---------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            if reason_code.value in _FATAL_REASONS:
                self._error = GatewayAuthError(
                    f"broker {self.host}:{self.port} refused client {self.client_id!r} "
                    f"(user {self.username!r}): {reason_code}"
                )
                log.error("gateway: %s", self._error)
                client.disconnect()  # stops paho's reconnect loop
                with self._cond:
                    self._cond.notify_all()
            else:
                log.warning("gateway: broker refused the connection (%s); retrying", reason_code)
            return
        with self._cond:
            self._generation += 1
            if self._generation > 1:
                self._stats["reconnects"] += 1
        log.info("gateway: connected (session present: %s)", flags.session_present)
        if self.mqtt5:
            client.subscribe(self.topic, options=SubscribeOptions(qos=1))
        else:
            client.subscribe(self.topic, qos=1)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            self._error = GatewayAuthError(f"broker refused subscription to {self.topic}: {failed[0]}")
            log.error("gateway: %s", self._error)
            client.disconnect()
            return
        self._subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if not self._stopping.is_set():
            log.warning("gateway: disconnected (%s); paho reconnects with backoff", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = "<topic is not UTF-8>"  # decode() rejects it as bad_topic
        item = _Inbound(RawMessage(topic, bytes(msg.payload), _now_ms()), msg.mid, msg.qos, self._generation)
        with self._cond:
            self._received += 1
            self._stats["messages"] += 1
        while True:  # blocking put: a full queue holds the network thread = backpressure to the broker
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if self._writer_gone.is_set():
                    return  # not acked: the broker redelivers it to the next session

    # ---- writer thread ---------------------------------------------------------------------

    def _take_batch(self) -> list[_Inbound]:
        try:
            first = self._queue.get(timeout=0.1)
        except queue.Empty:
            return []
        items = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(items) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                items.append(
                    self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        return items

    def _run_writer(self) -> None:
        try:
            while not self._writer_gone.is_set():
                items = self._take_batch()
                if not items:
                    if self._stopping.is_set():
                        break
                    continue
                decoded = [
                    (it.raw, decode(it.raw.topic, it.raw.payload, it.raw.received_at_ms)) for it in items
                ]
                result = self._write(decoded)
                if result is None:
                    break  # stopping while the database is down: the broker redelivers
                self._ack(items)
                with self._cond:
                    self._done += len(items)
                    self._stats["readings_written"] += result.readings_written
                    self._stats["rfid_written"] += result.rfid_written
                    self._stats["status_updates"] += result.status_updates
                    self._stats["dead_letters"] += result.dead_letters
                    self._stats["ingest_batches"] += result.ingest_batches
                    self._stats["batches_committed"] += 1
                    self._cond.notify_all()
        except BaseException as e:  # the supervisor sees it through error / wait_idle
            log.exception("gateway writer failed")
            self._error = e
            with self._cond:
                self._cond.notify_all()
        finally:
            self._writer_gone.set()

    def _ack(self, items: list[_Inbound]) -> None:
        client = self._client
        if client is None:
            return
        generation = self._generation
        for it in items:
            # A message from an earlier connection is redelivered on the new one (persistent
            # session); acking its stale mid there could ack a different message.
            if it.qos > 0 and it.generation == generation:
                client.ack(it.mid, it.qos)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.conninfo)
        return self._conn

    def _write(self, decoded: list[tuple[RawMessage, Batch | Rejected]]) -> store.WriteResult | None:
        """Write in one transaction; retry while the database is unreachable; isolate poison messages."""
        delay_s = 0.2
        while True:
            try:
                return store.write(self._connection(), decoded, self._series_cache)
            except psycopg.OperationalError as e:
                log.warning("gateway: database unavailable (%s); retrying in %.1f s", e, delay_s)
                if self._conn is not None and self._conn.broken:
                    self._conn.close()
                if self._stopping.wait(delay_s):
                    return None
                delay_s = min(delay_s * 2, 5.0)  # backoff up to 5 s between attempts
            except psycopg.Error as e:
                if len(decoded) == 1:
                    raw, _ = decoded[0]
                    log.error("gateway: storing %s failed (%s); dead-lettered", raw.topic, e)
                    rejected = Rejected(reason=_STORE_ERROR, detail=str(e)[:500])
                    return store.write(self._connection(), [(raw, rejected)], self._series_cache)
                total = store.WriteResult()
                for one in decoded:  # find the message that fails, keep the others
                    r = self._write([one])
                    if r is None:
                        return None
                    for field in r.__struct_fields__:
                        setattr(total, field, getattr(total, field) + getattr(r, field))
                return total
