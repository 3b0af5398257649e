"""Composition root: `coldchain geofence ...` commands (a location's geofence)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from coldchain.cli.common import ExitCode, emit_json, fail

geofence_app = typer.Typer(help="Geofences of locations.", no_args_is_help=True)

# The largest polygon file read: a GeoJSON ring of the most vertices a fence takes is a few kilobytes.
MAX_POLYGON_BYTES = 1024 * 1024


def ring_of(text: str) -> list[tuple[float, float]]:
    """The [lon, lat] ring of a GeoJSON Polygon (its outer ring), a Feature holding one, or a bare ring;
    ``ValueError`` naming what is wrong."""
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    if isinstance(doc, dict) and doc.get("type") == "Feature":
        doc = doc.get("geometry")
    if isinstance(doc, dict):
        if (
            doc.get("type") != "Polygon"
            or not isinstance(doc.get("coordinates"), list)
            or not doc["coordinates"]
        ):
            raise ValueError("a GeoJSON geometry of type Polygon (or a Feature holding one) is needed")
        doc = doc["coordinates"][0]
    if not isinstance(doc, list) or not all(
        isinstance(p, list)
        and len(p) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in p)
        for p in doc
    ):
        raise ValueError("the ring must be a list of [lon, lat] number pairs")
    return [(float(p[0]), float(p[1])) for p in doc]


@geofence_app.command("set")
def set_(
    location_id: Annotated[str, typer.Argument(help="The location's id (SGLN EPC URI).")],
    circle: Annotated[
        tuple[float, float, float] | None,
        typer.Option(
            "--circle", metavar="LAT LON RADIUS_M", help="A circle: centre (degrees) and radius (m)."
        ),
    ] = None,
    polygon: Annotated[
        Path | None,
        typer.Option(
            "--polygon", help="A polygon: a GeoJSON file (Polygon, a Feature of one, or a [lon, lat] ring)."
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object as the last line.")] = False,
) -> None:
    """Give a location its geofence (replacing the one it had): a circle or a polygon. Positions judged from
    then on meet it: an asset entering or leaving it becomes an arriving or departing event."""
    import psycopg

    from coldchain.cli.common import cli_settings
    from coldchain.stack import open_stack
    from registry.geofences import set_geofence
    from registry.geometry import GeofenceError
    from registry.models import Geofence

    if (circle is None) == (polygon is None):
        fail("give either --circle LAT LON RADIUS_M or --polygon FILE")
    if circle is not None:
        fence = Geofence(
            location_id, "circle", center_lat=circle[0], center_lon=circle[1], radius_m=circle[2]
        )
    else:
        assert polygon is not None
        try:
            with polygon.open("rb") as f:
                data = f.read(MAX_POLYGON_BYTES + 1)
        except OSError as exc:
            fail(f"cannot read {polygon}: {exc.strerror or exc}")
        if len(data) > MAX_POLYGON_BYTES:
            fail(f"{polygon} is larger than {MAX_POLYGON_BYTES} bytes: no geofence is")
        try:
            ring = ring_of(data.decode("utf-8", errors="replace"))
        except ValueError as exc:
            fail(f"{polygon}: {exc}")
        fence = Geofence(location_id, "polygon", polygon=tuple(ring))
    settings = cli_settings()
    with open_stack(settings, must_exist=True) as stack, psycopg.connect(stack.database_url) as conn:
        try:
            stored = set_geofence(conn, fence)
        except GeofenceError as exc:
            fail(f"geofence of {location_id}: {exc}")
    if stored is None:
        fail(f"no location {location_id!r} in the registry", ExitCode.USAGE)
    if json_out:
        emit_json(
            {
                "location_id": stored.location_id,
                "shape": stored.shape,
                "center_lat": stored.center_lat,
                "center_lon": stored.center_lon,
                "radius_m": stored.radius_m,
                "polygon": None if stored.polygon is None else [list(p) for p in stored.polygon],
            }
        )
    elif stored.shape == "circle":
        typer.echo(
            f"geofence of {location_id}: circle of {stored.radius_m:g} m around"
            f" ({stored.center_lat}, {stored.center_lon})"
        )
    else:
        typer.echo(f"geofence of {location_id}: polygon of {len(stored.polygon or ())} vertices")
