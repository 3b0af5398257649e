"""Tests: the web pages over the real app and PostgreSQL: sign-in sessions, CSRF, roles, search, the trace
page, the alarms page and the public scan page (its rate limit on an injected clock)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient
from web_support import (
    BILL_OF_LADING,
    CONTAINER,
    LOT,
    RAIL_WAYBILL,
    SCANNED,
    SEA_LOT,
    SEA_LOT_2,
    SSCC,
    Desk,
)

from traceability.api.app import create_app
from traceability.api.auth import create_key, revoke_key
from traceability.api.options import ApiOptions
from traceability.web import pages
from traceability.web.pages import local_path
from traceability.web.ratelimit import TokenBucket
from traceability.web.sessions import COOKIE


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def app_client(desk: Desk, clock: Clock) -> Iterator[TestClient]:
    app = create_app(desk.db_url, options=ApiOptions(ledger_key=desk.ledger_key))
    pages.install_scan_bucket(app, TokenBucket(rate_per_s=1, burst=3, clock=clock))
    with TestClient(app, follow_redirects=False, headers={"Accept-Language": "en"}) as client:
        yield client


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def sign_in(client: TestClient, key: str, next_path: str = "/ui/") -> str:
    """Sign in with ``key``; returns the session's CSRF token (the client keeps the cookie)."""
    client.cookies.clear()
    form = client.get("/ui/signin")
    response = client.post("/ui/signin", data={"key": key, "csrf": _csrf(form.text), "next": next_path})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == next_path
    return _csrf(client.get("/ui/").text)


def test_not_signed_in_is_sent_to_sign_in(app_client: TestClient) -> None:
    app_client.cookies.clear()
    for path in ("/ui/", f"/ui/trace/{LOT}", "/ui/alarms"):
        response = app_client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/ui/signin?next=")
    assert app_client.get("/").headers["location"] == "/ui/"


def test_session_cookie_and_its_stored_hash(app_client: TestClient, desk: Desk) -> None:
    form = app_client.get("/ui/signin")
    response = app_client.post(
        "/ui/signin", data={"key": desk.inspector_key, "csrf": _csrf(form.text), "next": "/ui/"}
    )
    cookie = response.headers["set-cookie"]
    assert f"{COOKIE}=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    assert "Path=/" in cookie
    token = app_client.cookies[COOKIE]
    with psycopg.connect(desk.db_url) as conn:
        stored = [r[0] for r in conn.execute("SELECT token_hash FROM web_session")]
    assert token not in stored
    assert len(stored) >= 1


def test_sign_in_refuses_a_wrong_key_and_a_missing_token(app_client: TestClient) -> None:
    app_client.cookies.clear()
    form = app_client.get("/ui/signin")
    wrong = app_client.post("/ui/signin", data={"key": "cck_nope", "csrf": _csrf(form.text), "next": "/ui/"})
    assert wrong.status_code == 401
    assert "Unknown or revoked API key." in wrong.text
    assert COOKIE not in app_client.cookies
    forged = app_client.post("/ui/signin", data={"key": "cck_nope", "next": "/ui/"})
    assert forged.status_code == 403


def test_return_path_stays_on_the_site() -> None:
    assert local_path("/ui/trace/x?y=1") == "/ui/trace/x?y=1"
    for bad in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x", "", None):
        assert local_path(bad) == "/ui/"


def test_a_post_without_its_csrf_token_is_refused(app_client: TestClient, desk: Desk) -> None:
    csrf = sign_in(app_client, desk.operator_key)
    for data in ({"note": "x"}, {"note": "x", "csrf": "wrong"}):
        response = app_client.post(f"/ui/alarms/{desk.alarm_id}/ack", data=data)
        assert response.status_code == 403
        assert "did not come from this site" in response.text
    assert app_client.post("/ui/signout", data={}).status_code == 403
    assert app_client.get("/ui/").status_code == 200, "still signed in"
    assert app_client.post("/ui/signout", data={"csrf": csrf}).status_code == 303
    assert app_client.get("/ui/").status_code == 303, "signed out"


def test_a_revoked_key_ends_its_sessions(app_client: TestClient, desk: Desk) -> None:
    with psycopg.connect(desk.db_url) as conn:
        key = create_key(conn, "inspector", "to be revoked")
        conn.commit()
    sign_in(app_client, key)
    assert app_client.get("/ui/").status_code == 200
    with psycopg.connect(desk.db_url) as conn:
        revoke_key(conn, key[:12])
        conn.commit()
    assert app_client.get("/ui/").status_code == 303


@pytest.mark.parametrize(
    ("query", "lot"),
    [
        (LOT, LOT),
        ("QZ2611A", LOT),
        (SSCC, LOT),
        (SCANNED, LOT),
        ("]d2010690123412345610QZ2611A\x1d", LOT),
        ("https://id.gs1.org/01/06901234123456/10/QZ2611A", LOT),
        ("TH0302", SEA_LOT_2),
        ("(01)08850000123456(10)TH0301", SEA_LOT),
    ],
)
def test_search_finds_the_lot(app_client: TestClient, desk: Desk, query: str, lot: str) -> None:
    sign_in(app_client, desk.inspector_key)
    response = app_client.get("/ui/", params={"q": query})
    assert response.status_code == 303
    assert response.headers["location"] == pages.trace_url(lot)


@pytest.mark.parametrize(
    "query", [CONTAINER, "csqu 305438 3", BILL_OF_LADING, RAIL_WAYBILL, "(01)08850000123456"]
)
def test_several_matches_give_a_choice(app_client: TestClient, desk: Desk, query: str) -> None:
    sign_in(app_client, desk.inspector_key)
    response = app_client.get("/ui/", params={"q": query})
    assert response.status_code == 200
    choices = re.findall(r'<li><a href="([^"]+)">', response.text.split('id="choices"', 1)[1])
    assert choices == [pages.trace_url(SEA_LOT), pages.trace_url(SEA_LOT_2)]


def test_search_says_when_nothing_is_found(app_client: TestClient, desk: Desk) -> None:
    sign_in(app_client, desk.inspector_key)
    response = app_client.get("/ui/", params={"q": "NO-SUCH-THING"})
    assert response.status_code == 404
    assert "Nothing was found for this identifier." in response.text


def test_trace_page_shows_the_lot(app_client: TestClient, desk: Desk) -> None:
    sign_in(app_client, desk.inspector_key)
    page = app_client.get(pages.trace_url(LOT))
    assert page.status_code == 200
    text = page.text
    assert "Chilled white shrimp" in text
    assert "Reefer truck GXA-12345" in text
    assert 'class="excursion"' in text
    assert "8.5 °C" in text
    assert 'data-slot="chart"' in text
    assert "Ledger checkpoint verified" in text
    assert 'href="/ui/trace/urn:epc:class:lgtin:6901234.012345.QZ2611A/bundle.json?seq=' in text
    assert "Asia/Shanghai" not in text.split("<main", 1)[1].split("</main>", 1)[0], "en: UTC by default"
    bundle = app_client.get(pages.trace_url(LOT) + "/bundle.json")
    assert bundle.status_code == 200
    assert bundle.json()["lot_id"] == LOT


def test_pages_are_audited(app_client: TestClient, desk: Desk) -> None:
    sign_in(app_client, desk.inspector_key)
    app_client.get(pages.trace_url(SEA_LOT))
    with psycopg.connect(desk.db_url) as conn:
        rows = conn.execute(
            "SELECT role, method, status FROM audit_log WHERE path = %s", (pages.trace_url(SEA_LOT),)
        ).fetchall()
    assert ("inspector", "GET", 200) in rows


def test_an_inspector_may_not_acknowledge(app_client: TestClient, desk: Desk) -> None:
    csrf = sign_in(app_client, desk.inspector_key)
    assert app_client.get("/ui/alarms").status_code == 403
    response = app_client.post(f"/ui/alarms/{desk.alarm_id}/ack", data={"csrf": csrf, "note": "no"})
    assert response.status_code == 403
    with psycopg.connect(desk.db_url) as conn:
        assert conn.execute("SELECT state FROM alarm WHERE alarm_id = %s", (desk.alarm_id,)).fetchone() == (
            "open",
        )


def test_scan_page_shows_only_what_a_buyer_may_see(app_client: TestClient, clock: Clock) -> None:
    clock.now += 100
    app_client.cookies.clear()
    page = app_client.get("/scan/" + SCANNED)
    assert page.status_code == 200
    text = page.text
    assert "Chilled white shrimp" in text
    assert "TH" in text
    assert "Nanning market" in text
    for secret in ("°C", "Beibu Gulf", "Haijixing", "sha256", "TRUCK", "6901234000", "urn:epc"):
        assert secret not in text
    assert not re.search(r"[0-9a-f]{64}", text)


def test_scan_page_is_rate_limited(app_client: TestClient, clock: Clock) -> None:
    clock.now += 100  # a full bucket: 3 at once, then one a second
    codes = [app_client.get("/scan/" + SCANNED).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = app_client.get("/scan/" + SCANNED)
    assert refused.headers["retry-after"] == "1"
    clock.now += 1
    assert app_client.get("/scan/" + SCANNED).status_code == 200


@pytest.mark.parametrize(
    ("code", "product"),
    [
        (SCANNED, "Chilled white shrimp"),
        (LOT, "Chilled white shrimp"),
        ("https://id.gs1.org/01/06901234123456/10/QZ2611A", "Chilled white shrimp"),
        ("]d2010690123412345610QZ2611A\x1d", "Chilled white shrimp"),
        ("(01)08850000123456(10)TH0302", "Chilled tiger prawn"),
    ],
)
def test_scan_page_reads_a_trace_code(app_client: TestClient, clock: Clock, code: str, product: str) -> None:
    clock.now += 100
    page = app_client.get("/scan/" + quote(code, safe="/:()"))
    assert page.status_code == 200, code
    assert product in page.text


@pytest.mark.parametrize(
    "code",
    [
        CONTAINER,  # two lots, and a container number is not a product's code
        "(01)08850000123456",  # a GTIN alone: two lots
        "https://id.gs1.org/01/06901234123456",  # a GTIN alone, even with one lot under it
        SSCC,  # the pallet: a unit, not a lot
        BILL_OF_LADING,
        "TRUCK-GXA-12345",
        "QZ2611A",  # a batch without its GTIN
        SEA_LOT.rsplit(".", 1)[0] + ".NOPE",
    ],
)
def test_scan_page_refuses_what_is_not_one_lots_code(app_client: TestClient, clock: Clock, code: str) -> None:
    clock.now += 100
    page = app_client.get("/scan/" + quote(code, safe="/:()"), headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 404, code
    assert "Chilled" not in page.text
    assert page.headers["content-language"] == "zh-CN"
    assert 'id="error-message"' in page.text


def test_a_missing_page_is_a_page_and_the_api_keeps_problem_json(app_client: TestClient) -> None:
    page = app_client.get("/ui/no/such/page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    api = app_client.get("/no/such/route")
    assert api.status_code == 404
    assert api.headers["content-type"].startswith("application/problem+json")


def test_the_whole_ledger_verifies_on_its_page(app_client: TestClient, desk: Desk) -> None:
    sign_in(app_client, desk.inspector_key)
    page = app_client.get("/ui/ledger/verify")
    assert page.status_code == 200
    assert "The ledger verifies" in page.text


def test_alarm_filters(app_client: TestClient, desk: Desk) -> None:
    sign_in(app_client, desk.operator_key)
    shown = app_client.get("/ui/alarms", params={"state": "all", "severity": "critical", "kind": "excursion"})
    assert f'id="alarm-{desk.alarm_id}"' in shown.text
    for params in ({"state": "all", "severity": "info"}, {"state": "all", "asset": "COLDROOM-QZ-B2"}):
        hidden = app_client.get("/ui/alarms", params=params)
        assert f'id="alarm-{desk.alarm_id}"' not in hidden.text
        assert 'id="no-alarms"' in hidden.text


def test_unknown_lots_and_unwired_reports_answer_pages(app_client: TestClient, desk: Desk) -> None:
    sign_in(app_client, desk.inspector_key)
    missing = app_client.get(pages.trace_url("urn:epc:class:lgtin:6901234.012345.NOPE"))
    assert missing.status_code == 404
    assert "Nothing was found for this identifier." in missing.text
    report = app_client.get(pages.trace_url(LOT) + "/report.pdf")
    assert report.status_code in (200, 404)
    assert app_client.get(pages.trace_url(LOT) + "/report.exe").status_code == 404


def test_trace_page_shows_the_lots_remaining_shelf_life(app_client: TestClient, desk: Desk) -> None:
    sign_in(app_client, desk.inspector_key)
    shelf = re.search(r'<dd id="shelf-life">(.*?)</dd>', app_client.get(pages.trace_url(LOT)).text, re.S)
    assert shelf is not None
    # The chilled lot of the demo: 17 400 s of evidence, 3.7 % of its 240 h used (rules stage's figure).
    assert "3.7 % of its life used" in shelf.group(1)
    assert "at 0.0 °C" in shelf.group(1) or "at 0 °C" in shelf.group(1)
    assert "1 h 0 min in custody without a reading is not counted" in shelf.group(1)
    zh = app_client.get(pages.trace_url(LOT), headers={"Accept-Language": "zh-CN"}).text
    zh_shelf = re.search(r'<dd id="shelf-life">(.*?)</dd>', zh, re.S)
    assert zh_shelf is not None
    assert "已消耗 3.7 %" in zh_shelf.group(1)
    assert "剩余货架期" in zh


def test_trace_page_links_its_documents_to_the_search(app_client: TestClient, desk: Desk) -> None:
    sign_in(app_client, desk.inspector_key)
    page = app_client.get(pages.trace_url(SEA_LOT)).text
    assert f'<a href="/ui/?q={BILL_OF_LADING}"' in page
    assert f'<a href="/ui/?q={RAIL_WAYBILL}"' in page


def test_the_cookie_is_secure_over_https(desk: Desk) -> None:
    app = create_app(desk.db_url, options=ApiOptions(ledger_key=desk.ledger_key))
    with TestClient(app, base_url="https://desk.example", follow_redirects=False) as client:
        form = client.get("/ui/signin")
        answer = client.post(
            "/ui/signin", data={"key": desk.inspector_key, "csrf": _csrf(form.text), "next": "/ui/"}
        )
        assert answer.status_code == 303
        assert "Secure" in answer.headers["set-cookie"]
