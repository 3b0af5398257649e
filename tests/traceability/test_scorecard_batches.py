"""Tests: the shipment indicators judged a few parts per query give the same cards and drill-down rows as
all parts judged in one query."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from scorecard_support import PERIOD, build_world

from traceability.scorecards import transit
from traceability.scorecards.compute import drill_all, scoreboard
from traceability.scorecards.model import SUBJECTS, Scoreboard
from traceability.scorecards.period import parse_period

P = parse_period(PERIOD)


def _everything(db_url: str) -> tuple[list[Scoreboard], list[dict[str, dict[str, list[dict[str, Any]]]]]]:
    with psycopg.connect(db_url) as conn:
        boards = [scoreboard(conn, P, s) for s in SUBJECTS]
        rows = [drill_all(conn, P, b.subject, [c.subject_id for c in b.cards]) for b in boards]
    return boards, rows


def test_parts_judged_in_batches_equal_parts_judged_at_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_world(db_url)
    monkeypatch.setattr(transit, "_PARTS_PER_QUERY", 1_000_000)
    boards, rows = _everything(db_url)
    found = [r for by_id in rows for per in by_id.values() for r in per["trajectory_anomalies"]]
    assert sum(r.get("anomalies", 0) for r in found) >= 2  # the world has anomalies a batch could lose
    for size in (1, 2):
        monkeypatch.setattr(transit, "_PARTS_PER_QUERY", size)
        assert _everything(db_url) == (boards, rows)
