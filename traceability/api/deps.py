"""Stage 3, API: the request's dependencies: its API key, principal, role checks, scope and connection."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from traceability.api import auth
from traceability.api.pools import Conn, Lease
from traceability.api.problems import PROBLEM_BASE, UNKNOWN_KEY, ApiProblemError
from traceability.api.scope import Scope, scope_of

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key (cck_...)")
_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")


def _unauthorized(detail: str) -> ApiProblemError:
    return ApiProblemError(401, "Unauthorized", detail, type_=PROBLEM_BASE + "unauthorized")


async def presented_key(
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


async def authenticate(request: Request, secret: str) -> auth.Principal:
    """The principal of ``secret``, looked up on the request's connection (taken here, kept to the audit
    row), else 401."""
    lease: Lease = request.state.lease
    conn = await lease.acquire()
    found = await run_in_threadpool(auth.lookup, conn, secret)
    if found is None:
        raise _unauthorized(UNKNOWN_KEY)
    request.state.principal = found
    return found


async def current_principal(
    request: Request, secret: Annotated[str, Depends(presented_key)]
) -> auth.Principal:
    return await authenticate(request, secret)


async def _connection(request: Request, _: Annotated[auth.Principal, Depends(current_principal)]) -> Conn:
    """The request's connection, for an authenticated request only (whatever the order of a route's
    parameters, the key is checked first)."""
    lease: Lease = request.state.lease
    return await lease.acquire()


Db = Annotated[Conn, Depends(_connection)]


def permit(principal: auth.Principal, permission: str) -> auth.Principal:
    if not principal.may(permission):
        raise ApiProblemError(
            403,
            "Forbidden",
            f"role {principal.role!r} may not {permission}",
            type_=PROBLEM_BASE + "forbidden",
        )
    return principal


def _require(permission: str) -> Any:
    async def check(principal: Annotated[auth.Principal, Depends(current_principal)]) -> auth.Principal:
        return permit(principal, permission)

    return Depends(check)


Reader = Annotated[auth.Principal, _require(auth.READ)]
Operator = Annotated[auth.Principal, _require(auth.ALARMS)]
Registrar = Annotated[auth.Principal, _require(auth.LOCATIONS)]  # sets locations' geofences
Principal = Annotated[auth.Principal, Depends(current_principal)]


async def current_scope(principal: Annotated[auth.Principal, Depends(current_principal)]) -> Scope:
    """What the request's key may read (its role and party): pass ``scope.params()`` to the query."""
    return scope_of(principal)


ScopeDep = Annotated[Scope, Depends(current_scope)]
