"""Stage 3, API: GET /trace/{id}/report.{pdf,xlsx,csv} and /trace/{id}/bundle.json: a lot's evidence
report, built from the same ``Trace`` as /trace/{id}, and the companion bundle that proves it offline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request, Response

from traceability.api.deps import Db, Reader, ScopeDep
from traceability.api.problems import PROBLEM_BASE, ApiProblemError, LotNotFoundError
from traceability.i18n import negotiate, zone
from traceability.ledger import checkpoint
from traceability.reports.build import MEDIA_TYPES, REPORT_LEG_READINGS, Report, read_report, render
from traceability.reports.download import (
    BUNDLE_MEDIA_TYPE,
    bundle_headers,
    report_headers,
)
from traceability.reports.proof import ReportError, evidence
from traceability.trace import trace
from traceability.web.paths import trace_page_url

router = APIRouter(tags=["reports"])


def _checkpoint_at(conn: Db, seq: int | None) -> checkpoint.Checkpoint | None:
    """The signed head at ``seq`` (the newest checkpoint there); None for no ``seq``; 404 when none."""
    if seq is None:
        return None
    cp = checkpoint.at_seq(conn, seq)
    if cp is None:
        raise ApiProblemError(404, "Not Found", f"no signed checkpoint at seq {seq}")
    return cp


def _report(
    request: Request,
    conn: Db,
    trace_id: str,
    lang: str | None,
    tz: str | None,
    seq: int | None,
    scope: ScopeDep,
    *,
    with_readings: bool,
) -> Report:
    chosen = negotiate(request.headers.get("accept-language"), lang)
    cp = _checkpoint_at(conn, seq)
    try:
        report = read_report(
            conn,
            trace_id,
            lang=chosen,
            tz=zone(tz, chosen),
            legs=REPORT_LEG_READINGS,
            trace_url=trace_page_url(str(request.base_url), trace_id),
            base_url=str(request.base_url),
            cp=cp,
            with_readings=with_readings,
            seen_by=scope.params(),
        )
    except ReportError as exc:
        raise ApiProblemError(409, "Conflict", str(exc), type_=PROBLEM_BASE + "report-unproven") from None
    if report is None:
        raise LotNotFoundError(trace_id)
    return report


@router.get(
    "/trace/{trace_id:path}/report.{fmt}",
    response_class=Response,
    responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}, "description": "The report file."}},
)
def report_route(
    request: Request,
    trace_id: str,
    fmt: Literal["pdf", "xlsx", "csv"],
    conn: Db,
    _: Reader,
    scope: ScopeDep,
    lang: Literal["zh-CN", "en"] | None = None,
    tz: str | None = None,
    seq: int | None = None,
) -> Response:
    """The lot's chain-of-custody and temperature-compliance report (PDF), or its events and readings
    (XLSX; CSV: the events), in zh-CN or en (``lang``, else Accept-Language), local times in ``tz``,
    proven up to the signed checkpoint at ``seq`` (else the newest). The ``X-Evidence-Bundle-Sha256``
    header names the bundle (``bundle.json``, linked) that proves it offline."""
    report = _report(request, conn, trace_id, lang, tz, seq, scope, with_readings=fmt != "pdf")
    return Response(
        content=render(report, fmt),
        media_type=MEDIA_TYPES[fmt],
        headers=report_headers(report.proof, fmt),
    )


@router.get(
    "/trace/{trace_id:path}/bundle.json",
    response_class=Response,
    responses={200: {"content": {BUNDLE_MEDIA_TYPE: {}}, "description": "The evidence bundle."}},
)
def bundle_route(trace_id: str, conn: Db, _: Reader, scope: ScopeDep, seq: int | None = None) -> Response:
    """The lot's evidence bundle (a report's companion): its events, the chain segment proving them and a
    signed checkpoint: the newest at ``seq`` (a report names it as its ledger head, so its bundle can be
    fetched again byte for byte), else the newest. ``coldchain ledger verify-bundle`` checks it offline."""
    found = trace(conn, trace_id, scope.params())
    if found is None:
        raise LotNotFoundError(trace_id)
    cp = _checkpoint_at(conn, seq)
    try:
        data, proof = evidence(conn, found, reading_rows=0, generated_at=datetime.now(UTC), cp=cp)
    except ReportError as exc:
        raise ApiProblemError(409, "Conflict", str(exc), type_=PROBLEM_BASE + "report-unproven") from None
    return Response(content=data, media_type=BUNDLE_MEDIA_TYPE, headers=bundle_headers(proof))
