"""A property's values checked before anything trains on them: values that are not finite,
the spread per molecule size, and outliers.

Outliers are judged on what a model learns: for an extensive property (an energy) the residual
per atom after least-squares per-element reference energies, for an intensive one the value
itself. A molecule is an outlier when that lies more than `OUTLIER_ROBUST_SD` robust standard
deviations (`MAD_TO_SD` × the median absolute deviation) from the median.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from molstrata.data.molecules import Molecules, element_symbol
from molstrata.data.references import fit_per_element

OUTLIER_ROBUST_SD = 6.0
"""How far from the median, in robust standard deviations, an outlier lies."""

MAD_TO_SD = 1.4826
"""Median absolute deviation to standard deviation, for normally distributed values."""

MIN_JUDGED = 3
"""Fewest finite values whose spread can say what an outlier is."""


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
