"""Tests: shipment facts (shipment_fact): a scoreboard and a drill-down read from judged facts equal the ones
judging every shipment in the statement; the facts are what is read; a reading stored late for a judged
shipment's time keeps its facts from being read until the judge has taken the mark and judged it again;
nothing is judged before its data has settled."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from scorecard_support import PERIOD, at, build_world

from dashboards import rollups
from traceability.scorecards.compute import drill_all, scoreboard
from traceability.scorecards.facts import ShipmentFactWorker, judge_once
from traceability.scorecards.model import SUBJECTS
from traceability.scorecards.period import parse_period
from traceability.scorecards.weights import default_weights

P = parse_period(PERIOD)
LATER = datetime(2027, 1, 1, tzinfo=UTC)  # the judge's clock: the world's shipments long over


def _world(db_url: str) -> None:
    """The scorecard world, its gateway batch consumed by the rules worker (as it is once the rules ran), and
    S3: TRUCK-A 14:00-18:00 then TRUCK-B to 22:00, both with readings around the handoff at 18:00."""
    build_world(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM ingest_batch")
        conn.execute(
            "INSERT INTO shipment (shipment_id, shipper_party_id, planned_start, planned_end)"
            " VALUES ('S3', 'SHP-1', %s, %s)",
            (at(14), at(22)),
        )
        conn.execute(
            "INSERT INTO shipment_leg (shipment_id, leg_no, mode, carrier_party_id, asset_id, planned_start,"
            " planned_end) VALUES ('S3', 1, 'road', 'CAR-A', 'TRUCK-A', %(a)s, %(b)s),"
            " ('S3', 2, 'road', 'CAR-B', 'TRUCK-B', %(b)s, %(c)s)",
            {"a": at(14), "b": at(18), "c": at(22)},
        )
        conn.execute(
            "INSERT INTO lot (lot_id, product_class, owner_party_id) VALUES ('L3', 'chilled', 'SHP-1')"
        )
        conn.execute("INSERT INTO shipment_lot (shipment_id, lot_id) VALUES ('S3', 'L3')")


def _figures(conn: psycopg.Connection[Any], subject: str, *, facts: bool) -> list[Any]:
    board = scoreboard(conn, P, subject, facts=facts)
    return [
        (
            c.subject_id,
            c.score,
            c.rank,
            {k: (i.numerator, i.denominator, i.ratio) for k, i in c.indicators.items()},
        )
        for c in board.cards
    ]


def _rows(conn: psycopg.Connection[Any], subject: str, *, facts: bool) -> Any:
    ids = [c.subject_id for c in scoreboard(conn, P, subject, facts=facts).cards]
    return drill_all(conn, P, subject, ids) if facts else _drill_unjudged(conn, subject, ids)


def _drill_unjudged(conn: psycopg.Connection[Any], subject: str, ids: list[str]) -> Any:
    with conn.transaction(force_rollback=True):
        conn.execute("DELETE FROM shipment_fact")
        return drill_all(conn, P, subject, ids)


def _facts(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    return dict(conn.execute("SELECT shipment_id, anomalies FROM shipment_fact").fetchall())


@pytest.mark.parametrize("subject", SUBJECTS)
def test_judged_facts_read_as_judging_does(db_url: str, subject: str) -> None:
    _world(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        unjudged, rows = _figures(conn, subject, facts=False), _rows(conn, subject, facts=False)
        assert judge_once(db_url, at=LATER).shipments == 3
        assert set(_facts(conn)) == {"S1", "S2", "S3"}
        assert _figures(conn, subject, facts=True) == unjudged
        assert _rows(conn, subject, facts=True) == rows


def test_a_handoff_with_evidence_on_both_sides_counts(db_url: str) -> None:
    _world(db_url)
    judge_once(db_url, at=LATER)
    with psycopg.connect(db_url, autocommit=True) as conn:
        got = conn.execute(
            "SELECT h_before, h_after, leg_ok FROM shipment_fact WHERE shipment_id = 'S3'"
        ).fetchone()
        rows = drill_all(conn, P, "carrier", ["CAR-A"])["CAR-A"]["handover"]
    assert got == ([True], [True], [True, True])
    assert [(r["shipment_id"], r["numerator"], r["denominator"]) for r in rows] == [("S3", 1.0, 1.0)]


def test_the_board_reads_the_facts(db_url: str) -> None:
    _world(db_url)
    judge_once(db_url, at=LATER)
    with psycopg.connect(db_url, autocommit=True) as conn:
        before = scoreboard(conn, P, "carrier").cards
        conn.execute("UPDATE shipment_fact SET anomalies = anomalies + 5 WHERE shipment_id = 'S1'")
        after = {c.subject_id: c for c in scoreboard(conn, P, "carrier").cards}
        unjudged = {c.subject_id: c for c in scoreboard(conn, P, "carrier", facts=False).cards}
    num = {c.subject_id: c.indicators["trajectory_anomalies"].numerator for c in before}
    assert after["CAR-A"].indicators["trajectory_anomalies"].numerator == num["CAR-A"] + 5
    assert unjudged["CAR-A"].indicators["trajectory_anomalies"].numerator == num["CAR-A"]


def _late_batch(conn: psycopg.Connection[Any], t_min: datetime) -> None:
    sid = conn.execute("SELECT series_id FROM series WHERE device_id = 'dev-a' ORDER BY 1 LIMIT 1").fetchone()
    assert sid is not None
    conn.execute(
        "INSERT INTO ingest_batch (kind, series_ids, t_min, t_max) VALUES ('telemetry', %s, %s, %s)",
        ([sid[0]], t_min, t_min + timedelta(minutes=5)),
    )


def test_a_late_reading_keeps_the_facts_it_overlaps_unread_until_judged_again(db_url: str) -> None:
    _world(db_url)
    judge_once(db_url, at=LATER)
    with psycopg.connect(db_url, autocommit=True) as conn:
        true_n = _facts(conn)["S1"]
        conn.execute("UPDATE shipment_fact SET anomalies = anomalies + 5 WHERE shipment_id = 'S1'")
        unjudged = _figures(conn, "carrier", facts=False)
        assert _figures(conn, "carrier", facts=True) != unjudged  # the altered fact is read
        _late_batch(conn, at(3))  # TRUCK-A's device, in S1's window, stored now: over an hour late
        assert conn.execute("SELECT count(*) FROM shipment_fact_mark").fetchone() == (
            1,
        )  # (the world's taken)
        assert _figures(conn, "carrier", facts=True) == unjudged  # marked: S1 judged in the statement
        # The rules worker has not consumed the batch: its mark stays, S1's fact with it.
        assert judge_once(db_url, at=LATER).marks == 0
        assert _facts(conn)["S1"] == true_n + 5
        conn.execute("DELETE FROM ingest_batch")  # consumed
    rollups.refresh(db_url)  # its rollups rebuilt
    done = judge_once(db_url, at=LATER)
    assert (done.marks, done.shipments) == (1, 1)
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert _facts(conn)["S1"] == true_n  # judged again
        assert conn.execute("SELECT count(*) FROM shipment_fact_mark").fetchone() == (0,)
        assert _figures(conn, "carrier", facts=True) == unjudged


def test_a_reading_stored_on_time_marks_nothing(db_url: str) -> None:
    _world(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        now = conn.execute("SELECT now()").fetchone()
        assert now is not None
        conn.execute("DELETE FROM shipment_fact_mark")  # the world's own batch was stored late
        _late_batch(conn, now[0] - timedelta(minutes=50))
        assert conn.execute("SELECT count(*) FROM shipment_fact_mark").fetchone() == (0,)
        _late_batch(conn, now[0] - timedelta(minutes=70))
        assert conn.execute("SELECT count(*) FROM shipment_fact_mark").fetchone() == (1,)


def test_nothing_is_judged_before_its_data_settles(db_url: str) -> None:
    _world(db_url)
    # S1 and S2 end at 24:00, S3 at 22:00; a shipment is judged three hours after its end has settled, and
    # the settle time is an hour before the clock: at 27:30, S3 only.
    assert judge_once(db_url, at=at(25)).shipments == 0
    assert judge_once(db_url, at=at(27.5)).shipments == 1
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert set(_facts(conn)) == {"S3"}
        # a batch the rules worker has not consumed, from before their end, holds the others back
        _late_batch(conn, at(20))
    rollups.refresh(db_url)
    assert judge_once(db_url, at=LATER).shipments == 0
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM ingest_batch")
    done = ShipmentFactWorker(db_url, clock=lambda: LATER).run_once()
    # S1, S2, and S3 again: the late batch (TRUCK-A's device, S3's first leg) marked its fact
    assert (done.marks, done.shipments) == (1, 3)
    assert judge_once(db_url, at=LATER).shipments == 0  # each once


def test_a_changed_leg_drops_the_fact_and_it_is_judged_again(db_url: str) -> None:
    _world(db_url)
    judge_once(db_url, at=LATER)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE shipment_leg SET asset_id = 'TRUCK-B' WHERE shipment_id = 'S1'")
        assert set(_facts(conn)) == {"S2", "S3"}
        unjudged = _figures(conn, "carrier", facts=False)
    assert judge_once(db_url, at=LATER).shipments == 1
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert _figures(conn, "carrier", facts=True) == unjudged


def test_a_pass_waits_for_a_change_in_flight_and_judges_it_changed(db_url: str) -> None:
    _world(db_url)
    with psycopg.connect(db_url) as change, psycopg.connect(db_url, autocommit=True) as watch:
        change.execute(
            "UPDATE shipment_leg SET asset_id = 'TRUCK-B' WHERE shipment_id = 'S1'"
        )  # not committed
        with ThreadPoolExecutor(1) as pool:
            judged = pool.submit(judge_once, db_url, at=LATER)
            waiting, deadline = 0, time.monotonic() + 60
            while (
                time.monotonic() < deadline
            ):  # the pass blocks on the change's lock (observed, not slept for)
                row = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
                ).fetchone()
                waiting = row[0] if row else 0
                if waiting or judged.done():
                    break
            assert waiting == 1
            assert not judged.done()
            change.commit()
            assert judged.result(timeout=60).shipments == 3
        got = watch.execute("SELECT assets FROM shipment_fact WHERE shipment_id = 'S1'").fetchone()
    assert got == (["TRUCK-B"],)


def test_facts_judged_under_other_thresholds_are_not_read(db_url: str) -> None:
    _world(db_url)
    judge_once(db_url, at=LATER)  # under the weights file's thresholds
    w = default_weights()
    other = replace(w, silent_hours=100)  # the world has no positions: silence only, all transits shorter
    with psycopg.connect(db_url, autocommit=True) as conn:
        mine = scoreboard(conn, P, "carrier", weights=other, facts=False).cards
        read = scoreboard(conn, P, "carrier", weights=other).cards
        usual = scoreboard(conn, P, "carrier").cards
    n = {c.subject_id: c.indicators["trajectory_anomalies"].numerator for c in mine}
    assert n != {c.subject_id: c.indicators["trajectory_anomalies"].numerator for c in usual}
    assert {c.subject_id: c.indicators["trajectory_anomalies"].numerator for c in read} == n
