"""Stage 3 (reports): one report's content, read once: the ``Trace``, its event and readings rows, its
proof and companion bundle; every format (PDF, XLSX, CSV) renders this same ``Report``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg

from traceability import queries
from traceability.i18n import Gettext, Lang, gettext_for
from traceability.ledger import checkpoint
from traceability.readings import leg_readings
from traceability.readings_model import MAX_POINTS_LIMIT, LegReadings
from traceability.reports.proof import Proof, evidence
from traceability.reports.rows import EventRow, ReadingRow, event_rows, reading_rows
from traceability.trace import trace
from traceability.trace_model import Trace
from traceability.web.paths import scan_page_url

Conn = psycopg.Connection[Any]
Format = Literal["pdf", "xlsx", "csv"]
FORMATS: tuple[Format, ...] = ("pdf", "xlsx", "csv")
MEDIA_TYPES: dict[Format, str] = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}
# Who supplies a trace's leg readings (the readings API's query, ``leg_readings(conn, trace, max_points)``).
LegReadingsSource = Callable[[Conn, Trace], list[LegReadings]]


@dataclass(frozen=True, slots=True)
class Report:
    trace: Trace
    events: list[EventRow]
    readings: list[ReadingRow]
    legs: list[LegReadings]
    proof: Proof
    bundle: bytes
    lang: Lang
    tz: ZoneInfo
    _: Gettext
    trace_url: str | None
    """the trace page's URL, for the PDF's QR code (None: no QR code)"""
    scan_url: str | None = None
    """the public scan page of the lot's trace code, for the PDF's second QR code (None: no trace code, or
    no base URL given)"""


def read_report(
    conn: Conn,
    ident: str,
    *,
    lang: Lang,
    tz: ZoneInfo,
    legs: LegReadingsSource | list[LegReadings] | None = None,
    trace_url: str | None = None,
    base_url: str | None = None,
    cp: checkpoint.Checkpoint | None = None,
    now: datetime | None = None,
    with_readings: bool = True,
    seen_by: Mapping[str, str | None] = queries.EVERYTHING,
) -> Report | None:
    """The report of whatever lot ``ident`` names (as ``/trace/{id}`` resolves it); None if none.
    ``legs`` gives the legs' readings (a list, or a callable of the connection and trace); without it,
    the readings sheet is empty and the charts say there is no temperature evidence.
    ``with_readings=False`` leaves the readings rows out (the PDF shows charts, not rows). ``base_url``: where
    the public scan page is served, for the trace code's QR code. Raises ``ReportError`` when no signed
    checkpoint covers the lot's events. Only a lot ``seen_by`` (a scope's parameters) may read is reported
    on."""
    found = trace(conn, ident, seen_by)
    if found is None:
        return None
    leg_readings = legs(conn, found) if callable(legs) else list(legs or [])
    events = event_rows(conn, found, lang=lang, tz=tz)
    readings = reading_rows(found, leg_readings, lang=lang, tz=tz) if with_readings else []
    data, proof = evidence(
        conn,
        found,
        reading_rows=len(readings) if with_readings else None,
        generated_at=now or datetime.now(UTC),
        cp=cp,
    )
    return Report(
        trace=found,
        events=events,
        readings=readings,
        legs=leg_readings,
        proof=proof,
        bundle=data,
        lang=lang,
        tz=tz,
        _=gettext_for(lang),
        trace_url=trace_url,
        scan_url=_scan_url(found, base_url),
    )


def _scan_url(found: Trace, base_url: str | None) -> str | None:
    """The public scan page of the lot's trace code under ``base_url`` (None: no code, or no base URL)."""
    code = found.import_flow.trace_code if found.import_flow is not None else None
    return None if code is None or base_url is None else scan_page_url(base_url, code)


def render(report: Report, fmt: Format) -> bytes:
    """The report in ``fmt``."""
    if fmt == "pdf":
        from traceability.reports.pdf import pdf_bytes

        return pdf_bytes(report)
    if fmt == "xlsx":
        from traceability.reports.xlsx import xlsx_bytes

        return xlsx_bytes(report)
    from traceability.reports.csv_report import csv_bytes

    return csv_bytes(report)


def report_leg_readings(conn: Conn, found: Trace) -> list[LegReadings]:
    """The legs' readings a report shows: the readings API's (``traceability.readings.leg_readings``) at
    its largest point count, so that the readings sheet's intervals hold the readings themselves (a
    series with more readings is downsampled keeping each bucket's extremes, and its rows say so)."""
    return leg_readings(conn, found, MAX_POINTS_LIMIT)


# The readings the CLI and the API put in a report.
REPORT_LEG_READINGS: LegReadingsSource = report_leg_readings
