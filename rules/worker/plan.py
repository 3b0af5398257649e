"""Stage 2 (verdicts): the worker's plan: what one evaluation writes, as plain values (no I/O).

The policy (`rules.worker.policy`, `rules.worker.lots`) turns what was read into a `Plan`; the adapter
(`rules.worker.apply`) carries it out, in order, inside the run's one transaction. An `Emit` is the
ledger outbox's hand-over: its `then` ops (the alarm a new verdict raises) apply only when the
verdict had never been emitted before; an emitted verdict it overlaps with other figures is replaced
(a correction to the ledger). A `Withdraw` corrects the emitted verdicts of a re-judged window that no
`Emit` of the plan kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rules.alarms import Condition
from rules.engine.shelf import LotShelfLife
from rules.models import LotVerdictPayload, VerdictPayload
from rules.packs import Mode
from rules.verdicts import Verdict


@dataclass(frozen=True, slots=True)
class Segment:
    """A series while its device was mounted on one asset, with that asset's class and transport mode."""

    series_id: int
    device_id: str
    channel: str
    asset_id: str
    mode: Mode
    seg_lo: datetime  # mount valid_from (inclusive)
    seg_hi: datetime  # mount valid_to (exclusive), FAR_FUTURE while still mounted
    mounted_now: bool
    committed_at: datetime | None = None  # commit time of the earliest batch that triggered this
    compartment: bool = False  # the asset is a compartment its probe channel measures (asset.probe)


@dataclass(frozen=True, slots=True)
class DeleteRuns:
    """Drop the verdict rows of one table lying wholly inside [t_lo, t_hi] (they are recomputed).

    `table`: 'excursion', 'gap', 'profile' (profile chain breaks but MKT) or 'door' / 'power'."""

    table: str
    series_id: int
    asset_id: str
    t_lo: datetime
    t_hi: datetime
    mkt_rule: str | None = None


@dataclass(frozen=True, slots=True)
class UpsertExcursion:
    series_id: int
    asset_id: str
    product_class: str
    rule_id: str
    pack_version: str
    start: datetime
    end: datetime
    open: bool
    peak_c: float
    limit_low_c: float | None
    limit_high_c: float | None
    readings: int


@dataclass(frozen=True, slots=True)
class UpsertBreak:
    """A chain_break row: `kind` 'gap', 'door', 'power', or 'excursion' (a profile rule's break)."""

    kind: str
    series_id: int
    asset_id: str
    rule_id: str
    pack_version: str
    start: datetime
    end: datetime
    allowed_s: float
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UpdateBreak:
    """Move the end of a stored chain break (the MKT row), replacing its detail."""

    chain_break_id: int
    end: datetime
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DeleteBreak:
    chain_break_id: int


@dataclass(frozen=True, slots=True)
class RaiseAlarm:
    condition: Condition


@dataclass(frozen=True, slots=True)
class ResolveAlarm:
    """Auto-resolve the asset's alarm of this rule; `unless_open_excursion`: only when no excursion of
    the rule is still open on the asset (another probe may hold one); `counted`: in the run's figures."""

    asset_id: str
    rule_id: str
    condition_end: datetime
    note: str
    unless_open_excursion: bool = False
    counted: bool = True
    after_new_emit: str | None = None  # only when an Emit of this rule id in the plan was new


@dataclass(frozen=True, slots=True)
class Emit:
    """Hand a verdict to the ledger's outbox unless it was emitted before; then apply `then`."""

    payload: VerdictPayload
    series_id: int
    rule_id: str
    start: datetime
    end: datetime
    then: tuple[RaiseAlarm | ResolveAlarm, ...] = ()


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Withdraw the emitted verdicts of these rules lying wholly inside [t_lo, t_hi] of the series on the
    asset that no `Emit` earlier in the plan kept or replaced: the window was judged again and they are
    not there any more (a correction to the ledger). Must follow the plan's Emits of those rules."""

    verdict: str  # 'excursion_closed' | 'chain_break'
    series_id: int
    asset_id: str
    rules: tuple[tuple[str, str], ...]  # (rule id, the payload's kind: 'excursion', 'gap', ...)
    t_lo: datetime
    t_hi: datetime
    device_id: str
    channel: str
    product_class: str
    pack_id: str
    pack_version: str


@dataclass(frozen=True, slots=True)
class History:
    """A new verdict_history version of a subject ('series' or 'lot')."""

    subject_kind: str
    subject_id: str
    version: int
    verdict: Verdict
    product_class: str
    pack_id: str
    pack_version: str
    items: list[dict[str, Any]]
    reasons: list[str]
    arrived: dict[str, Any]
    change: dict[str, Any]
    span_end: datetime | None = None  # lots: the device time up to which the evidence was judged


@dataclass(frozen=True, slots=True)
class EmitLot:
    """A changed lot verdict for the ledger."""

    payload: LotVerdictPayload


@dataclass(frozen=True, slots=True)
class StoreShelfLife:
    """The lot's remaining shelf life beside its verdict (`verdict_version`: the lot's verdict history
    version it goes with); `shelf` None removes it (the class has no shelf-life model)."""

    lot_id: str
    product_class: str
    pack_id: str
    pack_version: str
    verdict_version: int | None
    shelf: LotShelfLife | None


Op = (
    DeleteRuns
    | UpsertExcursion
    | UpsertBreak
    | UpdateBreak
    | DeleteBreak
    | RaiseAlarm
    | ResolveAlarm
    | Emit
    | Withdraw
    | History
    | EmitLot
    | StoreShelfLife
)


@dataclass(slots=True)
class Plan:
    """What an evaluation writes, in order."""

    ops: list[Op] = field(default_factory=list)

    def add(self, op: Op) -> None:
        self.ops.append(op)

    def of(self, kind: type[Any]) -> list[Any]:
        """The ops of one type, in order (for tests and figures)."""
        return [op for op in self.ops if isinstance(op, kind)]
