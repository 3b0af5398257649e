"""Stage 3, API: GET /locations/{id}/fefo (the lots at a location, first-expired first) and
PUT /locations/{id}/geofence (a location's geofence)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from registry.geofences import set_geofence
from registry.geometry import MAX_RADIUS_M, MAX_VERTICES, GeofenceError
from registry.models import Geofence
from traceability.api.deps import Db, Reader, Registrar, ScopeDep
from traceability.api.problems import ERRORS, PROBLEM_BASE, ApiProblemError
from traceability.fefo import DEFAULT_LIMIT, MAX_LIMIT, Fefo, fefo

router = APIRouter(tags=["locations"])


@router.get("/locations/{location_id:path}/fefo", response_model=Fefo)
def fefo_route(
    conn: Db,
    _: Reader,
    scope: ScopeDep,
    location_id: Annotated[str, Path(max_length=200, description="the location's id (SGLN), URL-encoded")],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="the most lots listed")] = DEFAULT_LIMIT,
) -> Fefo:
    """The lots at the location or any place under it now (through the units enclosing them), first-expired
    first out: in order of remaining shelf life at their class's reference temperature, as the rules stage
    stored it beside each lot's verdict; lots without a stored shelf life come last; only the lots the key may
    read. 404 when the location is not in the registry."""
    found = fefo(conn, location_id, limit, scope.params())
    if found is None:
        raise ApiProblemError(
            404,
            "Not Found",
            f"no location {location_id!r} in the registry",
            type_=PROBLEM_BASE + "location-not-found",
        )
    return found


class GeofenceBody(BaseModel):
    """A location's geofence: a circle (centre and radius) or a polygon ring of [lon, lat] pairs (WGS 84, the
    GeoJSON order; a closing vertex repeating the first may be given). A point on the boundary is inside."""

    model_config = ConfigDict(extra="forbid")

    shape: Literal["circle", "polygon"]
    center_lat: float | None = Field(None, ge=-90, le=90, description="circle: centre latitude (degrees)")
    center_lon: float | None = Field(None, ge=-180, le=180, description="circle: centre longitude (degrees)")
    radius_m: float | None = Field(None, gt=0, le=MAX_RADIUS_M, description="circle: radius (metres)")
    polygon: list[tuple[float, float]] | None = Field(
        None, min_length=3, max_length=MAX_VERTICES + 1, description="polygon: [[lon, lat], ...]"
    )


class GeofenceOut(GeofenceBody):
    """A location's geofence as stored."""

    location_id: str


@router.put(
    "/locations/{location_id:path}/geofence",
    response_model=GeofenceOut,
    responses={404: ERRORS[404], 422: ERRORS[422]},
)
def geofence_route(
    conn: Db,
    _: Registrar,
    location_id: Annotated[str, Path(max_length=200, description="the location's id (SGLN), URL-encoded")],
    body: GeofenceBody,
) -> GeofenceOut:
    """Give a location its geofence, replacing the one it had (operator or admin role). Positions the rules
    stage judges from then on meet it: an asset's position entering or leaving it becomes an arriving or
    departing event in the ledger. 404 when the location is not in the registry; 422 when the shape is no
    fence (a self-crossing ring, no area, a vertex off the globe, a circle of no radius)."""
    fence = Geofence(
        location_id,
        body.shape,
        body.center_lat,
        body.center_lon,
        body.radius_m,
        None if body.polygon is None else tuple(body.polygon),
    )
    try:
        with conn.transaction():
            stored = set_geofence(conn, fence)
    except GeofenceError as exc:
        raise ApiProblemError(
            422, "Unprocessable Content", str(exc), type_=PROBLEM_BASE + "geofence-invalid"
        ) from None
    if stored is None:
        raise ApiProblemError(
            404,
            "Not Found",
            f"no location {location_id!r} in the registry",
            type_=PROBLEM_BASE + "location-not-found",
        )
    return GeofenceOut(
        location_id=stored.location_id,
        shape="circle" if stored.shape == "circle" else "polygon",
        center_lat=stored.center_lat,
        center_lon=stored.center_lon,
        radius_m=stored.radius_m,
        polygon=None if stored.polygon is None else list(stored.polygon),
    )
