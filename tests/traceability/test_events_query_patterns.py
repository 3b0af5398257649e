"""Tests: EPC pure identity patterns (``urn:epc:idpat:…``) in the event query's MATCH_ parameters: a pattern
covers exactly the EPCs (or classes) whose URI fits it, in URN and GS1 Digital Link form, through
``events_query`` and GET /epcis/events; a malformed pattern is a clear 400."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.api.problems import PROBLEM_MEDIA_TYPE, EpcisException
from traceability.epcis import builders, epc_patterns, events_query
from traceability.epcis.digital_link import epc_forms, epc_to_digital_link
from traceability.ledger import chain

T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)


def fits(pattern: str, uri: str) -> bool:
    """Whether ``uri`` is an EPC (``urn:epc:id:``) or, for a class pattern, an LGTIN or GTIN class that the
    pattern's fixed fields name (TDS 2.0 §8, EPCIS 2.0 §8.2.7.1.1), read off the two URIs' fields."""
    scheme, _, rest = pattern.removeprefix("urn:epc:idpat:").partition(":")
    wanted = rest.split(".")
    for head in (f"urn:epc:id:{scheme}:", "urn:epc:class:lgtin:", "urn:epc:idpat:sgtin:"):
        if uri.startswith(head):
            fields = uri.removeprefix(head).split(".", len(wanted) - 1)
            return len(fields) == len(wanted) and all(
                w in ("*", f) for w, f in zip(wanted, fields, strict=True)
            )
    return False


def like_matches(conn: psycopg.Connection[Any], uri: str, likes: list[str]) -> bool:
    row = conn.execute("SELECT %s LIKE ANY(%s)", (uri, likes)).fetchone()
    assert row is not None
    return bool(row[0])


# A company prefix and the numeric reference after it: 13 digits for SGTIN (indicator digit included).
companies = st.integers(6, 12).flatmap(
    lambda n: st.tuples(
        st.text("0123456789", min_size=n, max_size=n), st.text("0123456789", min_size=13 - n, max_size=13 - n)
    )
)
serials = st.text("0123456789ABCXYZabc-_.", min_size=1, max_size=20).filter(lambda s: not s.startswith("."))


def _near(value: str) -> st.SearchStrategy[str]:
    """The value itself, or one of its length that differs in a digit (a near miss)."""
    return st.one_of(
        st.just(value),
        st.integers(0, max(len(value) - 1, 0)).flatmap(
            lambda i: st.sampled_from("0123456789").map(lambda d: value[:i] + d + value[i + 1 :])
        ),
    )


@st.composite
def pattern_and_epc(draw: st.DrawFn) -> tuple[str, str, str, str]:
    """A SGTIN EPC, its LGTIN class (the serial as lot), its GTIN class, and a pattern fixing 0 to 2 fields
    that are the EPC's own or near misses, from the same or another company prefix length."""
    (cp, ref), serial = draw(companies), draw(serials)
    epc, lot = f"urn:epc:id:sgtin:{cp}.{ref}.{serial}", f"urn:epc:class:lgtin:{cp}.{ref}.{serial}"
    fixed = draw(st.integers(0, 2))
    if draw(st.booleans()):  # another split of the same 13 digits
        n = draw(st.integers(6, 12))
        pcp, pref = (cp + ref)[:n], (cp + ref)[n:]
    else:
        pcp, pref = draw(_near(cp)), draw(_near(ref))
    fields = [pcp, pref, "*"][:fixed] + ["*"] * (3 - fixed)
    return "urn:epc:idpat:sgtin:" + ".".join(fields), epc, lot, f"urn:epc:idpat:sgtin:{cp}.{ref}.*"


def test_a_pattern_covers_exactly_the_epcs_and_classes_whose_uri_fits_it(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(pattern_and_epc())
        def check(case: tuple[str, str, str, str]) -> None:
            pattern, epc, lot, gtin_class = case
            parsed = epc_patterns.parse(pattern)
            epc_likes = epc_patterns.like_patterns(parsed)
            class_likes = epc_patterns.like_patterns(parsed, as_class=True)
            for uri, likes, other in ((epc, epc_likes, class_likes), (lot, class_likes, epc_likes)):
                assert like_matches(conn, uri, likes) == fits(pattern, uri)
                link = str(epc_to_digital_link(uri))
                # A link does not say where the company prefix ends: it fits when one of its URIs does.
                assert like_matches(conn, link, likes) == any(fits(pattern, f) for f in epc_forms(link))
                assert not like_matches(conn, uri, other)
                assert not like_matches(conn, link, other)
            gtin_link = str(epc_to_digital_link(gtin_class))
            assert like_matches(conn, gtin_class, class_likes) == fits(pattern, gtin_class)
            assert like_matches(conn, gtin_link, class_likes) == any(
                fits(pattern, f) for f in epc_forms(gtin_link)
            )
            assert not like_matches(conn, gtin_link, epc_likes)

        check()


@pytest.mark.parametrize(
    ("pattern", "inside", "outside"),
    [
        (
            "urn:epc:idpat:sscc:0614141.*",
            "urn:epc:id:sscc:0614141.1234567890",
            "urn:epc:id:sscc:0614142.1234567890",
        ),
        (
            "urn:epc:idpat:sgln:0614141.00777.*",
            "urn:epc:id:sgln:0614141.00777.12",
            "urn:epc:id:sgln:0614141.00778.12",
        ),
        (
            "urn:epc:idpat:grai:0614141.12345.*",
            "urn:epc:id:grai:0614141.12345.400",
            "urn:epc:id:grai:0614141.12346.400",
        ),
        ("urn:epc:idpat:giai:0614141.*", "urn:epc:id:giai:0614141.A1-9", "urn:epc:id:giai:0614149.A1-9"),
        (
            "urn:epc:idpat:gsrn:0614141.*",
            "urn:epc:id:gsrn:0614141.1234567890",
            "urn:epc:id:gsrn:0614140.1234567890",
        ),
    ],
)
def test_patterns_of_other_schemes_cover_their_urns_and_links(
    db_url: str, pattern: str, inside: str, outside: str
) -> None:
    likes = epc_patterns.like_patterns(epc_patterns.parse(pattern))
    with psycopg.connect(db_url, autocommit=True) as conn:
        for uri in (inside, str(epc_to_digital_link(inside))):
            assert like_matches(conn, uri, likes), uri
        for uri in (outside, str(epc_to_digital_link(outside))):
            assert not like_matches(conn, uri, likes), uri


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("MATCH_anyEPC", "urn:epc:idpat:sgtin:0614141.*.5", "only the rightmost"),
        ("MATCH_epc", "urn:epc:idpat:sgtin:0614141.1073*.*", "only whole fields"),
        ("MATCH_anyEPC", "urn:epc:idpat:colour:red.*", "known scheme"),
        ("MATCH_anyEPC", "urn:epc:idpat:sgtin:0614141.*", "has 2 fields"),
        ("MATCH_parentID", "urn:epc:idpat:sscc:06x4141.*", "valid sscc"),
        ("MATCH_epcClass", "urn:epc:idpat:sscc:0614141.*", "names no classes"),
        ("MATCH_anyEPCClass", "urn:epc:idpat:sgtin:0614141.107346.1", "not a class"),
    ],
)
def test_a_malformed_pattern_is_a_query_parameter_error(name: str, value: str, words: str) -> None:
    with pytest.raises(events_query.QueryParameterError) as refused:
        events_query.from_params({name: [value]})
    assert name in str(refused.value)
    assert words in str(refused.value)


# -- through the query and the API --------------------------------------------------------------------------

GTIN_X, GTIN_Y = "0614141.107346", "0614141.107347"
X1, X2, X3 = (f"urn:epc:id:sgtin:{GTIN_X}.{n}" for n in ("2018", "A_1", "3000"))
Y1 = f"urn:epc:id:sgtin:{GTIN_Y}.2018"
OTHER = "urn:epc:id:sgtin:4012345.011111.2018"
SSCC = "urn:epc:id:sscc:0614141.1234567890"
LOT_X = f"urn:epc:class:lgtin:{GTIN_X}.LOT1"


def _link(uri: str) -> str:
    return str(epc_to_digital_link(uri))


def _events() -> list[dict[str, Any]]:
    """Events naming goods of GTIN X and of others as URNs and as Digital Links, in each role."""
    t = iter(T0 + timedelta(minutes=i) for i in range(20))
    out = [
        builders.object_event(event_time=next(t), epcs=[X1]),  # 1: X as URN
        builders.object_event(event_time=next(t), epcs=[_link(X2)]),  # 2: X as a link, a serial to escape
        builders.object_event(event_time=next(t), epcs=[Y1, OTHER]),  # 3: neither
        builders.aggregation_event(
            event_time=next(t), action="ADD", parent_id=_link(SSCC), child_epcs=[_link(X3)]
        ),
        builders.object_event(event_time=next(t), quantities=[builders.quantity(LOT_X, 2.0, "KGM")]),  # 5
        builders.object_event(event_time=next(t), quantities=[builders.quantity(_link(LOT_X))]),  # 6
        builders.object_event(  # 7: the GTIN class itself
            event_time=next(t), quantities=[builders.quantity(f"urn:epc:idpat:sgtin:{GTIN_X}.*", 3.0)]
        ),
        builders.object_event(  # 8: another GTIN's lot
            event_time=next(t), quantities=[builders.quantity(f"urn:epc:class:lgtin:{GTIN_Y}.LOT1")]
        ),
        {  # 9: X1 consumed, an X lot produced
            "@context": builders.CONTEXT,
            "type": "TransformationEvent",
            "eventTime": builders.iso_ms(next(t)),
            "eventTimeZoneOffset": "+00:00",
            "inputEPCList": [X1],
            "outputQuantityList": [{"epcClass": _link(f"urn:epc:class:lgtin:{GTIN_X}.LOT2")}],
        },
    ]
    return [builders.with_event_id(e) for e in out]


@pytest.fixture
def ledger(db_url: str) -> dict[str, Any]:
    events = _events()
    with psycopg.connect(db_url) as conn:
        chain.append_many(conn, events)
        key = create_key(conn, "inspector", "inspector key")
        conn.commit()
    return {"ids": [e["eventID"] for e in events], "key": key}


def _numbers(ledger: dict[str, Any], ids: list[str]) -> list[int]:
    return [ledger["ids"].index(i) + 1 for i in ids]


def test_the_query_matches_patterns_in_every_role_and_form(db_url: str, ledger: dict[str, Any]) -> None:
    def matching(**params: str) -> list[int]:
        q = events_query.from_params({k: [v] for k, v in params.items()})
        with psycopg.connect(db_url) as conn:
            page, _ = events_query.run(conn, q)
        return _numbers(ledger, [v[v.index('"eventID"') :].split('"')[3] for _, v in page])

    gtin_x = f"urn:epc:idpat:sgtin:{GTIN_X}.*"
    assert matching(MATCH_anyEPC=gtin_x) == [1, 2, 4, 9]
    assert matching(MATCH_epc=gtin_x) == [1, 2, 4, 9]
    assert matching(MATCH_inputEPC=gtin_x) == [9]
    assert matching(MATCH_anyEPC="urn:epc:idpat:sgtin:0614141.*.*") == [1, 2, 3, 4, 9]
    assert matching(MATCH_anyEPC="urn:epc:idpat:sgtin:*.*.*") == [1, 2, 3, 4, 9]
    assert matching(MATCH_anyEPC=f"urn:epc:idpat:sgtin:{GTIN_X}.A_1") == [2]  # no '*': one EPC, any form
    assert matching(MATCH_anyEPC=f"{Y1}|{gtin_x}") == [1, 2, 3, 4, 9]  # an exact value and a pattern: OR
    assert matching(MATCH_anyEPC=gtin_x, MATCH_parentID="urn:epc:idpat:sscc:0614141.*") == [4]  # AND
    assert matching(MATCH_parentID="urn:epc:idpat:sscc:0614142.*") == []
    assert matching(MATCH_epcClass=gtin_x) == [5, 6, 7]
    assert matching(MATCH_anyEPCClass=gtin_x) == [5, 6, 7, 9]
    assert matching(MATCH_outputEPCClass=gtin_x) == [9]
    assert matching(MATCH_anyEPCClass="urn:epc:idpat:sgtin:0614141.*.*") == [5, 6, 7, 8, 9]
    assert matching(MATCH_anyEPCClass=f"urn:epc:idpat:sgtin:{GTIN_Y}.*") == [8]


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(db_url), raise_server_exceptions=False) as c:
        yield c


def test_get_events_with_a_pattern_serves_the_goods_in_urn_and_link_form(
    ledger: dict[str, Any], client: TestClient
) -> None:
    key = {"X-API-Key": ledger["key"]}
    served = client.get(
        "/epcis/events", params={"MATCH_anyEPC": f"urn:epc:idpat:sgtin:{GTIN_X}.*"}, headers=key
    )
    assert served.status_code == 200, served.text
    events = served.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert _numbers(ledger, [e["eventID"] for e in events]) == [1, 2, 4, 9]
    refused = client.get(
        "/epcis/events", params={"MATCH_anyEPC": "urn:epc:idpat:sgtin:0614141.*.5"}, headers=key
    )
    assert refused.status_code == 400
    assert refused.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body = refused.json()
    assert body["type"] == EpcisException.QUERY_PARAMETER
    assert "only the rightmost" in body["detail"]
    assert "Traceback" not in refused.text


def test_a_pattern_reads_the_subject_index_not_every_subject(db_url: str) -> None:
    """With some thousands of subjects, a GTIN pattern is a range read of event_subject's primary key
    (subject_id in the "C" collation), in a plan made for its values and in a generic one (a prepared
    statement's) made without them."""
    events = [
        builders.with_event_id(
            builders.object_event(
                event_time=T0 + timedelta(seconds=i),
                epcs=[
                    f"urn:epc:id:sgtin:0614141.{100000 + i % 500}.{i}",
                    _link(f"urn:epc:id:sgtin:4012345.0{11111 + i % 300}.{i}"),
                ],
            )
        )
        for i in range(3000)
    ]
    with psycopg.connect(db_url) as conn:
        chain.append_many(conn, events)
        conn.execute("ANALYZE event_subject")
        conn.execute("ANALYZE ledger_event")
        conn.commit()
        for gtin in ("0614141.100007", "4012345.011200"):
            q = events_query.from_params({"MATCH_anyEPC": [f"urn:epc:idpat:sgtin:{gtin}.*"]})
            args: dict[str, Any] = {}
            where = psycopg.sql.SQL(" AND ").join(events_query._filters(q, args)).as_string(conn)
            names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", where)))
            for number, name in enumerate(names, 1):
                where = where.replace(f"%({name})s", f"${number}")
            conn.execute(f"PREPARE by_pattern AS SELECT e.seq FROM ledger_event e WHERE {where}")
            values = psycopg.sql.SQL(", ").join(psycopg.sql.Literal(args[n]) for n in names)
            # The generic plan (a prepared statement's after some runs) knows no pattern's prefix.
            for mode in ("auto", "force_generic_plan"):
                conn.execute(psycopg.sql.SQL("SET plan_cache_mode = {}").format(psycopg.sql.Literal(mode)))
                explain = psycopg.sql.SQL("EXPLAIN EXECUTE by_pattern({})").format(values)
                plan = "\n".join(str(r[0]) for r in conn.execute(explain))
                assert (
                    "Index Scan on event_subject_pkey" in plan
                    or "Index Only Scan using event_subject_pkey" in plan
                ), plan
                assert re.search(r"Index Cond: \(\(subject_id >= ", plan), plan
                assert "Seq Scan on event_subject" not in plan, plan
            conn.execute("DEALLOCATE by_pattern")
