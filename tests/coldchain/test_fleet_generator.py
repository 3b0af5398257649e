"""Tests: the fleet generator's own claims: which samples each profile takes, the plan it publishes, the
ratios it implies, and that its malformed messages are the only ones the gateway's decoder refuses."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.devices import HOUR_MS, Waypoint, haversine_km
from firmware_sim.fleet import (
    LATE,
    LATE_MS,
    LOST,
    MALFORMED,
    SAMPLE_MS,
    SENT,
    fates,
    implied,
    plan_fleet,
    samples,
)
from firmware_sim.fleet_world import (
    CLEAN,
    FENCE_M,
    LOSSY,
    OFF_TRACK,
    PROFILES,
    TRIP_MS,
    FaultProfile,
    fleet,
    gln,
)
from firmware_sim.fleet_world import (
    LATE as LATE_PROFILE,
)
from firmware_sim.fleet_world import (
    MALFORMED as MALFORMED_PROFILE,
)
from gateway.decode import decode
from gateway.models import Rejected, TelemetryBatch

START_MS = int(datetime(2026, 10, 5, tzinfo=UTC).timestamp() * 1000)
FLEET = fleet()
TEN_MIN_MS = 600_000
N = 1440  # samples per logger a day
BAD = 29 / N  # 2 % of 1 440 samples is 28.8: the generator takes 29


def test_each_profile_takes_exactly_its_share_of_every_device() -> None:
    n = FLEET.period_ms // SAMPLE_MS
    assert n == 1440  # a day
    for carrier in FLEET.carriers:
        p = carrier.profile
        for truck in carrier.trucks:
            fate = fates(FLEET, truck.device_id, p)
            counts = Counter(fate.tolist())
            assert counts[LOST] == round(p.lost * n)  # 10 %: 144
            assert counts[LATE] == round(p.late * n)  # 20 %: 288
            assert counts[MALFORMED] == round(p.malformed * n)  # 2 %: 28.8, so 29
            assert fate[-1] == SENT, "the last sample goes out at once: every gap before it shows by seq"
            late = np.flatnonzero(fate == LATE)
            assert (late * SAMPLE_MS + LATE_MS < FLEET.period_ms).all(), "late uploads stay in the period"


def test_the_choice_is_seeded_per_device() -> None:
    a = fates(FLEET, "fl001-000-logger", LOSSY)
    assert np.array_equal(a, fates(FLEET, "fl001-000-logger", LOSSY))
    assert not np.array_equal(a, fates(FLEET, "fl001-001-logger", LOSSY))


@settings(max_examples=40, deadline=None)
@given(
    trips=st.integers(min_value=1, max_value=6),
    lost=st.sampled_from([0.0, 0.05, 0.1, 0.3]),
    late=st.sampled_from([0.0, 0.1, 0.2]),
    malformed=st.sampled_from([0.0, 0.02, 0.1]),
    device=st.text("abcdef0123456789-", min_size=1, max_size=12),
)
def test_fates_are_exact_and_disjoint(
    trips: int, lost: float, late: float, malformed: float, device: str
) -> None:
    f = fleet(carriers=1, trucks_per_carrier=1, period_ms=trips * TRIP_MS)
    n = f.period_ms // SAMPLE_MS
    fate = fates(f, device, FaultProfile("x", lost=lost, late=late, malformed=malformed))
    assert len(fate) == n
    counts = Counter(fate.tolist())  # one fate per sample: disjoint by construction, counted exactly
    assert (counts[LOST], counts[LATE], counts[MALFORMED]) == (
        round(lost * n),
        round(late * n),
        round(malformed * n),
    )
    assert fate[-1] == SENT


def test_a_period_too_short_for_the_late_share_is_refused() -> None:
    f = fleet(carriers=1, trucks_per_carrier=1, period_ms=TRIP_MS)
    with pytest.raises(ValueError, match="too short"):
        fates(f, "d", FaultProfile("x", late=0.9))


def test_bad_fleet_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="whole number"):
        fleet(period_ms=TRIP_MS + 1)
    with pytest.raises(ValueError, match="at least one"):
        fleet(carriers=0)


def test_the_plan_sends_what_the_fates_say_when_they_say() -> None:
    plan = plan_fleet(FLEET, START_MS)
    assert [p.t_ms for p in plan] == sorted(p.t_ms for p in plan)
    by_dev: dict[str, list[int]] = {}
    for p in plan:
        by_dev.setdefault(p.client_id, []).append(p.t_ms)
    for dev in samples(FLEET, START_MS):
        fate = dev.fate
        expected = sorted(
            [int(t) for t, f in zip(dev.t_ms, fate, strict=True) if f in (SENT, MALFORMED)]
            + [int(t) + LATE_MS for t, f in zip(dev.t_ms, fate, strict=True) if f == LATE]
        )
        assert by_dev[dev.device_id] == expected
    assert plan == plan_fleet(FLEET, START_MS), "the same fleet and start give the same plan"


def test_the_gateway_decoder_refuses_exactly_the_malformed_messages() -> None:
    plan = plan_fleet(fleet(carriers=4, trucks_per_carrier=1), START_MS)
    results = [(p, decode(p.topic, p.payload, p.t_ms)) for p in plan]
    refused = [p for p, r in results if isinstance(r, Rejected)]
    assert refused == [p for p in plan if p.kind == "malformed"]
    assert len(refused) == 29
    accepted = [r for _, r in results if isinstance(r, TelemetryBatch)]
    assert all(len(b) == 3 and b.seq % 3 == 0 for b in accepted)


def test_tracks_start_and_end_inside_the_fences_but_the_off_track_trip() -> None:
    places = {loc.location_id: Waypoint(loc.lat or 0.0, loc.lon or 0.0) for loc in FLEET.world.base.locations}
    for trip in FLEET.trips:
        first, last = trip.fixes[0].at, trip.fixes[-1].at
        assert haversine_km(first, places[trip.from_location_id]) * 1000 < FENCE_M
        to_m = haversine_km(last, places[trip.to_location_id]) * 1000
        assert (to_m > 5 * FENCE_M) if trip.off_track else (to_m < FENCE_M)
        assert trip.fixes[-1].t_ms < trip.end_offset_ms
    off = [t for t in FLEET.trips if t.off_track]
    assert len(off) == 1
    assert off[0].end_offset_ms == FLEET.period_ms, "the last trip: no later trip starts off the fence"


def test_the_implied_ratios_are_the_profiles_nominal_shares() -> None:
    want = implied(FLEET, START_MS, required_interval_ms=TEN_MIN_MS)
    by_profile = {c.profile: want[c.party_id] for c in FLEET.carriers}
    assert set(by_profile) == set(PROFILES)

    def ratios(key: str) -> dict[str, float | None]:
        return {p.name: by_profile[p][key].ratio for p in PROFILES}

    assert ratios("sequence") == {"clean": 0, "lossy": 0.1, "late": 0, "malformed": BAD, "off_track": 0}
    assert ratios("timeliness") == {"clean": 1, "lossy": 1, "late": 0.8, "malformed": 1, "off_track": 1}
    assert ratios("conformance") == {"clean": 1, "lossy": 1, "late": 1, "malformed": 1 - BAD, "off_track": 1}
    assert ratios("track_matching") == {"clean": 1, "lossy": 1, "late": 1, "malformed": 1, "off_track": 7 / 8}
    assert ratios("temp_compliance") == dict.fromkeys((p.name for p in PROFILES), 1.0)
    assert ratios("completeness") == dict.fromkeys((p.name for p in PROFILES), 1.0)
    assert ratios("lots_unbroken") == dict.fromkeys((p.name for p in PROFILES), 1.0)
    assert ratios("coverage_assets") == dict.fromkeys((p.name for p in PROFILES), 1.0)
    assert "trajectory_anomalies" not in by_profile[OFF_TRACK]
    assert {p.name: by_profile[p]["trajectory_anomalies"].ratio for p in PROFILES if p != OFF_TRACK} == {
        "clean": 0,
        "lossy": 0,
        "late": 0,
        "malformed": 0,
    }
    assert by_profile[LOSSY]["sequence"].denominator == 2 * N * 3
    assert by_profile[LATE_PROFILE]["timeliness"].denominator == 2 * N * 3
    assert by_profile[MALFORMED_PROFILE]["conformance"].denominator == 2 * N
    assert by_profile[OFF_TRACK]["track_matching"].denominator == 2 * FLEET.period_ms // TRIP_MS
    assert all(e.tolerance == 0 for w in want.values() for e in w.values())
    assert CLEAN in by_profile


def test_completeness_is_capped_per_device() -> None:
    # A one-minute required interval: each lost or malformed sample is a reading short.
    want = implied(FLEET, START_MS, required_interval_ms=SAMPLE_MS)
    by_profile = {c.profile.name: want[c.party_id]["completeness"].ratio for c in FLEET.carriers}
    assert by_profile == {"clean": 1, "lossy": 0.9, "late": 1, "malformed": 1 - BAD, "off_track": 1}
    # Recording ten times as often as required: no loss shows.
    want = implied(FLEET, START_MS, required_interval_ms=TEN_MIN_MS)
    assert {w["completeness"].denominator for w in want.values()} == {2 * 144}


def test_carrier_glns_carry_their_check_digit() -> None:
    assert gln("061414100003") == "0614141000036"  # GS1 General Specifications example GLN
    assert len({c.party_id for c in fleet(carriers=12).carriers}) == 12
    assert HOUR_MS * 6 == TRIP_MS
