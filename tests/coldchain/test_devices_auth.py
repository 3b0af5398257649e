"""Tests: `coldchain devices add` credentials and ACL against a real Mosquitto in auth mode."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from coldchain.cli import app
from coldchain.embedded import EmbeddedBroker
from gateway.credentials import hash_password, set_password, verify_password
from gateway.pipeline import GatewayService
from tests.gateway_support import T0_MS, connect_as, gateway_config, telemetry_of


def test_pbkdf2_hash_matches_mosquitto_format() -> None:
    h = hash_password("s3cret", salt=b"0123456789ab")
    assert h.startswith("$7$101$")
    assert verify_password("s3cret", h)
    assert not verify_password("other", h)


def test_device_cannot_publish_as_another_and_strangers_cannot_connect(
    db_url: str, server_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO asset (asset_id, kind, name) VALUES ('TRUCK-T1', 'reefer_truck', 'truck')")
    info = psycopg.conninfo.conninfo_to_dict(db_url)
    port = f"&port={info['port']}" if info.get("port") else ""
    url = f"postgresql://{info['user']}@/{info['dbname']}?host={info['host']}{port}"
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", url)
    monkeypatch.setenv("COLDCHAIN_HOME", str(server_tmp))
    passwords = {}
    for dev in ("dev-a", "dev-b"):
        res = CliRunner().invoke(app, ["devices", "add", dev, "--kind", "temp_logger", "--asset", "TRUCK-T1"])
        assert res.exit_code == 0, res.output
        passwords[dev] = res.output.split("password ", 1)[1].split()[0]
    mqtt_dir = server_tmp / "mqtt"
    assert "dev-a:$7$" in (mqtt_dir / "passwd").read_text()
    assert "topic write cc/v1/dev/dev-a/#" in (mqtt_dir / "acl").read_text()
    with psycopg.connect(db_url) as conn:
        mounts = conn.execute("SELECT device_id, asset_id FROM device_mount ORDER BY 1").fetchall()
    assert mounts == [("dev-a", "TRUCK-T1"), ("dev-b", "TRUCK-T1")]
    set_password(mqtt_dir / "passwd", "gateway", "gw-pw")
    broker = EmbeddedBroker(
        server_tmp / "broker", password_file=mqtt_dir / "passwd", acl_file=mqtt_dir / "acl"
    )
    broker.start()
    gw = GatewayService(
        gateway_config(db_url, broker.address, username="gateway", password="gw-pw", client_id="gw-auth")
    )
    try:
        gw.start()
        a, codes = connect_as(broker.port, "dev-a", passwords["dev-a"])
        assert codes == [0]
        a.publish(
            "cc/v1/dev/dev-b/telemetry", telemetry_of("dev-b", 0, [3], t0_ms=T0_MS, ch="temp"), qos=1
        ).wait_for_publish(10)  # as B
        a.publish(
            "cc/v1/dev/dev-a/telemetry", telemetry_of("dev-a", 1, [3], t0_ms=T0_MS + 1, ch="temp"), qos=1
        ).wait_for_publish(10)
        # The broker forwards one connection's QoS 1 messages in the order it took them: once dev-a's
        # (published second) is stored and the gateway is idle, the one as dev-b would have been counted.
        deadline = time.monotonic() + 10
        while gw.stats()["readings_written"] < 1:
            assert time.monotonic() < deadline, gw.stats()
            time.sleep(0.05)
        assert gw.wait_idle(10)
        assert gw.stats()["messages"] == 1  # the message published as dev-b never reached the gateway
        with psycopg.connect(db_url) as conn:
            rows = conn.execute("SELECT s.device_id FROM reading JOIN series s USING (series_id)").fetchall()
        assert rows == [("dev-a",)]
        a.disconnect()
        a.loop_stop()
        for user, pw in ((None, None), ("stranger", "x"), ("dev-a", "wrong")):
            c, codes = connect_as(broker.port, user, pw)
            assert codes[0] in (134, 135), (user, codes)  # bad user/password, not authorised
            c.loop_stop()
    finally:
        gw.stop()
        broker.stop()
