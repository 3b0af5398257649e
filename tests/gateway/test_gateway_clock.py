"""Tests: the gateway's receive clock: each stored reading and dead letter carries the clock's time at
receipt, whatever clock the service was given (the wall clock, or a simulation's stepped clock)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

from gateway.config import BrokerAddress
from gateway.pipeline import GatewayService
from tests.gateway_support import T0_MS, publisher_on, register, telemetry_of, uid, wait_for

RECEIVED_MS = T0_MS + 7_200_000  # two hours after the readings' device time


def test_stored_rows_carry_the_receive_clock_time(
    db_url: str, mqtt_broker: BrokerAddress, start_gateway: Callable[..., GatewayService]
) -> None:
    device = f"clock-{uid()}"
    register(db_url, device)
    gateway = start_gateway(clock=lambda: RECEIVED_MS)
    with publisher_on(mqtt_broker) as client:
        topic = f"cc/v1/dev/{device}/telemetry"
        client.publish(topic, telemetry_of(device, 0, [2.0, 2.1, 2.2]), qos=1).wait_for_publish(10)
        client.publish(topic, b'{"v":1,"device":', qos=1).wait_for_publish(10)
        wait_for("both messages", lambda: gateway.stats()["messages"] >= 2)
        assert gateway.wait_idle(30)
    at = datetime.fromtimestamp(RECEIVED_MS / 1000, tz=UTC)
    with psycopg.connect(db_url) as conn:
        received = conn.execute(
            "SELECT r.received_at, count(*) FROM reading r JOIN series s USING (series_id)"
            " WHERE s.device_id = %s GROUP BY 1",
            (device,),
        ).fetchall()
        dead = conn.execute("SELECT received_at FROM dead_letter WHERE topic = %s", (topic,)).fetchall()
    assert received == [(at, 3)]
    assert dead == [(at,)]
