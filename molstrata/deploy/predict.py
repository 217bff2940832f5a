"""`molstrata predict`: one or more model files on structure files, to a CSV and an extxyz.

Every structure gets a row: its file and index, formula, size, the prediction (the mean over
the models, with their standard deviation when there are several), the reference and the error
where the file holds the target, and its domain-of-applicability flags (`domain`). A structure
with an element some model never saw is not predicted; its row says why. Everything is read
and predicted before anything is written, and both output files are written atomically
together, so a failure leaves no partial output.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import ase.io
import numpy as np
from tqdm.auto import tqdm

from molstrata._files import atomic_path
from molstrata.data.ase_io import UNITS_KEY, read_molecules, to_atoms
from molstrata.data.molecules import Molecules
from molstrata.deploy.domain import (
    DEFAULT_MIN_STRATUM,
    UNSEEN,
    Applicability,
    applicability,
    flags_text,
    size_range,
)
from molstrata.deploy.domain import summary_text as domain_summary
from molstrata.deploy.inference import (
    compiled,
    default_batch_size,
    ensemble_statistics,
    predict_molecules,
)
from molstrata.deploy.modelfile import ModelFile, load_model_file
from molstrata.errors import MolstrataError
from molstrata.tables import write_csv
from molstrata.training.distributed import resolve_device
from molstrata.units import error_unit, unit_key

MODEL_SUFFIXES = (".pt", ".pth")
"""What `molstrata predict` takes for a model file; every other path is a structure file."""


@dataclass(frozen=True, eq=False)
class StructureFile:
    """The structures of one input file; reference: (n,) the target in the model's unit, or
    None where the file does not hold it."""

    path: Path
    molecules: Molecules
    reference: np.ndarray | None
    reference_name: str | None


@dataclass(frozen=True, eq=False)
class Predictions:
    """Predictions of every structure of every file, in file order.

    predicted: (N,) mean over the models (NaN where not predicted); std: (N,) their sample
    standard deviation, None for one model; reference: (N,) NaN where a file lacks it.
    """

    models: list[ModelFile]
    files: list[StructureFile]
    predicted: np.ndarray
    std: np.ndarray | None
    reference: np.ndarray
    domain: Applicability
    min_stratum: int
    csv_path: Path
    extxyz_path: Path
    seconds: float

    @property
    def target(self) -> str:
        return self.models[0].target

    @property
    def unit(self) -> str:
        return self.models[0].unit

    def columns(self) -> dict[str, str]:
        """Output column names with their units: predicted, std, reference, error."""
        target, unit = self.target, unit_key(self.unit)
        return {"predicted": f"predicted_{target}_{unit}", "std": f"std_{target}_{unit}",
                "reference": f"reference_{target}_{unit}",
                "error": f"error_{unit_key(error_unit(self.unit)[1])}"}


def split_paths(paths: Sequence[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """(model files, structure files) of `molstrata predict`'s arguments, by suffix."""
    paths = [Path(p) for p in paths]
    for path in paths:
        if path.suffix.lower() == ".pt2":
            raise MolstrataError(f"{path} is a torch.export program (for use without "
                                 "molstrata); give predict the model file (.pt) it came from")
    models = [p for p in paths if p.suffix.lower() in MODEL_SUFFIXES]
    structures = [p for p in paths if p.suffix.lower() not in MODEL_SUFFIXES]
    if not models:
        raise MolstrataError("give at least one model file (.pt, made by `molstrata export`) "
                             "before the structure files")
    if not structures:
        raise MolstrataError("give at least one structure file to predict (extxyz, xyz, ASE .db)")
    return models, structures


def predict_files(
    models: Sequence[str | os.PathLike],
    files: Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    *,
    property_name: str | None = None,
    unit: str | None = None,
    min_stratum: int = DEFAULT_MIN_STRATUM,
    batch_size: int | None = None,
    device: str = "auto",
    dtype: str | None = None,
    compile_model: bool = False,
    progress: bool = True,
) -> Predictions:
    """Predict every structure of `files` with the model files `models` (several: an
    ensemble) and write OUT.csv and OUT.extxyz (see the module's docstring).

    property_name / unit: the target as the files hold it (e.g. 'energy', 'kcal/mol'), to
    report the reference and the error; by default the model's target, where a file declares
    it with its unit. out: the output path without suffix (default: FIRST_FILE_predictions in
    the current folder). batch_size: default 128 on a CPU, 2048 on a GPU. compile_model: run
    the models under torch.compile.
    """
    started = time.perf_counter()
    if batch_size is not None and batch_size < 1:
        raise MolstrataError(f"--batch-size must be at least 1, got {batch_size}")
    if unit is not None and property_name is None:
        raise MolstrataError("--unit needs --property: name the property the unit belongs to")
    if min_stratum < 0:
        raise MolstrataError(f"--min-stratum must be 0 or more, got {min_stratum}")
    files = [Path(f) for f in files]
    csv_path, extxyz_path = output_paths(out, files)
    target_device = resolve_device(device)
    batch_size = batch_size or default_batch_size(target_device)
    members = [load_model_file(path, target_device, dtype) for path in models]
    _check_ensemble(members)
    first = members[0]
    inputs = [read_structures(path, first, property_name, unit) for path in files]
    domain = Applicability.concatenate(
        [applicability(f.molecules, [m.training for m in members], min_stratum) for f in inputs])

    total = sum(len(f.molecules) for f in inputs)
    per_model = []
    with tqdm(total=total * len(members), unit="mol", desc="predicting",
              disable=not progress) as bar:
        for member in members:
            network = compiled(member.model) if compile_model else None
            values = np.full(total, np.nan)
            start = 0
            for f in inputs:
                rows = domain.predictable[start : start + len(f.molecules)]
                chosen = f.molecules if rows.all() else f.molecules.subset(rows)
                predicted = predict_molecules(member, chosen,
                                              batch_size=batch_size, model=network,
                                              on_progress=bar.update)
                values[start : start + len(f.molecules)][rows] = predicted
                bar.update(int((~rows).sum()))
                start += len(f.molecules)
            per_model.append(values)
    mean, std = ensemble_statistics(per_model)
    reference = np.concatenate([
        f.reference if f.reference is not None else np.full(len(f.molecules), np.nan)
        for f in inputs])
    result = Predictions(members, inputs, mean, std, reference, domain, min_stratum, csv_path,
                         extxyz_path, 0.0)
    _write(result)
    return replace(result, seconds=time.perf_counter() - started)


def output_paths(out: str | os.PathLike | None, inputs: Sequence[Path]) -> tuple[Path, Path]:
    """(CSV, extxyz) to write: OUT.csv and OUT.extxyz, refusing to overwrite an input."""
    if out is None:
        stem = Path(f"{inputs[0].stem}_predictions")
    else:
        stem = Path(out)
        if stem.suffix.lower() in (".csv", ".extxyz", ".xyz"):
            stem = stem.with_suffix("")
    csv_path = stem.with_name(stem.name + ".csv")
    extxyz_path = stem.with_name(stem.name + ".extxyz")
    for path in (csv_path, extxyz_path):
        if any(path.resolve() == given.resolve() for given in inputs):
            raise MolstrataError(f"the output {path} would overwrite an input file; choose "
                                 "another -o")
    return csv_path, extxyz_path


def read_structures(path: Path, model: ModelFile, property_name: str | None,
                    unit: str | None) -> StructureFile:
    """A structure file through the training reader (`read_molecules`), with the reference
    converted to the model's unit where the file holds the target."""
    molecules = read_molecules(path, {property_name: unit} if property_name else None)
    name = property_name or (model.target if model.target in molecules.properties else None)
    if name is None:
        return StructureFile(path, molecules, None, None)
    try:
        reference = np.asarray(molecules.property(name, model.unit), dtype=np.float64)
    except MolstrataError as error:
        raise MolstrataError(f"{path}: property {name!r} cannot be compared with the model's "
                             f"{model.target} ({error})") from None
    return StructureFile(path, molecules, reference, name)


def _check_ensemble(members: Sequence[ModelFile]) -> None:
    first = members[0]
    for other in members[1:]:
        if (other.target, other.unit, other.aggregation) != (first.target, first.unit,
                                                              first.aggregation):
            raise MolstrataError(
                f"model files {first.name} ({first.target} in {first.unit}) and {other.name} "
                f"({other.target} in {other.unit}) predict different targets; an ensemble "
                "needs one target"
            )


# ---- output files ------------------------------------------------------------------------


def _write(result: Predictions) -> None:
    """OUT.csv and OUT.extxyz, together: both are renamed into place only once both are
    complete."""
    header, rows = _table(result)
    with atomic_path(result.csv_path) as csv_tmp, atomic_path(result.extxyz_path) as xyz_tmp:
        write_csv(csv_tmp, header, rows)
        with open(xyz_tmp, "w", encoding="utf-8") as handle:
            for atoms in _frames(result):
                ase.io.write(handle, atoms, format="extxyz")


def _notes(result: Predictions) -> list[str]:
    """Per structure: why it was not predicted, or ''."""
    return ["" if ok else "not predicted: " + ", ".join(
        f"element {code.split(':', 1)[1]} never seen in training"
        for code in codes if code.startswith(UNSEEN))
        for ok, codes in zip(result.domain.predictable, result.domain.flags)]


def _table(result: Predictions) -> tuple[list[str], list[list]]:
    names = result.columns()
    has_reference = any(f.reference is not None for f in result.files)
    factor = error_unit(result.unit)[0]
    header = ["file", "index", "id", "formula", "n_atoms", names["predicted"]]
    header += [names["std"]] if result.std is not None else []
    header += [names["reference"], names["error"]] if has_reference else []
    header += ["in_domain", "flags", "note"]
    notes = _notes(result)
    rows, k = [], 0
    for f in result.files:
        formulas = f.molecules.formulas()
        for i in range(len(f.molecules)):
            row = [str(f.path), i, int(f.molecules.ids[i]), formulas[i],
                   int(f.molecules.sizes[i]), _number(result.predicted[k])]
            if result.std is not None:
                row.append(_number(result.std[k]))
            if has_reference:
                error = (result.predicted[k] - result.reference[k]) * factor
                row += [_number(result.reference[k]), _number(error)]
            codes = result.domain.flags[k]
            row += [not codes, flags_text(codes), notes[k]]
            rows.append(row)
            k += 1
    return header, rows


def _frames(result: Predictions):
    """The structures as ASE Atoms, with the predictions in their info."""
    names = result.columns()
    factor, err_unit = error_unit(result.unit)
    notes = _notes(result)
    k = 0
    for f in result.files:
        for i in range(len(f.molecules)):
            atoms = to_atoms(f.molecules, i)
            units = {}
            if np.isfinite(result.predicted[k]):
                atoms.info[names["predicted"]] = float(result.predicted[k])
                units[names["predicted"]] = result.unit
                if result.std is not None:
                    atoms.info[names["std"]] = float(result.std[k])
                    units[names["std"]] = result.unit
                if np.isfinite(result.reference[k]):
                    error = float(result.predicted[k] - result.reference[k]) * factor
                    atoms.info[names["error"]] = error
                    units[names["error"]] = err_unit
            codes = result.domain.flags[k]
            atoms.info["in_domain"] = not codes
            if codes:
                atoms.info["domain_flags"] = flags_text(codes)
            if notes[k]:
                atoms.info["not_predicted"] = notes[k]
            declared = atoms.info.get(UNITS_KEY, "")
            atoms.info[UNITS_KEY] = " ".join(
                [declared] * bool(declared) + [f"{n}={u}" for n, u in units.items()])
            if not atoms.info[UNITS_KEY]:
                del atoms.info[UNITS_KEY]
            yield atoms
            k += 1


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


# ---- the terminal summary ----------------------------------------------------------------


def summary_text(result: Predictions) -> str:
    """What `molstrata predict` prints: what was predicted, the domain flags, the error
    against the files' reference where they hold one, and where the output went."""
    n = len(result.predicted)
    done = int(np.isfinite(result.predicted).sum())
    models = (result.models[0].name if len(result.models) == 1
              else f"an ensemble of {len(result.models)} models (mean and standard deviation)")
    lines = [f"predicted {result.target} ({result.unit}) for {done:,} of {n:,} structures in "
             f"{len(result.files)} file{'s' * (len(result.files) > 1)} with {models}, "
             f"{result.seconds:.1f} s"]
    low = max(size_range(m.training)[0] for m in result.models)
    high = min(size_range(m.training)[1] for m in result.models)
    lines.append(domain_summary(result.domain, (low, high), result.min_stratum))
    missing = _not_predicted(result)
    if missing:
        lines.append(f"not predicted (element never seen in training): {missing}")
    lines.extend(_error_lines(result))
    lines.append(f"wrote {result.csv_path} and {result.extxyz_path}")
    return "\n".join(lines)


def _not_predicted(result: Predictions, shown: int = 10) -> str:
    """'a.xyz structures 3, 7 (Cl); b.xyz structure 0 (Br)', at most `shown` structures."""
    parts, k, listed = [], 0, 0
    for f in result.files:
        items = []
        for i in range(len(f.molecules)):
            if not result.domain.predictable[k] and listed < shown:
                elements = [c.split(":", 1)[1] for c in result.domain.flags[k]
                            if c.startswith(UNSEEN)]
                items.append(f"{i} ({' '.join(elements)})")
                listed += 1
            k += 1
        if items:
            parts.append(f"{f.path} structure{'s' * (len(items) > 1)} {', '.join(items)}")
    more = int((~result.domain.predictable).sum()) - listed
    return "; ".join(parts) + (f"; and {more:,} more" if more > 0 else "")


def _error_lines(result: Predictions) -> list[str]:
    """MAE against the reference, overall and for structures inside / outside the domain."""
    both = np.isfinite(result.reference) & np.isfinite(result.predicted)
    if not both.any():
        return []
    factor, unit = error_unit(result.unit)
    errors = np.abs(result.predicted - result.reference) * factor
    flagged = result.domain.flagged
    parts = [f"MAE against the files' reference: {errors[both].mean():.2f} {unit} over "
             f"{int(both.sum()):,} structures"]
    for label, mask in (("inside the domain", both & ~flagged), ("flagged", both & flagged)):
        if mask.any():
            parts.append(f"{label} {errors[mask].mean():.2f} {unit} ({int(mask.sum()):,})")
    return ["; ".join(parts)]
