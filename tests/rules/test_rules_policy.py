"""Tests: the rules worker's policy as pure functions (no database): plans, verdicts, history, lots.

Inputs are built in Python as the adapter would read them; the plan's ops are what the adapter would
write. The database tests (test_rules_worker, _breaks, _profile, _history, _crash) prove the adapter.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from itertools import permutations

import numpy as np
import pytest

from rules import engine
from rules.engine import catalog
from rules.models import to_epoch_ms
from rules.packs import ClassRef, PackSet, load_packs
from rules.verdicts import VERDICTS, Verdict, roll_up
from rules.worker import history, lots, outbox
from rules.worker.live import ProfileInputs, StoredMkt, plan_mkt, plan_profile
from rules.worker.plan import (
    DeleteBreak,
    DeleteRuns,
    Emit,
    EmitLot,
    History,
    RaiseAlarm,
    ResolveAlarm,
    Segment,
    StoreShelfLife,
    UpdateBreak,
    UpsertBreak,
    UpsertExcursion,
)
from rules.worker.policy import SliceInputs, plan_slice
from rules.worker.reads import FAR_FUTURE
from rules.worker.states import StateInputs, plan_state

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


@pytest.fixture(scope="module")
def packs() -> PackSet:
    return load_packs()


def _seg(series_id: int = 1, channel: str = "temp", mounted_now: bool = True) -> Segment:
    return Segment(
        series_id=series_id,
        device_id="d1",
        channel=channel,
        asset_id="TRUCK-1",
        mode="transport",
        seg_lo=at(-1440),
        seg_hi=FAR_FUTURE,
        mounted_now=mounted_now,
        committed_at=at(0),
    )


def _us(minutes: list[float]) -> np.ndarray:
    return np.array([to_epoch_ms(at(m)) * 1000 for m in minutes], dtype=np.int64)


def _slice(ref: ClassRef, points: list[tuple[float, float]], *, unbounded: bool = False) -> SliceInputs:
    t_us = _us([m for m, _ in points])
    v = np.array([x for _, x in points], dtype=np.float64)
    return SliceInputs(
        seg=_seg(),
        ref=ref,
        t_lo=at(points[0][0]),
        t_hi=at(points[-1][0]),
        right_unbounded=unbounded,
        hi=at(points[-1][0]),
        t_us=t_us,
        v=v,
        gap_series_id=1,
        gap_channel="temp",
        g_us=t_us,
        g_v=v,
        accuracy_c=None,
    )


# -- the roll-up -----------------------------------------------------------------------------------------


def test_roll_up_is_the_most_severe_in_any_order() -> None:
    assert roll_up([]) == "pass"
    assert roll_up([], empty="indeterminate") == "indeterminate"
    for items in permutations(VERDICTS):
        assert roll_up(items) == "broken"
    assert roll_up(["pass", "indeterminate", "pass"]) == "indeterminate"
    assert roll_up(["indeterminate", "excursion"]) == "excursion"


# -- one slice of a series -------------------------------------------------------------------------------


def test_closed_excursion_and_gap_plan(packs: PackSet) -> None:
    ref = packs["pharma_2_8"]
    # 9.5 °C from minute 10 to 14, back in range; then nothing from 20 to 31 (300 s allowed in transport).
    pts = [(m, 9.5 if 10 <= m <= 14 else 5.0) for m in range(0, 21)] + [(m, 5.0) for m in range(31, 35)]
    plan = plan_slice(_slice(ref, pts))
    deletes = plan.of(DeleteRuns)
    assert [d.table for d in deletes] == ["excursion", "gap", "profile"]
    [exc] = plan.of(UpsertExcursion)
    assert (exc.start, exc.end, exc.open, exc.peak_c) == (at(10), at(14), False, 9.5)
    [gap] = plan.of(UpsertBreak)
    assert (gap.kind, gap.start, gap.end, gap.allowed_s) == ("gap", at(20), at(31), 300.0)
    emits = plan.of(Emit)
    assert [(e.payload.verdict, e.payload.kind) for e in emits] == [
        ("excursion_closed", "excursion"),
        ("chain_break", "gap"),
    ]
    # A new verdict raises its alarm; the alarm's kind is the catalog's, never parsed from the id.
    raised = [e.then[0] for e in emits]
    assert all(isinstance(r, RaiseAlarm) for r in raised)
    assert [r.condition.kind for r in raised if isinstance(r, RaiseAlarm)] == ["excursion", "gap"]
    assert "above 8.0 °C" in emits[0].payload.reason
    assert emits[1].payload.reason == catalog.gap(660, 300, "transport")
    # Not live (a clearing reading follows): the range alarm resolves only after a new emission.
    [resolve] = plan.of(ResolveAlarm)
    assert resolve.after_new_emit == catalog.RANGE.id(ref)
    assert resolve.unless_open_excursion


def test_open_excursion_keeps_the_alarm_and_is_not_emitted(packs: PackSet) -> None:
    ref = packs["pharma_2_8"]
    pts = [(m, 5.0) for m in range(0, 10)] + [(m, 9.0) for m in range(10, 16)]
    plan = plan_slice(_slice(ref, pts, unbounded=True))
    [exc] = plan.of(UpsertExcursion)
    assert exc.open
    assert plan.of(Emit) == []
    [raised] = plan.of(RaiseAlarm)
    assert raised.condition.kind == "excursion"
    assert "so far" in raised.condition.reason
    assert plan.of(ResolveAlarm) == []


def test_single_event_break_but_not_within_accuracy_or_defrost(packs: PackSet) -> None:
    ref = packs["pharma_2_8"]  # single-event allowance 1800 s, accuracy 0.5 °C
    long = (
        [(m, 5.0) for m in range(0, 5)] + [(m, 9.0) for m in range(5, 40)] + [(m, 5.0) for m in range(40, 45)]
    )
    plan = plan_slice(_slice(ref, long))
    breaks = [b for b in plan.of(UpsertBreak) if b.rule_id == catalog.SINGLE_EVENT.id(ref)]
    assert [(b.kind, b.start, b.end) for b in breaks] == [("excursion", at(5), at(39))]
    near = (
        [(m, 5.0) for m in range(0, 5)] + [(m, 8.3) for m in range(5, 40)] + [(m, 5.0) for m in range(40, 45)]
    )
    assert not [b for b in plan_slice(_slice(ref, near)).of(UpsertBreak) if b.kind == "excursion"]
    chilled = packs["chilled"]  # defrost: a short warm rise is suspended, never a break
    assert chilled.rules.defrost is not None
    assert engine.breaks.suspended_by_defrost(chilled.rules, 4.0 + chilled.rules.defrost.max_rise_c, 60_000)


# -- the live profile and the MKT row --------------------------------------------------------------------


def _profile(ref: ClassRef, values: list[float], stored: StoredMkt | None = None) -> ProfileInputs:
    t_ms = np.array([to_epoch_ms(at(m)) for m in range(len(values))], dtype=np.int64)
    return ProfileInputs(
        seg=_seg(),
        ref=ref,
        lo=at(0),
        hi=at(len(values) - 1),
        latest=at(len(values) - 1),
        t_ms=t_ms,
        v=np.array(values, dtype=np.float64),
        accuracy_c=None,
        mkt_prefix=None,
        stored_mkt=stored,
    )


def test_profile_alarm_kinds_come_from_the_catalog(packs: PackSet) -> None:
    ref = packs["pqs_2_8"]  # triggers: freeze, heat_single, heat_cumulative, heat_instant
    plan, standing = plan_profile(_profile(ref, [5.0] * 10 + [-2.0] * 120))
    kinds = {r.condition.rule_id: r.condition.kind for r in plan.of(RaiseAlarm)}
    assert kinds, "the freeze trigger fires"
    for rule_id, kind in kinds.items():
        assert kind == ("trigger" if "/trigger." in rule_id else kind)
    assert {b.kind for b in standing} <= {r.kind for r in catalog.profile_rules(ref.rules)}
    # A profile rule not standing now resolves on a mounted series.
    resolved = {r.rule_id for r in plan.of(ResolveAlarm)}
    assert resolved == {r.id(ref) for r in catalog.profile_rules(ref.rules)} - {b.rule_id for b in standing}


def test_mkt_row_life(packs: PackSet) -> None:
    ref = packs["usp_cct"]  # MKT limit 8 °C
    mkt_id = catalog.MKT.id(ref)
    hot = engine.Breach(
        rule_id=mkt_id,
        kind="mkt",
        level="broken",
        severity="critical",
        reason="",
        start_ms=0,
        end_ms=0,
        value=9.0,
    )
    new = plan_mkt(_seg(), ref, at(10), hot, None)
    [row] = new.of(UpsertBreak)
    assert (row.kind, row.start, row.end, row.detail["open"]) == ("excursion", at(10), at(10), True)
    [emit] = new.of(Emit)
    assert emit.payload.reason == catalog.mkt(9.0, ref.rules.mkt.window_s if ref.rules.mkt else 0, 8.0)
    stored = StoredMkt(7, at(10), at(10), {**row.detail})
    extended = plan_mkt(_seg(), ref, at(11), hot, stored)
    [upd] = extended.of(UpdateBreak)
    assert (upd.end, upd.detail["previous_end"]) == (at(11), at(10).isoformat())
    # No longer above the limit at a later reading: closed where it was last judged above.
    [closed] = plan_mkt(_seg(), ref, at(12), None, stored).of(UpdateBreak)
    assert (closed.end, closed.detail["open"]) == (at(10), False)
    # Late data takes the only reading judged above off the row: the row goes.
    assert plan_mkt(_seg(), ref, at(10), None, stored).of(DeleteBreak) == [DeleteBreak(7)]


# -- door and power --------------------------------------------------------------------------------------


def test_door_open_beyond_the_limit(packs: PackSet) -> None:
    ref = packs["pharma_2_8"]  # door open 300 s
    minutes = list(range(0, 12))
    values = [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]  # open at 1, closed at 8: 420 s
    inp = StateInputs(
        _seg(9, "door"), ref, at(0), at(11), True, _us(minutes), np.array(values, dtype=np.float64)
    )
    plan = plan_state(inp)
    [row] = plan.of(UpsertBreak)
    assert (row.kind, row.rule_id, row.start, row.end) == ("door", catalog.DOOR_OPEN.id(ref), at(1), at(8))
    [emit] = plan.of(Emit)
    raise_, resolve = emit.then
    assert isinstance(raise_, RaiseAlarm)
    assert (raise_.condition.kind, raise_.condition.severity) == ("door", "critical")
    assert isinstance(resolve, ResolveAlarm)
    assert emit.payload.reason == catalog.state("door", 420, 300)


# -- verdicts, history, lots -----------------------------------------------------------------------------


def test_series_verdict_rolls_up_rows_and_standing_rules(packs: PackSet) -> None:
    ref = packs["pharma_2_8"]
    exc = history.Evidence("excursion", catalog.RANGE.id(ref), at(0), at(10), False, 9.0)
    gap = history.Evidence("gap", catalog.GAP.id(ref), at(20), at(40), False, None)
    near = engine.Breach(
        rule_id=catalog.ACCURACY.id(ref),
        kind="accuracy",
        level="indeterminate",
        severity="info",
        reason="near",
        start_ms=0,
        end_ms=0,
    )
    assert history.series_verdict(ref, [], [])[0] == "pass"
    assert history.series_verdict(ref, [], [near])[0] == "indeterminate"
    assert history.series_verdict(ref, [exc], [near])[0] == "excursion"
    verdict, items, reasons = history.series_verdict(ref, [exc, gap], [near])
    assert verdict == "broken"
    assert [i["kind"] for i in items] == ["excursion", "gap", "rule"]
    assert reasons[1] == catalog.evidence("gap", catalog.GAP.id(ref), at(20), at(40))


def test_history_versions_only_on_change(packs: PackSet) -> None:
    ref = packs["pharma_2_8"]
    items = [{"kind": "gap", "rule_id": "x"}]
    first = history.history_entry("series", "1@T", "broken", ref, items, ["r"], {}, None)
    assert first is not None
    assert (first.version, first.change["from"], first.change["added"]) == (1, None, items)
    last = history.LastVersion(1, "broken", items)
    assert history.history_entry("series", "1@T", "broken", ref, items, ["r"], {}, last) is None
    second = history.history_entry("series", "1@T", "pass", ref, [], [], {}, last)
    assert second is not None
    assert (second.version, second.change["removed"]) == (2, items)


def _leg(asset: str | None, values: list[float] | None, mode: str = "transport") -> lots.Leg:
    if asset is None or values is None:
        return lots.Leg(asset, mode, at(0), at(60))
    t_ms = np.array([to_epoch_ms(at(m)) for m in range(len(values))], dtype=np.int64)
    series = lots.SeriesReadings(1, None, at(0), t_ms, np.array(values, dtype=np.float64))
    return lots.Leg(asset, mode, at(0), at(60), [series])


def test_lot_verdict_judges_every_leg(packs: PackSet) -> None:
    ref = packs["pharma_2_8"]
    none = lots.judge_lot(ref, [])
    assert (none.verdict, none.reasons) == ("indeterminate", [catalog.NO_LEG])
    ok = lots.judge_lot(ref, [_leg("TRUCK-1", [5.0] * 30)])
    assert (ok.verdict, ok.span) == ("pass", (at(0), at(29)))
    # A handoff with no readings, or a leg with no asset: broken, and an item of its own.
    uncovered = lots.judge_lot(ref, [_leg("TRUCK-1", [5.0] * 30), _leg("TRUCK-2", None)])
    assert uncovered.verdict == "broken"
    assert uncovered.items[-1] == {
        "asset_id": "TRUCK-2",
        "verdict": "broken",
        "from": "2026-01-01T00:00:00.000Z",
        "covered": False,
    }
    assert catalog.leg_not_covered("TRUCK-2 from 2026-01-01T00:00:00.000Z") in uncovered.reasons
    assert lots.judge_lot(ref, [_leg(None, None)]).verdict == "broken"


def test_lot_plan_tells_the_ledger_only_when_the_result_changes(packs: PackSet) -> None:
    ref = packs["pharma_2_8"]
    judged = lots.judge_lot(ref, [_leg("TRUCK-1", [5.0] * 30)])
    first = lots.plan_lot("LOT", ref, judged, {}, None, now=at(100))
    [entry] = first.of(History)
    [emit] = first.of(EmitLot)
    assert (emit.payload.result, emit.payload.version, emit.payload.verdict_id) == (
        "pass",
        1,
        "lot_verdict:LOT:v1",
    )
    same_result = lots.plan_lot("LOT", ref, judged, {}, history.LastVersion(1, "pass", []), now=at(100))
    # New evidence, same verdict: history only (and the shelf life, stored on every judgement).
    assert [type(op) for op in same_result.ops] == [StoreShelfLife, History]
    unchanged = lots.plan_lot("LOT", ref, judged, {}, history.LastVersion(1, "pass", entry.items))
    assert [type(op) for op in unchanged.ops] == [StoreShelfLife]
    assert unchanged.ops[0] == StoreShelfLife("LOT", "pharma_2_8", ref.pack_id, ref.pack_version, 1, None)


# -- the outbox ------------------------------------------------------------------------------------------


def test_touched_windows_fold_batches_per_series() -> None:
    batches = [
        outbox.Batch(1, [10, 11], at(0), at(5), at(100)),
        outbox.Batch(2, [11], at(3), at(9), at(90)),
    ]
    got = outbox.touched(batches)
    assert got[10] == outbox.Touched(at(0), at(5), [1], at(100))
    assert got[11] == outbox.Touched(at(0), at(9), [1, 2], at(90))
    assert got[11].arrived() == {
        "batch_ids": [1, 2],
        "t_min": "2026-01-01T00:00:00.000Z",
        "t_max": "2026-01-01T00:09:00.000Z",
    }


def test_no_rule_kind_is_parsed_from_a_rule_id(packs: PackSet) -> None:
    """Every breach carries its catalog kind (the kind an alarm is filed under)."""
    ref = packs["usp_cct"]
    t_ms = np.array([to_epoch_ms(at(m)) for m in range(200)], dtype=np.int64)
    v = np.array([20.0] * 200, dtype=np.float64)  # above the band (15 °C) and MKT (8 °C)
    ev = engine.evaluate_series(t_ms, v, ref, "storage")
    assert {b.kind for b in ev.breaches} >= {"band", "mkt"}
    rules = {r.id(ref): r for r in catalog.profile_rules(ref.rules)}
    for b in ev.breaches:
        assert (b.kind, b.level, b.severity) == (
            rules[b.rule_id].kind,
            rules[b.rule_id].level,
            rules[b.rule_id].severity,
        )
    verdict: Verdict = ev.verdict
    assert verdict == roll_up(b.level for b in ev.breaches) == "broken"
    assert not math.isnan(ev.mkt_c or math.nan)
