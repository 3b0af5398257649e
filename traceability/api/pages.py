"""Stage 3, API: a page of EPCIS events as the answer to a request: an EPCISQueryDocument in JSON-LD, or in
EPCIS 2.0 XML when the Accept header prefers it, with the next page's ``Link`` and ``GS1-Next-Page-Token``."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from fastapi import Request, Response

from traceability.epcis import documents
from traceability.epcis import xml as epcis_xml

# What a page of events is served as (the OpenAPI of every route that answers one).
EVENTS_PAGE_CONTENT = {
    "application/json": {"schema": {"type": "object"}},
    "application/xml": {"schema": {"type": "string"}},
}


def query_params(request: Request) -> dict[str, list[str]]:
    """The request's query parameters, each with all its values."""
    return {name: request.query_params.getlist(name) for name in request.query_params}


def next_link(request: Request, response: Response, token: str | None) -> Response:
    """The response, with the next page's Link (rel="next") and token when there is one."""
    if token is not None:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "nextPageToken"]
        params.append(("nextPageToken", token))
        # The path as it was sent (still percent-encoded): an EPC or an eventID in it stays one segment.
        path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        response.headers["Link"] = f'<{path}?{urlencode(params)}>; rel="next"'
        response.headers["GS1-Next-Page-Token"] = token
    return response


def events_page(request: Request, events: Sequence[tuple[str, str]], token: str | None = None) -> Response:
    """Events as ``events_query.run`` gives them, in the form the request's Accept header prefers."""
    if epcis_xml.wants_xml(request.headers.get("accept")):
        response = Response(epcis_xml.query_document_xml(events), media_type="application/xml")
    else:
        response = Response(documents.query_document(events), media_type="application/json")
    return next_link(request, response, token)
