"""Stage 3, API: GET /scorecards (a period's ranked cards of one subject kind), GET
/scorecards/{subject}/{id} (one card with the rows behind its indicators) and /scorecards/report.{pdf,xlsx},
scoped: regulators, inspectors and admins see every subject, a carrier only its own card (another's is
404, as one that does not exist)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Path, Query, Request, Response

from traceability.api.deps import Db, Reader, ScopeDep
from traceability.api.problems import ERRORS, PROBLEM_BASE, ApiProblemError
from traceability.i18n import negotiate, zone
from traceability.reports.build import MEDIA_TYPES
from traceability.reports.scorecard import render_scorecard
from traceability.scorecards import compute, export
from traceability.scorecards.model import INDICATOR_KEYS, SUBJECTS
from traceability.scorecards.period import Period, PeriodError, parse_period

router = APIRouter(tags=["scorecards"])

SubjectKind = Literal["carrier", "device", "asset", "site", "shipper"]
PeriodParam = Annotated[
    str,
    Query(
        min_length=4, max_length=40, description="2026Q4 (default form), 2026-11, or 2026-10-01/2026-12-31"
    ),
]
_RESPONSES: dict[int | str, dict[str, Any]] = {422: ERRORS[422], 404: ERRORS[404]}
assert set(SUBJECTS) == set(get_args(SubjectKind))  # one list of subject kinds (model.SUBJECTS)


def _period(label: str) -> Period:
    try:
        return parse_period(label)
    except PeriodError as exc:
        raise ApiProblemError(
            422, "Unprocessable Content", str(exc), type_=PROBLEM_BASE + "bad-period"
        ) from None


def _not_found(subject: str, subject_id: str) -> ApiProblemError:
    return ApiProblemError(
        404, "Not Found", f"no {subject} {subject_id!r}", type_=PROBLEM_BASE + "scorecard-not-found"
    )


@router.get("/scorecards", responses=_RESPONSES)
def list_scorecards(
    conn: Db, _: Reader, scope: ScopeDep, period: PeriodParam, subject: SubjectKind = "carrier"
) -> dict[str, Any]:
    """The period's cards of one subject kind, best first: each indicator's numerator, denominator,
    exemptions and ratio, the weighted score, the rank among all subjects of the kind and the previous
    period's score. A carrier's or shipper's key gets its own card only."""
    board = compute.scoreboard(conn, _period(period), subject, seen_by=scope.params())
    return export.board_dict(board)


@router.get(
    "/scorecards/report.{fmt}",
    response_class=Response,
    responses={
        200: {"content": {MEDIA_TYPES[f]: {} for f in ("pdf", "xlsx")}, "description": "The report."},
        **_RESPONSES,
    },
)
def scorecard_report(
    request: Request,
    fmt: Literal["pdf", "xlsx"],
    conn: Db,
    _: Reader,
    scope: ScopeDep,
    period: PeriodParam,
    subject: SubjectKind = "carrier",
    lang: Literal["zh-CN", "en"] | None = None,
    tz: str | None = None,
) -> Response:
    """The scoreboard as a report (PDF, or XLSX with a sheet of drill-down rows per indicator), in zh-CN
    (the regulator's words: 上传率, 匹配率, 异常率, 达标率, 覆盖率) or en."""
    chosen = negotiate(request.headers.get("accept-language"), lang)
    p = _period(period)
    board = compute.scoreboard(conn, p, subject, seen_by=scope.params())
    data = render_scorecard(conn, board, fmt, lang=chosen, tz=zone(tz, chosen), seen_by=scope.params())
    name = f"scorecard-{subject}-{p.label.replace('/', '_')}.{fmt}"
    return Response(
        content=data,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/scorecards/{subject}/{subject_id:path}", responses=_RESPONSES)
def get_scorecard(
    subject: SubjectKind,
    subject_id: Annotated[str, Path(min_length=1, max_length=200)],
    conn: Db,
    _: Reader,
    scope: ScopeDep,
    period: PeriodParam,
    indicator: Annotated[
        str | None,
        Query(max_length=40, description=f"only this indicator's rows: {', '.join(INDICATOR_KEYS)}"),
    ] = None,
) -> dict[str, Any]:
    """One subject's card and, per indicator (or only ``indicator``), the rows behind it: which device lost
    which readings, which shipment missed its geofence. 404 when the subject has no card in the period or
    is not the caller's to see."""
    p = _period(period)
    if indicator is not None and indicator not in INDICATOR_KEYS:
        raise ApiProblemError(
            422,
            "Unprocessable Content",
            f"indicator {indicator!r}: one of {', '.join(INDICATOR_KEYS)}",
            type_=PROBLEM_BASE + "bad-indicator",
        )
    seen_by = scope.params()
    try:
        card = compute.card(conn, p, subject, subject_id, seen_by=seen_by)
    except compute.UnknownSubjectError:
        raise _not_found(subject, subject_id) from None
    found = compute.drill_all(conn, p, subject, [subject_id], seen_by=seen_by).get(subject_id, {})
    rows = {k: export.rows_list(v) for k, v in found.items() if indicator is None or k == indicator}
    return {"period": p.label, "subject": subject, "card": export.card_dict(card), "rows": rows}
