"""Tests: the simulated demo devices, played through a real broker into the gateway and PostgreSQL."""

from __future__ import annotations

import time
import uuid

import psycopg

from coldchain.embedded import EmbeddedBroker
from firmware_sim.scenario import run_demo
from firmware_sim.world import REEFER, demo_world
from gateway.pipeline import GatewayService
from tests.gateway_support import assert_one_outbox_row_per_transaction, gateway_config

S_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def test_demo_lands_in_the_database(db_url: str, private_broker: EmbeddedBroker) -> None:
    # A broker of its own: the devices leave retained status messages (their Last Wills), which would
    # reach every later gateway on a shared broker.
    mqtt_broker = private_broker.address
    with psycopg.connect(db_url) as conn:
        for d in demo_world().devices:
            conn.execute("INSERT INTO device (device_id, kind) VALUES (%s, %s)", (d.device_id, d.kind))
    # A shared subscription gets no retained messages: only what this run publishes arrives.
    gw = GatewayService(
        gateway_config(
            db_url,
            mqtt_broker,
            client_id=f"gw-{uuid.uuid4().hex[:8]}",
            shared_group=f"g{uuid.uuid4().hex[:8]}",
        )
    )
    gw.start()
    try:
        progress: list[str] = []
        report = run_demo(
            mqtt_broker.host,
            mqtt_broker.port,
            start_ms=S_MS,
            speedup=1_000_000.0,
            on_progress=progress.append,
        )
        deadline = time.monotonic() + 30
        while gw.stats()["messages"] < report.messages:
            assert time.monotonic() < deadline, gw.stats()
            time.sleep(0.02)
        assert gw.wait_idle(30)
    finally:
        gw.stop()

    assert report.readings_published == 4040
    assert report.readings_lost == 280
    assert report.malformed_sent == 4
    assert report.rfid_reads == 15
    assert progress
    with psycopg.connect(db_url) as conn:
        readings = conn.execute("SELECT count(*) FROM reading").fetchone()
        assert readings == (report.readings_published,)
        assert conn.execute("SELECT count(*) FROM rfid_read").fetchone() == (report.rfid_reads,)
        reasons = sorted(r for (r,) in conn.execute("SELECT reason FROM dead_letter").fetchall())
        assert reasons == ["device_mismatch", "malformed_json", "schema", "unknown_device"]
        seq = conn.execute("SELECT missing FROM device_seq WHERE device_id = %s", (REEFER,)).fetchone()
        assert seq == (280,)
        # Counted once each: what the (boot, seq) accounting received is what was stored, and the gaps
        # are next_seq - received - skipped unclamped (a reading counted twice would lower them).
        received = conn.execute(
            "SELECT sum(received), sum(next_seq - received - skipped), sum(missing) FROM device_seq"
        ).fetchone()
        assert received == (report.readings_published + report.rfid_reads, 280, 280)
        assert_one_outbox_row_per_transaction(conn)
        statuses = conn.execute("SELECT DISTINCT status FROM device_status").fetchall()
        assert statuses == [("offline",)]
