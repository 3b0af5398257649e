"""Tests: the gateway service against a real Mosquitto and a real PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from coldchain.embedded import EmbeddedBroker
from coldchain.settings import BrokerAddress
from gateway.mqtt import GatewayAuthError
from gateway.pipeline import GatewayService
from tests.gateway_support import gateway_config

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _uid() -> str:
    return uuid.uuid4().hex[:10]


def _register(db_url: str, *devices: tuple[str, str], status: str = "active") -> None:
    with psycopg.connect(db_url) as conn:
        for device_id, kind in devices:
            conn.execute(
                "INSERT INTO device (device_id, kind, status) VALUES (%s, %s, %s)", (device_id, kind, status)
            )


@pytest.fixture
def publisher(mqtt_broker: BrokerAddress) -> Iterator[mqtt.Client]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{_uid()}", protocol=mqtt.MQTTv5)
    client.connect(mqtt_broker.host, mqtt_broker.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def _publish(client: mqtt.Client, topic: str, payload: bytes | str) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)


def _telemetry(device: str, seq: int, n: int, boot: int = 1) -> bytes:
    readings = [{"t": T0_MS + (seq + i) * 60_000, "ch": "temp:1", "v": 2.0 + 0.1 * i} for i in range(n)]
    return json.dumps({"v": 1, "device": device, "boot": boot, "seq": seq, "readings": readings}).encode()


def _settle(svc: GatewayService, messages: int, timeout_s: float = 20.0) -> None:
    """Wait until the gateway has received `messages` and committed and acked all of them."""
    deadline = time.monotonic() + timeout_s
    while svc.stats()["messages"] < messages:
        assert time.monotonic() < deadline, f"gateway saw {svc.stats()['messages']} of {messages} messages"
        time.sleep(0.02)
    assert svc.wait_idle(timeout_s)


def _rows(db_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(query, params).fetchall()


@pytest.fixture
def gateway(start_gateway: Callable[..., GatewayService]) -> GatewayService:
    """A started gateway on a shared subscription of its own."""
    return start_gateway(shared_group=f"g{_uid()}")


def test_telemetry_rfid_status_and_dead_letters(
    db_url: str, gateway: GatewayService, publisher: mqtt.Client
) -> None:
    dev, reader, ghost = f"log-{_uid()}", f"rfid-{_uid()}", f"ghost-{_uid()}"
    _register(db_url, (dev, "temp_logger"), (reader, "rfid_reader"))
    _publish(publisher, f"cc/v1/dev/{dev}/telemetry", _telemetry(dev, 0, 5))
    _publish(publisher, f"cc/v1/dev/{dev}/telemetry", _telemetry(dev, 8, 2))  # seq 5..7 never arrived
    rfid = {
        "v": 1,
        "device": reader,
        "boot": 3,
        "seq": 0,
        "reads": [
            {
                "t": "2026-01-01T08:00:00+08:00",
                "epc": "urn:epc:id:sscc:6901234.0000000001",
                "ant": 1,
                "rssi": -52.5,
            },
            {"t": T0_MS, "epc": "urn:epc:id:giai:6901234.TRUCK12345", "ant": 2, "rssi": -60.0},
        ],
    }
    _publish(publisher, f"cc/v1/dev/{reader}/rfid", json.dumps(rfid))
    _publish(
        publisher,
        f"cc/v1/dev/{dev}/status",
        json.dumps({"v": 1, "device": dev, "status": "online", "t": T0_MS}),
    )
    _publish(publisher, f"cc/v1/dev/{dev}/telemetry", b"{not json")
    _publish(publisher, f"cc/v1/dev/{dev}/telemetry", _telemetry("someone-else", 0, 1))
    _publish(publisher, f"cc/v1/dev/{dev}/telemetry", b'{"v":1,"device":"x"}')
    _publish(publisher, f"cc/v1/dev/{ghost}/telemetry", _telemetry(ghost, 0, 1))
    _settle(gateway, 8)

    readings = _rows(
        db_url,
        "SELECT (extract(epoch FROM r.time) * 1000)::bigint, s.channel, r.value, r.flags FROM reading r "
        "JOIN series s USING (series_id) WHERE s.device_id = %s ORDER BY r.time",
        dev,
    )
    assert len(readings) == 7
    assert readings[0] == (T0_MS, "temp:1", 2.0, 0)
    reads = _rows(
        db_url, "SELECT epc, antenna, rssi FROM rfid_read WHERE device_id = %s ORDER BY epc", reader
    )
    assert reads == [
        ("urn:epc:id:giai:6901234.TRUCK12345", 2, -60.0),
        ("urn:epc:id:sscc:6901234.0000000001", 1, -52.5),
    ]
    assert _rows(db_url, "SELECT status FROM device_status WHERE device_id = %s", dev) == [("online",)]
    assert _rows(db_url, "SELECT next_seq, missing FROM device_seq WHERE device_id = %s", dev) == [(10, 3)]
    reasons = sorted(r for (r,) in _rows(db_url, "SELECT reason FROM dead_letter"))
    assert reasons == ["device_mismatch", "malformed_json", "schema", "unknown_device"]
    raw = _rows(db_url, "SELECT payload, topic FROM dead_letter WHERE reason = 'malformed_json'")
    assert raw == [(b"{not json", f"cc/v1/dev/{dev}/telemetry")]
    outbox = _rows(db_url, "SELECT kind, cardinality(series_ids), device_ids FROM ingest_batch ORDER BY kind")
    kinds = {k for k, _, _ in outbox}
    assert kinds == {"telemetry", "rfid"}
    assert any(k == "rfid" and d == [reader] for k, _, d in outbox)
    t_range = _rows(
        db_url,
        "SELECT min(t_min), max(t_max) FROM ingest_batch WHERE kind = 'telemetry'",
    )
    assert t_range[0][1] > t_range[0][0]
    stats = gateway.stats()
    assert stats["readings_written"] == 7
    assert stats["dead_letters"] == 4
    assert stats["batches_committed"] >= 1


def test_redelivery_writes_no_duplicates(
    db_url: str, gateway: GatewayService, publisher: mqtt.Client
) -> None:
    dev = f"log-{_uid()}"
    _register(db_url, (dev, "temp_logger"))
    payload = _telemetry(dev, 0, 10)
    _publish(publisher, f"cc/v1/dev/{dev}/telemetry", payload)
    _settle(gateway, 1)
    before = _rows(db_url, "SELECT count(*) FROM ingest_batch")[0][0]
    _publish(publisher, f"cc/v1/dev/{dev}/telemetry", payload)
    _settle(gateway, 2)
    assert _rows(db_url, "SELECT count(*) FROM reading")[0][0] == 10
    # A redelivered batch inserts nothing, so it gives the rules workers nothing to do.
    assert _rows(db_url, "SELECT count(*) FROM ingest_batch")[0][0] == before
    assert gateway.stats()["readings_written"] == 10
    assert _rows(db_url, "SELECT next_seq, missing FROM device_seq WHERE device_id = %s", dev) == [(10, 0)]


def test_decommissioned_device_is_dead_lettered(
    db_url: str, gateway: GatewayService, publisher: mqtt.Client
) -> None:
    dev = f"old-{_uid()}"
    _register(db_url, (dev, "temp_logger"), status="decommissioned")
    _publish(publisher, f"cc/v1/dev/{dev}/telemetry", _telemetry(dev, 0, 3))
    _settle(gateway, 1)
    assert _rows(db_url, "SELECT reason FROM dead_letter") == [("decommissioned",)]
    assert _rows(db_url, "SELECT count(*) FROM reading")[0][0] == 0


@pytest.mark.parametrize("mqtt5", [True, False])
def test_messages_published_while_down_arrive_after_restart(
    db_url: str, mqtt_broker: BrokerAddress, publisher: mqtt.Client, mqtt5: bool
) -> None:
    """Persistent session: the broker keeps what arrives while the gateway is stopped."""
    dev = f"log-{_uid()}"
    _register(db_url, (dev, "temp_logger"))
    kwargs: dict[str, Any] = {"client_id": f"gw-{_uid()}", "shared_group": None, "mqtt5": mqtt5}
    svc = GatewayService(gateway_config(db_url, mqtt_broker, **kwargs))
    svc.start()
    svc.stop()
    _publish(publisher, f"cc/v1/dev/{dev}/telemetry", _telemetry(dev, 0, 4))
    svc = GatewayService(gateway_config(db_url, mqtt_broker, **kwargs))
    svc.start()
    # This device's readings, not a message count: an MQTT 3.1.1 subscription also gets whatever a
    # reused broker holds retained (strangers' statuses), which says nothing of this device's message.
    query = "SELECT count(*) FROM reading JOIN series USING (series_id) WHERE device_id = %s"
    try:
        deadline = time.monotonic() + 20
        while _rows(db_url, query, dev)[0][0] < 4:
            assert time.monotonic() < deadline, "the message published while down did not arrive"
            time.sleep(0.02)
        assert svc.wait_idle(20)
    finally:
        svc.stop()
    assert _rows(db_url, query, dev)[0][0] == 4


def test_refused_credentials_raise(db_url: str, tmp_path: Any) -> None:
    broker = _AuthBroker(tmp_path / "mqtt")
    broker.start()
    try:
        svc = GatewayService(
            gateway_config(db_url, broker.address, username="gw", password="wrong", client_id=f"gw-{_uid()}")
        )
        with pytest.raises(GatewayAuthError, match="refused"):
            svc.start()
    finally:
        broker.stop()


class _AuthBroker(EmbeddedBroker):
    """A Mosquitto that allows no anonymous clients and has no password file: every login is refused."""

    def config_text(self) -> str:
        return super().config_text().replace("allow_anonymous true", "allow_anonymous false")


def test_stop_drains_and_a_restart_loses_nothing(
    db_url: str, mqtt_broker: BrokerAddress, publisher: mqtt.Client
) -> None:
    """Whatever stop() did not commit stays unacked in the session and arrives after a restart."""
    dev = f"log-{_uid()}"
    _register(db_url, (dev, "temp_logger"))
    kwargs: dict[str, Any] = {"client_id": f"gw-{_uid()}", "shared_group": None, "max_batch": 7}
    svc = GatewayService(gateway_config(db_url, mqtt_broker, **kwargs))
    svc.start()
    infos = [
        publisher.publish(f"cc/v1/dev/{dev}/telemetry", _telemetry(dev, i * 10, 10), qos=1) for i in range(60)
    ]
    for info in infos:
        info.wait_for_publish(timeout=10)
    svc.stop()
    first = svc.stats()
    assert first["readings_written"] == _rows(db_url, "SELECT count(*) FROM reading")[0][0]
    svc = GatewayService(gateway_config(db_url, mqtt_broker, **kwargs))
    svc.start()
    try:
        deadline = time.monotonic() + 20
        while _rows(db_url, "SELECT count(*) FROM reading")[0][0] < 600:
            assert time.monotonic() < deadline, svc.stats()
            time.sleep(0.05)
        assert svc.wait_idle(20)
    finally:
        svc.stop()
    assert _rows(db_url, "SELECT next_seq, missing FROM device_seq WHERE device_id = %s", dev) == [(600, 0)]
