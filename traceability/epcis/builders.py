"""Stage 3, EPCIS: builders for EPCIS 2.0 JSON-LD events (plain dicts), their times and CBV names.

Events carry ``eventTime`` in UTC with milliseconds and ``Z``, and ``eventTimeZoneOffset`` "+08:00"
(China, where the business steps happen). CBV values are the JSON-LD bare short names ("shipping",
"in_transit"). Project extension fields use the ``cc:`` prefix, bound in each event's ``@context``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from traceability.epcis.eventhash import event_hash

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


_FRACTION = re.compile(r"\.(\d{7,})")


@lru_cache(maxsize=1 << 14)  # a pure function of an immutable value; a capture job's recordTime repeats
def parse_time(text: str) -> datetime:
    """An ISO 8601 timestamp (Z or offset) as an aware UTC datetime (naive times are taken as UTC).

    Fractions beyond microseconds (RFC 3339 allows any number of digits) are rounded as PostgreSQL rounds
    them (the double nearest the fraction, times 10^6, to the nearest integer, ties to even), so the
    ledger's event_time and the ``eventTime`` the database reads from the event are the same instant."""
    carry = 0
    fraction = _FRACTION.search(text)
    if fraction is not None:
        carry, micro = divmod(round(float("0." + fraction.group(1)) * 1_000_000), 1_000_000)
        text = f"{text[: fraction.start()]}.{micro:06d}{text[fraction.end() :]}"
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC) + timedelta(seconds=carry)


# The two URI forms of a CBV business step: EPCIS 2.0's Web URI and EPCIS 1.x's URN. The bare name after
# either is what the ledger's biz_step column, the derivation and EQ_bizStep use.
BIZ_STEP_PREFIXES = ("https://ref.gs1.org/cbv/BizStep-", "urn:epcglobal:cbv:bizstep:")


def biz_step_name(value: Any) -> str | None:
    """The bare CBV name of a bizStep (``shipping`` for itself, its Web URI or its URN); any other URI (a
    private vocabulary) as it is; None for none."""
    if value is None:
        return None
    text = str(value)
    for prefix in BIZ_STEP_PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


DISPOSITION_PREFIXES = ("https://ref.gs1.org/cbv/Disp-", "urn:epcglobal:cbv:disp:")


def disposition_name(value: Any) -> str | None:
    """The bare CBV name of a disposition (``in_transit`` for itself, its Web URI or its URN); any other URI
    as it is; None for none."""
    if value is None:
        return None
    text = str(value)
    for prefix in DISPOSITION_PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


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


# The CBV error reason of a declaration whose event stated what later data showed wrong (CBV 2.0 8.7, as
# the bare name the project writes CBV values in).
INCORRECT_DATA = "incorrect_data"


def error_declaration(
    event: Mapping[str, Any],
    *,
    declared_at: datetime,
    reason: str = INCORRECT_DATA,
    corrective_event_ids: Sequence[str] = (),
) -> Event:
    """The errorDeclaration of ``event`` (EPCIS 2.0 7.4.1.2): a copy of it, same eventID, with
    ``errorDeclaration`` {declarationTime, reason, correctiveEventIDs}."""
    out = dict(event)
    declaration: dict[str, Any] = {"declarationTime": iso_ms(declared_at), "reason": reason}
    if corrective_event_ids:
        declaration["correctiveEventIDs"] = list(corrective_event_ids)
    out["errorDeclaration"] = declaration
    return out


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
