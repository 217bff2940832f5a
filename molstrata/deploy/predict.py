"""`molstrata predict`: one or more model files on structure files, to a CSV and an extxyz.

Every structure gets a row: its file and index, formula, size, the prediction (the mean over
the models, with their standard deviation when there are several), the reference and the error
where the file holds the target, and its domain-of-applicability flags
(`molstrata.evaluation.domain`). A structure with an element some model never saw, or a
periodic one, is not predicted; its row says why. Where a file's references look like energies
on another zero (`molstrata.evaluation.offsets`), the summary says so and the CSV adds the
offset-corrected error. The extxyz gives every structure back with what the file held (per-atom
arrays, cell) and the prediction in its info. Everything is read and predicted before anything
is written, and both output files are written atomically together, so a failure leaves no
partial output.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import ase.io
import numpy as np

from molstrata._files import atomic_path
from molstrata.data.ase_io import UNITS_KEY
from molstrata.data.molecules import element_symbol
from molstrata.deploy.inference import (
    compiled,
    default_batch_size,
    ensemble_statistics,
    predict_molecules,
)
from molstrata.deploy.modelfile import ModelFile, load_model_file
from molstrata.deploy.structures import StructureFile, read_structures
from molstrata.errors import MolstrataError, OptionError
from molstrata.evaluation.domain import (
    DEFAULT_MIN_STRATUM,
    PERIODIC,
    UNSEEN,
    Applicability,
    applicability,
    flags_text,
    size_range,
)
from molstrata.evaluation.domain import summary_text as domain_summary
from molstrata.evaluation.offsets import ReferenceOffset, fit_reference_offset
from molstrata.progress import progress_bar
from molstrata.tables import write_csv
from molstrata.training.distributed import resolve_device
from molstrata.units import error_unit, unit_key
from molstrata.wording import counted

MODEL_SUFFIXES = (".pt", ".pth")
"""What `molstrata predict` takes for a model file; every other path is a structure file."""


@dataclass(frozen=True, eq=False)
class Predictions:
    """Predictions of every structure of every file, in file order.

    predicted: (N,) mean over the models (NaN where not predicted); std: (N,) their sample
    standard deviation, None for one model; reference: (N,) NaN where a file lacks it.
    offsets: per file, the per-element offset of its references from the predictions (None
    where it cannot be fitted: no reference, too few structures, not an energy summed over
    atoms); only a `detected` one is reported.
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
    offsets: list[ReferenceOffset | None]

    @property
    def target(self) -> str:
        return self.models[0].target

    @property
    def unit(self) -> str:
        return self.models[0].unit

    def columns(self) -> dict[str, str]:
        """Output column names with their units: predicted, std, reference, error."""
        target, unit = self.target, unit_key(self.unit)
        err = unit_key(error_unit(self.unit)[1])
        return {"predicted": f"predicted_{target}_{unit}", "std": f"std_{target}_{unit}",
                "reference": f"reference_{target}_{unit}", "error": f"error_{err}",
                "offset": f"offset_{target}_{unit}",
                "corrected": f"offset_corrected_error_{err}"}

    def detected_offsets(self) -> list[tuple[StructureFile, ReferenceOffset]]:
        """The files whose references look like energies on another zero, with their fit."""
        return [(f, o) for f, o in zip(self.files, self.offsets) if o is not None and o.detected]

    def offset_column(self) -> np.ndarray:
        """(N,) the fitted offset of each structure (target unit), NaN outside the files
        whose offset is detected."""
        return np.concatenate([
            o.offsets if o is not None and o.detected else np.full(len(f), np.nan)
            for f, o in zip(self.files, self.offsets)]) if self.files else np.zeros(0)


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
    it with its unit (a unit alone is that of the model's target). out: the output path
    without suffix (default: FIRST_FILE_predictions in the current folder). batch_size:
    default 128 on a CPU, 2048 on a GPU. compile_model: run the models under torch.compile.
    """
    started = time.perf_counter()
    if batch_size is not None and batch_size < 1:
        raise OptionError("batch_size", f"must be at least 1, got {batch_size}")
    if min_stratum < 0:
        raise OptionError("min_stratum", f"must be 0 or more, got {min_stratum}")
    files = [Path(f) for f in files]
    csv_path, extxyz_path = output_paths(out, files)
    target_device = resolve_device(device)
    batch_size = batch_size or default_batch_size(target_device)
    members = [load_model_file(path, target_device, dtype) for path in models]
    _check_ensemble(members)
    first = members[0]
    if unit is not None and property_name is None:
        property_name = first.target
    inputs = [read_structures(path, first.target, first.unit, property_name, unit)
              for path in files]
    domain = Applicability.concatenate([
        applicability(f.molecules, [m.training for m in members], min_stratum)
        .with_periodic(f.periodic) for f in inputs])

    total = sum(len(f) for f in inputs)
    per_model = []
    with progress_bar(total=total * len(members), show=progress, unit="mol",
                      desc="predicting") as bar:
        for member in members:
            network = compiled(member.model) if compile_model else None
            values = np.full(total, np.nan)
            start = 0
            for f in inputs:
                rows = domain.predictable[start : start + len(f)]
                chosen = rows[f.molecule_rows]  # the predictable molecules
                molecules = f.molecules if chosen.all() else f.molecules.subset(chosen)
                predicted = predict_molecules(member, molecules,
                                              batch_size=batch_size, model=network,
                                              on_progress=bar.update)
                values[start : start + len(f)][rows] = predicted
                bar.update(int((~rows).sum()))
                start += len(f)
            per_model.append(values)
    mean, std = ensemble_statistics(per_model)
    reference = np.concatenate([
        f.reference if f.reference is not None else np.full(len(f), np.nan) for f in inputs])
    offsets = _offsets(inputs, mean, first)
    result = Predictions(members, inputs, mean, std, reference, domain, min_stratum, csv_path,
                         extxyz_path, 0.0, offsets)
    _write(result)
    return replace(result, seconds=time.perf_counter() - started)


def _offsets(inputs: Sequence[StructureFile], predicted: np.ndarray,
             model: ModelFile) -> list[ReferenceOffset | None]:
    """Per file, the per-element offset of its references from the predictions (for a model
    of an energy summed over atoms; None elsewhere)."""
    out, start = [], 0
    for f in inputs:
        stop = start + len(f)
        if f.reference is None or model.aggregation != "sum":
            out.append(None)
        else:
            composition = np.zeros((len(f), len(f.molecules.elements)), dtype=np.int64)
            composition[f.molecule_rows] = f.molecules.composition
            symbols = [element_symbol(z) for z in f.molecules.elements]
            out.append(fit_reference_offset(composition, symbols, f.reference,
                                            predicted[start:stop], model.unit))
        start = stop
    return out


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
                                 "another output path")
    return csv_path, extxyz_path


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
    return [not_predicted_note(codes) for codes in result.domain.flags]


def not_predicted_note(codes: Sequence[str]) -> str:
    """Why a structure with these domain flags is not predicted, or '' when it is: the note
    column of predict's CSV and of `molstrata.Model.predict`'s records."""
    reasons = _reasons(codes)
    return "not predicted: " + ", ".join(reasons) if reasons else ""


def _reasons(codes: Sequence[str]) -> list[str]:
    reasons = ["periodic structure (the models know molecules only)"] * (PERIODIC in codes)
    return reasons + [f"element {code.split(':', 1)[1]} never seen in training"
                      for code in codes if code.startswith(UNSEEN)]


def _table(result: Predictions) -> tuple[list[str], list[list]]:
    names = result.columns()
    has_reference = any(f.reference is not None for f in result.files)
    has_offset = bool(result.detected_offsets())
    factor = error_unit(result.unit)[0]
    header = ["file", "index", "id", "formula", "n_atoms", names["predicted"]]
    header += [names["std"]] if result.std is not None else []
    header += [names["reference"], names["error"]] if has_reference else []
    header += [names["offset"], names["corrected"]] if has_offset else []
    header += ["in_domain", "flags", "note"]
    notes = _notes(result)
    offset = result.offset_column()
    rows, k = [], 0
    for f in result.files:
        for i, (id_, formula, size) in enumerate(zip(f.ids(), f.formulas(), f.sizes())):
            row = [str(f.path), i, id_, formula, int(size), _number(result.predicted[k])]
            if result.std is not None:
                row.append(_number(result.std[k]))
            error = result.predicted[k] - result.reference[k]
            if has_reference:
                row += [_number(result.reference[k]), _number(error * factor)]
            if has_offset:
                row += [_number(offset[k]), _number((error + offset[k]) * factor)]
            codes = result.domain.flags[k]
            row += [not codes, flags_text(codes), notes[k]]
            rows.append(row)
            k += 1
    return header, rows


def _frames(result: Predictions):
    """The structures as ASE Atoms (with what their file held), the predictions in their
    info, their units declared."""
    names = result.columns()
    factor, err_unit = error_unit(result.unit)
    notes = _notes(result)
    offset = result.offset_column()
    k = 0
    for f in result.files:
        for atoms in f.atoms():
            units = {}
            if np.isfinite(result.predicted[k]):
                atoms.info[names["predicted"]] = float(result.predicted[k])
                units[names["predicted"]] = result.unit
                if result.std is not None:
                    atoms.info[names["std"]] = float(result.std[k])
                    units[names["std"]] = result.unit
                if np.isfinite(result.reference[k]):
                    error = float(result.predicted[k] - result.reference[k])
                    atoms.info[names["error"]] = error * factor
                    units[names["error"]] = err_unit
                    if np.isfinite(offset[k]):
                        atoms.info[names["corrected"]] = (error + offset[k]) * factor
                        units[names["corrected"]] = err_unit
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
    """What `molstrata predict` prints: what was predicted, the domain flags, what was not
    predicted and why, the error against the files' reference where they hold one (with the
    hint of `molstrata.evaluation.offsets` where it applies), and where the output went."""
    n = len(result.predicted)
    done = int(np.isfinite(result.predicted).sum())
    models = (result.models[0].name if len(result.models) == 1
              else f"an ensemble of {len(result.models)} models (mean and standard deviation)")
    lines = [f"predicted {result.target} ({result.unit}) for {done:,} of "
             f"{counted(n, 'structure')} in {counted(len(result.files), 'file')} with {models}, "
             f"{result.seconds:.1f} s"]
    training_range = size_range([m.training for m in result.models])
    lines.append(domain_summary(result.domain, training_range, result.min_stratum))
    groups, start = [], 0
    for f in result.files:
        groups.append((str(f.path), result.domain.flags[start : start + len(f)]))
        start += len(f)
    lines.extend(not_predicted_lines(groups))
    for f in result.files:
        lines.extend(f.notes)
    lines.extend(_unit_notices(result))
    lines.extend(_error_lines(result))
    for f, offset in result.detected_offsets():
        lines.append(offset.hint(result.target, f"the references in {f.path}"))
        lines.append(f"{f.path}: {offset.mae_line()}; column "
                     f"{result.columns()['corrected']} of {result.csv_path.name}")
    lines.append(f"wrote {result.csv_path} and {result.extxyz_path}")
    return "\n".join(lines)


def not_predicted_lines(groups: Sequence[tuple[str, Sequence[Sequence[str]]]]) -> list[str]:
    """The summary's lines on the structures not predicted and why. groups: (a file's name,
    or '' for structures given in Python; the domain flags of its structures)."""
    lines = []
    periodic = _listed(groups, lambda codes: PERIODIC in codes, lambda codes: "")
    if periodic:
        lines.append(f"not predicted (periodic: the models know molecules only): {periodic}")
    unseen = _listed(groups, lambda codes: any(c.startswith(UNSEEN) for c in codes),
                     lambda codes: " (" + " ".join(c.split(":", 1)[1] for c in codes
                                                   if c.startswith(UNSEEN)) + ")")
    if unseen:
        lines.append(f"not predicted (element never seen in training): {unseen}")
    return lines


def _listed(groups: Sequence[tuple[str, Sequence[Sequence[str]]]], chosen, detail,
            shown: int = 10) -> str:
    """'a.xyz structures 3, 7 (Cl); b.xyz structure 0 (Br)': the structures whose codes are
    `chosen`, each with its `detail`, at most `shown` of them."""
    parts, listed, total = [], 0, 0
    for name, flags in groups:
        items = []
        for i, codes in enumerate(flags):
            if chosen(codes):
                total += 1
                if listed < shown:
                    items.append(f"{i}{detail(codes)}")
                    listed += 1
        if items:
            where = f"{name} " if name else ""
            parts.append(f"{where}structure{'s' * (len(items) > 1)} {', '.join(items)}")
    more = total - listed
    return "; ".join(parts) + (f"; and {more:,} more" if more > 0 else "")


def _unit_notices(result: Predictions) -> list[str]:
    """A line for each file that holds the target (or an energy) with no unit: without one it
    gets no reference and no error columns, and how to give it."""
    lines = []
    for f in result.files:
        if f.reference is not None:
            continue
        if result.target in f.undeclared:
            held, option = result.target, "--unit UNIT (Python: unit='UNIT')"
        elif "energy" in f.undeclared:
            held = "energy"
            option = ("--property energy --unit UNIT, if it is the model's "
                      f"{result.target} (Python: property_name='energy', unit='UNIT')")
        else:
            continue
        lines.append(f"no reference or error for {f.path}: it holds {held} but declares no "
                     f"unit for it; to compare the predictions with it, give its unit: "
                     f"{option}")
    return lines


def _error_lines(result: Predictions) -> list[str]:
    """MAE against the reference, overall and for structures inside / outside the domain."""
    both = np.isfinite(result.reference) & np.isfinite(result.predicted)
    if not both.any():
        return []
    factor, unit = error_unit(result.unit)
    errors = np.abs(result.predicted - result.reference) * factor
    flagged = result.domain.flagged
    parts = [f"MAE against the files' reference: {errors[both].mean():.2f} {unit} over "
             f"{counted(int(both.sum()), 'structure')}"]
    for label, mask in (("inside the domain", both & ~flagged), ("flagged", both & flagged)):
        if mask.any():
            parts.append(f"{label} {errors[mask].mean():.2f} {unit} ({int(mask.sum()):,})")
    return ["; ".join(parts)]
