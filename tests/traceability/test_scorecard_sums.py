"""Tests: every card's figures (summed per subject in SQL) equal the sums of its drill-down rows (row by
row), for every subject of every kind and every indicator; an atom's subjects are the ids named, empty
ones left out."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scorecard_support import PERIOD, build_world

from traceability.scorecards.atoms import subjects_of
from traceability.scorecards.compute import drill_all, scoreboard
from traceability.scorecards.model import INDICATOR_KEYS, SPECS, SUBJECTS
from traceability.scorecards.period import parse_period

P = parse_period(PERIOD)


@pytest.mark.parametrize("subject", SUBJECTS)
def test_cards_equal_the_sums_of_their_rows(db_url: str, subject: str) -> None:
    build_world(db_url)
    with psycopg.connect(db_url) as conn:
        board = scoreboard(conn, P, subject)
        rows = drill_all(conn, P, subject, [c.subject_id for c in board.cards])
    assert board.cards
    judged = 0
    for card in board.cards:
        for key in INDICATOR_KEYS:
            mine: list[dict[str, Any]] = rows[card.subject_id][key]
            ind = card.indicators[key]
            assert (ind.numerator, ind.denominator) == (
                sum(r["numerator"] for r in mine),
                sum(r["denominator"] for r in mine),
            ), (card.subject_id, key)
            listed = {(e.reason, e.start, e.end) for e in ind.exemptions}
            assert listed == {(e.reason, e.start, e.end) for r in mine for e in r["exemptions"]}, key
            judged += SPECS[key].kind != "seconds" and ind.denominator > 0
    assert judged > 0


def test_trajectory_rows_list_the_anomalies_they_count(db_url: str) -> None:
    build_world(db_url)
    with psycopg.connect(db_url) as conn:
        board = scoreboard(conn, P, "carrier")
        rows = drill_all(conn, P, "carrier", [c.subject_id for c in board.cards])
    judged = [r for per in rows.values() for r in per["trajectory_anomalies"] if not r.get("exempt")]
    assert sum(r["numerator"] for r in judged) >= 2  # the world has anomalies to list
    for r in judged:
        assert r["anomalies"] == r["numerator"] == len(r["found"]) == sum(r["by_kind"].values())
        for f in r["found"]:
            assert r["transit_from"] <= f["from"] < f["to"] <= r["transit_to"], f


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
