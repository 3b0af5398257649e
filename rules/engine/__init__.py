"""Stage 2 (verdicts): the pure rule engine: checked kernel wrappers, profile evaluation, break rules.

No I/O here: arrays and a class's rules in, typed results out. `checked` validates inputs for the
kernels, `catalog` defines each rule once (id, kind, verdict, severity, reason text), `breaks` holds
the break predicates and chain-breaking runs, `profile` applies a whole class to one series.

The names below are imported from their modules on first use (PEP 562): those modules load numba and
the kernels (over a second), and the package also holds pure modules that other stages import alone
(the ledger's import steps read `flow`'s step names), which then load none of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rules.engine.breaks import (
        band_breaks,
        band_runs,
        calibration_lapse_ms,
        cumulative_breaks,
        device_accuracy,
        humidity_runs,
        past_calibration,
    )
    from rules.engine.checked import (
        MAX_ACCURACY_C,
        Excursion,
        Gap,
        RangeLimits,
        check_accuracy,
        check_series,
        find_excursions,
        find_excursions_multi,
        find_gaps,
        find_gaps_multi,
        find_gaps_tight,
        warm_up,
    )
    from rules.engine.profile import (
        Breach,
        Evaluation,
        MktPrefix,
        evaluate_series,
        mkt_at_end,
        momentary_clear,
    )

__all__ = [
    "MAX_ACCURACY_C",
    "Breach",
    "Evaluation",
    "Excursion",
    "Gap",
    "MktPrefix",
    "RangeLimits",
    "band_breaks",
    "band_runs",
    "calibration_lapse_ms",
    "check_accuracy",
    "check_series",
    "cumulative_breaks",
    "device_accuracy",
    "evaluate_series",
    "find_excursions",
    "find_excursions_multi",
    "find_gaps",
    "find_gaps_multi",
    "find_gaps_tight",
    "humidity_runs",
    "mkt_at_end",
    "momentary_clear",
    "past_calibration",
    "warm_up",
]
# The modules the names of ``__all__`` come from (those of the imports above).
_HOMES = ("rules.engine.breaks", "rules.engine.checked", "rules.engine.profile")


def __getattr__(name: str) -> object:
    """A name of ``__all__``, imported from its module (then kept here); AttributeError for any other."""
    if name in __all__:
        for home in _HOMES:
            module = importlib.import_module(home)
            if hasattr(module, name):
                value: object = getattr(module, name)
                globals()[name] = value
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
