"""Tests: the trace page's bench function measures (no threshold asserted), and the demo's instructions
name a scanned label the search box reads as the demo lot."""

from __future__ import annotations

import psycopg
from web_support import LOT, Desk

from coldchain.bench.web import measure_trace_page
from coldchain.demo import web_instructions
from firmware_sim.world import demo_world
from traceability.api.app import create_app
from traceability.api.options import ApiOptions
from traceability.web.identify import identify
from traceability.web.views import search


def test_measure_trace_page_in_process(desk: Desk) -> None:
    app = create_app(desk.db_url, options=ApiOptions(ledger_key=desk.ledger_key))
    result = measure_trace_page(app, desk.inspector_key, LOT, repeats=3)
    assert result["trace_page_repeats"] == 3
    assert 0 < result["trace_page_p50_ms"] <= result["trace_page_p95_ms"]
    assert result["trace_page_bytes"] > 1000


def test_demo_prints_a_label_that_finds_the_demo_lot(desk: Desk) -> None:
    lines = web_instructions("http://127.0.0.1:8000", "cck_demo")
    assert lines[0].startswith("web pages: open http://127.0.0.1:8000/ui/")
    label = lines[1].rsplit(" ", 1)[1]
    assert identify(label).is_gs1
    with psycopg.connect(desk.db_url) as conn:
        assert search(conn, label).lots == [demo_world().lots[0].lot_id] == [LOT]
