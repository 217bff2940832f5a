"""The evaluation stage: predictions, stratified metrics with confidence intervals, and the
metrics report format (`metrics.json` and its CSVs)."""

SPLITS = ("test", "val", "train", "all")
"""What an evaluation predicts: one part of a run's split, or all of its dataset. Here, at the
stage's door, so that the command line lists them without importing torch."""

DEFAULT_MIN_STRATUM = 100
"""Training molecules a size, element or size × element stratum needs not to be flagged rare
(`molstrata.evaluation.domain`); here for the command line's defaults, as SPLITS."""
