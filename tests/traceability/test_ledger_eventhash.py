"""Tests: the CBV 2.0 event hash against pre-hash strings of the reference algorithm, and its invariances."""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traceability.epcis import builders, digital_link, eventhash, validation
from traceability.epcis.digital_link import check_digit, epc_to_digital_link, to_canonical_digital_link
from traceability.epcis.eventhash import canonical_timestamp, event_hash, prehash_string

# Pre-hash strings published with the reference algorithm's test suite (github.com/RalphTro/
# epcis-event-hash-generator, tests/examples; the same strings appear in EVRYTHNG's independent
# implementation), for events written out here in JSON-LD.
SHIPPING = {
    "type": "ObjectEvent",
    "eventTime": "2005-04-03T20:33:31.116-06:00",
    "eventTimeZoneOffset": "-06:00",
    "epcList": ["urn:epc:id:sgtin:0614141.107346.2018", "urn:epc:id:sgtin:0614141.107346.2017"],
    "action": "OBSERVE",
    "bizStep": "shipping",
    "disposition": "in_transit",
    "readPoint": {"id": "urn:epc:id:sgln:0614141.07346.1234"},
    "bizTransactionList": [{"type": "po", "bizTransaction": "http://transaction.acme.com/po/12345678"}],
}
SHIPPING_PREHASH = (
    "eventType=ObjectEventeventTime=2005-04-04T02:33:31.116ZeventTimeZoneOffset=-06:00"
    "epcListepc=https://id.gs1.org/01/10614141073464/21/2017epc=https://id.gs1.org/01/10614141073464/21/2018"
    "action=OBSERVEbizStep=https://ref.gs1.org/cbv/BizStep-shipping"
    "disposition=https://ref.gs1.org/cbv/Disp-in_transitreadPointid=https://id.gs1.org/414/0614141073467/254/1234"
    "bizTransactionListtype=https://ref.gs1.org/cbv/BTT-pobizTransaction=http://transaction.acme.com/po/12345678"
)

RECEIVING_WITH_EXTENSION = {
    "@context": [
        "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
        {"example": "http://ns.example.com/epcis/"},
    ],
    "type": "ObjectEvent",
    "eventTime": "2005-04-04T20:33:31.116-06:00",
    "eventTimeZoneOffset": "-06:00",
    "epcList": ["urn:epc:id:sgtin:0614141.107346.2018"],
    "action": "OBSERVE",
    "bizStep": "receiving",
    "disposition": "in_progress",
    "readPoint": {"id": "urn:epc:id:sgln:0012345.11111.400"},
    "bizLocation": {"id": "urn:epc:id:sgln:0012345.11111.0"},
    "bizTransactionList": [
        {"type": "po", "bizTransaction": "http://transaction.acme.com/po/12345678"},
        {"type": "desadv", "bizTransaction": "urn:epcglobal:cbv:bt:0614141073467:1152"},
    ],
    "example:myField2": "myValue2",
}
RECEIVING_PREHASH = (
    "eventType=ObjectEventeventTime=2005-04-05T02:33:31.116ZeventTimeZoneOffset=-06:00"
    "epcListepc=https://id.gs1.org/01/10614141073464/21/2018action=OBSERVE"
    "bizStep=https://ref.gs1.org/cbv/BizStep-receivingdisposition=https://ref.gs1.org/cbv/Disp-in_progress"
    "readPointid=https://id.gs1.org/414/0012345111112/254/400bizLocationid=https://id.gs1.org/414/0012345111112"
    "bizTransactionListtype=https://ref.gs1.org/cbv/BTT-desadvbizTransaction=urn:epcglobal:cbv:bt:0614141073467:1152"
    "type=https://ref.gs1.org/cbv/BTT-pobizTransaction=http://transaction.acme.com/po/12345678"
    "{http://ns.example.com/epcis/}myField2=myValue2"
)

PACKING_QUANTITIES = {
    "type": "AggregationEvent",
    "eventTime": "2019-10-21T17:30:56.591+02:00",
    "eventTimeZoneOffset": "+02:00",
    "parentID": "https://id.gs1.org/00/0401234401111111331",
    "childQuantityList": [
        {"epcClass": "urn:epc:class:lgtin:4054739.099902.P2", "quantity": 12.0, "uom": "KGM"},
        {"epcClass": "urn:epc:class:lgtin:4054739.012345.lot2", "quantity": 17},
    ],
    "action": "ADD",
    "bizStep": "packing",
    "readPoint": {"id": "urn:epc:id:sgln:4012345.00025.0"},
}
PACKING_PREHASH = (
    "eventType=AggregationEventeventTime=2019-10-21T15:30:56.591ZeventTimeZoneOffset=+02:00"
    "parentID=https://id.gs1.org/00/0401234401111111331childQuantityList"
    "quantityElementepcClass=https://id.gs1.org/01/04054739123451/10/lot2quantity=17"
    "quantityElementepcClass=https://id.gs1.org/01/04054739999025/10/P2quantity=12uom=KGM"
    "action=ADDbizStep=https://ref.gs1.org/cbv/BizStep-packingreadPointid=https://id.gs1.org/414/4012345000252"
)


def _reports(t: float, h: float, s: int, i: int) -> list[dict[str, Any]]:
    return [
        {"type": "Temperature", "value": t, "uom": "CEL"},
        {"type": "AbsoluteHumidity", "value": h, "uom": "A93"},
        {"type": "Speed", "value": s, "uom": "KMH"},
        {"type": "Illuminance", "value": i, "uom": "LUX"},
    ]


def _meta(time: str) -> dict[str, str]:
    return {
        "time": time,
        "deviceID": "urn:epc:id:giai:4000001.111",
        "deviceMetadata": "https://id.gs1.org/8004/4000001111",
        "rawData": "https://id.gs1.org/8004/401234599999",
    }


_first = _reports(26, 12.1, 160, 800)
_first[0]["exception"] = "ERROR_CONDITION"
_first[1].update({"exception": "ALARM_CONDITION", "component": "x"})
SENSOR = {
    "type": "ObjectEvent",
    "eventTime": "2019-04-02T15:00:00.000+01:00",
    "eventTimeZoneOffset": "+01:00",
    "epcList": ["urn:epc:id:sgtin:4012345.011111.9876"],
    "action": "OBSERVE",
    "bizStep": "inspecting",
    "readPoint": {"id": "urn:epc:id:sgln:4012345.00005.0"},
    "sensorElementList": [
        {
            "sensorMetadata": _meta("2019-04-02T14:35:00.000+01:00"),
            "sensorReport": _reports(26.1, 12.2, 161, 801),
        },
        {"sensorMetadata": _meta("2019-04-02T14:05:00.000+01:00"), "sensorReport": _first},
        {
            "sensorMetadata": _meta("2019-04-02T14:55:00.000+01:00"),
            "sensorReport": _reports(26.2, 12.2, 162, 802),
        },
    ],
}
_META_PREHASH = (
    "sensorMetadatatime={t}deviceID=https://id.gs1.org/8004/4000001111"
    "deviceMetadata=https://id.gs1.org/8004/4000001111rawData=https://id.gs1.org/8004/401234599999"
)
SENSOR_PREHASH = (
    "eventType=ObjectEventeventTime=2019-04-02T14:00:00.000ZeventTimeZoneOffset=+01:00"
    "epcListepc=https://id.gs1.org/01/04012345111118/21/9876action=OBSERVE"
    "bizStep=https://ref.gs1.org/cbv/BizStep-inspectingreadPointid=https://id.gs1.org/414/4012345000054"
    "sensorElementListsensorElement"
    + _META_PREHASH.format(t="2019-04-02T13:05:00.000Z")
    + "sensorReporttype=https://gs1.org/voc/AbsoluteHumidityexception=https://gs1.org/voc/ALARM_CONDITION"
    "value=12.1component=https://ref.gs1.org/cbv/Comp-xuom=A93"
    "sensorReporttype=https://gs1.org/voc/Illuminancevalue=800uom=LUX"
    "sensorReporttype=https://gs1.org/voc/Speedvalue=160uom=KMH"
    "sensorReporttype=https://gs1.org/voc/Temperatureexception=https://gs1.org/voc/ERROR_CONDITION"
    "value=26uom=CEL"
    "sensorElement"
    + _META_PREHASH.format(t="2019-04-02T13:35:00.000Z")
    + "sensorReporttype=https://gs1.org/voc/AbsoluteHumidityvalue=12.2uom=A93"
    "sensorReporttype=https://gs1.org/voc/Illuminancevalue=801uom=LUX"
    "sensorReporttype=https://gs1.org/voc/Speedvalue=161uom=KMH"
    "sensorReporttype=https://gs1.org/voc/Temperaturevalue=26.1uom=CEL"
    "sensorElement"
    + _META_PREHASH.format(t="2019-04-02T13:55:00.000Z")
    + "sensorReporttype=https://gs1.org/voc/AbsoluteHumidityvalue=12.2uom=A93"
    "sensorReporttype=https://gs1.org/voc/Illuminancevalue=802uom=LUX"
    "sensorReporttype=https://gs1.org/voc/Speedvalue=162uom=KMH"
    "sensorReporttype=https://gs1.org/voc/Temperaturevalue=26.2uom=CEL"
)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (SHIPPING, SHIPPING_PREHASH),
        (RECEIVING_WITH_EXTENSION, RECEIVING_PREHASH),
        (PACKING_QUANTITIES, PACKING_PREHASH),
        (SENSOR, SENSOR_PREHASH),
    ],
    ids=["shipping", "receiving-extension", "packing-quantities", "sensor"],
)
def test_prehash_matches_reference(event: dict[str, Any], expected: str) -> None:
    assert prehash_string(event) == expected
    digest = hashlib.sha256(expected.encode()).hexdigest()
    assert event_hash(event) == f"ni:///sha-256;{digest}?ver=CBV2.0"


def test_ids_and_record_time_are_not_hashed() -> None:
    base = event_hash(SHIPPING)
    extra = {**SHIPPING, "eventID": "urn:uuid:1", "recordTime": "2020-01-01T00:00:00Z", "@context": "x"}
    assert event_hash(extra) == base


@pytest.mark.parametrize(
    ("epc", "dl"),
    [
        ("urn:epc:id:sscc:6901234.0000000001", "https://id.gs1.org/00/069012340000000016"),
        ("urn:epc:id:giai:6901234.TRUCK12345", "https://id.gs1.org/8004/6901234TRUCK12345"),
        ("urn:epc:id:sgln:6901234.00001.0", "https://id.gs1.org/414/6901234000016"),
        ("urn:epc:id:sgln:6901234.00001.3", "https://id.gs1.org/414/6901234000016/254/3"),
        ("urn:epc:class:lgtin:6901234.012345.QZ2611A", "https://id.gs1.org/01/06901234123456/10/QZ2611A"),
        ("urn:epc:id:sgln:4012345.00022.0", "https://id.gs1.org/414/4012345000221"),  # reference vector
        ("urn:epc:id:pgln:6901234.00000", "https://id.gs1.org/417/6901234000009"),
        ("not:an:epc", None),
        ("urn:epc:id:sscc:12.34", None),
    ],
)
def test_epc_to_digital_link(epc: str, dl: str | None) -> None:
    assert epc_to_digital_link(epc) == dl


@pytest.mark.parametrize(
    ("uri", "dl"),
    [
        # EPC URIs of every scheme (TDS 2.0) and the canonical GS1 Digital Link URI of each.
        ("urn:epc:id:cpi:4012345.ABC.123", "https://id.gs1.org/8010/4012345ABC/8011/123"),
        ("urn:epc:id:sgcn:4012345.99999.44", "https://id.gs1.org/255/401234599999044"),
        ("urn:epc:id:itip:4012345.012345.01.02.999", "https://id.gs1.org/8006/040123451234560102/21/999"),
        ("urn:epc:id:upui:4012345.012345.AB12", "https://id.gs1.org/01/04012345123456/235/AB12"),
        ("urn:epc:id:gsrnp:4012345.0000098765", "https://id.gs1.org/8017/401234500000987658"),
        ("urn:epc:id:pgln:690123456789.", "https://id.gs1.org/417/6901234567892"),
        ("urn:epc:idpat:cpi:4012345.ABC.*", "https://id.gs1.org/8010/4012345ABC"),
        ("urn:epc:idpat:itip:4012345.012345.01.02.*", "https://id.gs1.org/8006/040123451234560102"),
        ("urn:epc:idpat:sscc:4012345.*", None),  # names no GS1 key
        ("urn:epc:id:sgtin:4012345.012345.123456789012345678901", None),  # serial over 20 characters
        # Digital Link URIs given as such: domain, short names, query string, qualifiers.
        (
            "https://example.com/p/gtin/9506000134352/lot/A1/ser/S1?17=201231",
            "https://id.gs1.org/01/09506000134352/21/S1",
        ),
        (
            "https://example.com/p/gtin/09506000134352/ser/S1?17=201231#x",
            "https://id.gs1.org/01/09506000134352/21/S1",
        ),
        (
            "https://example.com/p/01/09506000134352/10/A1/21/S1?17=201231",
            "https://id.gs1.org/01/09506000134352/21/S1",
        ),
        ("http://id.gs1.org/01/9506000134352/22/V1/10/L1", "https://id.gs1.org/01/09506000134352/10/L1"),
        ("https://id.gs1.org/01/09506000134352/10/L1/", None),  # no Digital Link URI ends with a slash
        ("https://id.gs1.org/01/09506000134352/22/V1", "https://id.gs1.org/01/09506000134352"),
        ("https://example.org/party/4012345000009", "https://id.gs1.org/417/4012345000009"),
        ("https://example.org/8004/401234599999", "https://id.gs1.org/8004/401234599999"),
        ("https://id.gs1.org/8010/4012345ABC/8011/123", "https://id.gs1.org/8010/4012345ABC/8011/123"),
        ("https://id.gs1.org/414/4012345000115/254/987", "https://id.gs1.org/414/4012345000115/254/987"),
        ("https://id.gs1.org/01/09506000134352/21/A%2FB", None),  # escapes are left as given
        (
            "https://id.gs1.org/01/0950600013435/21/S1",
            "https://id.gs1.org/01/00950600013435/21/S1",
        ),  # GTIN-13
        ("https://id.gs1.org/01/09506001343/21/S1", None),  # 11 digits: no GTIN
        ("https://example.com/about", None),
        ("geo:50.9,6.9", None),
    ],
)
def test_to_canonical_digital_link(uri: str, dl: str | None) -> None:
    assert to_canonical_digital_link(uri) == dl


def test_check_digit() -> None:
    assert check_digit("629104150021") == "3"  # GS1 General Specifications 7.9.1 example
    assert check_digit("06901234000000001") == "6"
    assert check_digit("401234500022") == "1"  # GLN 4012345000221 of the reference vectors


@given(st.text(alphabet="0123456789", max_size=30))
def test_check_digit_is_the_weighted_sum(digits: str) -> None:
    """GS1 General Specifications 7.9.1 as written: from the right, the digits weighed 3, 1, 3, ..."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    assert check_digit(digits) == str((10 - total % 10) % 10)


# Serials, lots and references as EPC URIs write them: letters and digits mostly, the other characters of
# set 82 (bare or escaped) and set 39, and some that are in neither.
_KEY_PIECES = [*"0aZ9xQ", *"!'()*+,-.:;=_", "%21", "%2F", "%3a", "%7A", "%", "/", "#", "é", "٣"]
_KEY_TEXT = st.lists(st.sampled_from(_KEY_PIECES), max_size=16).map("".join)


@given(_KEY_TEXT, st.integers(0, 3), st.integers(0, 21), st.sampled_from(["82", "39"]))
def test_key_characters_are_counted_as_the_pattern_counts(
    text: str, low: int, wider: int, klass: str
) -> None:
    """``_chars`` (its fast path for letters and digits included) is the pattern of ``low``..``high``
    characters of the set, an escape counting as one; ``_web_encode`` escapes exactly table 7-1's."""
    chars = digital_link._CHAR82 if klass == "82" else digital_link._CHAR39
    high = low + wider
    expected = re.fullmatch(rf"{chars}{{{low},{high}}}", text) is not None
    assert digital_link._chars(text, low, high, chars) is expected
    escaped = text
    for ch, enc in (("!", "%21"), ("(", "%28"), (")", "%29"), ("*", "%2A"), ("+", "%2B"), (",", "%2C")):
        escaped = escaped.replace(ch, enc)
    assert digital_link._web_encode(text) == escaped.replace(":", "%3A")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-01-01T08:00:00+08:00", "2026-01-01T00:00:00.000Z"),
        ("2026-01-01T00:00:00.1234Z", "2026-01-01T00:00:00.123Z"),
        ("2026-01-01T00:00:00.9996Z", "2026-01-01T00:00:01.000Z"),
        ("2026-01-01T00:00:00", "2026-01-01T00:00:00.000Z"),
    ],
)
def test_canonical_timestamp(given: str, expected: str) -> None:
    assert canonical_timestamp(given) == expected


@settings(max_examples=50, deadline=None)
@given(
    st.randoms(use_true_random=False),
    st.sampled_from([SHIPPING, RECEIVING_WITH_EXTENSION, PACKING_QUANTITIES, SENSOR]),
)
def test_hash_ignores_key_and_list_order(rnd: random.Random, event: dict[str, Any]) -> None:
    def shuffle(x: Any) -> Any:
        if isinstance(x, dict):
            items = list(x.items())
            rnd.shuffle(items)
            return {k: shuffle(v) for k, v in items}
        if isinstance(x, list):
            out = [shuffle(v) for v in x]
            rnd.shuffle(out)
            return out
        return x

    assert event_hash(shuffle(event)) == event_hash(event)


def test_builders_emit_schema_valid_events() -> None:
    from datetime import UTC, datetime

    schema = json.loads((Path(validation.__file__).parent / "schema" / "EPCIS-JSON-Schema.json").read_text())
    t = datetime(2026, 3, 1, 2, 3, 4, 567000, tzinfo=UTC)
    events = [
        builders.object_event(
            event_time=t,
            epcs=["urn:epc:id:sscc:6901234.0000000001"],
            biz_step="storing",
            disposition="in_progress",
            read_point="urn:epc:id:sgln:6901234.00001.1",
            biz_location="urn:epc:id:sgln:6901234.00001.0",
        ),
        builders.aggregation_event(
            event_time=t,
            action="ADD",
            parent_id="urn:epc:id:sscc:6901234.0000000001",
            child_quantities=[builders.quantity("urn:epc:class:lgtin:6901234.012345.QZ2611A", 800, "KGM")],
            biz_step="packing",
        ),
        builders.aggregation_event(
            event_time=t,
            action="DELETE",
            parent_id="urn:epc:id:giai:6901234.TRUCK12345",
            biz_step="unloading",
        ),
        builders.object_event(
            event_time=t,
            read_point=builders.asset_uri("COLDROOM-X"),
            biz_step="sensor_reporting",
            sensor_elements=[
                builders.temperature_element(
                    start_time=t,
                    end_time=t,
                    device_id="d1",
                    min_c=1,
                    max_c=9.25,
                    mean_c=5,
                    exception="ALARM_CONDITION",
                )
            ],
            extensions={"cc:rulePackId": "cn_food", "cc:rulePackVersion": "1.0.0"},
        ),
    ]
    assert events[0]["eventTime"] == "2026-03-01T02:03:04.567Z"
    assert events[0]["eventTimeZoneOffset"] == "+08:00"
    for event in events:
        with_id = builders.with_event_id(event)
        assert with_id["eventID"] == event_hash(event)
        jsonschema.validate(with_id, schema)
        validation.validate(with_id)
    jsonschema.validate(builders.document(events), schema)
    with pytest.raises(validation.InvalidEventError):
        validation.validate({**events[0], "action": "SHOUT"})


def test_capture_takes_a_business_transaction_without_type() -> None:
    """A schema-valid document whose bizTransaction has no type is capturable: its event hashes."""
    from datetime import UTC, datetime

    from traceability.epcis import capture

    t = datetime(2026, 3, 1, tzinfo=UTC)
    event = builders.object_event(
        event_time=t, epcs=["urn:epc:id:sscc:6901234.0000000001"], biz_step="shipping"
    )
    event["bizTransactionList"] = [{"bizTransaction": "urn:epcglobal:cbv:bt:6901234000004:7"}]
    assert capture.check_document(builders.document([event]), now=datetime(2026, 3, 2, tzinfo=UTC)) == []
    assert event_hash(event).startswith("ni:///sha-256;")


# Members as captured documents give them: strings, and objects of scalars where 1, 1.0, true, 0.0 and -0.0
# compare equal in Python but are different JSON values (few of them, so that lists recur).
_SCALARS = [1, 1.0, True, 0, 0.0, -0.0, False, None, "1", "true"]
_MEMBERS = st.one_of(
    st.sampled_from(["urn:epc:id:sgtin:0614141.107346.2018", "urn:epc:id:sscc:0614141.1234567890"]),
    st.builds(lambda v: {"quantity": v, "uom": "KGM"}, st.sampled_from(_SCALARS)),
    st.builds(lambda v: {"type": v, "bizTransaction": "urn:example:bt:1"}, st.sampled_from(_SCALARS)),
)


@settings(max_examples=300)
@given(
    st.sampled_from(["epcList", "childEPCs", "quantityList", "bizTransactionList", "sourceList"]),
    st.lists(st.lists(_MEMBERS, max_size=2), min_size=2, max_size=8),
)
def test_memoised_list_fields_are_the_fields_computed_anew(key: str, values: list[list[Any]]) -> None:
    """A list field's pre-hash text memoised on a stand-in of the list is the text computed from the
    list itself, for every list in turn (equal-looking scalars of other JSON types included)."""
    ns = eventhash._namespaces(None)
    for value in values:
        try:
            expected: str | type[Exception] = eventhash._any_field(key, value, ns)
        except (eventhash.EventHashError, AttributeError, KeyError, TypeError, ValueError) as exc:
            expected = type(exc)
        try:
            got: str | type[Exception] = eventhash._field(key, value, ns)
        except (eventhash.EventHashError, AttributeError, KeyError, TypeError, ValueError) as exc:
            got = type(exc)
        assert got == expected


def test_namespaces_follow_a_context_changed_in_place() -> None:
    """The last context's namespaces are kept as a copy: the same list changed afterwards binds anew."""
    context: list[Any] = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"ex": "urn:a:"}]
    assert eventhash._namespaces(context)["ex"] == "urn:a:"
    context[1]["ex"] = "urn:b:"
    assert eventhash._namespaces(context)["ex"] == "urn:b:"
    assert eventhash._namespaces([context[0], {"ex": "urn:a:"}])["ex"] == "urn:a:"


def test_a_deep_context_is_hashed_as_any_other() -> None:
    """A context nested far deeper than the interpreter's recursion allows is compared and kept by no
    one: the hash takes it as it takes any context (only its objects' string members bind prefixes)."""
    deep: Any = "urn:leaf"
    for _ in range(100_000):
        deep = [deep]
    event = {**SHIPPING, "@context": [{"ex": "urn:a:"}, deep]}
    for _ in range(2):
        assert event_hash(event) == event_hash({**SHIPPING, "@context": [{"ex": "urn:a:"}]})
