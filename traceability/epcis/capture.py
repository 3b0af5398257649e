"""Stage 3, EPCIS: EPCIS 2.0 documents in (GS1 REST bindings capture jobs, all or nothing) and out (export).

A document is checked against GS1's EPCIS 2.0 JSON Schema and the rules the schema cannot say (a sensor
element may put device and time attributes in ``sensorMetadata`` or in its ``sensorReport`` entries,
never in both), then all its events are appended in one transaction: either every event is in the
ledger or none is. Each event inherits the document's ``@context`` when it has none of its own, so the
extension prefixes it uses hash to the same namespaces as in the document.

Refused, with a reason per event, before anything is stored (``CaptureLimits``):

* a document or an event larger than its byte limit (the API answers 413), nesting deeper than the depth
  limit or a list longer than the list limit (400): the limits are checked on the document as parsed, by
  an iterative walk, before the schema or anything recursive looks at it;
* an ``eventTime`` (or ``declarationTime``) later than now plus the allowed clock skew, or before the
  floor: a date in the future would stand in the custody history ahead of every real event;
* an eventID already in the ledger (or earlier in the document) with other content; the same content
  again is idempotent: the job lists it under ``already_captured`` with its seq. A document's events are
  appended without looking their eventIDs up first: the ledger's unique index on eventIDs refuses an
  append of one it holds, and the document is then written again with every eventID looked up (a
  document sent again costs one append more; a new one, no lookup);
* a hash-form eventID (``ni:///sha-256;...``) that is not the event's CBV 2.0 hash;
* an ``errorDeclaration`` of an event that is neither in the ledger nor earlier in the document.

``recordTime`` is the repository's: each captured event's is the capture job's time, whatever the client
sent. The event hash does not cover recordTime (CBV 2.0 8.9), so an event's hash is the same whoever
records it and whenever; the stored canonical bytes (and so the chain) do include it: the ledger says
when it recorded each event. "Same content" means the same canonical bytes, recordTime apart.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
from psycopg.types.json import Jsonb

from traceability import limits as bounds
from traceability import queries
from traceability.epcis import builders, jcs, validation
from traceability.epcis.eventhash import HASH_PREFIX, EventHashError
from traceability.ledger import chain, derive

Conn = psycopg.Connection[Any]
log = logging.getLogger(__name__)

# Attributes that GS1 allows in sensorMetadata or in each sensorReport, but not in both of one element
# (EPCIS 2.0, 7.3.5.2: "if ... specified in sensorMetadata, it SHALL NOT be specified in sensorReport").
SHARED_SENSOR_ATTRIBUTES = ("time", "deviceID", "deviceMetadata", "rawData", "dataProcessingMethod")
EVENT_TYPES = frozenset(
    {"ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent"}
)
# Documents above this many events are refused (one transaction holds them all).
MAX_EVENTS = 10_000


@dataclass(frozen=True, slots=True)
class CaptureLimits:
    """What capture accepts (the ``capture_*`` settings; defaults and reasons in ``limits.py``)."""

    document_bytes: int = bounds.CAPTURE_DOCUMENT_BYTES
    event_bytes: int = bounds.CAPTURE_EVENT_BYTES
    depth: int = bounds.CAPTURE_DEPTH
    list_items: int = bounds.CAPTURE_LIST_ITEMS
    future_skew_s: float = bounds.CAPTURE_FUTURE_SKEW_S
    time_floor: datetime = bounds.CAPTURE_TIME_FLOOR

    def __post_init__(self) -> None:
        if not bounds.CAPTURE_DEPTH_MIN <= self.depth <= bounds.EVENT_MAX_DEPTH:
            raise ValueError(
                f"capture depth limit must be in [{bounds.CAPTURE_DEPTH_MIN}, {bounds.EVENT_MAX_DEPTH}]"
            )
        if min(self.document_bytes, self.event_bytes, self.list_items) < 1:
            raise ValueError("capture limits must be positive")
        if not 0 <= self.future_skew_s <= bounds.FUTURE_TOLERANCE_S:
            raise ValueError(f"capture clock skew must be in [0, {bounds.FUTURE_TOLERANCE_S:g}] s")
        if self.time_floor.tzinfo is None:
            raise ValueError("the capture time floor needs a time zone")


DEFAULT_LIMITS = CaptureLimits()


@dataclass(frozen=True, slots=True)
class CaptureError:
    """One reason a document was refused, located by a JSON pointer-like path."""

    path: str
    message: str
    too_large: bool = False  # a size limit (the API answers 413), not a content refusal (400)

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


@dataclass(slots=True)
class CaptureJob:
    capture_id: str
    running: bool
    success: bool
    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    already_captured: list[dict[str, Any]] = field(default_factory=list)  # {"eventID", "seq"} each
    too_large: bool = False
    # Refused as bytes, before there was a document: larger than the limit, not UTF-8 JSON, or nested
    # beyond what the parser allows (``ledger import`` answers these as a file it cannot use).
    unreadable: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The capture job document of the GS1 REST bindings, plus our seq range and the events that were
        in the ledger already (the same content: idempotent)."""
        return {
            "captureID": self.capture_id,
            "running": self.running,
            "success": self.success,
            "captureErrorBehaviour": "rollback",
            "errors": self.errors,
            "events": self.events,
            "firstSeq": self.first_seq,
            "lastSeq": self.last_seq,
            "alreadyCaptured": self.already_captured,
        }


class CaptureRefusedError(ValueError):
    """A document that cannot be captured; ``errors`` says why."""

    def __init__(self, errors: Sequence[CaptureError]) -> None:
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in errors))
        self.errors = list(errors)


DOCUMENT_TYPES = frozenset({"EPCISDocument", "EPCISQueryDocument"})
# Where each kind of document keeps its events (JSON pointers): an EPCISQueryDocument (a query's answer,
# as another repository exports it) carries them in its query results.
EVENT_LIST = "/epcisBody/eventList"
QUERY_EVENT_LIST = "/epcisBody/queryResults/resultsBody/eventList"


def event_list(doc: Mapping[str, Any]) -> tuple[Any, str]:
    """The raw value holding a document's events (None when there is none) and its JSON pointer."""
    body = doc.get("epcisBody")
    if not isinstance(body, Mapping):
        return None, EVENT_LIST
    if doc.get("type") == "EPCISQueryDocument":
        results = body.get("queryResults")
        inner = results.get("resultsBody") if isinstance(results, Mapping) else None
        return (inner.get("eventList") if isinstance(inner, Mapping) else None), QUERY_EVENT_LIST
    raw = body.get("eventList")
    if raw is None and "event" in body:
        raw = [body["event"]]
    return raw, EVENT_LIST


def events_of(doc: Mapping[str, Any], default_context: Any = builders.CONTEXT) -> list[dict[str, Any]]:
    """The document's events (an EPCISDocument's or an EPCISQueryDocument's), each with the document's
    @context (``default_context`` when it has none; None: no @context) unless it has its own: what
    ``eventhash.event_hash`` takes."""
    raw, _ = event_list(doc)
    context = doc.get("@context", default_context)
    out = []
    for event in raw if isinstance(raw, list) else []:
        if isinstance(event, Mapping):  # the schema refuses a document with any other item
            e = dict(event)
            if context is not None:
                e.setdefault("@context", context)
            out.append(e)
    return out


def parse_document(raw: bytes, limits: CaptureLimits = DEFAULT_LIMITS) -> Any:
    """The JSON value of a document's bytes, else ``CaptureRefusedError``: too large, not JSON, or nested
    beyond what the parser's recursion allows (the depth limit is checked on the parsed value). A body that
    starts with ``<`` is EPCIS XML: ``xml.document_from_xml`` maps it to the JSON-LD document."""
    if len(raw) > limits.document_bytes:
        raise CaptureRefusedError([too_large_document(limits)])
    from traceability.epcis import xml  # here: xml imports this module

    if xml.looks_like_xml(raw):  # EPCIS 2.0 / 1.2 XML: the JSON-LD document of the same events
        return xml.document_from_xml(raw, limits)
    try:
        return msgspec.json.decode(raw)
    except RecursionError:
        raise CaptureRefusedError([_too_deep("", limits)]) from None
    except UnicodeDecodeError as exc:  # msgspec decodes a string's bytes with Python's codec
        raise CaptureRefusedError([CaptureError("", f"not UTF-8 (byte {exc.start})")]) from None
    except msgspec.DecodeError as exc:  # msgspec's message says where: "malformed JSON (byte 12)"
        raise CaptureRefusedError([CaptureError("", f"not JSON: {exc}")]) from None


def too_large_document(limits: CaptureLimits) -> CaptureError:
    return CaptureError("", f"the document is larger than {limits.document_bytes} bytes", too_large=True)


def _too_deep(path: str, limits: CaptureLimits) -> CaptureError:
    return CaptureError(path, f"nested deeper than {limits.depth} levels")


def shape_errors(found: jcs.Survey, path: str, depth: int, limits: CaptureLimits) -> list[CaptureError]:
    """The depth and list-length limits over a value that sits at ``depth``, from its ``jcs.survey`` (with
    ``limits.list_items``): the first refusal a walk level by level meets, each level's depth before its
    lists."""
    if found.long_at is not None and depth + found.long_at <= limits.depth:
        return [CaptureError(path, f"a list holds more than {limits.list_items} items")]
    if depth + max(found.depth, 1) - 1 > limits.depth:
        return [_too_deep(path, limits)]
    return []


def limit_errors(doc: Mapping[str, Any], limits: CaptureLimits) -> tuple[list[CaptureError], list[bool]]:
    """Every event's depth and lists, then the rest of the document's (an event's size is that of its
    canonical bytes, checked once they are made: ``_prepared``); and whether each event, as it will be
    stored (with the document's ``@context``), has the fast encoder's JCS form (``jcs.survey``'s
    ``plain``: the limits' walk is that one, so that ``jcs.canonical`` does not walk the events again)."""
    errors: list[CaptureError] = []
    plain: list[bool] = []
    raw, pointer = event_list(doc)
    if isinstance(raw, list):
        if len(raw) > MAX_EVENTS:
            return [CaptureError(pointer, f"more than {MAX_EVENTS} events")], []
        for i, event in enumerate(raw):
            found = jcs.survey(event, limits.list_items)
            errors.extend(shape_errors(found, f"{pointer}/{i}", bounds.CAPTURE_EVENT_DEPTH, limits))
            plain.append(found.plain)
        rest = _without(doc, pointer.strip("/").split("/"))
    else:
        rest = dict(doc)
    found = jcs.survey(rest, limits.list_items)
    errors += shape_errors(found, "", 1, limits)
    return errors, [p and found.plain for p in plain]  # the document's @context goes into its events


def _without(value: Mapping[str, Any], keys: list[str]) -> dict[str, Any]:
    """A shallow copy of ``value`` without the member at the path ``keys`` (the copies along the path are
    shallow too: nothing below them is walked or copied)."""
    out = dict(value)
    if len(keys) == 1:
        out.pop(keys[0], None)
    elif isinstance(out.get(keys[0]), Mapping):
        out[keys[0]] = _without(out[keys[0]], keys[1:])
    return out


def check_document(
    doc: Any, limits: CaptureLimits = DEFAULT_LIMITS, *, now: datetime | None = None
) -> list[CaptureError]:
    """Every reason to refuse ``doc`` (empty: capturable) that needs no database: limits, schema, the
    sensor rule, the times, each event's size and its hash-form eventID."""
    return _checked(doc, limits, now or datetime.now(UTC))[1]


@dataclass(slots=True)
class Checked:
    """A document checked and prepared (``check``): the reasons to refuse it, else its events as the ledger
    will store them, hashed and canonicalised. What ``write`` takes; no database was needed for it."""

    capture_id: str
    errors: list[CaptureError]
    prepared: list[chain.Prepared]
    unreadable: bool = False  # refused as bytes (too large, not UTF-8 JSON): see CaptureJob.unreadable
    pointer: str = EVENT_LIST  # where the document keeps its events
    keys: derive.StateKeys | None = None  # what of the derived state its events touch (``check``)


def check(
    doc: Any,
    limits: CaptureLimits = DEFAULT_LIMITS,
    *,
    capture_id: str | None = None,
    now: datetime | None = None,
) -> Checked:
    """``check_document``, and the events prepared for the append (recordTime: ``now``). Never raises on a
    value of any shape: an event the hash or canonical form cannot take is a reason with its pointer."""
    return merged(capture_id, [check_part(doc, limits, now=now or datetime.now(UTC))])


def check_bytes(
    raw: bytes,
    limits: CaptureLimits = DEFAULT_LIMITS,
    *,
    capture_id: str | None = None,
    now: datetime | None = None,
) -> Checked:
    """``check`` of a document's bytes (a request body, a file): parsed under the limits first."""
    return merged(capture_id, [check_part_bytes(raw, limits, now=now or datetime.now(UTC))])


# The stages of a document's check, in order; a document is refused with the reasons of the first stage
# that has any (in any part), and only those.
# DOCUMENT: not a document, or beyond the limits; SCHEMA: refused by the JSON Schema (whose reason is found
# over the whole document by any part that finds one).
DOCUMENT, SCHEMA, EVENT_FIELDS, AS_STORED, CAPTURABLE = range(5)


@dataclass(slots=True)
class Part:
    """What the check of one part of a document's events found (``check_part``): its first stage with
    reasons to refuse (``CAPTURABLE``: none) and those reasons, else the part's events prepared.
    ``merged`` makes the document's ``Checked`` of its parts, which may have been checked at once in
    several processes (the capture worker does so)."""

    stage: int
    errors: list[CaptureError]
    prepared: list[chain.Prepared]
    unreadable: bool = False
    pointer: str = EVENT_LIST
    keys: derive.StateKeys | None = None


def part_bounds(count: int, part: int, parts: int) -> range:
    """The indexes of the events of part ``part`` of ``parts`` of a document of ``count`` events."""
    return range(count * part // parts, count * (part + 1) // parts)


def check_part(doc: Any, limits: CaptureLimits, *, now: datetime, part: int = 0, parts: int = 1) -> Part:
    """Check part ``part`` of ``parts`` of a document: its type, and its limits and JSON Schema over the
    document with only this part's events (a reason found is found again over the whole document), then
    the events of ``part_bounds``, which it prepares (their recordTime: ``now``, the same for every
    part)."""
    pointer = event_list(doc)[1] if isinstance(doc, Mapping) else EVENT_LIST
    stage, errors, prepared = _checked(doc, limits, now, part, parts)
    keys = derive.state_keys(p.stored for p in prepared) if stage == CAPTURABLE else None
    return Part(stage, errors, prepared, pointer=pointer, keys=keys)


def check_part_bytes(
    raw: bytes, limits: CaptureLimits, *, now: datetime, part: int = 0, parts: int = 1
) -> Part:
    """``check_part`` of a document's bytes, parsed under the limits first."""
    try:
        doc = parse_document(raw, limits)
    except CaptureRefusedError as exc:
        return Part(DOCUMENT, exc.errors, [], unreadable=True)
    return check_part(doc, limits, now=now, part=part, parts=parts)


def merged(capture_id: str | None, parts: Sequence[Part]) -> Checked:
    """The ``Checked`` of a document from its parts' checks, in part order: refused with the reasons of the
    first stage any part refused at (a document's reasons, its limits or its schema, from the first part
    that found them: each part finds them over the whole document), else its events prepared and the keys
    of them all."""
    stage = min(p.stage for p in parts)
    first = parts[0]
    if stage <= SCHEMA:
        chosen = next(p for p in parts if p.stage == stage)
        return Checked(capture_id or str(uuid.uuid4()), chosen.errors, [], chosen.unreadable, chosen.pointer)
    errors = [e for p in parts if p.stage == stage for e in p.errors]
    prepared = [e for p in parts for e in p.prepared] if stage >= AS_STORED else []
    keys = _union([p.keys for p in parts]) if stage == CAPTURABLE else None
    return Checked(capture_id or str(uuid.uuid4()), errors, prepared, pointer=first.pointer, keys=keys)


def _union(keys: Sequence[derive.StateKeys | None]) -> derive.StateKeys | None:
    """The keys of several sets of events together; None when any set's are unknown (the append then
    makes them of the events)."""
    if any(k is None for k in keys):
        return None
    return derive.StateKeys(*(frozenset().union(*k) for k in zip(*keys, strict=True)))


def _checked(
    doc: Any, limits: CaptureLimits, at: datetime, part: int = 0, parts: int = 1
) -> tuple[int, list[CaptureError], list[chain.Prepared]]:
    """``check_document`` (of the events of one part: ``check_part``), and those events as the ledger will
    store them (recordTime ``at``), hashed and canonicalised once: the append reuses both, so the
    ledger's lock is not held for them. Returns the first stage with reasons to refuse, and them."""
    if not isinstance(doc, Mapping):
        return DOCUMENT, [CaptureError("", "the body is not a JSON object")], []
    if doc.get("type") not in DOCUMENT_TYPES:
        return DOCUMENT, [CaptureError("/type", "expected an EPCISDocument or an EPCISQueryDocument")], []
    # In parts, each walks and validates the document with only its own events (an event list's items are
    # checked one by one: the parts' verdicts together are the document's); a part that finds a reason
    # finds it again over the whole document, so that the reasons are the whole check's.
    own = _with_part_only(doc, part, parts) if parts > 1 else None
    errors, plain = limit_errors(doc if own is None else own, limits)
    if errors and own is not None:
        errors = limit_errors(doc, limits)[0]
    if errors:
        return DOCUMENT, errors, []  # nothing else walks a value beyond the limits
    if part == 0 or own is not None:
        try:
            if own is None or not validation.is_valid(own):
                validation.validate_document(doc)
        except validation.InvalidEventError as exc:
            reason = f"EPCIS 2.0 JSON Schema: {exc}"
            return SCHEMA, [CaptureError(validation.error_pointer(doc), reason)], []
    events = events_of(doc)
    _, pointer = event_list(doc)
    if not events and part == 0:
        errors.append(CaptureError(pointer, "no events"))
    latest = at + timedelta(seconds=limits.future_skew_s)
    mine = part_bounds(len(events), part, parts)
    for i in mine:
        event = events[i]
        path = f"{pointer}/{i}"
        if event.get("type") not in EVENT_TYPES:
            errors.append(CaptureError(f"{path}/type", f"unknown event type {event.get('type')!r}"))
        errors.extend(sensor_rule_errors(event, path))
        declaration = event.get("errorDeclaration")
        times = [("eventTime", event.get("eventTime"))]
        if isinstance(declaration, Mapping):
            times.append(("errorDeclaration/declarationTime", declaration.get("declarationTime")))
        for name, text in times:
            errors.extend(_time_errors(f"{path}/{name}", text, limits, latest))
    if errors:
        return EVENT_FIELDS, errors, []
    if own is None:
        plain = plain[mine.start : mine.stop] if len(plain) == len(events) else []
    errors, prepared = _prepared(
        events[mine.start : mine.stop], limits, builders.iso_ms(at), pointer, mine.start, plain
    )
    return (AS_STORED if errors else CAPTURABLE), errors, prepared


def _with_part_only(doc: Mapping[str, Any], part: int, parts: int) -> dict[str, Any] | None:
    """The document with only the events of part ``part`` of ``parts`` in its event list (a shallow copy
    along the list's path: nothing below is copied); None when its events are no list of at most
    ``MAX_EVENTS`` at their pointer (the part then checks the whole document)."""
    raw, pointer = event_list(doc)
    if not isinstance(raw, list) or len(raw) > MAX_EVENTS:
        return None
    keys = pointer.strip("/").split("/")
    mine = part_bounds(len(raw), part, parts)
    out = dict(doc)
    at = out
    for key in keys[:-1]:
        inner = dict(at[key])
        at[key] = inner
        at = inner
    own: list[Any] = raw[mine.start : mine.stop]
    if at.get(keys[-1]) is not raw:  # a body's single "event": the document keeps it as it is
        return None
    at[keys[-1]] = own
    return out


def _prepared(
    events: list[dict[str, Any]],
    limits: CaptureLimits,
    record_time: str,
    pointer: str = EVENT_LIST,
    first: int = 0,
    plain: Sequence[bool] = (),
) -> tuple[list[CaptureError], list[chain.Prepared]]:
    """Each (valid) event with the repository's recordTime, hashed and canonicalised, or the reasons to
    refuse: larger than the event limit (as stored), no canonical form, a hash eventID that is not its
    hash. ``plain``: each event's ``jcs.survey`` plainness, as the limits walk found it (none: walked
    again)."""
    errors: list[CaptureError] = []
    prepared: list[chain.Prepared] = []
    known = len(plain) == len(events)
    for k, event in enumerate(events):
        i = first + k
        path = f"{pointer}/{i}"
        event["recordTime"] = record_time  # the repository's (see the module docstring)
        try:
            p = chain.canonicalised(event, plain=plain[k] if known else None)
        except (jcs.CanonicalizationError, EventHashError) as exc:
            errors.append(CaptureError(path, str(exc)))  # our own messages
            continue
        except Exception as exc:  # a valid event the hash cannot take: a bug of ours, never a crash
            log.exception("an event of a capture could not be hashed")
            errors.append(CaptureError(path, _unhashable(exc)))
            continue
        assert p.jcs is not None
        if len(p.jcs) > limits.event_bytes:
            message = f"the event is {len(p.jcs)} bytes, more than {limits.event_bytes}"
            errors.append(CaptureError(path, message, too_large=True))
        event_id = str(event.get("eventID") or "")
        if event_id.startswith(HASH_PREFIX) and event_id != p.event_hash:
            errors.append(CaptureError(f"{path}/eventID", "a hash eventID that is not the event's hash"))
        prepared.append(p)
    return errors, prepared


def _unhashable(exc: Exception) -> str:
    """A person's sentence for an event the CBV 2.0 hash could not take (the exception stays in the log)."""
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str) and len(exc.args[0]) <= 64:
        return (
            f"the event cannot be hashed: a member without the field {exc.args[0]!r}, which the CBV 2.0 "
            "event hash needs, although the schema allows it"
        )
    return "the event cannot be hashed (CBV 2.0 event hash)"


def _time_errors(path: str, text: Any, limits: CaptureLimits, latest: datetime) -> list[CaptureError]:
    try:
        t = builders.parse_time(str(text))
    except (ValueError, OverflowError):
        return [CaptureError(path, "not an ISO 8601 time")]
    if t > latest:
        return [
            CaptureError(
                path,
                f"{builders.iso_ms(t)} is later than now plus the allowed clock skew of "
                f"{limits.future_skew_s:g} s",
            )
        ]
    if t < limits.time_floor:
        return [CaptureError(path, f"{builders.iso_ms(t)} is before {builders.iso_ms(limits.time_floor)}")]
    return []


def sensor_rule_errors(event: Mapping[str, Any], path: str = "") -> list[CaptureError]:
    """GS1's rule: device/time attributes live in sensorMetadata or in sensorReport, not both."""
    errors = []
    for j, element in enumerate(event.get("sensorElementList") or ()):
        meta = element.get("sensorMetadata") or {}
        for k, report in enumerate(element.get("sensorReport") or ()):
            both = [a for a in SHARED_SENSOR_ATTRIBUTES if a in meta and a in report]
            if both:
                errors.append(
                    CaptureError(
                        f"{path}/sensorElementList/{j}/sensorReport/{k}",
                        f"{', '.join(both)} given in both sensorMetadata and sensorReport",
                    )
                )
    return errors


def capture(
    conn: Conn,
    doc: Any,
    *,
    captured_by: str | None = None,
    limits: CaptureLimits = DEFAULT_LIMITS,
    now: datetime | None = None,
) -> CaptureJob:
    """Capture a document as one job, here and now: all its events appended, or none (``check`` then
    ``write``). The job row is recorded either way (committed), so ``GET /epcis/capture/{id}`` can report
    it. ``conn`` must not be inside a transaction. The API queues documents instead (``enqueue``): the
    capture worker of the ledger stage (``traceability.capture_worker``) checks and writes them."""
    job = write(conn, check(doc, limits, now=now), captured_by=captured_by)
    assert job is not None  # a job that was never queued is never taken by another worker
    return job


def capture_bytes(
    conn: Conn,
    raw: bytes,
    *,
    captured_by: str | None = None,
    limits: CaptureLimits = DEFAULT_LIMITS,
    now: datetime | None = None,
) -> CaptureJob:
    """``capture`` of a document's bytes (a file): parsed under the limits first."""
    job = write(conn, check_bytes(raw, limits, now=now), captured_by=captured_by)
    assert job is not None
    return job


def write(
    conn: Conn,
    checked: Checked,
    *,
    captured_by: str | None,
    queued: bool = False,
) -> CaptureJob | None:
    """Finish a checked document's job in one transaction (committed): under the ledger's lock its events
    are appended with the bytes already made, and the job row says so; or the job row records the reasons
    it was refused. ``queued``: the job row is a pending one (``enqueue``), taken here FOR UPDATE SKIP
    LOCKED; None when another worker holds it or it is done.

    The eventIDs are not looked up first (only those an errorDeclaration names, and the first and last
    event's, ``_probes``): when the ledger holds a probe's, when its unique index refuses one it holds, or
    when the document is refused, the transaction is rolled back and the document written again with
    every eventID looked up under the lock (``_identity_errors``: the same content is already captured,
    other content refused). A value or a constraint the database refuses
    otherwise is a refusal recorded (never a crash); a database that cannot be reached is an exception
    (the job stays pending)."""
    errors = list(checked.errors)
    if not errors:
        for everything in (False, True):
            job = CaptureJob(capture_id=checked.capture_id, running=False, success=False)
            try:
                with conn.transaction():
                    taken, asked, opening = _open(conn, [checked], queued=queued, everything=everything)
                    if any(t.fetchone() is None for t in taken):
                        return None  # another worker holds it, or it is done
                    matches = _entries(asked)
                    if not everything and _sent_again(matches, [checked]):
                        raise _LookUpError  # a document sent again: every eventID looked up, no append
                    errors, in_ledger = _identity_errors(matches, checked.prepared, checked.pointer)
                    if errors and not everything:
                        raise _LookUpError  # refusals are said knowing every eventID the ledger holds
                    if not errors:
                        _append(conn, [(job, checked.prepared)], in_ledger, opening)
                    else:  # refused on what the ledger holds: recorded while the job's row is still held
                        _refused(job, errors, checked.unreadable)
                    _record(conn, job, captured_by)  # committed with the events: one commit
                return job
            except _LookUpError:
                continue
            except psycopg.errors.UniqueViolation as exc:
                if not everything and exc.diag.constraint_name == queries.EVENT_ID_INDEX:
                    continue  # an eventID the ledger holds: written again, every eventID looked up
                errors = _refused_by_database(job, exc, checked.pointer)
            except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
                errors = _refused_by_database(job, exc, checked.pointer)
            except (validation.InvalidEventError, jcs.CanonicalizationError, EventHashError) as exc:
                errors = [CaptureError(checked.pointer, str(exc))]  # our own messages
            except psycopg.OperationalError:
                raise  # the database is away: the supervisor sees it; a queued job stays pending
            except Exception:  # a bug of ours: the document refused, the job finished, never a crash
                log.exception("capture %s refused on an unexpected error", job.capture_id)
                errors = [
                    CaptureError(checked.pointer, "the events could not be appended (an internal error)")
                ]
            break
    job = CaptureJob(capture_id=checked.capture_id, running=False, success=False)
    _refused(job, errors, checked.unreadable)
    with conn.transaction():
        if queued and not _take(conn, job.capture_id):
            return None
        _record(conn, job, captured_by)
    return job


class _LookUpError(Exception):
    """Raised inside ``write``'s transaction when the document is refused without every eventID looked up:
    it is written again, with them."""


def _refused_by_database(job: CaptureJob, exc: psycopg.Error, pointer: str) -> list[CaptureError]:
    """A value or a constraint the database refused (a bug of ours or a constraint added since): the
    document's refusal. The database's words (the values it quotes) stay in the log; the reason names the
    constraint, if one refused it."""
    log.exception("capture %s refused by the database", job.capture_id)
    constraint = exc.diag.constraint_name
    reason = "rejected by the database" + (f" (constraint {constraint})" if constraint else "")
    return [CaptureError(pointer, reason)]


def _open(
    conn: Conn, checked: Sequence[Checked], *, queued: bool, everything: bool
) -> tuple[list[psycopg.Cursor[Any]], psycopg.Cursor[Any] | None, chain.Opening]:
    """In one round trip, in the caller's transaction: each queued job's row taken (its cursor: no row
    when another worker holds it or it is done), the ledger's lock, the ledger's entries under the
    documents' eventIDs (``everything``) or under those their errorDeclarations name and their first and
    last events' (``_probes``), the head and the state the derivation needs for all the documents' events."""
    with _pipeline(conn):
        taken = [conn.execute(queries.TAKE_CAPTURE_JOB, (c.capture_id,)) for c in checked] if queued else []
        conn.execute(queries.LOCK_LEDGER, (queries.LEDGER_LOCK_KEY,))
        prepared = [p for c in checked for p in c.prepared]
        asked = _entries_of(conn, prepared, everything, [p for c in checked for p in _probes(c)])
        opening = chain.Opening(conn, [p.stored for p in prepared], _union([c.keys for c in checked]))
    return taken, asked, opening


class _UngroupedError(Exception):
    """Raised inside ``write_group``'s transaction: its documents are to be written one by one."""


def write_group(
    conn: Conn,
    items: Sequence[tuple[Checked, str | None]],
    *,
    queued: bool = False,
) -> list[CaptureJob | None]:
    """``write`` of several checked documents (each with who captured it), in order, as one transaction:
    one lock, one append of all their events (each document's entries after those of the documents
    before it), each job's row, one commit. What a write pays once, whatever its size (the round trip
    under the lock, each table's COPY, the commit), is paid once for them all. Each document is still its
    own job, all or nothing, and ends as ``write`` would end it: when any is refused (by its check, on
    what the ledger holds, or by the database), holds an eventID the ledger holds, a job is held by
    another worker, or the append fails, nothing of the group stays and each document is written alone,
    in order. Returns their jobs as ``write`` does."""

    def alone() -> list[CaptureJob | None]:
        return [write(conn, c, captured_by=by, queued=queued) for c, by in items]

    if len(items) < 2 or any(c.errors or not c.prepared for c, _ in items):
        return alone()
    jobs = [CaptureJob(capture_id=c.capture_id, running=False, success=False) for c, _ in items]
    checked = [c for c, _ in items]
    prepared = [p for c in checked for p in c.prepared]
    try:
        with conn.transaction():
            taken, asked, opening = _open(conn, checked, queued=queued, everything=False)
            if any(t.fetchone() is None for t in taken):
                raise _UngroupedError  # another worker holds one, or it is done: each is taken alone
            matches = _entries(asked)
            if _sent_again(matches, checked):
                raise _UngroupedError  # one sent again: each written alone, its eventIDs looked up
            refusals, in_ledger = _identity_errors(matches, prepared)
            if refusals:
                raise _UngroupedError  # refused on what the ledger holds: each says so alone
            documents = [(job, c.prepared) for job, (c, _) in zip(jobs, items, strict=True)]
            _append(conn, documents, in_ledger, opening)
            for job, (_, by) in zip(jobs, items, strict=True):
                _record(conn, job, by)
    except _UngroupedError:
        return alone()
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name != queries.EVENT_ID_INDEX:
            log.exception("a group of %d captures was rolled back; each is written alone", len(items))
        return alone()  # an eventID the ledger holds (a document sent again): each written alone
    except psycopg.OperationalError:
        raise  # the database is away: the jobs stay pending
    except Exception:  # refused by the database, or a bug of ours: each document's own outcome, alone
        log.exception("a group of %d captures was rolled back; each is written alone", len(items))
        return alone()
    return list(jobs)


def _refused(job: CaptureJob, errors: Sequence[CaptureError], unreadable: bool) -> None:
    # Nothing of an append rolled back stays on the job (a refusal at the commit comes after ``_append``).
    job.success, job.events, job.first_seq, job.last_seq, job.already_captured = False, 0, None, None, []
    job.errors = [e.as_dict() for e in errors]
    job.too_large = any(e.too_large for e in errors)
    job.unreadable = unreadable


def _append(
    conn: Conn,
    jobs: Sequence[tuple[CaptureJob, Sequence[chain.Prepared]]],
    in_ledger: Mapping[tuple[str, bool], int],
    opening: chain.Opening,
) -> None:
    """Append the events of one or more documents, in order (under the lock the caller holds;
    ``in_ledger``: the seqs of their eventIDs the ledger holds, as far as they were looked up, and
    ``opening`` the head and derivation state, read under it) in the caller's transaction, and fill each
    job's seq range and the events that were in the ledger already (or earlier in its document, or in a
    document before it)."""
    head_seq = opening.head()[0]
    prepared = [p for _, events in jobs for p in events]
    seqs = iter(chain.append_prepared(conn, prepared, in_ledger=in_ledger, savepoint=False, opening=opening))
    seen: set[int] = set()
    for job, events in jobs:
        new: list[int] = []
        for p, seq in zip(events, seqs, strict=False):  # the next len(events) seqs
            if seq <= head_seq or seq in seen:
                job.already_captured.append({"eventID": p.stored["eventID"], "seq": seq})
            else:
                new.append(seq)
            seen.add(seq)
        job.success, job.events = True, len(new)
        job.first_seq = min(new) if new else None
        job.last_seq = max(new) if new else None
    assert next(seqs, None) is None  # one seq for each event


def _take(conn: Conn, capture_id: str) -> bool:
    """Lock a pending job's row for this transaction; False when another worker holds it or it is done."""
    return conn.execute(queries.TAKE_CAPTURE_JOB, (capture_id,)).fetchone() is not None


def refuse(
    conn: Conn, errors: Sequence[CaptureError], *, captured_by: str | None, capture_id: str | None = None
) -> CaptureJob:
    """Record a refused capture job with its reasons (committed) and return it."""
    job = write(conn, Checked(capture_id or str(uuid.uuid4()), list(errors), []), captured_by=captured_by)
    assert job is not None
    return job


def enqueue(conn: Conn, raw: bytes, *, captured_by: str | None) -> CaptureJob:
    """Store a document's bytes as a pending capture job (committed) and return it: running, no error yet.
    The capture worker of the ledger stage takes it (``traceability.capture_worker``)."""
    job = CaptureJob(capture_id=str(uuid.uuid4()), running=True, success=True)
    with conn.transaction(), _pipeline(conn):
        conn.execute(queries.ENQUEUE_CAPTURE_JOB, (job.capture_id, raw, captured_by))
        conn.execute(queries.ANNOUNCE_CAPTURE_JOB)  # the capture workers wake at the commit
    return job


def _pipeline(conn: Conn) -> contextlib.AbstractContextManager[Any]:
    """A pipeline on ``conn`` (its statements sent together, answered at its end), where libpq has one."""
    return conn.pipeline() if psycopg.Pipeline.is_supported() else contextlib.nullcontext()


def _entries_of(
    conn: Conn,
    prepared: Sequence[chain.Prepared],
    everything: bool,
    probes: Sequence[chain.Prepared] = (),
) -> psycopg.Cursor[Any] | None:
    """Ask for the ledger's entries under the events' eventIDs (``everything``), else under the eventIDs
    their errorDeclarations name and those of ``probes`` (``_probes``; None: nothing to ask)."""
    asked = prepared if everything else [p for p in prepared if "errorDeclaration" in p.stored] + [*probes]
    ids = list(dict.fromkeys(str(p.stored["eventID"]) for p in asked))
    if not ids:
        return None
    return conn.execute(queries.EVENT_CONTENT_BY_IDS, queries.text_arrays(ids))


def _probes(checked: Checked) -> list[chain.Prepared]:
    """The events of a document whose eventIDs are looked up even when the others are not: its first and
    its last. A document sent again holds them (capture is all or nothing), so it is found before its
    append, which the ledger's unique index would refuse (the append rolled back, an error in the
    server's log) before the document is written again with every eventID looked up."""
    return checked.prepared[:1] + checked.prepared[1:][-1:]


def _sent_again(matches: Sequence[tuple[str, bool, int, Any]], checked: Sequence[Checked]) -> bool:
    """Whether the ledger holds an entry under the eventID (and errorDeclaration or not) of a probe of
    the documents (``matches``: ``_entries``)."""
    held = {(event_id, declares) for event_id, declares, _, _ in matches}
    return any(
        (str(p.stored["eventID"]), "errorDeclaration" in p.stored) in held
        for c in checked
        for p in _probes(c)
    )


def _entries(asked: psycopg.Cursor[Any] | None) -> list[tuple[str, bool, int, Any]]:
    """The answer to ``_entries_of`` as matches: (eventID, declares an error, seq, content)."""
    rows = [] if asked is None else asked.fetchall()
    return [(str(r[0]), bool(r[1]), int(r[2]), r[3]) for r in rows]


def _identity_errors(
    matches: Sequence[tuple[str, bool, int, Any]],
    prepared: Sequence[chain.Prepared],
    pointer: str = EVENT_LIST,
) -> tuple[list[CaptureError], dict[tuple[str, bool], int]]:
    """The eventID refusals that need the ledger (``matches``: its entries under the events' eventIDs, as
    ``_entries_of`` asks them): a reused eventID with other content, an errorDeclaration of no event (in
    the ledger or earlier in the events). The events are as they will be stored; an eventID that is the
    event's hash (its own, or given it for want of one) names its content, so met again it is the same
    event. Contents are compared only where another eventID is met again. Also the seqs of the eventIDs
    the ledger holds, keyed by (eventID, declares an error): what the append needs of it."""
    errors: list[CaptureError] = []
    known: dict[tuple[str, bool], Mapping[str, Any]] = {}
    in_ledger: dict[tuple[str, bool], int] = {}
    for event_id, declares, seq, content in matches:
        known[(event_id, declares)] = content
        in_ledger[(event_id, declares)] = seq
    for i, (event, ev_hash, *_) in enumerate(prepared):
        declares = "errorDeclaration" in event
        event_id = str(event["eventID"])
        key = (event_id, declares)
        earlier = known.get(key)
        if earlier is not None and event_id != ev_hash and _content(earlier) != _content(event):
            reason = f"eventID {event_id!r} is taken by an event with other content"
            errors.append(CaptureError(f"{pointer}/{i}/eventID", reason))
            continue
        if declares and (event_id, False) not in known:
            reason = f"no event {event_id!r} to declare wrong"
            errors.append(CaptureError(f"{pointer}/{i}/errorDeclaration", reason))
            continue
        if earlier is None:
            known[key] = event
    return errors, in_ledger


def _content(event: Mapping[str, Any]) -> bytes:
    """An event's content as the idempotency check compares it: its canonical bytes without recordTime."""
    return jcs.canonical({k: v for k, v in event.items() if k != "recordTime"})


def _record(conn: Conn, job: CaptureJob, captured_by: str | None) -> None:
    conn.execute(
        queries.INSERT_CAPTURE_JOB,
        {
            "id": job.capture_id,
            "success": job.success,
            "events": job.events,
            "first": job.first_seq,
            "last": job.last_seq,
            "errors": Jsonb(job.errors),
            "already": Jsonb(job.already_captured),
            "by": captured_by,
        },
    )


def get_job(
    conn: Conn, capture_id: str, seen_by: Mapping[str, str | None] = queries.EVERYTHING
) -> CaptureJob | None:
    """A capture job, to a reader ``seen_by`` (a scope's parameters) who sees every event (None: no such
    job, or a reader who sees only some: a job names the ledger's seqs, whoever's events they are)."""
    row = conn.execute(queries.CAPTURE_JOB, {**seen_by, "id": capture_id}).fetchone()
    if row is None:
        return None
    return CaptureJob(
        capture_id=row[0],
        running=row[1],
        success=row[2],
        events=row[3],
        first_seq=row[4],
        last_seq=row[5],
        errors=list(row[6]),
        already_captured=list(row[7]),
    )
