"""Per-element constants fitted to a per-molecule quantity: the one least-squares fit behind
reference energies (training's standardisation), describe's outlier check and the hint that a
file's energies lie on another zero (evaluation)."""

from __future__ import annotations

import numpy as np


def fit_per_element(composition: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Constants c (n_elements,) that minimise |values - composition @ c|², and the fit.

    composition: (n, n_elements) atoms of each element per molecule; values: (n,), e.g. eV.
    Returns (c, composition @ c). An element column no molecule holds gets c = 0 (the
    minimum-norm solution), so callers may fit on all columns and report the present ones.
    """
    composition = np.asarray(composition, dtype=np.float64)
    constants, *_ = np.linalg.lstsq(composition, np.asarray(values, dtype=np.float64),
                                    rcond=None)
    return constants, composition @ constants
