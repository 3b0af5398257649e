"""Tests: schemathesis (bounded examples) against the API's OpenAPI document finds no server error."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.traceability.test_trace_multimodal import build
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.api.options import ApiOptions
from traceability.api.pools import open_pools

API_KEY: dict[str, str] = {}


@pytest.fixture
def api_schema(db_url: str) -> Any:
    with psycopg.connect(db_url) as conn:
        build(conn)  # a multimodal chain, so that trace and query routes have data to walk
        API_KEY["key"] = create_key(conn, "admin", "schemathesis")
        conn.commit()
    app = create_app(db_url, options=ApiOptions(pool_size=4))
    # schemathesis calls the ASGI app without running its lifespan: open the pools here.
    pools = open_pools(app, db_url)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    pools.close()


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error(case: Any) -> None:
    response = case.call(headers={"X-API-Key": API_KEY["key"]})
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
