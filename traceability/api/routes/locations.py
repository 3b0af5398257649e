"""Stage 3, API: GET /locations/{id}/fefo: the lots at a location, first-expired first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from traceability.api.deps import Db, Reader, ScopeDep
from traceability.api.problems import PROBLEM_BASE, ApiProblemError
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
