"""`molstrata evaluate --predictions FILE`: the stratified errors of any model's energies.

A MACE, NequIP or SchNetPack user brings a file (or a list of ASE Atoms) whose structures carry
a reference and a predicted energy each, per structure; molstrata writes what `molstrata
evaluate RUN` writes for a run of its own (metrics.json, the CSVs per size / element / size x
element with intervals, predictions.csv, evaluation.json). Given the structures the model was
trained on (`train`), the training counts and shares, the domain flags and the tests of
hypotheses 1 and 2 come from them through the functions a run's evaluation uses; without
them these are left out, and the summary says so.

The keys default to the peers' own evaluation writers (`CONVENTIONS`). MACE's
`mace_eval_configs` (mace/cli/eval_configs.py of ACEsuit/mace, read at commit 3fb10c15)
writes the predicted energy to atoms.info["MACE_energy"] (its --info_prefix defaults to
"MACE_"), the forces to atoms.arrays["MACE_forces"], and sets atoms.calc = None before writing
extxyz, which drops a reference ASE had read from `energy=` into a calculator; references kept
in atoms.info (REF_energy, the --energy_key MACE's docs train with) survive. NequIP's
TestTimeXYZFileWriter writes its prediction as `energy=` (a calculator when read back) beside
original_dataset_energy. SchNetPack's spkpredict saves a dict of tensors (predictions.pt),
and any model's predictions can come as a CSV of id and value: both are joined to the
structures they predicted (`structures`), which hold the references.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from molstrata._files import atomic_write_text
from molstrata.data.ase_io import Reading, first_structure_keys, read_atoms, read_file
from molstrata.data.molecules import LABEL, Molecules, element_symbol
from molstrata.errors import MolstrataError, OptionError
from molstrata.evaluation import (
    CONVENTIONS,
    DEFAULT_MIN_STRATUM,
    DEFAULT_PREDICTED,
    DEFAULT_UNIT,
    OUT_SUFFIX,
)
from molstrata.evaluation.domain import applicability
from molstrata.evaluation.evaluate import EVALUATION_JSON, Evaluation, domain_document
from molstrata.evaluation.files import write_metrics
from molstrata.evaluation.forces import (
    ForceData,
    force_keys,
    force_metrics,
    force_summary_lines,
    read_forces,
    write_force_metrics,
)
from molstrata.evaluation.offsets import fit_reference_offset
from molstrata.evaluation.stratified import Predictions, TrainingCounts, stratified_metrics
from molstrata.tables import read_csv_rows
from molstrata.units import canonical_unit, convert, dimension, internal_unit

TARGET = "energy"
"""The name of what is evaluated: per-structure total energies."""

NO_TRAINING = ("no training set given: training shares, domain flags and the tests of "
               "hypotheses 1 and 2 (training share vs error) need the model's training file: "
               "give it with --train FILE (train= in Python)")

NO_FORCES = ("forces: not evaluated, the file holds no predicted and reference forces "
             "(name them with --predicted-forces KEY --reference-forces KEY)")

NO_TABLE_FORCES = ("forces: not evaluated, a table of predictions (CSV, predictions.pt) "
                   "holds energies only; give forces in an extxyz file or ASE database")

TABLES = (".csv", ".pt")
"""Suffixes of the tables of predictions joined to a structures file: a CSV of id and
predicted value, and SchNetPack's spkpredict output (predictions.pt)."""

REFERENCES = tuple(dict.fromkeys(r for _, _, references, *_ in CONVENTIONS for r in references))
"""Every convention's reference energy keys, in the order they are tried."""

SPK_INDEX = "_idx_m"
"""The key under which spkpredict (write_idx_m=True) saves each atom's structure index
(schnetpack.properties.idx_m)."""

Source = str | os.PathLike | Sequence[Atoms]


@dataclass(frozen=True)
class LoadedPredictions:
    """One model's energies on a file's structures, read and checked: `predictions` in eV
    (target "energy") in the order of `molecules`; `predicted`, `reference` and `unit` are
    the keys and the file unit read; `joined` names the structures file a table of
    predictions was joined to (None for one file holding both)."""

    name: str
    molecules: Molecules
    predictions: Predictions
    predicted: str
    reference: str
    unit: str
    skipped_periodic: tuple[int, ...] = ()
    joined: str | None = None
    forces: ForceData | None = None
    """The per-atom forces, where the file carries a predicted and a reference force each."""

    def document(self) -> dict:
        """What was read, for evaluation.json."""
        read = {"predicted": self.predicted, "reference": self.reference, "unit": self.unit}
        if self.forces is not None:
            read.update(predicted_forces=self.forces.predicted_key,
                        reference_forces=self.forces.reference_key)
        return read if self.joined is None else {**read, "structures": self.joined}


def load_predictions(
    source: Source,
    *,
    predicted: str | None = None,
    reference: str | None = None,
    unit: str = DEFAULT_UNIT,
    structures: str | os.PathLike | Sequence[Atoms] | None = None,
    skip_periodic: bool = False,
    predicted_forces: str | None = None,
    reference_forces: str | None = None,
    with_forces: bool = True,
    log: Callable[[str], None] = print,
) -> LoadedPredictions:
    """A model's per-structure energies and their references, checked, without writing.

    Without `structures`, `source` is an ASE-readable file (or a list of Atoms) whose
    structures carry both: `predicted` and `reference`, by default the keys of the first of
    `CONVENTIONS` (MACE's, NequIP's) the file follows. With `structures` (the file
    the model predicted, holding the references), `source` is a table of predictions joined
    to it (`_joined`): a CSV with an `id` column, or SchNetPack's spkpredict output
    (predictions.pt).

    Forces are read too, unless `with_forces` is False (a second pass over the file), where
    the file carries `predicted_forces` and `reference_forces` (default: the keys of the
    first of `CONVENTIONS` the first structure has; none there, energies only), per atom in
    `unit` per Å (`molstrata.evaluation.forces`)."""
    name = _name(source)
    file_unit = _energy_unit(unit)
    if structures is not None:
        if predicted_forces is not None or reference_forces is not None:
            raise MolstrataError(
                "forces are read from a structure file that holds both, not from a table of "
                "predictions joined to --structures; drop --predicted-forces and "
                "--reference-forces, or give one file with both forces")
        return _joined(source, structures, predicted, reference, file_unit, skip_periodic, log)
    if isinstance(source, str | os.PathLike) and Path(source).suffix.lower() in TABLES:
        raise MolstrataError(
            f"{name} is a table of predictions without structures; give the structures it "
            "predicted, holding the reference energies, with --structures FILE (structures= "
            "in Python)")
    keys = first_structure_keys(source)
    predicted, reference = energy_keys(predicted, reference, keys, name)
    for role, key in (("predicted", predicted), ("reference", reference)):
        _check_key(role, key, keys, name)
    _check_distinct(predicted, reference)
    properties = {reference: file_unit, predicted: file_unit}
    reading = _read(source, properties, skip_periodic, name, log)
    molecules = reading.molecules
    unit_in = internal_unit(file_unit)
    true, guess = molecules.property(reference, unit_in), molecules.property(predicted, unit_in)
    for role, key, values in (("predicted", predicted, guess), ("reference", reference, true)):
        _check_finite(role, key, values, molecules, name)
    forces = None
    if with_forces and (pair := force_keys(source, predicted_forces, reference_forces,
                                           keys=keys)) is not None:
        forces = read_forces(source, *pair, unit=file_unit, skip_periodic=skip_periodic)
        forces.check_matches(molecules)
    return LoadedPredictions(name, molecules,
                             Predictions.from_molecules(molecules, true, guess, unit_in, TARGET),
                             predicted, reference, file_unit, reading.skipped_periodic,
                             forces=forces)


def evaluate_predictions(
    source: Source,
    *,
    predicted: str | None = None,
    reference: str | None = None,
    unit: str = DEFAULT_UNIT,
    structures: str | os.PathLike | Sequence[Atoms] | None = None,
    out_dir: str | os.PathLike | None = None,
    all_sizes: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
    skip_periodic: bool = False,
    train: Source | None = None,
    min_stratum: int = DEFAULT_MIN_STRATUM,
    predicted_forces: str | None = None,
    reference_forces: str | None = None,
    log: Callable[[str], None] = print,
) -> Evaluation:
    """Stratified errors of the `predicted` energies against the `reference` ones (see
    `load_predictions`, which also reads a CSV or SchNetPack's predictions.pt joined to
    `structures`), both per-structure totals in `unit` (default eV); written to `out_dir`
    (default: FILE's stem + "-eval", next to FILE; needed for a list). Every check is made
    before the first file is written. skip_periodic leaves periodic structures out (said
    through `log`) instead of refusing them, in `train` as well.

    train: the structures the model was trained on (a file or a list of Atoms; only their
    atoms are read). With it, each stratum gets its training count and share, the hypotheses
    1 and 2 are tested, and every structure gets the domain flags of `evaluate --dataset`
    (rare below `min_stratum` training molecules); a structure holding an element no training
    structure has is kept, since the model did predict it, and flagged unseen_element."""
    started = time.perf_counter()
    if min_stratum < 0:
        raise OptionError("min_stratum", f"must be 0 or more, got {min_stratum}")
    loaded = load_predictions(source, predicted=predicted, reference=reference, unit=unit,
                              structures=structures, skip_periodic=skip_periodic,
                              predicted_forces=predicted_forces,
                              reference_forces=reference_forces, log=log)
    training = (None if train is None
                else training_counts(train, skip_periodic, log))
    out = output_folder(source, out_dir)
    molecules, predictions = loaded.molecules, loaded.predictions
    report = stratified_metrics(predictions, training, all_sizes=all_sizes, seed=seed,
                                n_bootstrap=n_bootstrap)
    domain = (None if training is None
              else applicability(molecules, report.training, min_stratum))
    symbols = [element_symbol(z) for z in np.asarray(molecules.elements)]
    offset = fit_reference_offset(molecules.composition, symbols, predictions.true,
                                  predictions.predicted, predictions.unit)
    forces = (None if loaded.forces is None else
              force_metrics(molecules, loaded.forces.predicted, loaded.forces.reference,
                            n_bootstrap=n_bootstrap, seed=seed, forces=loaded.forces))
    files = write_metrics(report, predictions, out, molecules.annotations.get(LABEL))
    if forces is not None:
        files += write_force_metrics(forces, out)
    seconds = time.perf_counter() - started
    summary = {"evaluated": loaded.name, "predictions": loaded.document(),
               "n_molecules": len(molecules), "evaluation_seconds": seconds,
               "training": NO_TRAINING if train is None else _training_name(train)}
    if loaded.skipped_periodic:
        summary["left_out_periodic"] = list(loaded.skipped_periodic)
    if offset is not None:
        summary["reference_offset"] = offset.document()
    if domain is not None:
        summary["domain"] = domain_document(domain, report, min_stratum)
    no_forces = NO_FORCES if loaded.joined is None else NO_TABLE_FORCES
    summary["forces"] = no_forces if forces is None else forces.document()
    atomic_write_text(out / EVALUATION_JSON, json.dumps(summary, indent=2) + "\n")
    notes = (*(force_summary_lines(forces) if forces is not None else [no_forces]),
             *((NO_TRAINING,) if train is None else ()))
    return Evaluation(report, predictions, molecules, out, files + [out / EVALUATION_JSON],
                      seconds, domain=domain, min_stratum=min_stratum, offset=offset,
                      notes=notes, predicted_elsewhere=True, forces=forces)


def _read(source: Source, properties: dict[str, str], skip_periodic: bool, name: str,
          log: Callable[[str], None]) -> Reading:
    reading = (read_file(source, properties, skip_periodic=skip_periodic)
               if isinstance(source, str | os.PathLike)
               else read_atoms(source, properties, skip_periodic=skip_periodic))
    for line in reading.messages(name):
        log(line)
    return reading


def _check_distinct(predicted: str, reference: str) -> None:
    if predicted == reference:
        raise MolstrataError(f"the predicted and reference energies are both {predicted!r}; "
                             "name the other with --reference KEY (reference= in Python)")


# ---- a table of predictions joined to the structures it predicted ---------------------------


def _joined(source: Source, structures: str | os.PathLike | Sequence[Atoms],
            predicted: str | None, reference: str | None, file_unit: str,
            skip_periodic: bool, log: Callable[[str], None]) -> LoadedPredictions:
    """`load_predictions` of a CSV or a predictions.pt joined to `structures`."""
    name, where = _name(source), _name(structures)
    if not isinstance(source, str | os.PathLike) or Path(source).suffix.lower() not in TABLES:
        raise MolstrataError(
            f"with --structures, the predictions are a table: a CSV (an id column and one of "
            f"predicted values) or SchNetPack's predictions.pt, not {name}; without a table, "
            "drop --structures (structures= in Python)")
    keys = first_structure_keys(structures)
    reference = _reference_key(reference, keys, where)
    _check_key("reference", reference, keys, where)
    reading = _read(structures, {reference: file_unit}, skip_periodic, where, log)
    molecules = reading.molecules
    if Path(source).suffix.lower() == ".csv":
        predicted, rows, values = _csv_predictions(Path(source), predicted, molecules, reference)
    else:
        predicted, rows, values = _spk_predictions(Path(source), predicted, molecules,
                                                   reading.skipped_periodic)
    molecules = molecules.subset(rows)
    unit_in = internal_unit(file_unit)
    true = molecules.property(reference, unit_in)
    guess = convert(values, file_unit, unit_in)
    _check_finite("predicted", predicted, guess, molecules, name)
    _check_finite("reference", reference, true, molecules, where)
    return LoadedPredictions(name, molecules,
                             Predictions.from_molecules(molecules, true, guess, unit_in, TARGET),
                             predicted, reference, file_unit, reading.skipped_periodic,
                             joined=where)


def _csv_predictions(path: Path, predicted: str | None, molecules: Molecules,
                     reference: str) -> tuple[str, np.ndarray, np.ndarray]:
    """(column, rows of `molecules`, values): a CSV's predicted values, joined to the
    structures by its `id` column (the structures' identifiers: their molstrata_id, id or
    name, else their 0-based position in the file)."""
    table = read_csv_rows(path, "give a CSV with a header row: id and a predicted value")
    header = list(table[0]) if table else []
    if "id" not in header:
        raise MolstrataError(
            f"{path} has no id column (its columns: {', '.join(header) or 'none'}); give each "
            "row the id of its structure (molstrata_id, id or name in the structures file, "
            "else its 0-based position) in a column named id")
    others = [c for c in header if c != "id"]
    if predicted is None:
        if len(others) != 1:
            raise MolstrataError(
                f"{path} has {len(others)} columns besides id ({', '.join(others) or 'none'}); "
                "name the predicted one with --predicted COLUMN (predicted= in Python)")
        predicted = others[0]
    if predicted not in others:
        raise MolstrataError(
            f"{path} has no column {predicted!r} (its columns: {', '.join(header)}); name the "
            "predicted one with --predicted COLUMN (predicted= in Python)")
    position = {str(identifier): row for row, identifier in enumerate(molecules.identifiers())}
    rows, values, seen = [], [], {}
    for line, record in enumerate(table, start=2):
        key = (record["id"] or "").strip()
        if key in seen:
            raise MolstrataError(f"{path} gives id {key!r} twice (lines {seen[key]} and {line});"
                                 " give each structure one prediction")
        seen[key] = line
        if key not in position:
            raise MolstrataError(
                f"id {key!r} on line {line} of {path} is not a structure of the structures "
                "file (its ids: molstrata_id, id or name, else the 0-based position); give "
                "the structures the predictions were made for")
        try:
            values.append(float(record[predicted]))
        except (TypeError, ValueError):
            raise MolstrataError(f"{predicted} on line {line} of {path} is "
                                 f"{record[predicted]!r}, not a number; fix that row") from None
        rows.append(position[key])
    if not rows:
        raise MolstrataError(f"{path} holds no predictions; give one row per structure")
    return predicted, np.asarray(rows), np.asarray(values, dtype=np.float64)


def _spk_predictions(path: Path, predicted: str | None, molecules: Molecules,
                     skipped: tuple[int, ...]) -> tuple[str, np.ndarray, np.ndarray]:
    """(key, rows of `molecules`, values): SchNetPack 2's spkpredict output, the dict of
    tensors its PredictionWriter saves with torch.save (read with weights_only=True, so no
    code in it runs): one value per structure under the property's name, in the order of
    the structures file (spkpredict does not shuffle), or placed by `idx_m` (one dataset
    index per atom, written with write_idx_m=True: the structure's 0-based row)."""
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same fix
        raise MolstrataError(f"cannot read {path} as SchNetPack's predictions.pt "
                             f"({type(error).__name__}); give spkpredict's output, or a CSV "
                             "of id and predicted value") from None
    if not isinstance(saved, dict):
        raise MolstrataError(f"{path} holds a {type(saved).__name__}, not spkpredict's dict "
                             "of predicted properties; give spkpredict's predictions.pt")
    index = saved.get(SPK_INDEX)
    n_structures = None if index is None else int(torch.unique(index).numel())
    per_structure = {k: v for k, v in saved.items() if k != SPK_INDEX
                     and isinstance(v, torch.Tensor) and v.ndim == 1}
    if predicted is None:
        if len(per_structure) != 1:
            raise MolstrataError(
                f"{path} holds {', '.join(saved) or 'nothing'}; name the predicted energy "
                "with --predicted KEY (predicted= in Python)")
        predicted = next(iter(per_structure))
    if predicted not in saved:
        raise MolstrataError(f"{path} has no {predicted!r} (it holds {', '.join(saved)}); name "
                             "the predicted energy with --predicted KEY (predicted= in Python)")
    values = saved[predicted].detach().to(torch.float64).numpy().reshape(-1)
    if index is None:
        if len(values) != len(molecules) or skipped:
            raise MolstrataError(
                f"{path} holds {len(values)} predictions for {len(molecules)} structures "
                f"{'read' if not skipped else 'kept'}; without idx_m they are matched in "
                "order: predict the same file, or write idx_m (spkpredict write_idx_m=True)")
        return predicted, np.arange(len(values)), values
    first = np.unique(index.numpy(), return_index=True)
    order = np.argsort(first[1])
    rows = first[0][order]
    if len(values) != n_structures:
        raise MolstrataError(f"{path} holds {len(values)} values of {predicted} for "
                             f"{n_structures} structures in idx_m; give spkpredict's output")
    if skipped or rows.max(initial=-1) >= len(molecules):
        raise MolstrataError(f"idx_m of {path} reaches row {int(rows.max())} of a structures "
                             f"file of {len(molecules)} structures kept; give the file it "
                             "predicted, without skipping any")
    return predicted, rows, values


def training_counts(train: Source, skip_periodic: bool,
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


def energy_keys(predicted: str | None, reference: str | None, keys: dict[str, str],
                name: str) -> tuple[str, str]:
    """(predicted, reference): the keys given, else those of the first of `CONVENTIONS` whose
    predicted energy and one of whose references the first structure carries as numbers;
    with only `predicted` given, the reference is the first of any convention's present."""
    number = {key for key, kind in keys.items() if kind == "number"}
    if predicted is None:
        for _, energy, references, *_ in CONVENTIONS:
            found = [r for r in references if r in number]
            if energy in number and (reference is not None or found):
                return energy, reference if reference is not None else found[0]
        if DEFAULT_PREDICTED in keys or reference is not None:
            return DEFAULT_PREDICTED, _reference_key(reference, keys, name)
        writers = "; ".join(f"{writer}: {energy} beside {' or '.join(references)}"
                            for writer, energy, references, *_ in CONVENTIONS)
        raise MolstrataError(
            f"{name} holds no predicted energy where the peers write it ({writers}); its first "
            f"structure has {_listed(keys)}: name the predicted energy with --predicted KEY "
            "(predicted= in Python)")
    if reference is None:
        candidates = [r for _, _, references, *_ in CONVENTIONS for r in references
                      if r in number and r != predicted]
        reference = candidates[0] if candidates else _reference_key(None, keys, name)
    return predicted, reference


def _reference_key(given: str | None, keys: dict[str, str], name: str) -> str:
    """The reference energy's key: the one given, else the first of REFERENCES the first
    structure carries as a number."""
    if given is not None:
        return given
    found = [key for key in REFERENCES if keys.get(key) == "number"]
    if not found:
        raise MolstrataError(
            f"{name} has no reference energy under {', '.join(REFERENCES)} (its first "
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
