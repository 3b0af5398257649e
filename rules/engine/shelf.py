"""Stage 2 (verdicts): a lot's remaining shelf life from the temperature history it inherited (pure).

The lot's history is the readings of whatever held it (``rules.worker.lots``): each held window is a
temperature series of an asset over the part of a custody leg the series covers. The time a reading
represents is defined once, by ``held_ms``: a reading holds until its series' next record (whatever
that record's value), at most the allowed recording interval of the asset's mode (a longer silence is
missing evidence, not more of the reading before it); a series' last record holds nothing, and a NaN
reading (a dropout) holds no temperature. The trace's time-weighted MKT weights readings the same way
(``traceability.queries.HELD_S``).

Where several windows hold at once (two probes in one truck, two pallets of the lot on two trucks) the
warmest held reading counts: spoilage only grows with temperature, so this is the lot's worst case.
Spoilage is additive (DOMAIN.md): used = ∫ rate(T(t)) dt / reference life, with the class's model
(``rules.kernels.shelf_rates``, 1 at the reference temperature). Time inside the lot's custody legs
that no reading covers is counted as ``unevidenced_s`` and consumes nothing: the remaining life is what
the evidence shows, and the lot's verdict already says where evidence is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules import kernels
from rules.packs import ShelfLife

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

MS_PER_H = 3_600_000.0


@dataclass(frozen=True, slots=True)
class HeldWindow:
    """One temperature series of an asset over the part [lo_ms, hi_ms) of a custody leg it covers,
    with the allowed recording interval of the asset's mode (`cap_ms`)."""

    t_ms: IntArray
    v: FloatArray
    lo_ms: int
    hi_ms: int
    cap_ms: int


@dataclass(frozen=True, slots=True)
class LotShelfLife:
    """How much of its class's reference shelf life a lot has used, as of its last evidence."""

    model: str  # the class's model: 'arrhenius' | 'sqrt'
    ref_c: float
    ref_life_h: float
    used: float  # fraction of the reference life consumed (may exceed 1: past its life)
    remaining_h: float  # (1 − used) × reference life, at least 0: hours left at the reference temperature
    evidence_s: float  # time some reading held the lot's temperature
    unevidenced_s: float  # time inside the lot's custody legs no reading covers (consumes nothing)
    first_ms: int | None  # epoch ms: start of the first custody leg (None without any leg)
    as_of_ms: int | None  # epoch ms: end of the last held reading (None without evidence)

    @property
    def remaining(self) -> float:
        """Fraction of the reference life left (0 once used up)."""
        return max(0.0, 1.0 - self.used)


def held_ms(t_ms: IntArray, cap_ms: int) -> IntArray:
    """The time each record of one time-sorted series represents: until the next record, at most
    `cap_ms`; the last record holds nothing."""
    out = np.zeros(t_ms.shape[0], dtype=np.int64)
    if t_ms.shape[0] > 1:
        out[:-1] = np.minimum(np.diff(t_ms), cap_ms)
    return out


def _spans(w: HeldWindow) -> tuple[IntArray, IntArray, FloatArray]:
    """(start, end, temperature) of the readings of a window that hold some time inside it."""
    end = np.minimum(w.t_ms + held_ms(w.t_ms, w.cap_ms), w.hi_ms)
    keep = ~np.isnan(w.v) & (w.t_ms >= w.lo_ms) & (end > w.t_ms)
    return w.t_ms[keep], end[keep], w.v[keep]


def _union_ms(intervals: Sequence[tuple[int, int]]) -> int:
    total = 0
    cur_a = cur_b = None
    for a, b in sorted(intervals):
        if cur_b is None or a > cur_b:
            if cur_a is not None and cur_b is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_a is not None and cur_b is not None:
        total += cur_b - cur_a
    return total


def lot_shelf_life(
    model: ShelfLife, windows: Sequence[HeldWindow], legs: Sequence[tuple[int, int | None]]
) -> LotShelfLife:
    """The lot's shelf life under `model` from its held windows; `legs` are the lot's custody legs
    (start, end or None while open) in epoch ms, for the time no reading covers."""
    code = 0 if model.model == "arrhenius" else 1
    param = model.ea_kj_mol if code == 0 else model.t_min_c
    assert param is not None  # the pack validates: each model has its parameter
    spans = [s for s in (_spans(w) for w in windows) if s[0].shape[0]]
    bounds = np.unique(np.concatenate([np.concatenate((a, b)) for a, b, _ in spans])) if spans else None
    used_ms = 0.0  # reference-life milliseconds consumed
    evidence = 0
    as_of: int | None = None
    if bounds is not None and bounds.shape[0] > 1:
        lo, hi = bounds[:-1], bounds[1:]
        rate = np.full(lo.shape[0], -1.0)  # -1: no reading holds (every model's rate is >= 0)
        for a, b, v in spans:
            j = np.searchsorted(a, lo, side="right") - 1
            ok = j >= 0
            ok[ok] = b[j[ok]] > lo[ok]  # a series' spans never overlap: the one before covers or none
            r = kernels.shelf_rates(v, code, model.ref_c, float(param))
            rate[ok] = np.maximum(rate[ok], r[j[ok]])
        held = rate >= 0.0
        dt = (hi - lo).astype(np.float64)
        used_ms = float(np.sum(dt[held] * rate[held]))
        evidence = int(np.sum((hi - lo)[held]))
        as_of = int(hi[held][-1]) if held.any() else None
    first = min((a for a, _ in legs), default=None)
    end = as_of if as_of is not None else first
    covered = [(a, min(b if b is not None else end, end)) for a, b in legs] if end is not None else []
    in_legs = _union_ms([(a, b) for a, b in covered if b > a])
    used = used_ms / (model.ref_life_h * MS_PER_H)
    return LotShelfLife(
        model=model.model,
        ref_c=model.ref_c,
        ref_life_h=model.ref_life_h,
        used=used,
        remaining_h=max(0.0, 1.0 - used) * model.ref_life_h,
        evidence_s=evidence / 1000.0,
        unevidenced_s=max(0, in_legs - evidence) / 1000.0,
        first_ms=first,
        as_of_ms=as_of,
    )
