"""Stage 3 (reports): the lot's events and readings as an XLSX workbook (XlsxWriter): an events sheet (one
row per critical tracking event), a readings sheet (at the class's recording interval, flagged) and a
proof sheet; frozen headers, autofilters, typed cells (times as Excel dates in UTC, numbers as numbers)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import xlsxwriter
from xlsxwriter.worksheet import Worksheet

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
