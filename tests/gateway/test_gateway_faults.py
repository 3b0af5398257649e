"""Tests: gateway faults with real processes: kill -9, broker SIGKILL, scale-out, fuzz, credentials."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from coldchain.embedded import EmbeddedBroker, free_port
from coldchain.settings import BrokerAddress
from gateway.credentials import GATEWAY_USER, ensure_stage_logins
from gateway.pipeline import GatewayService
from tests.gateway_support import (
    T0_MS,
    GatewayProc,
    Publisher,
    assert_exactly_once,
    gateway_config,
    gateway_env,
    readings_stored,
    register,
    uid,
    wait_for,
)

READINGS_PER_MESSAGE = 10


@pytest.fixture
def publisher(mqtt_broker: BrokerAddress) -> Iterator[Publisher]:
    p = Publisher(mqtt_broker, READINGS_PER_MESSAGE)
    yield p
    p.close()


def _count(db_url: str, query: str) -> int:
    with psycopg.connect(db_url, connect_timeout=5) as conn:
        row = conn.execute(query).fetchone()
        assert row is not None
        return int(row[0])


def _settled(db_url: str, sent: dict[str, int]) -> None:
    """Every reading sent is stored, then the exactly-once counts hold."""
    wait_for("every reading stored", lambda: readings_stored(db_url) >= sum(sent.values()))
    assert_exactly_once(db_url, sent)
    assert _count(db_url, "SELECT count(*) FROM dead_letter") == 0


def test_kill9_mid_stream_then_restart_loses_nothing(
    db_url: str, mqtt_broker: BrokerAddress, publisher: Publisher, tmp_path: Path
) -> None:
    dev = f"k9-{uid()}"
    register(db_url, dev)
    gw = GatewayProc(
        db_url, mqtt_broker, tmp_path / "gw.log", gateway_client_id=f"gw-{uid()}", gateway_shared_group=""
    )
    gw.start()
    try:
        messages = 600
        t = threading.Thread(target=publisher.publish_stream, args=(dev, messages, 0, 0.003))
        t.start()
        wait_for("readings mid-stream", lambda: readings_stored(db_url) >= 500)
        gw.kill9()
        assert readings_stored(db_url) < messages * READINGS_PER_MESSAGE
        gw.start()
        t.join(120)
        _settled(db_url, {dev: messages * READINGS_PER_MESSAGE})
        assert gw.terminate() == 0  # SIGTERM drains and exits 0
    finally:
        gw.close()


def test_broker_sigkill_with_persistence_loses_nothing(
    db_url: str, private_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Mosquitto (persistence on) dies of SIGKILL holding the gateway's queued session; restarted, it
    delivers what it had saved, and the stream goes on."""
    assert private_broker.pid is not None, "this test needs a mosquitto process"
    assert "persistence true" in private_broker.config_text()
    dev = f"brk-{uid()}"
    register(db_url, dev)
    addr = private_broker.address
    gw = GatewayProc(
        db_url, addr, tmp_path / "gw.log", gateway_client_id=f"gw-{uid()}", gateway_shared_group=""
    )
    gw.start()
    assert gw.terminate() == 0  # its session (subscription, session expiry a day) stays on the broker
    db_file = private_broker.home / "mosquitto.db"
    saved_before = db_file.stat().st_mtime_ns if db_file.exists() else 0
    pub = Publisher(addr, READINGS_PER_MESSAGE)
    try:
        pub.publish_stream(dev, 300)  # queued in the gateway's session
        wait_for(
            "mosquitto to save its store",
            lambda: db_file.exists() and db_file.stat().st_mtime_ns > saved_before,
        )
        saved_before = db_file.stat().st_mtime_ns
        wait_for(  # the save after the last message (autosave_interval 5)
            "mosquitto to save its store again",
            lambda: db_file.stat().st_mtime_ns > saved_before,
            timeout_s=30,
        )
        os.kill(private_broker.pid, signal.SIGKILL)
        private_broker.restart()  # reaps the killed process, starts a new one on the same port and store
        gw.start()
        pub.publish_stream(dev, 300, first=300)
        _settled(db_url, {dev: 600 * READINGS_PER_MESSAGE})
        assert gw.terminate() == 0
    finally:
        pub.close()
        gw.close()


def _metric(port: int, name: str) -> float:
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_two_gateway_processes_share_the_load(
    db_url: str, mqtt_broker: BrokerAddress, publisher: Publisher, tmp_path: Path
) -> None:
    """Two `python -m gateway` in one $share group: both take messages, the total is exact, nothing twice."""
    dev = f"share-{uid()}"
    register(db_url, dev)
    group = f"gateways{uid()}"
    gws = [
        GatewayProc(
            db_url, mqtt_broker, tmp_path / f"gw{i}.log", gateway_client_id=f"gw{i}-{uid()}",
            gateway_shared_group=group, gateway_metrics_port=str(free_port()),
        )
        for i in range(2)
    ]  # fmt: skip
    try:
        for gw in gws:
            gw.start()
        ports = [int(re.findall(rb"metrics port (\d+)", gw.log.read_bytes())[-1]) for gw in gws]
        publisher.publish_stream(dev, 400)
        _settled(db_url, {dev: 400 * READINGS_PER_MESSAGE})
        received = [_metric(p, "coldchain_gateway_messages_received_total") for p in ports]
        written = [_metric(p, "coldchain_gateway_readings_written_total") for p in ports]
        assert all(r > 0 for r in received), received
        assert sum(received) == 400
        assert sum(written) == 400 * READINGS_PER_MESSAGE
        body = httpx.get(f"http://127.0.0.1:{ports[0]}/metrics", timeout=5).text
        for name in (
            "coldchain_gateway_commit_seconds_bucket",
            "coldchain_gateway_batch_readings_bucket",
            "coldchain_gateway_queue_depth",
            "coldchain_gateway_spool_bytes",
            "coldchain_gateway_seconds_since_last_commit",
            "coldchain_gateway_sequence_gaps_total",
        ):
            assert name in body
        for gw in gws:
            assert gw.terminate() == 0
    finally:
        for gw in gws:
            gw.close()


# ---- fuzz ----------------------------------------------------------------------------------------


def _hostile(rng: random.Random, dev: str, other: str) -> tuple[str, bytes]:
    """One payload the gateway must refuse, on a topic it subscribes to."""
    good = {"v": 1, "device": dev, "boot": 1, "seq": 0, "readings": [{"t": T0_MS, "ch": "temp", "v": 2.0}]}
    topic = f"cc/v1/dev/{dev}/telemetry"
    kind = rng.randrange(12)
    if kind == 0:
        return topic, rng.randbytes(rng.randrange(0, 300))
    if kind == 1:
        raw = json.dumps(good).encode()
        return topic, raw[: rng.randrange(1, len(raw) - 1)]
    if kind == 2:
        doc = json.loads(json.dumps(good))
        field = rng.choice(["v", "device", "boot", "seq", "readings"])
        doc[field] = rng.choice(["x", 1.5, None, [], {}, True, -1])
        if doc[field] == good[field]:
            doc[field] = "wrong"
        return topic, json.dumps(doc).encode()
    if kind == 3:
        v = rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
        return topic, json.dumps(good).replace('"v": 2.0', f'"v": {v}').encode()
    if kind == 4:
        doc = dict(good, readings=[{"t": T0_MS + i, "ch": "temp", "v": 1.0} for i in range(5001)])
        return topic, json.dumps(doc).encode()
    if kind == 5:
        depth = rng.randrange(100, 5000)
        return topic, b"[" * depth + b"]" * depth
    if kind == 6:
        s = "".join(
            chr(rng.choice([0x202E, 0xFEFF, 0x1F9CA, 0xD7FF, 0x10FFFF, 0x0, 0x7F, 0xFFFD])) for _ in range(8)
        )
        return topic, json.dumps(dict(good, device=s)).encode()
    if kind == 7:
        return f"cc/v1/dev/{dev}/telemetry", json.dumps(dict(good, device=other)).encode()  # mismatch
    if kind == 8:
        r = {"t": T0_MS, "ch": "temp", "v": rng.choice([-500.0, 1e6, 151.0])}
        return topic, json.dumps(dict(good, readings=[r])).encode()
    if kind == 9:
        return f"cc/v1/dev/{dev}/{rng.choice(['rfid', 'event', 'status', 'senml', 'xyz'])}", rng.randbytes(40)
    if kind == 10:
        return topic, b"\xff\xfe" + '{"v":1}'.encode("utf-16-le")
    return topic, json.dumps(
        dict(good, readings=[{"t": "2026-13-45T99:00:00Z", "ch": "temp", "v": 1}])
    ).encode()


def test_fuzz_10000_hostile_payloads_all_dead_lettered(
    db_url: str, mqtt_broker: BrokerAddress, publisher: Publisher
) -> None:
    dev, other = f"fz-{uid()}", f"fz-{uid()}"
    register(db_url, dev, other)
    gw = GatewayService(gateway_config(db_url, mqtt_broker, client_id=f"gw-{uid()}", shared_group=None))
    gw.start()
    try:
        rng = random.Random(20260101)
        n = 10_000
        infos = [publisher.client.publish(*_hostile(rng, dev, other), qos=1) for _ in range(n)]
        for info in infos:
            info.wait_for_publish(timeout=120)
        wait_for(
            "every hostile message received", lambda: gw.error is None and gw.stats()["messages"] >= n, 120
        )
        assert gw.wait_idle(60)
        assert gw.error is None
        assert _count(db_url, "SELECT count(*) FROM dead_letter") == n
        assert _count(db_url, "SELECT count(*) FROM reading") == 0
        reasons = _count(db_url, "SELECT count(DISTINCT reason) FROM dead_letter")
        assert reasons >= 6
        # Still up: a good message after the storm is stored.
        publisher.publish_stream(dev, 1)
        wait_for("the good message stored", lambda: readings_stored(db_url) >= READINGS_PER_MESSAGE, 30)
    finally:
        gw.stop()


def test_refused_credentials_end_the_process_with_a_clear_message(db_url: str, server_tmp: Path) -> None:
    passwd = server_tmp / "passwd"
    passwd.write_text("")
    broker = EmbeddedBroker(server_tmp / "mqtt", password_file=passwd)
    broker.start()
    try:
        secret = server_tmp / "gateway-password"
        secret.write_text("wrong\n")
        env = gateway_env(
            db_url, broker.address.model_copy(update={"username": "gateway"}),
            broker_password_file=str(secret), gateway_client_id=f"gw-{uid()}",
        )  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "gateway"], env=env, capture_output=True, timeout=60, check=False
        )
        assert done.returncode == 3, done.stderr
        assert b"refused" in done.stderr
    finally:
        broker.stop()


def test_the_password_comes_from_a_file_never_from_argv(db_url: str, server_tmp: Path) -> None:
    """`python -m gateway` takes no arguments (a password on argv is seen by every local user in ps): the
    broker password comes from COLDCHAIN_BROKER_PASSWORD_FILE."""
    passwd, acl = server_tmp / "passwd", server_tmp / "acl"
    logins = ensure_stage_logins(passwd, acl)
    broker = EmbeddedBroker(server_tmp / "mqtt", password_file=passwd, acl_file=acl)
    broker.start()
    try:
        address = broker.address.model_copy(update={"username": GATEWAY_USER})
        cmd = [sys.executable, "-m", "gateway"]
        base = {"gateway_client_id": f"gw-{uid()}", "gateway_shared_group": ""}
        on_argv = subprocess.run(
            [*cmd, "--password", logins[GATEWAY_USER]],
            env=gateway_env(db_url, address, **base), capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert on_argv.returncode == 2, on_argv.stderr
        assert b"takes no arguments" in on_argv.stderr
        missing = subprocess.run(
            cmd, env=gateway_env(db_url, address, broker_password_file=str(server_tmp / "nope"), **base),
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert missing.returncode == 2
        assert missing.stderr.decode().strip().splitlines()[-1].endswith("No such file or directory")
        assert b"Traceback" not in missing.stderr
        secret = server_tmp / "gateway-password"
        secret.write_text(logins[GATEWAY_USER] + "\n")
        secret.chmod(0o600)
        gw = GatewayProc(
            db_url, address, server_tmp / "gateway.log", broker_password_file=str(secret), **base
        )
        try:
            gw.start()
            assert gw.proc is not None
            assert logins[GATEWAY_USER] not in str(gw.proc.args)
            assert gw.terminate() == 0, gw.log.read_text()
        finally:
            gw.close()
    finally:
        broker.stop()
