"""Stage 3, API: the app factory of the HTTP trace API (FastAPI) over the ledger; every error is RFC 9457
problem+json."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from traceability.api import auth
from traceability.api import metrics as api_metrics
from traceability.api.gs1_headers import Gs1Headers
from traceability.api.options import ApiOptions
from traceability.api.pools import open_pools
from traceability.api.problems import ERRORS, NOT_AUDITED, install_problem_handlers, printable, problem
from traceability.api.routes import (
    alarms,
    epcis,
    health,
    ledger,
    locations,
    queries,
    readings,
    reports,
    resources,
    scorecards,
    shipments,
    trace,
)
from traceability.api.routes.health import Liveness
from traceability.capture_worker import Running, start_thread
from traceability.web import pages as web_pages

log = logging.getLogger(__name__)


def _capture_worker(app: FastAPI, conninfo: str) -> Running | None:
    """The in-process capture worker, when the options ask for one (an API served alone)."""
    options: ApiOptions = app.state.options
    if not options.capture_worker:
        return None
    running = start_thread(conninfo, options.capture)
    app.state.capture_worker = running.worker
    return running


def create_app(
    conninfo: str, *, options: ApiOptions | None = None, liveness: Liveness | None = None
) -> FastAPI:
    """The trace API; its connection pools open in the lifespan (nothing at import or here).

    ``liveness`` says which stages of the process are alive (``Services.liveness``); /health reports them
    and answers 503 when one is not. It is called in the event loop, so it must not block."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pools = open_pools(app, conninfo)
        worker = _capture_worker(app, conninfo)
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            pools.close()

    app = FastAPI(
        title="Cold-chain trace API",
        version="2",
        summary="EPCIS 2.0 capture and query, lot traces with per-leg temperature evidence, and verification "
        "of the hash-chained event ledger. Every route but /health needs an API key.",
        lifespan=lifespan,
        responses=ERRORS,
    )
    app.state.options = options or ApiOptions()
    app.state.liveness = liveness
    install_problem_handlers(app)

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

    # Outermost (added last): a version refusal or an OPTIONS answer holds no connection.
    app.add_middleware(Gs1Headers)
    # Outside even that: every request counted under its route template, and GET /metrics (no key).
    api_metrics.install(app)

    # readings and reports before trace: /trace/{id:path} would take /trace/{id}/readings or
    # /trace/{id}/report.pdf for a lot named '{id}/readings' or '{id}/report.pdf'.
    for resource in (
        health,
        readings,
        reports,
        trace,
        ledger,
        epcis,
        resources,
        queries,
        alarms,
        locations,
        shipments,
        scorecards,
    ):
        app.include_router(resource.router)
    web_pages.install(app)  # the web pages (/ui/, /scan/) on the same app
    return app
