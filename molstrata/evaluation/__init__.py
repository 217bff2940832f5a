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

CONVENTIONS = (
    ("MACE's mace_eval_configs", DEFAULT_PREDICTED, DEFAULT_REFERENCES,
     "MACE_forces", ("REF_forces", "forces")),
    ("NequIP's TestTimeXYZFileWriter", "energy", ("original_dataset_energy",),
     "forces", ("original_dataset_forces",)),
)
"""(writer, predicted energy, reference energies, predicted forces, reference forces): the
keys the peers' own evaluation writers leave in an extxyz file, tried in this order when no
key is given. MACE's mace/cli/eval_configs.py (ACEsuit/mace, read at commit 3fb10c15) writes
info["MACE_energy"] and arrays["MACE_forces"] beside the references the user trained with
(REF_energy and REF_forces in its docs). NequIP's nequip/train/callbacks TestTimeXYZFileWriter
(mir-group/nequip, 0.7 and later) writes the prediction through ase's calculator (energy=,
forces) and the dataset's values it is asked for as original_dataset_energy and
original_dataset_forces. SchNetPack's spkpredict writes predictions.pt instead, joined to the
structures (`--structures`); TorchMD-Net writes no file of predictions."""

DEFAULT_UNIT = "eV"
"""The unit of the energies there when none is given."""

OUT_SUFFIX = "-eval"
"""The evaluation of FILE goes by default to FILE's stem with this suffix, next to FILE."""
