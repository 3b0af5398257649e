"""Tests: an oversized payload is refused by the real broker or kept as a bounded prefix, never whole."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from coldchain.embedded import free_port
from coldchain.settings import BrokerAddress
from gateway.limits import MAX_PACKET_BYTES, MAX_PAYLOAD_BYTES, IngestLimits
from gateway.pipeline import GatewayService
from gateway.spool import Spool
from tests.gateway_support import gateway_service as _gateway
from tests.gateway_support import register as _register
from tests.gateway_support import rows as _rows
from tests.gateway_support import telemetry_of
from tests.gateway_support import uid as _uid

ROOT = Path(__file__).resolve().parents[2]
MQTT_PACKET_TOO_LARGE = 149  # MQTT 5.0 reason code 0x95
MQTT_CONNECTION_LOST = 128  # 0x80, unspecified error: what paho reports for a socket closed under it


def _poll(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


class _Publisher:
    """An MQTT 5 client that records why the broker closed its connection."""

    def __init__(self, broker: BrokerAddress) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{_uid()}", protocol=mqtt.MQTTv5
        )
        self.disconnects: list[int] = []
        self.connected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        _poll(self.connected.is_set, "publisher not connected")

    def _on_connect(self, c: mqtt.Client, u: Any, f: Any, rc: ReasonCode, p: Properties | None) -> None:
        self.connected.set()

    def _on_disconnect(self, c: mqtt.Client, u: Any, f: Any, rc: ReasonCode, p: Properties | None) -> None:
        self.disconnects.append(rc.value)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_the_broker_refuses_a_packet_over_the_cap_and_the_gateway_goes_on(
    db_url: str, gateway: GatewayService, mqtt_broker: BrokerAddress
) -> None:
    """Without max_packet_size, up to 256 MB per message reached the gateway and its queue."""
    device = f"ps-{_uid()}"
    _register(db_url, device)
    topic = f"cc/v1/dev/{device}/telemetry"
    hostile = _Publisher(mqtt_broker)
    try:
        hostile.client.publish(topic, b"x" * (MAX_PACKET_BYTES + 1), qos=1)
        _poll(lambda: bool(hostile.disconnects), "the broker kept the publisher of an oversized packet")
        # Mosquitto sends DISCONNECT 0x95 and closes the socket; when the close reaches paho while it is
        # still writing the payload, paho reports the lost connection (0x80) instead of the broker's code.
        assert hostile.disconnects[0] in (MQTT_PACKET_TOO_LARGE, MQTT_CONNECTION_LOST)
    finally:
        hostile.close()
    good = _Publisher(mqtt_broker)
    try:
        good.client.publish(topic, telemetry_of(device, 0, [2.0]), qos=1).wait_for_publish(timeout=30)
    finally:
        good.close()
    _poll(lambda: gateway.stats()["readings_written"] >= 1, f"not stored: {gateway.stats()}")
    assert gateway.wait_idle(30)
    assert gateway.error is None
    assert all(gateway.liveness().values())
    assert gateway.stats()["messages"] == 1  # the oversized message never arrived
    assert _rows(db_url, "SELECT count(*) FROM dead_letter") == [(0,)]


def test_a_payload_just_over_the_limit_still_arrives_and_is_a_dead_letter(
    db_url: str, gateway: GatewayService, mqtt_broker: BrokerAddress
) -> None:
    device = f"pj-{_uid()}"
    _register(db_url, device)
    payload = b"y" * (MAX_PAYLOAD_BYTES + 1)
    pub = _Publisher(mqtt_broker)
    try:
        pub.client.publish(f"cc/v1/dev/{device}/telemetry", payload, qos=1).wait_for_publish(timeout=30)
    finally:
        pub.close()
    _poll(lambda: gateway.stats()["dead_letters"] >= 1, f"no dead letter: {gateway.stats()}")
    assert _rows(db_url, "SELECT reason, payload_bytes, payload_sha256 FROM dead_letter") == [
        ("payload_too_large", len(payload), hashlib.sha256(payload).digest())
    ]


def test_deploy_broker_config_caps_packets_like_the_embedded_one() -> None:
    text = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    assert re.findall(r"^max_packet_size (\d+)$", text, re.MULTILINE) == [str(MAX_PACKET_BYTES)]


def test_an_oversized_payload_is_spooled_as_its_prefix_with_length_and_sha256(
    db_url: str, mqtt_broker: BrokerAddress, server_tmp: Path
) -> None:
    """While the database was down, a payload over the limit went whole into the spool."""
    device = f"so-{_uid()}"
    _register(db_url, device)
    limits = IngestLimits(max_payload_bytes=1000, dead_letter_prefix_bytes=100)
    spool_dir = server_tmp / "spool"
    payload = b"z" * 200_000
    unreachable = f"host=127.0.0.1 port={free_port()} dbname=none user=none connect_timeout=2"
    svc = _gateway(unreachable, mqtt_broker, spool_dir=spool_dir, limits=limits)
    svc.start()
    pub = _Publisher(mqtt_broker)
    try:
        pub.client.publish(f"cc/v1/dev/{device}/telemetry", payload, qos=1).wait_for_publish(timeout=30)
        _poll(lambda: svc.stats()["spooled_messages"] >= 1, f"not spooled: {svc.stats()}")
    finally:
        pub.close()
        svc.stop()
    spool = Spool(spool_dir)
    spool.open()
    assert 0 < spool.bytes < 1000
    ((_, (raw,)),) = [rec for seg in spool.segments() for rec in Spool.read(seg)]
    assert (raw.payload, raw.whole_bytes, raw.whole_sha256) == (
        payload[:100],
        len(payload),
        hashlib.sha256(payload).digest(),
    )
    # Replayed once the database is back: the dead letter names the whole payload.
    svc = _gateway(db_url, mqtt_broker, spool_dir=spool_dir, limits=limits)
    svc.start()
    try:
        _poll(lambda: svc.stats()["replayed_messages"] >= 1, f"not replayed: {svc.stats()}")
        assert svc.wait_idle(30)
    finally:
        svc.stop()
    assert _rows(db_url, "SELECT reason, payload, payload_bytes, payload_sha256 FROM dead_letter") == [
        ("payload_too_large", payload[:100], len(payload), hashlib.sha256(payload).digest())
    ]
