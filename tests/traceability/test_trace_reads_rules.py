"""Tests: the trace judges nothing itself: the lot verdict and the allowed intervals are the rules stage's."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from trace_support import LOT, build_scenario

from rules.verdicts import NOT_JUDGED
from rules.worker import RulesWorker
from traceability.trace import trace_lot
from traceability.trace_model import Trace
from traceability.worker import LedgerWorker


def _history(conn: psycopg.Connection[Any], version: int, verdict: str, reasons: list[str]) -> None:
    """A version of the lot's verdict as the rules stage records it."""
    conn.execute(
        "INSERT INTO verdict_history (subject_kind, subject_id, version, verdict, product_class, pack_id,"
        " pack_version, items, reasons, arrived, change)"
        " VALUES ('lot', %s, %s, %s, 'chilled', 'cn_food', '1.0.0', '[]', %s, '{}', '{}')",
        (LOT, version, verdict, Jsonb(reasons)),
    )


def _traced(db_url: str) -> Trace:
    with psycopg.connect(db_url) as conn:
        found = trace_lot(conn, LOT)
    assert found is not None
    return found


def test_the_verdict_is_the_rules_stages_latest_version(db_url: str) -> None:
    build_scenario(db_url)
    LedgerWorker(db_url).run_once()
    with psycopg.connect(db_url) as conn:
        _history(conn, 1, "broken", ["no record for 2400 s"])
        # A later version of the rules stage's judgement: the trace shows it, whatever the legs hold.
        _history(conn, 2, "excursion", ["excursion for 1800 s, peak 8.5 °C"])
        conn.commit()
    found = _traced(db_url)
    assert any(leg.chain_breaks for leg in found.custody)  # evidence a re-derivation would call broken
    assert (found.verdict, found.verdict_version) == ("excursion", 2)
    assert found.verdict_reasons == ["excursion for 1800 s, peak 8.5 °C"]


def test_a_lot_the_rules_stage_has_not_judged_is_indeterminate(db_url: str) -> None:
    build_scenario(db_url)
    LedgerWorker(db_url).run_once()
    found = _traced(db_url)
    assert (found.verdict, found.verdict_version) == ("indeterminate", None)
    assert found.verdict_reasons == [NOT_JUDGED]


def test_allowed_intervals_come_from_the_class_pack(db_url: str) -> None:
    build_scenario(db_url)
    LedgerWorker(db_url).run_once()
    RulesWorker(db_url).sync_classes()  # the rules stage publishes every pack class's limits
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE lot SET product_class = 'pharma_2_8' WHERE lot_id = %s", (LOT,))
        conn.commit()
    found = _traced(db_url)
    assert found.limits is not None
    assert (found.limits.storage_max_gap_s, found.limits.transport_max_gap_s) == (1800.0, 300.0)
    store, truck = found.custody[0], found.custody[1]
    assert store.temperature.allowed_gap_s == 1800.0  # a cold room: storage
    assert truck.temperature.allowed_gap_s == 300.0  # a truck: transport, the drug pack's 5 minutes


def test_a_lot_without_published_limits_has_no_allowed_interval(db_url: str) -> None:
    build_scenario(db_url)
    LedgerWorker(db_url).run_once()
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE lot SET product_class = 'no_such_class' WHERE lot_id = %s", (LOT,))
        conn.commit()
    found = _traced(db_url)
    assert found.limits is None
    assert all(leg.temperature.allowed_gap_s is None for leg in found.custody)
    assert all(leg.temperature.gaps == 0 for leg in found.custody)
