"""Tests (property): any arrival order of the same readings ends with the same live verdicts, and a ledger
whose corrections explain every change (real rules worker, real ledger worker, real PostgreSQL)."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rules_support import Conn, add_asset, add_device, add_readings, add_series, drain

from rules.worker import RulesWorker
from traceability.ledger.verify import verify
from traceability.worker import LedgerWorker

value = st.sampled_from([2.0, 2.0, 2.0, 3.8, 5.0, 9.0, -1.0, None])
Points = list[tuple[float, float | None]]


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[Points, list[list[int]]]:
    """Readings over 90 minutes (in range, near and beyond the limits, dropouts, silences) and an
    arrival order: a permutation cut into batches."""
    n = draw(st.integers(5, 45))
    minutes = sorted(draw(st.sets(st.integers(0, 90), min_size=n, max_size=n)))
    points = [(float(m), draw(value)) for m in minutes]
    order = draw(st.permutations(list(range(len(points)))))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(points) - 1)), max_size=6)))
    batches = [list(order[a:b]) for a, b in itertools.pairwise([0, *cuts, len(points)]) if b > a]
    return points, batches


def stored(conn: Conn, series_id: int, asset: str) -> tuple[Any, ...]:
    """The live verdicts: excursion and chain_break rows, and the series' latest verdict."""
    exc = conn.execute(
        "SELECT start_time, end_time, open, peak_c, readings FROM excursion WHERE series_id = %s ORDER BY 1",
        (series_id,),
    ).fetchall()
    breaks = conn.execute(
        "SELECT kind, rule_id, start_time, end_time FROM chain_break WHERE series_id = %s ORDER BY 3, 2",
        (series_id,),
    ).fetchall()
    last = conn.execute(
        "SELECT verdict, items FROM verdict_history WHERE subject_id = %s ORDER BY version DESC LIMIT 1",
        (f"{series_id}@{asset}",),
    ).fetchone()
    return exc, breaks, last


def asset_events(conn: Conn, asset: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT event FROM ledger_event WHERE event ->> 'cc:assetId' = %s ORDER BY seq", (asset,)
    ).fetchall()
    return [r[0] for r in rows]


def statement(e: dict[str, Any]) -> tuple[Any, ...]:
    """What a verdict event states, without the asset and series it is about."""
    element = e["sensorElementList"][0]
    meta, report = element["sensorMetadata"], element["sensorReport"][0]
    return (
        e["cc:verdict"],
        e["cc:ruleId"].rsplit("/", 1)[1],
        e.get("cc:breakKind"),
        meta["startTime"],
        meta["endTime"],
        report.get("minValue"),
        report.get("maxValue"),
        report.get("meanValue"),
        e.get("cc:peakC"),
    )


def live_statements(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The verdicts the ledger holds now: verdict events no errorDeclaration names."""
    declared = {e["eventID"] for e in events if "errorDeclaration" in e}
    return sorted(
        statement(e)
        for e in events
        if "errorDeclaration" not in e
        and e["cc:verdict"] in ("excursion_closed", "chain_break")
        and e["eventID"] not in declared
    )


def assert_corrections_explain_every_change(events: list[dict[str, Any]]) -> None:
    """Each declared event names corrective events the ledger holds after it; a verdict id has at most one
    live event; every withdrawal names a verdict the ledger had declared wrong."""
    seq = {e["eventID"]: i for i, e in enumerate(events) if "errorDeclaration" not in e}
    declarations = [(i, e) for i, e in enumerate(events) if "errorDeclaration" in e]
    declared = {e["eventID"] for _, e in declarations}
    for i, d in declarations:
        assert d["errorDeclaration"]["reason"] == "incorrect_data"
        fixes = d["errorDeclaration"]["correctiveEventIDs"]
        assert fixes, d
        assert seq[d["eventID"]] < i
        for fix in fixes:
            assert fix in seq
            assert seq[fix] < i  # appended before the declaration naming it
            corrective = events[seq[fix]]
            assert corrective["cc:correctionReason"].startswith("readings that arrived late")
            if corrective["cc:verdict"] == "verdict_withdrawn":
                assert corrective["cc:withdrawnVerdictId"] == d["cc:verdictId"]
    live_ids = [
        e["cc:verdictId"]
        for e in events
        if "errorDeclaration" not in e and "cc:verdictId" in e and e["eventID"] not in declared
    ]
    assert len(live_ids) == len(set(live_ids))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrivals())
def test_any_arrival_order_ends_with_the_same_live_verdicts_in_the_ledger(
    conn: Conn, db_url: str, h: tuple[Points, list[list[int]]]
) -> None:
    points, batches = h
    tag = uuid.uuid4().hex[:8]
    rules, ledger = RulesWorker(db_url), LedgerWorker(db_url)

    def settle() -> None:
        drain(rules)
        while ledger.run_once():
            pass

    try:
        subjects = []
        for which in ("once", "batched"):
            asset = f"T-{which}-{tag}"
            add_asset(conn, asset, "reefer_truck", "chilled", "transport")
            add_device(conn, f"d-{which}-{tag}", asset, "reefer_controller")
            subjects.append((add_series(conn, f"d-{which}-{tag}", "temp"), asset))
        (once, a_once), (batched, a_batched) = subjects
        add_readings(conn, once, points)
        settle()
        for batch in batches:
            add_readings(conn, batched, [points[i] for i in batch])
            settle()

        assert stored(conn, batched, a_batched) == stored(conn, once, a_once)
        first, late = asset_events(conn, a_once), asset_events(conn, a_batched)
        assert not [e for e in first if "errorDeclaration" in e]  # all at once: nothing to correct
        assert live_statements(late) == live_statements(first)
        # The ledger holds exactly the closed verdicts stored: every closed excursion and chain break.
        exc, breaks, _last = stored(conn, once, a_once)
        assert len(live_statements(first)) == len([x for x in exc if not x[2]]) + len(breaks)
        assert_corrections_explain_every_change(late)
        assert verify(conn).ok
    finally:
        rules.close()
