"""Stage 2 (verdicts): a series' verdict from its evidence, and verdict_history versions (pure).

A series on an asset is judged from its stored excursion and chain_break rows and the profile rules
standing at its latest reading; a new verdict_history version is written only when the verdict or
its evidence changed, recording what arrived and what was added or removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from rules import engine
from rules.engine import catalog
from rules.models import iso_utc
from rules.packs import ClassRef
from rules.verdicts import Verdict, roll_up
from rules.worker.plan import History, Plan


@dataclass(frozen=True, slots=True)
class Evidence:
    """A stored row a series verdict rests on: an excursion ('excursion') or a chain break (its kind;
    'excursion_break' for a profile rule's break)."""

    kind: str
    rule_id: str
    start: datetime
    end: datetime
    open: bool
    peak_c: float | None


@dataclass(frozen=True, slots=True)
class LastVersion:
    version: int
    verdict: str
    items: list[dict[str, Any]]


def series_verdict(
    ref: ClassRef, evidence: list[Evidence], standing: list[engine.Breach]
) -> tuple[Verdict, list[dict[str, Any]], list[str]]:
    """(verdict, items, reasons) of a series on an asset: its rows, then the profile rules standing."""
    rules = ref.rules
    single = rules.allowances.single_event if rules.allowances else None
    items: list[dict[str, Any]] = [
        {
            "kind": e.kind,
            "rule_id": e.rule_id,
            "start": iso_utc(e.start),
            "end": iso_utc(e.end),
            "open": e.open,
        }
        for e in evidence
    ]
    levels: list[Verdict] = []
    reasons: list[str] = []
    for e in evidence:
        dur = (e.end - e.start).total_seconds()
        if e.kind != "excursion":
            levels.append("broken")
            reasons.append(catalog.evidence(e.kind, e.rule_id, e.start, e.end))
        elif single is not None and dur > single.seconds:
            levels.append(catalog.SINGLE_EVENT.level)
            reasons.append(catalog.single_event(dur, single.seconds, e.peak_c or 0.0, still=e.open))
        else:
            levels.append(catalog.RANGE.level)
            reasons.append(catalog.range_excursion(rules, e.peak_c or 0.0, dur, start=e.start, still=e.open))
    for b in standing:
        items.append({"kind": "rule", "rule_id": b.rule_id, "level": b.level})
        levels.append(b.level)
        reasons.append(b.reason)
    return roll_up(levels), items, reasons


def history_entry(
    subject_kind: str,
    subject_id: str,
    verdict: Verdict,
    ref: ClassRef,
    items: list[dict[str, Any]],
    reasons: list[str],
    arrived: dict[str, Any],
    last: LastVersion | None,
) -> History | None:
    """The next version when the verdict or its items changed since `last`, else None."""
    if last is not None and last.verdict == verdict and last.items == items:
        return None
    before = [] if last is None else list(last.items)
    key = [msgspec.json.encode(i) for i in items]
    old = [msgspec.json.encode(i) for i in before]
    change = {
        "from": None if last is None else last.verdict,
        "to": verdict,
        "added": [i for i, k in zip(items, key, strict=True) if k not in old],
        "removed": [i for i, k in zip(before, old, strict=True) if k not in key],
    }
    return History(
        subject_kind=subject_kind,
        subject_id=subject_id,
        version=1 if last is None else last.version + 1,
        verdict=verdict,
        product_class=ref.code,
        pack_id=ref.pack_id,
        pack_version=ref.pack_version,
        items=items,
        reasons=reasons,
        arrived=arrived,
        change=change,
    )


def as_plan(entry: History) -> Plan:
    """A plan that writes one history version."""
    return Plan([entry])
