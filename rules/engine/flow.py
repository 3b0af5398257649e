"""Stage 2 (verdicts): the import flow of a batch: its violations, partial releases and clearance time (pure).

A batch (lot) of imported cold-chain food goes arrival (discharge at the port) → inspection and quarantine →
disinfection (when the result asks for it) → (bonded storage: first-line entry) → release (second line) →
onward. The ledger keeps what happened (``import_step``, derived by the ledger stage); `check` follows a
lot's steps in event-time order (ledger order among equal times) and says what breaks the order:

* ``release_without_inspection``: a release with no inspection result before it;
* ``release_after_non_conformant``: a release while the latest inspection result before it is
  non-conformant (a later conformant re-inspection lifts it);
* ``released_beyond_inspected``: the lot's releases so far add up to more than the quantity the latest
  conformant inspection covered (one inspection covers several partial releases: 一次检验、分批出区);
* ``step_missing``: a release with no arrival recorded before it, a release with no disinfection while the
  inspection result asked for one, or the batch leaving onward after its arrival with no release before.

Each release is listed with the quantity released, the total so far and what remains of the inspected
quantity; the clearance time is from the first discharge to the first release.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from rules.engine import catalog
from rules.models import iso_utc

DISCHARGE: Final = "discharge"
INSPECTION: Final = "inspection"
DISINFECTION: Final = "disinfection"
TRACE_CODE: Final = "trace_code"
ENTRY: Final = "entry"
RELEASE: Final = "release"
ONWARD: Final = "onward"
STEPS: Final = (DISCHARGE, INSPECTION, DISINFECTION, TRACE_CODE, ENTRY, RELEASE, ONWARD)

RELEASE_WITHOUT_INSPECTION: Final = "release_without_inspection"
RELEASE_AFTER_NON_CONFORMANT: Final = "release_after_non_conformant"
RELEASED_BEYOND_INSPECTED: Final = "released_beyond_inspected"
STEP_MISSING: Final = "step_missing"
VIOLATIONS: Final = (
    RELEASE_WITHOUT_INSPECTION,
    RELEASE_AFTER_NON_CONFORMANT,
    RELEASED_BEYOND_INSPECTED,
    STEP_MISSING,
)
# The step a missing-step violation names: 'arrival' is the discharge.
ARRIVAL: Final = DISCHARGE

# Released quantities are sums of decimal figures: a total within this of the inspected one is not beyond it.
QUANTITY_TOLERANCE: Final = 1e-9


@dataclass(frozen=True, slots=True)
class FlowStep:
    """One step of a lot's import flow (a row of ``import_step``)."""

    step: str
    seq: int
    t: datetime
    quantity: float | None = None
    uom: str | None = None
    conformant: bool | None = None
    site: str | None = None
    certificates: tuple[str, ...] = ()
    trace_code: str | None = None
    disinfection_required: bool = False


@dataclass(frozen=True, slots=True)
class Violation:
    """A step that breaks the required order: `seq`/`t` are the offending step's."""

    violation: str  # one of VIOLATIONS
    seq: int
    t: datetime
    reason: str  # the catalog's text
    missing: str | None = None  # step_missing: the step not recorded ('discharge', 'disinfection', 'release')

    @property
    def rule_id(self) -> str:
        return catalog.flow_rule_id(self.violation)


@dataclass(frozen=True, slots=True)
class Release:
    """A (partial) release: its quantity, the lot's total released so far, and what remains of the quantity
    the covering conformant inspection inspected (None: no such inspection, or quantities not comparable)."""

    seq: int
    t: datetime
    quantity: float | None
    uom: str | None
    released_total: float
    inspected: float | None
    remaining: float | None
    inspection_seq: int | None


@dataclass(frozen=True, slots=True)
class FlowCheck:
    violations: tuple[Violation, ...] = ()
    releases: tuple[Release, ...] = ()
    discharged_at: datetime | None = None
    first_release_at: datetime | None = None
    clearance_s: float | None = None
    """discharge → first release, in seconds (None until both are recorded)"""
    trace_code: str | None = None
    trace_code_site: str | None = None
    steps: tuple[FlowStep, ...] = field(default_factory=tuple)


def quantity_text(quantity: float | None, uom: str | None) -> str:
    """A quantity as a reason states it."""
    if quantity is None:
        return "a quantity not stated"
    return f"{quantity:g} {uom}" if uom else f"{quantity:g}"


def check(steps: Iterable[FlowStep]) -> FlowCheck:
    """Follow one lot's steps in event-time order and say what breaks the order (see the module)."""
    ordered = tuple(sorted(steps, key=lambda s: (s.t, s.seq)))
    violations: list[Violation] = []
    releases: list[Release] = []
    arrived: datetime | None = None
    inspected: FlowStep | None = None  # the latest inspection result
    covering: FlowStep | None = None  # the latest conformant one
    disinfected = False
    released_total = 0.0
    first_release: datetime | None = None
    code: FlowStep | None = None
    for s in ordered:
        if s.step == DISCHARGE and arrived is None:
            arrived = s.t
        elif s.step == INSPECTION:
            inspected = s
            if s.conformant:
                covering = s
        elif s.step == DISINFECTION:
            disinfected = True
        elif s.step == TRACE_CODE and code is None:
            code = s
        elif s.step == RELEASE:
            first_release = first_release or s.t
            violations += _release_violations(s, arrived, inspected, disinfected)
            if s.quantity is not None:
                released_total += s.quantity
            comparable = covering is not None and covering.quantity is not None and covering.uom == s.uom
            total_inspected = covering.quantity if comparable and covering is not None else None
            remaining = None if total_inspected is None else total_inspected - released_total
            if remaining is not None and remaining < -QUANTITY_TOLERANCE and inspected is covering:
                violations.append(
                    Violation(
                        RELEASED_BEYOND_INSPECTED,
                        s.seq,
                        s.t,
                        catalog.FLOW_RELEASED_BEYOND_INSPECTED.format(
                            released=quantity_text(released_total, s.uom),
                            inspected=quantity_text(total_inspected, s.uom),
                        ),
                    )
                )
            releases.append(
                Release(
                    s.seq,
                    s.t,
                    s.quantity,
                    s.uom,
                    released_total,
                    total_inspected,
                    remaining,
                    None if covering is None else covering.seq,
                )
            )
        elif s.step == ONWARD and arrived is not None and first_release is None:
            violations.append(_missing(s, RELEASE))
    clearance = None
    if arrived is not None and first_release is not None:
        clearance = (first_release - arrived).total_seconds()
    return FlowCheck(
        violations=tuple(violations),
        releases=tuple(releases),
        discharged_at=arrived,
        first_release_at=first_release,
        clearance_s=clearance,
        trace_code=None if code is None else code.trace_code,
        trace_code_site=None if code is None else code.site,
        steps=ordered,
    )


def _release_violations(
    s: FlowStep, arrived: datetime | None, inspected: FlowStep | None, disinfected: bool
) -> list[Violation]:
    out: list[Violation] = []
    quantity = quantity_text(s.quantity, s.uom)
    if arrived is None:
        out.append(_missing(s, ARRIVAL))
    if inspected is None:
        out.append(
            Violation(
                RELEASE_WITHOUT_INSPECTION,
                s.seq,
                s.t,
                catalog.FLOW_RELEASE_WITHOUT_INSPECTION.format(quantity=quantity),
            )
        )
    elif not inspected.conformant:
        out.append(
            Violation(
                RELEASE_AFTER_NON_CONFORMANT,
                s.seq,
                s.t,
                catalog.FLOW_RELEASE_AFTER_NON_CONFORMANT.format(
                    quantity=quantity, inspected_at=iso_utc(inspected.t)
                ),
            )
        )
    elif inspected.disinfection_required and not disinfected:
        out.append(_missing(s, DISINFECTION))
    return out


def _missing(s: FlowStep, missing: str) -> Violation:
    return Violation(
        STEP_MISSING, s.seq, s.t, catalog.FLOW_STEP_MISSING.format(step=s.step, missing=missing), missing
    )
