"""A property's values checked before anything trains on them: values that are not finite,
the spread per molecule size, and outliers.

Outliers are judged on what a model learns: for an extensive property (an energy) the residual
per atom after least-squares per-element reference energies, for an intensive one the value
itself. A molecule is an outlier when that lies more than `OUTLIER_ROBUST_SD` robust standard
deviations (`MAD_TO_SD` × the median absolute deviation) from the median.

Energies are also checked for their scale (`energy_scale_warning`), which catches a file read
in the wrong unit: see that function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from molstrata.data.molecules import Molecules, element_symbol
from molstrata.data.references import fit_per_element
from molstrata.units import HARTREE_TO_EV, UNITS, conversion_factor

OUTLIER_ROBUST_SD = 6.0
"""How far from the median, in robust standard deviations, an outlier lies."""

MAD_TO_SD = 1.4826
"""Median absolute deviation to standard deviation, for normally distributed values."""

MIN_JUDGED = 3
"""Fewest finite values whose spread can say what an outlier is."""

THOMAS_FERMI_HARTREE = 0.7687
"""A neutral atom of atomic number Z has the Thomas–Fermi energy -0.7687 Z^(7/3) Hartree,
below every real atom's (H: -20.9 eV against -13.6; C: -1,368 against -1,030; F: -3,527
against -2,715), the gap growing with Z: a floor under total energies."""

TYPICAL_SHARE = 0.75
"""A total energy's share of its atoms' Thomas–Fermi floor: 0.65 for H, 0.75 to 0.77 for C to
F. It turns energies below the floor into the factor their unit is off by."""

MAX_EV_PER_ATOM = 10.0
"""The most an energy can lie above its zero per atom, in eV: atomisation energies lie a few
eV per atom below zero, relative energies a few eV around it."""


@dataclass(frozen=True)
class SizeValues:
    """The values of the molecules of one size: NaN statistics where none is finite."""

    n_atoms: int
    molecules: int
    nonfinite: int
    min: float
    max: float
    mean: float
    std: float


@dataclass(frozen=True)
class Outliers:
    """Molecules whose `residual` lies beyond `threshold` robust standard deviations.

    rows: (n_outliers,) rows into the molecules, the farthest first; residuals and scores
    (residual - median) / robust_sd are theirs. reference_energies: symbol -> e_Z in the
    property's unit (extensive properties only; empty otherwise).
    """

    rows: np.ndarray
    residuals: np.ndarray
    scores: np.ndarray
    residual: str
    median: float
    robust_sd: float
    threshold: float
    reference_energies: dict[str, float]


@dataclass(frozen=True)
class ValueReport:
    """What `check_values` found in one property: finite-value statistics over all molecules
    and per size, the rows whose value is NaN or infinite, and the outliers."""

    name: str
    unit: str
    extensive: bool
    n_molecules: int
    nonfinite_rows: np.ndarray
    overall: SizeValues
    per_size: list[SizeValues]
    outliers: Outliers


def check_values(
    molecules: Molecules,
    name: str,
    extensive: bool = True,
    threshold: float = OUTLIER_ROBUST_SD,
) -> ValueReport:
    """Check the values of property `name` (see the module's docstring); never raises on
    NaN or infinite values: it reports them."""
    values = molecules.property(name)
    finite = np.isfinite(values)
    sizes = molecules.sizes
    per_size = [_stats(int(s), values[sizes == s]) for s in np.unique(sizes)]
    return ValueReport(
        name=name,
        unit=molecules.units[name],
        extensive=extensive,
        n_molecules=len(molecules),
        nonfinite_rows=np.flatnonzero(~finite),
        overall=_stats(0, values),
        per_size=per_size,
        outliers=_outliers(molecules, values, finite, extensive, threshold),
    )


def _stats(n_atoms: int, values: np.ndarray) -> SizeValues:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return SizeValues(n_atoms, len(values), len(values), *([float("nan")] * 4))
    return SizeValues(n_atoms, len(values), len(values) - len(finite), float(finite.min()),
                      float(finite.max()), float(finite.mean()), float(finite.std()))


def _outliers(molecules: Molecules, values: np.ndarray, finite: np.ndarray, extensive: bool,
              threshold: float) -> Outliers:
    rows = np.flatnonzero(finite)
    references: dict[str, float] = {}
    if extensive:
        residual = "residual per atom after per-element reference energies"
        judged, references = _residual_per_atom(molecules, rows, values[rows])
    else:
        residual = "value"
        judged = values[rows]
    if len(judged) < MIN_JUDGED:
        empty = np.zeros(0)
        return Outliers(empty.astype(np.int64), empty, empty, residual, float("nan"),
                        float("nan"), threshold, references)
    median = float(np.median(judged))
    spread = MAD_TO_SD * float(np.median(np.abs(judged - median)))
    # More than half the residuals equal (exact data): judge against rounding, not zero.
    robust_sd = max(spread, 1e3 * np.finfo(float).eps * max(1.0, float(np.abs(judged).max())))
    scores = (judged - median) / robust_sd
    far = np.flatnonzero(np.abs(scores) > threshold)
    far = far[np.argsort(-np.abs(scores[far]), kind="stable")]
    return Outliers(rows[far], judged[far], scores[far], residual, median, robust_sd,
                    threshold, references)


def _residual_per_atom(molecules: Molecules, rows: np.ndarray,
                       values: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """(values - Σ_atoms e_Z) / n_atoms of the rows, with e_Z fitted on them by least squares,
    and the fitted e_Z by element symbol."""
    if len(rows) == 0:
        return np.zeros(0), {}
    composition = molecules.composition[rows]
    present = composition.any(axis=0)
    coefficients, fitted = fit_per_element(composition, values)
    residual = (values - fitted) / molecules.sizes[rows]
    symbols = [element_symbol(z) for z in molecules.elements[present]]
    return residual, {s: float(e) for s, e in zip(symbols, coefficients[present])}


def energy_floor(molecules: Molecules) -> np.ndarray:
    """(n_molecules,) the Thomas–Fermi energy of each molecule's atoms in eV, Σ -0.7687
    Z^(7/3) Hartree: no total energy lies below it (`THOMAS_FERMI_HARTREE`)."""
    per_atom = -THOMAS_FERMI_HARTREE * HARTREE_TO_EV * molecules.numbers.astype(float) ** (7 / 3)
    return np.bincount(molecules.atom_molecule, weights=per_atom, minlength=len(molecules))


def energy_scale_warning(molecules: Molecules, name: str, file_unit: str, source: str,
                         fix: Callable[[str], str]) -> str | None:
    """A one-line warning when the energies `name` (stored in eV, read from `source` in
    `file_unit`) cannot be energies in that unit; None when they can. `fix(unit)` says how
    to read them in another unit (the one guessed, else 'UNIT').

    The check is physics, not statistics: a total energy lies above the Thomas–Fermi energy of
    its atoms (`energy_floor`; -13.6 eV per H atom and -2,715 eV per F atom lie above it), and
    no energy, total, atomisation or relative, lies more than `MAX_EV_PER_ATOM` eV per atom
    above zero. It warns when more than half of the molecules break either rule, as a wrong
    unit makes all of them do (single bad values are `check_values`' outliers). Below the
    floor, it names the unit that would make them total energies of the usual size
    (`TYPICAL_SHARE` of the floor): kcal/mol read as eV are 23 times too large.
    """
    values = molecules.property(name, "eV")
    finite = np.isfinite(values)
    floor = energy_floor(molecules)
    below = finite & (values < floor)
    above = finite & (values > MAX_EV_PER_ATOM * molecules.sizes)
    n = int(finite.sum())
    if n == 0 or 2 * max(below.sum(), above.sum()) <= n:
        return None
    guess = None
    if below.sum() >= above.sum():
        row = int(np.flatnonzero(below)[0])
        where = (f"{int(below.sum()):,} of {n:,} molecules lie below the lowest energy their "
                 f"atoms can have (e.g. {_example(molecules, row)}: {values[row]:,.0f} eV, "
                 f"floor {floor[row]:,.0f} eV)")
        share = float(np.median(values[below] / floor[below]))
        guess = _unit_for(conversion_factor(file_unit, "eV") * TYPICAL_SHARE / share, file_unit)
    else:
        row = int(np.flatnonzero(above)[0])
        where = (f"{int(above.sum()):,} of {n:,} molecules lie more than {MAX_EV_PER_ATOM:g} "
                 f"eV per atom above zero (e.g. {_example(molecules, row)}: "
                 f"{values[row] / molecules.sizes[row]:,.1f} eV per atom)")
    hint = f"; read in {guess}, they are total energies of the usual size" if guess else ""
    return (f"warning: {name} of {source} cannot be energies in {file_unit}: {where}{hint}; "
            f"{fix(guess or 'UNIT')}")


def _example(molecules: Molecules, row: int) -> str:
    one = molecules.subset([row])
    return f"{one.formulas()[0]}, id {one.identifiers()[0]}"


def _unit_for(factor: float, file_unit: str) -> str | None:
    """The energy unit worth `factor` eV within a factor of 1.5, other than `file_unit`."""
    energies = [u for u, (dim, _) in UNITS.items() if dim == "energy" and u != file_unit]
    best = min(energies, key=lambda u: abs(np.log(conversion_factor(u, "eV") / factor)))
    return best if abs(np.log(conversion_factor(best, "eV") / factor)) < np.log(1.5) else None
