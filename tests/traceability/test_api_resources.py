"""Tests: the GS1 REST bindings' resources under /epcis end to end (one event, the events of an EPC, the known
business steps, dispositions, event types, locations, read points and EPCs with the events of each), the
SimpleEventQuery parameters they take, the GS1 version headers, OPTIONS, and EPCIS exception types."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers

from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.api.gs1_headers import refusal
from traceability.api.problems import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, EpcisException, epcis_type
from traceability.epcis import builders, events_query
from traceability.epcis.digital_link import epc_forms, epc_to_digital_link
from traceability.epcis.validation import vocabulary
from traceability.ledger import chain

T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)
SGTIN_A = "urn:epc:id:sgtin:0614141.107346.2018"
SGTIN_B = "urn:epc:id:sgtin:0614141.107346.2019"
SGTIN_D = "urn:epc:id:sgtin:0614141.107346.3000"
SSCC_P = "urn:epc:id:sscc:0614141.1234567890"
LGTIN_C = "urn:epc:class:lgtin:4012345.012345.998877"
LOC = "urn:epc:id:sgln:0614141.00777.0"
RP1 = "urn:epc:id:sgln:0614141.00777.1"
RP2 = "urn:epc:id:sgln:0614141.00777.2"
CURING = builders.CC_NAMESPACE + "bizstep/curing"


def _events() -> list[dict[str, Any]]:
    """Five events naming their vocabulary values as bare CBV names or Web URIs (the schema refuses their
    URNs), and locations and EPCs as URNs or GS1 Digital Link URIs."""
    e1 = builders.object_event(
        event_time=T0,
        epcs=[SGTIN_A],
        action="ADD",
        biz_step="commissioning",
        disposition="active",
        read_point=RP1,
        biz_location=LOC,
    )
    e2 = builders.object_event(
        event_time=T0 + timedelta(hours=1),
        epcs=[SGTIN_A, str(epc_to_digital_link(SGTIN_B))],
        biz_step="https://ref.gs1.org/cbv/BizStep-shipping",
        disposition="https://ref.gs1.org/cbv/Disp-in_transit",
        read_point=RP2,
    )
    e3 = builders.aggregation_event(
        event_time=T0 + timedelta(hours=2),
        action="ADD",
        parent_id=SSCC_P,
        child_epcs=[SGTIN_B],
        biz_step="packing",
        disposition="in_progress",
    )
    e4 = builders.object_event(
        event_time=T0 + timedelta(hours=3),
        quantities=[builders.quantity(LGTIN_C, 5.0, "KGM")],
        biz_step="receiving",
        disposition="in_transit",
        biz_location=str(epc_to_digital_link(LOC)),
    )
    e5 = {
        "@context": builders.CONTEXT,
        "type": "TransformationEvent",
        "eventTime": builders.iso_ms(T0 + timedelta(hours=4)),
        "eventTimeZoneOffset": "+00:00",
        "inputEPCList": [SGTIN_A],
        "outputEPCList": [SGTIN_D],
        "bizStep": CURING,
    }
    return [builders.with_event_id(e) for e in (e1, e2, e3, e4, e5)]


@pytest.fixture
def ledger(db_url: str) -> dict[str, Any]:
    """The five events in the ledger and a key per role."""
    events = _events()
    with psycopg.connect(db_url) as conn:
        chain.append_many(conn, events)
        keys = {role: create_key(conn, role, f"{role} key") for role in ("inspector", "capture")}
        conn.commit()
    return {"ids": [e["eventID"] for e in events], "keys": keys}


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(db_url), raise_server_exceptions=False) as c:
        yield c


def _get(client: TestClient, ledger: dict[str, Any], path: str, **params: Any) -> Any:
    return client.get(path, params=params, headers={"X-API-Key": ledger["keys"]["inspector"]})


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "EPCISQueryDocument"
    return [e["eventID"] for e in body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]]


def _which(ledger: dict[str, Any], response: Any) -> list[int]:
    """The events of a response as their numbers (1 to 5)."""
    return [ledger["ids"].index(i) + 1 for i in _ids(response)]


def _problem(response: Any, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert (body["status"], body["type"]) == (status, type_)
    return body


# -- GET /epcis/events/{eventID} -------------------------------------------------------------------------


def test_one_event_with_its_error_declaration_or_404(
    db_url: str, ledger: dict[str, Any], client: TestClient
) -> None:
    first = ledger["ids"][0]
    with psycopg.connect(db_url) as conn:
        chain.declare_error(conn, first, declared_at=T0 + timedelta(days=1))
    served = _get(client, ledger, "/epcis/events/" + quote(first, safe=""))
    events = served.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert [(e["eventID"], "errorDeclaration" in e) for e in events] == [(first, False), (first, True)]
    assert _which(ledger, _get(client, ledger, "/epcis/events/" + quote(ledger["ids"][3], safe=""))) == [4]
    missing = _problem(
        _get(client, ledger, "/epcis/events/" + quote("ni:///sha-256;00?ver=CBV2.0", safe="")),
        404,
        EpcisException.NO_SUCH_RESOURCE,
    )
    assert missing["detail"] == "no event with this eventID"
    _problem(client.get("/epcis/events/x"), 401, EpcisException.SECURITY)
    capture_key = {"X-API-Key": ledger["keys"]["capture"]}
    _problem(client.get("/epcis/events/x", headers=capture_key), 403, EpcisException.SECURITY)


# -- GET /epcis/epcs/{epc}/events ------------------------------------------------------------------------


def test_the_events_of_an_epc_in_any_role_and_any_form(ledger: dict[str, Any], client: TestClient) -> None:
    def of(epc: str, **params: Any) -> list[int]:
        return _which(ledger, _get(client, ledger, f"/epcis/epcs/{quote(epc, safe='')}/events", **params))

    assert of(SGTIN_A) == [1, 2, 5]  # epcList twice, inputEPCList
    assert of(str(epc_to_digital_link(SGTIN_A))) == [1, 2, 5]
    assert of("https://example.org/01/10614141073464/21/2018") == [1, 2, 5]  # a link on another host
    assert of(SGTIN_B) == [2, 3]  # given as a link in E2, as a URN (childEPCs) in E3
    assert of(str(epc_to_digital_link(SSCC_P))) == [3]  # parentID
    assert of(SGTIN_D) == [5]  # outputEPCList
    assert of(LGTIN_C) == of(str(epc_to_digital_link(LGTIN_C))) == [4]  # quantityList
    assert of("urn:epc:id:sgtin:0614141.107346.9999") == []
    assert of(SGTIN_A, EQ_bizStep="shipping") == [2]
    key = {"X-API-Key": ledger["keys"]["inspector"]}
    path = f"/epcis/epcs/{quote(str(epc_to_digital_link(SGTIN_A)), safe='')}/events"
    query = "?perPage=2&eventType=ObjectEvent&eventType=TransformationEvent"
    first = client.get(path + query, headers=key)
    assert _which(ledger, first) == [1, 2]
    following = first.headers["Link"]
    assert following.startswith(f"<{path}{query}&nextPageToken=")  # still encoded, every value kept
    assert _which(ledger, client.get(following[1 : following.index(">")], headers=key)) == [5]
    assert of(SGTIN_A, eventType="ObjectEvent|TransformationEvent", EQ_action="ADD") == [1]
    unknown = _get(client, ledger, f"/epcis/epcs/{SGTIN_A}/events", EQ_colour="red")
    assert "EQ_colour" in _problem(unknown, 400, EpcisException.QUERY_PARAMETER)["detail"]


# -- the known values ------------------------------------------------------------------------------------


def _all_pages(client: TestClient, ledger: dict[str, Any], path: str, per_page: int) -> list[list[str]]:
    pages = []
    response = _get(client, ledger, path, perPage=per_page)
    for _ in range(50):  # more pages than any list here has: a token that does not advance fails
        assert response.status_code == 200, response.text
        assert response.json()["type"] == "Collection"
        pages.append(response.json()["member"])
        link = response.headers.get("Link")
        if link is None:
            return pages
        assert link.endswith('>; rel="next"')
        response = client.get(link[1 : link.index(">")], headers={"X-API-Key": ledger["keys"]["inspector"]})
    raise AssertionError(f"{path}: the pages do not end")


def _flat(pages: list[list[str]]) -> list[str]:
    return [member for page in pages for member in page]


def test_known_values_are_the_standards_and_the_ledgers_paged(
    ledger: dict[str, Any], client: TestClient
) -> None:
    steps = _all_pages(client, ledger, "/epcis/bizSteps", per_page=10)
    assert [len(p) for p in steps] == [10, 10, 10, 10, 2]
    assert _flat(steps) == sorted({*vocabulary("bizStep"), CURING})  # CBV names once, the custom one
    dispositions = _flat(_all_pages(client, ledger, "/epcis/dispositions", per_page=30))
    assert dispositions == sorted(vocabulary("disposition"))  # Web URIs and URNs named as bare names
    assert _flat(_all_pages(client, ledger, "/epcis/eventTypes", per_page=30)) == sorted(
        ["ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent"]
    )
    assert _all_pages(client, ledger, "/epcis/readPoints", per_page=1) == [[RP1], [RP2]]
    assert _flat(_all_pages(client, ledger, "/epcis/bizLocations", per_page=5)) == sorted(
        [LOC, str(epc_to_digital_link(LOC))]
    )
    epcs = _flat(_all_pages(client, ledger, "/epcis/epcs", per_page=2))
    assert set(epcs) == {SGTIN_A, str(epc_to_digital_link(SGTIN_B)), SGTIN_B, SGTIN_D, SSCC_P, LGTIN_C}
    assert len(epcs) == 6
    bad = _get(client, ledger, "/epcis/bizSteps", nextPageToken="bm90LW91cnM")
    _problem(bad, 400, EpcisException.QUERY_PARAMETER)
    sub = _get(client, ledger, "/epcis/bizSteps/shipping")
    assert sub.json() == {"@context": builders.EPCIS_CONTEXT, "type": "Collection", "member": ["events"]}


def test_the_events_of_each_value_in_every_form(ledger: dict[str, Any], client: TestClient) -> None:
    def of(resource: str, value: str, **params: Any) -> list[int]:
        path = f"/epcis/{resource}/{quote(value, safe='')}/events"
        return _which(ledger, _get(client, ledger, path, **params))

    for step in (
        "shipping",
        "https://ref.gs1.org/cbv/BizStep-shipping",
        "urn:epcglobal:cbv:bizstep:shipping",
    ):
        assert of("bizSteps", step) == [2], step
    assert of("bizSteps", "https://ref.gs1.org/cbv/BizStep-packing") == [3]  # stored as a bare name
    assert of("bizSteps", CURING) == [5]
    for disposition in (
        "in_transit",
        "https://ref.gs1.org/cbv/Disp-in_transit",
        "urn:epcglobal:cbv:disp:in_transit",
    ):
        assert of("dispositions", disposition) == [2, 4], disposition
    assert of("dispositions", "in_progress") == [3]
    assert of("bizLocations", LOC) == of("bizLocations", str(epc_to_digital_link(LOC))) == [1, 4]
    assert of("readPoints", RP1) == [1]
    assert of("eventTypes", "AggregationEvent") == [3]
    assert of("eventTypes", "ObjectEvent", EQ_disposition="in_transit") == [2, 4]
    assert of("eventTypes", "TransformationEvent", MATCH_inputEPC=SGTIN_A) == [5]
    assert of("eventTypes", "TransformationEvent", MATCH_outputEPC=SGTIN_A) == []
    assert of("eventTypes", "ObjectEvent", MATCH_anyEPC=str(epc_to_digital_link(SGTIN_B))) == [2]
    assert of("eventTypes", "ObjectEvent", MATCH_epcClass=LGTIN_C) == [4]
    assert of("bizSteps", "shipping", EQ_eventID=ledger["ids"][1]) == [2]
    twice = _get(client, ledger, "/epcis/bizSteps/shipping/events", EQ_bizStep="receiving")
    assert "EQ_bizStep" in _problem(twice, 400, EpcisException.QUERY_PARAMETER)["detail"]


# -- SimpleEventQuery parameters -------------------------------------------------------------------------


def test_order_count_limit_and_max_event_count(ledger: dict[str, Any], client: TestClient) -> None:
    path = "/epcis/eventTypes/ObjectEvent/events"
    newest = {"orderBy": "eventTime", "orderDirection": "DESC", "eventCountLimit": 2, "perPage": 1}
    first = _get(client, ledger, path, **newest)
    assert _which(ledger, first) == [4]
    token = first.headers["GS1-Next-Page-Token"]
    second = _get(client, ledger, path, **newest, nextPageToken=token)
    assert _which(ledger, second) == [2]
    assert "Link" not in second.headers  # eventCountLimit spans the pages: two events in all
    oldest = _get(client, ledger, path, orderBy="eventTime", orderDirection="ASC", perPage=2)
    assert _which(ledger, oldest) == [1, 2]
    assert _which(
        ledger,
        _get(
            client,
            ledger,
            path,
            orderBy="eventTime",
            orderDirection="ASC",
            perPage=2,
            nextPageToken=oldest.headers["GS1-Next-Page-Token"],
        ),
    ) == [4]
    too_many = _get(client, ledger, path, maxEventCount=2)
    assert "maxEventCount=2" in _problem(too_many, 413, EpcisException.QUERY_TOO_LARGE)["detail"]
    assert _which(ledger, _get(client, ledger, path, maxEventCount=3)) == [1, 2, 4]
    for params in (
        {"eventCountLimit": 1},  # needs orderBy
        {"orderBy": "eventTime", "eventCountLimit": 1, "maxEventCount": 1},
        {"orderBy": "quantity"},
        {"orderBy": "eventTime", "orderDirection": "UP"},
        {"EQ_action": "OBSERVE|REMOVE"},
        {"GE_recordTime": "2026-03-01T08:00:00"},  # no time zone
        {"nextPageToken": token},  # an ordered query's token on an unordered query
        {"GE_maxValue_Temperature": "x"},
        {"uom": "XYZ", "GE_maxValue_Temperature": "1"},
    ):
        _problem(_get(client, ledger, path, **params), 400, EpcisException.QUERY_PARAMETER)
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert _which(ledger, _get(client, ledger, path, GE_recordTime=future)) == []
    assert _which(ledger, _get(client, ledger, path, LT_recordTime=future)) == [1, 2, 4]


# -- headers, OPTIONS, tokens, exception types -----------------------------------------------------------

GS1 = {
    "GS1-EPCIS-Version": "2.0.0",
    "GS1-CBV-Version": "2.0.0",
    "GS1-Extensions": f"cc={builders.CC_NAMESPACE}",
}


def test_gs1_headers_on_every_epcis_response_and_versions_refused(
    ledger: dict[str, Any], client: TestClient
) -> None:
    for response in (
        _get(client, ledger, "/epcis/bizSteps"),
        _get(client, ledger, "/epcis/events"),
        client.get("/epcis/events/x"),  # 401
        _get(client, ledger, "/epcis/events/x"),  # 404
    ):
        assert {k: response.headers.get(k) for k in GS1} == GS1, response.url
    assert "GS1-EPCIS-Version" not in client.get("/health").headers
    key = {"X-API-Key": ledger["keys"]["inspector"]}
    for asked in (
        {"GS1-EPCIS-Min": "2.1"},
        {"GS1-EPCIS-Max": "1.2.0"},
        {"GS1-CBV-Version": "1.2"},
        {"GS1-CBV-Min": "2.0.1"},
        {"GS1-EPCIS-Version": "two"},
    ):
        refused = client.get("/epcis/bizSteps", headers=key | asked)
        _problem(refused, 406, EpcisException.NOT_ACCEPTABLE)
        assert (refused.headers["GS1-EPCIS-Min"], refused.headers["GS1-EPCIS-Max"]) == ("2.0.0", "2.0.0")
        assert refused.headers["GS1-EPCIS-Version"] == "2.0.0"
    accepted = {
        "GS1-EPCIS-Min": "1.2",
        "GS1-EPCIS-Max": "2.0",
        "GS1-CBV-Version": "2.0",
        "GS1-EPCIS-Version": "2",
    }
    assert client.get("/epcis/bizSteps", headers=key | accepted).status_code == 200


def test_options_discovers_the_methods_and_versions(client: TestClient) -> None:
    listed = client.options("/epcis/bizSteps")
    assert listed.status_code == 204
    assert listed.headers["Allow"] == "OPTIONS, GET"
    assert (listed.headers["GS1-EPCIS-Min"], listed.headers["GS1-CBV-Max"]) == ("2.0.0", "2.0.0")
    assert listed.headers["GS1-EPC-Format"] == "Never_Translates"
    assert client.options("/epcis/capture").headers["Allow"] == "OPTIONS, POST"
    assert client.options("/epcis/epcs/urn:epc:id:sscc:0614141.1234567890/events").status_code == 204
    assert client.options("/epcis/nextPageToken/abc").headers["Allow"] == "OPTIONS, DELETE"
    _problem(client.options("/epcis/nothing-here"), 404, EpcisException.NO_SUCH_RESOURCE)


def test_a_next_page_token_is_released_or_unknown(ledger: dict[str, Any], client: TestClient) -> None:
    key = {"X-API-Key": ledger["keys"]["inspector"]}
    page = _get(client, ledger, "/epcis/bizSteps", perPage=1)
    assert (
        client.delete(f"/epcis/nextPageToken/{page.headers['GS1-Next-Page-Token']}", headers=key).status_code
        == 204
    )
    events = _get(client, ledger, "/epcis/events", perPage=1)
    assert (
        client.delete(
            f"/epcis/nextPageToken/{events.headers['GS1-Next-Page-Token']}", headers=key
        ).status_code
        == 204
    )
    _problem(
        client.delete("/epcis/nextPageToken/bm90LW91cnM", headers=key), 404, EpcisException.NO_SUCH_RESOURCE
    )
    _problem(client.delete("/epcis/nextPageToken/x"), 401, EpcisException.SECURITY)


def test_existing_epcis_errors_carry_epcis_exception_types(
    ledger: dict[str, Any], client: TestClient
) -> None:
    bad_token = _get(client, ledger, "/epcis/events", nextPageToken="bm90LW91cnM")
    _problem(bad_token, 400, EpcisException.QUERY_PARAMETER)
    job = _get(client, ledger, "/epcis/capture/no-such-job")
    _problem(job, 404, EpcisException.NO_SUCH_RESOURCE)
    assert (
        client.get("/ledger/checkpoint").json()["type"].startswith("https://ns.coldchain.example/problems/")
    )


# -- EPC forms (property) --------------------------------------------------------------------------------


@given(
    prefix_len=st.integers(min_value=6, max_value=12),
    digits=st.text(alphabet="0123456789", min_size=13, max_size=13),
    serial=st.text(alphabet="0123456789ABCabc-_", min_size=1, max_size=20),
)
def test_an_sgtin_and_its_digital_link_are_forms_of_each_other(
    prefix_len: int, digits: str, serial: str
) -> None:
    urn = f"urn:epc:id:sgtin:{digits[:prefix_len]}.{digits[prefix_len:]}.{serial}"
    link = epc_to_digital_link(urn)
    assert link is not None
    assert link in epc_forms(urn)
    assert urn in epc_forms(link)
    assert urn in epc_forms(link.replace("https://id.gs1.org/", "https://example.com/dl/"))
    for form in epc_forms(link)[1:]:
        assert epc_to_digital_link(form) == link  # every form names the same EPC


# -- parsers (property) ----------------------------------------------------------------------------------

_NAMES = [*sorted(events_query.LIST_PARAMS | events_query.SCALAR_PARAMS), "GE_maxValue_Temperature", "X"]


@given(
    st.dictionaries(
        st.sampled_from(_NAMES),
        st.lists(st.text(max_size=40), min_size=1, max_size=3),
        max_size=6,
    )
)
def test_from_params_builds_a_query_or_names_the_bad_parameter(params: dict[str, list[str]]) -> None:
    try:
        q = events_query.from_params(params)
    except events_query.QueryParameterError as exc:
        reason = str(exc)
    else:
        reason = ""
    if reason:  # a reason for the client; no other exception escapes
        return
    assert 1 <= q.per_page <= events_query.MAX_PER_PAGE
    assert q.event_count_limit is None or q.order_by is not None


@given(
    st.dictionaries(
        st.sampled_from(["GS1-EPCIS-Min", "GS1-EPCIS-Max", "GS1-CBV-Version"]),
        st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=12),
    )
)
def test_version_headers_are_served_or_refused_with_a_reason(headers: dict[str, str]) -> None:
    why = refusal(Headers(headers))
    assert why is None or why.startswith("GS1-")
    if why is None:
        assert all(v.strip().split(".")[0].isdigit() for v in headers.values())


@pytest.mark.parametrize(
    ("status", "ours", "epcis"),
    [
        (400, PROBLEM_BASE + "bad-value", EpcisException.QUERY_PARAMETER),
        (400, PROBLEM_BASE + "capture-refused", EpcisException.VALIDATION),
        (413, PROBLEM_BASE + "too-large", EpcisException.CAPTURE_LIMIT_EXCEEDED),
        (401, PROBLEM_BASE + "unauthorized", EpcisException.SECURITY),
        (403, PROBLEM_BASE + "forbidden", EpcisException.SECURITY),
        (404, "about:blank", EpcisException.NO_SUCH_RESOURCE),
        (500, "about:blank", EpcisException.IMPLEMENTATION),
        (503, PROBLEM_BASE + "busy", EpcisException.IMPLEMENTATION),
        (404, EpcisException.NO_SUCH_NAME, EpcisException.NO_SUCH_NAME),  # an EPCIS type stays
        (408, PROBLEM_BASE + "body-timeout", PROBLEM_BASE + "body-timeout"),  # no exception for it
    ],
)
def test_one_mapping_from_our_problems_to_epcis_exceptions(status: int, ours: str, epcis: str) -> None:
    assert epcis_type(status, ours) == epcis


def test_a_schema_refusal_under_epcis_is_a_query_parameter_exception(
    ledger: dict[str, Any], client: TestClient
) -> None:
    refused = _get(client, ledger, "/epcis/bizSteps", perPage=0)
    assert _problem(refused, 422, EpcisException.QUERY_PARAMETER)["errors"]
