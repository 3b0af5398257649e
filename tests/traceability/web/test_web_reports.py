"""Tests: the trace page's downloads: every link proves the head its evidence panel shows, and each report
comes with the API's headers (the bundle's sha256 and link, its file name), so the bundle fetched from the
same page is the one the report states."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from starlette.responses import Response
from web_support import LOT, Desk

from traceability.api.app import create_app
from traceability.api.options import ApiOptions
from traceability.reports import csv_report, download
from traceability.reports.proof import Proof
from traceability.web import paths

HEADERS = ("x-evidence-bundle-sha256", "content-disposition", "cache-control", "content-type")


@pytest.fixture(scope="module")
def client(desk: Desk) -> Iterator[TestClient]:
    app = create_app(desk.db_url, options=ApiOptions(ledger_key=desk.ledger_key))
    with TestClient(app, follow_redirects=False, headers={"Accept-Language": "en"}) as c:
        form = c.get("/ui/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        signed = c.post("/ui/signin", data={"key": desk.inspector_key, "csrf": csrf[1], "next": "/ui/"})
        assert signed.status_code == 303
        yield c


def _links(client: TestClient) -> dict[str, str]:
    page = client.get(paths.trace_url(LOT))
    assert page.status_code == 200
    return dict(re.findall(r'<a id="dl-(\w+)" href="([^"]+)" download>', page.text))


def test_every_download_of_the_page_proves_the_same_head(client: TestClient) -> None:
    links = _links(client)
    assert set(links) == {"bundle", "pdf", "xlsx", "csv"}
    seqs = {href.rsplit("?seq=", 1)[1] for href in links.values()}
    assert len(seqs) == 1, links
    bundle = client.get(links["bundle"])
    assert bundle.status_code == 200
    sha = hashlib.sha256(bundle.content).hexdigest()
    assert bundle.headers["x-evidence-bundle-sha256"] == sha
    for fmt in ("pdf", "xlsx", "csv"):
        report = client.get(links[fmt])
        assert report.status_code == 200, report.text
        assert report.headers["x-evidence-bundle-sha256"] == sha
        assert report.headers["link"].startswith(f"<{links['bundle']}>")
        assert report.headers["cache-control"] == "no-store"


def test_web_and_api_reports_send_the_same_headers(client: TestClient, desk: Desk) -> None:
    links = _links(client)
    seq = int(links["pdf"].rsplit("?seq=", 1)[1])
    for fmt in ("pdf", "csv"):
        web = client.get(links[fmt])
        api = client.get(
            f"/trace/{paths.quote_id(LOT)}/report.{fmt}",
            params={"seq": seq, "lang": "en"},
            headers={"X-API-Key": desk.inspector_key},
        )
        assert api.status_code == 200, api.text
        assert {h: web.headers[h] for h in HEADERS} == {h: api.headers[h] for h in HEADERS}
        assert web.headers["link"] == api.headers["link"].replace("</trace/", f"<{paths.PREFIX}/trace/")


def test_an_unknown_head_is_the_page_error(client: TestClient) -> None:
    for what in ("report.pdf", "bundle.json"):
        answer = client.get(f"{paths.trace_url(LOT)}/{what}", params={"seq": 999_999})
        assert answer.status_code == 404
        assert "Nothing was found for this identifier." in answer.text


PROOF = Proof(
    lot_id="urn:epc:class:lgtin:6901234.012345.QZ2611A",
    event_rows=1,
    reading_rows=None,
    seq_first=1,
    seq_last=1,
    head_seq=1,
    head_hash="0" * 64,
    signed_at="2026-01-01T00:00:00.000Z",
    signature="0" * 128,
    public_key="0" * 64,
    key_fingerprint="SHA256:0",
    bundle_sha256="0" * 64,
    bundle_bytes=1,
    generated_at=datetime(2026, 1, 1, tzinfo=UTC),
)


def test_a_non_ascii_lot_id_makes_ascii_download_headers() -> None:
    # Lot ids are EPC class URIs (ASCII) once captured: the file-name builder is tested on its own.
    lot = "urn:epc:class:lgtin:6901234.012345.冷链批次"
    proof = replace(PROOF, lot_id=lot)
    for headers in (
        download.report_headers(proof, "pdf", prefix=paths.PREFIX),
        download.bundle_headers(proof),
    ):
        sent = Response(b"", headers=headers)  # raises on a header latin-1 cannot encode
        assert all(v.isascii() for _, v in sent.raw_headers)
    assert download.report_headers(proof, "pdf")["Content-Disposition"] == (
        'attachment; filename="report-urn_epc_class_lgtin_6901234.012345.pdf"; '
        "filename*=UTF-8''report-urn_epc_class_lgtin_6901234.012345.%E5%86%B7%E9%93%BE%E6%89%B9%E6%AC%A1.pdf"
    )


@given(st.text(max_size=200))
def test_every_lot_id_makes_a_sendable_file_name(lot_id: str) -> None:
    name = download.report_file_name(lot_id, "xlsx")
    assert name.isascii()
    assert re.fullmatch(r"report-[A-Za-z0-9._-]*\.xlsx", name)
    disposition = download.bundle_headers(replace(PROOF, lot_id=lot_id))["Content-Disposition"]
    Response(b"", headers={"Content-Disposition": disposition})  # latin-1 encodable, one line
    assert "\r" not in disposition
    assert "\n" not in disposition


@given(st.text(max_size=50))
def test_a_csv_text_cell_never_starts_like_a_formula(text: str) -> None:
    cell = csv_report.inert(text)
    assert not cell.startswith(csv_report.FORMULA_STARTS)
    assert cell in (text, "'" + text)
