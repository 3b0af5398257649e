"""Stage 2 (verdicts): door-open and power-loss runs beyond the class limit, as chain breaks and alarms.

Pure. A door channel open (1) or a power channel off (0) for longer than the class allows is a chain
break of kind 'door' / 'power'; while the run is still going on at the latest reading of a mounted
device it keeps its alarm up, once over it goes to the ledger (once), and back to normal the alarm
resolves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rules import engine, kernels
from rules.engine import catalog
from rules.models import from_epoch_us
from rules.packs import ClassRef
from rules.worker.plan import DeleteRuns, Emit, Plan, ResolveAlarm, Segment, UpsertBreak, Withdraw
from rules.worker.policy import NO_FIGURES, FloatArray, IntArray, alarm, payload


def state_of(channel: str) -> float:
    """The value that counts against the rule: door open (1), power off (0)."""
    return 1.0 if channel == "door" else 0.0


@dataclass(frozen=True, slots=True)
class StateInputs:
    seg: Segment
    ref: ClassRef
    t_lo: datetime  # out to the last reading out of the state before the touched window ...
    t_hi: datetime  # ... and the first one after it
    right_unbounded: bool  # no reading out of the state after the window
    t_us: IntArray
    v: FloatArray
    escalate_after_s: int | None = None


def plan_state(inp: StateInputs) -> Plan:
    seg, ref = inp.seg, inp.ref
    kind = "door" if seg.channel == "door" else "power"
    rule = catalog.state_rule(kind)
    limit = ref.rules.door_open if kind == "door" else ref.rules.power_loss
    assert limit is not None
    state = state_of(kind)
    plan = Plan()
    t_ms, x = engine.check_series(inp.t_us // 1000, inp.v)
    starts, ends = kernels.state_runs(t_ms, x, state, limit.seconds * 1000 + 1)
    plan.add(DeleteRuns(kind, seg.series_id, seg.asset_id, inp.t_lo, inp.t_hi))
    rule_id = rule.id(ref)
    assert rule.break_kind is not None
    open_run = False
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        start, end = from_epoch_us(int(inp.t_us[a])), from_epoch_us(int(inp.t_us[b]))
        dur = (end - start).total_seconds()
        still = bool(x[b] == state) and inp.right_unbounded and seg.mounted_now
        reason = catalog.state(kind, dur, limit.seconds)
        detail = {"open": still, "source": limit.source, "device_id": seg.device_id}
        plan.add(
            UpsertBreak(
                rule.break_kind,
                seg.series_id,
                seg.asset_id,
                rule_id,
                ref.pack_version,
                start,
                end,
                float(limit.seconds),
                detail,
            )
        )
        raise_ = alarm(seg, ref, rule, (start, end), None, reason, inp.escalate_after_s)
        if still:
            open_run = True
            plan.add(raise_)
            continue
        p = payload(
            seg,
            ref,
            "chain_break",
            kind,
            rule_id,
            (start, end),
            reason,
            None,
            NO_FIGURES,
            float(limit.seconds),
        )
        resolve = ResolveAlarm(seg.asset_id, rule_id, end, catalog.back_to_normal(kind), counted=False)
        plan.add(Emit(p, seg.series_id, rule_id, start, end, then=(raise_, resolve)))
    # After the window's Emits: a run the ledger holds there that late data ended is withdrawn.
    plan.add(
        Withdraw(
            "chain_break",
            seg.series_id,
            seg.asset_id,
            ((rule_id, kind),),
            inp.t_lo,
            inp.t_hi,
            seg.device_id,
            seg.channel,
            ref.code,
            ref.pack_id,
            ref.pack_version,
        )
    )
    n = inp.t_us.shape[0]
    if not open_run and inp.right_unbounded and seg.mounted_now and n and bool(x[-1] != state):
        last = from_epoch_us(int(inp.t_us[-1]))
        plan.add(ResolveAlarm(seg.asset_id, rule_id, last, catalog.back_to_normal(kind)))
    return plan
