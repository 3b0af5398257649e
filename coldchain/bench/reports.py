"""Composition root: the report benchmark: how long a lot's PDF takes, from the database to the bytes
(``measure_pdf``, for `coldchain bench trace`)."""

from __future__ import annotations

import statistics
import time
from typing import Any

import psycopg

from traceability.i18n import Lang, zone
from traceability.reports.build import REPORT_LEG_READINGS, read_report, render
from traceability.web.paths import trace_page_url


def measure_pdf(conninfo: str, lot_id: str, *, repeats: int = 5, lang: Lang = "zh-CN") -> dict[str, Any]:
    """The PDF of ``lot_id`` built ``repeats`` times after one untimed warm-up (WeasyPrint's import and
    font loading, as in a running service): the time to read the report (trace, rows, bundle) and to lay
    out the PDF, p50 and max in ms, with the last PDF's size and page-independent facts. Needs a signed
    checkpoint covering the lot."""
    tz = zone(None, lang)
    reads: list[float] = []
    renders: list[float] = []
    data = b""
    legs = 0
    with psycopg.connect(conninfo) as conn:
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            report = read_report(
                conn,
                lot_id,
                lang=lang,
                tz=tz,
                legs=REPORT_LEG_READINGS,
                trace_url=trace_page_url("http://127.0.0.1:8000", lot_id),
                with_readings=False,
            )
            if report is None:
                raise LookupError(f"no lot {lot_id!r}")
            t1 = time.perf_counter()
            data = render(report, "pdf")
            t2 = time.perf_counter()
            conn.rollback()
            legs = len(report.trace.custody)
            if i:  # the first run warms up
                reads.append((t1 - t0) * 1000)
                renders.append((t2 - t1) * 1000)
    totals = [a + b for a, b in zip(reads, renders, strict=True)]
    return {
        "lot_id": lot_id,
        "legs": legs,
        "repeats": repeats,
        "pdf_bytes": len(data),
        "pdf_p50_ms": round(statistics.median(totals), 1),
        "pdf_max_ms": round(max(totals), 1),
        "read_p50_ms": round(statistics.median(reads), 1),
        "render_p50_ms": round(statistics.median(renders), 1),
    }
