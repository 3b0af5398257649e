"""Stage 3, API: GET /health: each stage's liveness, the database and the ledger's head (no key)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from traceability.api.pools import Pools
from traceability.api.problems import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, ApiProblemError, Problem, problem
from traceability.api.schemas import Health
from traceability.ledger import chain

log = logging.getLogger(__name__)

Liveness = Callable[[], Mapping[str, bool]]

router = APIRouter(tags=["ops"])


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}}},
)
async def health(request: Request) -> Any:
    """Each stage's liveness, the database reachable, and the ledger's head (no key needed). 503 when
    a stage is dead or the database cannot be reached; the body names them. It has a connection of
    its own, so it answers while every request connection is busy."""
    stages = _stages(request.app.state.liveness)
    head: int | None = None
    database = True
    pools: Pools = request.app.state.pools
    lease = pools.health_lease()
    try:
        conn = await lease.acquire()
        head = await run_in_threadpool(chain.head_seq, conn)
    except (ApiProblemError, psycopg.Error) as exc:
        log.warning("health: database unavailable: %s", exc)
        database = False
    finally:
        await lease.release()
    dead = [name for name, alive in stages.items() if not alive]
    if dead or not database:
        down = dead + ([] if database else ["database"])
        return problem(
            503,
            "Service Unavailable",
            "not alive: " + ", ".join(down),
            request.url.path,
            type_=PROBLEM_BASE + "unhealthy",
            stages=stages,
            database=database,
            dead=down,
        )
    return Health(status="ok", database=True, ledger_head_seq=head, stages=stages)


def _stages(liveness: Liveness | None) -> dict[str, bool]:
    """Each stage's liveness; a liveness report that fails counts as a dead ``liveness`` stage."""
    if liveness is None:
        return {}
    try:
        return {str(name): bool(alive) for name, alive in liveness().items()}
    except Exception:  # the report itself failed: that is an unhealthy process, said as such
        log.exception("health: the liveness report failed")
        return {"liveness": False}
