"""Tests: the API's GET /metrics and its request metrics, labelled by route template, never by raw path."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from traceability.api.app import create_app
from traceability.api.auth import create_key

LOT = "urn:epc:class:lgtin:6901234.012345.NO-SUCH-LOT"


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(db_url), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def key(db_url: str) -> str:
    with psycopg.connect(db_url) as conn:
        made = create_key(conn, "inspector", "metrics test")
        conn.commit()
    return made


def _samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_requests_are_counted_by_route_template(client: TestClient, key: str) -> None:
    for _ in range(2):
        assert client.get(f"/trace/{quote(LOT, safe='')}", headers={"X-API-Key": key}).status_code == 404
    assert client.get("/health").status_code == 200
    assert client.get("/no/such/path").status_code == 404
    samples = _samples(client)
    requests = {
        (labels["method"], labels["route"], labels["status"]): v
        for (name, raw), v in samples.items()
        if name == "coldchain_api_requests_total"
        for labels in [dict(raw)]
    }
    assert requests == {
        ("GET", "/trace/{trace_id}", "404"): 2,
        ("GET", "/health", "200"): 1,
        ("GET", "unmatched", "404"): 1,
    }
    count = (
        "coldchain_api_request_seconds_count",
        frozenset({("method", "GET"), ("route", "/trace/{trace_id}")}),
    )
    assert samples[count] == 2
    routes = {dict(raw).get("route") for (name, raw) in samples if name.startswith("coldchain_api_")}
    assert routes == {"/trace/{trace_id}", "/health", "unmatched"}, "no raw path is a label"


def test_metrics_need_no_key_and_count_themselves(client: TestClient) -> None:
    client.get("/metrics")
    samples = _samples(client)
    served = (
        "coldchain_api_requests_total",
        frozenset({("method", "GET"), ("route", "/metrics"), ("status", "200")}),
    )
    assert samples[served] == 1
    names = {name for name, _ in samples}
    assert {"coldchain_api_requests_total", "coldchain_api_request_seconds_bucket"} <= names


def test_unknown_methods_are_one_label(client: TestClient) -> None:
    for method in ("BREW", "WHEN"):
        client.request(method, "/health")
    samples = _samples(client)
    counted = {
        dict(raw)["method"]: v for (name, raw), v in samples.items() if name == "coldchain_api_requests_total"
    }
    assert counted == {"other": 2}
