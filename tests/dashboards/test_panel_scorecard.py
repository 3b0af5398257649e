"""Tests: the data-quality board's per-carrier conformance and sequence-loss panel over the scorecards'
small world, equal to the scorecards' own figures for the same days."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
from scorecard_support import CAR_A, CAR_B, PERIOD, T0, build_world

from dashboards import queries as q
from traceability.scorecards.compute import scoreboard
from traceability.scorecards.period import parse_period


def _panel(db_url: str, **variables: list[str]) -> list[dict[str, Any]]:
    t_from, t_to = T0, T0 + timedelta(days=2) - timedelta(microseconds=1)
    text = q.expand(
        q.DQ_CARRIER_CONFORMANCE,
        t_from=t_from,
        t_to=t_to,
        interval_ms=q.interval_ms(t_from, t_to),
        variables={**q.ALL, **variables},
    )
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(text)  # type: ignore[call-overload]  # expanded panel SQL, as Grafana sends it
        assert cur.description is not None
        cols = [c.name for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def test_the_panel_shows_each_carriers_conformance_and_sequence_loss(db_url: str) -> None:
    build_world(db_url)
    rows = _panel(db_url)
    assert rows == [
        {"carrier": "Carrier A", "messages": 200, "accepted": 198, "conformance": 0.99, "readings": 270,
         "missing": 18, "seq_loss": 18 / 288},
        {"carrier": "Carrier B", "messages": 50, "accepted": 50, "conformance": 1.0, "readings": 144,
         "missing": 0, "seq_loss": 0.0},
    ]  # fmt: skip
    with psycopg.connect(db_url) as conn:
        cards = {c.subject_id: c for c in scoreboard(conn, parse_period(PERIOD), "carrier").cards}
    for row, carrier in zip(rows, (CAR_A, CAR_B), strict=True):
        conf = cards[carrier].indicators["conformance"]
        assert (row["accepted"], row["messages"]) == (conf.numerator, conf.denominator)
    assert _panel(db_url, carrier=[CAR_B]) == rows[1:]
