"""Tests: geofence crossings are a function of the positions alone, whatever order they arrive in (pure and
through the rules worker and the ledger)."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime

import pytest
from geofence_support import IN_YARD, INSIDE, OUTSIDE, TERMINAL, YARD, YARD_RING, Conn, fenced_world, track
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rules_support import at, drain

import registry.store as registry
from registry.models import Asset, Device, Geofence, Mount
from rules.engine.crossings import Crossing, Position, crossings, diff
from rules.worker import RulesWorker
from traceability.worker import LedgerWorker

PLACES = {"out": OUTSIDE, "terminal": INSIDE, "yard": IN_YARD}
FENCES = [
    Geofence(TERMINAL, "circle", center_lat=INSIDE[0], center_lon=INSIDE[1], radius_m=500.0),
    Geofence(YARD, "polygon", polygon=YARD_RING),
]
tracks = st.dictionaries(st.integers(0, 120), st.sampled_from(sorted(PLACES)), min_size=0, max_size=25)


def _positions(track: dict[int, str], device: str = "d") -> list[Position]:
    return [Position(at(m), device, *PLACES[p]) for m, p in sorted(track.items())]


def _oracle(track: dict[int, str]) -> list[tuple[str, str, datetime]]:
    """Per fence, a crossing wherever the place's membership differs from the previous position's."""
    member = {TERMINAL: "terminal", YARD: "yard"}
    out = []
    ordered = sorted(track.items())
    for loc, name in member.items():
        for (_, before), (m, now) in itertools.pairwise(ordered):
            if (before == name) != (now == name):
                out.append((loc, "enter" if now == name else "exit", at(m)))
    return sorted(out, key=lambda c: (c[2], c[0]))


@given(tracks)
def test_crossings_match_the_oracle_and_alternate(track: dict[int, str]) -> None:
    found = crossings(_positions(track), FENCES)
    assert [(c.location_id, c.direction, c.t) for c in found] == _oracle(track)
    for loc in (TERMINAL, YARD):
        directions = [c.direction for c in found if c.location_id == loc]
        assert all(a != b for a, b in itertools.pairwise(directions)), "enter and exit alternate"


def test_positions_out_of_order_are_refused() -> None:
    with pytest.raises(ValueError, match="order"):
        crossings(list(reversed(_positions({0: "out", 1: "terminal"}))), FENCES)


crossing_sets = st.lists(
    st.builds(
        Crossing,
        st.sampled_from([TERMINAL, YARD]),
        st.sampled_from(["enter", "exit"]),
        st.integers(0, 30).map(at),
        st.just("d"),
        st.just(0.0),
        st.just(0.0),
    ),
    max_size=8,
    unique_by=lambda c: c.key,
)


@given(crossing_sets, crossing_sets)
def test_diff_turns_the_stored_crossings_into_the_judged_ones(
    stored: list[Crossing], judged: list[Crossing]
) -> None:
    change = diff(stored, judged)
    after = {c.key for c in stored}
    after -= {c.key for c in change.withdrawn} | {old.key for old, _ in change.moved}
    after |= {c.key for c in change.added} | {new.key for _, new in change.moved}
    assert after == {c.key for c in judged}
    for old, new in change.moved:
        assert (old.location_id, old.direction) == (new.location_id, new.direction)
    assert not diff(judged, judged), "judging the same again changes nothing"


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[dict[int, str], list[list[int]]]:
    """A track and the batches its positions arrive in (any order, down to one position a batch, some
    positions sent twice). The minutes are few, so that late positions often move a crossing away from a
    time and later ones bring it back there."""
    track = draw(
        st.dictionaries(st.integers(0, 15), st.sampled_from(sorted(PLACES)), min_size=1, max_size=10)
    )
    minutes = draw(st.permutations(sorted(track)))
    cuts = sorted(draw(st.lists(st.integers(1, len(minutes)), max_size=len(minutes), unique=True)))
    batches = [minutes[a:b] for a, b in zip([0, *cuts], [*cuts, len(minutes)], strict=True) if minutes[a:b]]
    again = draw(st.lists(st.sampled_from(batches), max_size=2))
    return track, batches + again


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=arrivals())
# Entered at 5; late, inside at 3 (the event at 5 declared wrong); later, outside at 4 (entered at 5 again).
@example(case=({0: "out", 5: "terminal", 3: "terminal", 4: "out"}, [[0, 5], [3], [4]]))
def test_any_arrival_order_leaves_one_event_per_crossing(
    db_url: str, conn: Conn, case: tuple[dict[int, str], list[list[int]]]
) -> None:
    track_, batches = case
    fenced_world(conn)  # the fences (idempotent); each example tracks an asset of its own
    n = uuid.uuid4().hex[:8]
    asset, device = f"TRUCK-{n}", f"gps-{n}"
    registry.add_assets(
        conn, [Asset(asset, "reefer_truck", asset, epc=f"urn:epc:id:giai:6901234.{int(n, 16)}")]
    )
    registry.add_devices(conn, [Device(device, "gps_tracker")])
    registry.add_mounts(conn, [Mount(device, asset, at(-60))])
    worker = RulesWorker(db_url)
    try:
        for batch in batches:
            track(conn, [(m, PLACES[track_[m]]) for m in batch], device=device)
            drain(worker)
            while LedgerWorker(db_url).run_once():
                pass
    finally:
        worker.close()
    expected = _oracle(track_)
    stored = conn.execute(
        "SELECT location_id, direction, crossed_at FROM geofence_crossing WHERE asset_id = %s"
        " ORDER BY crossed_at, location_id",
        (asset,),
    ).fetchall()
    assert stored == expected
    live = conn.execute(
        "SELECT e.event->'readPoint'->>'id', e.event->>'cc:geofence', e.event_time FROM ledger_event e"
        " WHERE e.event->>'cc:asset' = %s AND NOT e.declares_error"
        " AND NOT EXISTS (SELECT 1 FROM ledger_event d WHERE d.event_id = e.event_id AND d.declares_error)"
        " ORDER BY e.event_time, 1",
        (asset,),
    ).fetchall()
    assert live == expected, "the ledger holds each crossing once, and nothing else undeclared"
