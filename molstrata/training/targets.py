"""Targets done right: per-element reference energies, then a standardised residual.

For an extensive property (U0, ...) y ≈ Σ_atoms e_Z is fitted by least squares on the training
split, and the model learns the residual as a sum of per-atom terms scale·o_a + shift, where
shift and scale are the mean and standard deviation of the residual per atom. For an intensive
property (HOMO, gap, ...) the model averages scale·o_a + shift with shift and scale the mean
and standard deviation of y. Nothing here looks at validation or test molecules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from molstrata.data.molecules import Molecules, element_symbol
from molstrata.data.references import fit_per_element
from molstrata.errors import MolstrataError
from molstrata.wording import counted

MAX_Z = 100


@dataclass(frozen=True)
class Standardization:
    """Reference energies per element (max_z,), and the per-atom shift and scale (target unit)."""

    atomrefs: np.ndarray
    shift: float
    scale: float
    extensive: bool

    def reference(self, molecules: Molecules) -> np.ndarray:
        """(n_molecules,) Σ e_Z over each molecule's atoms, float64."""
        per_atom = self.atomrefs[molecules.numbers.astype(np.int64)]
        return np.bincount(molecules.atom_molecule, weights=per_atom, minlength=len(molecules))


def check_finite(molecules: Molecules, target: str) -> np.ndarray:
    """The target's values, or a MolstrataError naming the molecules whose target is NaN/inf."""
    values = molecules.property(target)
    bad = ~np.isfinite(values)
    if bad.any():
        ids = molecules.ids[bad][:5].tolist()
        raise MolstrataError(
            f"target {target!r} is NaN or infinite for {counted(int(bad.sum()), 'molecule')} "
            f"(ids {ids}"
            f"{', ...' if bad.sum() > 5 else ''}); remove them or choose another target"
        )
    return values


def fit_standardization(train: Molecules, values: np.ndarray, extensive: bool) -> Standardization:
    """Fit reference energies (extensive targets) and the per-atom shift and scale on `train`."""
    values = np.asarray(values, dtype=np.float64)
    if len(train) < 2:
        raise MolstrataError("the training split holds fewer than 2 molecules; use more data")
    atomrefs = np.zeros(MAX_Z, dtype=np.float64)
    if not extensive:
        scale = float(values.std()) or 1.0
        return Standardization(atomrefs, float(values.mean()), scale, extensive)
    if train.elements.max() >= MAX_Z:
        raise MolstrataError(
            f"element {element_symbol(train.elements.max())} (Z >= {MAX_Z}) is not supported"
        )
    coefficients, fitted = fit_per_element(train.composition, values)
    atomrefs[train.elements] = coefficients
    per_atom = (values - fitted) / train.sizes
    scale = float(per_atom.std()) or 1.0
    return Standardization(atomrefs, float(per_atom.mean()), scale, extensive)
