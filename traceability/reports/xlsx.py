"""Stage 3 (reports): the lot's events and readings as an XLSX workbook (XlsxWriter): an events sheet (one
row per critical tracking event), a readings sheet (at the class's recording interval, flagged), the
import flow's steps when the lot has any (partial releases with what remains, the clearance time) and a
proof sheet; frozen headers, autofilters, typed cells (times as Excel dates in UTC, numbers as numbers)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from traceability.i18n import words
from traceability.reports.build import Report
from traceability.reports.csv_report import iso_utc
from traceability.reports.proof import EVENTS_QUERY, READINGS_QUERY
from traceability.reports.rows import EVENT_COLUMNS, READING_COLUMNS, Column, EventRow, ReadingRow, cell


def xlsx_bytes(report: Report) -> bytes:
    _ = report._
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "remove_timezone": True})
    book.set_properties(
        {
            "title": _("Chain of custody and temperature compliance report"),
            "subject": report.trace.lot_id,
            "comments": f"sha256 {report.proof.bundle_sha256}",
        }
    )
    fmt = {
        "header": book.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True}),
        "datetime": book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
        "float": book.add_format({"num_format": "0.0##"}),
        "int": book.add_format({"num_format": "0"}),
        "bold": book.add_format({"bold": True}),
    }
    _sheet(book, _("Events"), EVENT_COLUMNS, report.events, fmt, report)
    _sheet(book, _("Readings"), READING_COLUMNS, report.readings, fmt, report)
    _import_flow(book, fmt, report)
    proof = book.add_worksheet(_("Proof"))
    proof.set_column(0, 0, 28)
    proof.set_column(1, 1, 100)
    lines = [
        (_("Events sheet answers"), _(EVENTS_QUERY).format(lot=report.trace.lot_id)),
        (_("Readings sheet answers"), _(READINGS_QUERY).format(lot=report.trace.lot_id)),
        *((_(label), value) for label, value in report.proof.items()),
        (_("Generated at"), iso_utc(report.proof.generated_at)),
        (_("Times"), _("UTC; the local time column is in {zone}").format(zone=report.tz.key)),
    ]
    for i, (label, value) in enumerate(lines):
        proof.write_string(i, 0, label, fmt["bold"])
        proof.write_string(i, 1, value)
    book.close()
    return buffer.getvalue()


IMPORT_FLOW_HEADERS = (
    "Step",
    "Time (UTC)",
    "Quantity",
    "Unit",
    "Result",
    "Site",
    "Certificates",
    "Trace code",
    "Released so far",
    "Inspected",
    "Remaining",
)


def _import_flow(book: xlsxwriter.Workbook, fmt: dict[str, Any], report: Report) -> None:
    """The import flow's steps, one row each; a release row with the total released so far, the inspected
    quantity and what remains; the clearance time under them (nothing when the lot has no import step)."""
    flow = report.trace.import_flow
    if flow is None:
        return
    _ = report._
    sheet = book.add_worksheet(_("Import flow"))
    for j, header in enumerate(IMPORT_FLOW_HEADERS):
        sheet.write_string(0, j, _(header), fmt["header"])
        sheet.set_column(j, j, 18)
    releases = {r.seq: r for r in flow.releases}
    for i, s in enumerate(flow.steps, start=1):
        r = releases.get(s.seq) if s.step == "release" else None
        result = None if s.conformant is None else ("conformant" if s.conformant else "non-conformant")
        values: list[Any] = [
            _(words.IMPORT_STEPS.get(s.step, s.step)),
            s.event_time,
            s.quantity,
            s.uom,
            None if result is None else _(result),
            s.site,
            ", ".join(s.certificates) or None,
            s.trace_code,
            None if r is None else r.released_total,
            None if r is None else r.inspected,
            None if r is None else r.remaining,
        ]
        for j, value in enumerate(values):
            if value is None:
                sheet.write_blank(i, j, None)
            elif isinstance(value, datetime):
                sheet.write_datetime(i, j, value.astimezone(UTC).replace(tzinfo=None), fmt["datetime"])
            elif isinstance(value, int | float):
                sheet.write_number(i, j, value, fmt["float"])
            else:
                sheet.write_string(i, j, str(value))
    last = len(flow.steps) + 2
    sheet.write_string(last, 0, _("Clearance time (discharge to first release)"), fmt["bold"])
    sheet.write_string(last, 1, words.duration(flow.clearance_s, _))
    sheet.freeze_panes(1, 0)


def _sheet(
    book: xlsxwriter.Workbook,
    name: str,
    columns: Sequence[Column],
    rows: Sequence[EventRow | ReadingRow],
    fmt: dict[str, Any],
    report: Report,
) -> Worksheet:
    _ = report._
    sheet = book.add_worksheet(name)
    for j, c in enumerate(columns):
        sheet.write_string(0, j, _(c.header), fmt["header"])
        sheet.set_column(j, j, c.width)
    for i, row in enumerate(rows, start=1):
        for j, c in enumerate(columns):
            _write(sheet, i, j, c, cell(row, c.key), fmt, report)
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(1, len(rows)), len(columns) - 1)
    return sheet


def _write(
    sheet: Worksheet, i: int, j: int, c: Column, value: Any, fmt: dict[str, Any], report: Report
) -> None:
    _ = report._
    if value is None:
        sheet.write_blank(i, j, None)
    elif c.kind == "datetime" and isinstance(value, datetime):
        sheet.write_datetime(i, j, value.astimezone(UTC).replace(tzinfo=None), fmt["datetime"])
    elif c.kind in ("float", "int") and isinstance(value, int | float):
        sheet.write_number(i, j, value, fmt[c.kind])
    elif c.kind == "bool":
        sheet.write_boolean(i, j, bool(value))
    elif isinstance(value, list):
        sheet.write_string(i, j, "; ".join(_(str(v)) for v in value))
    else:
        sheet.write_string(i, j, str(value))
