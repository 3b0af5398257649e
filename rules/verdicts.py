"""Stage 2 (verdicts): the verdict literals and the one roll-up of verdicts (standard library only).

A verdict, most severe first: ``broken`` (the cold chain is broken: a gap, a break beyond an
allowance, no evidence), ``excursion`` (a counted excursion), ``indeterminate`` (a reading within
the device accuracy of a limit, a sensor fault, no evidence yet), ``pass``. Everything that combines
verdicts (a series, a lot, a report) rolls them up here; the trace may import this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

Verdict = Literal["pass", "indeterminate", "excursion", "broken"]

# What a reader shows for a lot the rules stage has not judged yet (no custody leg has been evaluated).
NOT_JUDGED: Final = "not judged yet: no custody leg of this lot has been evaluated by the rules stage"

VERDICTS: Final[tuple[Verdict, ...]] = ("pass", "indeterminate", "excursion", "broken")  # mildest first
_RANK: Final[dict[str, int]] = {v: i for i, v in enumerate(VERDICTS)}


def worst(a: Verdict, b: Verdict) -> Verdict:
    """The more severe of two verdicts (broken > excursion > indeterminate > pass)."""
    return a if _RANK[a] >= _RANK[b] else b


def roll_up(items: Iterable[Verdict], *, empty: Verdict = "pass") -> Verdict:
    """The verdict of a whole from the verdicts of its items: the most severe of them; `empty` when
    there is none (a series with no evidence against it passes; a lot with no custody leg is
    indeterminate)."""
    out: Verdict | None = None
    for v in items:
        out = v if out is None else worst(out, v)
    return empty if out is None else out
