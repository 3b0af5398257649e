"""Tests: a lot's remaining shelf life through its custody legs, against a per-second Python oracle."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.engine.shelf import held_ms
from rules.models import to_epoch_ms
from rules.packs import ClassRef, Limit, PackSet, RecordingInterval, ShelfLife, load_packs
from rules.worker import lots

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GAS_R_KJ = 0.008314462618
# Short intervals keep the oracle's per-second walk small while every generated leg can outlast them.
STORAGE_CAP_S, TRANSPORT_CAP_S = 180, 60
SQRT = ShelfLife(model="sqrt", ref_c=0.0, ref_life_h=240.0, t_min_c=-10.0, source="test")
ARRHENIUS = ShelfLife(model="arrhenius", ref_c=-18.0, ref_life_h=8760.0, ea_kj_mol=80.0, source="test")


@pytest.fixture(scope="module")
def packs() -> PackSet:
    return load_packs()


def _class(
    packs: PackSet, model: ShelfLife | None, caps: tuple[int, int] = (STORAGE_CAP_S, TRANSPORT_CAP_S)
) -> ClassRef:
    """The chilled class with a pinned model and pinned recording intervals (storage, transport)."""
    base = packs["chilled"]
    interval = RecordingInterval(
        transport=Limit(seconds=caps[1], source="test"),
        storage=Limit(seconds=caps[0], source="test"),
    )
    rules = base.rules.model_copy(update={"shelf_life": model, "max_interval": interval})
    return ClassRef(pack=base.pack, code=base.code, rules=rules)


def at(s: int) -> datetime:
    return T0 + timedelta(seconds=s)


def _seconds(t: datetime) -> float:
    return (t - T0).total_seconds()


# -- the oracle: every second of the lot's custody, one at a time ------------------------------------


def _rate(model: ShelfLife, x: float) -> float:
    if model.model == "arrhenius":
        assert model.ea_kj_mol is not None
        return math.exp(model.ea_kj_mol / GAS_R_KJ * (1 / (model.ref_c + 273.15) - 1 / (x + 273.15)))
    assert model.t_min_c is not None
    return 0.0 if x <= model.t_min_c else ((x - model.t_min_c) / (model.ref_c - model.t_min_c)) ** 2


def _temperature_at(leg: lots.Leg, s: int) -> float | None:
    """The warmest reading any series of the leg holds at second s (each reading holds until its series'
    next record, at most the mode's interval, never past the series' window); None when none does."""
    cap = STORAGE_CAP_S if leg.mode == "storage" else TRANSPORT_CAP_S
    best: float | None = None
    for series in leg.series:
        times = [(int(t) - to_epoch_ms(T0)) // 1000 for t in series.t_ms]
        end = (series.t_to or leg.t_to or at(10**9)) - T0
        if not (series.t_from - T0).total_seconds() <= s < end.total_seconds():
            continue
        for i, t in enumerate(times):
            nxt = times[i + 1] if i + 1 < len(times) else t
            value = float(series.v[i])
            if t <= s < t + min(nxt - t, cap) and not math.isnan(value):
                best = value if best is None else max(best, value)
    return best


def oracle(model: ShelfLife, legs: list[lots.Leg]) -> tuple[float, int, int, int | None]:
    """(used, evidence s, unevidenced s, as_of s) by walking every second."""
    start = min(int((g.t_from - T0).total_seconds()) for g in legs)
    stop = max(int(((g.t_to or at(10**9)) - T0).total_seconds()) for g in legs)
    stop = min(stop, 2_000)  # every generated reading lies before this
    used = 0.0
    covered: list[int] = []
    for s in range(start, stop):
        held = [x for g in legs if (x := _temperature_at(g, s)) is not None]
        if held:
            used += _rate(model, max(held)) / (model.ref_life_h * 3600)
            covered.append(s)
    as_of = covered[-1] + 1 if covered else None
    end = as_of if as_of is not None else start
    in_legs = sum(
        1
        for s in range(start, end)
        if any(
            (g.t_from - T0).total_seconds() <= s < ((g.t_to or at(10**9)) - T0).total_seconds() for g in legs
        )
    )
    return used, len(covered), in_legs - len(covered), as_of


# -- generated custody -------------------------------------------------------------------------------


@st.composite
def custody(draw: st.DrawFn) -> list[lots.Leg]:
    legs: list[lots.Leg] = []
    for _ in range(draw(st.integers(1, 3))):
        t_from = draw(st.integers(0, 300))
        length = draw(st.integers(1, 400))
        open_leg = draw(st.booleans())
        mode = draw(st.sampled_from(["storage", "transport"]))
        if draw(st.integers(0, 5)) == 0:
            legs.append(lots.Leg(None, mode, at(t_from), None if open_leg else at(t_from + length)))
            continue
        series: list[lots.SeriesReadings] = []
        for n in range(draw(st.integers(0, 2))):
            s_from = t_from + draw(st.integers(0, length // 2))
            s_to = None if open_leg else t_from + length
            hi = (s_to if s_to is not None else t_from + length + 200) - 1
            offsets = draw(st.lists(st.integers(s_from, max(s_from, hi)), max_size=12, unique=True))
            values = draw(
                st.lists(
                    st.one_of(st.floats(-40.0, 40.0, allow_nan=False), st.just(math.nan)),
                    min_size=len(offsets),
                    max_size=len(offsets),
                )
            )
            order = np.argsort(offsets)
            t_ms = np.array(offsets, dtype=np.int64)[order] * 1000 + to_epoch_ms(T0)
            v = np.array(values, dtype=np.float64)[order]
            series.append(
                lots.SeriesReadings(n, None, at(s_from), t_ms, v, None if s_to is None else at(s_to))
            )
        legs.append(
            lots.Leg(
                f"ASSET-{len(legs)}", mode, at(t_from), None if open_leg else at(t_from + length), series
            )
        )
    return legs


@settings(max_examples=150, deadline=None)
@given(legs=custody(), arrhenius=st.booleans())
def test_lot_shelf_life_matches_the_per_second_oracle(
    packs: PackSet, legs: list[lots.Leg], arrhenius: bool
) -> None:
    model = ARRHENIUS if arrhenius else SQRT
    got = lots.judge_lot(_class(packs, model), legs).shelf
    assert got is not None
    used, evidence_s, unevidenced_s, as_of = oracle(model, legs)
    assert got.used == pytest.approx(used, rel=1e-9, abs=1e-15)
    assert (got.evidence_s, got.unevidenced_s) == (evidence_s, unevidenced_s)
    assert got.as_of_ms == (None if as_of is None else to_epoch_ms(at(as_of)))
    assert got.remaining_h == pytest.approx(max(0.0, 1 - used) * model.ref_life_h, rel=1e-9, abs=1e-12)


# -- worked cases -------------------------------------------------------------------------------------

GB_CAPS = (1800, 600)  # 30 min in storage, 10 min in a truck


def _series(leg_from: int, readings: list[tuple[int, float]], sid: int = 1) -> lots.SeriesReadings:
    t_ms = np.array([to_epoch_ms(at(t)) for t, _ in readings], dtype=np.int64)
    v = np.array([x for _, x in readings], dtype=np.float64)
    return lots.SeriesReadings(sid, None, at(leg_from), t_ms, v)


def test_square_root_model_worked_case(packs: PackSet) -> None:
    # One hour at 5 °C: ((5 − (−10)) / (0 − (−10)))² = 2.25 reference hours of 240; then one hour at
    # −10 °C (at T_min): nothing. Readings every 5 min in a truck (cap 10 min).
    readings = [(m * 60, 5.0 if m < 60 else -10.0) for m in range(0, 121, 5)]
    leg = lots.Leg("TRUCK", "transport", at(0), at(7200), [_series(0, readings)])
    got = lots.judge_lot(_class(packs, SQRT, GB_CAPS), [leg]).shelf
    assert got is not None
    assert got.used == pytest.approx(2.25 / 240)
    assert got.remaining_h == pytest.approx(240 - 2.25)
    assert (got.evidence_s, got.unevidenced_s, got.as_of_ms) == (7200, 0, to_epoch_ms(at(7200)))


def test_a_silence_past_the_interval_is_unevidenced_not_more_of_the_last_reading(packs: PackSet) -> None:
    # 10 °C at 0 and at 3600 s in a truck: the first reading holds 600 s (the transport interval).
    leg = lots.Leg("TRUCK", "transport", at(0), at(3600), [_series(0, [(0, 10.0), (3600, 10.0)])])
    got = lots.judge_lot(_class(packs, SQRT, GB_CAPS), [leg]).shelf
    assert got is not None
    assert got.used == pytest.approx(4.0 * 600 / (240 * 3600))
    assert (got.evidence_s, got.unevidenced_s) == (600, 0)  # as of 600 s: the last reading holds nothing
    stored = lots.Leg("ROOM", "storage", at(0), at(3600), [_series(0, [(0, 10.0), (3600, 10.0)])])
    room = lots.judge_lot(_class(packs, SQRT, GB_CAPS), [stored]).shelf
    assert room is not None
    assert room.evidence_s == 1800  # the storage interval


def test_the_warmest_of_two_probes_counts(packs: PackSet) -> None:
    cold = _series(0, [(0, 0.0), (300, 0.0), (600, 0.0)], sid=1)
    warm = _series(0, [(0, 0.0), (300, 10.0), (600, 10.0)], sid=2)
    leg = lots.Leg("TRUCK", "transport", at(0), at(600), [cold, warm])
    got = lots.judge_lot(_class(packs, SQRT, GB_CAPS), [leg]).shelf
    assert got is not None
    assert got.used == pytest.approx((300 * 1.0 + 300 * 4.0) / (240 * 3600))


def test_arrhenius_at_the_reference_temperature_runs_at_rate_one(packs: PackSet) -> None:
    readings = [(m * 60, -18.0) for m in range(0, 61, 10)]
    leg = lots.Leg("ROOM", "storage", at(0), None, [_series(0, readings)])
    got = lots.judge_lot(_class(packs, ARRHENIUS, GB_CAPS), [leg]).shelf
    assert got is not None
    assert got.used == pytest.approx(1.0 / 8760)


def test_no_model_no_shelf_life_and_no_leg_no_evidence(packs: PackSet) -> None:
    assert lots.judge_lot(_class(packs, None, GB_CAPS), []).shelf is None
    empty = lots.judge_lot(_class(packs, SQRT, GB_CAPS), [lots.Leg(None, None, at(0), at(60))]).shelf
    assert empty is not None
    assert (empty.used, empty.evidence_s, empty.as_of_ms, empty.remaining_h) == (0.0, 0.0, None, 240.0)


def test_held_ms_caps_and_the_last_record_holds_nothing() -> None:
    t = np.array([0, 100, 1000, 1001], dtype=np.int64)
    assert held_ms(t, 500).tolist() == [100, 500, 1, 0]
    assert held_ms(np.array([], dtype=np.int64), 500).tolist() == []
