"""Tests: the shipment indicators judged a few assets' parts per query give the same cards and drill-down rows
as all parts judged in one query; an atom's subjects are the ids named, empty ones left out."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scorecard_support import PERIOD, build_world

from traceability.scorecards import transit
from traceability.scorecards.atoms import subjects_of
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
    monkeypatch.setattr(transit, "_ASSETS_PER_QUERY", 1_000_000)
    boards, rows = _everything(db_url)
    found = [r for by_id in rows for per in by_id.values() for r in per["trajectory_anomalies"]]
    assert sum(r.get("anomalies", 0) for r in found) >= 2  # the world has anomalies a batch could lose
    for size in (1, 2):
        monkeypatch.setattr(transit, "_ASSETS_PER_QUERY", size)
        assert _everything(db_url) == (boards, rows)


@given(
    st.dictionaries(
        st.sampled_from(SUBJECTS),
        st.none() | st.sampled_from(["", "a", "b"]) | st.lists(st.none() | st.sampled_from(["", "a", "b"])),
    )
)
def test_subjects_are_the_named_ids_of_each_kind(ids: dict[str, Any]) -> None:
    expected = {}
    for kind, v in ids.items():
        vals = [v] if v is None or isinstance(v, str) else v
        if any(vals):
            expected[kind] = frozenset(x for x in vals if x)
    assert subjects_of(**ids) == expected
