"""The evaluation stage: predictions, stratified metrics with confidence intervals, and the
metrics report format (`metrics.json` and its CSVs)."""

SPLITS = ("test", "val", "train", "all")
"""What an evaluation predicts: one part of a run's split, or all of its dataset. Here, at the
stage's door, so that the command line lists them without importing torch."""

DEFAULT_MIN_STRATUM = 100
"""Training molecules a size, element or size × element stratum needs not to be flagged rare
(`molstrata.evaluation.domain`); here for the command line's defaults, as SPLITS."""

DEFAULT_PREDICTED = "MACE_energy"
"""The predicted energy's key in another model's file (`evaluation.predictions_file`): where
MACE's mace_eval_configs writes it."""

DEFAULT_REFERENCES = ("REF_energy", "energy")
"""The reference energy's key there when none is given: the first the first structure has."""

DEFAULT_UNIT = "eV"
"""The unit of the energies there when none is given."""

OUT_SUFFIX = "-eval"
"""The evaluation of FILE goes by default to FILE's stem with this suffix, next to FILE."""
