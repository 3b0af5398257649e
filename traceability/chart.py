"""Stage 3 (faces): a custody leg's temperature chart and GPS track as self-contained inline SVG, drawn
from the ``Trace`` and the leg's readings; the same SVG serves the trace page (interactive) and the PDF.

Pure: no I/O. Every text and attribute is escaped, so any device id, channel or label is safe. The chart
names what it draws by class, for the pages' tests and scripts: ``plot-area``, ``series``, ``limit-band``
(``data-low-c``/``data-high-c``), ``excursion`` (``data-start``/``data-end`` UTC ISO 8601,
``data-peak-c``), ``gap`` and ``chain-break`` spans, ``marker`` (``data-kind``), ``axis``, ``legend``.
With ``interactive=True`` it carries its points as JSON (``script.chart-data``) for ``static/chart.js``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

from traceability.i18n import Gettext, Lang, format_time
from traceability.i18n.words import number
from traceability.readings import bucket_width
from traceability.readings_model import AssetReadings, MarkerKind, SeriesPoints
from traceability.trace_model import CustodyLeg, Limits

# Series colours (colour-blind safe, Okabe–Ito), then repeated.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000")
MARKER_COLOURS: dict[str, str] = {
    "door_open": "#C0392B",
    "door_closed": "#7F8C8D",
    "power_off": "#8E44AD",
    "power_on": "#7F8C8D",
    "defrost_start": "#2471A3",
    "defrost_end": "#7F8C8D",
}
# Candidate time-tick steps, smallest first.
_TICK_STEPS = tuple(
    timedelta(minutes=m)
    for m in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080, 20160, 43200)
)
# Chart labels (common domain), written out so that catalog checks see every one.
MARKER_LABELS: dict[MarkerKind, str] = {
    "door_open": "door open",
    "door_closed": "door closed",
    "power_off": "power off",
    "power_on": "power on",
    "defrost_start": "defrost start",
    "defrost_end": "defrost end",
}
CHART_MSGIDS = (
    "Temperature (°C)",
    "Time ({zone})",
    "limit band",
    "excursion",
    "gap",
    "chain break",
    "no temperature evidence",
    "Temperature chart of custody leg {leg}",
    "GPS track of custody leg {leg}",
    "no GPS track",
    "start",
    "end",
    *MARKER_LABELS.values(),
)


@dataclass(frozen=True, slots=True)
class Frame:
    """The plot area inside the SVG (pixels) and the time and °C ranges it maps."""

    x: float
    y: float
    w: float
    h: float
    t0: datetime
    t1: datetime
    v0: float
    v1: float

    def px(self, t: datetime) -> float:
        span = (self.t1 - self.t0).total_seconds()
        f = (t - self.t0).total_seconds() / span if span > 0 else 0.5
        return round(self.x + min(1.0, max(0.0, f)) * self.w, 2)

    def py(self, v: float) -> float:
        f = (v - self.v0) / (self.v1 - self.v0)
        return round(self.y + self.h - min(1.0, max(0.0, f)) * self.h, 2)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


# Characters XML 1.0 cannot hold (C0 controls but tab, newline and return; lone surrogates; U+FFFE/F).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _t(text: str, quote: bool = False) -> str:
    """Text escaped for XML and HTML alike, without the characters XML cannot hold."""
    return escape(_NOT_XML.sub("\ufffd", text), quote=quote)


def _a(value: object) -> str:
    """An attribute value, escaped (quotes included)."""
    return _t(str(value), quote=True)


def _series_label(s: SeriesPoints) -> str:
    return f"{s.device_id}/{s.channel}"


def _window(leg: CustodyLeg, readings: AssetReadings | None) -> tuple[datetime, datetime]:
    """The leg's time window; an open leg ends at its last reading (or the readings' window)."""
    t0 = leg.t_start
    t1 = leg.t_end
    if t1 is None:
        ends = [p.t for s in (readings.temperature if readings else []) for p in s.points[-1:]]
        if leg.temperature.last_reading is not None:
            ends.append(leg.temperature.last_reading)
        t1 = max(ends) if ends else (readings.t_to if readings else t0 + timedelta(hours=1))
    if t1 <= t0:
        t1 = t0 + timedelta(minutes=1)
    return t0, t1


def _value_range(
    leg: CustodyLeg, readings: AssetReadings | None, limits: Limits | None
) -> tuple[float, float]:
    values = [p.v for s in (readings.temperature if readings else []) for p in s.points if math.isfinite(p.v)]
    for x in (limits.low_c, limits.high_c) if limits else ():
        if x is not None:
            values.append(x)
    values.extend(e.peak_c for e in leg.excursions if e.peak_c is not None and math.isfinite(e.peak_c))
    if not values:
        return 0.0, 10.0
    lo, hi = min(values), max(values)
    pad = max(1.0, (hi - lo) * 0.08)
    return math.floor(lo - pad), math.ceil(hi + pad)


def _nice_step(span: float, target: int) -> float:
    raw = span / max(1, target)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def _time_ticks(t0: datetime, t1: datetime, tz: ZoneInfo, target: int) -> list[datetime]:
    span = t1 - t0
    step = next((s for s in _TICK_STEPS if span / s <= target), _TICK_STEPS[-1])
    local0 = t0.astimezone(tz)
    if step >= timedelta(days=1):
        first = local0.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        minutes = int(step.total_seconds() // 60)
        midnight = local0.replace(hour=0, minute=0, second=0, microsecond=0)
        since = int((local0 - midnight).total_seconds() // 60)
        first = midnight + timedelta(minutes=(since // minutes) * minutes)
    ticks: list[datetime] = []
    t = first
    while t <= t1 and len(ticks) < 100:
        if t >= t0:
            ticks.append(t.astimezone(UTC))
        t = (t.astimezone(UTC) + step).astimezone(tz)
    return ticks


def _tick_label(t: datetime, previous: datetime | None, tz: ZoneInfo, lang: Lang) -> str:
    """HH:mm, with the date when the day changes (or on the first tick)."""
    full = format_time(t, lang, tz)  # "yyyy-MM-dd HH:mm Zone"
    date, clock = full.split(" ")[0], full.split(" ")[1]
    if previous is None or previous.astimezone(tz).date() != t.astimezone(tz).date():
        return f"{date[5:]} {clock}"
    return clock


def leg_chart_svg(
    leg: CustodyLeg,
    readings: AssetReadings | None,
    limits: Limits | None,
    *,
    _: Gettext,
    tz: ZoneInfo,
    lang: Lang,
    width: int = 900,
    height: int = 280,
    interactive: bool = True,
) -> str:
    """The leg's temperature chart: one polyline per series, the class's limit band, each excursion
    shaded over its time range, gaps and chain breaks hatched, door / power / defrost markers, time axis
    in ``tz`` (named in its title), °C axis and legend; a message when there is no temperature evidence."""
    t0, t1 = _window(leg, readings)
    v0, v1 = _value_range(leg, readings, limits)
    frame = Frame(
        x=58.0,
        y=14.0,
        w=max(10.0, width - 58.0 - 16.0),
        h=max(10.0, height - 14.0 - 70.0),
        t0=t0,
        t1=t1,
        v0=v0,
        v1=v1,
    )
    uid = f"leg{leg.leg_id}"
    title = _("Temperature chart of custody leg {leg}").format(leg=leg.leg_id)
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="leg-chart" role="img" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}" data-leg-id="{leg.leg_id}" data-tz="{_a(tz.key)}"'
        f' data-lang="{_a(lang)}" data-t0="{_iso(t0)}" data-t1="{_iso(t1)}"'
        f' data-interactive="{"true" if interactive else "false"}"'
        f' font-family="Noto Sans CJK SC, Noto Sans, sans-serif" font-size="11">',
        f"<title>{_t(title)}</title>",
        "<defs>"
        f'<pattern id="{uid}-hatch" patternUnits="userSpaceOnUse" width="6" height="6"'
        ' patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#888" stroke-width="2"/>'
        "</pattern>"
        f'<pattern id="{uid}-hatch-break" patternUnits="userSpaceOnUse" width="6" height="6"'
        ' patternTransform="rotate(-45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#B03A2E"'
        ' stroke-width="2"/></pattern>'
        "</defs>",
        f'<rect class="plot-area" x="{frame.x}" y="{frame.y}" width="{frame.w}" height="{frame.h}"'
        ' fill="#FFFFFF" stroke="#999"/>',
    ]
    series = readings.temperature if readings else []
    has_points = any(s.points for s in series)
    # limit band
    if limits is not None and (limits.low_c is not None or limits.high_c is not None):
        lo = limits.low_c if limits.low_c is not None else v0
        hi = limits.high_c if limits.high_c is not None else v1
        y_hi, y_lo = frame.py(hi), frame.py(lo)
        out.append(
            f'<rect class="limit-band" x="{frame.x}" y="{y_hi}" width="{frame.w}"'
            f' height="{round(max(0.0, y_lo - y_hi), 2)}" fill="#2ECC71" fill-opacity="0.12"'
            f' stroke="#27AE60" stroke-dasharray="4 3" stroke-width="0.8"'
            f' data-low-c="{_a("" if limits.low_c is None else limits.low_c)}"'
            f' data-high-c="{_a("" if limits.high_c is None else limits.high_c)}"/>'
        )
    # excursions
    for e in leg.excursions:
        xa, xb = frame.px(e.start_time), frame.px(e.end_time)
        out.append(
            f'<rect class="excursion" x="{xa}" y="{frame.y}" width="{round(max(1.0, xb - xa), 2)}"'
            f' height="{frame.h}" fill="#E74C3C" fill-opacity="0.18"'
            f' data-start="{_iso(e.start_time)}" data-end="{_iso(e.end_time)}"'
            f' data-peak-c="{_a("" if e.peak_c is None else e.peak_c)}" data-rule="{_a(e.rule_id)}">'
            f"<title>{_t(_('excursion'))}: {_t(format_time(e.start_time, lang, tz))} – "
            f"{_t(format_time(e.end_time, lang, tz))}</title></rect>"
        )
        if xa + max(1.0, xb - xa) > frame.x + frame.w:  # clamp the 1 px minimum inside the plot
            out[-1] = out[-1].replace(f'x="{xa}"', f'x="{round(frame.x + frame.w - 1.0, 2)}"', 1)
    # gaps and chain breaks
    for b in leg.chain_breaks:
        cls = "gap" if b.kind == "gap" else "chain-break"
        fill = f"url(#{uid}-hatch)" if cls == "gap" else f"url(#{uid}-hatch-break)"
        xa, xb = frame.px(b.start_time), frame.px(b.end_time)
        label = _("gap") if cls == "gap" else _("chain break")
        out.append(
            f'<rect class="{cls}" x="{xa}" y="{frame.y}" width="{round(max(0.0, xb - xa), 2)}"'
            f' height="{frame.h}" fill="{fill}" fill-opacity="0.5" data-kind="{_a(b.kind)}"'
            f' data-start="{_iso(b.start_time)}" data-end="{_iso(b.end_time)}" data-rule="{_a(b.rule_id)}">'
            f"<title>{_t(label)}: {_t(format_time(b.start_time, lang, tz))} – "
            f"{_t(format_time(b.end_time, lang, tz))}</title></rect>"
        )
    # axes
    out.extend(_axes(frame, tz, lang, _))
    # series
    for i, s in enumerate(series):
        if not s.points:
            continue
        colour = COLOURS[i % len(COLOURS)]
        d = _path(frame, s, leg.temperature.allowed_gap_s, readings.max_points if readings else len(s.points))
        out.append(
            f'<path class="series" d="{d}" fill="none" stroke="{colour}" stroke-width="1.4"'
            f' stroke-linejoin="round" data-series-id="{s.series_id}" data-label="{_a(_series_label(s))}"/>'
        )
    # markers
    for m in readings.markers if readings else []:
        if not t0 <= m.t <= t1:
            continue
        x = frame.px(m.t)
        colour = MARKER_COLOURS.get(m.kind, "#555")
        text = _(MARKER_LABELS.get(m.kind, m.kind))
        out.append(
            f'<g class="marker" data-kind="{_a(m.kind)}" data-t="{_iso(m.t)}">'
            f'<line x1="{x}" y1="{frame.y}" x2="{x}" y2="{frame.y + 10}" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{x + 2}" y="{frame.y + 9}" font-size="8" fill="{colour}">{_t(text)}</text>'
            f"<title>{_t(text)} · {_t(m.device_id)} · {_t(format_time(m.t, lang, tz))}</title>"
            "</g>"
        )
    if not has_points:
        out.append(
            f'<text class="no-evidence" x="{frame.x + frame.w / 2}" y="{frame.y + frame.h / 2}"'
            f' text-anchor="middle" font-size="14" fill="#666">{_t(_("no temperature evidence"))}</text>'
        )
    out.append(_legend(frame, series, limits, leg, height, _))
    if interactive:
        out.append(_chart_data(frame, series))
    out.append("</svg>")
    return "".join(out)


def _path(frame: Frame, s: SeriesPoints, allowed_gap_s: float | None, max_points: int) -> str:
    """The series as one path, lifted over every interval longer than the allowed recording interval. In a
    downsampled series two drawn neighbours stand up to two buckets apart with no gap between them, so
    there the path is lifted only over an interval longer than two buckets as well."""
    finite = [p for p in s.points if math.isfinite(p.v)]
    limit_s = allowed_gap_s
    if limit_s is not None and s.downsampled and len(finite) > 1:
        first_ms, last_ms = (int(p.t.timestamp() * 1000) for p in (finite[0], finite[-1]))
        two_buckets_s = 2 * bucket_width(first_ms, last_ms, max(1, max_points // 2)) / 1000
        limit_s = max(limit_s, two_buckets_s * 1.01 + 1)
    parts: list[str] = []
    previous: datetime | None = None
    for p in finite:
        jump = previous is None or (limit_s is not None and (p.t - previous).total_seconds() > limit_s)
        parts.append(f"{'M' if jump else 'L'}{frame.px(p.t)},{frame.py(p.v)}")
        previous = p.t
    return " ".join(parts)


def _text_width(label: str) -> float:
    """A label's approximate width in pixels at 11 px (CJK characters are full width)."""
    return sum(11.0 if ord(c) >= 0x2E80 else 6.5 for c in label)


def _axes(frame: Frame, tz: ZoneInfo, lang: Lang, _: Gettext) -> list[str]:
    out = ['<g class="axis axis-time" fill="#333">']
    target = max(2, int(frame.w // 110))
    previous: datetime | None = None
    bottom = frame.y + frame.h
    for t in _time_ticks(frame.t0, frame.t1, tz, target):
        x = frame.px(t)
        out.append(
            f'<line x1="{x}" y1="{bottom}" x2="{x}" y2="{bottom + 4}" stroke="#666"/>'
            f'<line x1="{x}" y1="{frame.y}" x2="{x}" y2="{bottom}" stroke="#EEE"/>'
            f'<text x="{x}" y="{bottom + 15}" text-anchor="middle" data-t="{_iso(t)}">'
            f"{_t(_tick_label(t, previous, tz, lang))}</text>"
        )
        previous = t
    axis_title = _("Time ({zone})").format(zone=tz.key)
    out.append(
        f'<text class="axis-title" x="{frame.x + frame.w / 2}" y="{bottom + 30}" text-anchor="middle">'
        f"{_t(axis_title)}</text></g>"
    )
    out.append('<g class="axis axis-temperature" fill="#333">')
    step = _nice_step(frame.v1 - frame.v0, max(2, int(frame.h // 30)))
    v = math.ceil(frame.v0 / step) * step
    while v <= frame.v1 + 1e-9:
        y = frame.py(v)
        out.append(
            f'<line x1="{frame.x - 4}" y1="{y}" x2="{frame.x}" y2="{y}" stroke="#666"/>'
            f'<text x="{frame.x - 6}" y="{y + 3.5}" text-anchor="end">{number(v)}</text>'
        )
        v += step
    cy = frame.y + frame.h / 2
    out.append(
        f'<text class="axis-title" x="14" y="{cy}" text-anchor="middle" transform="rotate(-90 14 {cy})">'
        f"{_t(_('Temperature (°C)'))}</text></g>"
    )
    return out


def _legend(
    frame: Frame, series: list[SeriesPoints], limits: Limits | None, leg: CustodyLeg, height: int, _: Gettext
) -> str:
    items: list[tuple[str, str]] = []  # (swatch svg, label)
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        items.append(
            (f'<line x1="0" y1="-4" x2="14" y2="-4" stroke="{colour}" stroke-width="2"/>', _series_label(s))
        )
    if limits is not None and (limits.low_c is not None or limits.high_c is not None):
        band = f"{number(limits.low_c)}…" + (number(limits.high_c))
        items.append(
            (
                '<rect x="0" y="-9" width="14" height="9" fill="#2ECC71" fill-opacity="0.3"/>',
                f"{_('limit band')} {band} °C",
            )
        )
    if leg.excursions:
        items.append(
            ('<rect x="0" y="-9" width="14" height="9" fill="#E74C3C" fill-opacity="0.35"/>', _("excursion"))
        )
    uid = f"leg{leg.leg_id}"
    if any(b.kind == "gap" for b in leg.chain_breaks):
        items.append((f'<rect x="0" y="-9" width="14" height="9" fill="url(#{uid}-hatch)"/>', _("gap")))
    if any(b.kind != "gap" for b in leg.chain_breaks):
        items.append(
            (f'<rect x="0" y="-9" width="14" height="9" fill="url(#{uid}-hatch-break)"/>', _("chain break"))
        )
    out = [f'<g class="legend" transform="translate({frame.x} {height - 10})" fill="#333">']
    x = 0.0
    for swatch, label in items:
        out.append(
            f'<g transform="translate({round(x, 1)} 0)">{swatch}<text x="18" y="0">{_t(label)}</text></g>'
        )
        x += 30 + _text_width(label)
    out.append("</g>")
    return "".join(out)


def _chart_data(frame: Frame, series: list[SeriesPoints]) -> str:
    """The points for hover (epoch ms, °C), as JSON escaped for both XML and HTML parsing."""
    data = {
        "plot": {"x": frame.x, "y": frame.y, "w": frame.w, "h": frame.h},
        "t0": int(frame.t0.timestamp() * 1000),
        "t1": int(frame.t1.timestamp() * 1000),
        "v0": frame.v0,
        "v1": frame.v1,
        "series": [
            {
                "label": _series_label(s),
                "colour": COLOURS[i % len(COLOURS)],
                "points": [[int(p.t.timestamp() * 1000), p.v] for p in s.points if math.isfinite(p.v)],
            }
            for i, s in enumerate(series)
        ],
    }
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return f'<script type="application/json" class="chart-data">{_t(text, quote=False)}</script>'


TILE_PX = 256  # the side of a slippy-map tile
MAX_TILE_ZOOM = 18


def _mercator(lat: float, lon: float, zoom: int) -> tuple[float, float]:
    """Web Mercator pixel coordinates of a position at ``zoom`` (the slippy-map tile scheme)."""
    lat = max(-85.05112878, min(85.05112878, lat))
    n = TILE_PX * 2**zoom
    x = (lon + 180.0) / 360.0 * n
    y = (1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n
    return x, y


def _tiles(
    track: list[tuple[float, float]], tile_url: str, width: int, height: int, pad: float
) -> tuple[Callable[[float, float], tuple[float, float]], str]:
    """The projection of a track onto map tiles of ``tile_url`` (``{z}``, ``{x}``, ``{y}``), at the
    largest zoom that fits it in the frame, and the tiles' ``<image>`` elements under it."""
    zoom = 0
    for z in range(MAX_TILE_ZOOM, -1, -1):
        xs, ys = zip(*(_mercator(lat, lon, z) for lat, lon in track), strict=True)
        if max(xs) - min(xs) <= width - 2 * pad and max(ys) - min(ys) <= height - 2 * pad:
            zoom = z
            break
    xs, ys = zip(*(_mercator(lat, lon, zoom) for lat, lon in track), strict=True)
    ox = (max(xs) + min(xs)) / 2 - width / 2
    oy = (max(ys) + min(ys)) / 2 - height / 2
    count = 2**zoom
    images = []
    for ty in range(math.floor(oy / TILE_PX), math.floor((oy + height) / TILE_PX) + 1):
        if not 0 <= ty < count:
            continue
        for tx in range(math.floor(ox / TILE_PX), math.floor((ox + width) / TILE_PX) + 1):
            href = tile_url.replace("{z}", str(zoom)).replace("{x}", str(tx % count)).replace("{y}", str(ty))
            images.append(
                f'<image class="tile" href="{_a(href)}" x="{round(tx * TILE_PX - ox, 2)}"'
                f' y="{round(ty * TILE_PX - oy, 2)}" width="{TILE_PX}" height="{TILE_PX}"/>'
            )

    def xy(lat: float, lon: float) -> tuple[float, float]:
        x, y = _mercator(lat, lon, zoom)
        return round(x - ox, 2), round(y - oy, 2)

    return xy, "".join(images)


def track_svg(
    readings: AssetReadings | None,
    *,
    _: Gettext,
    leg_id: int | None = None,
    width: int = 420,
    height: int = 300,
    tile_url: str | None = None,
) -> str:
    """The leg's GPS track as a polyline, start and end marked. Without ``tile_url`` it is drawn on a frame
    scaled by latitude and longitude (equirectangular, longitude shrunk by cos(latitude)) and nothing is
    loaded; with it, on Web Mercator map tiles from that URL (``{z}/{x}/{y}``), at the zoom that fits."""
    track = [p for p in (readings.track if readings else []) if math.isfinite(p.lat) and math.isfinite(p.lon)]
    title = _("GPS track of custody leg {leg}").format(leg="" if leg_id is None else leg_id)
    uid = f"track-{leg_id if leg_id is not None else 0}"
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="track" role="img" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}" font-family="Noto Sans CJK SC, Noto Sans, sans-serif"'
        f' font-size="11"><title>{_t(title)}</title>'
        f'<clipPath id="{uid}-clip"><rect x="0" y="0" width="{width}" height="{height}"/></clipPath>'
        f'<rect class="plot-area" x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="#F8F9F9"'
        ' stroke="#999"/>'
    )
    if not track:
        return (
            f'{head}<text class="no-track" x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#666">'
            f"{_t(_('no GPS track'))}</text></svg>"
        )
    lat0, lat1 = min(p.lat for p in track), max(p.lat for p in track)
    lon0, lon1 = min(p.lon for p in track), max(p.lon for p in track)
    pad = 16.0
    tiles = ""
    if tile_url:
        xy, tiles = _tiles([(p.lat, p.lon) for p in track], tile_url, width, height, pad)
    else:
        k = math.cos(math.radians((lat0 + lat1) / 2))
        span_x = max((lon1 - lon0) * k, 1e-6)
        span_y = max(lat1 - lat0, 1e-6)
        scale = min((width - 2 * pad) / span_x, (height - 2 * pad) / span_y)
        ox = pad + ((width - 2 * pad) - span_x * scale) / 2
        oy = pad + ((height - 2 * pad) - span_y * scale) / 2

        def xy(lat: float, lon: float) -> tuple[float, float]:
            return round(ox + (lon - lon0) * k * scale, 2), round(height - oy - (lat - lat0) * scale, 2)

    pts = [xy(p.lat, p.lon) for p in track]
    (sx, sy), (ex, ey) = pts[0], pts[-1]
    line = " ".join(f"{x},{y}" for x, y in pts)
    return (
        f'{head}<g clip-path="url(#{uid}-clip)">{tiles}</g>'
        f'<polyline class="track-line" points="{line}" fill="none" stroke="#0072B2" stroke-width="2"'
        f' data-lat-min="{lat0}" data-lat-max="{lat1}" data-lon-min="{lon0}" data-lon-max="{lon1}"/>'
        f'<circle class="track-start" cx="{sx}" cy="{sy}" r="4" fill="#009E73"><title>{_t(_("start"))}'
        f"</title></circle>"
        f'<circle class="track-end" cx="{ex}" cy="{ey}" r="4" fill="#D55E00"><title>{_t(_("end"))}'
        "</title></circle></svg>"
    )
