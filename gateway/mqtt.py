"""Stage 1 (ingest): the paho adapter: callbacks enqueue, subscribe in on_connect, ack after commit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.config import GatewayConfig
from gateway.models import RawMessage

log = logging.getLogger(__name__)

TOPIC_FILTER: Final = "cc/v1/dev/+/+"
# The broker keeps the gateway's session (subscription + unacked messages) for a day of downtime.
SESSION_EXPIRY_S: Final = 86_400
# CONNACK / SUBACK reason codes that no amount of reconnecting will fix (MQTT 5.0, 3.2.2.2).
_FATAL_REASONS: Final = frozenset({133, 134, 135, 138, 140})  # bad client id, bad user/pass, not authorised,
#                                                               banned, bad auth method


class GatewayError(RuntimeError):
    """The gateway cannot go on: the supervisor should see this, not a silent loop."""


class GatewayAuthError(GatewayError):
    """The broker refused the gateway's credentials or authorisation."""


class Inbound(msgspec.Struct, frozen=True):
    """A message as the network thread hands it on: its bytes and what acking it needs."""

    raw: RawMessage
    mid: int
    qos: int
    generation: int  # connection the message came in on: acks only make sense on that one


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class MqttAdapter:
    """One paho client: connects with a persistent session, subscribes, hands messages to `deliver`.

    The callbacks run on paho's network thread and decide nothing: `deliver` may block (a full queue holds
    the network thread: backpressure to the broker). `on_connected(generation)` and `on_fatal(error)` tell
    the pipeline about reconnects and refusals."""

    def __init__(
        self,
        config: GatewayConfig,
        deliver: Callable[[Inbound], None],
        on_connected: Callable[[int], None],
        on_fatal: Callable[[GatewayError], None],
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        self._clock = clock or _now_ms  # receive time, epoch ms
        self.topic = f"$share/{config.shared_group}/{TOPIC_FILTER}" if config.shared_group else TOPIC_FILTER
        self._deliver = deliver
        self._on_connected = on_connected
        self._on_fatal = on_fatal
        self.generation = 0
        self.subscribed = threading.Event()
        self.stopping = threading.Event()
        self._client: mqtt.Client | None = None

    def connect(self) -> None:
        """Connect and start paho's loop; `subscribed` is set once the subscription is granted."""
        cfg, broker = self.config, self.config.broker
        if broker.mqtt5:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=cfg.client_id, protocol=mqtt.MQTTv5, manual_ack=True
            )
        else:  # MQTT 3.1.1 (clean_session=False) for brokers without v5, e.g. amqtt
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=cfg.client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,
                manual_ack=True,
            )
        if broker.username is not None:
            password = broker.password.get_secret_value() if broker.password is not None else None
            client.username_pw_set(broker.username, password)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        if broker.mqtt5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # untyped in paho
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            client.connect(
                broker.host, broker.port, keepalive=cfg.keepalive_s, clean_start=False, properties=props
            )
        else:
            client.connect(broker.host, broker.port, keepalive=cfg.keepalive_s)
        client.loop_start()

    def close(self) -> None:
        """Disconnect (acks already queued go out first, ahead of DISCONNECT) and stop paho's loop."""
        self.stopping.set()
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def ack(self, items: Sequence[Inbound]) -> None:
        """Acknowledge messages that are committed or spooled (QoS 1, on the connection they came in on)."""
        client = self._client
        if client is None:
            return
        generation = self.generation
        for it in items:
            # A message from an earlier connection is redelivered on the new one (persistent
            # session); acking its stale mid there could ack a different message.
            if it.qos > 0 and it.generation == generation:
                client.ack(it.mid, it.qos)

    # ---- paho callbacks (network thread) ------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        broker = self.config.broker
        if reason_code.is_failure:
            if reason_code.value in _FATAL_REASONS:
                error = GatewayAuthError(
                    f"broker {broker.host}:{broker.port} refused client {self.config.client_id!r} "
                    f"(user {broker.username!r}): {reason_code}"
                )
                log.error("gateway: %s", error)
                client.disconnect()  # stops paho's reconnect loop
                self._on_fatal(error)
            else:
                log.warning("gateway: broker refused the connection (%s); retrying", reason_code)
            return
        self.generation += 1
        self._on_connected(self.generation)
        log.info("gateway: connected (session present: %s)", flags.session_present)
        if broker.mqtt5:
            # No retained messages at subscribe time: a shared subscription never gets them (MQTT 5
            # §4.8.2), and a plain one takes only what devices publish while it is subscribed, as a
            # shared one does, rather than every stale status (a stranger's, too) at each reconnect.
            options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
            client.subscribe(self.topic, options=options)
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
            error = GatewayAuthError(f"broker refused subscription to {self.topic}: {failed[0]}")
            log.error("gateway: %s", error)
            client.disconnect()
            self._on_fatal(error)
            return
        self.subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if not self.stopping.is_set():
            log.warning("gateway: disconnected (%s); paho reconnects with backoff", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = "<topic is not UTF-8>"  # decode() rejects it as bad_topic
        # A payload over the limit is refused unread: only its dead letter's prefix (with its length and
        # sha256) is queued, so it is never held, queued or spooled whole.
        limits = self.config.limits
        raw = RawMessage(topic, bytes(msg.payload), self._clock()).bounded(
            limits.max_payload_bytes, limits.dead_letter_prefix_bytes
        )
        self._deliver(Inbound(raw, msg.mid, msg.qos, self.generation))
