"""Stage 2 (verdicts): a shipper's per-shipment alarm profile applied to a series (pure, no I/O).

Each reading carries the profile version in force for its asset at its device time (or none). Consecutive
readings under one version form a span; within a span the profile's band is judged with the class's own
judging rules (inclusive bounds, minimum duration, hysteresis: the profile tightens the limits, not how
they are judged), and the profile's recording interval between consecutive readings of the span. A run
or a gap never crosses from one version (or shipment) to another: each span is judged by its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.engine.checked import find_excursions, find_gaps
from rules.packs import ClassRules

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    """One version of a shipment's profile: the shipper's band (a None side: the class's alone), its
    recording interval, and the specification it cites."""

    shipment_id: str
    version: int
    low_c: float | None
    high_c: float | None
    max_gap_s: float | None
    source: str

    @property
    def cited(self) -> tuple[str, int, str]:
        return (self.shipment_id, self.version, self.source)


@dataclass(frozen=True, slots=True)
class Finding:
    """A run outside a profile's band ('range') or a gap beyond its interval ('gap'), as index bounds."""

    kind: str
    spec: ProfileSpec
    start_idx: int
    end_idx: int
    open: bool
    peak_c: float | None
    readings: int


def spans(specs: list[ProfileSpec | None]) -> list[tuple[int, int, ProfileSpec]]:
    """Maximal index ranges [i, j] of consecutive readings under the same profile version."""
    out: list[tuple[int, int, ProfileSpec]] = []
    i = 0
    n = len(specs)
    while i < n:
        spec = specs[i]
        j = i
        while j + 1 < n and specs[j + 1] == spec:
            j += 1
        if spec is not None:
            out.append((i, j, spec))
        i = j + 1
    return out


def range_runs(
    t_ms: IntArray, v: FloatArray, specs: list[ProfileSpec | None], rules: ClassRules, *, live: bool
) -> list[Finding]:
    """Runs of readings outside the band of the profile in force; `live`: the readings reach the latest
    one, so a run reaching their end is still open."""
    out: list[Finding] = []
    n = t_ms.shape[0]
    for i, j, spec in spans(specs):
        if spec.low_c is None and spec.high_c is None:
            continue
        for exc in find_excursions(
            t_ms[i : j + 1],
            v[i : j + 1],
            low_c=spec.low_c,
            high_c=spec.high_c,
            low_inclusive=rules.low_inclusive,
            high_inclusive=rules.high_inclusive,
            min_duration_ms=rules.min_duration.seconds * 1000,
            hysteresis_c=rules.hysteresis_c,
        ):
            still = live and exc.reaches_end and j == n - 1
            out.append(
                Finding("range", spec, i + exc.start_idx, i + exc.end_idx, still, exc.peak_c, exc.readings)
            )
    return out


def gap_runs(t_ms: IntArray, v: FloatArray, specs: list[ProfileSpec | None]) -> list[Finding]:
    """Consecutive readings of a span further apart than its profile's recording interval."""
    out: list[Finding] = []
    for i, j, spec in spans(specs):
        if spec.max_gap_s is None:
            continue
        for gap in find_gaps(t_ms[i : j + 1], v[i : j + 1], max_gap_ms=int(spec.max_gap_s * 1000)):
            out.append(Finding("gap", spec, i + gap.start_idx, i + gap.end_idx, False, None, gap.readings))
    return out
