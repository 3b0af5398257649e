"""Stage 3, scorecards: the regulator's quarterly data-quality and compliance ratios per subject."""
