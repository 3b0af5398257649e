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
from rules.packs import ClassRef, ClassRules, Trigger
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
# Evidence quality: readings of a device past its calibration date prove nothing either way (GB 31605-2020
# and the drug GSP require calibrated monitoring devices), so at best indeterminate; relative humidity
# outside the class's limits is an excursion, judged on the asset's rh channel.
CALIBRATION: Final = Rule("calibration", "calibration", "indeterminate", "warning")
HUMIDITY: Final = Rule("humidity", "humidity", "excursion", "warning")
# Not a class rule: the import flow of a batch (rules.engine.flow), one rule per violation, its chain_break
# kind 'flow'; the rule id is ``flow/<violation>`` (`flow_rule_id`).
FLOW: Final = Rule("flow", "flow", "broken", "critical", break_kind="flow")
FLOW_RULE_PREFIX: Final = "flow/"
# Not a class rule: a telemetry batch whose evaluation raised and was taken off the queue (its id is
# ``rules/quarantine``, the same under every class).
QUARANTINE: Final = Rule("quarantine", "quarantine", "indeterminate", "critical")
QUARANTINE_RULE_ID: Final = "rules/quarantine"
# Not class rules: a shipper's per-shipment alarm profile (rules.engine.shipper), judged beside the class;
# the rule id is ``shipment/<shipment id>/<name>`` (`shipment_rule_id`), one per shipment whatever its
# version (the alarm and the profile_excursion row name the version and the specification it cites).
PROFILE_RANGE: Final = Rule("range", "profile_range", "excursion", None)
PROFILE_GAP: Final = Rule("gap", "profile_gap", "excursion", "warning")
SHIPMENT_RULE_PREFIX: Final = "shipment/"


def trigger(t: Trigger) -> Rule:
    """A pack's named trigger: a rule with the trigger's own verdict and severity."""
    return Rule(f"trigger.{t.name}", "trigger", t.verdict, t.severity)


def state_rule(channel: str) -> Rule:
    """The door-open or power-loss rule of a state channel ('door' or 'power')."""
    return DOOR_OPEN if channel == "door" else POWER_LOSS


def profile_rules(rules: ClassRules) -> tuple[Rule, ...]:
    """The profile rules judged live at the latest reading (an alarm each while it stands)."""
    return (
        CUMULATIVE,
        BAND,
        MKT,
        ACCURACY,
        FAULTS,
        CALIBRATION,
        *(trigger(t) for t in rules.triggers),
    )


# -- reason texts ------------------------------------------------------------------------------------
# Each reason is one template: the functions below fill them, and the pages and reports translate a stored
# reason by matching it against these (``REASON_TEMPLATES``) and filling the translated template. A field
# whose value is itself a template or a word of ``REASON_WORDS`` is translated too; numbers and ids are not.

RANGE_EXCURSION: Final = (
    "temperature excursion {side} {limit_c} °C{since} for {duration_s} s{still} "
    "(peak {peak_c} °C; minimum duration {minimum_s} s)"
)
SINCE: Final = " since {start}"
SO_FAR: Final = " so far"
WITHIN_ACCURACY: Final = "excursion at {peak_c} °C within the device accuracy (±{accuracy_c} °C)"
SINGLE_EVENT_TEXT: Final = (
    "excursion of {duration_s} s{still} exceeds the single-event allowance "
    + "of {allowance_s} s (peak {peak_c} °C)"
)
CUMULATIVE_TEXT: Final = (
    "{out_of_range_s} s out of range within {window_s} s exceeds the cumulative allowance of {allowance_s} s"
)
BAND_TEXT: Final = "readings outside the permitted band [{low_c}, {high_c}] °C (peak {peak_c} °C)"
MKT_TEXT: Final = "MKT {mkt_c} °C over {window_s} s exceeds {limit_c} °C"
GAP_TEXT: Final = "no temperature record for {gap_s} s (allowed {allowed_s} s in {mode})"
STATE_TEXT: Final = "{what} for {duration_s} s (allowed {allowed_s} s)"
TRIGGER_TEXT: Final = "{kind} trigger {name} fired"
NEAR_LIMIT_TEXT: Final = "{count} readings within the device accuracy (±{accuracy_c} °C) of a limit"
FAULTS_TEXT: Final = "sensor faults: {flatline} flatline, {spike} spike, {rate} rate of change"
EVIDENCE_TEXT: Final = "{kind} {start}..{end} ({duration_s} s, {rule_id})"
CALIBRATION_TEXT: Final = "{count} readings taken after the device's calibration was due ({due})"
HUMIDITY_TEXT: Final = "humidity {side} {limit_pct} %RH for {duration_s} s (peak {peak_pct} %RH)"
NO_EVIDENCE: Final = "no temperature reading: no evidence"
NO_LEG: Final = "no custody leg recorded for the lot yet"
LEG_WITHOUT_ASSET: Final = "custody leg {leg}: no asset, so no temperature evidence"
LEG_NOT_COVERED: Final = "custody leg {leg}: no temperature reading (handoff not covered)"
BACK_IN_RANGE: Final = "back in range past the {hysteresis_c} °C hysteresis"
BACK_TO_NORMAL: Final = "{kind} back to normal"
CLEAR_AT_LATEST: Final = "{rule} clear over the look-back ending at the latest reading"
CLEAR_NOW: Final = "{rule} clear at the latest reading"
SERIES_REASON: Final = "{asset} series {series}: {reason}"
CORRECTED_TEXT: Final = (
    "readings that arrived late changed this verdict: {was_start}..{was_end} is now {start}..{end}"
)
WITHDRAWN_TEXT: Final = "readings that arrived late removed this verdict ({start}..{end})"
LOT_CORRECTED_TEXT: Final = (
    "readings that arrived late for {start}..{end} changed the lot's verdict from {was} to {now}"
)
# Fixed phrases: the error itself stays in batch_quarantine / lot_quarantine and the log.
QUARANTINED_TEXT: Final = "telemetry batch {batch_id} taken off the rules queue: its evaluation failed"
LOT_QUARANTINED_TEXT: Final = "lot {lot_id} could not be judged: its evaluation failed"
QUARANTINE_CLEARED: Final = "the quarantined data was judged without error"
LEG_NAME: Final = "{asset} from {start}"
UNKNOWN_ASSET: Final = "unknown asset"
# The import flow of a batch (rules.engine.flow): each violation's reason, and the alarm naming its lot.
FLOW_RELEASE_WITHOUT_INSPECTION: Final = "release of {quantity} without a conformant inspection"
FLOW_RELEASED_BEYOND_INSPECTED: Final = "released {released} in total, beyond the {inspected} inspected"
FLOW_RELEASE_AFTER_NON_CONFORMANT: Final = (
    "release of {quantity} after a non-conformant inspection ({inspected_at})"
)
FLOW_STEP_MISSING: Final = "{step} with no {missing} recorded before it"
FLOW_ALARM: Final = "lot {lot}: {reason}"
FLOW_CLEARED: Final = "the import flow no longer shows this violation"
# A shipper's profile (rules.engine.shipper): a run outside its band, a gap beyond its interval, the cleared
# range alarm; each names the shipment, the version and the specification the profile cites.
PROFILE_RANGE_TEXT: Final = (
    "temperature {side} the shipper's {limit_c} °C for {duration_s} s{still} (peak {peak_c} °C; "
    "shipment {shipment} profile v{version}: {source})"
)
PROFILE_GAP_TEXT: Final = (
    "no temperature record for {gap_s} s (the shipper allows {allowed_s} s; "
    "shipment {shipment} profile v{version}: {source})"
)
PROFILE_BACK_IN_BAND: Final = "back inside the shipper's band (shipment {shipment})"

REASON_TEMPLATES: Final = (
    RANGE_EXCURSION,
    WITHIN_ACCURACY,
    SINGLE_EVENT_TEXT,
    CUMULATIVE_TEXT,
    BAND_TEXT,
    MKT_TEXT,
    GAP_TEXT,
    STATE_TEXT,
    TRIGGER_TEXT,
    NEAR_LIMIT_TEXT,
    FAULTS_TEXT,
    EVIDENCE_TEXT,
    CALIBRATION_TEXT,
    HUMIDITY_TEXT,
    NO_EVIDENCE,
    NO_LEG,
    LEG_WITHOUT_ASSET,
    LEG_NOT_COVERED,
    BACK_IN_RANGE,
    BACK_TO_NORMAL,
    CLEAR_AT_LATEST,
    CLEAR_NOW,
    SERIES_REASON,
    CORRECTED_TEXT,
    WITHDRAWN_TEXT,
    LOT_CORRECTED_TEXT,
    QUARANTINED_TEXT,
    LOT_QUARANTINED_TEXT,
    QUARANTINE_CLEARED,
    FLOW_RELEASE_WITHOUT_INSPECTION,
    FLOW_RELEASED_BEYOND_INSPECTED,
    FLOW_RELEASE_AFTER_NON_CONFORMANT,
    FLOW_STEP_MISSING,
    FLOW_ALARM,
    FLOW_CLEARED,
    PROFILE_RANGE_TEXT,
    PROFILE_GAP_TEXT,
    PROFILE_BACK_IN_BAND,
)
# The parts a reason's field may hold (translated there, never taken for a whole reason).
REASON_PARTS: Final = (LEG_NAME, SINCE, SO_FAR)
# The words a template's field may hold that are words, not data (translated with the template).
REASON_WORDS: Final = (
    *("above", "below", "door open", "power lost", "storage", "transport", "road", "rail", "sea"),
    *("gap", "excursion", "door", "power", "trigger", "humidity"),
    *("pass", "indeterminate", "broken"),
    *("discharge", "inspection", "disinfection", "release", "onward", "a quantity not stated"),
    UNKNOWN_ASSET,
)


def range_excursion(
    rules: ClassRules, peak_c: float, duration_s: float, *, start: datetime | None = None, still: bool = False
) -> str:
    """A range excursion: which limit, how long, the peak."""
    side = "above" if rules.high_c is not None and peak_c > rules.high_c else "below"
    limit = rules.high_c if side == "above" else rules.low_c
    return RANGE_EXCURSION.format(
        side=side,
        limit_c=limit,
        since="" if start is None else SINCE.format(start=iso_utc(start)),
        duration_s=f"{duration_s:.0f}",
        still=SO_FAR if still else "",
        peak_c=peak_c,
        minimum_s=rules.min_duration.seconds,
    )


def within_accuracy(peak_c: float, accuracy_c: float) -> str:
    return WITHIN_ACCURACY.format(peak_c=peak_c, accuracy_c=accuracy_c)


def single_event(duration_s: float, allowance_s: int, peak_c: float, *, still: bool = False) -> str:
    return SINGLE_EVENT_TEXT.format(
        duration_s=f"{duration_s:.0f}", still=SO_FAR if still else "", allowance_s=allowance_s, peak_c=peak_c
    )


def cumulative(out_of_range_s: float, window_s: int, allowance_s: int) -> str:
    return CUMULATIVE_TEXT.format(
        out_of_range_s=f"{out_of_range_s:.0f}", window_s=window_s, allowance_s=allowance_s
    )


def band(low_c: float, high_c: float, peak_c: float | None) -> str:
    return BAND_TEXT.format(low_c=low_c, high_c=high_c, peak_c=peak_c)


def mkt(mkt_c: float, window_s: int, limit_c: float) -> str:
    return MKT_TEXT.format(mkt_c=f"{mkt_c:.2f}", window_s=window_s, limit_c=limit_c)


def gap(gap_s: float, allowed_s: float, mode: str) -> str:
    return GAP_TEXT.format(gap_s=f"{gap_s:.0f}", allowed_s=f"{allowed_s:.0f}", mode=mode)


def state(channel: str, duration_s: float, allowed_s: int) -> str:
    what = "door open" if channel == "door" else "power lost"
    return STATE_TEXT.format(what=what, duration_s=f"{duration_s:.0f}", allowed_s=allowed_s)


def trigger_fired(kind: str, name: str) -> str:
    return TRIGGER_TEXT.format(kind=kind, name=name)


def near_limit(count: int, accuracy_c: float) -> str:
    return NEAR_LIMIT_TEXT.format(count=count, accuracy_c=accuracy_c)


def faults(flatline: int, spike: int, rate: int) -> str:
    return FAULTS_TEXT.format(flatline=flatline, spike=spike, rate=rate)


def calibration(count: int, due: str) -> str:
    """Readings of a device past its calibration date (`due`: the ISO date)."""
    return CALIBRATION_TEXT.format(count=count, due=due)


def humidity(low_pct: float | None, high_pct: float | None, peak_pct: float, duration_s: float) -> str:
    """A humidity run outside the class's limits: which limit, how long, the peak."""
    side = "above" if high_pct is not None and peak_pct > high_pct else "below"
    limit = high_pct if side == "above" else low_pct
    return HUMIDITY_TEXT.format(side=side, limit_pct=limit, duration_s=f"{duration_s:.0f}", peak_pct=peak_pct)


def evidence(kind: str, rule_id: str, start: datetime, end: datetime) -> str:
    """A stored chain break a series verdict rests on."""
    return EVIDENCE_TEXT.format(
        kind=kind,
        start=iso_utc(start),
        end=iso_utc(end),
        duration_s=f"{(end - start).total_seconds():.0f}",
        rule_id=rule_id,
    )


def series_reason(asset_id: str, series_id: int, reason: str) -> str:
    """A series' reason as the lot's verdict states it: which asset's which series."""
    return SERIES_REASON.format(asset=asset_id, series=series_id, reason=reason)


def leg_name(asset_id: str | None, start: datetime) -> str:
    """A custody leg as a lot's reasons name it: its asset and when it began."""
    return LEG_NAME.format(asset=asset_id or UNKNOWN_ASSET, start=iso_utc(start))


def leg_without_asset(leg: str) -> str:
    return LEG_WITHOUT_ASSET.format(leg=leg)


def leg_not_covered(leg: str) -> str:
    return LEG_NOT_COVERED.format(leg=leg)


def back_in_range(hysteresis_c: float) -> str:
    return BACK_IN_RANGE.format(hysteresis_c=hysteresis_c)


def back_to_normal(kind: str) -> str:
    return BACK_TO_NORMAL.format(kind=kind)


def clear_at_latest(rule: Rule) -> str:
    return CLEAR_AT_LATEST.format(rule=rule.name)


def clear_now(rule: Rule) -> str:
    """A momentary rule (instant trigger, accuracy) whose condition no longer holds at the latest reading."""
    return CLEAR_NOW.format(rule=rule.name)


def corrected(was: tuple[datetime, datetime], now: tuple[datetime, datetime]) -> str:
    """Why a verdict the ledger holds was replaced: its span before and after the late readings."""
    return CORRECTED_TEXT.format(
        was_start=iso_utc(was[0]), was_end=iso_utc(was[1]), start=iso_utc(now[0]), end=iso_utc(now[1])
    )


def withdrawn(start: datetime, end: datetime) -> str:
    """Why a verdict the ledger holds was withdrawn: late readings left nothing of it."""
    return WITHDRAWN_TEXT.format(start=iso_utc(start), end=iso_utc(end))


def lot_corrected(arrived: tuple[datetime, datetime], was: str, now: str) -> str:
    """Why a lot verdict the ledger holds was corrected: what arrived late, and the results."""
    return LOT_CORRECTED_TEXT.format(start=iso_utc(arrived[0]), end=iso_utc(arrived[1]), was=was, now=now)


def quarantined(batch_id: int) -> str:
    """Why a batch left the queue unjudged (never the error: an operator reads it with the batch)."""
    return QUARANTINED_TEXT.format(batch_id=batch_id)


def lot_quarantined(lot_id: str) -> str:
    """Why a lot's verdict was not brought up to date (never the error, as for a batch)."""
    return LOT_QUARANTINED_TEXT.format(lot_id=lot_id)


def flow_rule_id(violation: str) -> str:
    """The rule id of an import-flow violation (its chain_break row, its ledger event, its alarm)."""
    return FLOW_RULE_PREFIX + violation


def flow_alarm(lot_id: str, reason: str) -> str:
    """An import-flow alarm's reason: the alarm is on an asset, so it names the lot."""
    return FLOW_ALARM.format(lot=lot_id, reason=reason)


def shipment_rule_id(shipment_id: str, rule: Rule) -> str:
    """The rule id of a shipment profile's rule (its profile_excursion rows, its alarm)."""
    return f"{SHIPMENT_RULE_PREFIX}{shipment_id}/{rule.name}"


def profile_range(
    low_c: float | None,
    high_c: float | None,
    peak_c: float,
    duration_s: float,
    cited: tuple[str, int, str],
    *,
    still: bool = False,
) -> str:
    """A run outside a shipper's band: which limit, how long, the peak, and the profile it breaks
    (`cited`: shipment id, version, the specification)."""
    side = "above" if high_c is not None and peak_c > high_c else "below"
    shipment, version, source = cited
    return PROFILE_RANGE_TEXT.format(
        side=side,
        limit_c=high_c if side == "above" else low_c,
        duration_s=f"{duration_s:.0f}",
        still=SO_FAR if still else "",
        peak_c=peak_c,
        shipment=shipment,
        version=version,
        source=source,
    )


def profile_gap(gap_s: float, allowed_s: float, cited: tuple[str, int, str]) -> str:
    """A recording interval beyond a shipper's, and the profile it breaks."""
    shipment, version, source = cited
    return PROFILE_GAP_TEXT.format(
        gap_s=f"{gap_s:.0f}", allowed_s=f"{allowed_s:.0f}", shipment=shipment, version=version, source=source
    )


def profile_back_in_band(shipment_id: str) -> str:
    return PROFILE_BACK_IN_BAND.format(shipment=shipment_id)
