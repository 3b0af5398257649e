"""Golden vectors for the rule packs: every class and trigger kind, from the sources' own numbers.

Each case is a temperature history built from the figures a source states (a range bound, a trigger's
threshold and duration, a tolerance temperature, a spike ceiling) and the verdict the one scale of
docs/rule-semantics.md gives it. Inclusive bounds are tested exactly at the limit and one step past it.
Readings are one minute apart unless a case says otherwise; a segment of `n` readings at one value lasts
n − 1 minutes (first to last reading) and holds n minutes (sample-and-hold, up to the next reading).
Device accuracy is 0 unless a case names one, so that a bound is judged exactly where the source puts it:
a reading exactly at an inclusive bound is in range (no excursion) and, lying within the accuracy (even
±0) of the limit, `indeterminate`; one step past the bound is outside.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rules import engine
from rules.packs import load_packs
from rules.verdicts import Verdict

PACKS = load_packs()
MIN = 60_000
HOUR = 60 * MIN


def series(*segments: tuple[float, int], step_ms: int = MIN) -> tuple[np.ndarray, np.ndarray]:
    """Readings `step_ms` apart: `n` readings at `value` for each (value, n)."""
    values = [v for v, n in segments for _ in range(n)]
    t = np.arange(len(values), dtype=np.int64) * step_ms
    return t, np.array(values, dtype=np.float64)


def judge(code: str, t: np.ndarray, v: np.ndarray, accuracy_c: float | None = 0.0) -> engine.Evaluation:
    return engine.evaluate_series(t, v, PACKS[code], "storage", accuracy_c=accuracy_c)


# (class, what the source says, segments, expected verdict)
Case = tuple[str, str, tuple[tuple[float, int], ...], Verdict]
IN = 60  # readings at the in-range value around an event

RANGE_CASES: list[Case] = [
    # cn_food
    ("chilled", "0 °C is in range (inclusive)", ((0.0, 30),), "indeterminate"),
    ("chilled", "4 °C is in range (inclusive)", ((4.0, 30),), "indeterminate"),
    ("chilled", "−0.1 °C for 10 min: excursion", ((2.0, IN), (-0.1, 11), (2.0, IN)), "excursion"),
    ("chilled", "−0.1 °C for 9 min: under the 10 min minimum", ((2.0, IN), (-0.1, 10), (2.0, IN)), "pass"),
    (
        "chilled",
        "4.1 °C for 60 min: within the 1 h allowance",
        ((2.0, IN), (4.1, 61), (2.0, IN)),
        "excursion",
    ),
    ("chilled", "4.1 °C for 61 min: beyond the 1 h allowance", ((2.0, IN), (4.1, 62), (2.0, IN)), "broken"),
    ("frozen", "−18 °C is in range (inclusive)", ((-18.0, 30),), "indeterminate"),
    ("frozen", "−17.9 °C for 46 min: excursion", ((-20.0, IN), (-17.9, 47), (-20.0, IN)), "excursion"),
    (
        "frozen",
        "−15 °C, the tolerance itself: excursion",
        ((-20.0, IN), (-15.0, 47), (-20.0, IN)),
        "excursion",
    ),
    ("frozen", "−14.9 °C, warmer than −15 °C: broken", ((-20.0, IN), (-14.9, 1), (-20.0, IN)), "broken"),
    ("seafood_frozen", "−18 °C is in range", ((-18.0, 30),), "indeterminate"),
    ("seafood_frozen", "−17.9 °C for 10 min", ((-20.0, IN), (-17.9, 11), (-20.0, IN)), "excursion"),
    ("seafood_frozen", "−15 °C: the tolerance", ((-20.0, IN), (-15.0, 11), (-20.0, IN)), "excursion"),
    ("seafood_frozen", "−14.9 °C: broken", ((-20.0, IN), (-14.9, 1), (-20.0, IN)), "broken"),
    ("tuna_ultralow", "−60 °C is in range", ((-60.0, 30),), "indeterminate"),
    ("tuna_ultralow", "−59.9 °C for 10 min", ((-65.0, IN), (-59.9, 11), (-65.0, IN)), "excursion"),
    ("milk_pasteurised", "2 °C is in range", ((2.0, 30),), "indeterminate"),
    ("milk_pasteurised", "6 °C is in range", ((6.0, 30),), "indeterminate"),
    ("milk_pasteurised", "6.1 °C for 10 min", ((4.0, IN), (6.1, 11), (4.0, IN)), "excursion"),
    ("milk_pasteurised", "1.9 °C for 10 min", ((4.0, IN), (1.9, 11), (4.0, IN)), "excursion"),
    # ASEAN fruit: the chilling-injury floor and the ceiling, each at the limit and past it.
    ("durian", "10 °C floor", ((10.0, 30),), "indeterminate"),
    ("durian", "9.9 °C: chilling", ((12.0, IN), (9.9, 11), (12.0, IN)), "excursion"),
    ("durian", "15 °C ceiling", ((15.0, 30),), "indeterminate"),
    ("durian", "15.1 °C", ((12.0, IN), (15.1, 11), (12.0, IN)), "excursion"),
    ("mango", "10 °C floor", ((10.0, 30),), "indeterminate"),
    ("mango", "9.9 °C: chilling", ((12.0, IN), (9.9, 11), (12.0, IN)), "excursion"),
    ("mango", "13 °C ceiling", ((13.0, 30),), "indeterminate"),
    ("mango", "13.1 °C", ((12.0, IN), (13.1, 11), (12.0, IN)), "excursion"),
    ("banana", "13 °C floor", ((13.0, 30),), "indeterminate"),
    ("banana", "12.9 °C: chilling", ((14.0, IN), (12.9, 11), (14.0, IN)), "excursion"),
    ("banana", "15 °C ceiling", ((15.0, 30),), "indeterminate"),
    ("banana", "15.1 °C", ((14.0, IN), (15.1, 11), (14.0, IN)), "excursion"),
    ("dragon_fruit", "6 °C floor", ((6.0, 30),), "indeterminate"),
    ("dragon_fruit", "5.9 °C: chilling", ((8.0, IN), (5.9, 11), (8.0, IN)), "excursion"),
    ("dragon_fruit", "10 °C ceiling", ((10.0, 30),), "indeterminate"),
    ("dragon_fruit", "10.1 °C", ((8.0, IN), (10.1, 11), (8.0, IN)), "excursion"),
    ("longan", "4 °C floor", ((4.0, 30),), "indeterminate"),
    ("longan", "3.9 °C", ((5.0, IN), (3.9, 11), (5.0, IN)), "excursion"),
    ("longan", "7 °C ceiling", ((7.0, 30),), "indeterminate"),
    ("longan", "7.1 °C", ((5.0, IN), (7.1, 11), (5.0, IN)), "excursion"),
    ("mangosteen", "12 °C floor", ((12.0, 30),), "indeterminate"),
    ("mangosteen", "11.9 °C: chilling", ((13.0, IN), (11.9, 11), (13.0, IN)), "excursion"),
    ("mangosteen", "15 °C ceiling", ((15.0, 30),), "indeterminate"),
    ("mangosteen", "15.1 °C", ((13.0, IN), (15.1, 11), (13.0, IN)), "excursion"),
    # cn_drug_gsp
    ("pharma_2_8", "2 °C is in range", ((2.0, 30),), "indeterminate"),
    ("pharma_2_8", "8 °C is in range", ((8.0, 30),), "indeterminate"),
    ("pharma_2_8", "8.1 °C for 1 min", ((5.0, IN), (8.1, 2), (5.0, IN)), "excursion"),
    ("pharma_2_8", "8.1 °C for 30 min: the allowance", ((5.0, 120), (8.1, 31), (5.0, 120)), "excursion"),
    ("pharma_2_8", "8.1 °C for 31 min: beyond it", ((5.0, 120), (8.1, 32), (5.0, 120)), "broken"),
    ("pharma_cold", "2 °C (冷处 2–10 °C)", ((2.0, 30),), "indeterminate"),
    ("pharma_cold", "10 °C", ((10.0, 30),), "indeterminate"),
    ("pharma_cold", "10.1 °C", ((5.0, IN), (10.1, 2), (5.0, IN)), "excursion"),
    ("pharma_cold", "1.9 °C", ((5.0, IN), (1.9, 2), (5.0, IN)), "excursion"),
    ("pharma_cool", "20 °C (阴凉 ≤ 20 °C)", ((20.0, 30),), "indeterminate"),
    ("pharma_cool", "20.1 °C", ((15.0, IN), (20.1, 2), (15.0, IN)), "excursion"),
    ("pharma_room", "10 °C (常温 10–30 °C)", ((10.0, 30),), "indeterminate"),
    ("pharma_room", "30 °C", ((30.0, 30),), "indeterminate"),
    ("pharma_room", "9.9 °C", ((20.0, IN), (9.9, 2), (20.0, IN)), "excursion"),
    ("pharma_room", "30.1 °C", ((20.0, IN), (30.1, 2), (20.0, IN)), "excursion"),
    ("pharma_ultralow", "−60 °C", ((-60.0, 30),), "indeterminate"),
    ("pharma_ultralow", "−59.9 °C", ((-70.0, IN), (-59.9, 2), (-70.0, IN)), "excursion"),
    # vaccines: freeze at or below 0 °C is broken; 0.1 °C is only an excursion.
    ("vaccine_2_8", "2 °C", ((2.0, 30),), "indeterminate"),
    ("vaccine_2_8", "8 °C for less than 10 h", ((8.0, 600),), "indeterminate"),
    ("vaccine_2_8", "0.1 °C: cold, not frozen", ((5.0, IN), (0.1, 2), (5.0, IN)), "excursion"),
    ("vaccine_2_8", "0.0 °C once: frozen", ((5.0, IN), (0.0, 1), (5.0, IN)), "broken"),
    ("vaccine_frozen", "−20 °C", ((-20.0, 30),), "indeterminate"),
    ("vaccine_frozen", "−19.9 °C", ((-25.0, IN), (-19.9, 2), (-25.0, IN)), "excursion"),
    # USP: permitted excursions are excursions; beyond them, broken.
    ("usp_crt", "20 °C", ((20.0, 30),), "indeterminate"),
    ("usp_crt", "25 °C", ((25.0, 30),), "indeterminate"),
    ("usp_crt", "15 °C: the excursion band's floor", ((22.0, IN), (15.0, 10), (22.0, IN)), "excursion"),
    ("usp_crt", "14.9 °C: below it", ((22.0, IN), (14.9, 1), (22.0, IN)), "broken"),
    ("usp_crt", "17 °C: a permitted excursion", ((22.0, IN), (17.0, 10), (22.0, IN)), "excursion"),
    ("usp_crt", "30 °C: the band's ceiling", ((22.0, IN), (30.0, 10), (22.0, IN)), "excursion"),
    ("usp_crt", "40 °C briefly: a transient spike", ((22.0, 600), (40.0, 10), (22.0, 600)), "excursion"),
    ("usp_crt", "40.1 °C: above the spike ceiling", ((22.0, IN), (40.1, 1), (22.0, IN)), "broken"),
    ("usp_cct", "2 °C", ((2.0, 30),), "indeterminate"),
    ("usp_cct", "8 °C", ((8.0, 30),), "indeterminate"),
    ("usp_cct", "8.1 °C", ((5.0, 240), (8.1, 2), (5.0, 240)), "excursion"),
    ("usp_cct", "0 °C: the excursion band's floor", ((5.0, 240), (0.0, 10), (5.0, 240)), "excursion"),
    ("usp_cct", "−0.1 °C: below it", ((5.0, 240), (-0.1, 1), (5.0, 240)), "broken"),
    ("usp_cct", "15 °C: the band's ceiling", ((5.0, 240), (15.0, 10), (5.0, 240)), "excursion"),
    ("usp_cct", "15.1 °C: above it", ((5.0, 240), (15.1, 1), (5.0, 240)), "broken"),
    ("usp_freezer", "−25 °C", ((-25.0, 30),), "indeterminate"),
    ("usp_freezer", "−10 °C", ((-10.0, 30),), "indeterminate"),
    ("usp_freezer", "−25.1 °C", ((-20.0, IN), (-25.1, 2), (-20.0, IN)), "excursion"),
    ("usp_freezer", "−9.9 °C", ((-20.0, IN), (-9.9, 2), (-20.0, IN)), "excursion"),
    # WHO PQS
    ("pqs_2_8", "2 °C", ((2.0, 30),), "indeterminate"),
    ("pqs_2_8", "8 °C", ((8.0, 30),), "indeterminate"),
    ("pqs_2_8", "8.1 °C", ((5.0, IN), (8.1, 2), (5.0, IN)), "excursion"),
    ("pqs_2_8", "0.0 °C once: frozen", ((5.0, IN), (0.0, 1), (5.0, IN)), "broken"),
    ("pqs_indicator_type1", "8 °C", ((8.0, 30),), "indeterminate"),
    ("pqs_indicator_type1", "2 °C", ((2.0, 30),), "indeterminate"),
    ("pqs_indicator_type1", "1.9 °C", ((5.0, IN), (1.9, 2), (5.0, IN)), "excursion"),
    ("pqs_indicator_type1", "0.0 °C once: frozen", ((5.0, IN), (0.0, 1), (5.0, IN)), "broken"),
    ("pqs_indicator_type2", "−20 °C: frozen ice packs, no freeze limit", ((-20.0, 30),), "pass"),
    ("pqs_indicator_type2", "8 °C", ((8.0, 30),), "indeterminate"),
    ("pqs_indicator_type2", "8.1 °C", ((5.0, IN), (8.1, 2), (5.0, IN)), "excursion"),
]


@pytest.mark.parametrize(("code", "what", "segments", "expected"), RANGE_CASES, ids=lambda x: str(x))
def test_range_band_and_allowance_vectors(
    code: str, what: str, segments: tuple[tuple[float, int], ...], expected: Verdict
) -> None:
    ev = judge(code, *series(*segments))
    assert ev.verdict == expected, (code, what, ev.reasons)
    if expected in ("pass", "indeterminate"):
        assert ev.excursions == [], (code, what)


def test_every_class_has_golden_vectors_at_its_bounds() -> None:
    covered = {c[0] for c in RANGE_CASES}
    assert covered == {ref.code for ref in PACKS.classes()}
    for ref in PACKS.classes():
        r = ref.rules
        for bound in (r.low_c, r.high_c):
            if bound is not None:
                at_limit = [c for c in RANGE_CASES if c[0] == ref.code and any(v == bound for v, _ in c[2])]
                assert at_limit, (ref.code, bound)


# -- triggers: consecutive, cumulative and instant, inclusive at the threshold ---------------------------


# (class, trigger name, segments, fires)
TriggerCase = tuple[str, str, tuple[tuple[float, int], ...], bool]
TRIGGER_CASES: list[TriggerCase] = [
    # E006 30-day recorder: +8 °C for 10 h (single event); −0.5 °C for 60 min (single event).
    ("pqs_2_8", "heat_single", ((5.0, 10), (8.0, 601), (5.0, 10)), True),
    ("pqs_2_8", "heat_single", ((5.0, 10), (8.0, 600), (5.0, 10)), False),
    ("pqs_2_8", "heat_single", ((5.0, 10), (7.9, 700), (5.0, 10)), False),
    ("pqs_2_8", "freeze", ((5.0, 10), (-0.5, 61), (5.0, 10)), True),
    ("pqs_2_8", "freeze", ((5.0, 10), (-0.5, 60), (5.0, 10)), False),
    ("pqs_2_8", "freeze", ((5.0, 10), (-0.4, 90), (5.0, 10)), False),
    # E006/TR07 Type 1: ≥ 45 °C for 1 h; ≥ 30 °C for 10 h cumulative; ≤ −0.5 °C for 1 h.
    ("pqs_indicator_type1", "heat_45", ((5.0, 10), (45.0, 61), (5.0, 10)), True),
    ("pqs_indicator_type1", "heat_45", ((5.0, 10), (45.0, 60), (5.0, 10)), False),
    ("pqs_indicator_type1", "heat_45", ((5.0, 10), (44.9, 90), (5.0, 10)), False),
    ("pqs_indicator_type1", "heat_30_cumulative", ((30.0, 300), (5.0, 60), (30.0, 300), (5.0, 2)), True),
    ("pqs_indicator_type1", "heat_30_cumulative", ((30.0, 300), (5.0, 60), (30.0, 299), (5.0, 2)), False),
    ("pqs_indicator_type1", "heat_30_cumulative", ((29.9, 300), (5.0, 60), (29.9, 400), (5.0, 2)), False),
    ("pqs_indicator_type1", "freeze", ((5.0, 10), (-0.5, 61), (5.0, 10)), True),
    ("pqs_indicator_type1", "freeze", ((5.0, 10), (-0.5, 60), (5.0, 10)), False),
    # Type 2: the same heat triggers plus ≥ 10 °C for 20 h cumulative; no freeze trigger.
    ("pqs_indicator_type2", "heat_45", ((5.0, 10), (45.0, 61), (5.0, 10)), True),
    ("pqs_indicator_type2", "heat_30_cumulative", ((30.0, 600), (5.0, 2)), True),
    ("pqs_indicator_type2", "heat_30_cumulative", ((30.0, 599), (5.0, 2)), False),
    ("pqs_indicator_type2", "heat_10_cumulative", ((10.0, 600), (5.0, 60), (10.0, 600), (5.0, 2)), True),
    ("pqs_indicator_type2", "heat_10_cumulative", ((10.0, 600), (5.0, 60), (10.0, 599), (5.0, 2)), False),
    ("pqs_indicator_type2", "heat_10_cumulative", ((9.9, 1300), (5.0, 2)), False),
    # vaccine_2_8 carries the E006 heat alarms as its upper allowance.
    ("vaccine_2_8", "heat_single", ((5.0, 10), (25.0, 601), (5.0, 10)), True),
    ("vaccine_2_8", "heat_single", ((5.0, 10), (25.0, 600), (5.0, 10)), False),
    ("vaccine_2_8", "heat_45", ((5.0, 10), (45.0, 61), (5.0, 10)), True),
    ("vaccine_2_8", "heat_30_cumulative", ((30.0, 300), (5.0, 60), (30.0, 300), (5.0, 2)), True),
]


@pytest.mark.parametrize(("code", "name", "segments", "fires"), TRIGGER_CASES, ids=lambda x: str(x))
def test_trigger_vectors(code: str, name: str, segments: tuple[tuple[float, int], ...], fires: bool) -> None:
    assert any(t.name == name for t in PACKS[code].rules.triggers)
    ev = judge(code, *series(*segments))
    fired = {x.name for x in ev.triggers}
    assert (name in fired) == fires, (code, name, fired)
    if fires:
        # Every E006 alarm breaks the chain.
        assert ev.verdict == "broken"
        assert any(b.rule_id == f"{PACKS[code].pack_id}/{code}/trigger.{name}" for b in ev.breaches)


def test_every_trigger_of_every_class_has_golden_vectors() -> None:
    named = {(ref.code, t.name) for ref in PACKS.classes() for t in ref.rules.triggers}
    fired = {(c[0], c[1]) for c in TRIGGER_CASES if c[3]}
    quiet = {(c[0], c[1]) for c in TRIGGER_CASES if not c[3]}
    assert named == fired
    assert named - {("vaccine_2_8", "heat_45"), ("vaccine_2_8", "heat_30_cumulative")} <= quiet | {
        ("pqs_indicator_type2", "heat_45")
    }


INSTANT_PACK = """
format = 1
id = "instant_probe"
version = "1"
title = "An E006 instant trigger at +30.0 °C"
goods = "food"

[classes.instant_probe]
description = "2 to 8 °C with an instant alarm"
low_c = 2.0
high_c = 8.0
source = "test"

[classes.instant_probe.min_duration]
seconds = 60
source = "test"

[classes.instant_probe.max_interval.storage]
seconds = 600
source = "test"

[classes.instant_probe.max_interval.transport]
seconds = 600
source = "test"

[[classes.instant_probe.triggers]]
name = "heat_instant"
kind = "instant"
side = "high"
threshold_c = 30.0
severity = "critical"
source = "WHO PQS E006: instant trigger, thresholds inclusive: +30.0 °C triggers at 30.0, not at 29.9"
"""


@pytest.mark.parametrize(("value", "fires"), [(30.0, True), (29.9, False)])
def test_instant_trigger_is_inclusive_at_its_threshold(tmp_path: Path, value: float, fires: bool) -> None:
    # No shipped E006 profile uses the instant kind; DOMAIN's own example of it is +30.0 °C.
    (tmp_path / "instant_probe.toml").write_text(INSTANT_PACK, encoding="utf-8")
    ref = load_packs(tmp_path)["instant_probe"]
    t, v = series((5.0, 10), (value, 1), (5.0, 10))
    ev = engine.evaluate_series(t, v, ref, "storage", accuracy_c=0.0)
    assert ([x.name for x in ev.triggers] == ["heat_instant"]) == fires
    assert (ev.verdict == "broken") == fires


# -- one scale across packs -------------------------------------------------------------------------------


def test_the_same_history_gets_the_same_verdict_in_every_vaccine_pack() -> None:
    # 10 h at 25 °C: broken wherever a 2–8 °C vaccine or drug is judged.
    hot = series((5.0, 30), (25.0, 601), (5.0, 30))
    for code in ("vaccine_2_8", "pqs_2_8", "pharma_2_8"):
        assert judge(code, *hot).verdict == "broken", code
    # A freeze (0 °C) of a freeze-sensitive vaccine: broken in every pack that holds one.
    frozen = series((5.0, 30), (0.0, 1), (5.0, 30))
    for code in ("vaccine_2_8", "pqs_2_8", "pqs_indicator_type1"):
        assert judge(code, *frozen).verdict == "broken", code


def test_usp_crt_spike_of_exactly_24_h_up_to_40_c_is_permitted() -> None:
    # 29 days at 20 °C, then 24 h at 40 °C (readings every 30 min: 49 readings span 24 h), then 20 °C:
    # MKT over 30 days stays about 22 °C, so only the spike allowance decides.
    step = 30 * MIN
    before = 29 * 48
    ok = series((20.0, before), (40.0, 49), (20.0, 48), step_ms=step)
    ev = judge("usp_crt", *ok)
    assert ev.verdict == "excursion", ev.reasons
    assert ev.mkt_c is not None
    assert ev.mkt_c < 25.0
    longer = series((20.0, before), (40.0, 50), (20.0, 48), step_ms=step)
    ev2 = judge("usp_crt", *longer)
    assert ev2.verdict == "broken"
    assert [b.rule_id for b in ev2.breaches] == ["usp/usp_crt/band"]


# -- recording intervals, per mode, at the limit ----------------------------------------------------------

# (class, mode, interval field, seconds)
INTERVALS = [
    ("pharma_2_8", "storage", 1800),
    ("pharma_2_8", "transport", 300),
    ("vaccine_2_8", "transport", 300),
    ("chilled", "storage", 1800),
    ("chilled", "transport", 600),
    ("pqs_2_8", "storage", 600),
]


@pytest.mark.parametrize(("code", "mode", "seconds"), INTERVALS)
def test_recording_interval_is_inclusive(code: str, mode: str, seconds: int) -> None:
    ref = PACKS[code]
    mid = 0.5 * ((ref.rules.low_c or 0.0) + (ref.rules.high_c or 0.0))
    for spacing, expected in ((seconds, "pass"), (seconds + 1, "broken")):
        t = np.array([0, spacing * 1000], dtype=np.int64)
        ev = engine.evaluate_series(
            t, np.array([mid, mid]), ref, "storage" if mode == "storage" else "transport", accuracy_c=0.0
        )
        assert ev.verdict == expected, (code, mode, spacing)


def test_per_mode_interval_values_and_sources() -> None:
    for code in ("chilled", "frozen", "milk_pasteurised", "durian", "seafood_frozen"):
        mi = PACKS[code].rules.max_interval
        assert mi.road is not None
        assert mi.rail is not None
        assert mi.sea is not None
        assert (mi.road.seconds, mi.rail.seconds, mi.sea.seconds, mi.storage.seconds) == (
            600,
            1800,
            1800,
            1800,
        )
        assert "GB 29753-2013" in mi.road.source
        assert "GB 29753" not in mi.rail.source
        assert "GB 29753" not in mi.sea.source
        assert "Project default" in mi.rail.source
        assert "Project default" in mi.sea.source
    gsp = PACKS["pharma_2_8"].rules.humidity
    assert gsp is not None
    assert (gsp.low_pct, gsp.high_pct) == (35.0, 75.0)


def test_accuracy_makes_a_reading_at_the_limit_indeterminate() -> None:
    # With the class's default accuracy (±0.5 °C), 8.0 °C is within accuracy of the limit.
    ev = judge("pharma_2_8", *series((8.0, 30)), accuracy_c=None)
    assert ev.verdict == "indeterminate"
