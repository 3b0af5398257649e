"""Tests: PUT /locations/{id}/geofence: stored when valid, problem+json when not, operators and admins."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient

import registry.store as registry
from registry.models import Location, Party
from registry.shipments import geofences
from traceability.api.app import create_app
from traceability.api.auth import KEY_PREFIX, SHOWN_CHARS, create_key, hash_key

PORT = "urn:epc:id:sgln:6901234.00010.0"
URL = f"/locations/{quote(PORT, safe='')}/geofence"
CIRCLE = {"shape": "circle", "center_lat": 21.68, "center_lon": 108.6, "radius_m": 500}
RING = [[108.70, 21.80], [108.72, 21.80], [108.72, 21.82], [108.70, 21.82]]
PROBLEM = "application/problem+json"


def _party_key(conn: psycopg.Connection[Any], role: str, party: str) -> str:
    """A key of a role that belongs to a party (a carrier's, say)."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO api_key (name, role, key_hash, key_prefix, party_id) VALUES (%s, %s, %s, %s, %s)",
        (f"{role}-{party}", role, hash_key(secret), secret[:SHOWN_CHARS], party),
    )
    return secret


@pytest.fixture
def keys(db_url: str) -> dict[str, str]:
    with psycopg.connect(db_url) as conn:
        registry.add_parties(conn, [Party("CARRIER-A", "Carrier A", "carrier")])
        registry.add_locations(conn, [Location(PORT, "Qinzhou terminal", "port")])
        return {
            "operator": create_key(conn, "operator", "op"),
            "admin": create_key(conn, "admin", "adm"),
            "inspector": create_key(conn, "inspector", "insp"),
            "carrier": _party_key(conn, "carrier", "CARRIER-A"),
        }


@pytest.fixture
def client(db_url: str, keys: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(db_url), raise_server_exceptions=False) as test:
        yield test


def _fences(db_url: str) -> list[Any]:
    with psycopg.connect(db_url) as conn:
        return geofences(conn)


def test_operator_sets_a_circle_then_a_polygon(db_url: str, client: TestClient, keys: dict[str, str]) -> None:
    r = client.put(URL, json=CIRCLE, headers={"X-API-Key": keys["operator"]})
    assert r.status_code == 200, r.text
    assert r.json() == {**CIRCLE, "radius_m": 500.0, "polygon": None, "location_id": PORT}
    [fence] = _fences(db_url)
    assert (fence.shape, fence.center_lat, fence.center_lon, fence.radius_m) == (
        "circle",
        21.68,
        108.6,
        500.0,
    )
    # A GeoJSON ring (closed) replaces it; the closing vertex is dropped.
    r = client.put(
        URL, json={"shape": "polygon", "polygon": [*RING, RING[0]]}, headers={"X-API-Key": keys["admin"]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["polygon"] == RING
    [fence] = _fences(db_url)
    assert fence.shape == "polygon"
    assert fence.polygon == tuple(tuple(p) for p in RING)
    assert fence.radius_m is None


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"shape": "polygon", "polygon": [[0, 0], [2, 2], [2, 0], [0, 1]]}, "cross"),
        ({"shape": "polygon", "polygon": [[0, 0], [1, 0], [2, 0]]}, "no area"),
        ({"shape": "circle", "center_lat": 21.68, "radius_m": 500}, "needs center_lat"),
        ({"shape": "polygon", "polygon": RING, "radius_m": 10}, "not a centre"),
    ],
)
def test_no_fence_is_a_problem_and_nothing_is_stored(
    db_url: str, client: TestClient, keys: dict[str, str], body: dict[str, Any], detail: str
) -> None:
    r = client.put(URL, json=body, headers={"X-API-Key": keys["operator"]})
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["type"].endswith("geofence-invalid")
    assert detail in r.json()["detail"]
    assert _fences(db_url) == []


@pytest.mark.parametrize(
    "body",
    [
        {"shape": "circle", "center_lat": 91, "center_lon": 108.6, "radius_m": 500},
        {"shape": "circle", "center_lat": 21.6, "center_lon": 108.6, "radius_m": -1},
        {"shape": "square"},
        {**CIRCLE, "colour": "red"},
        {"shape": "polygon", "polygon": [[0, 0], [1, 0]]},
    ],
)
def test_a_body_out_of_its_schema_is_a_problem(
    db_url: str, client: TestClient, keys: dict[str, str], body: dict[str, Any]
) -> None:
    r = client.put(URL, json=body, headers={"X-API-Key": keys["operator"]})
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    assert _fences(db_url) == []


def test_unknown_location_is_404(client: TestClient, keys: dict[str, str]) -> None:
    url = f"/locations/{quote('urn:epc:id:sgln:6901234.99999.0', safe='')}/geofence"
    r = client.put(url, json=CIRCLE, headers={"X-API-Key": keys["operator"]})
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["type"].endswith("location-not-found")


@pytest.mark.parametrize("role", ["inspector", "carrier"])
def test_only_operators_and_admins_write(
    db_url: str, client: TestClient, keys: dict[str, str], role: str
) -> None:
    r = client.put(URL, json=CIRCLE, headers={"X-API-Key": keys[role]})
    assert r.status_code == 403
    assert r.headers["content-type"] == PROBLEM
    assert _fences(db_url) == []


def test_without_a_key_is_401(db_url: str, client: TestClient) -> None:
    r = client.put(URL, json=CIRCLE)
    assert r.status_code == 401
    assert _fences(db_url) == []
