"""Tests: the named query and subscription routes (/epcis/queries...): create, list with paging, get, run
with paging, delete; refusals as problem+json (an unsupported parameter is a QueryParameterException);
roles; the parameters named queries take are those of GET /epcis/events; schedules fire when they say."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.traceability.test_subscriptions import (
    GTIN_X,
    GTIN_Y,
    append,
    as_key,
    client,
    keys,
    sgtin,
    shipped,
)
from traceability.api.problems import PROBLEM_MEDIA_TYPE
from traceability.api.routes.queries import QUERY_PARAMETER, SUBSCRIPTION_CONTROLS
from traceability.epcis import events_query
from traceability.subscriptions import store
from traceability.subscriptions.schedule import Schedule, ScheduleError

__all__ = ["client", "keys"]  # fixtures

RECEIVER = "https://port.example/epcis-callback"


def _problem(response: Any, status: int, type_: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if type_ is not None:
        assert body["type"] == type_
    return body


def test_named_queries_keep_every_parameter_of_the_event_query_but_paging_and_order() -> None:
    epc = ["urn:epc:id:sgtin:4012345.011111.1"]
    for name in events_query.LIST_PARAMS - {"EQ_action"}:
        assert store.validated({name: epc}) == {name: epc}
    assert store.validated({"EQ_action": ["ADD"]}) == {"EQ_action": ["ADD"]}
    assert store.validated({"GE_eventTime": "2026-01-01T00:00:00Z", "uom": "CEL", "LE_value_Temperature": 8})
    for name in store.NOT_STORED:
        with pytest.raises(events_query.QueryParameterError, match="a named query does not keep it"):
            store.validated({name: "1"})


def test_a_named_query_is_created_listed_read_run_and_deleted(
    db_url: str, keys: dict[str, str], client: TestClient
) -> None:
    me = as_key(keys["inspector"])
    query = {"eventType": ["ObjectEvent"], "EQ_bizStep": ["shipping"], "MATCH_epc": [sgtin(GTIN_X, 1)]}
    made = client.post("/epcis/queries", json={"name": "shipped-x", "query": query}, headers=me)
    assert made.status_code == 201, made.text
    assert made.headers["Location"] == "/epcis/queries/shipped-x"
    assert client.get("/epcis/queries/shipped-x", headers=me).json() == {"name": "shipped-x", "query": query}
    again = client.post("/epcis/queries", json={"name": "shipped-x", "query": {}}, headers=me)
    _problem(again, 409, "epcisException:ResourceAlreadyExistsException")
    for name in ("a", "b", "c"):
        assert client.post("/epcis/queries", json={"name": name, "query": {}}, headers=me).status_code == 201
    page = client.get("/epcis/queries", params={"perPage": 2}, headers=me)
    assert [q["name"] for q in page.json()] == ["a", "b"]
    rest = client.get(
        "/epcis/queries",
        params={"perPage": 2, "nextPageToken": page.headers["GS1-Next-Page-Token"]},
        headers=me,
    )
    assert [q["name"] for q in rest.json()] == ["c", "shipped-x"]
    assert "Link" not in rest.headers
    _problem(client.get("/epcis/queries", params={"nextPageToken": "bm90IG91cnM"}, headers=me), 400)

    ids = append(
        db_url,
        shipped(1, sgtin(GTIN_X, 1)),
        shipped(2, sgtin(GTIN_Y, 1)),
        shipped(3, sgtin(GTIN_X, 1), biz_step="receiving"),
        shipped(4, sgtin(GTIN_X, 1)),
        shipped(5, sgtin(GTIN_X, 1)),
    )
    first = client.get("/epcis/queries/shipped-x/events", params={"perPage": 2}, headers=me)
    assert first.status_code == 200
    events = first.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert [e["eventID"] for e in events] == [ids[0], ids[3]]
    token = first.headers["GS1-Next-Page-Token"]
    assert f"nextPageToken={token}" in first.headers["Link"]
    second = client.get(
        "/epcis/queries/shipped-x/events", params={"perPage": 2, "nextPageToken": token}, headers=me
    )
    assert [e["eventID"] for e in second.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]] == [
        ids[4]
    ]

    assert client.delete("/epcis/queries/shipped-x", headers=me).status_code == 204
    _problem(client.get("/epcis/queries/shipped-x", headers=me), 404, "epcisException:NoSuchNameException")
    _problem(client.get("/epcis/queries/shipped-x/events", headers=me), 404)
    _problem(client.delete("/epcis/queries/shipped-x", headers=me), 404)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"MATCH_nothing": ["x"]}, "'MATCH_nothing' is not supported"),
        ({"EQ_bizStep": "shipping", "orderBy": "eventTime"}, "orderBy is chosen when a query runs"),
        ({"eventType": [1]}, "eventType must be a list of strings"),
        ({"GE_eventTime": "yesterday"}, "GE_eventTime is not an ISO 8601 date-time"),
        ({"uom": "RANKINE"}, "uom must be one of"),
        ({"GE_value_Temperature": "warm"}, "must be a number"),
    ],
)
def test_a_query_the_event_query_cannot_run_is_refused(
    db_url: str, keys: dict[str, str], client: TestClient, query: dict[str, Any], words: str
) -> None:
    refused = client.post(
        "/epcis/queries", json={"name": "bad", "query": query}, headers=as_key(keys["inspector"])
    )
    assert words in _problem(refused, 400, QUERY_PARAMETER)["detail"]
    _problem(client.get("/epcis/queries/bad", headers=as_key(keys["inspector"])), 404)


def test_a_query_with_sensor_filters_and_times_is_kept_as_given(
    keys: dict[str, str], client: TestClient
) -> None:
    query = {
        "GE_eventTime": "2026-03-01T00:00:00Z",
        "uom": "CEL",
        "GE_maxValue_Temperature": 8,
        "EQ_bizStep": "shipping",
    }
    made = client.post(
        "/epcis/queries", json={"name": "warm", "query": query}, headers=as_key(keys["inspector"])
    )
    assert made.status_code == 201, made.text
    assert made.json()["query"] == {**query, "EQ_bizStep": ["shipping"]}
    run = client.get("/epcis/queries/warm/events", headers=as_key(keys["inspector"]))
    assert run.status_code == 200


def test_queries_and_subscriptions_need_the_read_role(keys: dict[str, str], client: TestClient) -> None:
    capture = as_key(keys["capture"])
    _problem(client.post("/epcis/queries", json={"name": "q", "query": {}}, headers=capture), 403)
    _problem(client.get("/epcis/queries", headers=capture), 403)
    _problem(client.get("/epcis/queries"), 401)
    assert (
        client.post(
            "/epcis/queries", json={"name": "q", "query": {}}, headers=as_key(keys["admin"])
        ).status_code
        == 201
    )
    sub = {"dest": RECEIVER, "stream": True}
    _problem(client.post("/epcis/queries/q/subscriptions", json=sub, headers=capture), 403)
    _problem(client.get("/epcis/queries/q/subscriptions", headers=capture), 403)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"dest": "ftp://port.example/in", "stream": True}, "dest must be an http or https URL"),
        ({"dest": "file:///etc/passwd", "stream": True}, "dest must be an http or https URL"),
        ({"dest": "https://", "stream": True}, "dest must be an http or https URL"),
        ({"dest": "http://port example/in", "stream": True}, "dest must be an http or https URL"),
        ({"dest": "http://[::1/in", "stream": True}, "dest must be an http or https URL"),
        ({"dest": "http://port.example:99999/in", "stream": True}, "dest must be an http or https URL"),
        ({"dest": "http://port.example:0/in", "stream": True}, "dest must be an http or https URL"),
        ({"dest": RECEIVER}, "either stream: true or a schedule"),
        ({"dest": RECEIVER, "stream": False}, "either stream: true or a schedule"),
        ({"dest": RECEIVER, "stream": True, "schedule": {"hour": "1"}}, "either stream: true or a schedule"),
        ({"dest": RECEIVER, "schedule": {}}, "schedule names no field"),
        ({"dest": RECEIVER, "schedule": {"minute": "60"}}, "not a value from 0 to 59"),
        ({"dest": RECEIVER, "schedule": {"dayOfMonth": "31", "month": "2"}}, "matches no time"),
    ],
)
def test_a_subscription_that_cannot_be_kept_is_refused(
    db_url: str, keys: dict[str, str], client: TestClient, body: dict[str, Any], words: str
) -> None:
    me = as_key(keys["inspector"])
    assert client.post("/epcis/queries", json={"name": "q", "query": {}}, headers=me).status_code == 201
    refused = client.post("/epcis/queries/q/subscriptions", json=body, headers=me)
    assert words in _problem(refused, 400, SUBSCRIPTION_CONTROLS)["detail"]
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM epcis_subscription").fetchone() == (0,)


def test_subscriptions_are_listed_read_and_deleted_without_their_token(
    keys: dict[str, str], client: TestClient
) -> None:
    me = as_key(keys["inspector"])
    _problem(
        client.post("/epcis/queries/none/subscriptions", json={"dest": RECEIVER, "stream": True}, headers=me),
        404,
    )
    assert client.post("/epcis/queries", json={"name": "q", "query": {}}, headers=me).status_code == 201
    stream = client.post(
        "/epcis/queries/q/subscriptions",
        json={"dest": RECEIVER, "stream": True, "signatureToken": "s3cret"},
        headers=me,
    ).json()
    daily = client.post(
        "/epcis/queries/q/subscriptions",
        json={
            "dest": RECEIVER,
            "schedule": {"hour": 1, "minute": "5"},
            "reportIfEmpty": True,
            "initialRecordTime": "2026-01-01T00:00:00Z",
        },
        headers=me,
    ).json()
    listed = client.get("/epcis/queries/q/subscriptions", headers=me).json()
    assert {s["subscriptionID"] for s in listed} == {stream["subscriptionID"], daily["subscriptionID"]}
    assert all("signatureToken" not in s and "s3cret" not in str(s) for s in listed)
    got = client.get(f"/epcis/queries/q/subscriptions/{daily['subscriptionID']}", headers=me).json()
    assert (got["schedule"], got["reportIfEmpty"], got["initialRecordTime"]) == (
        {"hour": "1", "minute": "5"},
        True,
        "2026-01-01T00:00:00.000Z",
    )
    assert stream["stream"] is True
    assert "schedule" not in stream
    missing = client.get("/epcis/queries/q/subscriptions/nope", headers=me)
    _problem(missing, 404, "epcisException:NoSuchResourceException")
    assert (
        client.delete(f"/epcis/queries/q/subscriptions/{stream['subscriptionID']}", headers=me).status_code
        == 204
    )
    assert [s["subscriptionID"] for s in client.get("/epcis/queries/q/subscriptions", headers=me).json()] == [
        daily["subscriptionID"]
    ]
    _problem(client.delete(f"/epcis/queries/q/subscriptions/{stream['subscriptionID']}", headers=me), 404)


# -- schedules ----------------------------------------------------------------------------------------------


def test_a_daily_schedule_fires_at_its_time_only() -> None:
    daily = Schedule.parse({"hour": "1", "minute": "5"})
    t = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    assert daily.next_after(t) == datetime(2026, 3, 1, 1, 5, 0, tzinfo=UTC)
    assert daily.next_after(datetime(2026, 3, 1, 1, 5, 0, tzinfo=UTC)) == datetime(
        2026, 3, 2, 1, 5, tzinfo=UTC
    )
    mondays = Schedule.parse({"dayOfWeek": "1", "hour": "[8-9]", "minute": "0"})
    assert mondays.next_after(t) == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # 2026-03-02 is a Monday
    assert mondays.next_after(datetime(2026, 3, 2, 8, 0, tzinfo=UTC)) == datetime(
        2026, 3, 2, 9, 0, tzinfo=UTC
    )
    with pytest.raises(ScheduleError, match="no field 'week'"):
        Schedule.parse({"week": "1"})
    with pytest.raises(ScheduleError, match="range"):
        Schedule.parse({"hour": "[5-2]"})


_FIELD = st.one_of(
    st.integers(0, 59).map(str),
    st.tuples(st.integers(0, 59), st.integers(0, 59)).map(lambda ab: f"[{min(ab)}-{max(ab)}]"),
    st.tuples(st.integers(0, 59), st.integers(1, 30)).map(lambda ab: f"{ab[0]}/{ab[1]}"),
    st.just("*"),
)


@settings(max_examples=150, deadline=None)
@given(
    second=st.lists(_FIELD, min_size=1, max_size=3).map(",".join),
    minute=st.one_of(st.none(), st.lists(_FIELD, min_size=1, max_size=2).map(",".join)),
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
)
def test_the_next_firing_is_the_first_matching_second_after(
    second: str, minute: str | None, start: datetime
) -> None:
    schedule = Schedule.parse({"second": second, "minute": minute})
    t = start.replace(tzinfo=UTC)
    fire = schedule.next_after(t)
    assert fire is not None
    assert fire > t
    assert schedule.matches(fire)
    probe = t.replace(microsecond=0) + timedelta(seconds=1)
    while probe < fire:  # within the hour: no second before it matches
        assert not schedule.matches(probe)
        probe += timedelta(seconds=1)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*sorted(store.PARAMETERS), "GE_value_Temperature", "LT_meanValue_Humidity"])
        | st.text(max_size=20),
        _JSON,
        max_size=4,
    )
)
def test_a_query_is_either_refused_with_a_reason_or_runnable(query: dict[str, Any]) -> None:
    try:
        kept = store.validated(query)
    except events_query.QueryParameterError:
        return
    assert set(kept) == set(query)
    store.event_query(kept, per_page=10)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["second", "minute", "hour", "dayOfMonth", "month", "dayOfWeek"]),
        st.text(max_size=12),
        max_size=3,
    )
)
@example({"second": "\u00b9"})  # a digit to str.isdigit(), not a number
@example({"minute": "1/\u0663"})
def test_a_schedule_is_either_refused_with_a_reason_or_fires(fields: dict[str, str]) -> None:
    try:
        schedule = Schedule.parse(fields)
    except ScheduleError:
        return
    fire = schedule.next_after(datetime(2026, 3, 1, tzinfo=UTC))
    assert fire is not None
    assert schedule.matches(fire)
