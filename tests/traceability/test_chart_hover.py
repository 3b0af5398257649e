"""Tests: static/chart.js in Debian's chromium: hovering a leg chart shows the time in the chart's zone,
with the zone named, and each probe's value in °C; the arrow keys do the same from the keyboard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.sync_api import Browser

import traceability
from traceability.chart import leg_chart_svg
from traceability.i18n import gettext_for
from traceability.readings_model import AssetReadings, Point, SeriesPoints
from traceability.trace_model import CustodyLeg, Limits, TemperatureSummary

CHART_JS = Path(traceability.__file__).parent / "web" / "static" / "chart.js"
S = datetime(2026, 3, 1, tzinfo=UTC)


def _page_html() -> str:
    summary = TemperatureSummary(0, 0, None, None, None, 0, None, None, None, 0, 600.0, None, None)
    leg = CustodyLeg(2, "sscc", None, None, None, S, S + timedelta(hours=6), 1, 2, summary, [], [])
    points = [Point(S + timedelta(minutes=10 * i), 8.5 if 18 <= i <= 21 else 3.0) for i in range(37)]
    readings = AssetReadings(
        "TRUCK",
        S,
        S + timedelta(hours=6),
        2000,
        [SeriesPoints(1, "truck-1", "temp:1", 37, False, points)],
        [],
        [],
    )
    limits = Limits("chilled", "cn_food", "1.0.0", 0.0, 4.0, "test", 1800.0, 600.0)
    svg = leg_chart_svg(
        leg, readings, limits, _=gettext_for("zh-CN"), tz=ZoneInfo("Asia/Shanghai"), lang="zh-CN"
    )
    return f"<!DOCTYPE html><html><body>{svg}<script>{CHART_JS.read_text()}</script></body></html>"


def test_hover_shows_time_in_the_charts_zone_and_the_value(browser: Browser, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1000, "height": 400}, timezone_id="Europe/Paris")
    page.set_content(_page_html())
    chart = page.locator("svg.leg-chart")
    box = chart.bounding_box()
    assert box is not None
    # Half-way across the plot (x 58 .. 884 of 900): 3 h into the leg, 03:00 UTC, 11:00 in Shanghai.
    page.mouse.move(box["x"] + 58 + (884 - 58) / 2, box["y"] + 100)
    hover = page.locator("svg.leg-chart g.hover")
    assert hover.get_attribute("visibility") == "visible"
    text = hover.locator("text").text_content() or ""
    assert "11:00:00" in text
    assert "Asia/Shanghai" in text
    assert "truck-1/temp:1: 8.5 °C" in text
    page.screenshot(path=str(tmp_path / "chart-hover.png"))
    page.mouse.move(box["x"] + 890, box["y"] + 390)  # off the plot: hidden
    assert hover.get_attribute("visibility") == "hidden"
    chart.focus()
    page.keyboard.press("ArrowRight")
    # From the start of the leg, one step (a fiftieth of it) on: 08:07:12 in Shanghai, the 08:10 reading.
    label = chart.get_attribute("aria-label") or ""
    assert "08:07:12 Asia/Shanghai" in label
    assert "truck-1/temp:1: 3.0 °C" in label
    page.close()
