"""Stage 3, scorecards: the typed scorecard (indicators, exemptions, cards, the ranked board) and the one
table of indicator keys, their direction and their names in the regulator's vocabulary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from traceability.i18n.words import N_
from traceability.scorecards.period import Period

# Who a scorecard is about: a carrier (party), a device, an asset, a site (location) or a shipper (party).
SUBJECTS: Final = ("carrier", "device", "asset", "site", "shipper")
Subject = Literal["carrier", "device", "asset", "site", "shipper"]

# How an indicator's ratio is read: a share (0..1, higher is better), a rate per 100 shipment-hours (lower
# is better) or a duration in seconds (lower is better).
Kind = Literal["share", "per_100h", "seconds"]


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """One indicator: its key, how its ratio reads, and its English name (the msgid of its zh-CN name in
    the regulator's vocabulary: 上传率, 匹配率, 异常率, 达标率, 覆盖率 ...)."""

    key: str
    kind: Kind
    name: str
    numerator: str  # what the numerator counts (msgid)
    denominator: str  # what the denominator counts (msgid)


INDICATORS: Final[tuple[IndicatorSpec, ...]] = (
    IndicatorSpec(
        "completeness", "share", N_("upload rate (completeness)"),
        N_("readings received"), N_("readings expected"),
    ),
    IndicatorSpec(
        "timeliness", "share", N_("timely upload rate"),
        N_("readings stored in time"), N_("readings received"),
    ),
    IndicatorSpec(
        "conformance", "share", N_("conformance rate"), N_("messages accepted"), N_("messages received"),
    ),
    IndicatorSpec(
        "sequence", "share", N_("sequence loss rate"),
        N_("readings missing by sequence"), N_("readings produced"),
    ),
    IndicatorSpec(
        "track_matching", "share", N_("waybill–track matching rate"),
        N_("shipments matched"), N_("shipments"),
    ),
    IndicatorSpec(
        "trajectory_anomalies", "per_100h", N_("trajectory anomaly rate (per 100 shipment-hours)"),
        N_("anomalies"), N_("shipment-hours"),
    ),
    IndicatorSpec(
        "temp_compliance", "share", N_("temperature compliance rate"),
        N_("monitored minutes in range"), N_("monitored minutes"),
    ),
    IndicatorSpec(
        "lots_unbroken", "share", N_("unbroken-chain rate"), N_("lots without a break"), N_("lots"),
    ),
    IndicatorSpec(
        "coverage_lots", "share", N_("full-process monitoring coverage"),
        N_("lots with evidence on every leg"), N_("lots"),
    ),
    IndicatorSpec(
        "coverage_assets", "share", N_("device coverage rate"),
        N_("assets with a live device"), N_("registered assets"),
    ),
    IndicatorSpec(
        "handover", "share", N_("handover evidence rate"),
        N_("handoffs with evidence on both sides"), N_("handoffs"),
    ),
    IndicatorSpec(
        "alarm_ack_median_s", "seconds", N_("median alarm acknowledgement time (s)"),
        N_("alarms acknowledged"), N_("alarms raised"),
    ),
    IndicatorSpec(
        "alarm_ack_sla", "share", N_("alarm response rate"),
        N_("alarms acknowledged within the SLA"), N_("alarms raised"),
    ),
    IndicatorSpec(
        "calibration", "share", N_("calibration rate"),
        N_("devices in calibration"), N_("devices in service"),
    ),
)  # fmt: skip
SPECS: Final = {s.key: s for s in INDICATORS}
INDICATOR_KEYS: Final = tuple(s.key for s in INDICATORS)
# The sequence indicator's numerator counts what is missing: its score is 1 - ratio.
LOWER_IS_BETTER_SHARES: Final = frozenset({"sequence"})
SUBJECT_NAMES: Final = {
    "carrier": N_("carrier"),
    "device": N_("device"),
    "asset": N_("asset"),
    "site": N_("site"),
    "shipper": N_("shipper"),
}


@dataclass(frozen=True, slots=True)
class Exemption:
    """Time of one subject that an indicator leaves out: an offline sea leg declared for timeliness, a
    device in repair. ``indicator`` "*" exempts every indicator."""

    indicator: str
    subject_kind: str
    subject_id: str
    start: datetime
    end: datetime
    reason: str
    granted_by: str
    granted_at: datetime


@dataclass(slots=True)
class Indicator:
    """One indicator of one subject over a period: numerator over denominator, with the exemptions that
    took time or rows out of both. ``ratio`` is None when the denominator is 0 (nothing to judge)."""

    key: str
    numerator: float
    denominator: float
    ratio: float | None
    exemptions: list[Exemption] = field(default_factory=list)
    note: str | None = None


@dataclass(slots=True)
class Card:
    """One subject's indicators, weighted score (0..100, None when no indicator has a ratio), rank among
    the period's subjects of its kind (1 = best) and the score of the previous period."""

    subject_id: str
    name: str
    indicators: dict[str, Indicator]
    score: float | None
    rank: int | None
    previous_score: float | None

    @property
    def trend(self) -> float | None:
        """Score change against the previous period (None when either is unknown)."""
        if self.score is None or self.previous_score is None:
            return None
        return self.score - self.previous_score


@dataclass(slots=True)
class Scoreboard:
    """Every card of one subject kind over one period, ranked (best first; unscored last)."""

    period: Period
    subject: str
    weights_version: str
    cards: list[Card]
