"""Energies on another zero: references that differ from the predictions by a constant per atom.

A model of U0 predicts total energies, the energies of the isolated atoms included. A file of
atomisation energies (U0 minus those atomic energies), or of energies from another code, holds
the same physics on another zero: reference - prediction is then close to a sum over the atoms
of one constant per element, c_Z, and the raw error runs to thousands of eV. The constants are
fitted by least squares of (reference - prediction) on the element counts, and the MAE left
once they are removed is the model's error on the file's own zero.

The criterion: the hint is given when the per-element constants explain the difference,

    raw MAE > MIN_RAW_MAE_EV (1 eV)  and  raw MAE > MIN_RATIO (10) x the MAE after the fit,

on at least MIN_SPARE (5) structures more than there are elements, so that the fit cannot
pass through every point. A good model on references on its own zero has a raw MAE far under
1 eV; a bad model's large errors are not a constant per atom, so removing the fit leaves most
of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from molstrata.data.references import fit_per_element
from molstrata.units import convert, dimension, error_unit, unit_key

MIN_RAW_MAE_EV = 1.0
"""eV: a smaller raw MAE is a model's error, not a different zero."""

MIN_RATIO = 10.0
"""The fitted constants must remove at least this share of the MAE (raw / after the fit)."""

MIN_SPARE = 5
"""Structures needed beyond one per fitted element."""


@dataclass(frozen=True)
class ReferenceOffset:
    """Per-element constants fitted to reference - prediction, and what they explain.

    elements: symbols of the fitted constants; per_atom: (n_elements,) c_Z in `unit`;
    offsets: (n,) sum of c_Z over each structure's atoms (NaN where a structure was not
    compared); raw_mae and corrected_mae in `unit`, the latter after removing the offsets.
    """

    elements: tuple[str, ...]
    per_atom: np.ndarray
    offsets: np.ndarray
    raw_mae: float
    corrected_mae: float
    n_compared: int
    unit: str

    @property
    def detected(self) -> bool:
        """Whether the references look like energies on another zero (the module's criterion)."""
        raw_ev = float(convert(self.raw_mae, self.unit, "eV"))
        return raw_ev > MIN_RAW_MAE_EV and self.raw_mae > MIN_RATIO * self.corrected_mae

    def hint(self, target: str, where: str = "the references") -> str:
        """One line: the model predicts total energies, the references look like energies on
        another zero, with the fitted constants."""
        constants = ", ".join(f"{e} {c:+.4g}" for e, c in zip(self.elements, self.per_atom))
        return (f"hint: the model predicts total energies ({target}, atomic reference energies "
                f"included), but {where} look like energies on another zero (e.g. atomisation "
                "energies): reference - prediction is a near-constant amount per atom of each "
                f"element ({constants} {self.unit} per atom); compare with total energies, or "
                "read the offset-corrected MAE")

    def mae_line(self) -> str:
        """The offset-corrected MAE as a separate, labelled figure."""
        factor, unit = error_unit(self.unit)
        return (f"offset-corrected MAE (per-element offset fitted by least squares on "
                f"{self.n_compared:,} structures, then removed): {self.corrected_mae * factor:.2f} "
                f"{unit} (raw MAE {self.raw_mae * factor:.2f} {unit})")

    def document(self) -> dict:
        """The figures as plain values with their units in the names, for JSON."""
        factor, err_unit = error_unit(self.unit)
        key = unit_key(err_unit)
        return {
            "detected": self.detected,
            "criterion": f"raw MAE > {MIN_RAW_MAE_EV:g} eV and raw MAE > {MIN_RATIO:g} x "
                         "offset-corrected MAE",
            f"raw_mae_{key}": self.raw_mae * factor,
            f"offset_corrected_mae_{key}": self.corrected_mae * factor,
            f"per_atom_offset_{unit_key(self.unit)}": {
                e: float(c) for e, c in zip(self.elements, self.per_atom)},
            "n_structures": self.n_compared,
        }


def fit_reference_offset(
    composition: np.ndarray,
    elements: Sequence[str],
    reference: np.ndarray,
    predicted: np.ndarray,
    unit: str,
) -> ReferenceOffset | None:
    """Fit c_Z to reference - prediction on the element counts.

    composition: (n, n_elements) atoms of each element per structure; reference, predicted:
    (n,) in `unit` (NaN where a structure has no reference or no prediction: left out).
    None when the question does not arise: not an energy, or too few structures to tell.
    """
    if dimension(unit) != "energy":
        return None
    reference = np.asarray(reference, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    compared = np.isfinite(reference) & np.isfinite(predicted)
    counts = np.asarray(composition, dtype=np.float64)[compared]
    present = counts.any(axis=0)
    if compared.sum() < present.sum() + MIN_SPARE:
        return None
    difference = reference[compared] - predicted[compared]
    per_atom, fitted = fit_per_element(counts, difference)
    per_atom = per_atom[present]
    offsets = np.full(len(reference), np.nan)
    offsets[compared] = fitted
    corrected = predicted[compared] + offsets[compared] - reference[compared]
    return ReferenceOffset(
        elements=tuple(e for e, keep in zip(elements, present) if keep),
        per_atom=per_atom,
        offsets=offsets,
        raw_mae=float(np.abs(difference).mean()),
        corrected_mae=float(np.abs(corrected).mean()),
        n_compared=int(compared.sum()),
        unit=unit,
    )
