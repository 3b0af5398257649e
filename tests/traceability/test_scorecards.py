"""Tests: the scorecards over a small hand-built world with exact ratios (mid-period mount, an asset with
no class, overlapping exemptions), the score, ranking and trend, drill-down rows and scoping."""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction

import psycopg
import pytest
from scorecard_support import CAR_A, CAR_B, PERIOD, SHIPPER, T0, at, build_world, dev_a_slots

from traceability.scorecards.compute import (
    ScorecardError,
    UnknownSubjectError,
    drill,
    grant_exemption,
    score_of,
    scoreboard,
)
from traceability.scorecards.model import Card, Exemption
from traceability.scorecards.period import parse_period
from traceability.scorecards.weights import default_weights

P = parse_period(PERIOD)


@pytest.fixture
def world(db_url: str) -> str:
    build_world(db_url)
    return db_url


def _cards(db_url: str, subject: str) -> dict[str, Card]:
    with psycopg.connect(db_url) as conn:
        board = scoreboard(conn, P, subject)
    return {c.subject_id: c for c in board.cards}


def _nd(card: Card, key: str) -> tuple[float, float, float | None]:
    i = card.indicators[key]
    return i.numerator, i.denominator, i.ratio


def test_the_slots_are_what_the_world_says() -> None:
    slots = dev_a_slots()
    assert len(slots) == 270
    assert sum(1 for _, _, lag in slots if lag > timedelta(minutes=5)) == 29
    exempt = [s for s in slots if 144 <= s[0] < 192]
    assert len(exempt) == 45
    assert sum(1 for _, _, lag in exempt if lag > timedelta(minutes=5)) == 5


def test_carrier_a_has_the_exact_ratios(world: str) -> None:
    a = _cards(world, "carrier")[CAR_A]
    assert a.name == "Carrier A"
    assert _nd(a, "completeness") == (270, 288, 270 / 288)
    assert _nd(a, "timeliness") == (201, 225, 201 / 225)  # 8 exempt hours taken out once
    assert _nd(a, "conformance") == (198, 200, 0.99)  # the day before the period is not counted
    assert _nd(a, "sequence") == (18, 288, 18 / 288)
    assert _nd(a, "track_matching") == (1, 1, 1.0)
    assert _nd(a, "trajectory_anomalies") == (1, 18, 100 / 18)  # 18 h in transit, one silence
    assert _nd(a, "temp_compliance") == (267, 270, 267 / 270)
    assert _nd(a, "lots_unbroken") == (1, 1, 1.0)
    assert _nd(a, "coverage_lots") == (1, 1, 1.0)
    assert _nd(a, "coverage_assets") == (1, 1, 1.0)
    assert _nd(a, "handover") == (0, 0, None)
    assert _nd(a, "alarm_ack_median_s") == (2, 3, 900.0)
    assert _nd(a, "alarm_ack_sla") == (1, 3, 1 / 3)
    assert _nd(a, "calibration") == (1, 1, 1.0)


def test_carrier_b_has_the_exact_ratios(world: str) -> None:
    b = _cards(world, "carrier")[CAR_B]
    # dev-b mounted at noon on the first day: 36 h of 10-minute slots; TRUCK-C has no class: one hour.
    assert _nd(b, "completeness") == (216, 216 + 48, Fraction(216, 264).__float__())
    assert _nd(b, "timeliness") == (216, 216, 1.0)
    assert _nd(b, "conformance") == (50, 50, 1.0)
    assert _nd(b, "sequence") == (0, 144, 0.0)
    assert _nd(b, "track_matching") == (0, 1, 0.0)
    assert _nd(b, "trajectory_anomalies") == (1, 11, 100 / 11)
    assert _nd(b, "temp_compliance") == (216, 216, 1.0)  # the classless truck is not judged
    assert _nd(b, "coverage_lots") == (0, 1, 0.0)
    assert _nd(b, "coverage_assets") == (1, 2, 0.5)
    assert _nd(b, "handover") == (0, 1, 0.0)
    assert _nd(b, "alarm_ack_sla") == (0, 0, None)
    assert b.indicators["alarm_ack_sla"].note
    assert _nd(b, "calibration") == (0, 2, 0.0)


def test_shipper_device_asset_and_edge_cases(world: str) -> None:
    shipper = _cards(world, "shipper")[SHIPPER]
    assert _nd(shipper, "track_matching") == (1, 2, 0.5)
    assert _nd(shipper, "trajectory_anomalies") == (2, 29, 200 / 29)
    assert _nd(shipper, "completeness") == (0, 0, None)  # a shipper has no devices of its own
    devices = _cards(world, "device")
    assert _nd(devices["dev-b"], "completeness") == (216, 216, 1.0)
    assets = _cards(world, "asset")
    assert assets["TRUCK-C"].indicators["temp_compliance"].ratio is None
    assert _nd(assets["TRUCK-C"], "completeness") == (0, 48, 0.0)


def test_overlapping_exemptions_are_listed_and_counted_once(world: str) -> None:
    a = _cards(world, "carrier")[CAR_A]
    listed = a.indicators["timeliness"].exemptions
    assert [(e.granted_by, e.reason) for e in listed] == [
        ("inspector Li", "declared offline sea leg"),
        ("inspector Wang", "declared offline sea leg"),
    ]
    assert a.indicators["completeness"].exemptions == []
    with psycopg.connect(world) as conn:
        rows = drill(conn, P, "carrier", CAR_A, "timeliness")
    assert len(rows) == 1
    assert rows[0]["exempt_s"] == 8 * 3600
    assert rows[0]["judged_s"] == 40 * 3600
    assert len(rows[0]["exemptions"]) == 2


def test_score_rank_and_trend(world: str) -> None:
    cards = _cards(world, "carrier")
    w = default_weights()
    a, b = cards[CAR_A], cards[CAR_B]
    assert a.score == score_of(a.indicators, w)
    assert a.score is not None
    assert b.score is not None
    assert a.score > b.score
    assert (a.rank, b.rank) == (1, 2)
    # The day before: dev-a's 7 messages all dead, no reading; its calibration holds.
    assert a.previous_score is not None
    assert a.trend == a.score - a.previous_score
    with psycopg.connect(world) as conn:
        board = scoreboard(conn, P, "carrier")
    assert [c.subject_id for c in board.cards] == [CAR_A, CAR_B]
    assert board.weights_version == w.version


def test_score_formula_weights_each_part() -> None:
    from traceability.scorecards.model import Indicator

    w = default_weights()
    ind = {
        "completeness": Indicator("completeness", 1, 2, 0.5),
        "sequence": Indicator("sequence", 1, 4, 0.25),
        "trajectory_anomalies": Indicator("trajectory_anomalies", 1, 100, w.cap_anomalies_per_100h / 2),
        "handover": Indicator("handover", 0, 0, None),
    }
    c, s, t = (w.weights[k] for k in ("completeness", "sequence", "trajectory_anomalies"))
    expect = (c * 0.5 + s * 0.75 + t * 0.5) / (c + s + t)
    assert score_of(ind, w) == round(100 * expect, 4)
    assert score_of({"handover": Indicator("handover", 0, 0, None)}, w) is None


def test_drill_rows_name_what_is_behind_each_indicator(world: str) -> None:
    with psycopg.connect(world) as conn:
        conf = drill(conn, P, "carrier", CAR_A, "conformance")
        track = drill(conn, P, "carrier", CAR_B, "track_matching")
        lost = drill(conn, P, "device", "dev-a", "sequence")
        alarms = drill(conn, P, "asset", "TRUCK-A", "alarm_ack_sla")
        handover = drill(conn, P, "carrier", CAR_B, "handover")
    assert conf[0]["dead_by_reason"] == {"malformed_json": 2}
    assert conf[0]["dead_lettered"] == 2
    assert track[0]["shipment_id"] == "S2"
    assert track[0]["reason"] == "never_reached_destination"
    assert lost[0]["missing"] == 18
    assert lost[0]["produced"] == 288
    assert [r["within_sla"] for r in alarms] == [True, False, False]
    assert handover[0]["evidence_before"] is False
    assert handover[0]["evidence_after"] is False


def test_a_carrier_sees_only_its_own_card(world: str) -> None:
    mine = {"role": "carrier", "party": CAR_A}
    with psycopg.connect(world) as conn:
        board = scoreboard(conn, P, "carrier", seen_by=mine)
        assert [c.subject_id for c in board.cards] == [CAR_A]
        assert board.cards[0].rank == 1  # ranked among every carrier
        assert drill(conn, P, "carrier", CAR_A, "completeness", seen_by=mine)
        with pytest.raises(UnknownSubjectError):
            drill(conn, P, "carrier", CAR_B, "completeness", seen_by=mine)
        with pytest.raises(UnknownSubjectError):
            drill(conn, P, "carrier", "NOBODY", "completeness")
        assert [c.subject_id for c in scoreboard(conn, P, "asset", seen_by=mine).cards] == ["TRUCK-A"]
        regulator = scoreboard(conn, P, "carrier", seen_by={"role": "regulator", "party": "REG"})
        assert {c.subject_id for c in regulator.cards} == {CAR_A, CAR_B}


def test_bad_names_are_refused(world: str) -> None:
    with psycopg.connect(world) as conn:
        with pytest.raises(ScorecardError, match="subject"):
            scoreboard(conn, P, "planet")
        with pytest.raises(ScorecardError, match="indicator"):
            drill(conn, P, "carrier", CAR_A, "happiness")


def test_a_granted_exemption_takes_time_out(world: str) -> None:
    with psycopg.connect(world) as conn:
        grant_exemption(
            conn,
            Exemption("completeness", "device", "dev-c", T0, at(48), "device in repair", "inspector Li", T0),
        )
        conn.commit()
        with pytest.raises(ScorecardError):
            grant_exemption(conn, Exemption("completeness", "device", "dev-c", at(2), at(1), "x", "y", T0))
    b = _cards(world, "carrier")[CAR_B]
    assert _nd(b, "completeness") == (216, 216, 1.0)
    assert [e.reason for e in b.indicators["completeness"].exemptions] == ["device in repair"]


def test_exemptions_take_shipments_lots_and_handoffs_out(world: str) -> None:
    """An exemption of every indicator for a device covering a shipment's planned start takes that
    shipment (and its lot and handoff) out of the shipment-side indicators of every subject it counts
    for, and is listed there; a shipment it does not name keeps its figures."""
    with psycopg.connect(world) as conn:
        grant_exemption(
            conn, Exemption("*", "device", "dev-b", at(-1), at(1), "logger recalled", "inspector Wang", T0)
        )
        conn.commit()
    cards = _cards(world, "carrier")
    b, a = cards[CAR_B], cards[CAR_A]
    for key in ("track_matching", "trajectory_anomalies", "handover", "lots_unbroken", "coverage_lots"):
        assert _nd(b, key) == (0, 0, None), key
        assert [e.reason for e in b.indicators[key].exemptions] == ["logger recalled"], key
        assert b.indicators[key].note == "everything was exempt or not applicable", key
    assert _nd(a, "track_matching") == (1, 1, 1.0)
    assert _nd(a, "lots_unbroken") == (1, 1, 1.0)
    assert a.indicators["track_matching"].exemptions == []
    shipper = _cards(world, "shipper")[SHIPPER]  # S2's lot counts for the shipper too
    assert _nd(shipper, "coverage_lots") == (1, 1, 1.0)
    assert [e.reason for e in shipper.indicators["coverage_lots"].exemptions] == ["logger recalled"]


def test_a_shippers_exemption_takes_its_lots_out(world: str) -> None:
    """A lot counts for its owner as shipper: an exemption of the owner takes the lot out of every
    subject's lot indicators (carriers included), and nothing else."""
    with psycopg.connect(world) as conn:
        grant_exemption(
            conn, Exemption("lots_unbroken", "shipper", SHIPPER, at(-1), at(1), "recall", "inspector Li", T0)
        )
        conn.commit()
    a = _cards(world, "carrier")[CAR_A]
    assert _nd(a, "lots_unbroken") == (0, 0, None)
    assert [e.reason for e in a.indicators["lots_unbroken"].exemptions] == ["recall"]
    assert _nd(a, "coverage_lots") == (1, 1, 1.0)
    assert _nd(a, "track_matching") == (1, 1, 1.0)
