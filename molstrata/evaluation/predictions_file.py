"""`molstrata evaluate --predictions FILE`: the stratified errors of any model's energies.

A MACE, NequIP or SchNetPack user brings a file (or a list of ASE Atoms) whose structures carry
a reference and a predicted energy each, per structure; molstrata writes what `molstrata
evaluate RUN` writes for a run of its own (metrics.json, the CSVs per size / element / size x
element with intervals, predictions.csv, evaluation.json). Given the structures the model was
trained on (`train`), the training counts and shares, the domain flags and the tests of
hypotheses 1 and 2 come from them through the functions a run's evaluation uses; without
them these are left out, and the summary says so.

The defaults follow MACE's `mace_eval_configs` (mace/cli/eval_configs.py of ACEsuit/mace, read
at commit 3fb10c15): it writes the predicted energy to atoms.info["MACE_energy"] (its
--info_prefix defaults to "MACE_"), the forces to atoms.arrays["MACE_forces"], and sets
atoms.calc = None before writing extxyz, which drops a reference ASE had read from `energy=`
into a calculator; references kept in atoms.info (REF_energy, the --energy_key MACE's docs
train with) survive. So the reference is REF_energy where the first structure has it, else
energy (from info or a calculator: files written otherwise).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from molstrata._files import atomic_write_text
from molstrata.data.ase_io import first_structure_keys, read_atoms, read_file
from molstrata.data.molecules import LABEL, Molecules, element_symbol
from molstrata.errors import MolstrataError, OptionError
from molstrata.evaluation import (
    DEFAULT_MIN_STRATUM,
    DEFAULT_PREDICTED,
    DEFAULT_REFERENCES,
    DEFAULT_UNIT,
    OUT_SUFFIX,
)
from molstrata.evaluation.domain import applicability
from molstrata.evaluation.evaluate import EVALUATION_JSON, Evaluation, domain_document
from molstrata.evaluation.files import write_metrics
from molstrata.evaluation.offsets import fit_reference_offset
from molstrata.evaluation.stratified import Predictions, TrainingCounts, stratified_metrics
from molstrata.units import canonical_unit, dimension, internal_unit

TARGET = "energy"
"""The name of what is evaluated: per-structure total energies."""

NO_TRAINING = ("no training set given: training shares, domain flags and the tests of "
               "hypotheses 1 and 2 (training share vs error) need the model's training file: "
               "give it with --train FILE (train= in Python)")

Source = str | os.PathLike | Sequence[Atoms]


def evaluate_predictions(
    source: Source,
    *,
    predicted: str = DEFAULT_PREDICTED,
    reference: str | None = None,
    unit: str = DEFAULT_UNIT,
    out_dir: str | os.PathLike | None = None,
    all_sizes: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
    skip_periodic: bool = False,
    train: Source | None = None,
    min_stratum: int = DEFAULT_MIN_STRATUM,
    log: Callable[[str], None] = print,
) -> Evaluation:
    """Stratified errors of the `predicted` energies against the `reference` ones (default:
    `DEFAULT_REFERENCES`), both per-structure totals in `unit` (default eV), of the structures
    of an ASE-readable file or a list of Atoms; written to `out_dir` (default: FILE's stem +
    "-eval", next to FILE; needed for a list). Every check is made before the first file is
    written. skip_periodic leaves periodic structures out (said through `log`) instead of
    refusing them, in `train` as well.

    train: the structures the model was trained on (a file or a list of Atoms; only their
    atoms are read). With it, each stratum gets its training count and share, the hypotheses
    1 and 2 are tested, and every structure gets the domain flags of `evaluate --dataset`
    (rare below `min_stratum` training molecules); a structure holding an element no training
    structure has is kept, since the model did predict it, and flagged unseen_element."""
    started = time.perf_counter()
    name = _name(source)
    file_unit = _energy_unit(unit)
    keys = first_structure_keys(source)
    reference = _reference_key(reference, keys, name)
    for role, key in (("predicted", predicted), ("reference", reference)):
        _check_key(role, key, keys, name)
    if predicted == reference:
        raise MolstrataError(f"the predicted and reference energies are both {predicted!r}; "
                             "name the other with --reference KEY (reference= in Python)")
    if min_stratum < 0:
        raise OptionError("min_stratum", f"must be 0 or more, got {min_stratum}")
    training = (None if train is None
                else _training_counts(train, skip_periodic, log))
    out = output_folder(source, out_dir)
    properties = {reference: file_unit, predicted: file_unit}
    reading = (read_file(source, properties, skip_periodic=skip_periodic)
               if isinstance(source, str | os.PathLike)
               else read_atoms(source, properties, skip_periodic=skip_periodic))
    for line in reading.messages(name):
        log(line)
    molecules = reading.molecules
    unit_in = internal_unit(file_unit)
    true, guess = molecules.property(reference, unit_in), molecules.property(predicted, unit_in)
    for role, key, values in (("predicted", predicted, guess), ("reference", reference, true)):
        _check_finite(role, key, values, molecules, name)
    predictions = Predictions.from_molecules(molecules, true, guess, unit_in, TARGET)
    report = stratified_metrics(predictions, training, all_sizes=all_sizes, seed=seed,
                                n_bootstrap=n_bootstrap)
    domain = (None if training is None
              else applicability(molecules, report.training, min_stratum))
    symbols = [element_symbol(z) for z in np.asarray(molecules.elements)]
    offset = fit_reference_offset(molecules.composition, symbols, true, guess, unit_in)
    files = write_metrics(report, predictions, out, molecules.annotations.get(LABEL))
    seconds = time.perf_counter() - started
    summary = {"evaluated": name, "predictions": {"predicted": predicted,
                                                  "reference": reference, "unit": file_unit},
               "n_molecules": len(molecules), "evaluation_seconds": seconds,
               "training": NO_TRAINING if train is None else _training_name(train)}
    if reading.skipped_periodic:
        summary["left_out_periodic"] = list(reading.skipped_periodic)
    if offset is not None:
        summary["reference_offset"] = offset.document()
    if domain is not None:
        summary["domain"] = domain_document(domain, report, min_stratum)
    atomic_write_text(out / EVALUATION_JSON, json.dumps(summary, indent=2) + "\n")
    return Evaluation(report, predictions, molecules, out, files + [out / EVALUATION_JSON],
                      seconds, domain=domain, min_stratum=min_stratum, offset=offset,
                      notes=(NO_TRAINING,) if train is None else (), predicted_elsewhere=True)


def _training_counts(train: Source, skip_periodic: bool,
                     log: Callable[[str], None]) -> TrainingCounts:
    """The strata counts of the model's training structures (their atoms only)."""
    name = _training_name(train)
    if isinstance(train, str | os.PathLike):
        reading = read_file(train, {}, skip_periodic=skip_periodic)
    else:
        frames = list(train)
        reading = read_atoms(frames, {}, skip_periodic=skip_periodic) if frames else None
    if reading is not None:
        for line in reading.messages(name):
            log(line)
    if reading is None or len(reading.molecules) == 0:
        raise MolstrataError(f"the training structures ({name}) hold no molecule; give "
                             "--train FILE (train= in Python) with the structures the model "
                             "was trained on")
    return TrainingCounts.from_molecules(reading.molecules)


def _name(source: Source) -> str:
    return os.fspath(source) if isinstance(source, str | os.PathLike) else "the atoms list"


def _training_name(train: Source) -> str:
    return os.fspath(train) if isinstance(train, str | os.PathLike) else "the training atoms"


def _energy_unit(unit: str) -> str:
    """The canonical spelling of an energy unit, or the refusal of any other."""
    canonical = canonical_unit(unit)
    if dimension(canonical) != "energy":
        raise MolstrataError(
            f"--unit {unit} is a unit of {dimension(canonical).replace('_', ' ')}; evaluate "
            "--predictions takes per-structure energies only: give an energy unit (eV, meV, "
            "Hartree, kcal/mol, kJ/mol)")
    return canonical


def _reference_key(given: str | None, keys: dict[str, str], name: str) -> str:
    """The reference energy's key: the one given, else the first of DEFAULT_REFERENCES the
    first structure carries as a number."""
    if given is not None:
        return given
    found = [key for key in DEFAULT_REFERENCES if keys.get(key) == "number"]
    if not found:
        raise MolstrataError(
            f"{name} has no reference energy under {' or '.join(DEFAULT_REFERENCES)} (its first "
            f"structure has {_listed(keys)}); name it with --reference KEY (reference= in "
            "Python)")
    return found[0]


def _check_key(role: str, key: str, keys: dict[str, str], name: str) -> None:
    """Refuse a key the first structure lacks, or holds something else than one number under
    (forces, per-atom energies, a stress)."""
    option = "--predicted" if role == "predicted" else "--reference"
    if key not in keys:
        raise MolstrataError(
            f"{name} has no {role} energy {key!r} (its first structure has {_listed(keys)}); "
            f"name it with {option} KEY ({role}= in Python)")
    kind = keys[key]
    if kind == "number" and "per_atom" not in key.lower():
        return
    what = {"per-atom": "one value per atom", "other": "no single number",
            "number": "an energy per atom, by its name"}[kind]
    raise MolstrataError(
        f"{role} key {key!r} of {name} holds {what}; evaluate --predictions takes "
        f"per-structure total energies only: name one with {option} KEY (numbers there: "
        f"{_listed(keys, 'number')})")


def _listed(keys: dict[str, str], kind: str | None = None) -> str:
    names = [k for k, v in keys.items() if kind is None or v == kind]
    return ", ".join(names) if names else "none"


def _check_finite(role: str, key: str, values: np.ndarray, molecules: Molecules,
                  name: str) -> None:
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        ids = np.asarray(molecules.identifiers(), dtype=object)[bad][:5].tolist()
        raise MolstrataError(
            f"{len(bad)} {role} energies {key!r} of {name} are NaN or infinite (structures "
            f"{', '.join(map(str, ids))}); fix or remove those structures")


def output_folder(source: Source, out_dir: str | os.PathLike | None = None) -> Path:
    """Where the evaluation of `source` goes: `out_dir`, else FILE's stem + OUT_SUFFIX next
    to FILE; a list of Atoms needs `out_dir`."""
    if out_dir is not None:
        return Path(out_dir)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        return path.with_name(path.stem + OUT_SUFFIX)
    raise MolstrataError("predictions given as a list of Atoms need an output folder: "
                         "give out=DIR")
