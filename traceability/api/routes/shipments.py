"""Stage 3, API: POST/GET /shipments, GET /shipments/{id}, POST /shipments/{id}/close and /profile, scoped to
what the caller's party sees (a shipment it may not see is 404, as one that does not exist)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from registry.models import ShipmentProfile
from registry.shipments import ShipmentClosedError, ShipmentError
from traceability import shipments
from traceability.api.auth import SHIPMENTS
from traceability.api.deps import Db, Principal, Reader, ScopeDep, permit
from traceability.api.problems import ERRORS, PROBLEM_BASE, ApiProblemError
from traceability.api.shipment_schemas import (
    ProfileIn,
    ShipmentCloseIn,
    ShipmentIn,
    ShipmentOut,
    ShipmentSummaryOut,
    State,
)

router = APIRouter(tags=["shipments"])

ShipmentId = Annotated[str, Path(min_length=1, max_length=100, description="the shipment's id")]


def _not_found(shipment_id: str) -> ApiProblemError:
    return ApiProblemError(
        404, "Not Found", f"no shipment {shipment_id!r}", type_=PROBLEM_BASE + "shipment-not-found"
    )


def _forbidden(exc: shipments.NotYoursError) -> ApiProblemError:
    return ApiProblemError(403, "Forbidden", str(exc), type_=PROBLEM_BASE + "forbidden")


@router.post("/shipments", status_code=201, response_model=ShipmentOut, responses={409: ERRORS[404]})
def create_shipment(body: ShipmentIn, conn: Db, principal: Principal, scope: ScopeDep) -> ShipmentOut:
    """Register a shipment with its legs, stops, lots and, optionally, the shipper's alarm profile (never
    looser than the class as the rule packs state it). A carrier's key registers only a shipment it
    carries a leg of, a shipper's one it ships or receives, and either names only lots and assets it sees
    already (else 403). 409 when its id or a document is taken (to a carrier's or shipper's key in words
    naming neither which nor whose); 422 when it contradicts itself or names something not registered."""
    permit(principal, SHIPMENTS)
    params = scope.params()
    try:
        shipments.register(conn, body.record("api"), params)
    except shipments.ShipmentExistsError as exc:
        raise ApiProblemError(409, "Conflict", str(exc), type_=PROBLEM_BASE + "shipment-exists") from None
    except shipments.NotYoursError as exc:
        raise _forbidden(exc) from None
    except ShipmentError as exc:
        raise ApiProblemError(
            422, "Unprocessable Content", str(exc), type_=PROBLEM_BASE + "shipment-refused"
        ) from None
    view = shipments.shipment_view(conn, body.shipment_id, params)
    if view is None:  # registered and seen a moment ago, in the same connection
        raise _not_found(body.shipment_id)
    return ShipmentOut.of_view(view)


@router.get("/shipments", response_model=list[ShipmentSummaryOut])
def list_shipments(
    conn: Db,
    _: Reader,
    scope: ScopeDep,
    state: Annotated[State | None, Query(description="only shipments in this state")] = None,
    lot: Annotated[str | None, Query(max_length=200, description="only shipments carrying this lot")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ShipmentSummaryOut]:
    """The shipments the caller's party sees, newest first, each with its state."""
    found = shipments.list_shipments(conn, scope.params(), state=state, lot=lot, limit=limit)
    return [ShipmentSummaryOut.of(s) for s in found]


@router.get("/shipments/{shipment_id:path}", response_model=ShipmentOut)
def get_shipment(shipment_id: ShipmentId, conn: Db, _: Reader, scope: ScopeDep) -> ShipmentOut:
    """One shipment: documents, parties, legs, stops, lots, profile versions, and its state with the times
    its ledger events reached each step. 404 when unknown or not the caller's to see."""
    view = shipments.shipment_view(conn, shipment_id, scope.params())
    if view is None:
        raise _not_found(shipment_id)
    return ShipmentOut.of_view(view)


@router.post("/shipments/{shipment_id:path}/close", response_model=ShipmentOut, responses={409: ERRORS[404]})
def close_shipment(
    shipment_id: ShipmentId, body: ShipmentCloseIn, conn: Db, principal: Principal, scope: ScopeDep
) -> ShipmentOut:
    """Close a shipment (its last state, set by hand). 404 when unknown or not the caller's to see; 403
    when it sees it but is not of the shipper's or consignee's party (nor an operator); 409 when closed
    already."""
    permit(principal, SHIPMENTS)
    params = scope.params()
    try:
        with conn.transaction():
            closed = shipments.close(conn, shipment_id, body.at or datetime.now(UTC), params)
    except ShipmentClosedError as exc:
        raise ApiProblemError(409, "Conflict", str(exc), type_=PROBLEM_BASE + "shipment-closed") from None
    except shipments.NotYoursError as exc:
        raise _forbidden(exc) from None
    view = None if closed is None else shipments.shipment_view(conn, shipment_id, params)
    if view is None:
        raise _not_found(shipment_id)
    return ShipmentOut.of_view(view)


@router.post("/shipments/{shipment_id:path}/profile", status_code=201, response_model=ShipmentOut)
def add_profile(
    shipment_id: ShipmentId, body: ProfileIn, conn: Db, principal: Principal, scope: ScopeDep
) -> ShipmentOut:
    """Add the next version of the shipper's alarm profile (the newest applies; every version is kept),
    refused (422) when looser than the shipment's class on any side. 404 when unknown or not the
    caller's to see; 403 when it sees it but is not of the shipper's or consignee's party (nor an
    operator)."""
    permit(principal, SHIPMENTS)
    params = scope.params()
    try:
        with conn.transaction():
            version = shipments.add_profile(
                conn, shipment_id, ShipmentProfile(0, **body.model_dump()), params
            )
    except shipments.NotYoursError as exc:
        raise _forbidden(exc) from None
    except ShipmentError as exc:
        raise ApiProblemError(
            422, "Unprocessable Content", str(exc), type_=PROBLEM_BASE + "shipment-refused"
        ) from None
    view = None if version is None else shipments.shipment_view(conn, shipment_id, params)
    if view is None:
        raise _not_found(shipment_id)
    return ShipmentOut.of_view(view)
