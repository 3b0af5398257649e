"""Stage 3, scorecards: pure interval arithmetic: the union of exemption windows (overlaps counted once),
a window minus them, and a window cut at the rollups' day and hour buckets."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal

HOUR: Final = timedelta(hours=1)
DAY: Final = timedelta(days=1)
_ORIGIN: Final = datetime(2000, 1, 1, tzinfo=UTC)  # the rollups' date_bin origin

Span = tuple[datetime, datetime]


def floor_to(t: datetime, width: timedelta) -> datetime:
    return _ORIGIN + ((t - _ORIGIN) // width) * width


def ceil_to(t: datetime, width: timedelta) -> datetime:
    f = floor_to(t, width)
    return f if f == t else f + width


def union(spans: Iterable[Span]) -> list[Span]:
    """The spans merged: sorted, disjoint; overlapping or touching spans become one."""
    out: list[Span] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def subtract(window: Span, holes: Iterable[Span]) -> list[Span]:
    """``window`` minus the union of ``holes``."""
    a, b = window
    out: list[Span] = []
    cur = a
    for ha, hb in union(holes):
        if hb <= cur or ha >= b:
            continue
        if ha > cur:
            out.append((cur, ha))
        cur = max(cur, hb)
    if cur < b:
        out.append((cur, b))
    return out


def hour_window(window: Span) -> Span | None:
    """The hour buckets a window holds: those starting inside it (the rollups' resolution)."""
    a, b = ceil_to(window[0], HOUR), ceil_to(window[1], HOUR)
    return (a, b) if b > a else None


def seconds(spans: Iterable[Span]) -> float:
    return sum((b - a).total_seconds() for a, b in spans)


def rollup_parts(span: Span) -> list[tuple[Literal["d", "h"], datetime, datetime]]:
    """An hour-aligned span cut into whole days (reading_1d) and the hours at its edges (reading_1h)."""
    a, b = span
    d_lo, d_hi = ceil_to(a, DAY), floor_to(b, DAY)
    if d_lo >= d_hi:
        return [("h", a, b)] if b > a else []
    parts: list[tuple[Literal["d", "h"], datetime, datetime]] = []
    if a < d_lo:
        parts.append(("h", a, d_lo))
    parts.append(("d", d_lo, d_hi))
    if d_hi < b:
        parts.append(("h", d_hi, b))
    return parts


def whole_days(window: Span, holes: Iterable[Span]) -> list[date]:
    """The UTC days of ``window`` that the union of ``holes`` covers whole."""
    out: list[date] = []
    merged = union(holes)
    for ha, hb in merged:
        d = ceil_to(max(ha, floor_to(window[0], DAY)), DAY)
        while d + DAY <= min(hb, ceil_to(window[1], DAY)):
            out.append(d.date())
            d += DAY
    return out
