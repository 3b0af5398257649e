"""Stage 3, API: GET /alarms and POST /alarms/{id}/ack|resolve (operator and carrier roles; the alarms of
the assets the key may read)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Query

from rules.alarms import lifecycle
from traceability.api.deps import Db, Operator, ScopeDep
from traceability.api.problems import ERRORS, PROBLEM_BASE, ApiProblemError
from traceability.api.schemas import Alarm, AlarmAction

router = APIRouter(tags=["alarms"])


@router.get("/alarms", response_model=list[Alarm])
def alarms_route(
    conn: Db,
    _: Operator,
    scope: ScopeDep,
    state: Annotated[Literal["open", "acknowledged", "resolved"] | None, Query()] = None,
    asset_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Alarm]:
    """Alarms of the assets the key may read, newest first (operator and carrier roles)."""
    rows = lifecycle.list_alarms(conn, state=state, asset_id=asset_id, limit=limit, seen_by=scope.params())
    return [Alarm.model_validate(r) for r in rows]


def _act(
    conn: psycopg.Connection[Any],
    action: Callable[..., Any],
    alarm_id: int,
    by: str,
    note: str,
    scope: ScopeDep,
) -> Alarm:
    """An operator's step in the alarm lifecycle, which the rules stage owns (rules.alarms), on an alarm
    of an asset the key may read (else 404)."""
    try:
        with conn.transaction():
            found = action(conn, alarm_id, by=by, note=note, seen_by=scope.params())
    except lifecycle.AlarmStateError as exc:
        raise ApiProblemError(409, "Conflict", str(exc), type_=PROBLEM_BASE + "alarm-state") from None
    if found is None:
        raise ApiProblemError(404, "Not Found", f"no alarm {alarm_id}")
    return Alarm.model_validate(found)


@router.post("/alarms/{alarm_id}/ack", response_model=Alarm, responses={409: ERRORS[404]})
def ack_route(alarm_id: int, body: AlarmAction, conn: Db, principal: Operator, scope: ScopeDep) -> Alarm:
    """Acknowledge an alarm (operator and carrier roles)."""
    return _act(conn, lifecycle.acknowledge, alarm_id, principal.name, body.note, scope)


@router.post("/alarms/{alarm_id}/resolve", response_model=Alarm, responses={409: ERRORS[404]})
def resolve_route(alarm_id: int, body: AlarmAction, conn: Db, principal: Operator, scope: ScopeDep) -> Alarm:
    """Resolve an alarm (operator and carrier roles)."""
    return _act(conn, lifecycle.resolve, alarm_id, principal.name, body.note, scope)
