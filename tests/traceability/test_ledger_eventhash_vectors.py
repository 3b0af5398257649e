"""Tests: the CBV 2.0 event hash of published example documents, event by event: the reference
implementation's own vectors (``data/hash-vectors``, with its expected pre-hash strings) and GS1's EPCIS 2.0
examples (``data/gs1-epcis-examples``, every JSON file there, against the installed reference 1.9.3).

Where a published expected string departs from CBV 2.0 section 8.9, the event's entry in ``DEPARTURES``
names the clause and how the published string is read back to the standard's form; we hash the standard's.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_ledger_eventhash_reference import reference_prehashes

from traceability.epcis.capture import events_of
from traceability.epcis.eventhash import event_hash, prehash_string

DATA = Path(__file__).parent / "data"
VECTORS = DATA / "hash-vectors"
GS1_EXAMPLES = DATA / "gs1-epcis-examples"


def _doc(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


# How a published pre-hash string departs from CBV 2.0 8.9, and its standard form.
Rewrite = Callable[[str, dict[str, Any]], str]


def _gs1_vocabulary(published: str, event: dict[str, Any]) -> str:
    """CBV 2.0 8.9 CURIE rule: ``gs1`` expands to ``https://gs1.org/voc/`` (the EPCIS 2.0 context's binding,
    the rule's own example); the published strings use ``https://ref.gs1.org/voc/``."""
    return published.replace("=https://ref.gs1.org/voc/", "=https://gs1.org/voc/")


def _certification_info(published: str, event: dict[str, Any]) -> str:
    """CBV 2.0 8.9 canonical property order, item 3: certificationInfo is hashed; the published strings
    leave it out."""
    values = event["certificationInfo"]
    text = "".join(
        sorted("certificationInfo=" + v for v in (values if isinstance(values, list) else [values]))
    )
    return re.sub(r"(eventTimeZoneOffset=[+-]\d\d:\d\d)", lambda m: m.group(1) + text, published, count=1)


def _sensor_element_list(published: str, event: dict[str, Any]) -> str:
    """CBV 2.0 8.9 list rule: a list's name appears once in the pre-hash string; the published strings leave
    ``sensorElementList`` out."""
    return published.replace("sensorElement", "sensorElementListsensorElement", 1)


def _local_curie(curie: str, uri: str) -> Rewrite:
    def rewrite(published: str, event: dict[str, Any]) -> str:
        """CBV 2.0 8.9 CURIE rule: any CURIE is expanded, with the document's own prefixes too; the
        published string leaves a sensor type CURIE as it is."""
        return published.replace("type=" + curie, "type=" + uri)

    return rewrite


PLACEMENT = "extensions in place"
"""CBV 2.0 8.9 extension rule: extensions inside readPoint, bizLocation, sensorElement, sensorMetadata and
sensorReport go at the end of their enclosing parent's regular fields; the published strings repeat those
parents after everything else and put the extensions there. For these events the test compares the
strings' parts, not their order (the order is 1.9.3's and ours: ``test_placement_follows_1_9_3``)."""

DEPARTURES: dict[tuple[str, int], tuple[Rewrite | str, ...]] = {
    ("CertificationInfoAndSensorReportWithCRS", 0): (
        _certification_info,
        _sensor_element_list,
        _gs1_vocabulary,
        PLACEMENT,
    ),
    ("ObjectEvent_all_possible_fields", 0): (
        _certification_info,
        _sensor_element_list,
        _gs1_vocabulary,
        PLACEMENT,
    ),
    ("TimeStampRoundOff", 2): (_certification_info, _sensor_element_list, _gs1_vocabulary),
    ("TransformationEventWithUserExtensions", 0): (
        _sensor_element_list,
        _gs1_vocabulary,
        _local_curie("example:someSensorProperty", "http://ns.example.com/epcis/someSensorProperty"),
        PLACEMENT,
    ),
    ("epcisDocWithSensorComponent", 0): (_sensor_element_list, _gs1_vocabulary),
}

_PARTS = re.compile(
    r"(?=\{)|(?=sensorElement)|(?=sensorMetadata)|(?=sensorReport)|(?=readPoint)|(?=bizLocation)|(?=ilmd)"
)
_PARENTS = {"sensorElement", "sensorMetadata", "sensorReport", "readPoint", "bizLocation"}


def _vector_cases() -> list[tuple[str, int, dict[str, Any], str]]:
    cases: list[tuple[str, int, dict[str, Any], str]] = []
    for path in sorted(VECTORS.glob("*.json*")):
        doc = _doc(path)
        lines = path.with_suffix(".prehashes").read_text(encoding="utf-8").splitlines()
        events = events_of(doc, None)
        assert len(events) == len(lines), path.name
        cases.extend((path.stem, i, e, line) for i, (e, line) in enumerate(zip(events, lines, strict=True)))
    return cases


VECTOR_CASES = _vector_cases()


@pytest.mark.parametrize(
    ("name", "index", "event", "published"), VECTOR_CASES, ids=[f"{c[0]}[{c[1]}]" for c in VECTOR_CASES]
)
def test_published_vectors(name: str, index: int, event: dict[str, Any], published: str) -> None:
    ours = prehash_string(event)
    departures = DEPARTURES.get((name, index), ())
    if not departures:
        assert ours == published
        digest = hashlib.sha256(published.encode("utf-8")).hexdigest()
        assert event_hash(event) == f"ni:///sha-256;{digest}?ver=CBV2.0"
        return
    assert ours != published  # a departure the published string no longer has: drop its entry
    standard = published
    for departure in departures:
        if callable(departure):
            standard = departure(standard, event)
    if PLACEMENT in departures:
        ours_parts, standard_parts = Counter(_PARTS.split(ours)), Counter(_PARTS.split(standard))
        assert ours_parts - standard_parts == Counter()
        assert set(standard_parts - ours_parts) <= _PARENTS  # the repeated, emptied parents only
    else:
        assert ours == standard


def test_every_vector_departure_names_an_event() -> None:
    assert set(DEPARTURES) <= {(c[0], c[1]) for c in VECTOR_CASES}


def test_placement_follows_1_9_3() -> None:
    """The extension placement of the PLACEMENT events is 1.9.3's (which reads this document unchanged)."""
    doc = _doc(VECTORS / "CertificationInfoAndSensorReportWithCRS.jsonld")
    (event,) = events_of(doc, None)
    assert [prehash_string(event)] == reference_prehashes(doc)


def test_query_document_events_hash_like_a_documents() -> None:
    """An EPCISQueryDocument's events (queryResults.resultsBody.eventList) are hashed as the same events in
    an EPCISDocument would be, and carry the document's @context."""
    query = _doc(VECTORS / "epcisQueryDocument.jsonld")
    events = events_of(query, None)
    assert len(events) == 2
    assert all(e["@context"] == query["@context"] for e in events)
    plain = {
        **query,
        "type": "EPCISDocument",
        "epcisBody": {"eventList": query["epcisBody"]["queryResults"]["resultsBody"]["eventList"]},
    }
    assert [event_hash(e) for e in events] == [event_hash(e) for e in events_of(plain, None)]
    single = {**plain, "epcisBody": {"event": plain["epcisBody"]["eventList"][1]}}
    assert [event_hash(e) for e in events_of(single, None)] == [event_hash(events[1])]
    assert events_of({"epcisBody": {"queryResults": {}}}, None) == []
    bare = {k: v for k, v in plain.items() if k != "@context"}
    assert all("@context" not in e for e in events_of(bare, None))
    assert all(e["@context"] == ["x"] for e in events_of(bare, default_context=["x"]))
    assert events_of(plain, default_context=["x"])[0]["@context"] == query["@context"]


GS1_FILES = sorted(p for p in GS1_EXAMPLES.iterdir() if p.suffix in (".json", ".jsonld"))


@pytest.mark.parametrize("path", GS1_FILES, ids=[p.name for p in GS1_FILES])
def test_gs1_examples_equal_reference(path: Path) -> None:
    """Every event of every GS1 example hashes as the reference 1.9.3 hashes it (with the neutral changes of
    ``test_ledger_eventhash_reference``, which name the clauses where 1.9.3 departs from CBV 2.0 8.9)."""
    doc = _doc(path)
    assert [prehash_string(e) for e in events_of(doc, None)] == reference_prehashes(doc)
