"""Stage 3 (reports): a scoreboard as a PDF (WeasyPrint, from ``templates/scorecard_report.html.j2``) and an
XLSX workbook (XlsxWriter: scores, indicators, exemptions and the drill-down rows), zh-CN labels in the
regulator's vocabulary (上传率, 匹配率, 异常率, 达标率, 覆盖率) or en; the same engine as the lot report."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg
import xlsxwriter

from traceability import queries
from traceability.i18n import Gettext, Lang, format_time, gettext_for, words
from traceability.reports.pdf import html_to_pdf, template_environment
from traceability.scorecards import compute
from traceability.scorecards.export import plain
from traceability.scorecards.model import INDICATORS, SPECS, SUBJECT_NAMES, Card, Indicator, Scoreboard

Conn = psycopg.Connection[Any]
TITLE = "Data quality and compliance scorecard"


def ratio_text(ind: Indicator, _: Gettext) -> str:
    """An indicator's ratio as the reports write it: a share in per cent, a rate per 100 h, seconds."""
    if ind.ratio is None:
        return "–"
    kind = SPECS[ind.key].kind
    if kind == "share":
        return f"{ind.ratio * 100:.2f} %"
    return f"{ind.ratio:.2f}"


def _score_text(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def _trend_text(c: Card) -> str:
    t = c.trend
    return "–" if t is None else f"{t:+.2f}"


def _count(v: float) -> str:
    return words.number(v) if v != int(v) else str(int(v))


def html(board: Scoreboard, *, lang: Lang, tz: ZoneInfo, generated_at: datetime) -> str:
    """The scoreboard's HTML, as WeasyPrint lays it out."""
    _ = gettext_for(lang)
    context: dict[str, Any] = {
        "_": _,
        "html_lang": "zh-CN" if lang == "zh-CN" else "en",
        "title": _(TITLE),
        "board": board,
        "subject_name": _(SUBJECT_NAMES[board.subject]),
        "specs": INDICATORS,
        "ratio": lambda ind: ratio_text(ind, _),
        "score": _score_text,
        "trend": _trend_text,
        "count": _count,
        "tm": lambda t: format_time(t, lang, tz),
        "generated": format_time(generated_at, lang, tz),
        "tz": tz.key,
    }
    return template_environment().get_template("scorecard_report.html.j2").render(context)


def pdf_bytes(board: Scoreboard, *, lang: Lang, tz: ZoneInfo, generated_at: datetime) -> bytes:
    return html_to_pdf(html(board, lang=lang, tz=tz, generated_at=generated_at))


def xlsx_bytes(
    board: Scoreboard,
    rows: Mapping[str, Mapping[str, list[dict[str, Any]]]],
    *,
    lang: Lang,
    generated_at: datetime,
) -> bytes:
    """Sheets: scores (one row per subject, one ratio column per indicator), indicators (numerator,
    denominator, ratio, note), exemptions, and the drill-down rows behind every indicator."""
    _ = gettext_for(lang)
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "remove_timezone": True})
    book.set_properties({"title": _(TITLE), "subject": f"{board.subject} {board.period.label}"})
    head = book.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
    num = book.add_format({"num_format": "0.00##"})
    pct = book.add_format({"num_format": "0.00%"})
    when = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})

    def header(ws: Any, titles: list[str], width: int = 16) -> None:
        for c, t in enumerate(titles):
            ws.write_string(0, c, t, head)
        ws.set_column(0, len(titles) - 1, width)
        ws.freeze_panes(1, 0)

    def share_or_number(ws: Any, r: int, c: int, ind: Indicator) -> None:
        if ind.ratio is None:
            ws.write_blank(r, c, None)
        else:
            ws.write_number(r, c, ind.ratio, pct if SPECS[ind.key].kind == "share" else num)

    scores = book.add_worksheet(_("Scores"))
    titles = [
        _("Rank"),
        _(SUBJECT_NAMES[board.subject]),
        _("Name"),
        _("Score"),
        _("Previous score"),
        _("Trend"),
    ]
    header(scores, titles + [_(s.name) for s in INDICATORS])
    for r, c in enumerate(board.cards, start=1):
        scores.write(r, 0, c.rank)
        scores.write_string(r, 1, c.subject_id)
        scores.write_string(r, 2, c.name)
        for col, v in ((3, c.score), (4, c.previous_score), (5, c.trend)):
            if v is None:
                scores.write_blank(r, col, None)
            else:
                scores.write_number(r, col, v, num)
        for k, spec in enumerate(INDICATORS):
            share_or_number(scores, r, 6 + k, c.indicators[spec.key])
    scores.autofilter(0, 0, max(len(board.cards), 1), 5 + len(INDICATORS))

    inds = book.add_worksheet(_("Indicators"))
    header(inds, [_("Subject"), _("Indicator"), _("Numerator"), _("Denominator"), _("Ratio"), _("Note")])
    r = 1
    for c in board.cards:
        for spec in INDICATORS:
            ind = c.indicators[spec.key]
            inds.write_string(r, 0, c.subject_id)
            inds.write_string(r, 1, _(spec.name))
            inds.write_number(r, 2, ind.numerator)
            inds.write_number(r, 3, ind.denominator)
            share_or_number(inds, r, 4, ind)
            inds.write_string(r, 5, ind.note or "")
            r += 1
    inds.autofilter(0, 0, max(r - 1, 1), 5)

    ex = book.add_worksheet(_("Exemptions"))
    header(
        ex, [_("Subject"), _("Indicator"), _("From"), _("To"), _("Reason"), _("Granted by"), _("Granted at")]
    )
    r = 1
    for c in board.cards:
        for spec in INDICATORS:
            for e in c.indicators[spec.key].exemptions:
                ex.write_string(r, 0, c.subject_id)
                ex.write_string(r, 1, _(spec.name))
                for col, t in ((2, e.start), (3, e.end), (6, e.granted_at)):
                    ex.write_datetime(r, col, t.astimezone(UTC).replace(tzinfo=None), when)
                ex.write_string(r, 4, e.reason)
                ex.write_string(r, 5, e.granted_by)
                r += 1

    detail = book.add_worksheet(_("Rows"))
    header(detail, [_("Subject"), _("Indicator"), _("Numerator"), _("Denominator"), _("Detail")])
    detail.set_column(4, 4, 120)
    r = 1
    for c in board.cards:
        for spec in INDICATORS:
            for row in rows.get(c.subject_id, {}).get(spec.key, []):
                detail.write_string(r, 0, c.subject_id)
                detail.write_string(r, 1, _(spec.name))
                detail.write_number(r, 2, float(row["numerator"]))
                detail.write_number(r, 3, float(row["denominator"]))
                rest = {k: v for k, v in row.items() if k not in ("numerator", "denominator")}
                detail.write_string(r, 4, json.dumps(plain(rest), ensure_ascii=False, sort_keys=True))
                r += 1
    detail.autofilter(0, 0, max(r - 1, 1), 4)

    info = book.add_worksheet(_("Note"))
    info.set_column(0, 0, 24)
    info.set_column(1, 1, 100)
    lines = [
        (
            _("Period"),
            f"{board.period.label} ({board.period.start.isoformat()} – {board.period.end.isoformat()})",
        ),
        (_("Subject kind"), _(SUBJECT_NAMES[board.subject])),
        (_("Weights version"), board.weights_version),
        (_("Generated at"), generated_at.astimezone(UTC).isoformat()),
        (_("Ratio"), _("Ratios are numerator over denominator; exempt time and rows are left out of both.")),
    ]
    for i, (label, value) in enumerate(lines):
        info.write_string(i, 0, label)
        info.write_string(i, 1, value)
    book.close()
    return buffer.getvalue()


def render_scorecard(
    conn: Conn,
    board: Scoreboard,
    fmt: Literal["pdf", "xlsx"],
    *,
    lang: Lang,
    tz: ZoneInfo,
    seen_by: Mapping[str, str | None] = queries.EVERYTHING,
    generated_at: datetime | None = None,
) -> bytes:
    """The scoreboard as a PDF or an XLSX (with the drill-down rows of its cards)."""
    at = generated_at or datetime.now(UTC)
    if fmt == "pdf":
        return pdf_bytes(board, lang=lang, tz=tz, generated_at=at)
    rows = compute.drill_all(
        conn, board.period, board.subject, [c.subject_id for c in board.cards], seen_by=seen_by
    )
    return xlsx_bytes(board, rows, lang=lang, generated_at=at)
