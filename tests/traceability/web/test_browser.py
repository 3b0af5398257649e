"""Tests: the inspector's desk in a real browser (Debian chromium through Playwright) against the real app,
uvicorn and PostgreSQL: sign-in, search by every identifier kind, language switch, alarms by role, CSRF,
the public scan page, layout at 1366×768 and on a tablet. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page
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

from traceability.web.pages import trace_url

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
DESKTOP = {"width": 1366, "height": 768}
TABLET = {"width": 820, "height": 1180}
# The elements that carry the pages' labels.
LABELS = "label, th, dt, h2, h3, h4, summary, button, nav a, .downloads a, footer p"


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def new_context(browser: Browser, base: str, lang: str = "en-US", **kwargs: Any) -> BrowserContext:
    return browser.new_context(base_url=base, locale=lang, viewport=DESKTOP, **kwargs)  # type: ignore[arg-type]


def sign_in(page: Page, key: str) -> None:
    page.fill("#key", key)
    page.click("#signin-submit")


@pytest.fixture
def inspector(browser: Browser, served: str, desk: Desk) -> Iterator[Page]:
    context = new_context(browser, served)
    page = context.new_page()
    page.goto("/ui/signin")
    sign_in(page, desk.inspector_key)
    yield page
    context.close()


def labels(page: Page) -> list[str]:
    texts: list[str] = page.eval_on_selector_all(
        LABELS, "els => els.filter(e => e.offsetParent !== null).map(e => e.innerText.trim())"
    )
    return texts


def assert_controls_labelled(page: Page) -> None:
    unlabelled = page.eval_on_selector_all(
        "input:not([type=hidden]), select, textarea, button",
        """els => els.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                 && !(e.tagName === 'BUTTON' && e.innerText.trim())).map(e => e.outerHTML)""",
    )
    assert unlabelled == []


def assert_fits(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the window"


def test_not_signed_in_is_sent_to_sign_in_and_back(browser: Browser, served: str, desk: Desk) -> None:
    context = new_context(browser, served)
    page = context.new_page()
    page.goto(trace_url(LOT))
    assert "/ui/signin?next=" in page.url
    assert_controls_labelled(page)
    shot(page, "signin")
    sign_in(page, desk.inspector_key)
    page.wait_for_url(f"**{trace_url(LOT)}")
    assert page.inner_text("#lot-title").endswith(LOT)
    context.close()


@pytest.mark.parametrize(
    ("query", "lot"),
    [
        pytest.param(LOT, LOT, id="lot-id"),
        pytest.param(SSCC, LOT, id="sscc-epc"),
        pytest.param(SCANNED, LOT, id="element-string"),
        pytest.param("]d2010690123412345610QZ2611A\x1d", LOT, id="raw-datamatrix"),
        pytest.param("https://id.gs1.org/01/06901234123456/10/QZ2611A", LOT, id="digital-link"),
        pytest.param(CONTAINER, SEA_LOT_2, id="container"),
        pytest.param(BILL_OF_LADING, SEA_LOT, id="bill-of-lading"),
        pytest.param(RAIL_WAYBILL, SEA_LOT_2, id="rail-waybill"),
    ],
)
def test_search_by_each_identifier_kind(inspector: Page, query: str, lot: str) -> None:
    inspector.goto("/ui/")
    inspector.fill("#q", query)
    inspector.press("#q", "Enter")
    inspector.wait_for_load_state()
    if lot.startswith(SEA_LOT.rsplit(".", 1)[0]):  # the sea pallet's two lots: a choice
        assert inspector.locator("#choices a").all_inner_texts() == [SEA_LOT, SEA_LOT_2]
        shot(inspector, "search-choice")
        inspector.click(f"#choices a:text-is('{lot}')")
    inspector.wait_for_url(f"**{trace_url(lot)}")
    assert inspector.get_attribute("article.trace", "data-lot") == lot


def test_search_for_nothing_says_so(inspector: Page) -> None:
    inspector.goto("/ui/")
    inspector.fill("#q", "NO-SUCH-LOT")
    inspector.press("#q", "Enter")
    assert inspector.inner_text("#not-found") == "Nothing was found for this identifier."


def test_trace_page_and_the_language_switch(inspector: Page) -> None:
    inspector.goto(trace_url(LOT))
    assert inspector.get_attribute("html", "lang") == "en"
    assert inspector.locator("tr.excursion").count() == 1
    assert "8.5 °C" in inspector.inner_text("tr.excursion")
    assert "verified" in inspector.inner_text("#ledger-status")
    assert "UTC" in inspector.inner_text("#custody")
    assert_controls_labelled(inspector)
    assert_fits(inspector)
    shot(inspector, "trace-en")
    english = labels(inspector)

    inspector.click("#lang-switch")
    inspector.wait_for_load_state()
    assert inspector.get_attribute("html", "lang") == "zh-CN"
    chinese = labels(inspector)
    assert len(chinese) == len(english)
    unchanged = [e for e, z in zip(english, chinese, strict=True) if re.search("[A-Za-z]", e) and e == z]
    assert unchanged == [], "every label is translated"
    assert "Asia/Shanghai" in inspector.inner_text("#custody"), "zh-CN: Beijing time by default"
    assert inspector.inner_text("#verdict-word") == "断链"
    shot(inspector, "trace-zh")

    inspector.select_option("#zone-select", "Asia/Bangkok")
    inspector.click(".zone button")
    inspector.wait_for_load_state()
    assert "Asia/Bangkok" in inspector.inner_text("#custody")
    inspector.select_option("#zone-select", "UTC")
    inspector.click(".zone button")
    inspector.click("#lang-switch")
    inspector.wait_for_load_state()
    assert inspector.get_attribute("html", "lang") == "en"


def test_trace_page_on_a_tablet(inspector: Page) -> None:
    inspector.set_viewport_size(TABLET)
    inspector.goto(trace_url(SEA_LOT))
    assert_fits(inspector)
    shot(inspector, "trace-tablet")


def test_keyboard_reaches_the_search_box(inspector: Page) -> None:
    inspector.goto("/ui/trace/" + LOT)
    inspector.keyboard.press("Tab")
    assert inspector.evaluate("document.activeElement.className") == "skip"
    inspector.keyboard.press("Enter")
    assert inspector.evaluate("document.activeElement.id") == "main"
    inspector.goto("/ui/")
    assert inspector.evaluate("document.activeElement.id") == "q", "the search box has the focus"
    inspector.keyboard.type(SCANNED)
    inspector.keyboard.press("Enter")
    inspector.wait_for_url(f"**{trace_url(LOT)}")


def test_an_operator_acknowledges_an_inspector_is_refused(
    browser: Browser, served: str, desk: Desk, inspector: Page
) -> None:
    context = new_context(browser, served)
    operator = context.new_page()
    operator.goto("/ui/alarms")
    sign_in(operator, desk.operator_key)
    operator.wait_for_url("**/ui/alarms")
    row = operator.locator(f"#alarm-{desk.alarm_id}")
    assert row.locator(".state").inner_text() == "open"
    assert_controls_labelled(operator)
    shot(operator, "alarms")
    row.locator("input[name=note]").fill("door closed, load checked")
    row.locator("button.ack").click()
    operator.wait_for_load_state()
    operator.select_option("#f-state", "acknowledged")
    operator.click("#filter-submit")
    row = operator.locator(f"#alarm-{desk.alarm_id}")
    assert row.locator(".state").inner_text() == "acknowledged"
    assert "door closed, load checked" in row.inner_text()
    context.close()

    inspector.goto("/ui/alarms")
    assert "may not" in inspector.inner_text("#error-message")
    csrf = inspector.get_attribute("form.signout input[name=csrf]", "value")
    assert csrf
    refused = inspector.request.post(
        f"/ui/alarms/{desk.alarm_id}/resolve", form={"csrf": csrf, "note": "not mine"}
    )
    assert refused.status == 403


def test_a_post_without_its_csrf_token_is_refused(inspector: Page) -> None:
    inspector.goto("/ui/")
    response = inspector.request.post("/ui/signout", form={})
    assert response.status == 403
    assert 'id="error-message"' in response.text()
    inspector.goto("/ui/")
    assert inspector.url.endswith("/ui/"), "the session survives a forged POST"


def test_scan_page_shows_no_temperature_or_party(browser: Browser, served: str) -> None:
    context = new_context(browser, served, lang="zh-CN")
    page = context.new_page()
    page.goto("/scan/" + SCANNED)
    text = page.inner_text("body")
    assert "Chilled white shrimp" in text
    assert "Nanning market" in text
    assert "原产国" in text
    assert "°C" not in text
    assert not re.search(r"[0-9a-f]{64}", page.content())
    for party in ("Qinzhou Bonded Zone Cold Store", "Beibu Gulf", "Haijixing", "6901234000"):
        assert party not in page.content()
    assert_fits(page)
    shot(page, "scan-zh")
    context.close()
