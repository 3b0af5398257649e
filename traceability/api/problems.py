"""Stage 3, API: RFC 9457 problem+json: the body, the errors routes raise, and the app's handlers."""

from __future__ import annotations

import logging
from enum import StrEnum
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from traceability.epcis.events_query import QueryParameterError, QueryTooLargeError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://ns.coldchain.example/problems/"
BUSY = "every database connection is in use; try again shortly"
UNUSABLE_VALUE = "a value in the request cannot be used (a NUL character, or out of range)"
NOT_AUDITED = "the request could not be recorded in the audit log; nothing is served unaudited"
UNKNOWN_KEY = "unknown or revoked API key"


# The routes under this prefix are EPCIS's (GS1 REST bindings): their problems carry EPCIS exception types.
EPCIS_PREFIX = "/epcis"


class EpcisException(StrEnum):
    """The EPCIS 2.0 exceptions as the GS1 REST bindings name them in a problem's ``type``."""

    QUERY_PARAMETER = "epcisException:QueryParameterException"
    QUERY_VALIDATION = "epcisException:QueryValidationException"
    VALIDATION = "epcisException:ValidationException"
    SECURITY = "epcisException:SecurityException"
    NO_SUCH_RESOURCE = "epcisException:NoSuchResourceException"
    NO_SUCH_NAME = "epcisException:NoSuchNameException"
    NOT_ACCEPTABLE = "epcisException:NotAcceptableException"
    RESOURCE_ALREADY_EXISTS = "epcisException:ResourceAlreadyExistsException"
    QUERY_TOO_LARGE = "epcisException:QueryTooLargeException"
    QUERY_TOO_COMPLEX = "epcisException:QueryTooComplexException"
    CAPTURE_LIMIT_EXCEEDED = "epcisException:CaptureLimitExceededException"
    URI_TOO_LONG = "epcisException:URITooLongException"
    UNSUPPORTED_MEDIA_TYPE = "epcisException:UnsupportedMediaTypeException"
    SUBSCRIPTION_CONTROLS = "epcisException:SubscriptionControlsException"
    IMPLEMENTATION = "epcisException:ImplementationException"


# The one mapping of this API's problems to EPCIS exceptions, for the routes under EPCIS_PREFIX: a problem
# type of ours that has its own exception first, else the exception of the status. A type that already is an
# EPCIS exception stays; a status not listed keeps its type.
EPCIS_EXCEPTION_OF_TYPE: dict[str, EpcisException] = {
    PROBLEM_BASE + "capture-refused": EpcisException.VALIDATION,
    PROBLEM_BASE + "too-large": EpcisException.CAPTURE_LIMIT_EXCEEDED,
}
EPCIS_EXCEPTION_OF_STATUS: dict[int, EpcisException] = {
    400: EpcisException.QUERY_PARAMETER,
    401: EpcisException.SECURITY,
    403: EpcisException.SECURITY,
    404: EpcisException.NO_SUCH_RESOURCE,
    406: EpcisException.NOT_ACCEPTABLE,
    409: EpcisException.RESOURCE_ALREADY_EXISTS,
    413: EpcisException.QUERY_TOO_LARGE,
    414: EpcisException.URI_TOO_LONG,
    415: EpcisException.UNSUPPORTED_MEDIA_TYPE,
    422: EpcisException.QUERY_PARAMETER,
    500: EpcisException.IMPLEMENTATION,
    501: EpcisException.IMPLEMENTATION,
    503: EpcisException.IMPLEMENTATION,
}


def epcis_type(status: int, type_: str) -> str:
    """The EPCIS exception type of a problem an EPCIS route answers (``type_`` is this API's own)."""
    if type_.startswith("epcisException:"):
        return type_
    found = EPCIS_EXCEPTION_OF_TYPE.get(type_) or EPCIS_EXCEPTION_OF_STATUS.get(status)
    return str(found) if found is not None else type_


def is_epcis(path: str) -> bool:
    return path == EPCIS_PREFIX or path.startswith(EPCIS_PREFIX + "/")


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
    if is_epcis(instance):
        type_ = epcis_type(status, type_)
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

    async def too_large(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, QueryTooLargeError)  # its message is ours, written for the client
        return problem(
            413, "Query too large", str(exc), request.url.path, type_=EpcisException.QUERY_TOO_LARGE
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
    app.add_exception_handler(QueryTooLargeError, too_large)
    app.add_exception_handler(psycopg.OperationalError, database_down)
    app.add_exception_handler(Exception, server_error)


# The problem responses every route may give, as the OpenAPI document lists them.
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}}
    for code in (400, 401, 403, 404, 422, 500, 503)
}
