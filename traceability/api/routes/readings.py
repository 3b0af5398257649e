"""Stage 3, API: the readings behind the charts: GET /assets/{id}/readings over a window and
GET /trace/{id}/readings for each custody leg of a lot.

This router is included before the trace router: ``/trace/{trace_id:path}`` would otherwise take
``/trace/{id}/readings`` as the trace of a lot named ``{id}/readings``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query

from traceability.api.deps import Db, Reader, ScopeDep
from traceability.api.problems import PROBLEM_BASE, ApiProblemError, LotNotFoundError
from traceability.readings import asset_readings, leg_readings
from traceability.readings_model import DEFAULT_MAX_POINTS, MAX_POINTS_LIMIT, AssetReadings, LegReadings
from traceability.trace import trace

router = APIRouter(tags=["readings"])

# The window an asset's readings are asked for when the request names none, and the longest it may ask for
# (a year and a bit: a season's storage in one chart).
DEFAULT_WINDOW = timedelta(hours=24)
MAX_WINDOW = timedelta(days=400)

MaxPoints = Annotated[
    int,
    Query(
        ge=2,
        le=MAX_POINTS_LIMIT,
        description="the most points any one temperature series (and the track) carries",
    ),
]


def _bad_value(detail: str) -> ApiProblemError:
    return ApiProblemError(400, "Bad Request", detail, type_=PROBLEM_BASE + "bad-value")


def _window(t_from: datetime | None, t_to: datetime | None) -> tuple[datetime, datetime]:
    """The window asked for: ``to`` now unless given, ``from`` 24 h before ``to`` unless given; each
    RFC 3339 with its offset, ``from`` before ``to``, at most MAX_WINDOW apart."""
    for name, t in (("from", t_from), ("to", t_to)):
        if t is not None and t.tzinfo is None:
            raise _bad_value(f"{name} needs its UTC offset (RFC 3339, e.g. 2026-03-01T00:00:00Z)")
    try:
        end = datetime.now(UTC) if t_to is None else t_to.astimezone(UTC)
        start = end - DEFAULT_WINDOW if t_from is None else t_from.astimezone(UTC)
    except OverflowError:
        raise _bad_value("from and to must lie within the years 1 to 9999 (UTC)") from None
    if start >= end:
        raise _bad_value("from must be before to")
    if end - start > MAX_WINDOW:
        raise _bad_value(f"the window may span at most {MAX_WINDOW.days} days")
    return start, end


@router.get("/assets/{asset_id}/readings", response_model=AssetReadings)
def asset_readings_route(
    conn: Db,
    _: Reader,
    scope: ScopeDep,
    asset_id: Annotated[str, Path(max_length=200)],
    t_from: Annotated[
        datetime | None, Query(alias="from", description="RFC 3339; default: 24 h before `to`")
    ] = None,
    t_to: Annotated[datetime | None, Query(alias="to", description="RFC 3339; default: now")] = None,
    max_points: MaxPoints = DEFAULT_MAX_POINTS,
) -> AssetReadings:
    """The temperature series of the devices mounted on the asset over [from, to) (readings while mounted
    only), each downsampled to at most max_points points keeping every bucket's minimum and maximum; door,
    power and defrost markers; the GPS track. 404 when the key may not read the asset."""
    start, end = _window(t_from, t_to)
    found = asset_readings(conn, asset_id, start, end, max_points, scope.params())
    if found is None:
        raise ApiProblemError(
            404, "Not Found", f"no asset {asset_id!r} in the registry", type_=PROBLEM_BASE + "asset-not-found"
        )
    return found


@router.get("/trace/{trace_id:path}/readings", response_model=list[LegReadings])
def trace_readings_route(
    trace_id: str, conn: Db, _: Reader, scope: ScopeDep, max_points: MaxPoints = DEFAULT_MAX_POINTS
) -> list[LegReadings]:
    """The chart readings of each custody leg of the lot the identifier leads to (as GET /trace/{id}), in
    the trace's leg order: the leg's asset over the leg (an open leg up to now); null for a leg with no
    asset."""
    found = trace(conn, trace_id, scope.params())
    if found is None:
        raise LotNotFoundError(trace_id)
    return leg_readings(conn, found, max_points)
