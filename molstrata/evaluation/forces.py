"""Per-atom force errors of another model's file, stratified by the atom's element and by the
size of its molecule, with intervals from a bootstrap over molecules.

The forces of one molecule's atoms share the molecule's geometry and the model's mistakes on
it, so they are not independent draws: an interval that resamples atoms claims a precision the
data do not have. Every interval here resamples MOLECULES and takes all their atoms (a cluster
bootstrap), through `bootstrap.percentile_bootstrap`, each stratum from its own stream
(`stratified.stratum_rng`) as the energies' strata are; a stratum of fewer than
`metrics.MIN_INTERVAL_COUNT` molecules gets its figures and no interval.

Figures, over force COMPONENTS (x, y, z of every atom): MAE and RMSE; per atom: the mean norm
of the error vector |F_predicted - F_reference|. Forces are held in eV/Å and reported in
meV/Å. The defaults follow MACE's mace_eval_configs, which writes the predicted forces to
atoms.arrays["MACE_forces"]; the reference is REF_forces where the first structure has it,
else forces (arrays, a db row's data, or a calculator: ASE's extxyz reader puts a `forces`
column on a SinglePointCalculator).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from molstrata.data.ase_io import (
    Frame,
    _calc_results,
    _check_molecule,
    _db_frames,
    _existing_file,
    _file_frames,
    _periodic_error,
    first_structure_keys,
    is_database,
    periodic_kind,
)
from molstrata.data.molecules import Molecules, element_symbol
from molstrata.data.strata import stratum_label
from molstrata.errors import MolstrataError
from molstrata.evaluation import CONVENTIONS
from molstrata.evaluation.bootstrap import percentile_bootstrap
from molstrata.evaluation.metrics import MIN_INTERVAL_COUNT, ci_key
from molstrata.evaluation.stratified import ALL, ELEMENT, SIZE, stratum_rng
from molstrata.tables import column_formatter, write_csv
from molstrata.units import canonical_unit, conversion_factor, dimension, unit_key
from molstrata.wording import counted

DEFAULT_PREDICTED_FORCES = "MACE_forces"
"""Where MACE's mace_eval_configs writes the predicted forces (atoms.arrays)."""

DEFAULT_REFERENCE_FORCES = ("REF_forces", "forces")
"""The reference forces' key when none is given: the first the first structure carries."""

FORCE_CONVENTIONS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (forces, references) for *_, forces, references in CONVENTIONS)
"""(predicted key, reference keys) pairs `force_keys` tries when no key is named: the peers'
evaluation writers' (`molstrata.evaluation.CONVENTIONS`: MACE's, then NequIP's)."""

FORCE_UNIT = "eV/Angstrom"
"""The unit forces are held in; errors are reported in REPORT_UNIT (x 1000)."""
REPORT_UNIT = "meV/Angstrom"
REPORT_FACTOR = 1000.0
UNIT_KEY = unit_key(REPORT_UNIT)
"""The report unit as column names spell it: 'meV_per_Angstrom'."""

CSV_FILES = {ELEMENT: "forces_by_element.csv", SIZE: "forces_by_size.csv"}

CI_METHOD = ("percentile bootstrap over the molecules of each stratum (a drawn molecule "
             "brings all its atoms of the stratum)")

METRICS = ("mae", "rmse", "mean_norm_error")
"""The figures of a stratum, in the order of the CSV columns."""

Source = str | os.PathLike | Sequence[Atoms]


# ---- reading -----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ForceData:
    """The forces of the structures read, atoms in the order `read_file` / `read_atoms` pack
    them (the same structures, so `Molecules.numbers` lines up with `numbers`).

    predicted, reference: (n_atoms_total, 3) float64 in eV/Å. numbers: (n_atoms_total,)
    atomic numbers, to check the alignment (`check_matches`). predicted_key, reference_key:
    the keys read; unit: the unit the file's forces were in (canonical, e.g. 'kcal/mol/Angstrom');
    skipped_periodic: the file ids of the periodic structures left out."""

    predicted: np.ndarray
    reference: np.ndarray
    numbers: np.ndarray
    predicted_key: str
    reference_key: str
    unit: str
    skipped_periodic: tuple[int, ...] = ()

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    def check_matches(self, molecules: Molecules) -> None:
        """Raise ValueError unless `molecules` holds these atoms in this order (a programming
        error: both must be read from one source with one skip_periodic)."""
        if not np.array_equal(np.asarray(molecules.numbers, np.int64), self.numbers):
            raise ValueError(f"the forces' {self.n_atoms} atoms are not the molecules' "
                             f"{molecules.n_atoms_total} atoms in the same order")


def force_keys(source: Source, predicted: str | None = None, reference: str | None = None,
               *, conventions: Sequence[tuple[str, Sequence[str]]] = FORCE_CONVENTIONS,
               keys: dict[str, str] | None = None) -> tuple[str, str] | None:
    """(predicted key, reference key) of the forces the first structure carries, or None where
    no key was named and no convention's pair is there: then forces are not evaluated.

    conventions: (predicted key, reference keys) pairs tried in order when no key is named;
    the first whose predicted key and one of whose reference keys the first structure has
    gives both. A key named but missing, or named for one side when no key of the other side
    is found, is refused. keys: `first_structure_keys(source)`, where the caller has read
    them already."""
    keys = first_structure_keys(source) if keys is None else keys
    name = _name(source)
    if predicted is None and reference is None:
        for guess, references in conventions:
            found = [key for key in references if key in keys and key != guess]
            if guess in keys and found:
                return guess, found[0]
        return None
    predicteds = [guess for guess, _ in conventions]
    references = [key for _, refs in conventions for key in refs]
    predicted_key = predicted or next((k for k in predicteds if k in keys), None)
    reference_key = reference or next(
        (k for k in references if k in keys and k != predicted_key), None)
    for role, key, options in (("predicted", predicted_key, predicteds),
                               ("reference", reference_key, references)):
        if key is None or key not in keys:
            wanted = repr(key) if key is not None else " or ".join(dict.fromkeys(options))
            raise MolstrataError(
                f"{name} has no {role} forces {wanted} (its first structure has per-atom "
                f"{_listed(keys, 'per-atom')}); name them with --{role}-forces KEY "
                f"({role}_forces= in Python), or name no force keys to evaluate energies only")
    if predicted_key == reference_key:
        raise MolstrataError(f"the predicted and reference forces are both {predicted_key!r}; "
                             "name the other with --reference-forces KEY "
                             "(reference_forces= in Python)")
    return predicted_key, reference_key


def force_unit(unit: str) -> tuple[str, float]:
    """(canonical name, factor to eV/Å) of a force unit: an energy per length ('eV/Angstrom',
    'Hartree/Bohr', 'kcal/mol/A'), or an energy unit alone, which is taken per Å ('kcal/mol' is
    kcal/mol/Å): molstrata.units has no force dimension, and a file's forces are usually in
    its energies' unit per Å."""
    head, _, tail = unit.rpartition("/")
    length = None
    if head:
        try:
            length = canonical_unit(tail)
        except MolstrataError:
            length = None
    if length is None or dimension(length) != "length":
        head, length = unit, "Angstrom"
    energy = canonical_unit(head)
    if dimension(energy) != "energy":
        raise MolstrataError(
            f"force unit {unit!r} is not an energy per length; give e.g. eV/Angstrom, "
            "Hartree/Bohr, kcal/mol/Angstrom, or an energy unit (taken per Angstrom)")
    factor = conversion_factor(energy, "eV") / conversion_factor(length, "Angstrom")
    return f"{energy}/{length}", factor


def read_forces(source: Source, predicted_key: str, reference_key: str, unit: str = "eV",
                skip_periodic: bool = False) -> ForceData:
    """The predicted and reference forces of every structure of a file (extxyz, xyz, ASE .db)
    or a list of Atoms, in eV/Å, in the order and with the skipping of periodic structures of
    `ase_io.read_file` / `read_atoms` (refused without skip_periodic, as there).

    unit: the forces' unit in the file (`force_unit`: an energy per length, or an energy unit
    taken per Å, e.g. the file's energy unit). A key is looked up in atoms.arrays, then a db
    row's data and key_value_pairs, then the calculator's results. Refused, naming the
    structure: a key it lacks, forces not shaped (n_atoms, 3), NaN or infinite forces."""
    canonical, factor = force_unit(unit)
    name = _name(source)
    predicted, reference, numbers = [], [], []
    periodic: list[tuple[int, str]] = []
    n_structures = 0
    for file_id, atoms, extra in _frames(source):
        n_structures += 1
        kind = periodic_kind(atoms.pbc)
        if kind is not None:
            periodic.append((file_id, kind))
            continue
        if periodic and not skip_periodic:
            continue  # the file is refused once all are counted
        _check_molecule(atoms, file_id, name)
        sources = (atoms.arrays, *extra, _calc_results(atoms))
        predicted.append(_forces(predicted_key, "predicted", reference_key, atoms, file_id,
                                 sources, name))
        reference.append(_forces(reference_key, "reference", predicted_key, atoms, file_id,
                                 sources, name))
        numbers.append(np.asarray(atoms.numbers, np.int64))
    if n_structures == 0:
        raise MolstrataError(f"{name} holds no structures; give a file with molecules in it")
    if periodic and not skip_periodic:
        raise _periodic_error(periodic, n_structures, name)
    if not numbers:
        raise MolstrataError(f"{name} holds only periodic structures ({n_structures}); "
                             "molstrata handles molecules only: give a file with non-periodic "
                             "structures")
    return ForceData(np.concatenate(predicted) * factor, np.concatenate(reference) * factor,
                     np.concatenate(numbers), predicted_key, reference_key, canonical,
                     tuple(i for i, _ in periodic))


def _frames(source: Source) -> Iterator[Frame]:
    """The structures of a file or list, as ase_io reads them (file ids, db data)."""
    if isinstance(source, str | os.PathLike):
        path = _existing_file(source)
        return _db_frames(path, ":")[0] if is_database(path) else _file_frames(path, ":")
    return ((i, atoms, ()) for i, atoms in enumerate(source))


def _forces(key: str, role: str, other: str, atoms: Atoms, file_id: int,
            sources: tuple[Any, ...], name: str) -> np.ndarray:
    """One structure's (n_atoms, 3) forces under `key`, or the refusal naming the structure."""
    value = next((src[key] for src in sources if key in src), None)
    where = f"structure {file_id} of {name}"
    if value is None:
        have = sorted({str(k) for src in sources for k in src} - {"numbers", "positions"})
        other_too = "" if any(other in src for src in sources) else f" nor {other!r}"
        raise MolstrataError(
            f"{where} has no {role} forces {key!r}{other_too} (it has: "
            f"{', '.join(have) or 'nothing'}); give every structure both force keys, or "
            "remove that structure")
    try:
        forces = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        forces = None
    if forces is None or forces.shape != (len(atoms), 3):
        shown = "not numbers" if forces is None else f"shape {forces.shape}"
        raise MolstrataError(
            f"{role} forces {key!r} of {where} are {shown}, not ({len(atoms)}, 3) for its "
            f"{counted(len(atoms), 'atom')}; give one 3-vector per atom under {key!r}")
    if not np.all(np.isfinite(forces)):
        bad = int(np.sum(~np.isfinite(forces).all(axis=1)))
        raise MolstrataError(
            f"{role} forces {key!r} of {where} are NaN or infinite on "
            f"{counted(bad, 'atom')}; fix or remove that structure")
    return forces


def _name(source: Source) -> str:
    return os.fspath(source) if isinstance(source, str | os.PathLike) else "the atoms list"


def _listed(keys: dict[str, str], kind: str) -> str:
    names = [k for k, v in keys.items() if v == kind]
    return ", ".join(names) if names else "none"


# ---- metrics -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ForceStratum:
    """Force errors of one stratum's atoms, in eV/Å: MAE and RMSE over components, the mean
    norm of the error vector per atom; each `*_ci` a (low, high) interval at the report's
    confidence, None for a stratum of fewer than `MIN_INTERVAL_COUNT` molecules."""

    kind: str
    key: int | str | None
    label: str
    n_molecules: int
    n_atoms: int
    mae: float
    rmse: float
    mean_norm_error: float
    mae_ci: tuple[float, float] | None
    rmse_ci: tuple[float, float] | None
    mean_norm_error_ci: tuple[float, float] | None

    def report_row(self, confidence: float) -> dict[str, float | None]:
        """Column name -> value in meV/Å, with the interval ends (None where there is none):
        'mae_meV_per_Angstrom', 'mae_ci95_low_meV_per_Angstrom', ..."""
        ci = ci_key(confidence)
        row: dict[str, float | None] = {}
        for metric in METRICS:
            interval = getattr(self, f"{metric}_ci")
            low, high = (None, None) if interval is None else interval
            row[f"{metric}_{UNIT_KEY}"] = getattr(self, metric) * REPORT_FACTOR
            row[f"{metric}_{ci}_low_{UNIT_KEY}"] = None if low is None else low * REPORT_FACTOR
            row[f"{metric}_{ci}_high_{UNIT_KEY}"] = None if high is None else high * REPORT_FACTOR
        return row


@dataclass(frozen=True)
class ForceReport:
    """Force errors overall, per element of the atom (atomic-number order) and per size of its
    molecule (ascending); `worst` the stratum of each kind with the largest MAE among those
    with an interval (among all where none has one)."""

    overall: ForceStratum
    elements: list[ForceStratum]
    sizes: list[ForceStratum]
    n_molecules: int
    n_atoms: int
    seed: int
    n_bootstrap: int
    confidence: float
    predicted_key: str | None = None
    reference_key: str | None = None
    file_unit: str | None = None

    @property
    def worst(self) -> dict[str, ForceStratum]:
        return {kind: _worst(strata) for kind, strata in ((ELEMENT, self.elements),
                                                          (SIZE, self.sizes)) if strata}

    def document(self) -> dict[str, Any]:
        """The forces' entry of evaluation.json: keys and units, counts, settings, the overall
        figures and the worst stratum of each kind (meV/Å; intervals [low, high] or null)."""
        def figures(s: ForceStratum) -> dict[str, Any]:
            out: dict[str, Any] = {"label": s.label, "n_molecules": s.n_molecules,
                                   "n_atoms": s.n_atoms}
            ci = ci_key(self.confidence)
            for metric in METRICS:
                interval = getattr(s, f"{metric}_ci")
                out[f"{metric}_{UNIT_KEY}"] = getattr(s, metric) * REPORT_FACTOR
                out[f"{metric}_{ci}_{UNIT_KEY}"] = (
                    None if interval is None else [v * REPORT_FACTOR for v in interval])
            return out

        return {
            "predicted": self.predicted_key,
            "reference": self.reference_key,
            "file_unit": self.file_unit,
            "unit": REPORT_UNIT,
            "errors": "over force components (MAE, RMSE); mean_norm_error: mean over atoms of "
                      "|F_predicted - F_reference|",
            "n_molecules": self.n_molecules,
            "n_atoms": self.n_atoms,
            "settings": {"seed": self.seed, "n_bootstrap": self.n_bootstrap,
                         "confidence": self.confidence, "ci_method": CI_METHOD,
                         "min_interval_count": MIN_INTERVAL_COUNT},
            "global": figures(self.overall),
            "worst": {kind: {kind: s.key, **figures(s)}
                      for kind, s in self.worst.items()},
            "files": list(CSV_FILES.values()),
        }


def force_metrics(
    molecules: Molecules,
    predicted: np.ndarray,
    reference: np.ndarray,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    forces: ForceData | None = None,
) -> ForceReport:
    """Force errors of `molecules`' atoms overall, per element and per molecule size.

    predicted, reference: (n_atoms_total, 3) in eV/Å, atoms in `molecules`' order. forces: the
    ForceData they came from, to name its keys and unit in the report (optional). Each
    stratum's interval resamples its molecules (all their atoms of the stratum come along)
    from `stratum_rng(seed, kind, key)`; the per-molecule sums are made once, so a resample
    costs one gather per molecule, not per atom."""
    predicted = np.asarray(predicted, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    shape = (molecules.n_atoms_total, 3)
    if predicted.shape != shape or reference.shape != shape:
        raise ValueError(f"forces must be {shape} for these molecules, got {predicted.shape} "
                         f"and {reference.shape}")
    if len(molecules) == 0:
        raise MolstrataError("no molecules to evaluate forces on; give at least one")
    if n_bootstrap < 1:
        raise MolstrataError(f"n_bootstrap must be at least 1, got {n_bootstrap}; 1000 is usual")
    if not 0.0 < confidence < 1.0:
        raise MolstrataError(f"confidence must be between 0 and 1, got {confidence}; e.g. 0.95")
    if seed < 0:
        raise MolstrataError(f"seed must be 0 or more, got {seed}")
    if not (np.all(np.isfinite(predicted)) and np.all(np.isfinite(reference))):
        raise MolstrataError("some forces are NaN or infinite; read them with read_forces, "
                             "which names the structure")
    error = predicted - reference
    squared = (error**2).sum(axis=1)
    per_atom = np.stack([np.abs(error).sum(axis=1), squared, np.sqrt(squared),
                         np.ones(len(error))], axis=1)  # (n_atoms, 4): |e|, e², |e_vec|, 1
    elements = np.asarray(molecules.elements)
    column = np.searchsorted(elements, molecules.numbers)
    n_el = len(elements)
    cell = molecules.atom_molecule * n_el + column
    # (n_molecules, n_elements, 4): each molecule's sums over its atoms of each element
    by_element = np.stack([np.bincount(cell, weights=per_atom[:, k],
                                       minlength=len(molecules) * n_el) for k in range(4)],
                          axis=1).reshape(len(molecules), n_el, 4)
    by_molecule = by_element.sum(axis=1)

    def measure(kind: str, key: int | str | None, sums: np.ndarray) -> ForceStratum:
        sums = sums[sums[:, 3] > 0]
        figures = _ratios(sums[None])[0]
        intervals: list[tuple[float, float] | None] = [None] * len(METRICS)
        if len(sums) >= MIN_INTERVAL_COUNT:
            low, high = percentile_bootstrap(list(sums.T), _stacked_ratios,
                                             stratum_rng(seed, kind, key),
                                             n_bootstrap=n_bootstrap, confidence=confidence)
            intervals = [(float(lo), float(hi)) for lo, hi in zip(low, high)]
        label = ("all atoms" if kind == ALL else f"{key} atoms" if kind == ELEMENT
                 else f"molecules of {stratum_label(key)}")
        return ForceStratum(kind, key, label, len(sums), int(sums[:, 3].sum()),
                            *map(float, figures), *intervals)

    sizes = molecules.sizes
    return ForceReport(
        overall=measure(ALL, None, by_molecule),
        elements=[measure(ELEMENT, element_symbol(z), by_element[:, k])
                  for k, z in enumerate(elements)],
        sizes=[measure(SIZE, int(n), by_molecule[sizes == n]) for n in np.unique(sizes)],
        n_molecules=len(molecules),
        n_atoms=molecules.n_atoms_total,
        seed=seed,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        predicted_key=None if forces is None else forces.predicted_key,
        reference_key=None if forces is None else forces.reference_key,
        file_unit=None if forces is None else forces.unit,
    )


def _ratios(sums: np.ndarray) -> np.ndarray:
    """(rows, 3) MAE, RMSE, mean error norm from per-molecule sums (rows, n, 4) of |e|, e²,
    |e_vec| and atoms: ratios of totals, so each atom (not each molecule) counts once."""
    total = sums.sum(axis=1)
    components = 3 * total[:, 3]
    return np.stack([total[:, 0] / components, np.sqrt(total[:, 1] / components),
                     total[:, 2] / total[:, 3]], axis=1)


def _stacked_ratios(*columns: np.ndarray) -> np.ndarray:
    """`_ratios` of resampled per-molecule sums given as four (rows, n) arrays."""
    return _ratios(np.stack(columns, axis=2))


def _worst(strata: list[ForceStratum]) -> ForceStratum:
    """The largest MAE among strata with an interval: a one-molecule stratum's MAE is mostly
    noise; among all strata where none has one."""
    measured = [s for s in strata if s.mae_ci is not None] or strata
    return max(measured, key=lambda s: s.mae)


# ---- files and lines ---------------------------------------------------------------------


def force_table(report: ForceReport, kind: str) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of forces_by_element.csv or forces_by_size.csv: stratum, element or
    n_atoms (the molecule size), count (molecules), atom_count (atoms of the stratum), then
    MAE, RMSE and mean error norm with their interval ends in meV/Å (empty below
    MIN_INTERVAL_COUNT molecules)."""
    strata = {ELEMENT: report.elements, SIZE: report.sizes}[kind]
    key = {ELEMENT: "element", SIZE: "n_atoms"}[kind]
    header = ["stratum", key, "count", "atom_count",
              *report.overall.report_row(report.confidence)]
    rows = [[s.label, s.key, s.n_molecules, s.n_atoms,
             *s.report_row(report.confidence).values()] for s in strata]
    return header, rows


def write_force_metrics(report: ForceReport, out_dir: str | os.PathLike) -> list[Path]:
    """Write forces_by_element.csv and forces_by_size.csv into `out_dir`, each atomically;
    return their paths (the overall figures go to evaluation.json: `ForceReport.document`)."""
    out = Path(out_dir)
    tables = {kind: force_table(report, kind) for kind in CSV_FILES}
    files = []
    for kind, (header, rows) in tables.items():
        files.append(out / CSV_FILES[kind])
        write_csv(files[-1], header, rows)
    return files


def force_summary_lines(report: ForceReport) -> list[str]:
    """Lines for the terminal: the overall force MAE with its interval, the worst element and
    the worst size (by MAE, among strata with an interval)."""
    keys = (f" ({report.predicted_key} vs {report.reference_key})"
            if report.predicted_key else "")
    rmse = column_formatter([report.overall.rmse * REPORT_FACTOR])
    lines = [f"forces{keys}: MAE {_figure(report.overall, report.confidence)}, RMSE "
             f"{rmse(report.overall.rmse * REPORT_FACTOR)} meV/Å over "
             f"{counted(report.n_atoms, 'atom')} of {counted(report.n_molecules, 'molecule')} "
             "(intervals resample molecules)"]
    for kind, s in report.worst.items():
        name = f"element {s.key}" if kind == ELEMENT else f"size {stratum_label(s.key)}"
        lines.append(f"worst {name} for forces: MAE {_figure(s, report.confidence)}, "
                     f"{counted(s.n_atoms, 'atom')} in {counted(s.n_molecules, 'molecule')}")
    return lines


def _figure(s: ForceStratum, confidence: float) -> str:
    """'23.94 meV/Å (95% CI 23.89 - 23.98)', the three numbers with one precision."""
    values = [s.mae, *(s.mae_ci or ())]
    number = column_formatter([v * REPORT_FACTOR for v in values])
    mae = f"{number(s.mae * REPORT_FACTOR)} meV/Å"
    if s.mae_ci is None:
        return f"{mae} (no CI: fewer than {MIN_INTERVAL_COUNT} molecules)"
    low, high = (number(v * REPORT_FACTOR) for v in s.mae_ci)
    return f"{mae} ({100 * confidence:g}% CI {low} - {high})"
