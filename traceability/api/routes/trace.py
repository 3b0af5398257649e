"""Stage 3, API: GET /trace/{id}: a lot's trace, named by any identifier that leads to it."""

from __future__ import annotations

from fastapi import APIRouter

from traceability.api.deps import Db, Reader, ScopeDep
from traceability.api.problems import LotNotFoundError
from traceability.trace import trace
from traceability.trace_model import Trace

router = APIRouter(tags=["trace"])


@router.get("/trace/{trace_id:path}", response_model=Trace)
def trace_route(trace_id: str, conn: Db, _: Reader, scope: ScopeDep) -> Trace:
    """The trace of a lot, named by lot id or code, EPC (SGTIN, LGTIN, SSCC), container number or
    B/L / waybill: backward and forward chain, custody legs with temperature evidence, verdict. 404 when it
    leads to no lot the key may read."""
    found = trace(conn, trace_id, scope.params())
    if found is None:
        raise LotNotFoundError(trace_id)
    return found
