"""Tests: what a request holds of the API's connections, on a real uvicorn server and PostgreSQL: a slow
capture upload holds none while its body arrives, a request without a key takes none, and a body that
stalls is answered 408."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
import uvicorn
from fastapi.testclient import TestClient

from coldchain.embedded import free_port
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.api.options import ApiOptions
from traceability.api.problems import PROBLEM_BASE, EpcisException
from traceability.capture_worker import CaptureWorker
from traceability.epcis.builders import iso_ms

POOL = 2
START_TIMEOUT_S = 20.0
# Long enough that a slow machine never times a served request out; a request that waits for a
# connection held by an upload gets its 503 after this.
POOL_TIMEOUT_S = 5.0
WAIT_S = 30.0
CTX = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"]


@contextmanager
def _serve(options: ApiOptions, db_url: str) -> Iterator[tuple[uvicorn.Server, int]]:
    """The app under uvicorn on a free port in a thread; yields the server and its port."""
    port = free_port()
    config = uvicorn.Config(
        create_app(db_url, options=options), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _until(lambda: server.started or not thread.is_alive(), "uvicorn did not start")
    assert thread.is_alive(), "uvicorn stopped"
    try:
        yield server, port
    finally:
        server.should_exit = True
        thread.join()


def _until(done: Any, what: str, timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll ``done()`` until it is true, with a deadline."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _document(i: int) -> bytes:
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1, seconds=i)
    event = {
        "type": "ObjectEvent",
        "eventTime": iso_ms(t),
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "epcList": [f"urn:epc:id:sscc:6901234.000000{i:04d}"],
        "bizStep": "receiving",
        "readPoint": {"id": "urn:epc:id:sgln:6901234.00001.3"},
    }
    doc = {
        "@context": CTX,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": iso_ms(t),
        "epcisBody": {"eventList": [event]},
    }
    return msgspec.json.encode(doc)


def _start_upload(port: int, key: str, body: bytes, sent: int) -> socket.socket:
    """A capture request whose headers and first ``sent`` body bytes are on the wire; the rest waits."""
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    head = (
        "POST /epcis/capture HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {key}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    s.sendall(head + body[:sent])
    return s


def _status(s: socket.socket) -> int:
    """The status code of the response on ``s`` (read to its end)."""
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return int(data.split(b" ", 2)[1])


@pytest.fixture
def keys(db_url: str) -> tuple[str, str]:
    with psycopg.connect(db_url) as conn:
        return create_key(conn, "capture", "slow"), create_key(conn, "inspector", "reader")


def test_slow_uploads_as_many_as_the_pool_do_not_stop_other_requests(
    db_url: str, keys: tuple[str, str]
) -> None:
    """As many capture uploads as the pool has connections, each with half its body sent: the other
    requests are served (not 503 after the pool timeout), and the uploads are queued once their bodies
    are complete (and captured by the capture worker)."""
    capture_key, reader_key = keys
    options = ApiOptions(pool_size=POOL, pool_timeout_s=POOL_TIMEOUT_S)
    with _serve(options, db_url) as (server, port):
        bodies = [_document(i) for i in range(POOL)]
        uploads = [_start_upload(port, capture_key, b, len(b) // 2) for b in bodies]
        # Each upload's request has reached the app (uvicorn runs one task a request once its headers
        # are in): it would hold its connection from here if it took one before its body.
        _until(lambda: len(server.server_state.tasks) >= POOL, "the uploads did not reach the app")
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=WAIT_S) as client,
            ThreadPoolExecutor(2 * POOL) as pool,
        ):
            answers = list(
                pool.map(
                    lambda path: client.get(path, headers={"X-API-Key": reader_key}),
                    ["/ledger/checkpoint"] * (2 * POOL),
                )
            )
        for s, body in zip(uploads, bodies, strict=True):
            s.sendall(body[len(body) // 2 :])
        captured = [_status(s) for s in uploads]
    assert [a.status_code for a in answers] == [404] * (2 * POOL), [a.text for a in answers]
    assert captured == [202] * POOL
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM capture_job WHERE running").fetchone() == (POOL,)
    assert CaptureWorker(db_url).run_once() == POOL  # the ledger stage's worker finishes the queued jobs
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM ledger_event").fetchone()
    assert row == (POOL,)


def test_a_capture_body_that_stalls_is_408_and_holds_no_connection(
    db_url: str, keys: tuple[str, str]
) -> None:
    capture_key, reader_key = keys
    options = ApiOptions(pool_size=1, pool_timeout_s=POOL_TIMEOUT_S, body_timeout_s=1.0)
    with _serve(options, db_url) as (server, port):
        body = _document(0)
        stalled = _start_upload(port, capture_key, body, 10)
        _until(lambda: len(server.server_state.tasks) >= 1, "the upload did not reach the app")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=WAIT_S) as client:
            served = client.get("/ledger/checkpoint", headers={"X-API-Key": reader_key})
        data = b""
        while chunk := stalled.recv(65536):
            data += chunk
        stalled.close()
    assert served.status_code == 404
    head, _, payload = data.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"408"
    assert b"application/problem+json" in head
    assert msgspec.json.decode(payload)["type"] == PROBLEM_BASE + "body-timeout"
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM ledger_event").fetchone() == (0,)


@contextmanager
def _every_connection_held(client: TestClient) -> Iterator[None]:
    """Every connection of the request pool and every place at its gate taken, as by long requests."""
    pools = client.app.state.pools  # type: ignore[attr-defined]
    pools.work.wait()
    size = pools.work.max_size
    held = [pools.work.getconn() for _ in range(size)]
    portal = client.portal
    assert portal is not None
    for _ in range(size):
        portal.call(pools.work_gate.acquire)
    try:
        yield
    finally:
        for _ in range(size):
            portal.call(pools.work_gate.release)
        for conn in held:
            pools.work.putconn(conn)


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/trace/LOT-1", {}),
        ("GET", "/ledger/checkpoint", {"Authorization": "Bearer "}),
        ("POST", "/epcis/capture", {}),
        ("GET", "/epcis/events", {"X-API-Key": "not-a-key"}),
        ("POST", "/epcis/capture", {"X-API-Key": "not-a-key"}),
    ],
)
def test_a_request_without_a_key_is_401_without_taking_a_connection(
    db_url: str, method: str, path: str, headers: dict[str, str]
) -> None:
    """With every connection busy, a request without a key (or with one of no key's form) is still
    answered 401 at once: it never waits for a connection, so such requests cannot use up the pool."""
    options = ApiOptions(pool_size=1, pool_timeout_s=POOL_TIMEOUT_S)
    app = create_app(db_url, options=options)
    with TestClient(app, raise_server_exceptions=False) as client, _every_connection_held(client):
        response = client.request(method, path, headers=headers, content=b"{}")
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    expected = EpcisException.SECURITY if path.startswith("/epcis/") else PROBLEM_BASE + "unauthorized"
    assert response.json()["type"] == expected
