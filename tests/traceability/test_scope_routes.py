"""Tests: every API route that a key opens either takes the caller's scope (``ScopeDep``) into its queries or
is listed here with why it serves no party's data (or scopes it another way, tested in test_scope_api and
test_scope_queries): a new route cannot serve data unscoped by omission."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute

from traceability.api.app import create_app

# (method, path) -> why the route takes no ScopeDep.
UNSCOPED: dict[tuple[str, str], str] = {
    (
        "GET",
        "/ledger/verify",
    ): "the chain's integrity: seqs and hashes, no event content, open to every reader",
    ("GET", "/ledger/checkpoint"): "the signed chain head: a hash, open to every reader",
    ("PUT", "/locations/{location_id:path}/geofence"): "a write (operator or admin role)",
    ("POST", "/epcis/capture"): "a write (capture role)",
    ("GET", "/epcis/capture/{capture_id}"): "scoped by its query (cc_sees_all unless a capture key)",
    ("DELETE", "/epcis/nextPageToken/{token}"): "tokens hold nothing on the server",
    ("POST", "/epcis/queries"): "a write: the query is its key's",
    ("GET", "/epcis/queries"): "scoped by the key (cc_sees_key)",
    ("GET", "/epcis/queries/{queryName}"): "scoped by the key (cc_sees_key)",
    ("DELETE", "/epcis/queries/{queryName}"): "scoped by the key (cc_sees_key)",
    ("POST", "/epcis/queries/{queryName}/subscriptions"): "scoped by the key (cc_sees_key)",
    ("GET", "/epcis/queries/{queryName}/subscriptions"): "scoped by the key (cc_sees_key)",
    ("GET", "/epcis/queries/{queryName}/subscriptions/{subscriptionID}"): "scoped by the key (cc_sees_key)",
    (
        "DELETE",
        "/epcis/queries/{queryName}/subscriptions/{subscriptionID}",
    ): "scoped by the key (cc_sees_key)",
}


def _dependencies(dependant: Any, out: set[str]) -> set[str]:
    for sub in dependant.dependencies:
        out.add(getattr(sub.call, "__name__", ""))
        _dependencies(sub, out)
    return out


def _routes(routes: list[Any]) -> list[APIRoute]:
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found.extend(_routes(route.original_router.routes))
    return found


def test_every_route_a_key_opens_is_scoped_or_says_why_not() -> None:
    app = create_app("postgresql://nobody@127.0.0.1:1/none")
    unscoped = []
    for route in _routes(app.router.routes):
        names = _dependencies(route.dependant, set())
        if "current_principal" not in names and "presented_key" not in names:
            continue  # no key: /health, the web pages (scoped by their session: test_scope_web)
        for method in route.methods:
            listed = (method, route.path) in UNSCOPED
            # /epcis/{resource}/{value}: the constant collection ["events"], whatever the value.
            constant = route.path.count("/") == 3 and route.path.endswith("/{value:path}")
            if "current_scope" not in names and not listed and not constant:
                unscoped.append((method, route.path))
    assert unscoped == []
