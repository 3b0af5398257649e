"""Stage 3, API: EPCIS named queries and their webhook subscriptions (GS1 REST bindings: /epcis/queries,
/epcis/queries/{queryName}/events, /epcis/queries/{queryName}/subscriptions[/{subscriptionID}])."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from traceability.api import auth, pages
from traceability.api.deps import Db, Reader, ScopeDep
from traceability.api.problems import ERRORS, ApiProblemError, EpcisException
from traceability.api.scope import scope_of
from traceability.epcis import events_query
from traceability.epcis.events_query import QueryParameterError
from traceability.subscriptions import store

router = APIRouter(tags=["queries"])

# GS1 REST bindings exception types (the ``type`` of the problem answered).
QUERY_PARAMETER = EpcisException.QUERY_PARAMETER
NO_SUCH_NAME = EpcisException.NO_SUCH_NAME
NO_SUCH_RESOURCE = EpcisException.NO_SUCH_RESOURCE
ALREADY_EXISTS = EpcisException.RESOURCE_ALREADY_EXISTS
SUBSCRIPTION_CONTROLS = EpcisException.SUBSCRIPTION_CONTROLS
SECURITY = EpcisException.SECURITY
NAME_PATTERN = r"^[A-Za-z0-9._~-]{1,100}$"  # as the table's CHECK says: a name fits a URL path as it is

QueryName = Annotated[str, Path(alias="queryName", pattern=NAME_PATTERN)]
RESPONSES: dict[int | str, dict[str, Any]] = {409: ERRORS[400]}


class QueryBody(BaseModel):
    """A named query: its name and its EPCIS query language parameters."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    query: Annotated[dict[str, Any], Field(max_length=100)]


class ScheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    second: str | int | None = None
    minute: str | int | None = None
    hour: str | int | None = None
    dayOfMonth: str | int | None = None  # noqa: N815 (the EPCIS field name)
    month: str | int | None = None
    dayOfWeek: str | int | None = None  # noqa: N815 (the EPCIS field name)


class SubscriptionBody(BaseModel):
    """A query subscription: ``stream: true`` or a ``schedule``, delivered to ``dest``."""

    model_config = ConfigDict(extra="forbid")
    dest: Annotated[str, Field(max_length=2000)]
    signatureToken: Annotated[str | None, Field(max_length=500)] = None  # noqa: N815
    stream: bool | None = None
    schedule: ScheduleBody | None = None
    reportIfEmpty: bool = False  # noqa: N815
    initialRecordTime: datetime | None = None  # noqa: N815


def _no_query(name: str) -> ApiProblemError:
    return ApiProblemError(404, "Not Found", f"no named query {name!r}", type_=NO_SUCH_NAME)


def _bad_query(exc: QueryParameterError) -> ApiProblemError:
    return ApiProblemError(400, "Bad Request", str(exc), type_=QUERY_PARAMETER)


def _may_delete(principal: auth.Principal, owner: int) -> None:
    """A named query or a subscription is deleted by the key that made it, or by an admin."""
    if owner != principal.key_id and principal.role != "admin":
        raise ApiProblemError(
            403, "Forbidden", "only the key that made it, or an admin, may delete it", type_=SECURITY
        )


def _reader(principal: auth.Principal) -> dict[str, Any]:
    """Who reads the named queries and subscriptions: a key sees its own, its party's keys', or all of them
    if its role reads everything (cc_sees_key); another's is 404, as if there were none."""
    return store.reader(scope_of(principal).params(), principal.key_id)


def _name_token(name: str) -> str:
    return base64.urlsafe_b64encode(f"name:{name}".encode()).decode().rstrip("=")


def _token_name(token: str) -> str:
    try:
        kind, _, name = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        kind, name = "", ""
    if kind != "name":
        raise ApiProblemError(400, "Bad Request", "nextPageToken is not one this server issued")
    return name


@router.post("/epcis/queries", status_code=201, response_model=None, responses=RESPONSES)
def create_query_route(body: QueryBody, conn: Db, principal: Reader, response: Response) -> dict[str, Any]:
    """Create a named query (read role). Its parameters are those of GET /epcis/events; one it does not
    support is refused (400, QueryParameterException)."""
    try:
        created = store.create_query(conn, body.name, body.query, principal.key_id)
    except QueryParameterError as exc:
        raise _bad_query(exc) from None
    except store.QueryExistsError as exc:
        raise ApiProblemError(409, "Conflict", str(exc), type_=ALREADY_EXISTS) from None
    response.headers["Location"] = f"/epcis/queries/{body.name}"
    return created


@router.get("/epcis/queries", response_model=None)
def list_queries_route(
    request: Request,
    response: Response,
    conn: Db,
    principal: Reader,
    per_page: Annotated[int, Query(alias="perPage", ge=1, le=events_query.MAX_PER_PAGE)] = 30,
    next_page_token: Annotated[str | None, Query(alias="nextPageToken", max_length=200)] = None,
) -> list[dict[str, Any]]:
    """The named queries the key sees (its own, its party's; all of them to a role that reads everything),
    by name, ``perPage`` a page (the next one in the Link header)."""
    after = _token_name(next_page_token) if next_page_token else ""
    found = store.list_queries(conn, after=after, limit=per_page + 1, seen_by=_reader(principal))
    if len(found) > per_page:
        found = found[:per_page]
        pages.next_link(request, response, _name_token(found[-1]["name"]))
    return found


@router.get("/epcis/queries/{queryName}", response_model=None)
def get_query_route(name: QueryName, conn: Db, principal: Reader) -> dict[str, Any]:
    """A named query's definition (404 to a key that does not see it)."""
    try:
        return store.get_query(conn, name, _reader(principal))
    except store.UnknownQueryError:
        raise _no_query(name) from None


@router.delete("/epcis/queries/{queryName}", status_code=204)
def delete_query_route(name: QueryName, conn: Db, principal: Reader) -> Response:
    """Delete a named query and its subscriptions (the key that made it, or an admin)."""
    owner = store.query_owner(conn, name, _reader(principal))
    if owner is None:
        raise _no_query(name)
    _may_delete(principal, owner)
    try:
        store.delete_query(conn, name)
    except store.UnknownQueryError:
        raise _no_query(name) from None
    return Response(status_code=204)


@router.get(
    "/epcis/queries/{queryName}/events",
    response_model=None,
    response_class=Response,
    responses={200: {"content": pages.EVENTS_PAGE_CONTENT}},
)
def query_events_route(
    request: Request,
    name: QueryName,
    conn: Db,
    principal: Reader,
    scope: ScopeDep,
    per_page: Annotated[int | None, Query(alias="perPage", ge=1, le=events_query.MAX_PER_PAGE)] = None,
    next_page_token: Annotated[str | None, Query(alias="nextPageToken", max_length=200)] = None,
) -> Response:
    """The named query's events (an EPCISQueryDocument) that the key may read, ``perPage`` a page; the next
    page in the Link header (``nextPageToken``)."""
    try:
        query = store.get_query(conn, name, _reader(principal))["query"]
    except store.UnknownQueryError:
        raise _no_query(name) from None
    q = store.event_query(query, per_page=per_page, next_page_token=next_page_token)
    q.seen_by = scope.params()  # whoever defined it, the caller gets what it may read
    events, token = events_query.run(conn, q)
    return pages.events_page(request, events, token)


@router.post(
    "/epcis/queries/{queryName}/subscriptions", status_code=201, response_model=None, responses=RESPONSES
)
def subscribe_route(
    name: QueryName, body: SubscriptionBody, conn: Db, principal: Reader, response: Response
) -> dict[str, Any]:
    """Subscribe a webhook (``dest``, http or https) to a named query (read role): ``stream: true`` for
    every new matching event, or a ``schedule`` for the events new at each firing. Deliveries are
    EPCISQueryDocuments signed with ``signatureToken`` (``GS1-Signature``), each with an
    ``Idempotency-Key``; they stop while the key that subscribed is revoked or may not read."""
    schedule = None
    if body.schedule is not None:
        schedule = {k: None if v is None else str(v) for k, v in body.schedule.model_dump().items()}
    new = store.NewSubscription(
        dest=body.dest,
        signature_token=body.signatureToken,
        stream=body.stream,
        schedule=schedule,
        report_if_empty=body.reportIfEmpty,
        initial_record_time=body.initialRecordTime,
    )
    try:
        with conn.transaction():
            created = store.create_subscription(conn, name, new, principal.key_id, seen_by=_reader(principal))
    except store.UnknownQueryError:
        raise _no_query(name) from None
    except store.SubscriptionError as exc:
        raise ApiProblemError(400, "Bad Request", str(exc), type_=SUBSCRIPTION_CONTROLS) from None
    response.headers["Location"] = f"/epcis/queries/{name}/subscriptions/{created['subscriptionID']}"
    return created


@router.get("/epcis/queries/{queryName}/subscriptions", response_model=None)
def subscriptions_route(name: QueryName, conn: Db, principal: Reader) -> list[dict[str, Any]]:
    """A named query's subscriptions that the key sees (never their signature tokens)."""
    try:
        return store.list_subscriptions(conn, name, _reader(principal))
    except store.UnknownQueryError:
        raise _no_query(name) from None


def _no_subscription(name: str, subscription_id: str) -> ApiProblemError:
    return ApiProblemError(
        404, "Not Found", f"no subscription {subscription_id!r} to {name!r}", type_=NO_SUCH_RESOURCE
    )


SubscriptionId = Annotated[str, Path(alias="subscriptionID", max_length=100)]


@router.get("/epcis/queries/{queryName}/subscriptions/{subscriptionID}", response_model=None)
def subscription_route(
    name: QueryName, subscription_id: SubscriptionId, conn: Db, principal: Reader
) -> dict[str, Any]:
    """One subscription (never its signature token; 404 to a key that does not see it)."""
    found = store.get_subscription(conn, name, subscription_id, _reader(principal))
    if found is None:
        raise _no_subscription(name, subscription_id)
    return found


@router.delete("/epcis/queries/{queryName}/subscriptions/{subscriptionID}", status_code=204)
def unsubscribe_route(
    name: QueryName, subscription_id: SubscriptionId, conn: Db, principal: Reader
) -> Response:
    """Unsubscribe (the key that subscribed, or an admin); a pending delivery is dropped with it."""
    owner = store.subscription_owner(conn, name, subscription_id, _reader(principal))
    if owner is None:
        raise _no_subscription(name, subscription_id)
    _may_delete(principal, owner)
    store.delete_subscription(conn, name, subscription_id)
    return Response(status_code=204)
