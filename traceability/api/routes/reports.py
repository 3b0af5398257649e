"""Stage 3, API: GET /trace/{id}/report.{pdf,xlsx,csv} and /trace/{id}/bundle.json: a lot's evidence
report, built from the same ``Trace`` as /trace/{id}, and the companion bundle that proves it offline."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from traceability.api.deps import Db, Reader
from traceability.api.problems import PROBLEM_BASE, ApiProblemError, LotNotFoundError
from traceability.i18n import negotiate, zone
from traceability.ledger import checkpoint
from traceability.reports.build import (
    MEDIA_TYPES,
    REPORT_LEG_READINGS,
    Report,
    read_report,
    render,
    trace_page_url,
)
from traceability.reports.proof import BUNDLE_SUFFIX, ReportError, evidence
from traceability.trace import trace

router = APIRouter(tags=["reports"])

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
BUNDLE_MEDIA_TYPE = "application/json"


def _file_stem(lot_id: str) -> str:
    """A file name for the lot's report: its id with every character a file name may not hold replaced."""
    return "report-" + _UNSAFE.sub("_", lot_id).strip("_")[:120]


def bundle_path_of(lot_id: str, head_seq: int) -> str:
    """The path of the bundle a report states (its lot, proven up to the report's signed head)."""
    return f"/trace/{quote(lot_id, safe=':')}/bundle.json?seq={head_seq}"


def _report(
    request: Request, conn: Db, trace_id: str, lang: str | None, tz: str | None, *, with_readings: bool
) -> Report:
    chosen = negotiate(request.headers.get("accept-language"), lang)
    try:
        report = read_report(
            conn,
            trace_id,
            lang=chosen,
            tz=zone(tz, chosen),
            legs=REPORT_LEG_READINGS,
            trace_url=trace_page_url(str(request.base_url), trace_id),
            with_readings=with_readings,
        )
    except ReportError as exc:
        raise ApiProblemError(409, "Conflict", str(exc), type_=PROBLEM_BASE + "report-unproven") from None
    if report is None:
        raise LotNotFoundError(trace_id)
    return report


def _download(data: bytes, media_type: str, filename: str, report: Report) -> Response:
    bundle_path = bundle_path_of(report.trace.lot_id, report.proof.head_seq)
    return Response(
        content=data,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Evidence-Bundle-Sha256": report.proof.bundle_sha256,
            "Link": f'<{bundle_path}>; rel="describedby"; type="{BUNDLE_MEDIA_TYPE}"',
            "Cache-Control": "no-store",
        },
    )


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
    lang: Literal["zh-CN", "en"] | None = None,
    tz: str | None = None,
) -> Response:
    """The lot's chain-of-custody and temperature-compliance report (PDF), or its events and readings
    (XLSX; CSV: the events), in zh-CN or en (``lang``, else Accept-Language), local times in ``tz``. The
    ``X-Evidence-Bundle-Sha256`` header names the bundle (``bundle.json``) that proves it offline."""
    report = _report(request, conn, trace_id, lang, tz, with_readings=fmt != "pdf")
    return _download(
        render(report, fmt), MEDIA_TYPES[fmt], f"{_file_stem(report.trace.lot_id)}.{fmt}", report
    )


@router.get(
    "/trace/{trace_id:path}/bundle.json",
    response_class=Response,
    responses={200: {"content": {BUNDLE_MEDIA_TYPE: {}}, "description": "The evidence bundle."}},
)
def bundle_route(trace_id: str, conn: Db, _: Reader, seq: int | None = None) -> Response:
    """The lot's evidence bundle (a report's companion): its events, the chain segment proving them and a
    signed checkpoint: the one at ``seq`` (a report names it as its ledger head, so its bundle can be
    fetched again byte for byte), else the newest. ``coldchain ledger verify-bundle`` checks it offline."""
    found = trace(conn, trace_id)
    if found is None:
        raise LotNotFoundError(trace_id)
    cp = None
    if seq is not None:
        cp = next((c for _, c in checkpoint.stored(conn) if c.seq == seq), None)
        if cp is None:
            raise ApiProblemError(404, "Not Found", f"no signed checkpoint at seq {seq}")
    try:
        data, proof = evidence(conn, found, reading_rows=0, generated_at=datetime.now(UTC), cp=cp)
    except ReportError as exc:
        raise ApiProblemError(409, "Conflict", str(exc), type_=PROBLEM_BASE + "report-unproven") from None
    return Response(
        content=data,
        media_type=BUNDLE_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{_file_stem(found.lot_id)}{BUNDLE_SUFFIX}"',
            "X-Evidence-Bundle-Sha256": proof.bundle_sha256,
            "Cache-Control": "no-store",
        },
    )
