"""Tests: what the gateway tests share: registered loggers, rows read back, a gateway and a publisher on
the real broker."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from coldchain.settings import BrokerAddress
from gateway.service import GatewayService
from registry.models import Device
from registry.store import add_devices

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def uid() -> str:
    """A suffix that keeps this test's device and client ids apart from every other test's."""
    return uuid.uuid4().hex[:10]


def register(db_url: str, *device_ids: str) -> None:
    """Register each id as an active temperature logger."""
    with psycopg.connect(db_url) as conn:
        add_devices(conn, [Device(d, "temp_logger") for d in device_ids])


def rows(db_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(query, params).fetchall()


def gateway_service(db_url: str, broker: BrokerAddress, **kw: Any) -> GatewayService:
    """A gateway of this test's own (its own client id, no shared subscription), not started."""
    return GatewayService(db_url, broker.host, broker.port, client_id=f"gw-{uid()}", shared_group=None, **kw)


@contextlib.contextmanager
def publisher_on(broker: BrokerAddress, *, inflight: int | None = None) -> Iterator[mqtt.Client]:
    """A device-side MQTT 5 connection to the broker, its loop running; with `inflight`, that many QoS 1
    messages in flight and none queued beyond them."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uid()}", protocol=mqtt.MQTTv5)
    if inflight is not None:
        client.max_inflight_messages_set(inflight)
        client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()
