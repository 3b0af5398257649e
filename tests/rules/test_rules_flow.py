"""Tests: the import flow of a batch (pure): each violation, partial releases adding up, clearance time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from rules.engine import catalog, flow
from rules.engine.flow import FlowStep

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def step(name: str, seq: int, hours: float, **kw: object) -> FlowStep:
    return FlowStep(step=name, seq=seq, t=h(hours), **kw)  # type: ignore[arg-type]


ARRIVED = step(flow.DISCHARGE, 1, 0, quantity=1000.0, uom="KGM")
INSPECTED = step(flow.INSPECTION, 2, 1, quantity=1000.0, uom="KGM", conformant=True, certificates=("C-1",))
FAILED = step(flow.INSPECTION, 2, 1, quantity=1000.0, uom="KGM", conformant=False)


def violations(*steps: FlowStep) -> list[tuple[str, int, str | None]]:
    return [(v.violation, v.seq, v.missing) for v in flow.check(steps).violations]


def test_the_required_order_raises_nothing_and_keeps_the_clearance_time() -> None:
    done = flow.check(
        [
            ARRIVED,
            INSPECTED,
            step(flow.DISINFECTION, 3, 1.5),
            step(flow.TRACE_CODE, 4, 2, trace_code="QZ-1", site="Qinzhou CS"),
            step(flow.ENTRY, 5, 2.5, quantity=1000.0, uom="KGM"),
            step(flow.RELEASE, 6, 4, quantity=600.0, uom="KGM"),
            step(flow.ONWARD, 7, 5, quantity=600.0, uom="KGM"),
        ]
    )
    assert done.violations == ()
    assert done.clearance_s == 4 * 3600
    assert (done.discharged_at, done.first_release_at) == (h(0), h(4))
    assert (done.trace_code, done.trace_code_site) == ("QZ-1", "Qinzhou CS")


def test_a_release_without_inspection_is_a_violation() -> None:
    release = step(flow.RELEASE, 3, 2, quantity=500.0, uom="KGM")
    [v] = flow.check([ARRIVED, release]).violations
    assert (v.violation, v.seq, v.t) == (flow.RELEASE_WITHOUT_INSPECTION, 3, h(2))
    assert v.rule_id == "flow/release_without_inspection"
    assert v.reason == catalog.FLOW_RELEASE_WITHOUT_INSPECTION.format(quantity="500 KGM")
    # An inspection recorded after the release does not cover it.
    late = step(flow.INSPECTION, 4, 3, quantity=1000.0, uom="KGM", conformant=True)
    assert violations(ARRIVED, release, late) == [(flow.RELEASE_WITHOUT_INSPECTION, 3, None)]


def test_a_release_after_a_non_conformant_result_is_a_violation_until_a_conformant_one() -> None:
    release = step(flow.RELEASE, 3, 2, quantity=500.0, uom="KGM")
    assert violations(ARRIVED, FAILED, release) == [(flow.RELEASE_AFTER_NON_CONFORMANT, 3, None)]
    again = step(flow.INSPECTION, 4, 1.5, quantity=1000.0, uom="KGM", conformant=True)
    assert violations(ARRIVED, FAILED, again, release) == []


def test_releases_beyond_the_inspected_quantity_are_violations() -> None:
    first = step(flow.RELEASE, 3, 2, quantity=600.0, uom="KGM")
    second = step(flow.RELEASE, 4, 3, quantity=400.0, uom="KGM")
    third = step(flow.RELEASE, 5, 4, quantity=1.0, uom="KGM")
    assert violations(ARRIVED, INSPECTED, first, second) == []
    assert violations(ARRIVED, INSPECTED, first, second, third) == [(flow.RELEASED_BEYOND_INSPECTED, 5, None)]
    [v] = flow.check([ARRIVED, INSPECTED, first, second, third]).violations
    assert v.reason == "released 1001 KGM in total, beyond the 1000 KGM inspected"


def test_missing_steps_are_violations() -> None:
    release = step(flow.RELEASE, 3, 2, quantity=100.0, uom="KGM")
    # No arrival before the release.
    assert violations(INSPECTED, release) == [(flow.STEP_MISSING, 3, flow.DISCHARGE)]
    # The result asked for disinfection and none was recorded before the release.
    asks = step(
        flow.INSPECTION, 2, 1, quantity=1000.0, uom="KGM", conformant=True, disinfection_required=True
    )
    assert violations(ARRIVED, asks, release) == [(flow.STEP_MISSING, 3, flow.DISINFECTION)]
    assert violations(ARRIVED, asks, step(flow.DISINFECTION, 4, 1.5), release) == []
    # Leaving onward after the arrival with no release before.
    gone = step(flow.ONWARD, 5, 3)
    assert violations(ARRIVED, INSPECTED, gone) == [(flow.STEP_MISSING, 5, flow.RELEASE)]
    # Leaving the origin (before the arrival) is no step of the import flow.
    assert violations(step(flow.ONWARD, 0, -100), ARRIVED) == []
    [v] = flow.check([ARRIVED, INSPECTED, gone]).violations
    assert v.reason == "onward with no release recorded before it"


def test_partial_releases_show_what_remains() -> None:
    releases = flow.check(
        [
            ARRIVED,
            INSPECTED,
            step(flow.RELEASE, 3, 2, quantity=600.0, uom="KGM"),
            step(flow.RELEASE, 4, 3, quantity=250.0, uom="KGM"),
        ]
    ).releases
    assert [(r.quantity, r.released_total, r.inspected, r.remaining) for r in releases] == [
        (600.0, 600.0, 1000.0, 400.0),
        (250.0, 850.0, 1000.0, 150.0),
    ]
    assert {r.inspection_seq for r in releases} == {2}


@given(
    inspected=st.integers(min_value=1, max_value=10_000),
    parts=st.lists(st.integers(min_value=1, max_value=5_000), min_size=1, max_size=8),
)
def test_partial_releases_add_up(inspected: int, parts: list[int]) -> None:
    steps = [
        ARRIVED,
        step(flow.INSPECTION, 2, 1, quantity=float(inspected), uom="KGM", conformant=True),
        *(step(flow.RELEASE, 10 + i, 2 + i, quantity=float(q), uom="KGM") for i, q in enumerate(parts)),
    ]
    done = flow.check(steps)
    last = done.releases[-1]
    assert last.released_total == sum(parts)
    assert last.remaining == inspected - sum(parts)
    beyond = [v.seq for v in done.violations if v.violation == flow.RELEASED_BEYOND_INSPECTED]
    running = [sum(parts[: i + 1]) for i in range(len(parts))]
    assert beyond == [10 + i for i, total in enumerate(running) if total > inspected]
    # Order of the input does not matter: the flow is followed in event time.
    assert flow.check(list(reversed(steps))) == done
