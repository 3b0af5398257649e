"""Stage 2 (verdicts): a lot's verdict under its own class, through every asset that held it (pure).

Each custody leg is judged with the full rule set on the temperature series of the devices mounted
on its asset during the leg (the asset's door, power and humidity channels go with its first probe
series; a compartment's series is the probe it names on its vehicle's devices), at the recording
interval of the asset's transport mode, with each device's accuracy and calibration date;
a leg with no asset, or with no temperature reading, is a handoff not covered by evidence: broken.
The lot's verdict is the roll-up of its legs' (`rules.verdicts.roll_up`); with no leg yet it is
indeterminate. Every leg is an item of the verdict, so the history holds all it rests on. A changed
result that readings arriving late for the span the ledger's version judged brought about corrects that
version in the ledger (`LotVerdictPayload.corrects`); one on new evidence is a new verdict.

With the verdict comes the lot's remaining shelf life under its class's model, from the same series
(``rules.engine.shelf``), stored beside the verdict on every judgement (it changes with every reading;
the verdict history versions only when the verdict or its evidence changed).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from rules import engine
from rules.engine import catalog
from rules.engine.shelf import HeldWindow, LotShelfLife, lot_shelf_life
from rules.models import LotVerdictPayload, from_epoch_us, iso_utc, to_epoch_ms
from rules.packs import ClassRef, Mode
from rules.verdicts import Verdict, roll_up
from rules.worker.history import LastVersion, history_entry
from rules.worker.plan import EmitLot, Plan, StoreShelfLife
from rules.worker.policy import FloatArray, IntArray

Channel = tuple[IntArray, FloatArray]


@dataclass(frozen=True, slots=True)
class SeriesReadings:
    """A temperature series of a device mounted on the leg's asset, over its part of the leg."""

    series_id: int
    accuracy_c: float | None
    t_from: datetime
    t_ms: IntArray
    v: FloatArray
    t_to: datetime | None = None  # end of its part of the leg (exclusive); None: the leg's end
    calibration_due: date | None = None  # the device's; readings after it are past calibration


@dataclass(frozen=True, slots=True)
class Leg:
    """One custody leg of the lot and the evidence read for it."""

    asset_id: str | None
    mode: Mode | None  # the asset's transport mode (registry's asset_transport_mode)
    t_from: datetime
    t_to: datetime | None
    series: list[SeriesReadings] = field(default_factory=list)
    door: Channel | None = None
    power: Channel | None = None
    humidity: Channel | None = None  # the asset's rh channel (%RH)


@dataclass(frozen=True, slots=True)
class LotJudgement:
    verdict: Verdict
    reasons: list[str]
    items: list[dict[str, Any]]
    span: tuple[datetime, datetime] | None  # device time of the evidence judged
    shelf: LotShelfLife | None = None  # None: the class has no shelf-life model


def _mode(leg: Leg) -> Mode:
    """The rule mode of a leg's asset (the mode the engine judges the leg's series in): its transport
    mode (the registry's asset_transport_mode), or transport when the leg has no asset."""
    return "transport" if leg.mode is None else leg.mode


def shelf_of(ref: ClassRef, legs: list[Leg]) -> LotShelfLife | None:
    """The lot's remaining shelf life through its legs under the class's model (None: no model)."""
    model = ref.rules.shelf_life
    if model is None:
        return None
    windows: list[HeldWindow] = []
    for leg in legs:
        cap_ms = ref.rules.max_interval_s(_mode(leg)) * 1000
        for s in leg.series:
            if s.t_ms.shape[0] == 0:
                continue
            ends = [t for t in (s.t_to, leg.t_to) if t is not None]
            # Without a known end the last record bounds the window (it holds nothing itself).
            hi = to_epoch_ms(min(ends)) if ends else int(s.t_ms[-1])
            windows.append(HeldWindow(s.t_ms, s.v, to_epoch_ms(s.t_from), hi, cap_ms))
    spans = [(to_epoch_ms(g.t_from), None if g.t_to is None else to_epoch_ms(g.t_to)) for g in legs]
    return lot_shelf_life(model, windows, spans)


def judge_lot(ref: ClassRef, legs: list[Leg]) -> LotJudgement:
    """The lot's verdict through its legs, and its shelf life."""
    shelf = shelf_of(ref, legs)
    if not legs:
        return LotJudgement("indeterminate", [catalog.NO_LEG], [], None, shelf)
    levels: list[Verdict] = []
    reasons: list[str] = []
    items: list[dict[str, Any]] = []
    first: datetime | None = None
    last_t: datetime | None = None
    for leg in legs:
        name = catalog.leg_name(leg.asset_id, leg.t_from)
        if leg.asset_id is None:
            levels.append("broken")
            reasons.append(catalog.leg_without_asset(name))
            items.append(
                {"asset_id": None, "verdict": "broken", "from": iso_utc(leg.t_from), "covered": False}
            )
            continue
        covered = False
        for s in leg.series:
            if s.t_ms.shape[0] == 0:
                continue
            first_series = not covered
            covered = True
            first = s.t_from if first is None else min(first, s.t_from)
            t_end = from_epoch_us(int(s.t_ms[-1]) * 1000)
            last_t = t_end if last_t is None else max(last_t, t_end)
            ev = engine.evaluate_series(
                s.t_ms,
                s.v,
                ref,
                _mode(leg),
                accuracy_c=s.accuracy_c,
                door=leg.door if first_series else None,
                power=leg.power if first_series else None,
                humidity=leg.humidity if first_series else None,
                calibration_due=s.calibration_due,
            )
            levels.append(ev.verdict)
            reasons.extend(catalog.series_reason(leg.asset_id, s.series_id, why) for why in ev.reasons)
            items.append(
                {
                    "asset_id": leg.asset_id,
                    "series_id": s.series_id,
                    "verdict": ev.verdict,
                    "excursions": len(ev.excursions),
                    "gaps": len(ev.gaps),
                    "from": iso_utc(s.t_from),
                }
            )
        if not covered:
            levels.append("broken")
            reasons.append(catalog.leg_not_covered(name))
            items.append(
                {"asset_id": leg.asset_id, "verdict": "broken", "from": iso_utc(leg.t_from), "covered": False}
            )
    span = None if first is None or last_t is None else (first, max(first, last_t))
    return LotJudgement(roll_up(levels), reasons, items, span, shelf)


@dataclass(frozen=True, slots=True)
class EmittedLot:
    """The lot's latest version the ledger heard of: its version, result and judged span's end."""

    version: int
    verdict: str
    span_end: datetime | None


def late_for(emitted: EmittedLot | None, arrived: dict[str, Any]) -> tuple[datetime, datetime] | None:
    """The window of readings that arrived at or before the end of what the ledger's version judged (so
    that version rested on incomplete evidence), else None. Custody changes carry no window."""
    if emitted is None or emitted.span_end is None or "t_min" not in arrived:
        return None
    t_min = datetime.fromisoformat(str(arrived["t_min"]))
    if t_min > emitted.span_end:
        return None
    return t_min, datetime.fromisoformat(str(arrived["t_max"]))


def plan_lot(
    lot_id: str,
    ref: ClassRef,
    judged: LotJudgement,
    arrived: dict[str, Any],
    last: LastVersion | None,
    now: datetime | None = None,
    emitted: EmittedLot | None = None,
) -> Plan:
    """A new history version when the verdict or its evidence changed; the ledger hears of it when its
    result changed, as a correction of the version it holds when late readings changed it."""
    plan = Plan()
    entry = history_entry("lot", lot_id, judged.verdict, ref, judged.items, judged.reasons, arrived, last)
    version = entry.version if entry is not None else None if last is None else last.version
    plan.add(StoreShelfLife(lot_id, ref.code, ref.pack_id, ref.pack_version, version, judged.shelf))
    if entry is None:
        return plan
    span = judged.span
    plan.add(dataclasses.replace(entry, span_end=None if span is None else span[1]))
    if last is not None and last.verdict == judged.verdict:
        return plan
    late = late_for(emitted, arrived)
    corrects = reason = None
    if late is not None and emitted is not None:
        corrects = f"lot_verdict:{lot_id}:v{emitted.version}"
        reason = catalog.lot_corrected(late, emitted.verdict, judged.verdict)
    plan.add(
        EmitLot(
            LotVerdictPayload(
                verdict="lot_verdict",
                verdict_id=f"lot_verdict:{lot_id}:v{entry.version}",
                lot_id=lot_id,
                product_class=ref.code,
                result=judged.verdict,
                reasons=judged.reasons,
                pack_id=ref.pack_id,
                pack_version=ref.pack_version,
                computed_at=iso_utc(now or datetime.now(UTC)),
                version=entry.version,
                start=None if span is None else iso_utc(span[0]),
                end=None if span is None else iso_utc(span[1]),
                corrects=corrects,
                correction_reason=reason,
            )
        )
    )
    return plan
