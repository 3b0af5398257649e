"""Tests: the scorecards' outputs over the small hand-built world: GET /scorecards and the per-subject
drill-down (success, problem+json errors, a carrier's scope), the PDF read back with poppler in Chinese,
the XLSX opened with openpyxl, and `coldchain scorecard` (table, --json, --drill, a report, exempt)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import psycopg
import pytest
from fastapi.testclient import TestClient
from process_support import as_url
from scorecard_support import CAR_A, CAR_B, PERIOD, build_world
from typer.testing import CliRunner

from coldchain.cli import app as cli_app
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.i18n import read_catalog
from traceability.reports.pdf import TEMPLATES
from traceability.scorecards.model import INDICATORS, SUBJECT_NAMES

PROBLEM = "application/problem+json"


@pytest.fixture
def world(db_url: str) -> str:
    build_world(db_url)
    return db_url


def _client(db_url: str, role: str, party: str | None = None) -> TestClient:
    with psycopg.connect(db_url) as conn:
        key = create_key(conn, role, f"test-{role}", party)
    return TestClient(create_app(db_url), raise_server_exceptions=False, headers={"X-API-Key": key})


@pytest.fixture
def regulator(world: str) -> Iterator[TestClient]:
    with _client(world, "regulator", "REG") as c:
        yield c


@pytest.fixture
def carrier_a(world: str) -> Iterator[TestClient]:
    with _client(world, "carrier", CAR_A) as c:
        yield c


def test_api_lists_the_ranked_cards_with_their_ratios(regulator: TestClient) -> None:
    r = regulator.get("/scorecards", params={"period": PERIOD, "subject": "carrier"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["period"]["label"] == PERIOD
    assert [c["subject_id"] for c in body["cards"]] == [CAR_A, CAR_B]
    a = body["cards"][0]
    assert a["rank"] == 1
    assert a["indicators"]["completeness"]["numerator"] == 270
    assert a["indicators"]["completeness"]["denominator"] == 288
    listed = a["indicators"]["timeliness"]["exemptions"]
    assert [e["granted_by"] for e in listed] == ["inspector Li", "inspector Wang"]
    assert listed[0]["reason"] == "declared offline sea leg"


def test_api_drills_down_into_one_subject(regulator: TestClient) -> None:
    r = regulator.get(
        f"/scorecards/carrier/{CAR_B}", params={"period": PERIOD, "indicator": "track_matching"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["card"]["indicators"]["track_matching"]["ratio"] == 0.0
    assert list(body["rows"]) == ["track_matching"]
    assert body["rows"]["track_matching"][0]["reason"] == "never_reached_destination"
    every = regulator.get("/scorecards/device/dev-a", params={"period": PERIOD}).json()
    assert every["rows"]["sequence"][0]["missing"] == 18
    assert set(every["rows"]) == {s.key for s in INDICATORS}


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/scorecards", {"period": "2026Q5", "subject": "carrier"}, 422),
        ("/scorecards", {"period": PERIOD, "subject": "planet"}, 422),
        ("/scorecards/carrier/NOBODY", {"period": PERIOD}, 404),
        (f"/scorecards/carrier/{CAR_A}", {"period": PERIOD, "indicator": "happiness"}, 422),
        ("/scorecards", {"period": "2026-10-05/2026-10-01"}, 422),
    ],
)
def test_api_errors_are_problems(
    regulator: TestClient, path: str, params: dict[str, str], status: int
) -> None:
    r = regulator.get(path, params=params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert "Traceback" not in r.text


def test_a_carrier_key_sees_only_its_own_card(carrier_a: TestClient) -> None:
    body = carrier_a.get("/scorecards", params={"period": PERIOD, "subject": "carrier"}).json()
    assert [c["subject_id"] for c in body["cards"]] == [CAR_A]
    assert carrier_a.get(f"/scorecards/carrier/{CAR_A}", params={"period": PERIOD}).status_code == 200
    other = carrier_a.get(f"/scorecards/carrier/{CAR_B}", params={"period": PERIOD})
    assert other.status_code == 404
    assert other.headers["content-type"].startswith(PROBLEM)
    assert carrier_a.get("/scorecards/asset/TRUCK-B", params={"period": PERIOD}).status_code == 404
    assert carrier_a.get("/scorecards/asset/TRUCK-A", params={"period": PERIOD}).status_code == 200
    report = carrier_a.get("/scorecards/report.xlsx", params={"period": PERIOD, "subject": "carrier"})
    assert report.status_code == 200


def test_the_pdf_reads_in_the_regulators_chinese(regulator: TestClient, tmp_path: Path) -> None:
    r = regulator.get(
        "/scorecards/report.pdf", params={"period": PERIOD, "subject": "carrier", "lang": "zh-CN"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    pdf = tmp_path / "s.pdf"
    pdf.write_bytes(r.content)
    text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    flat = re.sub(r"\s+", "", text)
    for word in ("数据质量与合规评分卡", "上传率", "匹配率", "异常率", "达标率", "覆盖率", "承运人", "排名"):
        assert word in flat, word
    assert "Carrier A" in text
    assert "Carrier B" in text
    assert "93.75 %" in text  # carrier A's upload rate, 270 / 288
    assert "declaredofflinesealeg" in flat
    assert "inspectorWang" in flat


def test_the_xlsx_opens_with_the_rows_behind_each_indicator(regulator: TestClient, tmp_path: Path) -> None:
    r = regulator.get(
        "/scorecards/report.xlsx", params={"period": PERIOD, "subject": "carrier", "lang": "zh-CN"}
    )
    assert r.status_code == 200, r.text
    path = tmp_path / "s.xlsx"
    path.write_bytes(r.content)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["得分", "指标", "豁免", "明细", "备注"]
    scores = book["得分"]
    header = [c.value for c in scores[1]]
    assert header[:3] == ["排名", "承运人", "名称"]
    assert "温度达标率" in header
    assert "运单轨迹匹配率" in header
    first = [c.value for c in scores[2]]
    assert first[0] == 1
    assert first[1] == CAR_A
    assert first[header.index("上传率（完整性）")] == pytest.approx(270 / 288)
    assert scores.freeze_panes == "A2"
    exemptions = list(book["豁免"].iter_rows(min_row=2, values_only=True))
    assert [(e[0], e[5]) for e in exemptions] == [(CAR_A, "inspector Li"), (CAR_A, "inspector Wang")]
    detail = list(book["明细"].iter_rows(min_row=2, values_only=True))
    lost = [row for row in detail if row[0] == CAR_A and row[1] == "序号缺失率"]
    assert len(lost) == 1
    assert json.loads(lost[0][4])["missing"] == 18


def test_every_scorecard_label_is_translated() -> None:
    template = (TEMPLATES / "scorecard_report.html.j2").read_text()
    used = set(re.findall(r'_\("([^"]+)"\)', template)) | set(re.findall(r"_\('([^']+)'\)", template))
    source = (TEMPLATES.parent / "scorecard.py").read_text()
    used |= set(re.findall(r'_\("([^"]+)"\)', source))
    used |= {m for s in INDICATORS for m in (s.name, s.numerator, s.denominator)}
    used |= set(SUBJECT_NAMES.values())
    catalog = read_catalog("reports") | read_catalog("common") | read_catalog("web")
    assert sorted(used - catalog.keys()) == []


def test_cli_prints_the_table_the_json_a_drill_and_a_report(
    world: str, server_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", as_url(world))
    monkeypatch.setenv("COLDCHAIN_HOME", str(server_tmp))
    runner = CliRunner()
    done = runner.invoke(cli_app, ["scorecard", "--period", PERIOD, "--subject", "carrier", "--json"])
    assert done.exit_code == 0, done.output
    board = json.loads(done.stdout.strip().splitlines()[-1])
    assert [c["subject_id"] for c in board["cards"]] == [CAR_A, CAR_B]
    table = runner.invoke(cli_app, ["scorecard", "--period", PERIOD])
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[1].startswith(f"1\t{CAR_A}\t")
    drill = runner.invoke(
        cli_app, ["scorecard", "--period", PERIOD, "--drill", CAR_B, "--indicator", "handover"]
    )
    assert drill.exit_code == 0, drill.output
    assert json.loads(drill.stdout.strip().splitlines()[-1])["rows"]["handover"][0]["to_leg"] == 2
    out = server_tmp / "s.xlsx"
    report = runner.invoke(cli_app, ["scorecard", "--period", PERIOD, "-o", str(out), "--format", "xlsx"])
    assert report.exit_code == 0, report.output
    assert openpyxl.load_workbook(out).sheetnames[0] == "得分"
    with psycopg.connect(world, autocommit=True) as conn:
        conn.execute("DELETE FROM ingest_batch")  # the world's batch, consumed as the rules worker would
    judged = runner.invoke(cli_app, ["scorecard", "judge", "--at", "2027-01-01T00:00:00"])
    assert judged.exit_code == 0, judged.output
    assert json.loads(judged.stdout.strip().splitlines()[-1])["shipments_judged"] == 2
    again = runner.invoke(cli_app, ["scorecard", "--period", PERIOD, "--subject", "carrier", "--json"])
    assert json.loads(again.stdout.strip().splitlines()[-1])["cards"] == board["cards"]
    assert runner.invoke(cli_app, ["scorecard", "--period", "2026Q9"]).exit_code == 2
    assert runner.invoke(cli_app, ["scorecard", "--period", PERIOD, "--drill", "NOBODY"]).exit_code == 1
    granted = runner.invoke(
        cli_app,
        ["scorecard", "exempt", "--indicator", "completeness", "--subject", "device", "--id", "dev-c",
         "--start", "2026-10-01T00:00:00", "--end", "2026-10-03T00:00:00", "--reason", "device in repair",
         "--granted-by", "inspector Li"],
    )  # fmt: skip
    assert granted.exit_code == 0, granted.output
    after = runner.invoke(cli_app, ["scorecard", "--period", PERIOD, "--json"])
    b = json.loads(after.stdout.strip().splitlines()[-1])["cards"][1]
    assert b["indicators"]["completeness"]["denominator"] == 216
    bad = runner.invoke(
        cli_app,
        ["scorecard", "exempt", "--indicator", "happiness", "--subject", "device", "--id", "dev-c",
         "--start", "2026-10-01", "--end", "2026-10-03", "--reason", "x", "--granted-by", "y"],
    )  # fmt: skip
    assert bad.exit_code == 2
