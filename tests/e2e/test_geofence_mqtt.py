"""Tests: positions published over MQTT cross a geofence; the ledger holds arriving and departing once, also
when a batch is delivered again and when a buffered batch arrives late."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import psycopg
import pytest
from gateway_support import T0_MS, gateway_service, publisher_on, uid, wait_for
from geofence_support import INSIDE, OUTSIDE, SHIPMENT, TERMINAL, fenced_world, live_geofence_events
from rules_support import drain

from gateway.config import BrokerAddress
from gateway.pipeline import GatewayService
from rules.worker import RulesWorker
from traceability.ledger import verify
from traceability.ledger.rederive import rederive
from traceability.worker import LedgerWorker


def _iso(minute: int) -> str:
    t_s = T0_MS // 1000 + minute * 60
    return dt.datetime.fromtimestamp(t_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _positions(device: str, seq: int, points: list[tuple[int, tuple[float, float]]]) -> bytes:
    """One v1 telemetry message: a lat and a lon reading per (minute, (lat, lon))."""
    readings = []
    for minute, (lat, lon) in points:
        t = T0_MS + minute * 60_000
        readings += [{"t": t, "ch": "lat", "v": lat}, {"t": t, "ch": "lon", "v": lon}]
    return json.dumps({"v": 1, "device": device, "boot": 1, "seq": seq, "readings": readings}).encode()


@pytest.fixture
def gateway(db_url: str, mqtt_broker: BrokerAddress) -> Iterator[GatewayService]:
    svc = gateway_service(db_url, mqtt_broker)
    svc.start()
    yield svc
    svc.stop()


def _deliver(svc: GatewayService, client: mqtt.Client, device: str, payload: bytes) -> None:
    """Publish at QoS 1 and wait until the gateway has committed and acknowledged it."""
    seen = svc.stats()["messages"]
    client.publish(f"cc/v1/dev/{device}/telemetry", payload, qos=1).wait_for_publish(timeout=10)
    wait_for("the gateway to receive the message", lambda: svc.stats()["messages"] > seen)
    assert svc.wait_idle(20)


def _judge(db_url: str) -> None:
    worker = RulesWorker(db_url)
    try:
        drain(worker)
    finally:
        worker.close()
    while LedgerWorker(db_url).run_once():
        pass


def test_positions_over_mqtt_cross_the_fence_once(
    db_url: str, mqtt_broker: BrokerAddress, gateway: GatewayService
) -> None:
    device = f"gps-{uid()}"
    with psycopg.connect(db_url) as conn:
        fenced_world(conn, device=device)
    first = _positions(device, 0, [(0, OUTSIDE), (1, OUTSIDE), (10, INSIDE), (11, INSIDE)])
    then = _positions(device, 8, [(20, INSIDE), (30, OUTSIDE), (31, OUTSIDE)])
    buffered = _positions(device, 4, [(5, INSIDE), (25, OUTSIDE)])  # sent by the device after reconnecting
    with publisher_on(mqtt_broker) as client:
        _deliver(gateway, client, device, first)
        _deliver(gateway, client, device, then)
        _judge(db_url)
        with psycopg.connect(db_url) as conn:
            assert live_geofence_events(conn) == [
                ("arriving", TERMINAL, _iso(10), SHIPMENT),
                ("departing", TERMINAL, _iso(30), SHIPMENT),
            ]
            head = conn.execute("SELECT max(seq) FROM ledger_event").fetchone()

        # The same message delivered again (a QoS 1 redelivery): nothing new in the ledger.
        _deliver(gateway, client, device, then)
        _judge(db_url)
        with psycopg.connect(db_url) as conn:
            assert conn.execute("SELECT max(seq) FROM ledger_event").fetchone() == head

        # The buffered batch, late: the device was inside at minute 5 and outside at 25 already. The
        # crossings move earlier; each crossing still has one live event, the old ones declared wrong.
        _deliver(gateway, client, device, buffered)
        _deliver(gateway, client, device, buffered)
        _judge(db_url)
    with psycopg.connect(db_url) as conn:
        assert live_geofence_events(conn) == [
            ("arriving", TERMINAL, _iso(5), SHIPMENT),
            ("departing", TERMINAL, _iso(25), SHIPMENT),
        ]
        declared = conn.execute(
            "SELECT event->>'bizStep', event->>'eventTime' FROM ledger_event"
            " WHERE declares_error AND event ? 'cc:geofence' ORDER BY seq"
        ).fetchall()
        assert sorted(declared) == [("arriving", _iso(10)), ("departing", _iso(30))]
        assert conn.execute("SELECT count(*) FROM geofence_outbox").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM ingest_batch").fetchone() == (0,)
        assert verify.verify(conn).ok
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert rederive(conn, apply=False).consistent, "the derived tables are what the ledger gives"
