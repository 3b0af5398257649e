"""Stage 2 (verdicts): the pure rule engine: checked kernel wrappers, profile evaluation, break rules.

No I/O here: arrays and a class's rules in, typed results out. `checked` validates inputs for the
kernels, `catalog` defines each rule once (id, kind, verdict, severity, reason text), `breaks` holds
the break predicates and chain-breaking runs, `profile` applies a whole class to one series.
"""

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
