"""Tests: capture refuses what it must (times, reused and forged eventIDs, declarations of no event, sizes,
depth, list lengths) with reasons in the job and problem+json, recordTime is the repository's, a deep
event cannot stop the events query, a NUL in a path is a 400 that is audited, no exception text reaches a
client, and a far-future event already stored does not freeze custody. Real PostgreSQL throughout."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
import pytest
import rfc8785
from capture_support import captured, refused
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traceability.api.auth import create_key
from traceability.epcis import capture, jcs
from traceability.epcis.builders import iso_ms
from traceability.epcis.eventhash import event_hash
from traceability.ledger import chain

CTX = [
    "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
    {"ex": "http://ns.example.com/epcis/"},
]
NOW = datetime.now(UTC).replace(microsecond=0)
SSCC = "urn:epc:id:sscc:6901234.0000000077"


def _event(t: datetime = NOW - timedelta(hours=1), /, **extra: Any) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": iso_ms(t),
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "epcList": [SSCC],
        "bizStep": "receiving",
        "readPoint": {"id": "urn:epc:id:sgln:6901234.00001.3"},
        **extra,
    }


def _doc(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": CTX,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": iso_ms(NOW),
        "epcisBody": {"eventList": list(events)},
    }


def _app(db_url: str, **options: Any) -> FastAPI:
    """The API with its own capture worker (finishing the jobs POST /epcis/capture queues)."""
    from traceability.api.app import create_app
    from traceability.api.options import ApiOptions

    limits = capture.CaptureLimits(**options)
    return create_app(db_url, options=ApiOptions(capture=limits, capture_worker=True))


@pytest.fixture
def key(db_url: str) -> str:
    with psycopg.connect(db_url) as conn:
        return create_key(conn, "admin", "refusals")


@pytest.fixture
def client(db_url: str, key: str) -> Iterator[TestClient]:
    with TestClient(_app(db_url), raise_server_exceptions=False, headers={"X-API-Key": key}) as c:
        yield c


def _count(db_url: str, sql: str = "SELECT count(*) FROM ledger_event") -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def _too_large(response: Any, reason: str) -> dict[str, Any]:
    """A body over the document size limit: a problem+json 413 at once, naming the reason; so does its job."""
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert any(reason in e["message"] for e in body["errors"]), body
    return body


def _job_of(client: TestClient, body: dict[str, Any], reason: str) -> None:
    job = client.get(f"/epcis/capture/{body['captureID']}").json()
    assert job["success"] is False
    assert any(reason in e["message"] for e in job["errors"]), job


# -- times ---------------------------------------------------------------------------------------------


def test_event_time_in_the_far_future_is_refused(client: TestClient, db_url: str) -> None:
    """Year 9999 (it would stand ahead of every real event of the unit and freeze its custody)."""
    body = refused(
        client,
        client.post("/epcis/capture", json=_doc(_event(datetime(9999, 1, 1, tzinfo=UTC)))),
        "later than now",
    )
    _job_of(client, body, "later than now")
    assert _count(db_url) == 0


def test_event_time_before_the_floor_is_refused(client: TestClient, db_url: str) -> None:
    refused(
        client, client.post("/epcis/capture", json=_doc(_event(datetime(1900, 1, 1, tzinfo=UTC)))), "before"
    )
    assert _count(db_url) == 0


def test_clock_skew_is_a_setting(db_url: str, key: str) -> None:
    """An event an hour ahead: refused under the default skew, captured where an hour is allowed."""
    ahead = _doc(_event(NOW + timedelta(hours=1)))
    with TestClient(_app(db_url), raise_server_exceptions=False, headers={"X-API-Key": key}) as c:
        refused(c, c.post("/epcis/capture", json=ahead), "later than now")
    app = _app(db_url, future_skew_s=7200)
    with TestClient(app, raise_server_exceptions=False, headers={"X-API-Key": key}) as c:
        captured(c, c.post("/epcis/capture", json=ahead))


# -- eventIDs --------------------------------------------------------------------------------------------


def test_reused_event_id_with_other_content_is_refused_same_content_idempotent(
    client: TestClient, db_url: str
) -> None:
    first = _event(eventID="urn:uuid:6d2b4c1e-0000-4000-8000-000000000001")
    captured(client, client.post("/epcis/capture", json=_doc(first)))
    other = dict(first, bizStep="shipping")
    body = refused(
        client, client.post("/epcis/capture", json=_doc(other)), "taken by an event with other content"
    )
    _job_of(client, body, "other content")
    again = client.post("/epcis/capture", json=_doc(copy.deepcopy(first)))
    job = captured(client, again)
    assert job["events"] == 0
    assert job["alreadyCaptured"] == [{"eventID": first["eventID"], "seq": 1}]
    assert client.get(again.headers["Location"]).json()["alreadyCaptured"] == job["alreadyCaptured"]
    assert _count(db_url) == 1


def test_hash_event_id_that_is_not_the_hash_is_refused(client: TestClient, db_url: str) -> None:
    event = _event()
    forged = dict(event, eventID="ni:///sha-256;" + "ab" * 32 + "?ver=CBV2.0")
    refused(client, client.post("/epcis/capture", json=_doc(forged)), "not the event's hash")
    assert _count(db_url) == 0
    true = dict(event, eventID=event_hash({**event, "@context": CTX}))
    captured(client, client.post("/epcis/capture", json=_doc(true)))


def test_error_declaration_of_no_event_is_refused(client: TestClient, db_url: str) -> None:
    declaration = {"declarationTime": iso_ms(NOW), "reason": "incorrect_data"}
    ghost = _event(eventID="urn:uuid:6d2b4c1e-0000-4000-8000-00000000dead", errorDeclaration=declaration)
    refused(client, client.post("/epcis/capture", json=_doc(ghost)), "no event")
    assert _count(db_url) == 0
    real = _event(eventID="urn:uuid:6d2b4c1e-0000-4000-8000-00000000beef")
    declared = dict(real, errorDeclaration=declaration)
    captured(client, client.post("/epcis/capture", json=_doc(real, declared)))
    assert _count(db_url) == 2


def test_record_time_is_the_repositorys(client: TestClient, db_url: str) -> None:
    """A client's recordTime is replaced by the capture's; the event hash does not cover it."""
    event = _event(recordTime="2001-01-01T00:00:00.000Z")
    before = datetime.now(UTC) - timedelta(seconds=1)
    captured(client, client.post("/epcis/capture", json=_doc(event)))
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT event, event_hash FROM ledger_event").fetchone()
    assert row is not None
    stored, stored_hash = row
    recorded = datetime.fromisoformat(stored["recordTime"])
    assert recorded >= before
    assert stored_hash == event_hash({**event, "@context": CTX})
    served = client.get("/epcis/events").json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert served[0]["recordTime"] == stored["recordTime"]


# -- limits ----------------------------------------------------------------------------------------------


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"ex:n": value}
    return value


def _deep_body(levels: int, kind: str = "dict") -> bytes:
    """A document whose one event has an extension nested ``levels`` deep, written as text (JSON encoders
    recurse: they cannot write it)."""
    opened, closed = ('{"ex:n": ', "}") if kind == "dict" else ("[", "]")
    value = opened * levels + '"leaf"' + closed * levels
    event = msgspec.json.encode(_event()).decode()[:-1] + ', "ex:v": ' + value + "}"
    doc = msgspec.json.encode(_doc()).decode().replace('"eventList":[]', '"eventList":[' + event + "]")
    return doc.encode()


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("levels", [300, 600, 5000])
def test_deep_nesting_is_a_400_with_a_job(client: TestClient, db_url: str, levels: int) -> None:
    """252-475 levels were accepted (and broke the events query), 476+ were a 500 with no job."""
    response = client.post("/epcis/capture", content=_deep_body(levels), headers=JSON)
    body = refused(client, response, "deeper")
    _job_of(client, body, "deeper")
    assert _count(db_url) == 0


def test_raw_deep_json_is_a_400(client: TestClient, db_url: str) -> None:
    """Deeper than the JSON parser recurses: refused, recorded, never a 500."""
    raw = b'{"type": "EPCISDocument", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    body = refused(
        client,
        client.post("/epcis/capture", content=raw, headers={"content-type": "application/json"}),
        "deeper",
    )
    _job_of(client, body, "deeper")


def test_sizes_are_413_and_lists_are_400_before_anything_is_stored(db_url: str, key: str) -> None:
    app = _app(db_url, document_bytes=20_000, event_bytes=2_000, list_items=50)
    with TestClient(app, raise_server_exceptions=False, headers={"X-API-Key": key}) as c:
        big_event = _event(**{"ex:blob": "x" * 5_000})
        body = refused(c, c.post("/epcis/capture", json=_doc(big_event)), "bytes, more than 2000")
        _job_of(c, body, "more than 2000")
        big_doc = _doc(*[_event(**{"ex:i": str(i), "ex:pad": "y" * 1000}) for i in range(30)])
        _too_large(c.post("/epcis/capture", json=big_doc), "larger than 20000 bytes")
        long_list = _event(epcList=[f"urn:epc:id:sscc:6901234.{i:010d}" for i in range(51)])
        refused(c, c.post("/epcis/capture", json=_doc(long_list)), "more than 50 items")
        captured(c, c.post("/epcis/capture", json=_doc(_event())))
    assert _count(db_url) == 1
    assert _count(db_url, "SELECT count(*) FROM capture_job WHERE NOT success") == 3


def test_default_limits_refuse_a_50_mb_event(client: TestClient, db_url: str) -> None:
    body = _too_large(
        client.post("/epcis/capture", json=_doc(_event(**{"ex:blob": "z" * (50 << 20)}))), "larger"
    )
    _job_of(client, body, "larger")
    assert _count(db_url) == 0


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(levels=st.integers(min_value=0, max_value=3000), kind=st.sampled_from(["list", "dict"]))
def test_check_document_never_raises_and_refuses_iff_too_deep(levels: int, kind: str) -> None:
    """Any nesting of an extension: refused exactly when deeper than the limit, never an exception."""
    try:
        parsed = capture.parse_document(_deep_body(levels, kind))
    except capture.CaptureRefusedError as exc:
        errors = exc.errors
    else:
        errors = capture.check_document(parsed)
    # The event sits at depth 4 and its field at 5: the extension's containers reach 5 + levels - 1.
    too_deep = 4 + levels > capture.DEFAULT_LIMITS.depth
    assert any("deeper" in e.message for e in errors) is too_deep, errors


def _first_shape_refusal(value: Any, depth: int, limits: capture.CaptureLimits) -> str | None:
    """The reference of ``capture.shape_errors``: a walk level by level that stops at the first level
    deeper than the limit or holding a list longer than the list limit."""
    level = [value]
    while level:
        if depth > limits.depth:
            return "deep"
        below: list[Any] = []
        for v in level:
            if isinstance(v, dict):
                below.extend(v.values())
            elif isinstance(v, list):
                if len(v) > limits.list_items:
                    return "long"
                below.extend(v)
        level, depth = [x for x in below if isinstance(x, dict | list)], depth + 1
    return None


_NESTED = st.recursive(
    st.none() | st.integers() | st.text(max_size=2),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=2), children, max_size=3)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(value=_NESTED, depth=st.integers(1, 8), limit=st.integers(5, 9), items=st.integers(1, 4))
def test_shape_refusals_are_those_of_a_walk_level_by_level(
    value: Any, depth: int, limit: int, items: int
) -> None:
    """The limits of depth and list length, read from one ``jcs.survey`` of the value, refuse what a walk
    level by level refuses, and the first refusal it meets: the deeper limit or the long list."""
    limits = capture.CaptureLimits(depth=limit, list_items=items)
    errors = capture.shape_errors(jcs.survey(value, items), "/x", depth, limits)
    found = [("deep" if "deeper" in e.message else "long") for e in errors]
    expected = _first_shape_refusal(value, depth, limits)
    assert found == ([] if expected is None else [expected])


def test_events_are_canonical_whatever_the_document_around_them() -> None:
    """The events' canonical bytes are RFC 8785's whether the limits walk found them plain or not: keys
    whose JCS order (UTF-16 code units) is not their code points' order, in an event and in the
    document's @context that the events take."""
    odd = {"\uffff": "https://a.example/", "\U0001f600": "https://b.example/"}
    plain = _doc(_event(), _event(NOW - timedelta(hours=2)))
    in_event = _doc(_event(**{"ex:odd": odd}), _event(NOW - timedelta(hours=2)))
    in_context = {**_doc(_event(), _event(NOW - timedelta(hours=2))), "@context": [*CTX, odd]}
    for doc in (plain, in_event, in_context):
        checked = capture.check(doc)
        assert not checked.errors, checked.errors
        for p in checked.prepared:
            assert p.jcs == rfc8785.dumps(p.stored)
    first = capture.check(in_context).prepared[0]
    assert first.jcs is not None
    assert "\U0001f600".encode() in first.jcs  # the document's @context is stored in its events


# -- the events query, errors ------------------------------------------------------------------------


def test_events_query_serves_a_deep_event_already_stored(client: TestClient, db_url: str) -> None:
    """An event nested 300 levels, stored before capture refused such (written here as the old append
    wrote it): the events query serves its page (pydantic gave up at 255 levels: every such page was a
    500)."""
    event = {**_event(**{"ex:deep": _nested(300)}), "@context": CTX, "eventID": "urn:uuid:deep"}
    text = msgspec.json.encode(event, order="sorted")
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO ledger_event (seq, event_id, event_type, event_time, biz_step, event_hash,"
            " prev_hash, entry_hash, declares_error, event_jcs)"
            " VALUES (1, %s, 'ObjectEvent', %s, 'receiving', 'h', %s, %s, false, %s)",
            ("urn:uuid:deep", NOW - timedelta(hours=1), "0" * 64, "1" * 64, text),
        )
    response = client.get("/epcis/events")
    assert response.status_code == 200, response.text[:300]
    served = response.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert [e["eventID"] for e in served] == ["urn:uuid:deep"]


def test_nul_in_path_is_a_400_and_audited(client: TestClient, db_url: str) -> None:
    response = client.get("/trace/%00")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "0x00" not in response.text  # the driver's words stay in the log
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT path, status FROM audit_log").fetchall()
    assert rows == [("/trace/%00", 400)]


def test_no_exception_text_reaches_a_client(db_url: str, key: str) -> None:
    app = _app(db_url)

    @app.get("/probe")
    def probe() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False, headers={"X-API-Key": key}) as c:
        crashed = c.get("/probe")
        bad = c.get("/epcis/events", params={"MATCH_epc": "\x00"})
    assert crashed.status_code == 500
    assert crashed.headers["content-type"].startswith("application/problem+json")
    assert "secret" not in crashed.text
    assert bad.status_code == 400
    assert "NUL (0x00)" not in bad.text
    assert "PostgreSQL" not in bad.text


# -- derivation --------------------------------------------------------------------------------------


def test_far_future_event_already_stored_does_not_freeze_custody(conn: psycopg.Connection[Any]) -> None:
    """A receiving dated 9999 in the ledger (appended before capture refused such); the real receiving
    after it still starts the unit's custody leg."""
    chain.append(conn, {**_event(datetime(9999, 1, 1, tzinfo=UTC)), "eventID": "urn:uuid:future"})
    real = NOW - timedelta(minutes=5)
    chain.append(conn, _event(real, readPoint={"id": "urn:epc:id:sgln:6901234.00002.0"}))
    legs = conn.execute("SELECT t_start FROM custody_leg WHERE epc = %s ORDER BY t_start", (SSCC,)).fetchall()
    assert legs == [(real,)]


class _Later(datetime):
    """The clock two hours on: time has passed since the append (for code that reads the wall clock)."""

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return datetime.now(tz) + timedelta(hours=2)


def test_rederive_judges_an_event_as_its_append_did_whenever_it_runs(
    conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event stored without recordTime, an hour more than the tolerance ahead of its append: it derives
    no custody then, and a rederivation after time has passed (the clock two hours on) agrees, because
    both judge it against the time the ledger recorded it, not against their own clock."""
    from traceability import limits
    from traceability.ledger import derive
    from traceability.ledger.rederive import rederive

    conn.autocommit = True
    ahead = NOW + timedelta(seconds=limits.FUTURE_TOLERANCE_S) + timedelta(hours=1)
    chain.append(conn, {**_event(ahead), "eventID": "urn:uuid:ahead"})
    assert conn.execute("SELECT count(*) FROM custody_leg").fetchone() == (0,)
    monkeypatch.setattr(derive, "datetime", _Later, raising=False)
    result = rederive(conn, apply=False)
    assert result.consistent, result.as_dict()
