"""Tests: the import flow in the trace (JSON), the trace page, the public scan page resolving the trace code
(TestClient and chromium) and the PDF report carrying the QR code of the scan URL."""

from __future__ import annotations

import dataclasses
import io
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import psycopg
import pytest
import segno
from fastapi.testclient import TestClient
from flow_support import DURIAN, FIRST_SITE, SEAFOOD, TRACE_CODE, flow_events, h, seed_flow, seed_registry
from playwright.sync_api import Browser
from web_support import serve

from coldchain.report import format_trace
from rules.worker import RulesWorker
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.api.options import ApiOptions
from traceability.epcis import builders, multimodal
from traceability.i18n import gettext_for, read_catalog, words
from traceability.ledger import chain, checkpoint
from traceability.reports import xlsx
from traceability.reports.build import read_report, render
from traceability.reports.pdf import html
from traceability.trace import trace
from traceability.trace_model import from_json, to_json
from traceability.web import views
from traceability.web.paths import scan_page_url, trace_page_url
from traceability.worker import LedgerWorker

BASE = "http://inspector.example:8000"
ZH = gettext_for("zh-CN")


@pytest.fixture
def flowed(db_url: str, server_tmp: Path) -> tuple[str, Path]:
    """The import flow ledgered, judged (the seafood's violation in the ledger) and signed."""
    with psycopg.connect(db_url) as conn:
        seed_flow(conn)
    worker = RulesWorker(db_url)
    try:
        while worker.run_once():
            pass
    finally:
        worker.close()
    LedgerWorker(db_url).run_once()
    key_path = server_tmp / checkpoint.KEY_FILE
    assert checkpoint.CheckpointWorker(db_url, key_path).run_once() is not None
    return db_url, key_path


def test_the_trace_shows_the_import_flow_partial_releases_and_clearance(
    flowed: tuple[str, Path], conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    found = trace(conn, DURIAN)
    assert found is not None
    flow = found.import_flow
    assert flow is not None
    assert [s.step for s in flow.steps] == [
        "discharge",
        "inspection",
        "disinfection",
        "entry",
        "trace_code",
        "release",
        "release",
        "onward",
    ]
    assert [(r.quantity, r.released_total, r.inspected, r.remaining) for r in flow.releases] == [
        (600.0, 600.0, 1000.0, 400.0),
        (300.0, 900.0, 1000.0, 100.0),
    ]
    assert flow.clearance_s == 4 * 3600
    assert (flow.trace_code, flow.trace_code_site) == (TRACE_CODE, FIRST_SITE)
    assert flow.scan_path == f"/scan/{TRACE_CODE}"
    inspection = flow.steps[1]
    assert (inspection.conformant, inspection.certificates) == (True, ["CIQ-2604-001", "PHY-TH-88"])
    assert [b.kind for b in found.lot_chain_breaks] == []
    assert from_json(to_json(found)) == found
    as_json = to_json(found)["import_flow"]
    assert as_json["releases"][1]["remaining"] == 100.0
    text = format_trace(found)
    assert f"import flow: trace code {TRACE_CODE}; clearance 4.0 h" in text
    assert "900 released so far, 100 left" in text

    seafood = trace(conn, SEAFOOD)
    assert seafood is not None
    [violation] = seafood.lot_chain_breaks
    assert (violation.kind, violation.rule_id) == ("flow", "flow/release_without_inspection")
    assert violation.detail is not None
    assert violation.detail["reason"] == "release of 500 KGM without a conformant inspection"
    assert seafood.import_flow is not None
    assert seafood.import_flow.trace_code is None
    [release] = seafood.import_flow.releases
    assert (release.inspected, release.remaining) == (None, None)
    ledgered = [e for e in seafood.events if e.biz_step == "inspecting"]
    assert ledgered, "the violation's ledger event is among the lot's events"


@pytest.fixture
def client(flowed: tuple[str, Path]) -> Iterator[tuple[TestClient, str]]:
    db_url, key_path = flowed
    with psycopg.connect(db_url) as conn:
        key = create_key(conn, "inspector", "flow inspector")
        conn.commit()
    app = create_app(db_url, options=ApiOptions(ledger_key=key_path))
    with TestClient(app, follow_redirects=False, headers={"Accept-Language": "en"}) as c:
        yield c, key


def _csrf(text: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    assert found is not None
    return found.group(1)


def test_the_scan_page_resolves_the_trace_code_and_the_trace_page_shows_the_flow(
    client: tuple[TestClient, str],
) -> None:
    c, key = client
    page = c.get(f"/scan/{TRACE_CODE}")
    assert page.status_code == 200
    assert "Fresh durian" in page.text
    assert FIRST_SITE in page.text
    assert TRACE_CODE in page.text
    assert re.search(r'id="inspection-status">Passed<', page.text)
    assert c.get("/scan/QZ-NO-SUCH-CODE").status_code == 404
    # Released without any inspection: the scan page does not say it passed.
    seafood = c.get(f"/scan/{SEAFOOD}")
    assert seafood.status_code == 200
    assert re.search(r'id="inspection-status">No record<', seafood.text)

    form = c.get("/ui/signin")
    signed = c.post("/ui/signin", data={"key": key, "csrf": _csrf(form.text), "next": "/ui/"})
    assert signed.status_code == 303
    shown = c.get(f"/ui/trace/{SEAFOOD}")
    assert shown.status_code == 200
    assert 'id="import-flow"' in shown.text
    assert "import flow violation" in shown.text
    assert "release of 500 KGM without a conformant inspection" in shown.text
    durian = c.get(f"/ui/trace/{DURIAN}", headers={"Accept-Language": "zh-CN"})
    assert f'href="/scan/{TRACE_CODE}"' in durian.text
    assert "二线出区放行" in durian.text
    assert "通关时间" in durian.text
    api = c.get(f"/trace/{DURIAN}", headers={"Authorization": f"Bearer {key}"})
    assert api.status_code == 200, api.text
    assert api.json()["import_flow"]["trace_code"] == TRACE_CODE


def test_the_trace_code_resolves_on_the_public_scan_page_in_a_browser(
    browser: Browser, flowed: tuple[str, Path]
) -> None:
    db_url, key_path = flowed
    with serve(db_url, key_path) as url:
        context = browser.new_context(base_url=url, locale="zh-CN")
        page = context.new_page()
        response = page.goto(f"/scan/{TRACE_CODE}")
        assert response is not None
        assert response.status == 200
        assert page.inner_text("#trace-code") == TRACE_CODE
        assert page.inner_text("#first-receiving-site") == FIRST_SITE
        assert "°C" not in page.inner_text("body")
        context.close()


def test_the_pdf_carries_the_qr_code_of_the_scan_url(flowed: tuple[str, Path], server_tmp: Path) -> None:
    db_url, _ = flowed
    with psycopg.connect(db_url) as conn:
        report = read_report(
            conn,
            DURIAN,
            lang="en",
            tz=ZoneInfo("UTC"),
            trace_url=trace_page_url(BASE, DURIAN),
            base_url=BASE,
        )
    assert report is not None
    scan_url = scan_page_url(BASE, TRACE_CODE)
    assert report.scan_url == scan_url
    qr = segno.make(scan_url, error="m").svg_data_uri(scale=4, border=2)
    assert f'<img src="{qr}"' in html(report)
    pdf = server_tmp / "durian.pdf"
    pdf.write_bytes(render(report, "pdf"))
    text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    assert scan_url in "".join(text.split())  # printed under the QR code, wrapped
    assert "Import flow" in text
    assert "Clearance time (discharge to first release)" in text

    with psycopg.connect(db_url) as conn:
        plain = read_report(conn, SEAFOOD, lang="en", tz=ZoneInfo("UTC"), base_url=BASE)
    assert plain is not None
    assert plain.scan_url is None  # no trace code issued: no scan QR
    assert 'id="scan-qr"' not in html(plain)


def test_the_xlsx_lists_the_import_flow_and_every_label_is_translated(flowed: tuple[str, Path]) -> None:
    db_url, _ = flowed
    with psycopg.connect(db_url) as conn:
        report = read_report(conn, DURIAN, lang="zh-CN", tz=ZoneInfo("Asia/Shanghai"), base_url=BASE)
    assert report is not None
    book = openpyxl.load_workbook(io.BytesIO(render(report, "xlsx")))
    sheet = book["进口冷链食品流程"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("环节", "时间（UTC）", "数量")
    releases = [r for r in rows[1:] if r[0] == "二线出区放行"]
    assert [(r[2], r[8], r[9], r[10]) for r in releases] == [(600, 600, 1000, 400), (300, 900, 1000, 100)]
    assert rows[-1][:2] == ("通关时间（卸船至首次放行）", ZH("%(h)d h %(m)d min") % {"h": 4, "m": 0})
    catalog = read_catalog("reports") | read_catalog("common")
    used = {*xlsx.IMPORT_FLOW_HEADERS, *words.IMPORT_STEPS.values(), "conformant", "non-conformant"}
    assert sorted(used - catalog.keys()) == []


def test_the_scan_page_says_not_conformant_after_a_non_conformant_result(
    flowed: tuple[str, Path], conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    found = trace(conn, DURIAN)
    assert found is not None
    assert found.import_flow is not None
    assert views.scan_view(found).inspection == "passed"
    steps = found.import_flow.steps
    failed = [dataclasses.replace(s, conformant=False) if s.step == "inspection" else s for s in steps]
    again = dataclasses.replace(found, import_flow=dataclasses.replace(found.import_flow, steps=failed))
    assert views.scan_view(again).inspection == "failed"
    assert views.scan_view(again).first_receiving_site == FIRST_SITE


def test_the_scan_page_says_no_record_for_a_result_neither_conformant_nor_not(
    flowed: tuple[str, Path], conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    found = trace(conn, DURIAN)
    assert found is not None
    assert found.import_flow is not None
    steps = found.import_flow.steps
    unknown = [dataclasses.replace(s, conformant=None) if s.step == "inspection" else s for s in steps]
    again = dataclasses.replace(found, import_flow=dataclasses.replace(found.import_flow, steps=unknown))
    assert views.scan_view(again).inspection == "unknown"


def test_steps_of_events_declared_wrong_leave_the_trace_and_the_scan_page(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        seed_registry(conn)
        events = flow_events()
        chain.append_many(conn, events)
        conn.commit()
        issued = next(e for e in events if multimodal.TRACE_CODE_KEY in e)
        released = next(
            e
            for e in events
            if e.get("cc:customsLine") == "second"
            and e["quantityList"][0] == {"epcClass": DURIAN, "quantity": 600, "uom": "KGM"}
        )
        assert views.scan_lot(conn, TRACE_CODE) == DURIAN
        chain.append_many(
            conn,
            [
                builders.error_declaration(issued, declared_at=h(40)),
                builders.error_declaration(released, declared_at=h(40)),
            ],
        )
        conn.commit()
        found = trace(conn, DURIAN)
        assert found is not None
        assert found.import_flow is not None
        assert found.import_flow.trace_code is None
        assert [s.step for s in found.import_flow.steps].count("release") == 1
        assert [(r.quantity, r.released_total, r.remaining) for r in found.import_flow.releases] == [
            (300.0, 300.0, 700.0)
        ]
        assert views.scan_lot(conn, TRACE_CODE) is None
