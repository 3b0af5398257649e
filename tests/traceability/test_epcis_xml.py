"""Tests: EPCIS 2.0 / 1.2 XML capture (GS1's and the reference implementation's XML examples), the XML
form's event hashes against the JSON form's and the reference's, the hardened parser's refusals, the
``Accept: application/xml`` events query, and the JSON -> XML -> JSON round trip of event hashes."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from capture_support import captured, refused
from epcis_event_hash_generator.__main__ import epcis_hash_from_file
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from process_support import as_url
from typer.testing import CliRunner

from coldchain.cli import app as cli_app
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.api.options import ApiOptions
from traceability.epcis import capture, validation
from traceability.epcis import xml as epcis_xml
from traceability.epcis.eventhash import event_hash

DATA = Path(__file__).resolve().parent / "data"
XML_DIR = DATA / "gs1-epcis-xml"
JSON_EXAMPLES = DATA / "gs1-epcis-examples"
EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"

# Every XML example, and what capture makes of it: None = captured as it is; else (where, the reason).
# The refusals are the standard's: GS1's JSON Schema (persistentDisposition is not an AggregationEvent or
# AssociationEvent field; ilmd only with action ADD; GS1's measurement types; a sensorReport has a type),
# the 1.2 schema's rule that extension elements have a namespace, capture's rule that an errorDeclaration
# names an event in the ledger, and capture's rule that a hash eventID is the event's CBV 2.0 hash (the
# reference's query document carries the eventIDs an earlier version of its algorithm gave GS1's 9.6.1
# events; 1.9.3 and we agree on their hashes today).
EXPECTED: dict[str, tuple[str, str] | None] = {
    "gs1-1.2-ErrorDeclarationAndCorrectiveEvent.xml": (
        "/epcisBody/eventList/0/errorDeclaration",
        "to declare wrong",
    ),
    "gs1-1.2-ObjectEvent.xml": (
        "/epcisBody/eventList/1/myField",
        "<myField> is not an EPCIS field; an extension needs a namespace",
    ),
    "gs1-1.2-TransformationEvent.xml": None,
    "gs1-2.0-Example-PersistentDisposition.xml": ("/epcisBody/eventList/0", "EPCIS 2.0 JSON Schema"),
    "gs1-2.0-SensorDataExamples.xml": (
        "/epcisBody/eventList/7/sensorElementList/0/sensorReport/1/type",
        "sensorElementList[0].sensorReport[1].type",
    ),
    "gs1-2.0-association_event_all_possible_fields.xml": ("/epcisBody/eventList/0", "EPCIS 2.0 JSON Schema"),
    "gs1-2.0-object_event_all_possible_fields.xml": ("/epcisBody/eventList/0", "EPCIS 2.0 JSON Schema"),
    "ref-ReferenceEventHashAlgorithm.xml": None,
    "ref-ReferenceEventHashAlgorithm2.xml": (
        "/epcisBody/eventList/0/sensorElementList/0/sensorReport/1/type",
        "sensorReport[1].type",
    ),
    "ref-ReferenceEventHashAlgorithm3.xml": None,
    "ref-epcisDocWithSensorComponent.xml": None,
    "ref-epcisQueryDocument.xml": (
        "/epcisBody/queryResults/resultsBody/eventList/0/eventID",
        "a hash eventID that is not the event's hash",
    ),
}  # fmt: skip


def _xml_files() -> list[Path]:
    files = sorted(XML_DIR.glob("*.xml"))
    assert {f.name for f in files} == set(EXPECTED)
    return files


def _events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A mapped document's events (EPCISDocument or EPCISQueryDocument), each with the document's context."""
    body = doc["epcisBody"]
    events = body["eventList"] if "eventList" in body else body["queryResults"]["resultsBody"]["eventList"]
    return [{**e, "@context": doc["@context"]} for e in events]


def _parsed(name: str) -> dict[str, Any]:
    return epcis_xml.document_from_xml((XML_DIR / name).read_bytes())


def _refusal(raw: bytes) -> list[capture.CaptureError]:
    with pytest.raises(capture.CaptureRefusedError) as refused:
        capture.parse_document(raw)
    return refused.value.errors


def _count(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM ledger_event").fetchone()
        assert row is not None
        return int(row[0])


# -- every example: captured, or refused for the standard's reason ------------------------------------------


def test_every_xml_example_captures_or_is_refused_for_its_reason(db_url: str) -> None:
    captured = 0
    with psycopg.connect(db_url, autocommit=True) as conn:
        for path in _xml_files():
            job = capture.capture_bytes(conn, path.read_bytes(), captured_by="xml-test")
            expected = EXPECTED[path.name]
            if expected is None:
                assert job.success, (path.name, job.errors)
                assert job.events == len(_events(_parsed(path.name)))
                captured += job.events
            else:
                where, reason = expected
                assert not job.success, path.name
                assert any(e["path"] == where and reason in e["message"] for e in job.errors), (
                    path.name,
                    job.errors,
                )
    assert captured == 4
    assert _count(db_url) == captured


def test_schema_refusals_are_exactly_the_named_fields(db_url: str) -> None:
    """Each schema-refused example captures once its one named violation is mended: the rest of it maps to
    valid EPCIS 2.0."""
    fixes = {
        "gs1-2.0-Example-PersistentDisposition.xml": lambda e: e.pop("persistentDisposition"),
        "gs1-2.0-association_event_all_possible_fields.xml": lambda e: e.pop("persistentDisposition"),
        "gs1-2.0-object_event_all_possible_fields.xml": lambda e: e.update(action="ADD"),
        "ref-ReferenceEventHashAlgorithm2.xml": lambda e: e["sensorElementList"][0].update(
            sensorReport=e["sensorElementList"][0]["sensorReport"][:1]
        ),
    }
    # GS1's sensor data examples: cases 8, 9 and 11 use types GS1's schema does not have (or none); case 12
    # declares an event that is in no ledger here.
    sensor_data = _parsed("gs1-2.0-SensorDataExamples.xml")
    events = sensor_data["epcisBody"]["eventList"]
    refused = [
        i
        for i, e in enumerate(events)
        if capture.check_document({**sensor_data, "epcisBody": {"eventList": [e]}})
    ]
    assert refused == [7, 8, 10]
    sensor_data["epcisBody"]["eventList"] = [e for i, e in enumerate(events) if i not in refused]
    del sensor_data["epcisBody"]["eventList"][-3]["errorDeclaration"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        job = capture.capture(conn, sensor_data)
        assert job.success, job.errors
        assert job.events == 11
        for name, fix in fixes.items():
            doc = _parsed(name)
            for event in doc["epcisBody"]["eventList"]:
                fix(event)
                for element in event.get("sensorElementList", ()):  # GS1's showcases repeat the metadata
                    for report in element["sensorReport"]:
                        for attr in capture.SHARED_SENSOR_ATTRIBUTES:
                            if attr in element.get("sensorMetadata", {}):
                                report.pop(attr, None)
            job = capture.capture(conn, doc)
            assert job.success, (name, job.errors)


def test_error_declaration_captures_once_the_declared_event_is_in_the_ledger(db_url: str) -> None:
    name = "gs1-1.2-ErrorDeclarationAndCorrectiveEvent.xml"
    doc = _parsed(name)
    original = copy.deepcopy(doc)
    del original["epcisBody"]["eventList"][0]["errorDeclaration"]
    original["epcisBody"]["eventList"] = original["epcisBody"]["eventList"][:1]
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert capture.capture(conn, original).success
        job = capture.capture_bytes(conn, (XML_DIR / name).read_bytes())
        assert job.success, job.errors
    declared = doc["epcisBody"]["eventList"][0]
    assert declared["eventID"] == "urn:uuid:374d95fc-9457-4a51-bd6a-0bba133845a8"  # from <baseExtension>
    assert declared["errorDeclaration"] == {
        "example:vendorExtension": "Test1",
        "declarationTime": "2020-01-15T00:00:00+01:00",
        "reason": "incorrect_data",
        "correctiveEventIDs": ["urn:uuid:404d95fc-9457-4a51-bd6a-0bba133845a8"],
    }
    # <quantity xsi:nil="true"/>: a quantity element with no quantity
    assert declared["inputQuantityList"] == [{"epcClass": "urn:epc:class:lgtin:4012345.022222.87545GHGH"}]


# -- the mapping --------------------------------------------------------------------------------------------


def test_mapping_of_the_all_fields_example() -> None:
    doc = _parsed("gs1-2.0-object_event_all_possible_fields.xml")
    assert doc["type"] == "EPCISDocument"
    assert doc["@context"][0] == EPCIS_CONTEXT
    assert {"ext1": "http://ext.com/ext1/"} in doc["@context"]
    assert {"cbvmda": "urn:epcglobal:cbv:mda"} in doc["@context"]
    (event,) = doc["epcisBody"]["eventList"]
    assert event["type"] == "ObjectEvent"
    assert event["bizStep"] == "receiving"  # the CBV URN as the JSON binding's bare word
    assert event["bizTransactionList"][0] == {
        "type": "po",
        "bizTransaction": "urn:epc:id:gdti:0614141.00001.1618034",
    }
    assert event["sourceList"][1] == {"type": "possessing_party", "source": "urn:epc:id:pgln:4012345.00225"}
    assert event["quantityList"] == [
        {"epcClass": "urn:epc:class:lgtin:4012345.012345.998877", "quantity": 200, "uom": "KGM"}
    ]
    assert event["persistentDisposition"] == {
        "unset": ["completeness_inferred"],
        "set": ["completeness_verified"],
    }
    element = event["sensorElementList"][0]
    assert element["sensorMetadata"]["ext1:someFurtherMetadata"] == "someText"
    report = element["sensorReport"][0]
    assert report["type"] == "Temperature"
    assert report["value"] == 26.0
    assert report["booleanValue"] is True
    assert report["percRank"] == 50
    assert element["ext1:int"] == 10  # xsi:type xsd:integer
    assert element["ext1:boolean"] is True
    assert element["ext1:default"] == "stringAsDefaultValue"
    assert event["ilmd"]["cbvmda:netWeight"] == {"measurementUnitCode": "KGM", "#text": "3.5"}
    assert event["ext1:array"][:5] == [12, 22, "2013-06-08T14:58:56.591Z", True, "stringInArray"]
    assert event["ext1:object"]["ext2:object"] == {"ext3:string": "stringInObjectInObject"}
    assert event["ext1:array"][5]["ext1:object"]["ext2:array"] == [14, 23.0, "stringInArrayInObjectInArray"]


def test_1_2_extension_wrappers_are_flattened() -> None:
    (event,) = _parsed("ref-ReferenceEventHashAlgorithm3.xml")["epcisBody"]["eventList"]
    assert event["sourceList"] == [{"type": "owning_party", "source": "urn:epc:id:pgln:4012345.00000"}]
    assert event["readPoint"]["example:myField1"] == "AB-12"
    (sensor,) = _parsed("ref-ReferenceEventHashAlgorithm2.xml")["epcisBody"]["eventList"]
    assert len(sensor["sensorElementList"][0]["sensorReport"]) == 4  # <extension><extension>
    nested = MINIMAL % (
        b"<sensorElementList><sensorElement><extension><sensorReport type='gs1:Temperature' value='4'/>"
        b"</extension></sensorElement></sensorElementList>"
    )
    (element,) = capture.parse_document(nested)["epcisBody"]["eventList"][0]["sensorElementList"]
    assert element == {"sensorReport": [{"type": "Temperature", "value": 4}]}
    (transformation,) = _parsed("gs1-1.2-TransformationEvent.xml")["epcisBody"]["eventList"]
    assert transformation["type"] == "TransformationEvent"  # <EventList><extension><TransformationEvent>
    assert transformation["ilmd"] == {"example:bestBeforeDate": "2014-12-10", "example:batch": "XYZ"}


def test_one_namespace_one_prefix_and_no_scheme_prefix() -> None:
    """ReferenceEventHashAlgorithm.xml binds one namespace to ``https`` and to ``example``: the JSON keys
    use one prefix, never one that reads as a URI scheme."""
    doc = _parsed("ref-ReferenceEventHashAlgorithm.xml")
    (event,) = doc["epcisBody"]["eventList"]
    namespaces = [item for item in doc["@context"][1:]]
    assert namespaces == [{"example": "https://ns.example.com/epcis"}]
    assert event["example:myField2"] == "0"
    assert event["example:myField3"] == {"example:mySubField3": ["3", "1"]}


# -- hashes: the XML form against the JSON form and the reference implementation ----------------------------


def test_xml_and_json_forms_of_the_same_events_hash_equal() -> None:
    # GS1's EPCIS 2.0 example 9.6.1 as JSON-LD, and as XML in the reference implementation's query document
    # (whose eventIDs name the same events).
    xml_events = _events(_parsed("ref-epcisQueryDocument.xml"))
    json_doc = json.loads((JSON_EXAMPLES / "Example_9.6.1-ObjectEvent.jsonld").read_text())
    json_events = capture.events_of(json_doc)
    assert len(xml_events) == len(json_events) == 2
    for x, j in zip(xml_events, json_events, strict=True):
        assert x["eventID"] == j["eventID"]
        assert event_hash(x) == event_hash(j)
    # GS1's sensor data examples 1 to 3, as JSON-LD and as the first three cases of the XML examples
    xml_events = _events(_parsed("gs1-2.0-SensorDataExamples.xml"))
    for n in (1, 2, 3):
        json_doc = json.loads((JSON_EXAMPLES / f"SensorDataExample{n}.jsonld").read_text())
        (json_event,) = capture.events_of(json_doc)
        assert event_hash(xml_events[n - 1]) == event_hash(json_event)
    # GS1's persistent disposition example, XML and JSON (a pre-release draft: "isA" for type, "id" for
    # eventID)
    xml_events = _events(_parsed("gs1-2.0-Example-PersistentDisposition.xml"))
    draft = json.loads((XML_DIR / "gs1-2.0-Example-PersistentDisposition.jsonld").read_text())
    json_events = []
    for e in draft["epcisBody"]["eventList"]:
        e = dict(e)
        e["type"], e["eventID"] = e.pop("isA"), e.pop("id")
        json_events.append({**e, "@context": draft["@context"]})
    assert len(xml_events) == len(json_events) == 2
    for x, j in zip(xml_events, json_events, strict=True):
        assert event_hash(x) == event_hash(j)


# Where the reference implementation's XML reader (1.9.3) hashes what the JSON form has not, or orders
# what CBV 2.0 8.9.2 orders otherwise; none of these is a difference of the mapped event.
REFERENCE_XML_DIFFERS = {
    "gs1-1.2-ErrorDeclarationAndCorrectiveEvent.xml": "hashes <quantity xsi:nil> as a value",
    "gs1-2.0-Example-PersistentDisposition.xml": "puts destinationList before sourceList",
    "gs1-2.0-SensorDataExamples.xml": "custom-domain Digital Links, gs1:ALARM_CONDITION, sensor order",
    "gs1-2.0-association_event_all_possible_fields.xml": "hashes xsi:type; sensorElementList order",
    "gs1-2.0-object_event_all_possible_fields.xml": "hashes xsi:type; sensorElementList order",
    "ref-ReferenceEventHashAlgorithm2.xml": "sensorElementList before bizTransactionList (README)",
    "ref-ReferenceEventHashAlgorithm3.xml": "puts readPoint extensions and destinationList out of order",
    "ref-epcisDocWithSensorComponent.xml": "constrains custom-domain Digital Links (not implemented here)",
    "gs1-1.2-ObjectEvent.xml": "refused here: an extension element without a namespace",
    "ref-epcisQueryDocument.xml": "reads no EPCISQueryDocument",
}


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - set(REFERENCE_XML_DIFFERS)))
def test_hash_equals_the_reference_implementations_xml_hash(name: str) -> None:
    reference, _ = epcis_hash_from_file(str(XML_DIR / name))
    ours = [event_hash(e) for e in _events(_parsed(name))]
    assert ours == reference


# -- refusals of the hardened parser -------------------------------------------------------------------------

MINIMAL = (
    b'<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0"'
    b' creationDate="2026-03-01T00:00:00Z"><EPCISBody><EventList><ObjectEvent>'
    b"<eventTime>2026-03-01T08:00:00.000+08:00</eventTime><eventTimeZoneOffset>+08:00</eventTimeZoneOffset>"
    b"<epcList><epc>urn:epc:id:sgtin:6901234.012345.1001</epc></epcList><action>OBSERVE</action>"
    b"%s</ObjectEvent></EventList></EPCISBody></epcis:EPCISDocument>"
)
DTD_REFUSED = epcis_xml.DTD_REFUSED


def test_minimal_document_and_a_bare_doctype_are_accepted() -> None:
    for raw in (MINIMAL % b"", b"<!DOCTYPE project>\n" + MINIMAL % b"", b"\xef\xbb\xbf \n" + MINIMAL % b""):
        doc = capture.parse_document(raw)
        assert capture.check_document(doc) == []


@pytest.mark.parametrize(
    "prolog",
    [
        b'<!DOCTYPE d [<!ENTITY e "x">]>',
        b'<!DOCTYPE d SYSTEM "http://127.0.0.1:9/epcis.dtd">',
        b'<!DOCTYPE d PUBLIC "-//X//Y" "epcis.dtd">',
        b'<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
        b'<!DOCTYPE d [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]>',
        b"<!DOCTYPE d [<!ELEMENT d ANY>]>",
    ],
)
def test_dtds_and_entities_are_refused(prolog: bytes) -> None:
    errors = _refusal(prolog + MINIMAL % b"<ex:f xmlns:ex='http://ex/'>&e;</ex:f>".replace(b"&e;", b"v"))
    assert [e.as_dict() for e in errors] == [{"path": "", "message": DTD_REFUSED}]


def test_entity_references_are_never_expanded() -> None:
    # Billion laughs, in element content and in an attribute: refused, never expanded.
    laughs = (
        b'<!DOCTYPE d [<!ENTITY l0 "lol">'
        + b"".join(b'<!ENTITY l%d "%s">' % (i, b"&l%d;" % (i - 1) * 10) for i in range(1, 10))
        + b"]>"
    )
    for body in (b"<ex:f xmlns:ex='http://ex/'>&l9;</ex:f>", b"<ex:f xmlns:ex='http://ex/' a='&l9;'/>"):
        errors = _refusal(laughs + MINIMAL % body)
        assert [e.as_dict() for e in errors] == [{"path": "", "message": DTD_REFUSED}]
    # An entity no DOCTYPE declares: not well-formed, located, with none of the parser's words.
    (error,) = _refusal(MINIMAL % b"<ex:f xmlns:ex='http://ex/'>&undeclared;</ex:f>")
    assert error.message.startswith("not well-formed XML (line 1, column ")
    assert "undeclared" not in error.message


def test_malformed_wrong_root_and_unknown_elements_are_refused_with_their_place() -> None:
    (error,) = _refusal(b"<epcis:EPCISDocument xmlns:epcis='urn:epcglobal:epcis:xsd:2'>\n<EPCISBody>")
    assert error.as_dict() == {"path": "", "message": error.message}
    assert error.message.startswith("not well-formed XML (line 2")
    (error,) = _refusal(b"<html><body/></html>")
    assert error.message == "the root element is <html>, not an EPCISDocument or EPCISQueryDocument"
    errors = _refusal(MINIMAL % b"<bogus>1</bogus>")
    assert [e.as_dict() for e in errors] == [
        {
            "path": "/epcisBody/eventList/0/bogus",
            "message": "<bogus> is not an EPCIS field; an extension needs a namespace",
        }
    ]
    errors = _refusal(
        MINIMAL.replace(b"<ObjectEvent>", b"<Thing>").replace(b"</ObjectEvent>", b"</Thing>") % b""
    )
    assert [e.as_dict() for e in errors] == [
        {"path": "/epcisBody/eventList/0", "message": "<Thing> is not an EPCIS event"}
    ]


def test_event_count_and_reasons_are_bounded() -> None:
    event = MINIMAL[MINIMAL.index(b"<ObjectEvent>") : MINIMAL.index(b"%s")] + b"</ObjectEvent>"
    head, tail = MINIMAL.split(event.removesuffix(b"</ObjectEvent>"))
    many = head + event * (capture.MAX_EVENTS + 50) + tail.replace(b"%s</ObjectEvent>", b"")
    doc = capture.parse_document(many)
    assert len(doc["epcisBody"]["eventList"]) == capture.MAX_EVENTS + 1  # the walk stops one past the limit
    assert [e.as_dict() for e in capture.check_document(doc)] == [
        {"path": "/epcisBody/eventList", "message": f"more than {capture.MAX_EVENTS} events"}
    ]
    limits = capture.CaptureLimits(list_items=10)
    for body, where in (
        (b"<ex:a xmlns:ex='http://ex/'>1</ex:a>" * 50, "/epcisBody/eventList/0"),
        (
            b"<quantityList>"
            + b"<quantityElement><epcClass>c</epcClass></quantityElement>" * 50
            + b"</quantityList>",
            "/epcisBody/eventList/0",
        ),
    ):
        doc = capture.parse_document(MINIMAL % body, limits)
        (mapped,) = doc["epcisBody"]["eventList"]
        assert [len(v) for v in mapped.values() if isinstance(v, list) and len(v) > 1] == [11]  # one past
        assert [e.as_dict() for e in capture.check_document(doc, limits)] == [
            {"path": where, "message": "a list holds more than 10 items"}
        ]
    errors = _refusal(MINIMAL % (b"<bogus/>" * 1000))
    assert len(errors) == epcis_xml.MAX_REASONS
    assert errors[0].path == "/epcisBody/eventList/0/bogus"


def test_depth_and_size_limits() -> None:
    limits = capture.CaptureLimits(depth=8, document_bytes=4096)
    ceiling = 8 + epcis_xml.XML_WRAPPER_LEVELS
    # <EPCISDocument><EPCISBody><EventList><ObjectEvent> + nested extension elements
    shallow = MINIMAL % (b"<ex:a xmlns:ex='http://ex/'>" * 3 + b"v" + b"</ex:a>" * 3)
    assert capture.parse_document(shallow, limits)["epcisBody"]["eventList"][0]["ex:a"] == {
        "ex:a": {"ex:a": "v"}
    }
    # MINIMAL's event is at level 4: seven more levels are the ceiling (8 + 3), eight are one too many
    at_ceiling = MINIMAL % (b"<ex:a xmlns:ex='http://ex/'>" * 7 + b"v" + b"</ex:a>" * 7)
    assert capture.parse_document(at_ceiling, limits)
    deep = MINIMAL % (b"<ex:a xmlns:ex='http://ex/'>" * 8 + b"v" + b"</ex:a>" * 8)
    with pytest.raises(capture.CaptureRefusedError) as refused:
        capture.parse_document(deep, limits)
    assert [e.as_dict() for e in refused.value.errors] == [
        {"path": "", "message": f"nested deeper than {ceiling} levels"}
    ]
    # Beyond what the parser itself allows: refused as not well-formed, before any walk.
    abyss = MINIMAL % (b"<ex:a xmlns:ex='http://ex/'>" * 300 + b"</ex:a>" * 300)
    (error,) = _refusal(abyss)
    assert error.message.startswith("not well-formed XML")
    big = MINIMAL % (b"<ex:a xmlns:ex='http://ex/'>" + b"x" * 5000 + b"</ex:a>")
    with pytest.raises(capture.CaptureRefusedError) as refused:
        capture.parse_document(big, limits)
    assert refused.value.errors[0].too_large


def test_cli_imports_an_xml_file(db_url: str, server_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", as_url(db_url))
    monkeypatch.setenv("COLDCHAIN_HOME", str(server_tmp))
    runner = CliRunner()
    result = runner.invoke(
        cli_app, ["ledger", "import", str(XML_DIR / "ref-epcisDocWithSensorComponent.xml")]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["success"] is True
    refused = server_tmp / "entity.xml"
    refused.write_bytes(b"<!DOCTYPE d [<!ENTITY e 'x'>]>" + MINIMAL % b"")
    result = runner.invoke(cli_app, ["ledger", "import", str(refused)])
    assert result.exit_code == 2  # no document capture can read: as a file that is not JSON
    assert DTD_REFUSED in result.output
    assert _count(db_url) == 1


# -- the API: XML in, XML out -----------------------------------------------------------------------------


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with psycopg.connect(db_url) as conn:
        key = create_key(conn, "admin", "xml-test")
    app = create_app(db_url, options=ApiOptions(capture_worker=True))
    with TestClient(app, raise_server_exceptions=False, headers={"X-API-Key": key}) as c:
        yield c


def test_capture_xml_over_the_api_and_query_it_back_as_xml(client: TestClient, db_url: str) -> None:
    for media in epcis_xml.XML_MEDIA_TYPES:
        raw = (XML_DIR / "gs1-1.2-TransformationEvent.xml").read_bytes()
        response = client.post("/epcis/capture", content=raw, headers={"Content-Type": media})
        captured(client, response)
    response = client.post(
        "/epcis/capture",
        content=b"<!DOCTYPE d [<!ENTITY e 'x'>]>" + MINIMAL % b"",
        headers={"Content-Type": "application/xml"},
    )
    assert refused(client, response, DTD_REFUSED)["errors"] == [{"path": "", "message": DTD_REFUSED}]
    json_doc = json.loads((JSON_EXAMPLES / "Example_9.6.4-TransformationEvent.jsonld").read_text())
    for event in json_doc["epcisBody"]["eventList"]:
        event.pop("eventID", None)
    captured(client, client.post("/epcis/capture", json=json_doc))

    as_json = client.get("/epcis/events")
    assert as_json.headers["content-type"] == "application/json"
    as_xml = client.get("/epcis/events", headers={"Accept": "application/xml"})
    assert as_xml.status_code == 200
    assert as_xml.headers["content-type"] == "application/xml"
    assert as_xml.content.startswith(b"<?xml")
    doc = epcis_xml.document_from_xml(as_xml.content)
    assert doc["type"] == "EPCISQueryDocument"
    from_xml = _events(doc)
    with psycopg.connect(db_url) as conn:  # as stored, each with its own @context
        stored = [r[0] for r in conn.execute("SELECT event FROM ledger_event ORDER BY seq")]
    from_json = as_json.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert len(from_xml) == len(from_json) == 1 + len(json_doc["epcisBody"]["eventList"])
    assert [event_hash(e) for e in from_xml] == [event_hash(e) for e in stored]
    assert [e["eventID"] for e in from_xml] == [e["eventID"] for e in from_json]
    # JSON stays the default and wins a tie
    tie = client.get("/epcis/events", headers={"Accept": "application/json, application/xml"})
    assert tie.headers["content-type"] == "application/json"
    text_xml = client.get("/epcis/events", headers={"Accept": "text/xml, application/json;q=0.5"})
    assert text_xml.headers["content-type"] == "application/xml"


def test_accept_negotiation() -> None:
    assert not epcis_xml.wants_xml(None)
    assert not epcis_xml.wants_xml("*/*")
    assert not epcis_xml.wants_xml("application/json")
    assert epcis_xml.wants_xml("application/xml")
    assert epcis_xml.wants_xml("text/xml;q=0.9, application/json;q=0.1")
    assert not epcis_xml.wants_xml("application/xml;q=0.1, application/ld+json")
    assert not epcis_xml.wants_xml("application/xml;q=oops")


# -- round trip: JSON-LD events -> XML -> JSON-LD events, the same hashes ---------------------------------

NS = {"ex": "http://ns.example.com/epcis/", "cc": "https://ns.coldchain.example/epcis/"}
_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789-_.", min_size=1, max_size=12)
_text = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"), min_size=1
    )
    .map(str.strip)
    .filter(bool)
)
_numbers = st.one_of(
    st.integers(-(10**12), 10**12), st.floats(allow_nan=False, allow_infinity=False, width=64)
)
_keys = st.builds(
    lambda p, w: f"{p}:{w}",
    st.sampled_from(sorted(NS)),
    st.from_regex(r"[a-z][a-zA-Z0-9]{0,8}", fullmatch=True),
)
_scalars = st.one_of(_text, _numbers, st.booleans())
# A list in a list has no XML form (a list is repeated elements): list items are scalars or objects.
_ext_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(
            st.one_of(_scalars, st.dictionaries(_keys, inner, min_size=1, max_size=2)), min_size=2, max_size=3
        ),
        st.dictionaries(_keys, inner, min_size=1, max_size=3),
    ),
    max_leaves=8,
)
_epcs = st.lists(st.builds("urn:epc:id:sgtin:6901234.012345.{}".format, st.integers(1, 10**6)), max_size=4)
_times = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)).map(
    lambda t: t.isoformat(timespec="milliseconds") + "Z"
)


@st.composite
def _event_strategy(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {
        "@context": [EPCIS_CONTEXT, *({k: v} for k, v in NS.items())],
        "type": draw(st.sampled_from(sorted(capture.EVENT_TYPES))),
        "eventTime": draw(_times),
        "eventTimeZoneOffset": draw(st.sampled_from(["+08:00", "-06:00", "+00:00"])),
    }
    if draw(st.booleans()):
        event["eventID"] = f"urn:uuid:{draw(st.uuids())}"
    for field in ("epcList", "childEPCs", "inputEPCList", "outputEPCList"):
        if draw(st.booleans()):
            event[field] = draw(_epcs)
    if draw(st.booleans()):
        event["action"] = draw(st.sampled_from(["ADD", "OBSERVE", "DELETE"]))
    if draw(st.booleans()):
        event["bizStep"] = draw(
            st.sampled_from(["shipping", "receiving", "https://example.com/step", "loading"])
        )
    if draw(st.booleans()):
        event["disposition"] = draw(st.sampled_from(["in_transit", "urn:epcglobal:cbv:disp:active"]))
    if draw(st.booleans()):
        event["readPoint"] = {
            "id": "urn:epc:id:sgln:6901234.00001.3",
            **draw(st.dictionaries(_keys, _ext_values, max_size=2)),
        }
    if draw(st.booleans()):
        event["quantityList"] = [
            {
                "epcClass": "urn:epc:class:lgtin:6901234.012345.L1",
                "quantity": draw(_numbers.filter(lambda n: n >= 0)),
                "uom": "KGM",
            }
        ]
    if draw(st.booleans()):
        event["bizTransactionList"] = [
            {
                "type": draw(st.sampled_from(["po", "bol", "urn:epcglobal:cbv:btt:inv"])),
                "bizTransaction": f"urn:x:{draw(_words)}",
            }
        ]
    if draw(st.booleans()):
        event["destinationList"] = [
            {"type": "possessing_party", "destination": "urn:epc:id:pgln:6901234.00001"}
        ]
    if draw(st.booleans()):
        event["persistentDisposition"] = {
            "set": ["completeness_verified"],
            "unset": ["completeness_inferred"],
        }
    if draw(st.booleans()):
        report = {"type": draw(st.sampled_from(["Temperature", "https://gs1.org/voc/Humidity", "ex:Custom"]))}
        report.update(
            draw(st.dictionaries(st.sampled_from(["value", "minValue", "maxValue", "sDev"]), _numbers))
        )
        if draw(st.booleans()):
            report["booleanValue"] = draw(st.booleans())
        if draw(st.booleans()):
            report["exception"] = "ALARM_CONDITION"
        event["sensorElementList"] = [
            {
                "sensorMetadata": {"deviceID": "urn:epc:id:giai:6901234.L1", "ex:note": draw(_text)},
                "sensorReport": [report],
            }
        ]
    if draw(st.booleans()):
        event["ilmd"] = draw(st.dictionaries(_keys, _ext_values, min_size=1, max_size=3))
    if draw(st.booleans()):
        event["errorDeclaration"] = {
            "declarationTime": draw(_times),
            "reason": draw(st.sampled_from(["incorrect_data", "did_not_occur"])),
            "correctiveEventIDs": [f"urn:uuid:{draw(st.uuids())}"],
        }
    event.update(draw(st.dictionaries(_keys, _ext_values, max_size=3)))
    return event


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_event_strategy(), min_size=1, max_size=4))
def test_json_to_xml_to_json_keeps_every_event_hash(events: list[dict[str, Any]]) -> None:
    doc = epcis_xml.document_from_xml(epcis_xml.events_to_xml(events))
    back = _events_of(doc)
    assert [event_hash(e) for e in back] == [event_hash(e) for e in events]
    assert [e.get("eventID") for e in back] == [e.get("eventID") for e in events]


def _events_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    events = doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    return [{**e, "@context": doc["@context"]} for e in events]


def test_round_trip_keeps_valid_events_valid() -> None:
    """An event GS1's schema accepts is accepted again after XML and back."""
    json_doc = json.loads((JSON_EXAMPLES / "SensorDataExample1.jsonld").read_text())
    events = capture.events_of(json_doc)
    doc = epcis_xml.document_from_xml(epcis_xml.events_to_xml(events))
    body = doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    validation.validate_document({**doc, "type": "EPCISDocument", "epcisBody": {"eventList": body}})
    assert [event_hash(e) for e in _events_of(doc)] == [event_hash(e) for e in events]
