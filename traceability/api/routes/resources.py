"""Stage 3, API: the GS1 REST bindings' EPCIS resources under /epcis: one event by its eventID, the events of
an EPC, the known business steps, business locations, read points, dispositions, event types and EPCs with
the events of each, and the release of a ``nextPageToken``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Path, Query, Request, Response

from traceability.api import pages
from traceability.api.deps import Db, Reader, ScopeDep
from traceability.api.problems import ERRORS, ApiProblemError, EpcisException
from traceability.epcis import events_query, vocabularies
from traceability.epcis.builders import DISPOSITION_PREFIXES, EPCIS_CONTEXT, biz_step_name, disposition_name
from traceability.epcis.digital_link import epc_forms
from traceability.epcis.events_query import EventQuery, QueryParameterError

router = APIRouter(tags=["epcis resources"], responses={406: ERRORS[400]})

PerPage = Annotated[int | None, Query(alias="perPage", ge=1, le=events_query.MAX_PER_PAGE)]
NextPageToken = Annotated[str | None, Query(alias="nextPageToken", max_length=200)]
QUERY_DOCUMENT: dict[int | str, dict[str, Any]] = {200: {"content": pages.EVENTS_PAGE_CONTENT}}
COLLECTION: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["@context", "type", "member"],
                    "properties": {
                        "@context": {},
                        "type": {"type": "string", "enum": ["Collection"]},
                        "member": {"type": "array", "items": {"type": "string"}},
                    },
                }
            }
        }
    }
}


def _json(body: Any) -> Response:
    return Response(msgspec.json.encode(body), media_type="application/json")


def _collection(members: list[str]) -> dict[str, Any]:
    return {"@context": EPCIS_CONTEXT, "type": "Collection", "member": members}


def _events(request: Request, conn: Db, q: EventQuery, scope: ScopeDep) -> Response:
    q.seen_by = scope.params()
    events, token = events_query.run(conn, q)
    return pages.events_page(request, events, token)


# -- one event -----------------------------------------------------------------------------------------


@router.get("/epcis/events/{event_id:path}", response_class=Response, responses=QUERY_DOCUMENT)
def event_route(
    request: Request,
    conn: Db,
    _: Reader,
    scope: ScopeDep,
    event_id: Annotated[str, Path(description="the eventID (URL-encoded)")],
) -> Response:
    """One event, as an EPCISQueryDocument enclosing it and the error declarations of it (404 when no event
    the key may read has this eventID)."""
    q = EventQuery(event_ids=[event_id], per_page=events_query.MAX_PER_PAGE, seen_by=scope.params())
    events, _token = events_query.run(conn, q)
    if not events:
        raise ApiProblemError(
            404, "Not Found", "no event with this eventID", type_=EpcisException.NO_SUCH_RESOURCE
        )
    return pages.events_page(request, events)


# -- the events of one resource ------------------------------------------------------------------------


def _restrict_epc(q: EventQuery, epc: str) -> None:
    q.subjects.append((events_query.ALL_ROLES, epc_forms(epc)))


def _restrict(field: str, values: Callable[[str], list[str]]) -> Callable[[EventQuery, str], None]:
    def restrict(q: EventQuery, value: str) -> None:
        setattr(q, field, values(value))

    return restrict


# resource -> (the query parameter it stands for, how it restricts the query to one value).
RESTRICTIONS: dict[str, tuple[str | None, Callable[[EventQuery, str], None]]] = {
    "epcs": (None, _restrict_epc),
    "bizSteps": ("EQ_bizStep", _restrict("biz_steps", lambda v: [str(biz_step_name(v))])),
    "dispositions": (
        "EQ_disposition",
        _restrict(
            "dispositions",
            lambda v: events_query.cbv_forms(str(disposition_name(v)), DISPOSITION_PREFIXES),
        ),
    ),
    "bizLocations": ("EQ_bizLocation", _restrict("biz_locations", epc_forms)),
    "readPoints": ("EQ_readPoint", _restrict("read_points", epc_forms)),
    "eventTypes": ("eventType", _restrict("event_types", lambda v: [v])),
}


def _add_resource(resource: str) -> None:
    param, restrict = RESTRICTIONS[resource]

    def events_of(
        request: Request,
        conn: Db,
        _: Reader,
        scope: ScopeDep,
        value: str,
        per_page: PerPage = None,
        token: NextPageToken = None,
    ) -> Response:
        params = pages.query_params(request)
        if param is not None and param in params:
            raise QueryParameterError(
                f"{param} is the resource's own ({resource}/{{id}}): give it in the path"
            )
        q = events_query.from_params(params, per_page=per_page, next_page_token=token)
        restrict(q, value)
        return _events(request, conn, q, scope)

    def sub_resources(_: Reader, value: str) -> Response:
        return _json(_collection(["events"]))

    def listed(
        conn: Db,
        _: Reader,
        scope: ScopeDep,
        request: Request,
        per_page: PerPage = None,
        token: NextPageToken = None,
    ) -> Response:
        size = min(per_page or events_query.DEFAULT_PER_PAGE, events_query.MAX_PER_PAGE)
        values, next_token = vocabularies.known_values(
            conn, resource, per_page=size, token=token, seen_by=scope.params()
        )
        return pages.next_link(request, _json(_collection(values)), next_token)

    base = f"/epcis/{resource}"
    events_of.__doc__ = (
        f"The events of one of {resource} (the value URL-encoded), filtered further by any SimpleEventQuery "
        "parameter; pages of perPage events, the next in the Link header."
    )
    router.add_api_route(
        base,
        listed,
        methods=["GET"],
        response_class=Response,
        responses=COLLECTION,
        name=f"list_{resource}",
        summary=f"The known {resource}",
    )
    router.add_api_route(
        base + "/{value:path}/events",
        events_of,
        methods=["GET"],
        response_class=Response,
        responses=QUERY_DOCUMENT,
        name=f"events_of_{resource}",
        summary=f"The events of one of {resource}",
    )
    router.add_api_route(
        base + "/{value:path}",
        sub_resources,
        methods=["GET"],
        response_class=Response,
        responses=COLLECTION,
        name=f"one_of_{resource}",
        summary=f"The sub-resources of one of {resource} (events)",
    )


for _resource in RESTRICTIONS:
    _add_resource(_resource)


# -- pages ---------------------------------------------------------------------------------------------


@router.delete("/epcis/nextPageToken/{token}", status_code=204, response_class=Response)
def release_token(_: Reader, token: Annotated[str, Path(max_length=200)]) -> Response:
    """Release what a nextPageToken holds (GS1 REST bindings). Tokens here hold nothing on the server (a
    page is found from the token itself) and never expire: releasing one of ours is a no-op, 204; a token
    this server did not issue is 404."""
    for decode in (events_query.decode_token, events_query.decode_ordered_token, vocabularies.decode_token):
        try:
            decode(token)
        except QueryParameterError:
            continue
        return Response(status_code=204)
    raise ApiProblemError(404, "Not Found", "no such nextPageToken", type_=EpcisException.NO_SUCH_RESOURCE)
