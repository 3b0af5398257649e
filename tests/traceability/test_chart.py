"""Tests: a leg's chart and GPS track SVG parse as XML for any input, and draw the limit band, each
excursion inside the plot, gaps and breaks, markers and axes in the viewer's zone (Hypothesis)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from traceability.chart import leg_chart_svg, track_svg
from traceability.i18n import gettext_for
from traceability.readings import downsample
from traceability.readings_model import AssetReadings, Marker, Point, SeriesPoints, TrackPoint
from traceability.trace_model import ChainBreak, CustodyLeg, Excursion, Limits, TemperatureSummary

NS = {"s": "http://www.w3.org/2000/svg"}
S = datetime(2026, 3, 1, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
LIMITS = Limits("chilled", "cn_food", "1.0.0", 0.0, 4.0, "test", 1800.0, 600.0)


def _summary(allowed: float | None = 600.0) -> TemperatureSummary:
    return TemperatureSummary(0, 0, None, None, None, 0, None, None, None, 0, allowed, None, None)


def _leg(
    excursions: list[Excursion] | None = None,
    breaks: list[ChainBreak] | None = None,
    t_end: datetime | None = S + timedelta(hours=6),
) -> CustodyLeg:
    return CustodyLeg(
        2, "urn:epc:id:sscc:1.1", None, None, None, S, t_end, 1, 2, _summary(), excursions or [], breaks or []
    )


def _excursion(a: datetime, b: datetime, peak: float | None = 8.5) -> Excursion:
    return Excursion(1, 1, "dev", "temp:1", "cn_food/chilled/range", "1.0.0", a, b, False, peak, 0, 4, 3)


def _readings(
    points: list[tuple[datetime, float]], device: str = "truck-1", markers: bool = True
) -> AssetReadings:
    series = [SeriesPoints(1, device, "temp:1", len(points), False, [Point(t, v) for t, v in points])]
    marks = [Marker(S + timedelta(hours=3), "door_open", device)] if markers else []
    return AssetReadings("TRUCK", S, S + timedelta(hours=6), 2000, series, marks, [])


def _parse(svg: str) -> etree._Element:
    return etree.fromstring(svg.encode())


def _plot(root: etree._Element) -> tuple[float, float]:
    plot = root.find("s:rect[@class='plot-area']", NS)
    assert plot is not None
    return float(plot.get("x")), float(plot.get("x")) + float(plot.get("width"))


def test_chart_draws_band_excursion_gap_marker_and_axes_in_the_viewers_zone() -> None:
    points = [(S + timedelta(minutes=10 * i), 8.5 if 18 <= i <= 21 else 3.0) for i in range(37)]
    leg = _leg(
        [_excursion(S + timedelta(hours=3), S + timedelta(hours=3.5))],
        [
            ChainBreak(
                1,
                "gap",
                1,
                "cn_food/chilled/gap",
                "1.0.0",
                S + timedelta(hours=4),
                S + timedelta(hours=5),
                600,
                None,
            ),
            ChainBreak(
                None,
                "handoff",
                None,
                "trace/handoff",
                "trace",
                S + timedelta(hours=5),
                S + timedelta(hours=6),
                0,
                None,
            ),
        ],
    )
    svg = leg_chart_svg(leg, _readings(points), LIMITS, _=gettext_for("zh-CN"), tz=SHANGHAI, lang="zh-CN")
    root = _parse(svg)
    assert root.get("data-tz") == "Asia/Shanghai"
    band = root.find("s:rect[@class='limit-band']", NS)
    assert band is not None
    assert (band.get("data-low-c"), band.get("data-high-c")) == ("0.0", "4.0")
    (exc,) = root.findall("s:rect[@class='excursion']", NS)
    assert (exc.get("data-start"), exc.get("data-end"), exc.get("data-peak-c")) == (
        "2026-03-01T03:00:00Z",
        "2026-03-01T03:30:00Z",
        "8.5",
    )
    x0, x1 = _plot(root)
    ex = float(exc.get("x"))
    # 3 h into a 6 h leg: the shading starts half-way across the plot and lasts a twelfth of it.
    assert abs(ex - (x0 + (x1 - x0) / 2)) < 1
    assert abs(float(exc.get("width")) - (x1 - x0) / 12) < 1
    assert len(root.findall("s:rect[@class='gap']", NS)) == 1
    assert len(root.findall("s:rect[@class='chain-break']", NS)) == 1
    (marker,) = root.findall("s:g[@class='marker']", NS)
    assert marker.get("data-kind") == "door_open"
    assert "门开启" in "".join(marker.itertext())
    texts = "".join(root.itertext())
    assert "时间（Asia/Shanghai）" in texts
    assert "温度（°C）" in texts
    # The first time tick is 08:00 in Shanghai (00:00 UTC), dated.
    first_tick = root.find("s:g[@class='axis axis-time']/s:text", NS)
    assert first_tick is not None
    assert first_tick.text == "03-01 08:00"
    data = json.loads(root.find("s:script[@class='chart-data']", NS).text)
    assert data["series"][0]["points"][0] == [int(S.timestamp() * 1000), 3.0]


def test_static_chart_has_no_script_and_empty_readings_say_so() -> None:
    svg = leg_chart_svg(
        _leg(), None, LIMITS, _=gettext_for("en"), tz=ZoneInfo("UTC"), lang="en", interactive=False
    )
    root = _parse(svg)
    assert root.find("s:script", NS) is None
    assert root.find("s:text[@class='no-evidence']", NS).text == "no temperature evidence"
    zh = leg_chart_svg(
        _leg(), _readings([], markers=False), None, _=gettext_for("zh-CN"), tz=SHANGHAI, lang="zh-CN"
    )
    assert _parse(zh).find("s:text[@class='no-evidence']", NS).text == "无温度证据"
    assert _parse(zh).find("s:rect[@class='limit-band']", NS) is None  # no class, no band


def test_track_is_a_polyline_or_says_there_is_none() -> None:
    track = [TrackPoint(S, 21.95, 108.62), TrackPoint(S + timedelta(hours=2), 22.82, 108.32)]
    readings = AssetReadings("TRUCK", S, S + timedelta(hours=2), 2000, [], [], track)
    root = _parse(track_svg(readings, _=gettext_for("en"), leg_id=2))
    line = root.find("s:polyline[@class='track-line']", NS)
    assert line is not None
    assert len(line.get("points").split()) == 2
    start = root.find("s:circle[@class='track-start']", NS)
    end = root.find("s:circle[@class='track-end']", NS)
    assert float(end.get("cy")) < float(start.get("cy"))  # north is up
    none = _parse(track_svg(None, _=gettext_for("zh-CN")))
    assert none.find("s:text[@class='no-track']", NS).text == "无 GPS 轨迹"

    assert root.find(".//s:image", NS) is None  # no tile URL: nothing is loaded


@given(
    st.lists(
        st.tuples(st.floats(min_value=-80, max_value=80), st.floats(min_value=-179.9, max_value=179.9)),
        min_size=1,
        max_size=30,
    )
)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_a_track_on_map_tiles_lies_inside_its_frame_over_tiles_of_one_zoom(
    positions: list[tuple[float, float]],
) -> None:
    track = [TrackPoint(S + timedelta(minutes=i), lat, lon) for i, (lat, lon) in enumerate(positions)]
    readings = AssetReadings("TRUCK", S, S + timedelta(hours=1), 2000, [], [], track)
    url = "https://tiles.example/{z}/{x}/{y}.png"
    root = _parse(track_svg(readings, _=gettext_for("en"), leg_id=1, tile_url=url, width=420, height=300))
    tiles = root.findall(".//s:image[@class='tile']", NS)
    assert tiles, "no map tile under the track"
    zooms = {t.get("href").split("/")[3] for t in tiles}
    assert len(zooms) == 1
    for tile in tiles:  # every tile touches the frame
        x, y = float(tile.get("x")), float(tile.get("y"))
        assert -256 < x < 420
        assert -256 < y < 300
    line = root.find("s:polyline[@class='track-line']", NS)
    for point in line.get("points").split():
        x, y = (float(c) for c in point.split(","))
        assert 0 <= x <= 420
        assert 0 <= y <= 300


def test_tiles_are_the_ones_under_a_known_position() -> None:
    # Qinzhou port (21.68 N, 108.62 E) at zoom 18: tile x 210 166, y 114 894 (the OpenStreetMap wiki's
    # slippy-map tile numbers; a single position is drawn at the largest zoom).
    readings = AssetReadings("TRUCK", S, S, 2000, [], [], [TrackPoint(S, 21.68, 108.62)])
    root = _parse(track_svg(readings, _=gettext_for("en"), tile_url="https://t/{z}/{x}/{y}.png"))
    hrefs = {t.get("href") for t in root.findall(".//s:image[@class='tile']", NS)}
    assert "https://t/18/210166/114894.png" in hrefs


times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
any_text = st.text(max_size=20)


@st.composite
def legs(draw: st.DrawFn) -> tuple[CustodyLeg, AssetReadings | None, Limits | None]:
    t0 = draw(times)
    hours = draw(st.floats(min_value=0, max_value=24 * 60))
    t_end = draw(st.one_of(st.none(), st.just(t0 + timedelta(hours=hours))))

    def when() -> datetime:
        return draw(times) if draw(st.booleans()) else t0 + timedelta(hours=draw(st.floats(-10, 24 * 70)))

    excursions = []
    for _ in range(draw(st.integers(0, 4))):
        a, b = sorted([when(), when()])
        excursions.append(_excursion(a, b, draw(st.one_of(st.none(), values))))
    breaks = []
    for _ in range(draw(st.integers(0, 3))):
        a, b = sorted([when(), when()])
        breaks.append(ChainBreak(None, draw(any_text), None, draw(any_text), "x", a, b, 0, None))
    leg = CustodyLeg(
        7,
        draw(any_text),
        None,
        None,
        None,
        t0,
        t_end,
        1,
        None,
        _summary(draw(st.one_of(st.none(), st.floats(1, 1e6)))),
        excursions,
        breaks,
    )
    readings = None
    if draw(st.booleans()):
        pts = sorted(draw(st.lists(st.tuples(times, values), max_size=30)))
        readings = AssetReadings(
            draw(any_text),
            t0,
            t0 + timedelta(hours=1),
            2000,
            [SeriesPoints(1, draw(any_text), draw(any_text), len(pts), False, [Point(t, v) for t, v in pts])],
            [Marker(when(), "power_off", draw(any_text)) for _ in range(draw(st.integers(0, 3)))],
            [
                TrackPoint(when(), draw(st.floats(-90, 90)), draw(st.floats(-180, 180)))
                for _ in range(draw(st.integers(0, 5)))
            ],
        )
    limits = None
    if draw(st.booleans()):
        lo, hi = draw(st.one_of(st.none(), values)), draw(st.one_of(st.none(), values))
        limits = Limits("c", "p", "1", lo, hi, draw(any_text), None, None)
    return leg, readings, limits


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    legs(),
    st.sampled_from(["zh-CN", "en"]),
    st.booleans(),
    st.sampled_from(["UTC", "Asia/Shanghai", "America/New_York"]),
)
def test_any_leg_gives_xml_with_every_excursion_inside_the_plot(
    case: tuple[CustodyLeg, AssetReadings | None, Limits | None], lang: str, interactive: bool, tz: str
) -> None:
    leg, readings, limits = case
    svg = leg_chart_svg(
        leg,
        readings,
        limits,
        _=gettext_for(lang),
        tz=ZoneInfo(tz),
        lang=lang,  # type: ignore[arg-type]
        interactive=interactive,
    )
    root = _parse(svg)
    x0, x1 = _plot(root)
    rects = root.findall("s:rect[@class='excursion']", NS)
    assert len(rects) == len(leg.excursions)
    for r in (
        rects + root.findall("s:rect[@class='gap']", NS) + root.findall("s:rect[@class='chain-break']", NS)
    ):
        x, w = float(r.get("x")), float(r.get("width"))
        assert x0 <= x
        assert x + w <= x1 + 1e-6
        assert w >= 0
    if interactive:
        json.loads(root.find("s:script[@class='chart-data']", NS).text)
    _parse(track_svg(readings, _=gettext_for(lang), leg_id=leg.leg_id))


def _month_of_minutes(hole: bool) -> AssetReadings:
    """30 days of 1-minute readings (optionally with a 2-hour hole), downsampled as the readings API does."""
    t_ms = np.arange(30 * 24 * 60, dtype=np.int64) * 60_000 + int(S.timestamp() * 1000)
    if hole:
        t_ms = t_ms[(t_ms < t_ms[20_000]) | (t_ms >= t_ms[20_120])]
    v = 2.0 + np.sin(np.arange(t_ms.size) / 500.0)
    kept = downsample(t_ms, v, 2000)
    points = [Point(datetime.fromtimestamp(t_ms[i] / 1000, UTC), float(v[i])) for i in kept]
    series = [SeriesPoints(1, "truck-1", "temp:1", int(t_ms.size), True, points)]
    return AssetReadings("TRUCK", S, S + timedelta(days=30), 2000, series, [], [])


def test_a_downsampled_month_is_one_line_broken_only_where_readings_are_missing() -> None:
    leg = _leg(t_end=S + timedelta(days=30))  # allowed recording interval 600 s
    for hole, pieces in ((False, 1), (True, 2)):
        svg = leg_chart_svg(leg, _month_of_minutes(hole), LIMITS, _=gettext_for("en"), tz=SHANGHAI, lang="en")
        path = _parse(svg).find("s:path[@class='series']", NS)
        assert path is not None
        assert path.get("d").count("M") == pieces
        assert path.get("d").count("L") > 1900
