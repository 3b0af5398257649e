"""Tests: named queries and subscriptions under the party scope: a key sees the queries and subscriptions of
its own party (404 to another's, as if there were none), a named query's events are those the caller may
read, and a subscription delivers only what the subscribing key may read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from scope_support import LOT_A, LOT_B, PALLETS, World, received, seed_world

from tests.traceability.test_subscriptions import Receiver

# The webhook receiver fixture:
from tests.traceability.test_subscriptions import receiver as receiver
from traceability.api.app import create_app
from traceability.subscriptions.worker import SubscriptionWorker

QUERY = {"eventType": ["AggregationEvent", "ObjectEvent"]}


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> World:
    return seed_world(db_url, tmp_path)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.db_url), raise_server_exceptions=False) as c:
        yield c


def _as(world: World, who: str) -> dict[str, str]:
    return {"X-API-Key": world.keys[who]}


def _event_ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.text
    found = response.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    return {e["eventID"] for e in found}


def _lot_events(world: World, lot: str) -> set[str]:
    return {world.event_ids[lot], world.event_ids[received(lot)]}


def test_a_named_query_is_its_party_s_and_serves_what_the_caller_may_read(
    client: TestClient, world: World
) -> None:
    made = client.post(
        "/epcis/queries", json={"name": "mine", "query": QUERY}, headers=_as(world, "carrier_a")
    )
    assert made.status_code == 201, made.text
    # Its maker and a regulator see it; another carrier does not, in any form.
    assert client.get("/epcis/queries/mine", headers=_as(world, "carrier_a")).status_code == 200
    assert client.get("/epcis/queries/mine", headers=_as(world, "regulator")).status_code == 200
    for path in ("/epcis/queries/mine", "/epcis/queries/mine/events", "/epcis/queries/mine/subscriptions"):
        assert client.get(path, headers=_as(world, "carrier_b")).status_code == 404, path
    assert client.delete("/epcis/queries/mine", headers=_as(world, "carrier_b")).status_code == 404

    def listed(who: str) -> list[str]:
        response = client.get("/epcis/queries", headers=_as(world, who))
        assert response.status_code == 200, response.text
        return [q["name"] for q in response.json()]

    assert listed("carrier_a") == ["mine"]
    assert listed("carrier_b") == []
    assert listed("inspector") == ["mine"]
    # Its events: the caller's share of them, whoever defined the query.
    mine = client.get("/epcis/queries/mine/events", headers=_as(world, "carrier_a"))
    assert _event_ids(mine) == _lot_events(world, LOT_A)
    everything = _event_ids(client.get("/epcis/queries/mine/events", headers=_as(world, "regulator")))
    assert _lot_events(world, LOT_A) | _lot_events(world, LOT_B) <= everything


def test_a_subscription_delivers_only_what_its_key_may_read(
    client: TestClient, world: World, receiver: Receiver
) -> None:
    headers = _as(world, "carrier_a")
    assert (
        client.post("/epcis/queries", json={"name": "a", "query": QUERY}, headers=headers).status_code == 201
    )
    body = {"dest": receiver.url, "stream": True, "initialRecordTime": "2000-01-01T00:00:00Z"}
    sub = client.post("/epcis/queries/a/subscriptions", json=body, headers=headers)
    assert sub.status_code == 201, sub.text
    sub_id = sub.json()["subscriptionID"]
    path = f"/epcis/queries/a/subscriptions/{sub_id}"
    assert client.get(path, headers=headers).status_code == 200
    assert client.get(path, headers=_as(world, "carrier_b")).status_code == 404
    assert client.delete(path, headers=_as(world, "carrier_b")).status_code == 404

    SubscriptionWorker(world.db_url).run_once(datetime.now(UTC))
    assert len(receiver.requests) == 1
    assert set(receiver.requests[0].event_ids) == _lot_events(world, LOT_A)
    assert PALLETS[LOT_B] not in receiver.requests[0].body.decode()
