"""Tests: the EPCIS validator (jsonschema-rs verdict, fastjsonschema reason) gives the plain GS1 schema's
verdict, and the fast RFC 8785 canonicaliser writes exactly what the reference ``rfc8785`` package writes."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.traceability.test_epcis_capture import FIVE, _doc, _example_files
from traceability.epcis import validation
from traceability.epcis.jcs import CanonicalizationError, canonical

PLAIN: Callable[[Any], Any] = fastjsonschema.compile(
    json.loads((Path(validation.__file__).parent / "schema" / "EPCIS-JSON-Schema.json").read_text())
)


def _plain_ok(doc: Any) -> bool:
    try:
        PLAIN(doc)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def _validator_ok(doc: Any) -> bool:
    try:
        validation.validate(doc)
    except validation.InvalidEventError:
        return False
    return True


def _dispatched_ok(doc: Any) -> bool:
    try:
        validation.validate_document(doc)
    except validation.InvalidEventError:
        return False
    return True


MUTATIONS: list[tuple[str, Any]] = [
    ("bizStep", "not a step"),
    ("bizStep", "urn:epcglobal:cbv:bizstep:shipping"),
    ("bizStep", "https://example.com/steps/x"),
    ("bizStep", 5),
    ("disposition", "in_progress"),
    ("disposition", "nonsense"),
    ("disposition", ["in_progress"]),
    ("foo", "a key outside the schema"),
    ("ex:foo", "an extension"),
    ("https://ns.example.com/x", {"y": 1}),
    ("action", "SHOUT"),
    ("eventTime", "yesterday"),
    ("readPoint", {"id": "not a uri"}),
    ("readPoint", {"id": "urn:epc:id:sgln:6901234.00001.0", "zz": 1}),
]


# GS1 examples where the plain schema (fastjsonschema's looser formats) and the RFCs disagree; the RFC
# wins (test_formats_follow_the_rfcs): the document id "_:document1" is no RFC 3986 URI.
LOOSER_FORMATS = {"SensorDataExample17.jsonld"}


def _variants() -> list[Any]:
    docs: list[Any] = [json.loads(f.read_text()) for f in _example_files() if f.name not in LOOSER_FORMATS]
    docs.append(_doc(copy.deepcopy(FIVE)))
    docs.append(_doc([*copy.deepcopy(FIVE), {**FIVE[0], "type": "https://example.com/MyEvent"}]))
    docs.append(_doc([*copy.deepcopy(FIVE), {**FIVE[0], "type": "NoSuchEvent"}]))
    docs.append(_doc([*copy.deepcopy(FIVE), "not an event"]))
    for event in FIVE:
        docs.append(_doc([event]))
        for key, value in MUTATIONS:
            docs.append(_doc([{**copy.deepcopy(event), key: value}]))
        for key in event:
            docs.append(_doc([{k: v for k, v in event.items() if k != key}]))
    return docs


def test_validator_agrees_with_the_plain_schema() -> None:
    verdicts = [(_validator_ok(d), _dispatched_ok(d), _plain_ok(d)) for d in _variants()]
    assert all(checked == dispatched == plain for checked, dispatched, plain in verdicts)
    assert {v for v, _, _ in verdicts} == {True, False}  # both kinds of verdict exercised
    for name in LOOSER_FORMATS:
        doc = json.loads((_example_files()[0].parent / name).read_text())
        assert (_validator_ok(doc), _dispatched_ok(doc), _plain_ok(doc)) == (False, False, True)


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        # Where fastjsonschema's format checks are looser than the RFCs that JSON Schema names, the RFC wins.
        ("readPoint", {"id": "1abc:def"}, False),  # RFC 3986: a scheme starts with a letter
        ("readPoint", {"id": "http://a/%zz"}, False),  # not a percent escape
        ("readPoint", {"id": "http://例子.中国/a"}, False),  # an IRI, not a URI
        ("eventTime", "2026-01-01T00:00:60Z", False),  # RFC 3339: second 60 only in a leap second
        ("readPoint", {"id": "a+b-c.d:e"}, True),  # RFC 3986 allows + - . in a scheme
        ("readPoint", {"id": "urn:epc:id:sgln:6901234.00001.0"}, True),
        ("eventTime", "2026-01-01T00:00:00.123+08:00", True),
    ],
)
def test_formats_follow_the_rfcs(field: str, value: Any, valid: bool) -> None:
    doc = _doc([{**copy.deepcopy(FIVE[0]), field: value}])
    assert _validator_ok(doc) is valid
    assert _dispatched_ok(doc) is valid
    if not valid:
        with pytest.raises(validation.InvalidEventError, match=r"eventList\[0\]"):
            validation.validate_document(doc)


def test_refusal_names_the_failing_event() -> None:
    bad = _doc([*copy.deepcopy(FIVE), {**copy.deepcopy(FIVE[1]), "action": "SHOUT"}])
    with pytest.raises(validation.InvalidEventError, match=r"eventList\[5\].*action"):
        validation.validate_document(bad)
    leap = _doc([*copy.deepcopy(FIVE), {**copy.deepcopy(FIVE[0]), "eventTime": "2026-01-01T00:00:60Z"}])
    with pytest.raises(validation.InvalidEventError, match=r"eventList\[5\].*eventTime"):
        validation.validate_document(leap)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=25,
)


# Mostly the fast path: ASCII keys and text (every control character, quotes, backslashes, DEL).
ASCII_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(max_codepoint=127)),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(alphabet=st.characters(max_codepoint=127)), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=500, deadline=None)
@given(value=JSON | ASCII_JSON)
def test_canonical_is_rfc8785(value: Any) -> None:
    try:
        expected: bytes | None = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, ValueError):
        expected = None
    if expected is None:
        with pytest.raises(CanonicalizationError):
            canonical(value)
    else:
        assert canonical(value) == expected


def test_canonical_of_events() -> None:
    for event in FIVE:
        assert canonical(event) == rfc8785.dumps(event)
