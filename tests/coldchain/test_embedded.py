"""Tests: the embedded runtime's private PostgreSQL and brokers start, keep data, and leave nothing behind."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from process_support import servers_under

from coldchain.embedded import (
    EmbeddedBroker,
    EmbeddedPostgres,
    mosquitto_binary,
    server_settings,
    settings_to_change,
)
from coldchain.settings import BrokerAddress


def _roundtrip(address: BrokerAddress, topic: str) -> bytes:
    got: list[bytes] = []
    done = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        got.append(msg.payload)
        done.set()

    protocol = mqtt.MQTTv5 if address.mqtt5 else mqtt.MQTTv311
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{topic}", protocol=protocol)
    sub.on_message = on_message
    sub.connect(address.host, address.port)
    sub.subscribe(topic, qos=1)
    sub.loop_start()
    try:
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{topic}", protocol=protocol)
        pub.connect(address.host, address.port)
        pub.loop_start()
        # Subscription acknowledgement and delivery are asynchronous: publish until one arrives.
        for _ in range(50):
            pub.publish(topic, b"hello", qos=1).wait_for_publish(5)
            if done.wait(0.2):
                break
        pub.loop_stop()
        pub.disconnect()
    finally:
        sub.loop_stop()
        sub.disconnect()
    return got[0] if got else b""


@pytest.mark.parametrize("use_binary", [True, False], ids=["mosquitto", "amqtt"])
def test_embedded_broker_delivers_and_stops(tmp_path: Path, use_binary: bool) -> None:
    if use_binary:
        assert mosquitto_binary() is not None, "make bootstrap installs mosquitto from Debian's packages"
    broker = EmbeddedBroker(tmp_path / "mqtt", use_binary=use_binary)
    broker.start()
    try:
        assert broker.kind == ("mosquitto" if use_binary else "amqtt")
        assert broker.address.mqtt5 is use_binary, "amqtt speaks MQTT 3.1.1 only"
        assert _roundtrip(broker.address, "cc/v1/test/roundtrip") == b"hello"
    finally:
        broker.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", broker.port), timeout=1)


def test_embedded_postgres_keeps_data_between_starts_and_stops_cleanly(server_tmp: Path) -> None:
    pgdata = server_tmp / "pgdata"
    first = EmbeddedPostgres(pgdata)
    url = first.start()
    # A new server runs with its settings from the first start (restarted once, by its only user).
    assert settings_to_change(first.server_url, server_settings()) == []
    with psycopg.connect(url, autocommit=True) as conn:
        buffers = conn.execute("SELECT pg_size_bytes(current_setting('shared_buffers'))").fetchone()
        assert buffers == (int(server_settings()["shared_buffers"].removesuffix("MB")) * 2**20,)
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    first.stop()
    assert not servers_under(pgdata.resolve(), ("postgres",)), "stop() leaves no server behind"

    second = EmbeddedPostgres(pgdata)
    url = second.start()
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT x FROM kept").fetchone() == (42,)
        assert settings_to_change(second.server_url, server_settings()) == []
    finally:
        second.stop()
    assert not servers_under(pgdata.resolve(), ("postgres",))


@pytest.mark.parametrize(
    ("memory_gib", "shared_buffers"),
    [(0.5, "128MB"), (2, "256MB"), (4, "512MB"), (24, "1024MB"), (256, "1024MB")],
)
def test_embedded_postgres_buffers_are_an_eighth_of_memory_within_bounds(
    memory_gib: float, shared_buffers: str
) -> None:
    settings = server_settings(int(memory_gib * 2**30))
    assert settings["shared_buffers"] == shared_buffers
    assert settings["max_wal_size"] == "2GB"
