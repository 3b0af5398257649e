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
from pydantic import SecretStr

from gateway.config import BrokerAddress, GatewayConfig
from gateway.pipeline import Decoder, GatewayService

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def uid() -> str:
    """A suffix that keeps this test's device and client ids apart from every other test's."""
    return uuid.uuid4().hex[:10]


def register(db_url: str, *device_ids: str) -> None:
    """Register each id as an active temperature logger."""
    with psycopg.connect(db_url) as conn:
        for d in device_ids:
            conn.execute("INSERT INTO device (device_id, kind) VALUES (%s, 'temp_logger')", (d,))


def rows(db_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(query, params).fetchall()


def gateway_config(
    db_url: str,
    broker: BrokerAddress,
    *,
    username: str | None = None,
    password: str | None = None,
    mqtt5: bool | None = None,
    **kw: Any,
) -> GatewayConfig:
    """The config of a gateway on `broker`, as this test's login (`username`, `password`) and protocol."""
    update: dict[str, Any] = {}
    if username is not None:
        update["username"] = username
    if password is not None:
        update["password"] = SecretStr(password)
    if mqtt5 is not None:
        update["mqtt5"] = mqtt5
    return GatewayConfig(database_url=db_url, broker=broker.model_copy(update=update), **kw)


def gateway_service(
    db_url: str, broker: BrokerAddress, *, decoder: Decoder | None = None, **kw: Any
) -> GatewayService:
    """A gateway of this test's own (its own client id, no shared subscription), not started."""
    kw.setdefault("client_id", f"gw-{uid()}")
    kw.setdefault("shared_group", None)
    return GatewayService(gateway_config(db_url, broker, **kw), decoder=decoder)


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
