"""Stage 3 (reports): the lot's events as CSV (FSMA 204 style key data elements, one row per critical
tracking event), headed by its proof as ``#`` comment lines; UTF-8 with a byte-order mark (for Excel)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from traceability.i18n import Gettext
from traceability.reports.build import Report
from traceability.reports.proof import EVENTS_QUERY
from traceability.reports.rows import EVENT_COLUMNS, cell


def iso_utc(t: datetime) -> str:
    """UTC ISO 8601 with ``Z`` (seconds, milliseconds when there are any)."""
    u = t.astimezone(UTC)
    spec = "milliseconds" if u.microsecond else "seconds"
    return u.isoformat(timespec=spec).replace("+00:00", "Z")


# Text a spreadsheet would read as a formula (or split into one): such text cells are written after a
# single quote (OWASP's CSV injection advice), so the file shows them as the text they are.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(text: str) -> str:
    """A text cell a spreadsheet will not run: prefixed with ``'`` when it starts like a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def text_of(value: Any, _: Gettext) -> str:
    """A cell as text: times UTC ISO 8601, numbers as written, lists (notes, flags) translated and joined,
    None empty; text that starts like a formula made inert."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, bool):
        return _("yes") if value else ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, list):
        return inert("; ".join(_(str(v)) for v in value))
    return inert(str(value))


def csv_bytes(report: Report) -> bytes:
    _ = report._
    out = io.StringIO()
    out.write("\ufeff")
    out.write(f"# {_('Query')}: {_(EVENTS_QUERY).format(lot=report.trace.lot_id)}\n")
    for label, value in report.proof.items():
        out.write(f"# {_(label)}: {value}\n")
    out.write(f"# {_('Generated at')}: {iso_utc(report.proof.generated_at)}\n")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_(c.header) for c in EVENT_COLUMNS])
    for row in report.events:
        writer.writerow([text_of(cell(row, c.key), _) for c in EVENT_COLUMNS])
    return out.getvalue().encode("utf-8")
