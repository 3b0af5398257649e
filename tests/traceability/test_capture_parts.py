"""Tests: a document checked in parts (as the capture worker checks the document its writer waits for, one
part in each checking process) is the document checked whole: the same reasons to refuse, in the same
order and of the same stage, or the same events prepared (hashes, canonical bytes, row parts) and the
same derivation keys. A property over documents with faults placed anywhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from traceability.epcis import capture
from traceability.epcis.builders import iso_ms

NOW = datetime.now(UTC).replace(microsecond=0)
CTX = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"]

# What may be wrong with an event: nothing, a time in the future (refused as a field), a hash eventID
# that is not its hash (refused as stored), a field the schema refuses or beyond the limits (LIMITS: too
# deep, a list too long; the document refused).
FAULTS = st.sampled_from(["none", "none", "none", "future", "forged_hash", "schema", "deep", "long"])
LIMITS = capture.CaptureLimits(depth=8, list_items=5)


def _event(n: int, fault: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "ObjectEvent" if n % 3 else "AggregationEvent",
        "eventTime": iso_ms(NOW - timedelta(minutes=n)),
        "eventTimeZoneOffset": "+08:00",
        "action": "ADD" if n % 3 == 0 else "OBSERVE",
        "bizStep": "packing" if n % 3 == 0 else "receiving",
        "readPoint": {"id": f"urn:epc:id:sgln:6901234.00001.{n % 4}"},
    }
    if n % 3 == 0:
        event["parentID"] = f"urn:epc:id:sscc:6901234.{n:010d}"
        event["childEPCs"] = [f"urn:epc:id:sgtin:6901234.012345.{n}"]
    else:
        event["epcList"] = [f"urn:epc:id:sgtin:6901234.012345.{n}"]
    if fault == "future":
        event["eventTime"] = iso_ms(NOW + timedelta(days=2))
    elif fault == "forged_hash":
        event["eventID"] = "ni:///sha-256;" + "0" * 64 + "?ver=CBV2.0"
    elif fault == "schema":
        event["action"] = "SOMETIMES"
    elif fault == "deep":
        event["cc:note"] = {"a": {"b": {"c": {"d": {"e": "deeper than LIMITS allow"}}}}}
    elif fault == "long":
        event["cc:readings"] = list(range(LIMITS.list_items + 1))
    return event


def _document(faults: list[str], shape: str = "document") -> bytes:
    events = [_event(n, f) for n, f in enumerate(faults)]
    body: dict[str, Any] = {"eventList": events}
    kind = "EPCISDocument"
    if shape == "query":  # a query's answer, its events in its results
        kind = "EPCISQueryDocument"
        body = {"queryResults": {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": events}}}
    elif shape == "single" and len(events) == 1:  # a body that carries one "event"
        body = {"event": events[0]}
    doc = {"@context": CTX, "type": kind, "schemaVersion": "2.0", "creationDate": iso_ms(NOW)}
    return msgspec.json.encode({**doc, "epcisBody": body})


def _whole_and_parts(raw: bytes, parts: int) -> tuple[capture.Checked, capture.Checked]:
    whole = capture.merged("c", [capture.check_part_bytes(raw, LIMITS, now=NOW)])
    split = capture.merged(
        "c",
        [capture.check_part_bytes(raw, LIMITS, now=NOW, part=i, parts=parts) for i in range(parts)],
    )
    return whole, split


def _same(whole: capture.Checked, split: capture.Checked) -> None:
    assert split.errors == whole.errors
    assert [(p.stored, p.event_hash, p.jcs, p.row) for p in split.prepared] == [
        (p.stored, p.event_hash, p.jcs, p.row) for p in whole.prepared
    ]
    assert (split.keys, split.unreadable, split.pointer) == (whole.keys, whole.unreadable, whole.pointer)


@settings(max_examples=80)
@given(
    faults=st.lists(FAULTS, min_size=0, max_size=12),
    parts=st.integers(min_value=2, max_value=4),
    shape=st.sampled_from(["document", "query", "single"]),
)
def test_a_document_checked_in_parts_is_the_document_checked_whole(
    faults: list[str], parts: int, shape: str
) -> None:
    raw = _document(faults, shape)
    whole, split = _whole_and_parts(raw, parts)
    _same(whole, split)
    # The whole check is what capture.check gives (one part of one).
    assert capture.check_bytes(raw, LIMITS, now=NOW, capture_id="c").errors == whole.errors


def test_a_part_refused_by_the_schema_or_the_limits_names_the_event_in_the_document() -> None:
    """Each part walks and validates only its own events: a reason found in the last part still points
    at the event's place in the whole document."""
    for fault, path in (("schema", "/epcisBody/eventList/5/action"), ("deep", "/epcisBody/eventList/5")):
        whole, split = _whole_and_parts(_document(["none"] * 5 + [fault]), 2)
        _same(whole, split)
        assert [e.path for e in split.errors][:1] == [path], (fault, split.errors)


def test_the_stage_that_refuses_first_wins_across_parts() -> None:
    """A field refused in the second half and an event refused as stored in the first: only the field's
    reason, as when the document is checked whole."""
    faults = ["forged_hash", "none", "none", "none", "future", "none"]
    whole, split = _whole_and_parts(_document(faults), 2)
    _same(whole, split)
    assert [e.path for e in split.errors] == ["/epcisBody/eventList/4/eventTime"]


def test_unreadable_and_empty_documents_in_parts() -> None:
    for raw in (b"{not json", b"[]", _document([])):
        _same(*_whole_and_parts(raw, 2))
    refused = _whole_and_parts(_document([]), 3)[1]
    assert [e.message for e in refused.errors] == ["no events"]


def test_a_capturable_document_in_parts_keeps_every_event_in_order() -> None:
    raw = _document(["none"] * 7)
    whole, split = _whole_and_parts(raw, 3)
    _same(whole, split)
    assert not split.errors
    assert len(split.prepared) == 7
    assert split.keys is not None
    assert len(split.keys.leg_epcs) == 7
    doc = msgspec.json.decode(raw)
    assert [p.stored["eventTime"] for p in split.prepared] == [
        e["eventTime"] for e in doc["epcisBody"]["eventList"]
    ]
