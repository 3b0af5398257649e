"""Stage 0½, reference data: geofence geometry, pure: haversine distance, point in polygon, fence checks.

A circle holds the points whose great-circle (haversine) distance from its centre is at most its radius;
a polygon is a simple ring of (lon, lat) pairs in the GeoJSON order, read as planar in degrees (fences
are a few kilometres wide, where the difference from geodesic edges is centimetres) and not crossing the
antimeridian. A point on a polygon's boundary, or exactly at a circle's radius, is inside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from registry.models import Geofence

# The mean Earth radius (IUGG R1), metres: the sphere the haversine formula measures on.
EARTH_RADIUS_M = 6_371_008.8
# The widest circle a location takes: a port or a rail yard is a few kilometres across; 50 km is a city.
MAX_RADIUS_M = 50_000.0
# Vertices a polygon takes at most: the self-intersection check is quadratic in them.
MAX_VERTICES = 500

Ring = Sequence[tuple[float, float]]  # (lon, lat) pairs


class GeofenceError(ValueError):
    """A geofence that cannot be stored as given (a sentence a person understands)."""


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The great-circle distance in metres between two WGS 84 points (degrees), on the mean sphere."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _cross(ox: float, oy: float, ax: float, ay: float, bx: float, by: float) -> float:
    """The z of (a - o) × (b - o): > 0 when o, a, b turn left, 0 when collinear."""
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


def _on_segment(x: float, y: float, ax: float, ay: float, bx: float, by: float) -> bool:
    return (
        _cross(ax, ay, bx, by, x, y) == 0.0
        and min(ax, bx) <= x <= max(ax, bx)
        and min(ay, by) <= y <= max(ay, by)
    )


def in_polygon(lat: float, lon: float, ring: Ring) -> bool:
    """Whether (lat, lon) lies inside the ring of (lon, lat) vertices or on its boundary (even-odd rule:
    a ray to +lon crosses the boundary an odd number of times)."""
    inside = False
    n = len(ring)
    for i in range(n):
        ax, ay = ring[i]
        bx, by = ring[(i + 1) % n]
        if _on_segment(lon, lat, ax, ay, bx, by):
            return True
        if (ay > lat) != (by > lat):
            # The edge straddles the ray's latitude: where does it cross it?
            x = ax + (lat - ay) * (bx - ax) / (by - ay)
            if x > lon:
                inside = not inside
    return inside


def contains(fence: Geofence, lat: float, lon: float) -> bool:
    """Whether the position lies inside the fence (its boundary included)."""
    if fence.polygon is not None:
        return in_polygon(lat, lon, fence.polygon)
    if fence.center_lat is None or fence.center_lon is None or fence.radius_m is None:
        raise GeofenceError(f"the geofence of {fence.location_id} is neither a circle nor a polygon")
    return haversine_m(fence.center_lat, fence.center_lon, lat, lon) <= fence.radius_m


def _lat_lon_ok(lat: float, lon: float) -> bool:
    return math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180


def _segments_cross(
    a: tuple[float, float], b: tuple[float, float], c: tuple[float, float], d: tuple[float, float]
) -> bool:
    """Whether segments ab and cd share a point (touching counts)."""
    d1 = _cross(*c, *d, *a)
    d2 = _cross(*c, *d, *b)
    d3 = _cross(*a, *b, *c)
    d4 = _cross(*a, *b, *d)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return (
        _on_segment(*a, *c, *d)
        or _on_segment(*b, *c, *d)
        or _on_segment(*c, *a, *b)
        or _on_segment(*d, *a, *b)
    )


def ring_area(ring: Ring) -> float:
    """The ring's signed area in square degrees (shoelace; > 0 counter-clockwise)."""
    n = len(ring)
    return sum(ring[i][0] * ring[(i + 1) % n][1] - ring[(i + 1) % n][0] * ring[i][1] for i in range(n)) / 2


def checked(fence: Geofence) -> Geofence:
    """The fence as stored: a polygon's closing vertex (a repeat of the first, as GeoJSON writes rings)
    dropped. ``GeofenceError`` when it is no fence: a circle off the globe or of no (or too great a)
    radius; a polygon with fewer than 3 distinct vertices, a vertex off the globe, no area, or edges that
    cross (a ring that is not simple has no one inside)."""
    if not fence.location_id.strip():
        raise GeofenceError("a geofence needs a location id")
    if fence.shape == "circle":
        if fence.polygon is not None:
            raise GeofenceError("a circle takes a centre and a radius, not a polygon")
        lat, lon, r = fence.center_lat, fence.center_lon, fence.radius_m
        if lat is None or lon is None or r is None:
            raise GeofenceError("a circle needs center_lat, center_lon and radius_m")
        if not _lat_lon_ok(lat, lon):
            raise GeofenceError(f"centre ({lat}, {lon}) is not a WGS 84 position")
        if not (math.isfinite(r) and 0 < r <= MAX_RADIUS_M):
            raise GeofenceError(f"radius_m {r} is not between 0 (excluded) and {MAX_RADIUS_M:g} metres")
        return fence
    if fence.shape != "polygon":
        raise GeofenceError(f"shape {fence.shape!r} is neither 'circle' nor 'polygon'")
    if fence.center_lat is not None or fence.center_lon is not None or fence.radius_m is not None:
        raise GeofenceError("a polygon takes its vertices only, not a centre or a radius")
    if fence.polygon is None:
        raise GeofenceError("a polygon needs its vertices ([lon, lat] pairs)")
    ring = [(float(x), float(y)) for x, y in fence.polygon]
    if len(ring) > 1 and ring[0] == ring[-1]:
        ring.pop()
    for lon, lat in ring:
        if not _lat_lon_ok(lat, lon):
            raise GeofenceError(f"vertex [{lon}, {lat}] is not a WGS 84 [lon, lat] position")
    if len(set(ring)) < 3:
        raise GeofenceError("a polygon needs at least 3 distinct vertices")
    for k, vertex in enumerate(ring):
        if vertex == ring[k - 1]:
            raise GeofenceError(f"vertex [{vertex[0]}, {vertex[1]}] is repeated")
    if len(ring) > MAX_VERTICES:
        raise GeofenceError(f"a polygon takes at most {MAX_VERTICES} vertices, not {len(ring)}")
    if max(x for x, _ in ring) - min(x for x, _ in ring) > 180:
        raise GeofenceError("a polygon may not span more than 180 degrees of longitude")
    if ring_area(ring) == 0:
        raise GeofenceError("the polygon encloses no area")
    n = len(ring)
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                # Neighbouring edges share a vertex; they cross only when they fold back on each other.
                a, b, c = (
                    (ring[j - 1], ring[j], ring[(j + 1) % n]) if j == i + 1 else (ring[-1], ring[0], ring[1])
                )
                if _cross(*a, *b, *c) == 0 and (_on_segment(*c, *a, *b) or _on_segment(*a, *b, *c)):
                    raise GeofenceError(f"the polygon's edges fold back at vertex [{b[0]}, {b[1]}]")
                continue
            if _segments_cross(ring[i], ring[(i + 1) % n], ring[j], ring[(j + 1) % n]):
                raise GeofenceError("the polygon's edges cross each other: it is not a simple ring")
    return replace(fence, polygon=tuple(ring))
