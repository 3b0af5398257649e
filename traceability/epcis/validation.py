"""Stage 3, EPCIS: validation of events and documents against GS1's EPCIS 2.0 JSON Schema (``schema/``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema_rs


@cache
def _schema() -> dict[str, Any]:
    """GS1's EPCIS 2.0 JSON Schema, as bundled (``traceability/epcis/schema``)."""
    schema_file = resources.files("traceability.epcis").joinpath("schema", "EPCIS-JSON-Schema.json")
    schema: dict[str, Any] = json.loads(schema_file.read_text("utf-8"))
    return schema


@cache
def _checker() -> jsonschema_rs.Validator:
    """The verdict: jsonschema-rs over the whole schema, formats checked as JSON Schema draft 7 defines
    them (``date-time`` per RFC 3339, ``uri`` per RFC 3986). Built once, on first use."""
    return jsonschema_rs.validator_for(_schema(), validate_formats=True)


@cache
def _validator() -> Callable[[Any], Any]:
    """The reason: the whole schema compiled by fastjsonschema, whose messages name the failing field in a
    line (used once jsonschema-rs has refused a value). Compiled once, on first use."""
    compiled: Callable[[Any], Any] = fastjsonschema.compile(_schema())
    return compiled


def vocabulary(definition: str) -> tuple[str, ...]:
    """The bare CBV names the schema lists for a vocabulary field (``bizStep``, ``disposition``)."""
    names: list[str] = []
    for option in _schema()["definitions"][definition].get("anyOf", ()):
        names.extend(str(n) for n in option.get("enum", ()))
    return tuple(names)


EVENT_TYPES = (
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
)


@cache
def _event_validator(event_type: str) -> Callable[[Any], Any]:
    """The schema's ``EPCIS-Document-Event`` for one event type, compiled by fastjsonschema on first use
    (for a known ``type`` it is exactly that type's definition: its other ``if`` branches do not apply)."""
    schema = _schema()
    target = event_type if event_type in EVENT_TYPES else "EPCIS-Document-Event"
    sub = {
        "$id": schema.get("$id"),
        "$schema": schema.get("$schema"),
        "allOf": [{"$ref": f"#/definitions/{target}"}],
        "definitions": schema["definitions"],
    }
    compiled: Callable[[Any], Any] = fastjsonschema.compile(sub)
    return compiled


def validate(doc_or_event: Mapping[str, Any]) -> None:
    """Raise ``InvalidEventError`` naming the first EPCIS 2.0 JSON Schema violation, if any.

    The verdict is jsonschema-rs's (several times faster than any validator in Python); the reason is
    fastjsonschema's one-line message, or jsonschema-rs's own where only it refuses (fastjsonschema's
    ``uri`` and ``date-time`` checks are looser than the RFCs: a scheme starting with a digit, a bad
    percent escape, a non-ASCII IRI, second 60 outside a leap second)."""
    value = doc_or_event if isinstance(doc_or_event, dict) else dict(doc_or_event)
    if _checker().is_valid(value):
        return
    try:
        _validator()(value)
    except fastjsonschema.JsonSchemaException as exc:
        raise InvalidEventError(str(exc)) from exc
    raise InvalidEventError(_reason(value))


def is_valid(value: Any) -> bool:
    """Whether the EPCIS 2.0 JSON Schema accepts ``value`` (``validate``'s verdict, without its reason)."""
    return bool(_checker().is_valid(value))


def validate_document(doc: Mapping[str, Any]) -> None:
    """``validate`` for an EPCISDocument, the same verdict; a refused document's reason names the first
    failing event: the document with an empty eventList is checked, then each event against
    ``EPCIS-Document-Event`` (the schema's ``eventList`` item), dispatched on its type."""
    value = doc if isinstance(doc, dict) else dict(doc)
    if _checker().is_valid(value):
        return
    body = value.get("epcisBody")
    events = body.get("eventList") if isinstance(body, Mapping) else None
    if value.get("type") != "EPCISDocument" or not isinstance(body, Mapping) or not isinstance(events, list):
        validate(value)
        return
    validate({**value, "epcisBody": {**body, "eventList": []}})
    for i, event in enumerate(events):
        kind = event.get("type") if isinstance(event, Mapping) else None
        try:
            _event_validator(kind if kind in EVENT_TYPES else "")(event)
        except fastjsonschema.JsonSchemaException as exc:
            raise InvalidEventError(f"epcisBody.eventList[{i}]: {exc}") from exc
        alone = {**value, "epcisBody": {**body, "eventList": [event]}}
        if not _checker().is_valid(alone):
            where = _reason(alone).replace("data.epcisBody.eventList[0]", f"data.epcisBody.eventList[{i}]", 1)
            raise InvalidEventError(f"epcisBody.eventList[{i}]: {where}")
    raise InvalidEventError(_reason(value))


def error_pointer(value: Any) -> str:
    """The JSON pointer (RFC 6901) of the first place the schema refuses in ``value``; "" for the whole of
    it, or when the schema refuses nothing."""
    error = next(iter(_checker().iter_errors(value)), None)
    if error is None:
        return ""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in error.instance_path)


def _reason(value: Any) -> str:
    """jsonschema-rs's first error: where, and what (its message, cut short: it may quote the value)."""
    error = next(iter(_checker().iter_errors(value)), None)
    if error is None:  # pragma: no cover - only called on a value the checker refused
        return "refused by the EPCIS 2.0 JSON Schema"
    where = "data" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.instance_path)
    message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
    return f"{where}: {message}"


class InvalidEventError(ValueError):
    """An event that the EPCIS 2.0 JSON Schema rejects."""
