"""Stage 2 (verdicts): the rule catalog: each rule once, with its id, kind, verdict, severity and reason.

A rule id is ``<pack>/<class>/<name>`` (`ClassRef.rule_id`). The catalog is the one place that says
what a rule's name is, which kind its alarm and its chain_break row carry, which verdict it implies,
and the words that explain it: the offline check, lot verdicts, the live worker, its alarms and its
ledger payloads all read these, so nothing parses a kind back out of a rule id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from rules.models import iso_utc
from rules.packs import ClassRef, ClassRules
from rules.verdicts import Verdict


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a class profile."""

    name: str  # the last part of the rule id
    kind: str  # the alarm's kind (and the chain_break kind for door / power / gap)
    level: Verdict  # the verdict it implies when it fires
    severity: str | None  # the alarm's severity; None: by the condition's duration (range excursions)
    break_kind: str | None = None  # chain_break.kind when it is stored as a chain break

    def id(self, ref: ClassRef) -> str:
        """The rule's id under a class: ``<pack>/<class>/<name>``."""
        return ref.rule_id(self.name)


RANGE: Final = Rule("range", "excursion", "excursion", None)
GAP: Final = Rule("gap", "gap", "broken", "warning", break_kind="gap")
SINGLE_EVENT: Final = Rule("single_event", "single_event", "broken", "critical", break_kind="excursion")
CUMULATIVE: Final = Rule("cumulative", "cumulative", "broken", "critical", break_kind="excursion")
BAND: Final = Rule("band", "band", "broken", "critical", break_kind="excursion")
MKT: Final = Rule("mkt", "mkt", "broken", "critical", break_kind="excursion")
DOOR_OPEN: Final = Rule("door_open", "door", "broken", "critical", break_kind="door")
POWER_LOSS: Final = Rule("power_loss", "power", "broken", "critical", break_kind="power")
ACCURACY: Final = Rule("accuracy", "accuracy", "indeterminate", "info")
FAULTS: Final = Rule("faults", "faults", "indeterminate", "info")


def trigger(name: str, severity: str) -> Rule:
    """A pack's named trigger: an excursion-level rule with the trigger's own severity."""
    return Rule(f"trigger.{name}", "trigger", "excursion", severity)


def state_rule(channel: str) -> Rule:
    """The door-open or power-loss rule of a state channel ('door' or 'power')."""
    return DOOR_OPEN if channel == "door" else POWER_LOSS


def profile_rules(rules: ClassRules) -> tuple[Rule, ...]:
    """The profile rules judged live at the latest reading (an alarm each while it stands)."""
    return (CUMULATIVE, BAND, MKT, ACCURACY, FAULTS, *(trigger(t.name, t.severity) for t in rules.triggers))


# -- reason texts ------------------------------------------------------------------------------------


def range_excursion(
    rules: ClassRules, peak_c: float, duration_s: float, *, start: datetime | None = None, still: bool = False
) -> str:
    """A range excursion: which limit, how long, the peak."""
    side = "above" if rules.high_c is not None and peak_c > rules.high_c else "below"
    limit = rules.high_c if side == "above" else rules.low_c
    since = "" if start is None else f" since {iso_utc(start)}"
    return (
        f"temperature excursion {side} {limit} °C{since} for {duration_s:.0f} s{' so far' if still else ''} "
        f"(peak {peak_c} °C; minimum duration {rules.min_duration.seconds} s)"
    )


def within_accuracy(peak_c: float, accuracy_c: float) -> str:
    return f"excursion at {peak_c} °C within the device accuracy (±{accuracy_c} °C)"


def single_event(duration_s: float, allowance_s: int, peak_c: float, *, still: bool = False) -> str:
    return (
        f"excursion of {duration_s:.0f} s{' so far' if still else ''} exceeds the single-event "
        f"allowance of {allowance_s} s (peak {peak_c} °C)"
    )


def cumulative(out_of_range_s: float, window_s: int, allowance_s: int) -> str:
    return (
        f"{out_of_range_s:.0f} s out of range within {window_s} s exceeds the cumulative "
        f"allowance of {allowance_s} s"
    )


def band(low_c: float, high_c: float, peak_c: float | None) -> str:
    return f"readings outside the permitted band [{low_c}, {high_c}] °C (peak {peak_c} °C)"


def mkt(mkt_c: float, window_s: int, limit_c: float) -> str:
    return f"MKT {mkt_c:.2f} °C over {window_s} s exceeds {limit_c} °C"


def gap(gap_s: float, allowed_s: float, mode: str) -> str:
    return f"no temperature record for {gap_s:.0f} s (allowed {allowed_s:.0f} s in {mode})"


def state(channel: str, duration_s: float, allowed_s: int) -> str:
    what = "door open" if channel == "door" else "power lost"
    return f"{what} for {duration_s:.0f} s (allowed {allowed_s} s)"


def trigger_fired(kind: str, name: str) -> str:
    return f"{kind} trigger {name} fired"


def near_limit(count: int, accuracy_c: float) -> str:
    return f"{count} readings within the device accuracy (±{accuracy_c} °C) of a limit"


def faults(flatline: int, spike: int, rate: int) -> str:
    return f"sensor faults: {flatline} flatline, {spike} spike, {rate} rate of change"


def evidence(kind: str, rule_id: str, start: datetime, end: datetime) -> str:
    """A stored chain break a series verdict rests on."""
    return f"{kind} {iso_utc(start)}..{iso_utc(end)} ({(end - start).total_seconds():.0f} s, {rule_id})"


NO_EVIDENCE: Final = "no temperature reading: no evidence"
NO_LEG: Final = "no custody leg recorded for the lot yet"


def leg_without_asset(leg: str) -> str:
    return f"custody leg {leg}: no asset, so no temperature evidence"


def leg_not_covered(leg: str) -> str:
    return f"custody leg {leg}: no temperature reading (handoff not covered)"


def back_in_range(hysteresis_c: float) -> str:
    return f"back in range past the {hysteresis_c} °C hysteresis"


def back_to_normal(kind: str) -> str:
    return f"{kind} back to normal"


def clear_at_latest(rule: Rule) -> str:
    return f"{rule.name} clear over the look-back ending at the latest reading"
