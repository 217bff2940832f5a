"""The study's reference classes: molecules grouped by size, by element, and by both.

A stratum is a sorted array of row indices into a `Molecules` collection. Size strata partition
the molecules; element strata overlap (a molecule with C and O is in both). Everything here is
computed from `Molecules.sizes` and `Molecules.composition` with array operations only.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np

from molstrata.data.molecules import Molecules, element_symbol
from molstrata.errors import MolstrataError


def size_strata(molecules: Molecules) -> dict[int, np.ndarray]:
    """Size (atoms) -> sorted rows of the molecules of that size, sizes ascending."""
    sizes = molecules.sizes
    rows = np.argsort(sizes, kind="stable")
    starts = _run_starts(sizes[rows])
    return {int(sizes[rows[s]]): group for s, group in zip(starts, _split(rows, starts))}


def element_strata(molecules: Molecules) -> dict[str, np.ndarray]:
    """Element symbol -> sorted rows of the molecules containing it, in atomic-number order."""
    present = molecules.composition > 0
    return {
        element_symbol(z): np.flatnonzero(present[:, k]) for k, z in enumerate(molecules.elements)
    }


def size_element_strata(molecules: Molecules) -> dict[tuple[int, str], np.ndarray]:
    """(size, element) -> sorted rows of the molecules of that size containing that element.

    Only non-empty strata appear; keys run by size, then by atomic number.
    """
    rows, columns = np.nonzero(molecules.composition > 0)
    sizes = molecules.sizes[rows]
    order = np.lexsort((rows, columns, sizes))
    rows, columns, sizes = rows[order], columns[order], sizes[order]
    starts = _run_starts(sizes, columns)
    symbols = [element_symbol(z) for z in molecules.elements]
    groups = _split(rows, starts)
    return {(int(sizes[s]), symbols[columns[s]]): group for s, group in zip(starts, groups)}


@dataclass
class StratumCount:
    """How many molecules a stratum holds, and their share (0..1) of the molecules considered."""

    key: Hashable
    label: str
    count: int
    share: float


def stratum_label(key: Hashable) -> str:
    """A reader's name for a stratum key: 18 -> '18 atoms', 'F' -> 'with F', (18, 'F') -> both."""
    if isinstance(key, tuple) and len(key) == 2:
        return f"{stratum_label(key[0])} {stratum_label(key[1])}"
    if isinstance(key, (int, np.integer)):
        return f"{key} atom" if key == 1 else f"{key} atoms"
    if isinstance(key, str):
        return f"with {key}"
    return str(key)


def count_strata(strata: Mapping[Hashable, np.ndarray], n_total: int) -> list[StratumCount]:
    """Count and share of every stratum, in the mapping's order; `n_total` molecules considered."""
    if n_total < 0:
        raise ValueError(f"n_total must be at least 0, got {n_total}")
    out = []
    for key, rows in strata.items():
        count = len(rows)
        if count > n_total:
            raise ValueError(f"stratum {key!r} holds {count} molecules, more than {n_total}")
        share = count / n_total if n_total else 0.0
        out.append(StratumCount(key, stratum_label(key), count, share))
    return out


def size_histogram(molecules: Molecules) -> tuple[np.ndarray, np.ndarray]:
    """(sizes (n_sizes,), counts (n_sizes,)) for every size present, sizes ascending."""
    sizes, counts = np.unique(molecules.sizes, return_counts=True)
    return sizes.astype(np.int64), counts.astype(np.int64)


def element_frequency(molecules: Molecules) -> list[StratumCount]:
    """Count and share of molecules containing each element, in atomic-number order."""
    counts = (molecules.composition > 0).sum(axis=0)
    n = len(molecules)
    return [
        StratumCount(element_symbol(z), stratum_label(element_symbol(z)), int(c), c / n)
        for z, c in zip(molecules.elements, counts)
    ]


def size_element_share(molecules: Molecules) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(sizes (n_sizes,), element symbols, share (n_sizes, n_elements)) for the study's heatmap.

    share[i, k] is the fraction of the molecules with sizes[i] atoms that contain element k.
    """
    sizes, size_index = np.unique(molecules.sizes, return_inverse=True)
    size_index = size_index.reshape(-1)
    n_sizes, n_elements = len(sizes), len(molecules.elements)
    present = molecules.composition > 0
    cell = size_index[:, None] * n_elements + np.arange(n_elements)
    holding = np.bincount(cell[present], minlength=n_sizes * n_elements)
    per_size = np.bincount(size_index, minlength=n_sizes)
    share = holding.reshape(n_sizes, n_elements) / np.maximum(per_size, 1)[:, None]
    symbols = [element_symbol(z) for z in molecules.elements]
    return sizes.astype(np.int64), symbols, share


def reportable_sizes(molecules: Molecules, min_share: float = 0.01) -> np.ndarray:
    """Sizes holding at least `min_share` of the molecules (the study's validation strata)."""
    if not 0.0 <= min_share <= 1.0:
        raise MolstrataError(f"min_share must be between 0 and 1, got {min_share}; 0.01 is 1 %")
    sizes, counts = size_histogram(molecules)
    if not len(molecules):
        return sizes
    return sizes[counts / len(molecules) >= min_share]


def _run_starts(*sorted_keys: np.ndarray) -> np.ndarray:
    """Start positions of the runs of equal keys in arrays sorted together."""
    n = len(sorted_keys[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    changed = np.zeros(n, dtype=bool)
    changed[0] = True
    for keys in sorted_keys:
        changed[1:] |= keys[1:] != keys[:-1]
    return np.flatnonzero(changed)


def _split(values: np.ndarray, starts: np.ndarray) -> list[np.ndarray]:
    """`values` cut at `starts` (starts[0] == 0); no groups for an empty array."""
    return np.split(values.astype(np.int64, copy=False), starts[1:]) if len(starts) else []
