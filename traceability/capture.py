"""Stage 3, capture: EPCIS 2.0 documents in (GS1 REST bindings capture jobs, all or nothing) and out (export).

A document is checked against GS1's EPCIS 2.0 JSON Schema and the rules the schema cannot say (a sensor
element may put device and time attributes in ``sensorMetadata`` or in its ``sensorReport`` entries,
never in both), then all its events are appended in one transaction: either every event is in the
ledger or none is. Each event inherits the document's ``@context`` when it has none of its own, so the
extension prefixes it uses hash to the same namespaces as in the document.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from traceability import epcis, ledger, queries

Conn = psycopg.Connection[Any]

# Attributes that GS1 allows in sensorMetadata or in each sensorReport, but not in both of one element
# (EPCIS 2.0, 7.3.5.2: "if ... specified in sensorMetadata, it SHALL NOT be specified in sensorReport").
SHARED_SENSOR_ATTRIBUTES = ("time", "deviceID", "deviceMetadata", "rawData", "dataProcessingMethod")
EVENT_TYPES = frozenset(
    {"ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent"}
)
# Documents above this many events are refused (one transaction holds them all).
MAX_EVENTS = 10_000


@dataclass(frozen=True, slots=True)
class CaptureError:
    """One reason a document was refused, located by a JSON pointer-like path."""

    path: str
    message: str

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

    def as_dict(self) -> dict[str, Any]:
        """The capture job document of the GS1 REST bindings, plus our seq range."""
        return {
            "captureID": self.capture_id,
            "running": self.running,
            "success": self.success,
            "captureErrorBehaviour": "rollback",
            "errors": self.errors,
            "events": self.events,
            "firstSeq": self.first_seq,
            "lastSeq": self.last_seq,
        }


class CaptureRefusedError(ValueError):
    """A document that cannot be captured; ``errors`` says why."""

    def __init__(self, errors: Sequence[CaptureError]) -> None:
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in errors))
        self.errors = list(errors)


def events_of(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The document's events, each with the document's @context unless it has its own."""
    body = doc.get("epcisBody")
    if not isinstance(body, Mapping):
        return []
    raw = body.get("eventList")
    if raw is None and "event" in body:
        raw = [body["event"]]
    context = doc.get("@context", epcis.CONTEXT)
    out = []
    for event in raw if isinstance(raw, list) else []:
        if isinstance(event, Mapping):  # the schema refuses a document with any other item
            e = dict(event)
            e.setdefault("@context", context)
            out.append(e)
    return out


def check_document(doc: Any) -> list[CaptureError]:
    """Every reason to refuse ``doc`` (empty: capturable)."""
    if not isinstance(doc, Mapping):
        return [CaptureError("", "the body is not a JSON object")]
    if doc.get("type") != "EPCISDocument":
        return [CaptureError("/type", "expected an EPCISDocument")]
    try:
        epcis.validate_document(doc)
    except epcis.InvalidEventError as exc:
        return [CaptureError("", f"EPCIS 2.0 JSON Schema: {exc}")]
    errors: list[CaptureError] = []
    events = events_of(doc)
    if not events:
        errors.append(CaptureError("/epcisBody", "no events"))
    if len(events) > MAX_EVENTS:
        errors.append(CaptureError("/epcisBody/eventList", f"more than {MAX_EVENTS} events"))
    for i, event in enumerate(events):
        path = f"/epcisBody/eventList/{i}"
        if event.get("type") not in EVENT_TYPES:
            errors.append(CaptureError(f"{path}/type", f"unknown event type {event.get('type')!r}"))
        errors.extend(sensor_rule_errors(event, path))
        try:
            epcis.parse_time(str(event.get("eventTime")))
        except ValueError:
            errors.append(CaptureError(f"{path}/eventTime", "not an ISO 8601 time"))
    return errors


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


def capture(conn: Conn, doc: Any, *, captured_by: str | None = None) -> CaptureJob:
    """Capture a document as one job: all its events appended, or none. The job row is recorded either way
    (committed), so ``GET /epcis/capture/{id}`` can report it. ``conn`` must not be inside a transaction.

    The document is checked (schema, sensor rule) first, then its events are appended in one transaction.
    The check runs in this thread on purpose: measured on two cores, checking in a thread beside the
    append held the GIL against its every round trip, and checking in another process cost more CPU in
    all (transfer, three processes on two cores) than it took off the append."""
    job = CaptureJob(capture_id=str(uuid.uuid4()), running=False, success=False)
    errors = check_document(doc)
    if not errors:
        try:
            with conn.transaction():
                seqs = ledger.append_many(conn, events_of(doc), validated=True)
                job.success, job.events = True, len(seqs)
                job.first_seq = min(seqs) if seqs else None
                job.last_seq = max(seqs) if seqs else None
                _record(conn, job, captured_by)  # committed with the events: one commit
            return job
        except (epcis.InvalidEventError, ValueError, KeyError, TypeError) as exc:
            errors = [CaptureError("/epcisBody/eventList", str(exc))]
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            # A value or a constraint the database refuses (a bug of ours or a constraint added since):
            # the document is refused and the refusal recorded, never a crash of the request.
            errors = [CaptureError("/epcisBody/eventList", f"rejected by the database: {exc}")]
    job = CaptureJob(capture_id=job.capture_id, running=False, success=False)
    job.errors = [e.as_dict() for e in errors]
    with conn.transaction():
        _record(conn, job, captured_by)
    return job


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
            "by": captured_by,
        },
    )


def get_job(conn: Conn, capture_id: str) -> CaptureJob | None:
    row = conn.execute(queries.CAPTURE_JOB, (capture_id,)).fetchone()
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
    )


def export_document(
    events: Iterable[Mapping[str, Any]], *, creation_date: datetime | None = None
) -> dict[str, Any]:
    """An EPCISDocument of stored events. The document's @context is the union of the events' contexts
    (namespace objects merged), so every extension prefix stays bound; the events keep their eventIDs."""
    context: list[Any] = [epcis.EPCIS_CONTEXT]
    namespaces: dict[str, str] = {}
    body = []
    for event in events:
        ctx = event.get("@context")
        for item in ctx if isinstance(ctx, list) else [ctx]:
            if isinstance(item, Mapping):
                namespaces.update({k: v for k, v in item.items() if isinstance(v, str)})
        body.append({k: v for k, v in event.items() if k != "@context"})
    context.extend({k: v} for k, v in sorted(namespaces.items()))
    doc = epcis.document([], creation_date=creation_date)
    doc["@context"] = context
    doc["epcisBody"] = {"eventList": body}
    return doc
