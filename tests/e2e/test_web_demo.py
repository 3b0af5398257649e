"""Tests: the inspector's desk on the demo scenario's own data (devices, broker, gateway, rules, ledger, all
real), in Debian's chromium: sign in, find the demo lot by its scanned label, see the truck leg's door-open
excursion, switch to Chinese, download the evidence bundle and verify it offline."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import openpyxl
import psycopg
import pytest
from playwright.sync_api import Browser
from process_support import DEMO_SPEEDUP
from web_support import module_database, serve

from coldchain.demo import run_scenario, web_instructions
from coldchain.embedded import EmbeddedBroker
from firmware_sim.world import demo_world
from traceability.api.auth import create_key
from traceability.ledger import checkpoint
from traceability.ledger.bundle import verify_bundle
from traceability.web.pages import trace_url

LOT = demo_world().lots[0].lot_id
# The facts of a leg's chart, read from its SVG: plot area, limit band, shaded excursions (their x extent and
# their times) and every point (epoch ms, °C) from the chart's hover data.
CHART_FACTS = """(selector) => {
  const svg = document.querySelector(selector);
  const num = (el, a) => parseFloat(el.getAttribute(a));
  const box = (el) => ({x: num(el, "x"), w: num(el, "width")});
  const band = svg.querySelector("rect.limit-band");
  const data = JSON.parse(svg.querySelector("script.chart-data").textContent);
  return {
    plot: box(svg.querySelector("rect.plot-area")),
    band: band && {low: num(band, "data-low-c"), high: num(band, "data-high-c")},
    excursions: [...svg.querySelectorAll("rect.excursion")].map((e) => ({
      ...box(e), start: Date.parse(e.dataset.start), end: Date.parse(e.dataset.end)})),
    points: data.series.flatMap((s) => s.points),
  };
}"""
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def demo(
    pg_server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, Path]]:
    """The demo scenario played once into a database of the module's own: (base URL, operator key, key)."""
    broker = EmbeddedBroker(tmp_path_factory.mktemp("mqtt"))
    broker.start()
    key_path = tmp_path_factory.mktemp("keys") / "ledger.pem"
    try:
        with module_database(pg_server_url, template_db) as db_url:
            run_scenario(db_url, broker.address, speedup=DEMO_SPEEDUP, checkpoint_key=key_path)
            with psycopg.connect(db_url) as conn:
                key = create_key(conn, "operator", "demo --serve")
                conn.commit()
            with serve(db_url, key_path) as url:
                yield url, key, key_path
    finally:
        broker.stop()


def test_the_demo_walkthrough(browser: Browser, demo: tuple[str, str, Path]) -> None:
    url, key, key_path = demo
    label = web_instructions(url, key)[1].rsplit(" ", 1)[1]
    context = browser.new_context(base_url=url, locale="en-US", viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.goto("/")
    assert "/ui/signin" in page.url
    page.fill("#key", key)
    page.click("#signin-submit")
    page.fill("#q", label)
    page.press("#q", "Enter")
    page.wait_for_url(f"**{trace_url(LOT)}")

    truck = page.locator("section.leg[data-asset='TRUCK-GXA-12345']")
    assert truck.locator("tr.excursion").count() >= 1, "the door-open excursion on the truck leg"
    # The chart: the excursion is shaded inside the plot, over the readings that left the limit band.
    chart = page.evaluate(CHART_FACTS, "section.leg[data-asset='TRUCK-GXA-12345'] svg")
    assert chart["excursions"], "no excursion shaded on the truck leg's chart"
    assert chart["band"] is not None, "no limit band on the truck leg's chart"
    plot = chart["plot"]
    for shade in chart["excursions"]:
        assert plot["x"] <= shade["x"]
        assert shade["x"] + shade["w"] <= plot["x"] + plot["w"] + 0.5
        assert shade["w"] > 0
        inside = [v for t, v in chart["points"] if shade["start"] <= t <= shade["end"]]
        assert inside, "the shaded span holds no reading"
        assert max(inside) > chart["band"]["high"], "the shaded span holds no reading above the band"
    assert page.inner_text("#verdict-word") == "broken"
    assert "verified" in page.inner_text("#ledger-status")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-trace-en.png"), full_page=True)

    page.click("#lang-switch")
    page.wait_for_load_state()
    assert page.inner_text("#verdict-word") == "断链"
    reasons = page.locator("#verdict-reasons li").all_inner_texts()
    assert reasons
    for reason in reasons:  # the stored English reasons, read in Chinese
        assert " series " not in reason
        assert "temperature" not in reason
    page.screenshot(path=str(ARTIFACTS / "demo-trace-zh.png"), full_page=True)

    with page.expect_download() as download:
        page.click("#dl-bundle")
    bundle = Path(download.value.path()).read_bytes()
    result = verify_bundle(bundle, pinned_public_key=checkpoint.pinned_key(str(key_path)))
    assert result.ok, result.problems

    bundle_sha = hashlib.sha256(bundle).hexdigest()

    def report_of(link: str) -> bytes:
        """The report the link downloads; its headers (read again at the same URL) state the bundle
        downloaded from this page."""
        with page.expect_download() as download:
            page.click(link)
        href = page.get_attribute(link, "href")
        assert href is not None
        headers = context.request.get(urljoin(page.url, href)).headers
        assert headers["x-evidence-bundle-sha256"] == bundle_sha, link
        assert headers["link"].startswith(f"<{page.get_attribute('#dl-bundle', 'href')}>")
        return Path(download.value.path()).read_bytes()

    assert report_of("#dl-pdf").startswith(b"%PDF-")
    xlsx = io.BytesIO(report_of("#dl-xlsx"))
    events = openpyxl.load_workbook(xlsx, read_only=True).worksheets[0]
    assert events.max_row - 1 == page.locator("#evidence table.events tbody tr").count() > 0
    context.close()
