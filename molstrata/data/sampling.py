"""The study's undersampling: cap the number of molecules of every size at a threshold."""

from __future__ import annotations

from numbers import Integral

import numpy as np

from molstrata.data.molecules import Molecules
from molstrata.errors import MolstrataError


def undersample_per_size(sizes: np.ndarray, cap: int, seed: int = 0) -> np.ndarray:
    """Sorted rows keeping at most `cap` molecules of every size.

    sizes: (n_molecules,) atoms per molecule. A size with more than `cap` molecules keeps a
    random `cap` of them, drawn from numpy's default generator seeded with `seed`; smaller sizes
    are kept whole. Each molecule gets a random key; within a size the `cap` lowest keys stay.
    """
    if not isinstance(cap, Integral) or isinstance(cap, bool) or cap < 1:
        raise MolstrataError(f"cap must be at least 1 molecule per size, got {cap!r}")
    sizes = np.asarray(sizes)
    if sizes.ndim != 1:
        raise ValueError(f"sizes must be (n_molecules,), got shape {sizes.shape}")
    n = len(sizes)
    keys = np.random.default_rng(seed).random(n)
    order = np.lexsort((keys, sizes))
    sorted_sizes = sizes[order]
    first = np.ones(n, dtype=bool)
    first[1:] = sorted_sizes[1:] != sorted_sizes[:-1]
    run_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    rank = np.arange(n) - run_start
    return np.sort(order[rank < cap]).astype(np.int64)


def undersample(molecules: Molecules, cap: int, seed: int = 0) -> Molecules:
    """The molecules kept by `undersample_per_size` on their sizes."""
    return molecules.subset(undersample_per_size(molecules.sizes, cap, seed))
