"""Tests: the trace API over a real PostgreSQL: health, trace, ledger verification, problem+json errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from ledger_support import UNBIND_JSON
from trace_support import LOT, SSCC, build_scenario

from rules.worker import RulesWorker
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.api.options import ApiOptions
from traceability.ledger import checkpoint
from traceability.worker import LedgerWorker

PROBLEM_KEYS = {"type", "title", "status", "instance"}


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    build_scenario(db_url)
    LedgerWorker(db_url).run_once()
    RulesWorker(db_url).run_once()  # the rules stage judges the lot the ledger put in custody
    app = create_app(db_url)

    @app.get("/probe/{n}")
    def probe(n: int) -> int:  # a route with a typed parameter, to provoke a validation error
        if n == 0:
            raise RuntimeError("boom")
        return n

    with psycopg.connect(db_url) as conn:
        key = create_key(conn, "admin", "test-admin")
    with TestClient(app, raise_server_exceptions=False, headers={"X-API-Key": key}) as test_client:
        yield test_client


def _is_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status
    return body


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True, "ledger_head_seq": 8, "stages": {}}


def test_trace_of_lot(client: TestClient) -> None:
    response = client.get(f"/trace/{LOT}")
    assert response.status_code == 200
    body = response.json()
    assert body["lot_id"] == LOT
    assert body["verdict"] == "broken"
    assert [leg["epc"] for leg in body["custody"]] == [SSCC, SSCC, SSCC]
    truck = body["custody"][1]
    assert truck["asset"]["asset_id"] == "TRUCK-GXA-12345"
    assert truck["temperature"]["max_c"] == 8.5
    assert len(truck["excursions"]) == 1


def test_unknown_lot_is_problem_json(client: TestClient) -> None:
    lot = "urn:epc:class:lgtin:6901234.012345.NOPE"
    body = _is_problem(client.get(f"/trace/{lot}"), 404)
    assert body["instance"] == f"/trace/{lot}"
    assert body["type"] == "https://ns.coldchain.example/problems/lot-not-found"
    assert lot in str(body["detail"])


def test_other_errors_are_problem_json(client: TestClient) -> None:
    _is_problem(client.get("/no/such/route"), 404)
    _is_problem(client.post("/health"), 405)
    body = _is_problem(client.get("/probe/abc"), 422)
    assert body["errors"]
    _is_problem(client.get("/probe/0"), 500)


def _verdict(client: TestClient) -> dict[str, object]:
    body: dict[str, object] = client.get("/ledger/verify").json()
    return {k: body[k] for k in ("ok", "events", "first_bad_seq")}


def test_ledger_verify(client: TestClient, db_url: str) -> None:
    assert _verdict(client) == {"ok": True, "events": 8, "first_bad_seq": None}
    with psycopg.connect(db_url) as conn:
        conn.execute("ALTER TABLE ledger_event DISABLE TRIGGER USER")
        # The served jsonb alone: a superuser must first free it from the chained bytes and drop the
        # constraint binding the step's column to it.
        conn.execute(UNBIND_JSON)
        conn.execute("ALTER TABLE ledger_event DROP CONSTRAINT ledger_event_event_is_jcs")
        conn.execute(
            "UPDATE ledger_event SET event = jsonb_set(event, '{bizStep}', '\"receiving\"') WHERE seq = 3"
        )
        conn.execute("ALTER TABLE ledger_event ENABLE TRIGGER USER")
    assert _verdict(client) == {"ok": False, "events": 8, "first_bad_seq": 3}


def test_ledger_verify_pins_the_key_file_and_checks_its_log(db_url: str, tmp_path: Path) -> None:
    """With the ledger's key file configured, /ledger/verify checks every checkpoint under its public
    half and the log beside it, never the key a row carries: a deleted checkpoint row hides nothing."""
    build_scenario(db_url)
    LedgerWorker(db_url).run_once()
    key_path = tmp_path / checkpoint.KEY_FILE
    worker = checkpoint.CheckpointWorker(db_url, key_path)
    assert worker.run_once() is not None
    app = create_app(db_url, options=ApiOptions(ledger_key=key_path))
    unpinned = create_app(db_url)
    with psycopg.connect(db_url) as conn:
        key = create_key(conn, "inspector", "test-inspector")
    with (
        TestClient(app, raise_server_exceptions=False, headers={"X-API-Key": key}) as pinned_client,
        TestClient(unpinned, raise_server_exceptions=False, headers={"X-API-Key": key}) as unpinned_client,
    ):
        body = pinned_client.get("/ledger/verify").json()
        assert (body["ok"], body["anchored"], body["pinned"], body["signed_seq"]) == (True, True, True, 8)
        # Without a key, the stored checkpoint cannot be verified: not ok, and it says why.
        body = unpinned_client.get("/ledger/verify").json()
        assert (body["ok"], body["anchored"], body["pinned"]) == (False, False, False)
        assert "no public key pinned" in body["problems"][0]
        with psycopg.connect(db_url) as conn:
            conn.execute("ALTER TABLE ledger_checkpoint DISABLE TRIGGER USER")
            conn.execute("DELETE FROM ledger_checkpoint")
        body = pinned_client.get("/ledger/verify").json()
        assert (body["ok"], body["anchored"], body["signed_seq"]) == (True, True, 8)  # the log vouches
        with psycopg.connect(db_url) as conn:
            conn.execute("ALTER TABLE ledger_event DISABLE TRIGGER USER")
            conn.execute("DELETE FROM ledger_event WHERE seq > 6")
        body = pinned_client.get("/ledger/verify").json()
        assert (body["ok"], body["anchored"], body["first_bad_seq"]) == (False, False, 7)
        assert body["problems"][-1].startswith("checkpoint log ")


def test_openapi_is_complete(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    trace = spec["paths"]["/trace/{trace_id}"]["get"]["responses"]
    assert trace["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Trace")
    assert "application/problem+json" in trace["404"]["content"]
    assert {"Trace", "CustodyLeg", "TemperatureSummary", "Problem"} <= spec["components"]["schemas"].keys()
