"""Tests: what the gateway tests share: gateways, publishers and exactly-once checks on real services."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from psycopg import sql
from pydantic import SecretStr

from gateway.config import BrokerAddress, GatewayConfig
from gateway.pipeline import Clock, Decoder, GatewayService
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


def telemetry_of(
    device: str,
    seq: int,
    values: list[float | None],
    *,
    t0_ms: int = T0_MS,
    boot: int = 1,
    ch: str = "temp:1",
) -> bytes:
    """A v1 telemetry message of `values` on channel `ch` from `seq`, one a minute from `t0_ms`."""
    readings = [{"t": t0_ms + i * 60_000, "ch": ch, "v": v} for i, v in enumerate(values)]
    return json.dumps({"v": 1, "device": device, "boot": boot, "seq": seq, "readings": readings}).encode()


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
    db_url: str,
    broker: BrokerAddress,
    *,
    decoder: Decoder | None = None,
    clock: Clock | None = None,
    **kw: Any,
) -> GatewayService:
    """A gateway of this test's own (its own client id, no shared subscription), not started; `clock` is
    its receive clock (default: the wall clock)."""
    kw.setdefault("client_id", f"gw-{uid()}")
    kw.setdefault("shared_group", None)
    return GatewayService(gateway_config(db_url, broker, **kw), decoder=decoder, clock=clock)


def connect_as(port: int, user: str | None, password: str | None) -> tuple[mqtt.Client, list[int]]:
    """An MQTT 5 client on the local broker at `port` logged in as `user` (None: anonymous), its loop
    running, once the broker answered: the client and its CONNACK reason codes (0: accepted)."""
    codes: list[int] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{user or 'anon'}-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    if user is not None:
        client.username_pw_set(user, password)
    client.on_connect = lambda c, ud, flags, rc, props: codes.append(rc.value)
    client.connect("127.0.0.1", port)
    client.loop_start()
    deadline = time.monotonic() + 10
    while not codes:
        assert time.monotonic() < deadline, "no CONNACK"
        time.sleep(0.02)
    return client, codes


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


# ---- exactly-once: counts of what a double could inflate ---------------------------------------------
# UNIQUE(series_id, time) with ON CONFLICT DO NOTHING makes count(*) = count(DISTINCT ...) of `reading`
# true whatever the gateway does, so these checks count what a fault could double instead: the readings
# each device's (boot, seq) accounting received, the outbox rows per transaction, and the spool marks.


# The tables whose new rows a transaction announces with one ingest_batch row of the kind.
_OUTBOX_KINDS = (("telemetry", "reading"), ("rfid", "rfid_read"), ("event", "device_event"))


def assert_one_outbox_row_per_transaction(conn: psycopg.Connection[Any]) -> None:
    """Each transaction that stored readings (RFID reads, events) wrote exactly one ingest_batch row of
    that kind. Rows of one transaction share its xmin (or its COPY savepoint's, for readings), so two
    outbox rows of one transaction show as a repeated xmin, and a missing or extra one as unequal counts.
    Only while nothing consumed the outbox (no rules worker)."""
    for kind, table in _OUTBOX_KINDS:
        query = sql.SQL("SELECT count(DISTINCT xmin::text) FROM {}").format(sql.Identifier(table))
        xacts = conn.execute(query).fetchone()
        rows = conn.execute(
            "SELECT count(*), count(DISTINCT xmin::text) FROM ingest_batch WHERE kind = %s", (kind,)
        ).fetchone()
        assert rows is not None
        assert xacts is not None
        assert rows[0] == rows[1], f"two {kind} ingest_batch rows from one transaction"
        assert rows[0] == xacts[0], f"one {kind} ingest_batch row per transaction that stored {table} rows"


def assert_exactly_once(db_url: str, sent: dict[str, int]) -> None:
    """Each device in `sent` (device -> readings it sent, seq 0 up in boot 1) has exactly those stored and
    received once; each transaction that stored readings wrote one ingest_batch row; each spool record
    was applied once."""
    with psycopg.connect(db_url) as conn:
        stored = dict(
            conn.execute(
                "SELECT s.device_id, count(*) FROM reading r JOIN series s USING (series_id)"
                " WHERE s.device_id = ANY(%s) GROUP BY s.device_id",
                (list(sent),),
            ).fetchall()
        )
        seq = {
            d: (int(n), int(r), int(k), int(m))
            for d, n, r, k, m in conn.execute(
                "SELECT device_id, next_seq, received, skipped, missing FROM device_seq"
                " WHERE device_id = ANY(%s)",
                (list(sent),),
            ).fetchall()
        }
        spool = conn.execute("SELECT segment, upto, records FROM gateway_spool_applied").fetchall()
        assert_one_outbox_row_per_transaction(conn)
    assert stored == sent, "readings stored per device"
    # received counts what the writers counted: a reading counted twice (a redelivery, a replayed spool
    # record) makes it larger than sent, where missing = max(next_seq - received - skipped, 0) shows 0.
    assert seq == {d: (n, n, 0, 0) for d, n in sent.items()}, (
        "device_seq (next_seq, received, skipped, missing)"
    )
    assert all(records == upto + 1 for _, upto, records in spool), f"spool records applied once: {spool}"


# ---- real processes: `python -m gateway` and a device-side publisher ---------------------------------


def telemetry(device: str, seq: int, n: int) -> bytes:
    """A v1 telemetry message of `n` readings from `seq` (boot 1), one a second from T0."""
    readings = [{"t": T0_MS + (seq + i) * 1000, "ch": "temp", "v": 2.0 + (i % 7) * 0.1} for i in range(n)]
    return json.dumps({"v": 1, "device": device, "boot": 1, "seq": seq, "readings": readings}).encode()


def database_url(conninfo: str) -> str:
    """A libpq conninfo ("host=... dbname=...") as the postgresql:// URL COLDCHAIN_DATABASE_URL takes."""
    if conninfo.startswith(("postgresql://", "postgres://")):
        return conninfo
    params = {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(conninfo).items() if v is not None}
    user = quote(params.pop("user", ""), safe="")
    password = params.pop("password", None)
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    dbname = quote(params.pop("dbname", ""), safe="")
    return f"postgresql://{auth}/{dbname}" + (f"?{urlencode(params, quote_via=quote)}" if params else "")


def gateway_env(db_url: str, broker: BrokerAddress, **settings: str) -> dict[str, str]:
    """The environment of a `python -m gateway` child: this process's, minus its COLDCHAIN_* settings,
    plus `settings` (gateway_client_id="x" is COLDCHAIN_GATEWAY_CLIENT_ID=x). Metrics are off unless set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
    user = f"{broker.username}@" if broker.username else ""
    env["COLDCHAIN_DATABASE_URL"] = database_url(db_url)
    env["COLDCHAIN_BROKER_URL"] = f"mqtt://{user}{broker.host}:{broker.port}"
    env["COLDCHAIN_GATEWAY_METRICS_PORT"] = "0"
    for k, v in settings.items():
        env[f"COLDCHAIN_{k.upper()}"] = v
    return env


class GatewayProc:
    """`python -m gateway` as a real child process, configured through its environment."""

    def __init__(self, db_url: str, broker: BrokerAddress, log: Path, **settings: str) -> None:
        self.env = gateway_env(db_url, broker, **settings)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self._expected = 0

    def _starts(self) -> int:
        return self.log.read_bytes().count(b"gateway: running") if self.log.exists() else 0

    def start(self) -> None:
        """Start it and return once it is subscribed (its log says so once more than before)."""
        self._expected = self._starts() + 1
        out = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway"], env=self.env, stdout=out, stderr=out)
        deadline = time.monotonic() + 30
        while self._starts() < self._expected:
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

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

    def __init__(self, broker: BrokerAddress, readings_per_message: int = 10) -> None:
        self.per_message = readings_per_message
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uid()}", protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.2, 1)  # type: ignore[arg-type]  # paho takes float seconds; typed int
        self.client.connect(broker.host, broker.port, clean_start=False)
        self.client.loop_start()

    def publish_stream(self, device: str, messages: int, first: int = 0, pause_s: float = 0.0) -> None:
        """Messages first .. first + messages - 1 of `device`, each acknowledged by the broker."""
        deadline = time.monotonic() + 30
        while not self.client.is_connected():
            assert time.monotonic() < deadline, "publisher not connected"
            time.sleep(0.05)
        infos = []
        for i in range(first, first + messages):
            payload = telemetry(device, i * self.per_message, self.per_message)
            infos.append(self.client.publish(f"cc/v1/dev/{device}/telemetry", payload, qos=1))
            if pause_s:
                time.sleep(pause_s)  # a paced stream, not synchronisation
        for info in infos:
            info.wait_for_publish(timeout=120)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(what: str, done: Any, timeout_s: float = 90.0, poll_s: float = 0.05) -> None:
    """Poll `done()` until it is true; fail naming `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll_s)


def readings_stored(db_url: str) -> int:
    """Rows in `reading` (-1 while the database cannot be reached)."""
    try:
        with psycopg.connect(db_url, connect_timeout=5) as conn:
            row = conn.execute("SELECT count(*) FROM reading").fetchone()
    except psycopg.OperationalError:
        return -1
    assert row is not None
    return int(row[0])
