"""Stage 3, API: read-only HTTP trace API (FastAPI) over the ledger; every error is RFC 9457 problem+json."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import psycopg
from fastapi import Depends, FastAPI, Query, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from traceability import limits
from traceability.api import auth
from traceability.epcis import capture, events_query
from traceability.epcis.events_query import QueryParameterError
from traceability.ledger import chain, checkpoint
from traceability.ledger import verify as ledger_verify
from traceability.trace import trace

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://ns.coldchain.example/problems/"
Conn = psycopg.Connection[Any]
BUSY = "every database connection is in use; try again shortly"
UNUSABLE_VALUE = "a value in the request cannot be used (a NUL character, or out of range)"
NOT_AUDITED = "the request could not be recorded in the audit log; nothing is served unaudited"
UNKNOWN_KEY = "unknown or revoked API key"


# /health has a connection of its own (a pool of one), so it answers while every request connection is
# busy; it waits this long for it, or for the database, before it reports the database unreachable.
HEALTH_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class ApiOptions:
    """How the API uses the database, and what capture accepts (the settings' ``api_*`` and ``capture_*``).

    Each request holds one connection from first use to its audit row: ``pool_size`` requests are served
    at once, the others wait up to ``pool_timeout_s`` for a connection and are then answered 503."""

    pool_size: int = limits.API_POOL_SIZE
    pool_timeout_s: float = limits.API_POOL_TIMEOUT_S
    capture: capture.CaptureLimits = field(default_factory=lambda: capture.CaptureLimits())
    # The ledger's key file: /ledger/verify pins its public half and checks the checkpoint log beside
    # it; None (or no file yet): no key is pinned, and stored checkpoints cannot be verified.
    ledger_key: Path | None = None
    # How long a capture body may take to arrive (it is read before the request takes a connection).
    body_timeout_s: float = limits.API_BODY_TIMEOUT_S

    def __post_init__(self) -> None:
        if not 1 <= self.pool_size <= limits.API_POOL_SIZE_MAX:
            raise ValueError(f"the API pool size must be in [1, {limits.API_POOL_SIZE_MAX}]")
        # ``not a <= b`` also refuses nan; the upper bound refuses infinity.
        if not 0 < self.pool_timeout_s <= limits.API_POOL_TIMEOUT_S_MAX:
            raise ValueError(f"the API pool timeout must be in (0, {limits.API_POOL_TIMEOUT_S_MAX:g}] s")
        if not 0 < self.body_timeout_s <= limits.API_BODY_TIMEOUT_S_MAX:
            raise ValueError(f"the API body timeout must be in (0, {limits.API_BODY_TIMEOUT_S_MAX:g}] s")


# -- response models ---------------------------------------------------------------------------------


class Problem(BaseModel):
    """RFC 9457 problem details (extension members allowed)."""

    model_config = {"extra": "allow"}

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
    stages: dict[str, bool] = Field(
        default_factory=dict, description="each stage of this process and whether it is alive"
    )


class VerifyResponse(BaseModel):
    ok: bool = Field(description="nothing found wrong in the chain or any checkpoint")
    events: int = Field(description="ledger entries read")
    first_bad_seq: int | None = Field(description="first seq where the chain does not hold; null if ok")
    anchored: bool = Field(
        default=False, description="ok, a key is pinned, and a checkpoint signed by it vouches for the chain"
    )
    signed_seq: int | None = Field(default=None, description="the chain is signed through this seq")
    pinned: bool = Field(default=False, description="a public key outside the database was pinned")
    problems: list[str] = Field(default_factory=list, description="each problem found, naming its seq")


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
    mkt_c: float | None = Field(None, description="mean kinetic temperature, ΔH/R = 10 000 K")
    max_gap_s: float | None = Field(None, description="longest interval between two readings of a probe")
    gaps: int = Field(0, description="intervals longer than the allowed recording interval")
    allowed_gap_s: float = Field(
        600.0, description="allowed recording interval (storage 30 min, transport 10)"
    )
    first_reading: datetime | None = None
    last_reading: datetime | None = None


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
    chain_break_id: int | None = Field(description="null for a break the trace itself finds (handoff)")
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
    error_declaration: bool = Field(False, description="this entry is an errorDeclaration")
    declared_wrong: bool = Field(False, description="an errorDeclaration names this event")


class BondedStep(BaseModel):
    status: str
    line: str | None
    seq: int
    event_time: datetime


class FirstEvent(BaseModel):
    seq: int
    event_time: datetime
    biz_step: str | None
    read_point: str | None
    biz_location: str | None


class Origin(BaseModel):
    country: str | None
    first_event: FirstEvent | None


class LineageLink(BaseModel):
    id: str
    seq: int
    event_time: datetime
    depth: int
    output_id: str | None = None
    input_id: str | None = None


class Backward(BaseModel):
    origin: Origin
    inputs: list[LineageLink]


class Shipment(BaseModel):
    seq: int
    event_time: datetime
    biz_step: str | None
    biz_transactions: list[str]
    destinations: list[str]
    read_point: str | None
    transport_mode: str | None


class Recipient(BaseModel):
    party_id: str
    name: str | None
    role: str | None
    since: datetime | None


class Forward(BaseModel):
    outputs: list[LineageLink]
    shipments: list[Shipment]
    recipients: list[Recipient] = Field(
        description="custodians of the lot and its outputs: whom a recall calls"
    )


class TraceQuery(BaseModel):
    id: str
    kind: str = Field(description="lot, epc, epc_class, container, asset, document")
    lots: list[str]


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
    bonded: list[BondedStep] = []
    backward: Backward | None = None
    forward: Forward | None = None
    query: TraceQuery | None = None


class CaptureJobModel(BaseModel):
    captureID: str  # noqa: N815 - GS1 REST bindings field name
    running: bool
    success: bool
    captureErrorBehaviour: str  # noqa: N815
    errors: list[dict[str, Any]]
    events: int
    firstSeq: int | None  # noqa: N815
    lastSeq: int | None  # noqa: N815
    alreadyCaptured: list[dict[str, Any]] = Field(  # noqa: N815
        default_factory=list, description="events of the document the ledger held already: eventID, seq"
    )


class CheckpointModel(BaseModel):
    seq: int
    entry_hash: str
    signed_at: str
    public_key: str
    signature: str


class Alarm(BaseModel):
    model_config = {"extra": "allow"}
    alarm_id: int
    asset_id: str | None = None
    rule_id: str | None = None
    severity: str | None = None
    state: str | None = None


class AlarmAction(BaseModel):
    note: str = Field("", max_length=2000)


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


class ApiProblemError(Exception):
    """An error answered as problem+json with this status, title, type and detail."""

    def __init__(
        self, status: int, title: str, detail: str, *, type_: str = "about:blank", **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.type_, self.extra = status, title, detail, type_, extra


def _install_problem_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        title = HTTPStatus(exc.status_code).phrase
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        return problem(exc.status_code, title, detail, request.url.path)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg")), "type": str(e.get("type"))}
            for e in exc.errors()
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

    async def api_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiProblemError)
        response = problem(exc.status, exc.title, exc.detail, request.url.path, type_=exc.type_, **exc.extra)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="coldchain"'
        return response

    async def bad_parameter(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, QueryParameterError)  # its message is ours, written for the client
        return problem(
            400, "Bad Request", f"unusable value: {exc}", request.url.path, type_=PROBLEM_BASE + "bad-value"
        )

    async def bad_value(request: Request, exc: Exception) -> JSONResponse:
        # The database's (or the driver's) words stay in the log: they may quote the server's internals.
        log.info("value refused on %s: %s", printable(request.url.path), exc)
        return problem(400, "Bad Request", UNUSABLE_VALUE, request.url.path, type_=PROBLEM_BASE + "bad-value")

    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        log.error("database unavailable: %s", exc)
        return problem(503, "Service Unavailable", "the database cannot be reached", request.url.path)

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", printable(request.url.path), exc_info=exc)
        return problem(500, "Internal Server Error", None, request.url.path)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(LotNotFoundError, lot_not_found)
    app.add_exception_handler(ApiProblemError, api_problem)
    app.add_exception_handler(psycopg.DataError, bad_value)
    app.add_exception_handler(QueryParameterError, bad_parameter)
    app.add_exception_handler(psycopg.OperationalError, database_down)
    app.add_exception_handler(Exception, server_error)


# -- app ---------------------------------------------------------------------------------------------


class _Pools:
    """The API's connections: a pool for the requests (one connection each) and one of a single connection
    for /health. A request waits for its connection on an asyncio semaphore as wide as the pool, in the
    event loop: no worker thread is held while it waits, so a request that has a connection always finds
    a thread to run on (waiting in the threads, a burst of requests could hold them all)."""

    def __init__(self, conninfo: str, options: ApiOptions) -> None:
        kwargs = {"autocommit": True}
        self.work: ConnectionPool[Conn] = ConnectionPool(
            conninfo, min_size=1, max_size=options.pool_size, open=False, kwargs=kwargs
        )
        self.health: ConnectionPool[Conn] = ConnectionPool(
            conninfo, min_size=1, max_size=1, open=False, kwargs=kwargs
        )
        self.work_gate = asyncio.Semaphore(options.pool_size)
        self.health_gate = asyncio.Semaphore(1)
        self.timeout_s = options.pool_timeout_s

    def open(self) -> None:
        self.work.open(wait=False)
        self.health.open(wait=False)

    def close(self) -> None:
        self.work.close()
        self.health.close()

    def lease(self) -> _Lease:
        return _Lease(self.work, self.work_gate, self.timeout_s)

    def health_lease(self) -> _Lease:
        return _Lease(self.health, self.health_gate, HEALTH_TIMEOUT_S)


def open_pools(app: FastAPI, conninfo: str, options: ApiOptions | None = None) -> _Pools:
    """Open the app's connection pools (the lifespan does this; a caller that runs the app without its
    lifespan, as schemathesis does, calls it and closes what it returns)."""
    pools = _Pools(conninfo, options or app.state.options)
    pools.open()
    app.state.pools = pools
    return pools


class _Lease:
    """A request's one connection: taken when a dependency first asks for it, given back after the audit."""

    def __init__(self, pool: ConnectionPool[Conn], gate: asyncio.Semaphore, timeout_s: float) -> None:
        self.pool, self.gate, self.timeout_s = pool, gate, timeout_s
        self.conn: Conn | None = None
        self._gated = False

    async def acquire(self) -> Conn:
        if self.conn is not None:
            return self.conn
        if not self._gated:
            try:
                await asyncio.wait_for(self.gate.acquire(), self.timeout_s)
            except TimeoutError:
                raise ApiProblemError(
                    503, "Service Unavailable", BUSY, type_=PROBLEM_BASE + "busy", retry_after=1
                ) from None
            self._gated = True
        # The gate leaves a connection free (or one being opened): this wait is short, or the database is
        # down (PoolTimeout, an OperationalError: 503).
        self.conn = await run_in_threadpool(self.pool.getconn, self.timeout_s)
        return self.conn

    async def release(self) -> None:
        conn, self.conn = self.conn, None
        try:
            if conn is not None:
                await run_in_threadpool(self.pool.putconn, conn)
        finally:
            if self._gated:
                self._gated = False
                self.gate.release()


def printable(text: str) -> str:
    """Text as the audit log and the log keep it: a NUL (which PostgreSQL text cannot hold) as ``%00``."""
    return text.replace("\x00", "%00")


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key (cck_...)")
_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")


def _unauthorized(detail: str) -> ApiProblemError:
    return ApiProblemError(401, "Unauthorized", detail, type_=PROBLEM_BASE + "unauthorized")


async def _api_key(
    api_key: Annotated[str | None, Security(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> str:
    """The key the request presents; a request without one (or with one of no key's form) is answered
    401 here, before it takes a connection: requests without a key cannot use up the pool."""
    secret = api_key or (bearer.credentials if bearer is not None else None)
    if not secret:
        raise _unauthorized("an API key is required (X-API-Key or Bearer)")
    if not auth.well_formed(secret):
        raise _unauthorized(UNKNOWN_KEY)
    return secret


async def _authenticate(request: Request, secret: str) -> auth.Principal:
    """The principal of ``secret``, looked up on the request's connection (taken here, kept to the audit
    row), else 401."""
    lease: _Lease = request.state.lease
    conn = await lease.acquire()
    found = await run_in_threadpool(auth.lookup, conn, secret)
    if found is None:
        raise _unauthorized(UNKNOWN_KEY)
    request.state.principal = found
    return found


async def _principal(request: Request, secret: Annotated[str, Depends(_api_key)]) -> auth.Principal:
    return await _authenticate(request, secret)


async def _connection(request: Request, _: Annotated[auth.Principal, Depends(_principal)]) -> Conn:
    """The request's connection, for an authenticated request only (whatever the order of a route's
    parameters, the key is checked first)."""
    lease: _Lease = request.state.lease
    return await lease.acquire()


Db = Annotated[Conn, Depends(_connection)]


def _permit(principal: auth.Principal, permission: str) -> auth.Principal:
    if not principal.may(permission):
        raise ApiProblemError(
            403,
            "Forbidden",
            f"role {principal.role!r} may not {permission}",
            type_=PROBLEM_BASE + "forbidden",
        )
    return principal


def _require(permission: str) -> Any:
    async def check(principal: Annotated[auth.Principal, Depends(_principal)]) -> auth.Principal:
        return _permit(principal, permission)

    return Depends(check)


Reader = Annotated[auth.Principal, _require(auth.READ)]
Operator = Annotated[auth.Principal, _require(auth.ALARMS)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}}
    for code in (400, 401, 403, 404, 422, 500, 503)
}


# The capture body as the OpenAPI document shows it (the route reads the bytes itself, under the limits).
_CAPTURE_BODY: dict[str, Any] = {
    "required": True,
    "description": "an EPCISDocument (EPCIS 2.0 JSON-LD)",
    "content": {
        media: {"schema": {"type": "object", "additionalProperties": True}}
        for media in ("application/ld+json", "application/json")
    },
}


async def _body(request: Request, limit: int, timeout_s: float) -> bytes | None:
    """The request body, None as soon as it is longer than ``limit`` bytes (the rest is not read); 408
    when the whole of it has not arrived within ``timeout_s``. It is read before the request takes a
    connection: a slow upload holds none."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    return None
                chunks.append(chunk)
    except TimeoutError:
        raise ApiProblemError(
            408,
            "Request Timeout",
            f"the request body did not arrive within {timeout_s:g} s",
            type_=PROBLEM_BASE + "body-timeout",
        ) from None
    return b"".join(chunks)


def _alarms() -> Any:
    """rules.alarms, imported when first used; 501 while it is not there."""
    try:
        return importlib.import_module("rules.alarms")
    except ImportError:
        raise ApiProblemError(501, "Not Implemented", "alarms are not available in this build") from None


Liveness = Callable[[], Mapping[str, bool]]


def create_app(
    conninfo: str, *, options: ApiOptions | None = None, liveness: Liveness | None = None
) -> FastAPI:
    """The trace API; its connection pools open in the lifespan (nothing at import or here).

    ``liveness`` says which stages of the process are alive (``Services.liveness``); /health reports them
    and answers 503 when one is not. It is called in the event loop, so it must not block."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pools = open_pools(app, conninfo)
        try:
            yield
        finally:
            pools.close()

    app = FastAPI(
        title="Cold-chain trace API",
        version="2",
        summary="EPCIS 2.0 capture and query, lot traces with per-leg temperature evidence, and verification "
        "of the hash-chained event ledger. Every route but /health needs an API key.",
        lifespan=lifespan,
        responses=_ERRORS,
    )
    opts = app.state.options = options or ApiOptions()
    _install_problem_handlers(app)

    @app.middleware("http")
    async def one_connection(request: Request, call_next: Any) -> Any:
        """The request's connection (taken by the first dependency that needs it) serves the key lookup,
        the work and the audit row, and goes back to the pool after the audit row is written."""
        lease = request.app.state.pools.lease()
        request.state.lease = lease
        path = request.url.path
        try:
            try:
                response = await call_next(request)
            except Exception as exc:  # an error no handler answered: logged, never shown
                log.exception("unhandled error on %s", printable(path), exc_info=exc)
                response = problem(500, "Internal Server Error", None, path)
            principal = getattr(request.state, "principal", None)
            if principal is not None and lease.conn is not None:
                args = (principal, request.method, printable(path), printable(str(request.url.query)))
                try:
                    await run_in_threadpool(auth.audit, lease.conn, *args, response.status_code)
                except psycopg.Error as exc:
                    log.error("audit row not written for %s %s: %s", request.method, printable(path), exc)
                    response = problem(503, "Service Unavailable", NOT_AUDITED, path)
            return response
        finally:
            await lease.release()

    @app.get(
        "/health",
        response_model=Health,
        tags=["ops"],
        responses={503: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}}},
    )
    async def health(request: Request) -> Any:
        """Each stage's liveness, the database reachable, and the ledger's head (no key needed). 503 when
        a stage is dead or the database cannot be reached; the body names them. It has a connection of
        its own, so it answers while every request connection is busy."""
        stages = _stages(liveness)
        head: int | None = None
        database = True
        lease = request.app.state.pools.health_lease()
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

    @app.get("/trace/{trace_id:path}", response_model=Trace, tags=["trace"])
    def trace_route(trace_id: str, conn: Db, _: Reader) -> Trace:
        """The trace of a lot, named by lot id or code, EPC (SGTIN, LGTIN, SSCC), container number or
        B/L / waybill: backward and forward chain, custody legs with temperature evidence, verdict."""
        found = trace(conn, trace_id)
        if found is None:
            raise LotNotFoundError(trace_id)
        return Trace.model_validate(found)

    @app.get("/ledger/verify", response_model=VerifyResponse, tags=["ledger"])
    def verify(conn: Db, _: Reader, deep: bool = False) -> VerifyResponse:
        """Check every event's chained bytes, every chain link, that the served JSON is those bytes, and the
        newest signed checkpoint; ``deep=true`` also re-derives every event's GS1 CBV 2.0 hash (slow)."""
        public_key: str | None = None
        kept: list[tuple[str, checkpoint.Checkpoint]] = []
        key_path = opts.ledger_key
        if key_path is not None and key_path.exists():
            try:
                public_key = checkpoint.pinned_key(str(key_path))
                kept = checkpoint.own_log(key_path)
            except checkpoint.CheckpointFormatError:
                log.exception("the ledger's key file or checkpoint log is unreadable")
                raise ApiProblemError(
                    503, "Service Unavailable", "the ledger's key file or checkpoint log is unreadable"
                ) from None
        result = ledger_verify.verify(conn, deep=deep, public_key=public_key, kept=kept)
        return VerifyResponse(
            ok=result.ok,
            events=result.events,
            first_bad_seq=result.first_bad_seq,
            anchored=result.anchored,
            signed_seq=result.signed_seq,
            pinned=result.pinned,
            problems=list(result.problems),
        )

    @app.get("/ledger/checkpoint", response_model=CheckpointModel, tags=["ledger"])
    def latest_checkpoint(conn: Db, _: Reader) -> CheckpointModel:
        """The newest signed checkpoint of the chain head."""
        cp = checkpoint.latest(conn)
        if cp is None:
            raise ApiProblemError(404, "Not Found", "no checkpoint signed yet")
        return CheckpointModel(**cp.as_dict())

    @app.post(
        "/epcis/capture",
        status_code=202,
        response_model=CaptureJobModel,
        tags=["epcis"],
        responses={
            202: {"headers": {"Location": {"description": "the capture job", "schema": {"type": "string"}}}},
            408: _ERRORS[400],
            413: _ERRORS[400],
        },
        openapi_extra={"requestBody": _CAPTURE_BODY},
    )
    async def capture_route(
        request: Request, response: Response, secret: Annotated[str, Depends(_api_key)]
    ) -> Any:
        """Capture an EPCISDocument, all or nothing (GS1 REST bindings; captureErrorBehaviour rollback).
        Refused (400, or 413 for a document or an event over its size limit) with the reasons, which the
        capture job keeps too; the events already in the ledger with the same content are listed in
        ``alreadyCaptured`` (idempotent). 408 when the body does not arrive in time."""
        limits = opts.capture
        # The body first (bounded in bytes and time), then the connection: the key lookup, the capture
        # and the audit row share it, and no upload holds it while its bytes arrive.
        raw = await _body(request, limits.document_bytes, opts.body_timeout_s)
        principal = _permit(await _authenticate(request, secret), auth.CAPTURE)
        conn = await request.state.lease.acquire()
        if raw is None:
            job = await run_in_threadpool(
                capture.refuse, conn, [capture.too_large_document(limits)], captured_by=principal.name
            )
        else:
            job = await run_in_threadpool(
                capture.capture_bytes, conn, raw, captured_by=principal.name, limits=limits
            )
        if not job.success:
            raise ApiProblemError(
                413 if job.too_large else 400,
                "Capture refused",
                "the document was not captured: " + "; ".join(e["message"] for e in job.errors)[:2000],
                type_=PROBLEM_BASE + ("too-large" if job.too_large else "capture-refused"),
                errors=job.errors,
                captureID=job.capture_id,
            )
        response.headers["Location"] = f"/epcis/capture/{job.capture_id}"
        return CaptureJobModel(**job.as_dict())

    @app.get("/epcis/capture/{capture_id}", response_model=CaptureJobModel, tags=["epcis"])
    def capture_job(
        capture_id: str, conn: Db, principal: Annotated[auth.Principal, Depends(_principal)]
    ) -> CaptureJobModel:
        """A capture job's state."""
        if not (principal.may(auth.CAPTURE) or principal.may(auth.READ)):
            raise ApiProblemError(403, "Forbidden", f"role {principal.role!r} may not read capture jobs")
        job = capture.get_job(conn, capture_id)
        if job is None:
            raise ApiProblemError(404, "Not Found", f"no capture job {capture_id!r}")
        return CaptureJobModel(**job.as_dict())

    @app.get(
        "/epcis/events",
        tags=["epcis"],
        response_model=None,
        response_class=Response,
        responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
    )
    def events_route(
        request: Request,
        conn: Db,
        _: Reader,
        ge_event_time: Annotated[datetime | None, Query(alias="GE_eventTime")] = None,
        lt_event_time: Annotated[datetime | None, Query(alias="LT_eventTime")] = None,
        event_type: Annotated[list[str] | None, Query(alias="eventType")] = None,
        eq_biz_step: Annotated[list[str] | None, Query(alias="EQ_bizStep")] = None,
        match_epc: Annotated[list[str] | None, Query(alias="MATCH_epc")] = None,
        match_parent_id: Annotated[list[str] | None, Query(alias="MATCH_parentID")] = None,
        eq_biz_location: Annotated[list[str] | None, Query(alias="EQ_bizLocation")] = None,
        eq_read_point: Annotated[list[str] | None, Query(alias="EQ_readPoint")] = None,
        uom: Annotated[
            Literal["CEL", "KEL", "FAH"] | None,
            Query(description="unit of the sensor thresholds (GE_value_Temperature=...); default KEL"),
        ] = None,
        ge_value_temperature: Annotated[float | None, Query(alias="GE_value_Temperature")] = None,
        le_value_temperature: Annotated[float | None, Query(alias="LE_value_Temperature")] = None,
        ge_max_value_temperature: Annotated[float | None, Query(alias="GE_maxValue_Temperature")] = None,
        le_min_value_temperature: Annotated[float | None, Query(alias="LE_minValue_Temperature")] = None,
        per_page: Annotated[int | None, Query(alias="perPage", ge=1, le=events_query.MAX_PER_PAGE)] = None,
        next_page_token: Annotated[str | None, Query(alias="nextPageToken", max_length=200)] = None,
    ) -> Response:
        """EPCIS 2.0 event query (SimpleEventQuery parameters); any ``<OP>_<value|minValue|maxValue|
        meanValue>_<Type>`` sensor filter is accepted, thresholds in ``uom`` (converted: KEL matches CEL
        data). Pages are ``perPage`` long; the next one is in the Link header (``nextPageToken``)."""
        q = events_query.build(
            ge_event_time=ge_event_time,
            lt_event_time=lt_event_time,
            event_type=event_type,
            eq_biz_step=eq_biz_step,
            match_epc=match_epc,
            match_parent_id=match_parent_id,
            eq_biz_location=eq_biz_location,
            eq_read_point=eq_read_point,
            all_params=dict(request.query_params),
            uom=uom,
            per_page=per_page,
            next_page_token=next_page_token,
        )
        events, token = events_query.run(conn, q)
        response = Response(capture.query_document(events), media_type="application/json")
        if token is not None:
            params = dict(request.query_params)
            params["nextPageToken"] = token
            response.headers["Link"] = f'<{request.url.path}?{urlencode(params)}>; rel="next"'
            response.headers["GS1-Next-Page-Token"] = token
        return response

    @app.get("/alarms", response_model=list[Alarm], tags=["alarms"])
    def alarms_route(
        conn: Db,
        _: Operator,
        state: Annotated[Literal["open", "acknowledged", "resolved"] | None, Query()] = None,
        asset_id: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[Alarm]:
        """Alarms, newest first (operator role)."""
        rows = _alarms().list_alarms(conn, state=state, asset_id=asset_id, limit=limit)
        return [Alarm.model_validate(r) for r in rows]

    def _act(conn: psycopg.Connection[Any], name: str, alarm_id: int, by: str, note: str) -> Alarm:
        module = _alarms()
        try:
            with conn.transaction():
                found = getattr(module, name)(conn, alarm_id, by=by, note=note)
        except module.AlarmStateError as exc:
            raise ApiProblemError(409, "Conflict", str(exc), type_=PROBLEM_BASE + "alarm-state") from None
        if found is None:
            raise ApiProblemError(404, "Not Found", f"no alarm {alarm_id}")
        return Alarm.model_validate(found)

    @app.post("/alarms/{alarm_id}/ack", response_model=Alarm, tags=["alarms"], responses={409: _ERRORS[404]})
    def ack_route(alarm_id: int, body: AlarmAction, conn: Db, principal: Operator) -> Alarm:
        """Acknowledge an alarm (operator role)."""
        return _act(conn, "acknowledge", alarm_id, principal.name, body.note)

    @app.post(
        "/alarms/{alarm_id}/resolve", response_model=Alarm, tags=["alarms"], responses={409: _ERRORS[404]}
    )
    def resolve_route(alarm_id: int, body: AlarmAction, conn: Db, principal: Operator) -> Alarm:
        """Resolve an alarm (operator role)."""
        return _act(conn, "resolve", alarm_id, principal.name, body.note)

    return app


def _stages(liveness: Liveness | None) -> dict[str, bool]:
    """Each stage's liveness; a liveness report that fails counts as a dead ``liveness`` stage."""
    if liveness is None:
        return {}
    try:
        return {str(name): bool(alive) for name, alive in liveness().items()}
    except Exception:  # the report itself failed: that is an unhealthy process, said as such
        log.exception("health: the liveness report failed")
        return {"liveness": False}
