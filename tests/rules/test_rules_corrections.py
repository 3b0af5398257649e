"""Tests: late data that changes a verdict the ledger holds corrects it there (errorDeclaration, reason
incorrect_data, correctiveEventIDs), end to end through the rules worker, the ledger worker and the trace."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from fastapi.testclient import TestClient
from trace_support import LOT, SSCC, TRUCK_EPC, h, packing_event, rfid, seed_world, verdict_payloads

from rules.models import iso_utc
from rules.worker import RulesWorker, corrections
from rules.worker.plan import Emit, Withdraw
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.api.options import ApiOptions
from traceability.epcis.builders import parse_time
from traceability.ledger import chain, checkpoint
from traceability.ledger.verify import verify
from traceability.reports.build import read_report, render
from traceability.reports.pdf import html as pdf_html
from traceability.trace import trace_lot
from traceability.web.paths import trace_url
from traceability.worker import LedgerWorker

Conn = psycopg.Connection[tuple[Any, ...]]
PROBE = "truck-12345-rc/temp:1"


def world(conn: Conn) -> int:
    """The demo registry, the lot packed in its pallet and the pallet loaded on the truck at h(2) (real
    ledger events); returns the truck probe's series id."""
    series = seed_world(conn)
    chain.append(conn, packing_event())
    rfid(conn, "rfid-qz-dock3", [(h(2), SSCC), (h(2) + timedelta(seconds=3), TRUCK_EPC)])
    conn.commit()
    while LedgerWorker(conn.info.dsn).run_once():  # the loading's events and the custody leg
        pass
    return series[PROBE]


def readings(conn: Conn, series_id: int, points: list[tuple[float, float]]) -> None:
    """Readings at minutes after h(2), with the gateway's ingest_batch row, in one transaction."""
    with conn.transaction():
        conn.cursor().executemany(
            "INSERT INTO reading (time, series_id, value, received_at) VALUES (%s, %s, %s, now())",
            [(h(2) + timedelta(minutes=m), series_id, v) for m, v in points],
        )
        conn.execute(
            "INSERT INTO ingest_batch (kind, series_ids, t_min, t_max) VALUES ('telemetry', %s, %s, %s)",
            (
                [series_id],
                h(2) + timedelta(minutes=min(m for m, _ in points)),
                h(2) + timedelta(minutes=max(m for m, _ in points)),
            ),
        )


def run(rules: RulesWorker, ledger: LedgerWorker) -> None:
    while rules.run_once():
        pass
    while ledger.run_once():
        pass


def ledger_events(conn: Conn) -> list[dict[str, Any]]:
    return [r[0] for r in conn.execute("SELECT event FROM ledger_event ORDER BY seq").fetchall()]


def by_verdict(events: list[dict[str, Any]], verdict: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("cc:verdict") == verdict]


def sign_in(client: TestClient, key: str) -> None:
    form = client.get("/ui/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    response = client.post("/ui/signin", data={"key": key, "csrf": csrf.group(1), "next": "/ui/"})
    assert response.status_code == 303, response.text


def shows_the_history_in_chinese(conn: Conn, db_url: str, home: Path) -> None:
    """The report (CSV and the PDF's HTML) and the web trace page show the corrections and the verdict
    history, in the users' language."""
    key_path = home / checkpoint.KEY_FILE
    assert checkpoint.CheckpointWorker(db_url, key_path).run_once() is not None
    report = read_report(conn, LOT, lang="zh-CN", tz=ZoneInfo("Asia/Shanghai"), with_readings=False)
    assert report is not None
    text = render(report, "csv").decode("utf-8")
    assert ",已声明错误,更正," in text  # the column after "Declared wrong"
    assert "迟到的读数撤销了该判定" in text
    assert "incorrect_data" in text
    page = pdf_html(report)
    assert "判定历史" in page
    assert "账本中的更正" in page
    assert "的迟到读数将该批次的判定由断链更正为合格" in page

    key = create_key(conn, "inspector", "corrections")
    app = create_app(db_url, options=ApiOptions(ledger_key=key_path))
    with TestClient(app, follow_redirects=False, headers={"Accept-Language": "zh-CN"}) as client:
        sign_in(client, key)
        html = client.get(trace_url(LOT)).text
    assert 'id="verdict-history"' in html
    assert "账本中的更正" in html
    assert "迟到的读数撤销了该判定" in html
    assert "判定已撤销" in html


def test_late_readings_withdraw_a_gap_and_correct_the_lot_verdict(db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        probe = world(conn)
        rules, ledger = RulesWorker(db_url), LedgerWorker(db_url)
        try:
            readings(conn, probe, [(m, 3.0) for m in range(1, 31)])
            run(rules, ledger)
            readings(conn, probe, [(m, 3.0) for m in range(60, 91)])
            run(rules, ledger)
            events = ledger_events(conn)
            [gap] = by_verdict(events, "chain_break")
            assert gap["cc:breakKind"] == "gap"
            assert gap["cc:verdictId"].startswith("chain_break:cn_food/chilled/gap:")
            assert [e["cc:lotVerdict"] for e in by_verdict(events, "lot_verdict")] == ["pass", "broken"]
            broken = by_verdict(events, "lot_verdict")[-1]

            # The logger uploads the missing half hour late: the gap was never there.
            readings(conn, probe, [(m, 3.0) for m in range(31, 60)])
            run(rules, ledger)
            events = ledger_events(conn)
            declared = [e for e in events if "errorDeclaration" in e]
            assert {e["eventID"] for e in declared} == {gap["eventID"], broken["eventID"]}
            [withdrawal] = by_verdict(events, "verdict_withdrawn")
            assert withdrawal["cc:withdrawnVerdictId"] == gap["cc:verdictId"]
            assert withdrawal["bizStep"] == "sensor_reporting"
            assert "exception" not in withdrawal["sensorElementList"][0]["sensorReport"][0]
            assert withdrawal["cc:correctionReason"].startswith("readings that arrived late removed")
            on_gap = next(e for e in declared if e["eventID"] == gap["eventID"])
            assert on_gap["errorDeclaration"]["reason"] == "incorrect_data"
            assert on_gap["errorDeclaration"]["correctiveEventIDs"] == [withdrawal["eventID"]]
            assert on_gap["errorDeclaration"]["declarationTime"].endswith("Z")
            # Everything else of the declared event is the original's, as EPCIS 2.0 7.4.1.2 has it.
            assert {k: v for k, v in on_gap.items() if k != "errorDeclaration"} == gap

            lots = by_verdict(events, "lot_verdict")
            assert [e["cc:lotVerdict"] for e in lots if "errorDeclaration" not in e] == [
                "pass",
                "broken",
                "pass",
            ]
            fixed = lots[-2] if "errorDeclaration" in lots[-1] else lots[-1]
            assert fixed["cc:corrects"] == broken["cc:verdictId"]
            assert "changed the lot's verdict from broken to pass" in fixed["cc:correctionReason"]
            on_lot = next(e for e in declared if e["eventID"] == broken["eventID"])
            assert on_lot["errorDeclaration"]["correctiveEventIDs"] == [fixed["eventID"]]
            assert verify(conn).ok

            # Nothing is corrected twice: the same data again changes nothing in the ledger.
            n = len(events)
            readings(conn, probe, [(m + 0.5, 3.0) for m in range(40, 42)])
            run(rules, ledger)
            assert len(ledger_events(conn)) == n

            # The trace shows what was believed, when, and why it changed.
            found = trace_lot(conn, LOT)
            assert found is not None
            assert found.verdict == "pass"
            wrong = {e.event_id for e in found.events if e.declared_wrong and not e.error_declaration}
            assert {gap["eventID"], broken["eventID"]} <= wrong
            corrections = {c.declared_event_id: c for c in found.corrections}
            assert corrections[gap["eventID"]].corrective_event_ids == [withdrawal["eventID"]]
            assert corrections[gap["eventID"]].reason == "incorrect_data"
            assert corrections[gap["eventID"]].why.startswith("readings that arrived late removed")
            assert corrections[broken["eventID"]].was == "broken"
            assert corrections[broken["eventID"]].now == "pass"
            assert [v.verdict for v in found.verdict_history] == ["pass", "broken", "pass"]
            assert found.verdict_history[2].change_from == "broken"
            assert found.verdict_history[2].arrived_from == h(2) + timedelta(minutes=31)
            shows_the_history_in_chinese(conn, db_url, tmp_path)
        finally:
            rules.close()


def test_late_readings_that_lengthen_an_excursion_replace_its_event(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        probe = world(conn)
        rules, ledger = RulesWorker(db_url), LedgerWorker(db_url)
        try:
            points = [(m, 3.0) for m in range(1, 11)] + [(m, 9.0) for m in range(11, 26)]
            points += [(m, 3.0) for m in range(29, 41)]
            readings(conn, probe, points)
            run(rules, ledger)
            [first] = by_verdict(ledger_events(conn), "excursion_closed")
            start = first["sensorElementList"][0]["sensorMetadata"]["startTime"]
            assert first["sensorElementList"][0]["sensorMetadata"]["endTime"] == "2026-03-01T02:25:00.000Z"

            readings(conn, probe, [(m, 9.0) for m in range(26, 29)])
            run(rules, ledger)
            events = ledger_events(conn)
            excursions = by_verdict(events, "excursion_closed")
            live = [e for e in excursions if "errorDeclaration" not in e and e["eventID"] != first["eventID"]]
            [now] = live
            meta = now["sensorElementList"][0]["sensorMetadata"]
            assert (meta["startTime"], meta["endTime"]) == (start, "2026-03-01T02:28:00.000Z")
            assert now["cc:verdictId"] == first["cc:verdictId"]  # the same verdict, its end moved
            assert "is now" in now["cc:correctionReason"]
            [declaration] = [e for e in excursions if "errorDeclaration" in e]
            assert declaration["eventID"] == first["eventID"]
            assert declaration["errorDeclaration"]["correctiveEventIDs"] == [now["eventID"]]
            # The lot's result did not change (an excursion before and after): no lot correction.
            assert not [e for e in by_verdict(events, "lot_verdict") if "errorDeclaration" in e]
            assert verify(conn).ok
        finally:
            rules.close()


def test_a_verdict_found_again_as_it_was_after_its_withdrawal_is_live_in_the_ledger(db_url: str) -> None:
    # Emitted, withdrawn (the window judged again without it), then found again with the same span and
    # figures: the third event states what the first did, and the ledger must hold it undeclared, not
    # take it for the first one (declared wrong) already captured.
    with psycopg.connect(db_url, autocommit=True) as conn:
        probe = world(conn)
        ledger = LedgerWorker(db_url)
        [excursion, _gap] = verdict_payloads(probe)
        start, end = parse_time(excursion.start), parse_time(excursion.end)
        emit = Emit(excursion, probe, excursion.rule_id, start, end)
        withdraw = Withdraw(
            "excursion_closed", probe, excursion.asset_id, ((excursion.rule_id, excursion.kind),),
            start - timedelta(hours=1), end + timedelta(hours=1), excursion.device_id, excursion.channel,
            excursion.product_class, excursion.pack_id, excursion.pack_version,
        )  # fmt: skip
        for step, at in enumerate((h(10), h(11), h(12))):
            with conn.transaction():
                if step == 1:
                    assert corrections.withdraw(conn, withdraw, corrections.Outcome(), now=at) == 1
                else:
                    assert corrections.emit(conn, emit, corrections.Outcome(), now=at)  # new each time
            while ledger.run_once():
                pass

        events = by_verdict(ledger_events(conn), "excursion_closed")
        declared = {e["eventID"] for e in events if "errorDeclaration" in e}
        first, again = [e for e in events if "errorDeclaration" not in e]
        assert declared == {first["eventID"]}
        assert again["eventID"] != first["eventID"]
        assert (again["cc:verdictId"], again["sensorElementList"]) == (
            first["cc:verdictId"],
            first["sensorElementList"],
        )
        assert (first["cc:computedAt"], again["cc:computedAt"]) == (iso_utc(h(10)), iso_utc(h(12)))
        [withdrawal] = by_verdict(ledger_events(conn), "verdict_withdrawn")
        assert withdrawal["cc:computedAt"] == iso_utc(h(11))
        assert verify(conn).ok
