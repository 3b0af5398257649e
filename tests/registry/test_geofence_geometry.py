"""Tests: geofence geometry, pure: haversine distance, point in polygon, circles, fence checks."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from registry.geometry import (
    EARTH_RADIUS_M,
    GeofenceError,
    checked,
    contains,
    haversine_m,
    in_polygon,
)
from registry.models import Geofence

lats = st.floats(min_value=-89.0, max_value=89.0, allow_nan=False)
lons = st.floats(min_value=-179.0, max_value=179.0, allow_nan=False)
# Fence-sized coordinates: a few degrees around a port, on a grid fine enough for boundary cases.
small = st.integers(min_value=-2000, max_value=2000).map(lambda i: i / 1000)


@given(lats, lons, lats, lons)
def test_haversine_is_a_symmetric_distance(lat1: float, lon1: float, lat2: float, lon2: float) -> None:
    d = haversine_m(lat1, lon1, lat2, lon2)
    assert d == pytest.approx(haversine_m(lat2, lon2, lat1, lon1), abs=1e-6)
    assert 0.0 <= d <= math.pi * EARTH_RADIUS_M + 1e-6
    assert haversine_m(lat1, lon1, lat1, lon1) == 0.0


@given(lats, lons, lats, lons, lats, lons)
def test_haversine_triangle_inequality(a: float, b: float, c: float, d: float, e: float, f: float) -> None:
    assert haversine_m(a, b, e, f) <= haversine_m(a, b, c, d) + haversine_m(c, d, e, f) + 1e-3


@given(lats, lons, st.floats(min_value=0.0, max_value=0.9))
def test_haversine_along_a_meridian_is_the_arc(lat: float, lon: float, dlat: float) -> None:
    assume(lat + dlat <= 90)
    expected = EARTH_RADIUS_M * math.radians(dlat)
    assert haversine_m(lat, lon, lat + dlat, lon) == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_haversine_known_distance() -> None:
    assert haversine_m(0, 0, 0, 1) == pytest.approx(111_195, abs=1)


@given(
    lats, lons, st.floats(min_value=10.0, max_value=20_000.0), st.floats(min_value=0.0, max_value=40_000.0)
)
def test_circle_holds_the_points_within_its_radius(lat: float, lon: float, r: float, d: float) -> None:
    assume(abs(d - r) > 1e-3 * r)  # away from the boundary, where the last bit decides
    fence = Geofence("urn:epc:id:sgln:6901234.00001.0", "circle", center_lat=lat, center_lon=lon, radius_m=r)
    north = lat + math.degrees(d / EARTH_RADIUS_M)
    assume(north < 90)
    assert contains(fence, lat, lon)
    assert contains(fence, north, lon) == (d <= r)


def _rectangle(x0: float, x1: float, y0: float, y1: float) -> list[tuple[float, float]]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


@st.composite
def rectangles(draw: st.DrawFn) -> tuple[float, float, float, float]:
    x0, x1 = sorted(draw(st.lists(small, min_size=2, max_size=2, unique=True)))
    y0, y1 = sorted(draw(st.lists(small, min_size=2, max_size=2, unique=True)))
    return x0, x1, y0, y1


@given(rectangles(), small, small, st.integers(0, 3), st.booleans())
def test_point_in_rectangle_matches_the_box(
    box: tuple[float, float, float, float], px: float, py: float, turn: int, backwards: bool
) -> None:
    x0, x1, y0, y1 = box
    ring = _rectangle(x0, x1, y0, y1)
    ring = ring[turn:] + ring[:turn]
    if backwards:
        ring.reverse()
    # Points on the edges and corners too: the boundary is inside.
    for x in (px, x0, x1):
        for y in (py, y0, y1):
            assert in_polygon(y, x, ring) == (x0 <= x <= x1 and y0 <= y <= y1), (x, y, ring)


@st.composite
def star_polygons(draw: st.DrawFn) -> list[tuple[float, float]]:
    """Simple polygons: vertices at increasing angles around a centre, at varying radii."""
    n = draw(st.integers(3, 12))
    angles = sorted(draw(st.lists(st.integers(0, 359), min_size=n, max_size=n, unique=True)))
    assume(all(b - a < 180 for a, b in zip(angles, [*angles[1:], angles[0] + 360], strict=True)))
    radii = draw(st.lists(st.integers(1, 100), min_size=n, max_size=n))
    cx, cy = draw(small), draw(small)
    return [
        (cx + r / 1000 * math.cos(math.radians(a)), cy + r / 1000 * math.sin(math.radians(a)))
        for a, r in zip(angles, radii, strict=True)
    ]


@given(star_polygons(), small, small, st.integers(0, 11))
def test_point_in_polygon_does_not_depend_on_where_the_ring_starts(
    ring: list[tuple[float, float]], px: float, py: float, turn: int
) -> None:
    turn %= len(ring)
    inside = in_polygon(py, px, ring)
    assert in_polygon(py, px, ring[turn:] + ring[:turn]) == inside
    assert in_polygon(py, px, ring[::-1]) == inside
    for x, y in ring:
        assert in_polygon(y, x, ring), "a vertex is on the boundary"
    xs, ys = [x for x, _ in ring], [y for _, y in ring]
    if not (min(xs) <= px <= max(xs) and min(ys) <= py <= max(ys)):
        assert not inside, "outside the bounding box is outside"


@given(star_polygons())
def test_star_polygons_are_valid_fences(ring: list[tuple[float, float]]) -> None:
    fence = checked(Geofence("urn:epc:id:sgln:6901234.00001.0", "polygon", polygon=tuple(ring)))
    assert fence.polygon == tuple(ring)
    closed = checked(Geofence("urn:epc:id:sgln:6901234.00001.0", "polygon", polygon=(*ring, ring[0])))
    assert closed.polygon == tuple(ring), "the closing vertex is dropped"


@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True))
def test_circle_off_the_globe_is_refused(lat: float, lon: float) -> None:
    fence = Geofence(
        "urn:epc:id:sgln:6901234.00001.0", "circle", center_lat=lat, center_lon=lon, radius_m=100.0
    )
    if math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180:
        assert checked(fence) == fence
    else:
        with pytest.raises(GeofenceError, match="WGS 84"):
            checked(fence)


LOC = "urn:epc:id:sgln:6901234.00001.0"


@pytest.mark.parametrize(
    ("fence", "message"),
    [
        (Geofence(LOC, "circle", center_lat=21.0, center_lon=108.0, radius_m=0.0), "radius_m"),
        (Geofence(LOC, "circle", center_lat=21.0, center_lon=108.0, radius_m=1e6), "radius_m"),
        (Geofence(LOC, "circle", center_lat=21.0, radius_m=10.0), "needs center_lat"),
        (Geofence(LOC, "square"), "neither"),
        (Geofence(LOC, "polygon"), "needs its vertices"),
        (Geofence(LOC, "polygon", polygon=((0, 0), (1, 0))), "3 distinct"),
        (Geofence(LOC, "polygon", polygon=((0, 0), (1, 0), (2, 0))), "no area"),
        (Geofence(LOC, "polygon", polygon=((0, 0), (2, 2), (2, 0), (0, 1))), "cross"),
        (Geofence(LOC, "polygon", polygon=((0, 0), (0, 0), (1, 0), (0, 1))), "repeated"),
        (Geofence(LOC, "polygon", polygon=((0, 0), (2, 0), (1, 0), (1, 1))), "fold back"),
        (Geofence(LOC, "polygon", polygon=((0, 0), (1, 0), (0, 91))), "WGS 84"),
        (Geofence(LOC, "polygon", polygon=((-170, 0), (170, 0), (170, 1))), "180 degrees"),
        (Geofence(LOC, "polygon", polygon=((0, 0), (1, 0), (0, 1)), radius_m=5.0), "not a centre"),
        (
            Geofence(LOC, "circle", center_lat=1.0, center_lon=1.0, radius_m=5.0, polygon=((0, 0),)),
            "not a polygon",
        ),
        (Geofence(" ", "circle", center_lat=1.0, center_lon=1.0, radius_m=5.0), "location id"),
    ],
)
def test_fences_that_are_no_fence_are_refused(fence: Geofence, message: str) -> None:
    with pytest.raises(GeofenceError, match=message):
        checked(fence)


@given(lats, lons, lats, lons)
def test_a_point_at_the_radius_is_inside(lat: float, lon: float, lat2: float, lon2: float) -> None:
    r = haversine_m(lat, lon, lat2, lon2)
    assume(r > 0)
    fence = Geofence(LOC, "circle", center_lat=lat, center_lon=lon, radius_m=r)
    assert contains(fence, lat2, lon2)
