"""Stage 2 (verdicts): the verdict payload the rules stage writes to verdict_outbox (read by the ledger).

`verdict_outbox.kind` is 'excursion_closed' or 'chain_break' (payload: `VerdictPayload` as JSON),
'lot_verdict' (payload: `LotVerdictPayload`), 'verdict_correction' (payload: `CorrectionPayload`) or
'flow_violation' (payload: `FlowViolationPayload`); geofence_outbox rows are `CrossingPayload`.
Downstream stages may decode it with ``msgspec.convert(payload, VerdictPayload)``. `verdict_id` is
stable across re-evaluations of the same verdict (the ledger event carries it as ``cc:verdictId``); a
verdict late data changes keeps it when its start stays, and a correction names it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec

from rules.verdicts import Verdict

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

VerdictKind = Literal["excursion_closed", "chain_break"]


class VerdictLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The class limits the verdict was computed under (pack figures, with the range's source)."""

    low_c: float | None
    high_c: float | None
    low_inclusive: bool
    high_inclusive: bool
    min_duration_s: int
    max_interval_s: int  # the allowed recording interval for the asset's mode
    source: str  # source of the temperature range


class VerdictPayload(msgspec.Struct, frozen=True, kw_only=True):
    """One excursion (closed) or chain break, as handed to the ledger."""

    verdict: VerdictKind  # same as verdict_outbox.kind
    verdict_id: str  # "<verdict>:<rule_id>:<series_id>:<start epoch ms>"
    kind: str  # 'excursion' for excursions; chain_break.kind ('gap', ...) for chain breaks
    reason: str  # human-readable explanation
    asset_id: str
    series_id: int
    device_id: str
    channel: str
    product_class: str
    mode: str  # the asset's transport mode (rules.packs.Mode): storage, transport, road, rail or sea
    rule_id: str  # e.g. cn_food/chilled/range, cn_food/chilled/gap
    pack_id: str
    pack_version: str
    start: str  # RFC 3339 UTC, device time of the first reading of the interval
    end: str  # RFC 3339 UTC, device time of the last reading of the interval
    duration_s: float
    peak_c: float | None  # excursion: the value furthest outside the limits; gap: None
    min_c: float | None  # over the non-NaN readings in [start, end]
    max_c: float | None
    mean_c: float | None
    readings: int  # non-NaN readings in [start, end]
    allowed_s: float | None  # gap: the allowed recording interval that was exceeded; excursion: None
    limit_low_c: float | None  # = limits.low_c, flat like the excursion table's columns
    limit_high_c: float | None  # = limits.high_c
    limits: VerdictLimits
    # When the rules stage handed it to the ledger (RFC 3339 UTC; None in rows written before it was kept):
    # a verdict withdrawn and found again as it was is a new ledger event, not its first event again.
    computed_at: str | None = None


class LotVerdictPayload(msgspec.Struct, frozen=True, kw_only=True):
    """A lot's verdict under its own class, through the assets that carried it (a new version of it)."""

    verdict: Literal["lot_verdict"]
    verdict_id: str  # "lot_verdict:<lot_id>:v<version>", one per version
    lot_id: str
    product_class: str
    result: Verdict  # rules.verdicts: the roll-up of the lot's legs
    reasons: list[str]
    pack_id: str
    pack_version: str
    computed_at: str  # RFC 3339 UTC
    version: int = 1  # verdict_history version of the lot
    start: str | None = None  # RFC 3339 UTC: device-time span of the evidence judged (first leg start)
    end: str | None = None  # ... to the last reading judged
    # The verdict id of the lot's version the ledger holds that this one corrects: data arrived at or
    # before that version's `end` and changed the result (None: a new verdict on new evidence).
    corrects: str | None = None
    correction_reason: str | None = None  # why, when `corrects` is set


class WithdrawnVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """What the ledger held of a verdict that late data removed altogether."""

    verdict_id: str
    verdict: VerdictKind
    kind: str
    rule_id: str
    asset_id: str
    series_id: int
    device_id: str
    channel: str
    product_class: str
    pack_id: str
    pack_version: str
    start: str  # RFC 3339 UTC, as emitted
    end: str


class CorrectionPayload(msgspec.Struct, frozen=True, kw_only=True):
    """Verdicts the ledger holds that late data changed or removed: the ledger declares each wrong (EPCIS
    errorDeclaration, reason incorrect_data) with the replacing verdict's event, or, for a withdrawn one,
    an event reporting the withdrawal, as the corrective event."""

    verdict: Literal["verdict_correction"]
    declared: list[str]  # verdict ids of the events the ledger holds that are now wrong
    replacement: VerdictPayload | None  # the verdict that replaces them
    withdrawn: WithdrawnVerdict | None  # without a replacement: the verdict removed
    reason: str  # why they changed (what arrived), human-readable
    computed_at: str  # RFC 3339 UTC


class CrossingPayload(msgspec.Struct, frozen=True, kw_only=True):
    """An asset crossing a location's geofence, as handed to the ledger (a geofence_outbox row): a new
    crossing (`corrects` and `withdrawn` unset), one replacing the crossing the ledger holds at `corrects`
    (same asset, fence and direction: a late position moved it), or the crossing at `at` withdrawn
    (`withdrawn`: late positions removed it; nothing replaces it)."""

    crossing: Literal["enter", "exit"]
    asset_id: str
    location_id: str
    at: str  # RFC 3339 UTC, device time of the first position inside (enter) / outside (exit)
    device_id: str
    lat: float
    lon: float
    corrects: str | None = None  # RFC 3339 UTC: device time of the crossing this one replaces
    withdrawn: bool = False
    reason: str | None = None  # why it was corrected or withdrawn (what arrived), human-readable
    computed_at: str  # RFC 3339 UTC


class FlowViolationPayload(msgspec.Struct, frozen=True, kw_only=True):
    """An import-flow violation of a lot (a chain break of kind 'flow'), or its withdrawal when the flow no
    longer shows it (a step recorded late, dated before the offending one)."""

    verdict: Literal["flow_violation"]
    verdict_id: str  # "flow_violation:<rule_id>:<lot_id>:<offending step's epoch ms>:<seq>[:<missing>]"
    lot_id: str
    rule_id: str  # flow/<violation>
    violation: str  # rules.engine.flow.VIOLATIONS
    reason: str
    missing: str | None  # step_missing: the step not recorded
    event_seq: int  # the offending step's ledger seq
    event_id: str | None  # and its EPCIS eventID
    event_time: str  # RFC 3339 UTC, the offending step's event time
    asset_id: str | None  # the asset holding the lot then, when known
    computed_at: str  # RFC 3339 UTC
    withdrawn: bool = False


def from_epoch_us(t_us: int) -> datetime:
    """Exact UTC datetime from epoch microseconds."""
    return EPOCH + timedelta(microseconds=t_us)


def to_epoch_ms(t: datetime) -> int:
    """Epoch milliseconds (floor) of an aware datetime, exactly."""
    return (t - EPOCH) // timedelta(milliseconds=1)


def iso_utc(t: datetime) -> str:
    """RFC 3339 in UTC with a Z: millisecond precision, microseconds when present."""
    t = t.astimezone(UTC)
    spec = "milliseconds" if t.microsecond % 1000 == 0 else "microseconds"
    return t.replace(tzinfo=None).isoformat(timespec=spec) + "Z"
