"""Stage 3 (reports): the lot's chain-of-custody and temperature-compliance report as a PDF (WeasyPrint,
from ``templates/lot_report.html.j2``), zh-CN or en: a cover with the proof and a QR code to the trace
page (and one to the public scan page of the lot's trace code), the import flow, then custody, a static
chart per leg, excursions, gaps and breaks, and every event with its hash.
Pages are numbered (CSS ``@page`` counters); fonts, the CJK one ('Noto Sans CJK SC', Debian's
fonts-noto-cjk) included, are embedded by WeasyPrint."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import segno
from markupsafe import Markup

from traceability.chart import leg_chart_svg
from traceability.i18n import format_time, translate_reason, words
from traceability.readings_model import AssetReadings
from traceability.reports.build import Report
from traceability.reports.proof import EVENTS_QUERY, VERIFY_BUNDLE_COMMAND
from traceability.trace_model import ChainBreak, CustodyLeg, Excursion

TEMPLATES = Path(__file__).parent / "templates"
# The chart's size on an A4 page (CSS pixels; scaled to the page width).
CHART_W, CHART_H = 900, 300


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def template_environment() -> jinja2.Environment:
    """The reports' Jinja environment (templates/): every PDF report is laid out from it."""
    return _environment()


def html_to_pdf(document: str) -> bytes:
    """A report's HTML as PDF bytes (WeasyPrint; fonts, the CJK one included, embedded)."""
    from weasyprint import HTML  # heavy import (Pango, fonts): only when a PDF is asked for

    data: bytes = HTML(string=document, base_url=str(TEMPLATES)).write_pdf()
    return data


def html(report: Report) -> str:
    """The report's HTML, as WeasyPrint lays it out."""
    _ = report._
    t = report.trace
    readings: dict[int, AssetReadings | None] = {lr.leg_id: lr.readings for lr in report.legs}
    charts: list[tuple[CustodyLeg, Markup]] = []
    for leg in t.custody:
        svg = leg_chart_svg(
            leg,
            readings.get(leg.leg_id),
            t.limits,
            _=_,
            tz=report.tz,
            lang=report.lang,
            width=CHART_W,
            height=CHART_H,
            interactive=False,
        )
        charts.append((leg, Markup(svg)))  # noqa: S704 - leg_chart_svg escapes every text it writes
    excursions: list[tuple[int, CustodyLeg, Excursion]] = [
        (n, leg, x) for n, leg in enumerate(t.custody, 1) for x in leg.excursions
    ]
    breaks: list[tuple[int | None, ChainBreak]] = [
        (n, b) for n, leg in enumerate(t.custody, 1) for b in leg.chain_breaks
    ] + [(None, b) for b in t.lot_chain_breaks]
    qr = None
    if report.trace_url:
        qr = segno.make(report.trace_url, error="m").svg_data_uri(scale=4, border=2)
    scan_qr = None
    if report.scan_url:
        scan_qr = segno.make(report.scan_url, error="m").svg_data_uri(scale=4, border=2)

    def tm(x: datetime | None) -> str:
        return format_time(x, report.lang, report.tz)

    env = _environment()
    context: dict[str, Any] = {
        "_": _,
        "html_lang": "zh-CN" if report.lang == "zh-CN" else "en",
        "t": t,
        "lot": t.lot,
        "limits": t.limits,
        "p": report.proof,
        "tz": report.tz.key,
        "tm": tm,
        "number": words.number,
        "duration": lambda seconds: words.duration(seconds, _),
        "word": lambda table, code: words.word(table, code, _),
        "words": words,
        "verify_command": VERIFY_BUNDLE_COMMAND,
        "reason": lambda text: translate_reason(text, _),
        "charts": charts,
        "excursions": excursions,
        "breaks": breaks,
        "events": report.events,
        "qr": qr,
        "trace_url": report.trace_url,
        "scan_qr": scan_qr,
        "scan_url": report.scan_url,
        "flow": t.import_flow,
        "events_query": _(EVENTS_QUERY).format(lot=t.lot_id),
    }
    return env.get_template("lot_report.html.j2").render(context)


def pdf_bytes(report: Report) -> bytes:
    """The report as PDF bytes."""
    return html_to_pdf(html(report))
