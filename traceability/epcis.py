"""Stage 3, ledger: builders for EPCIS 2.0 JSON-LD events (plain dicts) and validation against GS1's schema.

Events carry ``eventTime`` in UTC with milliseconds and ``Z``, and ``eventTimeZoneOffset`` "+08:00"
(China, where the business steps happen). CBV values are the JSON-LD bare short names ("shipping",
"in_transit"). Project extension fields use the ``cc:`` prefix, bound in each event's ``@context``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import fastjsonschema

from traceability.eventhash import event_hash

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
# Namespace of this project's extension fields (cc:rulePackId, ...) and of identifiers that have no
# GS1 key (devices and assets without a tag). Not dereferenceable; a name, as JSON-LD allows.
CC_NAMESPACE = "https://ns.coldchain.example/epcis/"
CONTEXT: list[Any] = [EPCIS_CONTEXT, {"cc": CC_NAMESPACE}]
CHINA_TZ_OFFSET = "+08:00"

Event = dict[str, Any]


def iso_ms(t: datetime) -> str:
    """UTC ISO 8601 with milliseconds and Z: 2026-11-21T03:52:15.123Z (naive datetimes are taken as UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """An ISO 8601 timestamp (Z or offset) as an aware UTC datetime."""
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC)


def device_uri(device_id: str) -> str:
    """A URI for a project device id (devices have no GS1 key here)."""
    return f"{CC_NAMESPACE}device/{device_id}"


def asset_uri(asset_id: str) -> str:
    """A URI for an asset that has no EPC tag."""
    return f"{CC_NAMESPACE}asset/{asset_id}"


def quantity(epc_class: str, amount: float | None = None, uom: str | None = None) -> dict[str, Any]:
    """A quantityElement: a class-level identifier (LGTIN) and optionally how much of it."""
    q: dict[str, Any] = {"epcClass": epc_class}
    if amount is not None:
        q["quantity"] = amount
        if uom is not None:
            q["uom"] = uom
    return q


def _common(
    event_type: str,
    event_time: datetime,
    action: str,
    *,
    biz_step: str | None,
    disposition: str | None,
    read_point: str | None,
    biz_location: str | None,
    tz_offset: str,
) -> Event:
    event: Event = {
        "@context": CONTEXT,
        "type": event_type,
        "eventTime": iso_ms(event_time),
        "eventTimeZoneOffset": tz_offset,
        "action": action,
    }
    if biz_step is not None:
        event["bizStep"] = biz_step
    if disposition is not None:
        event["disposition"] = disposition
    if read_point is not None:
        event["readPoint"] = {"id": read_point}
    if biz_location is not None:
        event["bizLocation"] = {"id": biz_location}
    return event


def _extensions(event: Event, extensions: Mapping[str, Any] | None) -> Event:
    for key, value in (extensions or {}).items():
        if ":" not in key:
            raise ValueError(f"extension field {key!r} needs a namespace prefix (e.g. cc:{key})")
        event[key] = value
    return event


def object_event(
    *,
    event_time: datetime,
    epcs: Sequence[str] | None = None,
    quantities: Sequence[Mapping[str, Any]] = (),
    action: str = "OBSERVE",
    biz_step: str | None = None,
    disposition: str | None = None,
    read_point: str | None = None,
    biz_location: str | None = None,
    sensor_elements: Sequence[Mapping[str, Any]] = (),
    extensions: Mapping[str, Any] | None = None,
    tz_offset: str = CHINA_TZ_OFFSET,
) -> Event:
    """An ObjectEvent. ``epcs=None`` leaves epcList out (allowed with sensorElementList and readPoint)."""
    event = _common(
        "ObjectEvent",
        event_time,
        action,
        biz_step=biz_step,
        disposition=disposition,
        read_point=read_point,
        biz_location=biz_location,
        tz_offset=tz_offset,
    )
    if epcs is not None:
        event["epcList"] = sorted(set(epcs))
    if quantities:
        event["quantityList"] = [dict(q) for q in quantities]
    if sensor_elements:
        event["sensorElementList"] = [dict(e) for e in sensor_elements]
    return _extensions(event, extensions)


def aggregation_event(
    *,
    event_time: datetime,
    action: str,
    parent_id: str,
    child_epcs: Sequence[str] = (),
    child_quantities: Sequence[Mapping[str, Any]] = (),
    biz_step: str | None = None,
    disposition: str | None = None,
    read_point: str | None = None,
    biz_location: str | None = None,
    extensions: Mapping[str, Any] | None = None,
    tz_offset: str = CHINA_TZ_OFFSET,
) -> Event:
    """An AggregationEvent: ADD (children into parent) or DELETE (out of it; no children = all of them)."""
    if action not in ("ADD", "DELETE", "OBSERVE"):
        raise ValueError(f"bad aggregation action {action!r}")
    if action != "DELETE" and not child_epcs and not child_quantities:
        raise ValueError("an ADD/OBSERVE AggregationEvent needs childEPCs or childQuantityList")
    event = _common(
        "AggregationEvent",
        event_time,
        action,
        biz_step=biz_step,
        disposition=disposition,
        read_point=read_point,
        biz_location=biz_location,
        tz_offset=tz_offset,
    )
    event["parentID"] = parent_id
    if child_epcs:
        event["childEPCs"] = sorted(set(child_epcs))
    if child_quantities:
        event["childQuantityList"] = [dict(q) for q in child_quantities]
    return _extensions(event, extensions)


def temperature_element(
    *,
    start_time: datetime,
    end_time: datetime,
    time: datetime | None = None,
    device_id: str | None = None,
    min_c: float | None = None,
    max_c: float | None = None,
    mean_c: float | None = None,
    exception: str | None = None,
) -> dict[str, Any]:
    """A sensorElement summarising temperature over [start, end] (°C, UN/CEFACT CEL).

    ``exception`` is "ALARM_CONDITION" for a breach of limits or "ERROR_CONDITION" for missing/failed
    measurement. Values are rounded to 3 decimals so that stored JSON and hash stay stable."""
    meta: dict[str, Any] = {"startTime": iso_ms(start_time), "endTime": iso_ms(end_time)}
    if time is not None:
        meta["time"] = iso_ms(time)
    if device_id is not None:
        meta["deviceID"] = device_uri(device_id)
    report: dict[str, Any] = {"type": "Temperature"}
    if exception is not None:
        report["exception"] = exception
    for key, value in (("minValue", min_c), ("maxValue", max_c), ("meanValue", mean_c)):
        if value is not None:
            report[key] = round(float(value), 3)
    report["uom"] = "CEL"
    return {"sensorMetadata": meta, "sensorReport": [report]}


def with_event_id(event: Mapping[str, Any]) -> Event:
    """The event with ``eventID`` = its CBV 2.0 event hash, unless it already has one."""
    out = dict(event)
    if not out.get("eventID"):
        out["eventID"] = event_hash(out)
    return out


def document(events: Iterable[Mapping[str, Any]], *, creation_date: datetime | None = None) -> dict[str, Any]:
    """An EPCISDocument wrapping the events (their own @context dropped in favour of the document's)."""
    body = [{k: v for k, v in e.items() if k != "@context"} for e in events]
    return {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": iso_ms(creation_date or datetime.now(UTC)),
        "epcisBody": {"eventList": body},
    }


@cache
def _rewritten_schema() -> tuple[dict[str, Any], dict[str, Callable[[str], bool]]]:
    """The bundled GS1 schema with the memo rewrites below, and the custom formats they use.

    Two rewrites keep every verdict of the schema and make the common case cheap (only the error message
    of a refused name or value gets less specific): each ``propertyNames`` subschema, and each ``anyOf``
    whose alternatives all require a string (bizStep, disposition: an enum or a URI), is checked through a
    memo of the strings it has already judged (a custom format wrapping that subschema's own compiled
    validator). An event's keys and vocabulary values repeat, and fastjsonschema otherwise pays a raised
    exception per key or value and failing alternative."""
    schema_file = resources.files("traceability").joinpath("schema", "EPCIS-JSON-Schema.json")
    schema = json.loads(schema_file.read_text("utf-8"))
    formats: dict[str, Callable[[str], bool]] = {}
    rewritten: dict[str, Any] = _memoise_strings(schema, schema, formats)
    return rewritten, formats


@cache
def _validator() -> Callable[[Any], Any]:
    """The whole (rewritten) GS1 schema, compiled once on first use (fastjsonschema)."""
    schema, formats = _rewritten_schema()
    compiled: Callable[[Any], Any] = fastjsonschema.compile(schema, formats=formats)
    return compiled


EVENT_TYPES = (
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
)


@cache
def _event_validator(event_type: str) -> Callable[[Any], Any]:
    """The schema's ``EPCIS-Document-Event`` for one event type, compiled once on first use.

    For a known ``type``, ``EPCIS-Document-Event`` is exactly that type's definition (its other ``if``
    branches do not apply): validating with it spares four failing ``if`` tests per event."""
    schema, formats = _rewritten_schema()
    target = event_type if event_type in EVENT_TYPES else "EPCIS-Document-Event"
    sub = {
        "$id": schema.get("$id"),
        "$schema": schema.get("$schema"),
        "allOf": [{"$ref": f"#/definitions/{target}"}],
        "definitions": schema["definitions"],
    }
    compiled: Callable[[Any], Any] = fastjsonschema.compile(sub, formats=formats)
    return compiled


def validate_document(doc: Mapping[str, Any]) -> None:
    """``validate`` for an EPCISDocument, the same verdict, faster: the document with an empty eventList,
    then each event against ``EPCIS-Document-Event`` (the schema's ``eventList`` item: nothing else
    constrains the list), dispatched on its type."""
    body = doc.get("epcisBody")
    events = body.get("eventList") if isinstance(body, Mapping) else None
    if doc.get("type") != "EPCISDocument" or not isinstance(events, list):
        validate(doc)
        return
    validate({**doc, "epcisBody": {**body, "eventList": []}})  # type: ignore[dict-item]
    for i, event in enumerate(events):
        kind = event.get("type") if isinstance(event, Mapping) else None
        try:
            _event_validator(kind if kind in EVENT_TYPES else "")(event)
        except fastjsonschema.JsonSchemaException as exc:
            raise InvalidEventError(f"epcisBody.eventList[{i}]: {exc}") from exc


def _memoise_strings(node: Any, root: Mapping[str, Any], formats: dict[str, Callable[[str], bool]]) -> Any:
    if isinstance(node, list):
        return [_memoise_strings(x, root, formats) for x in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "propertyNames" and isinstance(value, Mapping):
            out[key] = _string_format(value, root, formats)
        elif key in ("properties", "definitions", "patternProperties") and isinstance(value, Mapping):
            out[key] = {k: _memoise_strings(v, root, formats) for k, v in value.items()}
        elif key == "anyOf" and isinstance(value, list) and set(node) == {"anyOf"}:
            if all(_string_only(v, root, set()) for v in value):
                return _string_format({"anyOf": value}, root, formats)
            out[key] = _memoise_strings(value, root, formats)
        else:
            out[key] = _memoise_strings(value, root, formats)
    return out


def _string_only(node: Any, root: Mapping[str, Any], seen: set[str]) -> bool:
    """Whether every value valid under ``node`` must be a string."""
    if not isinstance(node, Mapping):
        return False
    if node.get("type") == "string":
        return True
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/definitions/") and ref not in seen:
        target = root.get("definitions", {}).get(ref.removeprefix("#/definitions/"))
        return _string_only(target, root, seen | {ref})
    for key in ("anyOf", "oneOf"):
        if isinstance(node.get(key), list) and node[key]:
            return all(_string_only(v, root, seen) for v in node[key])
    return False


def _string_format(
    subschema: Mapping[str, Any], root: Mapping[str, Any], formats: dict[str, Callable[[str], bool]]
) -> dict[str, str]:
    """``{"type": "string", "format": <memo of subschema>}`` (only for subschemas that require strings)."""
    name = f"coldchain-memo-{len(formats)}"
    formats[name] = _memo_check(
        {
            **subschema,
            "$id": root.get("$id"),
            "$schema": root.get("$schema"),
            "definitions": root.get("definitions", {}),
        }
    )
    return {"type": "string", "format": name}


def _memo_check(subschema: dict[str, Any]) -> Callable[[str], bool]:
    """A memoised ``value is valid under subschema`` (compiled on first use)."""
    compiled: list[Callable[[Any], Any]] = []

    @lru_cache(maxsize=4096)
    def check(value: str) -> bool:
        if not compiled:
            compiled.append(fastjsonschema.compile(subschema))
        try:
            compiled[0](value)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    return check


def validate(doc_or_event: Mapping[str, Any]) -> None:
    """Raise ``InvalidEventError`` naming the first EPCIS 2.0 JSON Schema violation, if any."""
    try:
        _validator()(dict(doc_or_event))
    except fastjsonschema.JsonSchemaException as exc:
        raise InvalidEventError(str(exc)) from exc


class InvalidEventError(ValueError):
    """An event that the EPCIS 2.0 JSON Schema rejects."""
