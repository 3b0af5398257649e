"""Stage 3, API: request counts and latency by route template, and GET /metrics (Prometheus text).

Every request is counted under the template of the route that served it (``/trace/{trace_id}``, never the
raw path: lot ids would make a series each); a request no route served is counted as ``unmatched``.
Methods outside the HTTP ones the API knows count as ``other``. /metrics asks for no key: it must not be
reachable beyond the operators' network (docs/operations.md).
"""

from __future__ import annotations

import time
from typing import Final

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED: Final = "unmatched"
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# From a cached health answer (≈ 1 ms) to a large trace report PDF (seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ApiMetrics:
    """The API's request metrics, in a registry of the app's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        p = "coldchain_api_"
        self.requests = Counter(
            p + "requests",
            "Requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            p + "request_seconds",
            "Time to answer a request, by method and route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        self.seconds.labels(method=method, route=route).observe(seconds)


def route_template(scope: Scope) -> str:
    """The template of the route that served the request (the router leaves it in the scope), else
    ``unmatched``: no route matched, or the request was answered before routing (an OPTIONS discovery or
    a refused GS1 version, by gs1_headers)."""
    template = getattr(scope.get("route"), "path_format", None)
    return template if isinstance(template, str) else UNMATCHED


class RequestMetrics:
    """ASGI middleware: each HTTP request's status and time, under its route template."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an error that escapes every handler is answered 500 outside this middleware

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - t0
            self.metrics.observe(scope["method"], route_template(scope), status, seconds)


def install(app: FastAPI) -> ApiMetrics:
    """Count every request of ``app`` (outermost: add it after every other middleware) and serve
    GET /metrics; the metrics are also ``app.state.metrics``."""
    metrics = ApiMetrics()
    app.state.metrics = metrics

    @app.get("/metrics", include_in_schema=False)
    def prometheus(request: Request) -> Response:
        """The API's metrics in the Prometheus text format (no key: keep it inside the operators' network)."""
        return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(RequestMetrics, metrics=metrics)
    return metrics
