"""Tests: the API under load on a real uvicorn server and PostgreSQL (one connection a request, every
request audited, no 5xx), and /health: each stage's liveness, and an answer while every connection is busy."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient
from trace_support import LOT, build_scenario

from coldchain.embedded import free_port
from traceability.api.auth import create_key
from traceability.ledger import checkpoint
from traceability.worker import LedgerWorker

REQUESTS = 500
IN_FLIGHT = 32
START_TIMEOUT_S = 20.0


@contextmanager
def _serve(app: FastAPI) -> Iterator[str]:
    """Run the app under uvicorn on a free port in a thread; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:  # polled with a deadline: the server says when it listens
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


@pytest.fixture
def chain_db(db_url: str) -> tuple[str, str]:
    """A ledger with the trace scenario and a signed checkpoint, and an inspector key."""
    build_scenario(db_url)
    LedgerWorker(db_url).run_once()
    with psycopg.connect(db_url) as conn:
        checkpoint.sign_head(conn, Ed25519PrivateKey.generate())
        key = create_key(conn, "inspector", "load-test")
    return db_url, key


def test_500_requests_32_in_flight_no_5xx_every_one_audited(chain_db: tuple[str, str]) -> None:
    """At 32 requests in flight (four times the default pool), every request is answered without a 5xx
    and has its audit row: the key lookup, the work and the audit share the request's one connection."""
    from traceability.api.app import create_app

    db_url, key = chain_db
    paths = ["/ledger/checkpoint", f"/trace/{LOT}", "/epcis/events?perPage=5", "/ledger/checkpoint"]
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    with (
        _serve(create_app(db_url)) as base,
        httpx.Client(base_url=base, headers={"X-API-Key": key}, limits=limits, timeout=60) as client,
    ):

        def get(i: int) -> int:
            return client.get(paths[i % len(paths)]).status_code

        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            statuses = Counter(pool.map(get, range(REQUESTS)))
    assert statuses == Counter({200: REQUESTS}), statuses
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT count(*), count(*) FILTER (WHERE status = 200) FROM audit_log").fetchone()
    assert rows == (REQUESTS, REQUESTS)


def _client(db_url: str, **kwargs: Any) -> TestClient:
    from traceability.api.app import create_app

    return TestClient(create_app(db_url, **kwargs), raise_server_exceptions=False)


def test_health_reports_each_stage_and_503_names_the_dead(db_url: str) -> None:
    alive = {"gateway": True, "rules": True, "ledger": True}
    with _client(db_url, liveness=lambda: dict(alive)) as client:
        ok = client.get("/health")
        assert ok.status_code == 200
        assert ok.json() == {"status": "ok", "database": True, "ledger_head_seq": None, "stages": alive}
        alive["rules"] = False
        dead = client.get("/health")
    assert dead.status_code == 503
    assert dead.headers["content-type"].startswith("application/problem+json")
    body = dead.json()
    assert body["dead"] == ["rules"]
    assert body["stages"] == {"gateway": True, "rules": False, "ledger": True}
    assert "rules" in body["detail"]


def test_health_whose_liveness_report_fails_is_503_without_its_text(db_url: str) -> None:
    def broken() -> dict[str, bool]:
        raise RuntimeError("secret internals")

    with _client(db_url, liveness=broken) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert "secret internals" not in response.text


def test_health_answers_while_every_request_connection_is_busy(db_url: str) -> None:
    """Every connection of the request pool and every place at its gate held (as by long requests):
    /health still answers at once from its own connection; a request waits its pool timeout at the gate
    and gets the busy 503 problem, not a 500."""
    from traceability.api.options import ApiOptions
    from traceability.api.problems import PROBLEM_BASE

    with psycopg.connect(db_url) as conn:
        key = create_key(conn, "inspector", "busy")
    options = ApiOptions(pool_size=2, pool_timeout_s=0.5)
    with _client(db_url, options=options) as client:
        pools = client.app.state.pools  # type: ignore[attr-defined]
        portal = client.portal
        assert portal is not None
        pools.work.wait()
        held = [pools.work.getconn(), pools.work.getconn()]
        for _ in held:
            portal.call(pools.work_gate.acquire)
        try:
            health = client.get("/health")
            busy = client.get("/ledger/checkpoint", headers={"X-API-Key": key})
        finally:
            for conn in held:
                portal.call(pools.work_gate.release)
                pools.work.putconn(conn)
        after = client.get("/ledger/checkpoint", headers={"X-API-Key": key})
    assert health.status_code == 200
    assert busy.status_code == 503
    assert busy.headers["content-type"].startswith("application/problem+json")
    assert busy.json()["type"] == PROBLEM_BASE + "busy"
    assert after.status_code == 404  # no checkpoint signed: served again once connections are free
