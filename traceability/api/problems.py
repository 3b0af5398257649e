"""Stage 3, API: RFC 9457 problem+json: the body, the errors routes raise, and the app's handlers."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from traceability.epcis.events_query import QueryParameterError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://ns.coldchain.example/problems/"
BUSY = "every database connection is in use; try again shortly"
UNUSABLE_VALUE = "a value in the request cannot be used (a NUL character, or out of range)"
NOT_AUDITED = "the request could not be recorded in the audit log; nothing is served unaudited"
UNKNOWN_KEY = "unknown or revoked API key"


class Problem(BaseModel):
    """RFC 9457 problem details (extension members allowed)."""

    model_config = {"extra": "allow"}

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


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


def printable(text: str) -> str:
    """Text as the audit log and the log keep it: a NUL (which PostgreSQL text cannot hold) as ``%00``."""
    return text.replace("\x00", "%00")


def install_problem_handlers(app: FastAPI) -> None:
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


# The problem responses every route may give, as the OpenAPI document lists them.
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}}
    for code in (400, 401, 403, 404, 422, 500, 503)
}
