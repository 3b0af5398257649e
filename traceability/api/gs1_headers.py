"""Stage 3, API: the GS1 REST bindings' headers on every EPCIS response (the EPCIS and CBV versions served,
the extensions), the refusal of a request for a version not served (406), and OPTIONS discovery."""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from traceability.api.problems import EpcisException, is_epcis, problem
from traceability.epcis.builders import CC_NAMESPACE

EPCIS_VERSION = "2.0.0"
CBV_VERSION = "2.0.0"
# The extension namespaces the events use, as prefix=namespace pairs (the project's own, see builders).
EXTENSIONS = f"cc={CC_NAMESPACE}"
# Only EPCIS 2.0.0 and CBV 2.0.0 are served: each range is that one version.
SERVED: dict[str, str] = {
    "GS1-EPCIS-Version": EPCIS_VERSION,
    "GS1-CBV-Version": CBV_VERSION,
    "GS1-Extensions": EXTENSIONS,
}
RANGES: dict[str, str] = {
    "GS1-EPCIS-Min": EPCIS_VERSION,
    "GS1-EPCIS-Max": EPCIS_VERSION,
    "GS1-CBV-Min": CBV_VERSION,
    "GS1-CBV-Max": CBV_VERSION,
}
# EPCs are served as the events give them (URN or GS1 Digital Link): never translated.
DISCOVERY: dict[str, str] = {**SERVED, **RANGES, "GS1-EPC-Format": "Never_Translates"}
_VERSION = re.compile(r"^[0-9]{1,6}(\.[0-9]{1,6}){0,5}$")


def _version(text: str) -> tuple[int, ...] | None:
    """A dotted version, padded to three numbers (``2`` = ``2.0`` = ``2.0.0``); None if it is not one."""
    text = text.strip()
    if not _VERSION.match(text):
        return None
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def refusal(headers: Headers) -> str | None:
    """Why a request's version headers ask for an EPCIS or CBV version not served, or None. A request may
    name the version it uses (``GS1-EPCIS-Version``, ``GS1-CBV-Version``) or the range it accepts
    (``-Min``, ``-Max``)."""
    for std, served in (("EPCIS", EPCIS_VERSION), ("CBV", CBV_VERSION)):
        ours = _version(served)
        for suffix in ("Version", "Min", "Max"):
            name = f"GS1-{std}-{suffix}"
            raw = headers.get(name)
            if raw is None:
                continue
            asked = _version(raw)
            if asked is None or ours is None:
                return f"{name} is not a version (digits and dots)"
            fits = {"Version": asked == ours, "Min": asked <= ours, "Max": asked >= ours}[suffix]
            if not fits:
                return f"{name}: {raw.strip()[:20]} cannot be met: {std} {served} is served"
    return None


# The methods an OPTIONS answer may list (HEAD and OPTIONS aside).
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _allowed(scope: Scope, routes: Iterable[BaseRoute]) -> list[str]:
    """The methods some route answers at the request's path (each router is asked, nested ones too)."""
    routes = list(routes)
    return [m for m in METHODS if any(r.matches({**scope, "method": m})[0] == Match.FULL for r in routes)]


class Gs1Headers:
    """ASGI middleware for the paths under /epcis: the GS1 headers on every response, 406 (with the ranges
    served) for a version not served, and OPTIONS answered 204 with ``Allow`` and the GS1 headers. Neither a
    refusal nor an OPTIONS answer takes a database connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_epcis(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k.lower().encode(), v.encode())
                    for k, v in SERVED.items()
                    if k.lower().encode() not in present
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        path = scope["path"]
        why = refusal(Headers(scope=scope))
        if why is not None:
            response: Response = problem(
                406, "Not Acceptable", why, path, type_=EpcisException.NOT_ACCEPTABLE
            )
            response.headers.update(RANGES)
            await response(scope, receive, with_headers)
            return
        if scope["method"] == "OPTIONS":
            methods = _allowed(scope, scope["app"].router.routes)
            if not methods:
                response = problem(404, "Not Found", "no such EPCIS resource", path)
            else:
                response = Response(status_code=204, headers={"Allow": ", ".join(["OPTIONS", *methods])})
                response.headers.update(DISCOVERY)
            await response(scope, receive, with_headers)
            return
        await self.app(scope, receive, with_headers)
