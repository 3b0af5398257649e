"""Stage 2, verdicts: numba rule engine turning readings into excursions and chain breaks."""
