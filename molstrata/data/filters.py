"""Select molecules by size and by the elements they hold or lack (e.g. directed training)."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import numpy as np

from molstrata.data.molecules import Molecules, atomic_number, element_symbol
from molstrata.errors import MolstrataError
from molstrata.wording import counted


def filter_mask(
    molecules: Molecules,
    min_size: int | None = None,
    max_size: int | None = None,
    contains: Sequence[str] = (),
    excludes: Sequence[str] = (),
) -> np.ndarray:
    """(n_molecules,) bool: molecules with min_size <= atoms <= max_size (inclusive), holding
    every element of `contains` and none of `excludes`."""
    required, excluded = _check(min_size, max_size, contains, excludes)
    sizes = molecules.sizes
    mask = np.ones(len(molecules), dtype=bool)
    if min_size is not None:
        mask &= sizes >= min_size
    if max_size is not None:
        mask &= sizes <= max_size
    for z in required:
        mask &= molecules.contains(z)
    for z in excluded:
        mask &= ~molecules.contains(z)
    return mask


def apply_filters(
    molecules: Molecules,
    min_size: int | None = None,
    max_size: int | None = None,
    contains: Sequence[str] = (),
    excludes: Sequence[str] = (),
) -> Molecules:
    """The molecules passing `filter_mask`; a MolstrataError when none does."""
    mask = filter_mask(molecules, min_size, max_size, contains, excludes)
    if not mask.any():
        described = describe_filters(min_size, max_size, contains, excludes)
        raise MolstrataError(
            f"no molecule left after filters ({described}) out of "
            f"{counted(len(molecules), 'molecule')}; "
            "relax the filters"
        )
    return molecules if mask.all() else molecules.subset(mask)


def describe_filters(
    min_size: int | None = None,
    max_size: int | None = None,
    contains: Sequence[str] = (),
    excludes: Sequence[str] = (),
) -> str:
    """The filters in a few words, e.g. 'size 30..40, contains F', or 'none'."""
    parts = []
    if min_size is not None and max_size is not None:
        parts.append(f"size {min_size}..{max_size}")
    elif min_size is not None:
        parts.append(f"size >= {min_size}")
    elif max_size is not None:
        parts.append(f"size <= {max_size}")
    if contains:
        parts.append("contains " + _symbols(contains))
    if excludes:
        parts.append("excludes " + _symbols(excludes))
    return ", ".join(parts) or "none"


def _check(
    min_size: int | None,
    max_size: int | None,
    contains: Sequence[str],
    excludes: Sequence[str],
) -> tuple[list[int], list[int]]:
    """Validate the options once; return the atomic numbers required and excluded."""
    for name, value in (("min_size", min_size), ("max_size", max_size)):
        if value is not None and (not isinstance(value, Integral) or isinstance(value, bool)):
            raise MolstrataError(f"{name} must be a whole number of atoms, got {value!r}")
    if min_size is not None and max_size is not None and min_size > max_size:
        raise MolstrataError(
            f"min_size {min_size} is larger than max_size {max_size}; swap them or drop one"
        )
    required = [atomic_number(s) for s in _as_tuple(contains)]
    excluded = [atomic_number(s) for s in _as_tuple(excludes)]
    both = sorted(set(required) & set(excluded))
    if both:
        names = ", ".join(element_symbol(z) for z in both)
        raise MolstrataError(
            f"element {names} is both required (contains) and excluded (excludes); keep one"
        )
    return required, excluded


def _as_tuple(symbols: Sequence[str]) -> tuple[str, ...]:
    """A lone symbol ('F') is one element, not a sequence of letters."""
    return (symbols,) if isinstance(symbols, str) else tuple(symbols)


def _symbols(symbols: Sequence[str]) -> str:
    """Canonical symbols, comma-separated ('f', 'n' -> 'F, N')."""
    return ", ".join(element_symbol(atomic_number(s)) for s in _as_tuple(symbols))
