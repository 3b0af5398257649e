"""Stage 3, API: read-only HTTP trace API (FastAPI) over the ledger; every error is RFC 9457 problem+json."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any, Literal

import psycopg
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from traceability import ledger
from traceability.trace import trace_lot

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://ns.coldchain.example/problems/"
# Pool bounds: the API is read-only and light; a few connections serve many requests.
POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 8
POOL_OPEN_TIMEOUT_S = 10.0


# -- response models ---------------------------------------------------------------------------------


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


class Health(BaseModel):
    status: Literal["ok"]
    database: bool
    ledger_head_seq: int | None = Field(description="seq of the newest ledger entry; null when empty")


class VerifyResponse(BaseModel):
    ok: bool
    events: int = Field(description="ledger entries read")
    first_bad_seq: int | None = Field(description="first seq where the chain does not hold; null if ok")


class Lot(BaseModel):
    lot_id: str
    gtin: str | None
    batch: str | None
    product_class: str
    description: str | None
    origin_country: str | None
    hs_code: str | None
    bonded_status: str | None


class Limits(BaseModel):
    product_class: str
    pack_id: str
    pack_version: str
    low_c: float | None
    high_c: float | None
    source: str


class Unit(BaseModel):
    child_id: str = Field(description="what is enclosed (the lot, or a unit enclosing it)")
    unit_id: str = Field(description="the enclosing unit (SSCC, asset tag ...)")
    t0: datetime
    t1: datetime | None
    depth: int = Field(description="1 = directly encloses the lot")
    asset_id: str | None = Field(description="set when the unit is an asset (truck, container ...)")


class Placement(BaseModel):
    child_id: str
    location_id: str
    location_name: str
    t0: datetime
    t1: datetime | None
    start_seq: int
    end_seq: int | None


class Party(BaseModel):
    party_id: str
    name: str | None


class Location(BaseModel):
    location_id: str
    name: str | None


class Asset(BaseModel):
    asset_id: str
    name: str | None
    kind: str | None


class TemperatureSummary(BaseModel):
    readings: int
    dropouts: int
    min_c: float | None
    max_c: float | None
    mean_c: float | None
    series: int = Field(description="temperature series (probes) contributing")
    out_of_range_s: float | None = Field(
        description="longest time any one probe was outside the class limits; null without limits"
    )


class Excursion(BaseModel):
    excursion_id: int
    series_id: int
    device_id: str | None
    channel: str | None
    rule_id: str
    pack_version: str
    start_time: datetime
    end_time: datetime
    open: bool
    peak_c: float | None
    limit_low_c: float | None
    limit_high_c: float | None
    readings: int


class ChainBreak(BaseModel):
    chain_break_id: int
    kind: str
    series_id: int | None
    rule_id: str
    pack_version: str
    start_time: datetime
    end_time: datetime
    allowed_s: float
    detail: dict[str, Any] | None


class CustodyLeg(BaseModel):
    leg_id: int
    epc: str
    custodian: Party | None
    location: Location | None
    asset: Asset | None
    t_start: datetime
    t_end: datetime | None
    start_seq: int
    end_seq: int | None
    temperature: TemperatureSummary
    excursions: list[Excursion]
    chain_breaks: list[ChainBreak]


class LedgerRef(BaseModel):
    seq: int
    event_id: str
    type: str
    biz_step: str | None
    event_time: datetime
    action: str | None


class Trace(BaseModel):
    lot_id: str
    lot: Lot | None
    limits: Limits | None
    units: list[Unit]
    placements: list[Placement]
    custody: list[CustodyLeg]
    lot_chain_breaks: list[ChainBreak]
    events: list[LedgerRef]
    verdict: Literal["pass", "excursion", "broken"]


# -- problem+json ------------------------------------------------------------------------------------


def problem(
    status: int, title: str, detail: str | None, instance: str, *, type_: str = "about:blank", **extra: Any
) -> JSONResponse:
    body = Problem(type=type_, title=title, status=status, detail=detail, instance=instance, **extra)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_MEDIA_TYPE)


class LotNotFoundError(Exception):
    def __init__(self, lot_id: str) -> None:
        super().__init__(lot_id)
        self.lot_id = lot_id


def _install_problem_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        title = HTTPStatus(exc.status_code).phrase
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        return problem(exc.status_code, title, detail, request.url.path)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()
        ]
        return problem(
            422,
            "Unprocessable Content",
            "the request does not match the API's schema",
            request.url.path,
            type_=PROBLEM_BASE + "validation",
            errors=errors,
        )

    async def lot_not_found(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LotNotFoundError)
        return problem(
            404,
            "Lot not found",
            f"no lot {exc.lot_id!r} in the registry or the ledger",
            request.url.path,
            type_=PROBLEM_BASE + "lot-not-found",
        )

    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        log.error("database unavailable: %s", exc)
        return problem(503, "Service Unavailable", "the database cannot be reached", request.url.path)

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path, exc_info=exc)
        return problem(500, "Internal Server Error", None, request.url.path)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(LotNotFoundError, lot_not_found)
    app.add_exception_handler(psycopg.OperationalError, database_down)
    app.add_exception_handler(Exception, server_error)


# -- app ---------------------------------------------------------------------------------------------


def _connection(request: Request) -> Iterator[psycopg.Connection[Any]]:
    pool: ConnectionPool[psycopg.Connection[Any]] = request.app.state.pool
    with pool.connection(timeout=POOL_OPEN_TIMEOUT_S) as conn:
        yield conn


Db = Annotated[psycopg.Connection[Any], Depends(_connection)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}} for code in (404, 422, 500, 503)
}


def create_app(conninfo: str) -> FastAPI:
    """The trace API; its connection pool opens in the lifespan (nothing at import or here)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            conninfo, min_size=POOL_MIN_SIZE, max_size=POOL_MAX_SIZE, open=False, kwargs={"autocommit": True}
        )
        pool.open(wait=False)
        app.state.pool = pool
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(
        title="Cold-chain trace API",
        version="1",
        summary="Lot traces with per-leg temperature evidence, and verification of the EPCIS event ledger.",
        lifespan=lifespan,
        responses=_ERRORS,
    )
    _install_problem_handlers(app)

    @app.get("/health", response_model=Health, tags=["ops"])
    def health(conn: Db) -> Health:
        """Database reachable, and the ledger's head."""
        return Health(status="ok", database=True, ledger_head_seq=ledger.head_seq(conn))

    @app.get("/trace/{lot_id:path}", response_model=Trace, tags=["trace"])
    def trace(lot_id: str, conn: Db) -> Trace:
        """A lot's custody legs, each with the temperature evidence of the asset that held it."""
        found = trace_lot(conn, lot_id)
        if found is None:
            raise LotNotFoundError(lot_id)
        return Trace.model_validate(found)

    @app.get("/ledger/verify", response_model=VerifyResponse, tags=["ledger"])
    def verify(conn: Db) -> VerifyResponse:
        """Recompute every event hash and chain link."""
        result = ledger.verify(conn)
        return VerifyResponse(ok=result.ok, events=result.events, first_bad_seq=result.first_bad_seq)

    return app
