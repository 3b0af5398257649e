"""Composition root: the trace page's server time (p50 / p95), for `coldchain bench trace` to report."""

from __future__ import annotations

import re
import statistics
import time
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

_SERVER_TIMING = re.compile(r"page;dur=([0-9.]+)")
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _sign_in(client: httpx.Client, key: str) -> None:
    form = client.get("/ui/signin")
    found = _CSRF.search(form.text)
    if found is None:
        raise RuntimeError("the sign-in page has no form token")
    answer = client.post("/ui/signin", data={"key": key, "csrf": found.group(1), "next": "/ui/"})
    if answer.status_code != 303:
        raise RuntimeError(
            f"sign-in refused ({answer.status_code}): is the key an inspector's or operator's?"
        )


def _measure(client: httpx.Client, key: str, lot_id: str, repeats: int) -> dict[str, Any]:
    _sign_in(client, key)
    path = "/ui/trace/" + quote(lot_id, safe=":@!$&'()*+,;=-._~")
    server: list[float] = []
    wall: list[float] = []
    size = 0
    client.get(path)  # warm: templates compiled, the connection's statements prepared
    for _ in range(repeats):
        t0 = time.perf_counter()
        response = client.get(path)
        wall.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"the trace page of {lot_id!r} answered {response.status_code}")
        timing = _SERVER_TIMING.search(response.headers.get("server-timing", ""))
        server.append(float(timing.group(1)) if timing else wall[-1])
        size = len(response.content)
    return {
        "trace_page_repeats": repeats,
        "trace_page_p50_ms": round(statistics.median(server), 2),
        "trace_page_p95_ms": round(_percentile(server, 0.95), 2),
        "trace_page_wall_p50_ms": round(statistics.median(wall), 2),
        "trace_page_wall_p95_ms": round(_percentile(wall, 0.95), 2),
        "trace_page_bytes": size,
    }


def measure_trace_page(
    base_url_or_app: str | FastAPI, key: str, lot_id: str, *, repeats: int = 50
) -> dict[str, Any]:
    """Sign in with ``key`` and fetch ``lot_id``'s trace page ``repeats`` times (after one warm-up); the
    server time is the page's own ``Server-Timing`` (trace, evidence, rendering), the wall time includes
    HTTP. ``base_url_or_app``: a served API's URL, or the app itself (served in-process)."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    if isinstance(base_url_or_app, str):
        with httpx.Client(base_url=base_url_or_app, timeout=60, follow_redirects=False) as client:
            return _measure(client, key, lot_id, repeats)
    with TestClient(base_url_or_app, follow_redirects=False) as test_client:
        return _measure(test_client, key, lot_id, repeats)
