"""Stage 3, API: POST /epcis/capture, GET /epcis/capture/{id} and GET /epcis/events (GS1 REST bindings)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from traceability import queries
from traceability.api import auth, pages
from traceability.api.deps import Db, Principal, Reader, ScopeDep, authenticate, permit, presented_key
from traceability.api.options import ApiOptions
from traceability.api.problems import ERRORS, PROBLEM_BASE, ApiProblemError
from traceability.api.schemas import CaptureJobModel
from traceability.api.scope import scope_of
from traceability.epcis import capture, events_query
from traceability.epcis import xml as epcis_xml

router = APIRouter(tags=["epcis"])

# The capture body as the OpenAPI document shows it (the route reads the bytes itself, under the limits).
CAPTURE_BODY: dict[str, Any] = {
    "required": True,
    "description": "an EPCISDocument (EPCIS 2.0 JSON-LD, or EPCIS 2.0 / 1.2 XML)",
    "content": {
        **{
            media: {"schema": {"type": "object", "additionalProperties": True}}
            for media in ("application/ld+json", "application/json")
        },
        **{media: {"schema": {"type": "string"}} for media in epcis_xml.XML_MEDIA_TYPES},
    },
}


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes | None:
    """The request body, None as soon as it is longer than ``limit`` bytes (the rest is not read); 408
    when the whole of it has not arrived within ``timeout_s``. It is read before the request takes a
    connection: a slow upload holds none."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    return None
                chunks.append(chunk)
    except TimeoutError:
        raise ApiProblemError(
            408,
            "Request Timeout",
            f"the request body did not arrive within {timeout_s:g} s",
            type_=PROBLEM_BASE + "body-timeout",
        ) from None
    return b"".join(chunks)


@router.post(
    "/epcis/capture",
    status_code=202,
    response_model=CaptureJobModel,
    responses={
        202: {"headers": {"Location": {"description": "the capture job", "schema": {"type": "string"}}}},
        408: ERRORS[400],
        413: ERRORS[400],
    },
    openapi_extra={"requestBody": CAPTURE_BODY},
)
async def capture_route(
    request: Request, response: Response, secret: Annotated[str, Depends(presented_key)]
) -> Any:
    """Queue an EPCISDocument (or EPCISQueryDocument) for capture, all or nothing (GS1 REST bindings;
    captureErrorBehaviour rollback): 202 at once with the capture job (``Location``), which the capture
    worker of the ledger stage finishes. ``GET /epcis/capture/{id}`` then says ``running`` until it is
    done, and ``success`` with the seq range, or the reasons it was refused (``errors``: a JSON pointer and
    a sentence each); the events already in the ledger with the same content are listed in
    ``alreadyCaptured`` (idempotent). 413 (a refused job) for a body over the document size limit, 408 when
    the body does not arrive in time."""
    opts: ApiOptions = request.app.state.options
    limits = opts.capture
    # The body first (bounded in bytes and time), then the connection: the key lookup and the queued job
    # share it, and no upload holds it while its bytes arrive.
    raw = await read_body(request, limits.document_bytes, opts.body_timeout_s)
    principal = permit(await authenticate(request, secret), auth.CAPTURE)
    conn = await request.state.lease.acquire()
    if raw is None:
        job = await run_in_threadpool(
            capture.refuse, conn, [capture.too_large_document(limits)], captured_by=principal.name
        )
        raise ApiProblemError(
            413,
            "Capture refused",
            "the document was not captured: " + "; ".join(e["message"] for e in job.errors),
            type_=PROBLEM_BASE + "too-large",
            errors=job.errors,
            captureID=job.capture_id,
        )
    job = await run_in_threadpool(capture.enqueue, conn, raw, captured_by=principal.name)
    worker = getattr(request.app.state, "capture_worker", None)
    if worker is not None:
        worker.wake()
    response.headers["Location"] = f"/epcis/capture/{job.capture_id}"
    return CaptureJobModel(**job.as_dict())


@router.get("/epcis/capture/{capture_id}", response_model=CaptureJobModel)
def capture_job(capture_id: str, conn: Db, principal: Principal) -> CaptureJobModel:
    """A capture job's state (to the capture keys and the readers of everything: a job names the ledger's
    seqs, not whose events they are; 404 to any other reader)."""
    if not (principal.may(auth.CAPTURE) or principal.may(auth.READ)):
        raise ApiProblemError(403, "Forbidden", f"role {principal.role!r} may not read capture jobs")
    # A capture key reads the jobs it queues (it reads no events); a reader, if it sees every event.
    seen_by = queries.EVERYTHING if principal.may(auth.CAPTURE) else scope_of(principal).params()
    job = capture.get_job(conn, capture_id, seen_by)
    if job is None:
        raise ApiProblemError(404, "Not Found", f"no capture job {capture_id!r}")
    return CaptureJobModel(**job.as_dict())


@router.get(
    "/epcis/events",
    response_model=None,
    response_class=Response,
    responses={200: {"content": pages.EVENTS_PAGE_CONTENT}},
)
def events_route(
    request: Request,
    conn: Db,
    _: Reader,
    scope: ScopeDep,
    ge_event_time: Annotated[datetime | None, Query(alias="GE_eventTime")] = None,
    lt_event_time: Annotated[datetime | None, Query(alias="LT_eventTime")] = None,
    event_type: Annotated[list[str] | None, Query(alias="eventType")] = None,
    eq_biz_step: Annotated[list[str] | None, Query(alias="EQ_bizStep")] = None,
    match_epc: Annotated[list[str] | None, Query(alias="MATCH_epc")] = None,
    match_parent_id: Annotated[list[str] | None, Query(alias="MATCH_parentID")] = None,
    eq_biz_location: Annotated[list[str] | None, Query(alias="EQ_bizLocation")] = None,
    eq_read_point: Annotated[list[str] | None, Query(alias="EQ_readPoint")] = None,
    uom: Annotated[
        Literal["CEL", "KEL", "FAH"] | None,
        Query(description="unit of the sensor thresholds (GE_value_Temperature=...); default KEL"),
    ] = None,
    ge_value_temperature: Annotated[float | None, Query(alias="GE_value_Temperature")] = None,
    le_value_temperature: Annotated[float | None, Query(alias="LE_value_Temperature")] = None,
    ge_max_value_temperature: Annotated[float | None, Query(alias="GE_maxValue_Temperature")] = None,
    le_min_value_temperature: Annotated[float | None, Query(alias="LE_minValue_Temperature")] = None,
    per_page: Annotated[int | None, Query(alias="perPage", ge=1, le=events_query.MAX_PER_PAGE)] = None,
    next_page_token: Annotated[str | None, Query(alias="nextPageToken", max_length=200)] = None,
) -> Response:
    """EPCIS 2.0 event query: every SimpleEventQuery parameter of ``events_query.from_params`` (the common
    ones are listed here; one it does not know is a 400 QueryParameterException). Any ``<OP>_<value|
    minValue|maxValue|meanValue>_<Type>`` sensor filter is accepted, thresholds in ``uom`` (converted: KEL
    matches CEL data). Pages are ``perPage`` long; the next one is in the Link header (``nextPageToken``).
    With ``Accept: application/xml`` the page is an EPCIS 2.0 XML EPCISQueryDocument (JSON-LD otherwise).
    Only the events the key may read (``cc_sees_event``: a subject or a business transaction it sees)."""
    q = events_query.from_params(pages.query_params(request))
    q.seen_by = scope.params()
    events, token = events_query.run(conn, q)
    return pages.events_page(request, events, token)
