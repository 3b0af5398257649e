"""Tests: EPCIS capture (API and CLI) of GS1's examples and all five event types, the sensor rule,
all-or-nothing, export validating against GS1's schema, and the EPCIS event query."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
import pytest
from fastapi.testclient import TestClient
from process_support import as_url
from typer.testing import CliRunner

from coldchain.cli import app as cli_app
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.epcis import capture, documents, validation
from traceability.epcis.eventhash import HASH_PREFIX, event_hash

EXAMPLES = Path(__file__).resolve().parent / "data" / "gs1-epcis-examples"
SCHEMA = json.loads((Path(validation.__file__).parent / "schema" / "EPCIS-JSON-Schema.json").read_text())
CTX = [
    "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
    {"ex": "http://ns.example.com/epcis/"},
]


def _example_files() -> list[Path]:
    files = sorted(EXAMPLES.glob("*.jsonld"))
    assert len(files) >= 10
    return files


def _doc(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "@context": CTX,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-03-01T00:00:00.000Z",
        "epcisBody": {"eventList": events},
    }


BASE = {"eventTime": "2026-03-01T08:00:00.000+08:00", "eventTimeZoneOffset": "+08:00"}
FIVE = [
    {
        **BASE,
        "type": "ObjectEvent",
        "action": "OBSERVE",
        "epcList": ["urn:epc:id:sgtin:6901234.012345.1001"],
        "bizStep": "shipping",
        "readPoint": {"id": "urn:epc:id:sgln:6901234.00001.3"},
        "sensorElementList": [
            {
                "sensorMetadata": {"deviceID": "urn:epc:id:giai:6901234.L1"},
                "sensorReport": [{"type": "Temperature", "value": 3.5, "uom": "CEL"}],
            }
        ],
    },
    {
        **BASE,
        "type": "AggregationEvent",
        "action": "ADD",
        "parentID": "urn:epc:id:sscc:6901234.0000000042",
        "childEPCs": ["urn:epc:id:sgtin:6901234.012345.1001"],
        "bizStep": "packing",
    },
    {
        **BASE,
        "type": "TransactionEvent",
        "action": "ADD",
        "bizTransactionList": [{"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:6901234000004:PO1"}],
        "epcList": ["urn:epc:id:sscc:6901234.0000000042"],
    },
    {
        **BASE,
        "type": "TransformationEvent",
        "inputQuantityList": [
            {"epcClass": "urn:epc:class:lgtin:6901234.012345.RAW1", "quantity": 10, "uom": "KGM"}
        ],
        "outputQuantityList": [
            {"epcClass": "urn:epc:class:lgtin:6901234.012345.OUT1", "quantity": 9, "uom": "KGM"}
        ],
        "bizStep": "commissioning",
    },
    {
        **BASE,
        "type": "AssociationEvent",
        "action": "ADD",
        "parentID": "urn:epc:id:grai:4000001.12345.1",
        "childEPCs": ["urn:epc:id:giai:4000001.TEMP1"],
        "bizStep": "assembling",
    },
]


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with psycopg.connect(db_url) as conn:
        key = create_key(conn, "admin", "capture-test")
    with TestClient(create_app(db_url), raise_server_exceptions=False, headers={"X-API-Key": key}) as c:
        yield c


def _count(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM ledger_event").fetchone()
        assert row is not None
        return int(row[0])


# GS1's two "all possible fields" showcases put time/deviceID/... in both sensorMetadata and sensorReport,
# which the EPCIS 2.0 standard forbids (and capture refuses): they are refused as they are, and captured
# once the report-level copies are removed (everything else in them is exercised).
BOTH_PLACES = {"aggregation_event_all_possible_fields.jsonld", "object_event_all_possible_fields.jsonld"}


def _without_report_duplicates(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for event in doc["epcisBody"]["eventList"]:
        for element in event.get("sensorElementList", ()):
            meta = element.get("sensorMetadata", {})
            for report in element["sensorReport"]:
                for attr in capture.SHARED_SENSOR_ATTRIBUTES:
                    if attr in meta:
                        report.pop(attr, None)
    return doc


def _rehash(doc: dict[str, Any]) -> bool:
    """Give each event whose eventID is in hash form its true hash; True if any was not."""
    changed = False
    for event in capture.events_of(doc):
        given = event.get("eventID", "")
        if given.startswith(HASH_PREFIX) and given != event_hash(event):
            index = doc["epcisBody"]["eventList"].index({k: v for k, v in event.items() if k != "@context"})
            doc["epcisBody"]["eventList"][index]["eventID"] = event_hash(event)
            changed = True
    return changed


def test_gs1_examples_capture_and_export_validates(client: TestClient, db_url: str) -> None:
    total = 0
    for path in _example_files():
        doc = json.loads(path.read_text())
        if path.name in BOTH_PLACES:
            refused = client.post("/epcis/capture", json=doc)
            assert refused.status_code == 400
            assert "both sensorMetadata and sensorReport" in refused.text
            doc = _without_report_duplicates(doc)
        as_given = copy.deepcopy(doc)
        if _rehash(doc):  # GS1's hash eventIDs are placeholders, not the events' hashes: refused as they are
            refused = client.post("/epcis/capture", json=as_given)
            assert refused.status_code == 400
            assert "a hash eventID that is not the event's hash" in refused.text
        declaring = [e for e in doc["epcisBody"]["eventList"] if "errorDeclaration" in e]
        if declaring:  # declarations of events that are in no ledger here: refused, then captured without
            refused = client.post("/epcis/capture", json=doc)
            assert refused.status_code == 400
            assert "to declare wrong" in refused.text
            for event in declaring:
                del event["errorDeclaration"]
        response = client.post("/epcis/capture", json=doc)
        assert response.status_code == 202, (path.name, response.text)
        location = response.headers["Location"]
        job = client.get(location).json()
        assert job["success"] is True
        assert job["running"] is False
        assert job["events"] == len(doc["epcisBody"]["eventList"])
        total += job["events"]
    assert _count(db_url) == total
    exported = client.get("/epcis/events", params={"perPage": 1000}).json()
    events = exported["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert len(events) == total
    jsonschema.validate(exported, SCHEMA)
    with psycopg.connect(db_url) as conn:
        stored = [r[0] for r in conn.execute("SELECT event FROM ledger_event ORDER BY seq")]
    jsonschema.validate(documents.export_document(stored), SCHEMA)
    assert client.get("/ledger/verify").json()["ok"] is True


def test_all_five_event_types(client: TestClient, db_url: str) -> None:
    response = client.post("/epcis/capture", json=_doc(copy.deepcopy(FIVE)))
    assert response.status_code == 202, response.text
    with psycopg.connect(db_url) as conn:
        types = [r[0] for r in conn.execute("SELECT event_type FROM ledger_event ORDER BY seq")]
        lineage = conn.execute("SELECT input_id, output_id FROM lineage").fetchall()
    assert types == [e["type"] for e in FIVE]
    assert lineage == [("urn:epc:class:lgtin:6901234.012345.RAW1", "urn:epc:class:lgtin:6901234.012345.OUT1")]


def test_sensor_attributes_in_both_places_refused_all_or_nothing(client: TestClient, db_url: str) -> None:
    bad = copy.deepcopy(FIVE)
    bad[0]["sensorElementList"][0]["sensorReport"][0]["deviceID"] = "urn:epc:id:giai:6901234.L2"
    response = client.post("/epcis/capture", json=_doc(bad))
    assert response.status_code == 400
    body = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "deviceID" in body["errors"][0]["message"]
    assert _count(db_url) == 0  # the four good events were not captured either
    job = client.get(f"/epcis/capture/{body['captureID']}").json()
    assert job["success"] is False


def test_schema_violation_refused(client: TestClient, db_url: str) -> None:
    bad = copy.deepcopy(FIVE)
    bad[1]["action"] = "SHOUT"
    response = client.post("/epcis/capture", json=_doc(bad))
    assert response.status_code == 400
    assert _count(db_url) == 0
    assert client.post("/epcis/capture", json={"type": "nope"}).status_code == 400
    # An event that is not a JSON object: refused with the schema's reason, not a server error.
    response = client.post("/epcis/capture", json=_doc([*copy.deepcopy(FIVE[:2]), "not an event"]))  # type: ignore[list-item]
    assert response.status_code == 400
    assert "eventList[2]" in response.json()["detail"]
    assert _count(db_url) == 0


def test_capture_needs_the_capture_role(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        inspector = create_key(conn, "inspector", "i")
        writer = create_key(conn, "capture", "c")
    with TestClient(create_app(db_url), raise_server_exceptions=False) as c:
        doc = _doc(copy.deepcopy(FIVE[:1]))
        assert c.post("/epcis/capture", json=doc).status_code == 401
        assert c.post("/epcis/capture", json=doc, headers={"X-API-Key": inspector}).status_code == 403
        ok = c.post("/epcis/capture", json=doc, headers={"Authorization": f"Bearer {writer}"})
        assert ok.status_code == 202
        assert c.get("/trace/x", headers={"X-API-Key": writer}).status_code == 403


def test_cli_import(db_url: str, server_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", as_url(db_url))
    monkeypatch.setenv("COLDCHAIN_HOME", str(server_tmp))
    runner = CliRunner()
    good = server_tmp / "good.json"
    doc = json.loads(_example_files()[0].read_text())
    _rehash(doc)
    good.write_text(json.dumps(doc))
    result = runner.invoke(cli_app, ["ledger", "import", str(good)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["success"] is True
    bad = server_tmp / "bad.json"
    doc = _doc(copy.deepcopy(FIVE))
    doc["epcisBody"]["eventList"][0]["sensorElementList"][0]["sensorReport"][0]["time"] = BASE["eventTime"]
    doc["epcisBody"]["eventList"][0]["sensorElementList"][0]["sensorMetadata"]["time"] = BASE["eventTime"]
    bad.write_text(json.dumps(doc))
    before = _count(db_url)
    result = runner.invoke(cli_app, ["ledger", "import", str(bad)])
    assert result.exit_code == 1
    assert _count(db_url) == before


def test_event_query_filters_and_pages(client: TestClient) -> None:
    events = []
    for i in range(7):
        events.append(
            {
                **BASE,
                "eventTime": f"2026-03-01T0{i}:00:00.000Z",
                "type": "ObjectEvent",
                "action": "OBSERVE",
                "epcList": [f"urn:epc:id:sscc:6901234.000000010{i}"],
                "bizStep": "shipping" if i % 2 else "receiving",
                "readPoint": {"id": "urn:epc:id:sgln:6901234.00001.3"},
                "bizLocation": {"id": "urn:epc:id:sgln:6901234.00002.0"},
                "sensorElementList": [
                    {"sensorReport": [{"type": "Temperature", "maxValue": 2.0 + i, "uom": "CEL"}]}
                ],
            }
        )
    assert client.post("/epcis/capture", json=_doc(events)).status_code == 202

    def ids(params: dict[str, Any]) -> list[str]:
        body = client.get("/epcis/events", params=params).json()
        return [e["epcList"][0][-1] for e in body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]]

    assert ids({"EQ_bizStep": "shipping"}) == ["1", "3", "5"]
    assert ids({"EQ_bizStep": "https://ref.gs1.org/cbv/BizStep-shipping"}) == ["1", "3", "5"]
    assert ids({"GE_eventTime": "2026-03-01T02:00:00Z", "LT_eventTime": "2026-03-01T04:00:00Z"}) == ["2", "3"]
    assert ids({"MATCH_epc": "urn:epc:id:sscc:6901234.0000000104"}) == ["4"]
    assert ids({"EQ_readPoint": "urn:epc:id:sgln:6901234.00001.3", "EQ_bizLocation": "x"}) == []
    # 6.5 °C = 279.65 K: a query in kelvin matches data stored in Celsius, and in Fahrenheit too.
    assert ids({"GE_maxValue_Temperature": "279.65", "uom": "KEL"}) == ["5", "6"]
    assert ids({"GE_maxValue_Temperature": "279.65"}) == ["5", "6"]
    assert ids({"GE_maxValue_Temperature": "43.7", "uom": "FAH"}) == ["5", "6"]
    assert ids({"LE_maxValue_Temperature": "3", "uom": "CEL"}) == ["0", "1"]
    # pagination: 3 per page, following the token
    seen: list[str] = []
    params: dict[str, Any] = {"perPage": 3}
    while True:
        response = client.get("/epcis/events", params=params)
        seen += [
            e["epcList"][0][-1]
            for e in response.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        ]
        token = response.headers.get("GS1-Next-Page-Token")
        if token is None:
            break
        assert 'rel="next"' in response.headers["Link"]
        params = {"perPage": 3, "nextPageToken": token}
    assert seen == [str(i) for i in range(7)]
    assert client.get("/epcis/events", params={"nextPageToken": "garbage!"}).status_code == 400


def test_event_without_canonical_form_refused_all_or_nothing(db_url: str) -> None:
    """An integer beyond ±2^53 has no RFC 8785 form: the document is refused and nothing is appended."""
    good = copy.deepcopy(FIVE[1])
    bad = {**copy.deepcopy(FIVE[0]), "ex:count": 2**60}
    with psycopg.connect(db_url, autocommit=True) as conn:
        job = capture.capture(conn, _doc([good, bad]))
        assert not job.success
        assert "RFC 8785" in job.errors[0]["message"]
        assert conn.execute("SELECT count(*) FROM ledger_event").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM containment").fetchone() == (0,)
        assert capture.capture(conn, _doc([good])).success
        assert conn.execute("SELECT count(*) FROM ledger_event").fetchone() == (1,)


def test_biz_step_uri_forms_are_the_bare_step(client: TestClient, db_url: str) -> None:
    """A bizStep given as its GS1 Web URI is the same step as its bare name (GS1's schema refuses the EPCIS
    1.x URN in a document): EQ_bizStep matches it in any form, the ledger row holds the name, and a custody
    step starts a custody leg either way."""
    forms = ["receiving", "https://ref.gs1.org/cbv/BizStep-receiving"]
    events = [
        {
            **BASE,
            "eventTime": f"2026-03-01T0{i}:00:00.000Z",
            "type": "ObjectEvent",
            "action": "OBSERVE",
            "epcList": [f"urn:epc:id:sscc:6901234.000000020{i}"],
            "bizStep": form,
            "readPoint": {"id": "urn:epc:id:sgln:6901234.00001.3"},
        }
        for i, form in enumerate(forms)
    ]
    assert client.post("/epcis/capture", json=_doc(events)).status_code == 202
    for asked in ("receiving", forms[1], "urn:epcglobal:cbv:bizstep:receiving"):
        body = client.get("/epcis/events", params={"EQ_bizStep": asked}).json()
        found = body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        assert [e["bizStep"] for e in found] == forms  # served as captured
    with psycopg.connect(db_url) as conn:
        steps = conn.execute("SELECT biz_step FROM ledger_event ORDER BY seq").fetchall()
        legs = conn.execute("SELECT epc FROM custody_leg ORDER BY epc").fetchall()
    assert steps == [("receiving",)] * 2
    assert legs == [(e["epcList"][0],) for e in events]


def test_constraint_refusal_is_a_refused_job(db_url: str) -> None:
    """When the database's constraints refuse what capture writes, the document is refused and the job
    recorded with the reason (no crash); nothing of it is appended."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE ledger_event ADD CONSTRAINT no_transformations"
            " CHECK (event_type <> 'TransformationEvent')"
        )
        job = capture.capture(conn, _doc(copy.deepcopy(FIVE)))
        assert not job.success
        assert "rejected by the database" in job.errors[0]["message"]
        assert "no_transformations" in job.errors[0]["message"]
        stored = capture.get_job(conn, job.capture_id)
        assert stored is not None
        assert stored.errors == job.errors
    assert _count(db_url) == 0
