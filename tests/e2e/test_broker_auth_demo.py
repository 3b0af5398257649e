"""Tests: the embedded broker of `coldchain demo --serve` refuses strangers and cross-device forgeries."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from process_support import DEMO_SPEEDUP, as_foreground_job, servers_under, stop

from coldchain.datadir import SERVERS_FILE
from coldchain.embedded import free_port
from firmware_sim import encode
from firmware_sim.world import demo_world
from tests.gateway_support import connect_as

LOT = demo_world().lots[0].lot_id
TRUCK = "TRUCK-GXA-12345"
# The forgery: 160 in-range readings on the truck's topic, one a minute from the excursion on.
FORGED_READINGS = 160
CONNACK_REFUSED = (134, 135)  # MQTT 5: bad user name or password, not authorised


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
    return env | {"COLDCHAIN_HOME": str(home), **extra}


def coldchain(home: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coldchain.cli", *args],
        env=cli_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class Served:
    home: Path
    proc: subprocess.Popen[str]
    api_url: str
    broker_port: int
    api_key: str

    def database_url(self) -> str:
        url: str = json.loads((self.home / SERVERS_FILE).read_text())["database_url"]
        return url


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for_line(
    proc: subprocess.Popen[str], lines: queue.Queue[str], prefix: str, seen: list[str], timeout_s: float
) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no line {prefix!r} within {timeout_s} s:\n" + "".join(seen[-40:]))


@pytest.fixture(scope="module")
def served_demo() -> Iterator[Served]:
    """`coldchain demo --serve` on a data directory of this module's own, serving until the end."""
    root = Path(tempfile.mkdtemp(prefix="coldchain-test-"))
    root.chmod(0o755)  # the embedded PostgreSQL's own user must reach it when the tests run as root
    home = root / "home"
    api_port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "coldchain.cli", "demo", "--serve", "--speedup", str(DEMO_SPEEDUP)],
        env=cli_env(home, COLDCHAIN_API_PORT=str(api_port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=as_foreground_job,
    )
    try:
        lines = _lines(proc)
        seen: list[str] = []
        serving = _wait_for_line(proc, lines, "serving:", seen, 300)
        key_line = _wait_for_line(proc, lines, "operator API key", seen, 30)
        broker_port = int(serving.split("broker mqtt://127.0.0.1:", 1)[1].split()[0])
        yield Served(home, proc, f"http://127.0.0.1:{api_port}", broker_port, key_line.split()[-1])
    finally:
        stop(proc, signal.SIGINT)
        shutil.rmtree(root, ignore_errors=True)


def _connect(port: int, user: str | None, password: str | None) -> tuple[mqtt.Client, int]:
    """A client's CONNACK reason code (0: accepted)."""
    client, codes = connect_as(port, user, password)
    return client, codes[0]


def _close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def _forged_batches(start_ms: int) -> list[bytes]:
    """The truck's door-open hours re-told as 2 °C, in batches of ten readings per probe."""
    readings = [
        (start_ms + i * 60_000, probe, 2.0) for i in range(FORGED_READINGS) for probe in ("temp:1", "temp:2")
    ]
    return [
        encode.telemetry(TRUCK, 777, seq, readings[seq : seq + 20]) for seq in range(0, len(readings), 20)
    ]


def _trace(served: Served) -> dict[str, Any]:
    response = httpx.get(f"{served.api_url}/trace/{LOT}", headers={"X-API-Key": served.api_key}, timeout=30)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _evidence(conn: psycopg.Connection[Any]) -> tuple[object, ...]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM reading JOIN series s USING (series_id) WHERE s.device_id = %s),"
        " (SELECT count(*) FROM excursion), (SELECT count(*) FROM chain_break)",
        (TRUCK,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def _settle(conn: psycopg.Connection[Any], device: str, timeout_s: float = 60) -> None:
    """Until a message of `device` is stored or dead-lettered and both outboxes are drained."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM series WHERE device_id = %s)"
            " + (SELECT count(*) FROM dead_letter WHERE topic LIKE %s),"
            " (SELECT count(*) FROM ingest_batch) + (SELECT count(*) FROM verdict_outbox)",
            (device, f"cc/v1/dev/{device}/%"),
        ).fetchone()
        assert row is not None
        if row[0] and not row[1]:
            return
        time.sleep(0.2)
    raise AssertionError(f"the marker of {device} did not go through within {timeout_s} s")


def test_strangers_and_other_devices_cannot_unbreak_the_demo_lot(served_demo: Served) -> None:
    before = _trace(served_demo)
    assert before["verdict"] == "broken"
    start_ms = int(time.time() * 1000) - 5 * 3600 * 1000

    # A stranger: no login at all, or one the broker does not know.
    for user, password in ((None, None), ("stranger", "guess"), (TRUCK, "guess")):
        client, code = _connect(served_demo.broker_port, user, password)
        _close(client)
        assert code in CONNACK_REFUSED, (user, code)

    # A real device login, created while the demo serves (devices add attaches to its servers).
    device = f"forger-{uuid.uuid4().hex[:6]}"
    added = coldchain(served_demo.home, "devices", "add", device, "--kind", "temp_logger")
    assert added.returncode == 0, added.stderr
    assert "the running embedded broker has reloaded its logins" in added.stdout
    password = added.stdout.split("password ", 1)[1].split()[0]

    client, code = _connect(served_demo.broker_port, device, password)
    try:
        assert code == 0
        for payload in _forged_batches(start_ms):
            client.publish(encode.topic(TRUCK, "telemetry"), payload, qos=1).wait_for_publish(10)
        # Its own topic goes through: once it is stored, the forged batches before it were handled too.
        marker = encode.telemetry(device, 1, 0, [(start_ms, "temp", 3.0)])
        client.publish(encode.topic(device, "telemetry"), marker, qos=1).wait_for_publish(10)
    finally:
        _close(client)

    with psycopg.connect(served_demo.database_url(), autocommit=True) as conn:
        evidence = _evidence(conn)
        _settle(conn, device)
        assert _evidence(conn) == evidence, "the forged readings changed the truck's evidence"
        forged = conn.execute("SELECT count(*) FROM dead_letter WHERE payload LIKE '%%\"boot\":777%%'")
        assert forged.fetchone() == (0,), "the forged batches never reached the gateway"
    after = _trace(served_demo)
    assert after["verdict"] == "broken"
    truck = [leg for leg in after["custody"] if (leg["asset"] or {}).get("asset_id") == TRUCK]
    assert truck[0]["excursions"]
    assert truck[0]["chain_breaks"]


def test_the_stage_logins_are_kept_private_and_off_the_command_line(served_demo: Served) -> None:
    mqtt_dir = served_demo.home / "mqtt"
    logins = mqtt_dir / "stage-logins.json"
    assert logins.stat().st_mode & 0o777 == 0o600
    assert (mqtt_dir / "passwd").stat().st_mode & 0o077 == 0
    passwords = json.loads(logins.read_text())
    assert set(passwords) == {"gateway", "rules", "ledger", "simulator"}
    for found in servers_under(served_demo.home, ("mosquitto",)):
        assert not any(pw in found for pw in passwords.values())
        assert "mqtt/mosquitto.conf" in found
    conf = (mqtt_dir / "mosquitto.conf").read_text().splitlines()
    assert "allow_anonymous false" in conf
    assert f"listener {served_demo.broker_port} 127.0.0.1" in conf
    # Each stage's login works; a stage cannot write where only another may.
    client, code = _connect(served_demo.broker_port, "rules", passwords["rules"])
    _close(client)
    assert code == 0
