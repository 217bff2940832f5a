"""Train / validation / test splits: seeded, disjoint, and saved by molecule id.

A `Split` holds row indices into the collection it was made for. On disk it holds molecule ids
and the dataset's fingerprint, so a saved split survives re-ordering of the data and refuses
to be applied to other data unless asked.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np

from molstrata._files import atomic_write_text, read_versioned_json
from molstrata.data.molecules import Molecules
from molstrata.errors import MolstrataError

PART_NAMES = ("train", "val", "test")
SPLIT_FORMAT = "molstrata-split"
SPLIT_VERSION = 1


@dataclass(frozen=True, eq=False)
class Split:
    """Row indices of each part: train, val, test, each (n_part,) int64, sorted, read-only."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __post_init__(self) -> None:
        for name in PART_NAMES:
            rows = np.array(getattr(self, name), dtype=np.int64).reshape(-1)
            rows.setflags(write=False)
            object.__setattr__(self, name, rows)

    @staticmethod
    def names() -> tuple[str, ...]:
        """The part names, in order: ('train', 'val', 'test')."""
        return PART_NAMES

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, rows) for every part, in order."""
        return ((name, getattr(self, name)) for name in PART_NAMES)

    def __iter__(self) -> Iterator[np.ndarray]:
        """The parts' rows in order, so that `train, val, test = split` works."""
        return (getattr(self, name) for name in PART_NAMES)

    def counts(self) -> dict[str, int]:
        """Molecules in each part, e.g. {'train': 800, 'val': 100, 'test': 100}."""
        return {name: len(rows) for name, rows in self.items()}

    def rows(self) -> np.ndarray:
        """Sorted rows of all parts together."""
        return np.sort(np.concatenate(list(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Split):
            return NotImplemented
        return all(np.array_equal(a, b) for a, b in zip(self, other))

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}={n}" for name, n in self.counts().items())
        return f"Split({counts})"


def random_split(
    n_molecules: int,
    fractions: Sequence[float] | None = None,
    counts: Sequence[int] | None = None,
    seed: int = 0,
) -> Split:
    """A seeded random split of rows 0..n_molecules-1, by fractions or by counts (exactly one).

    Two or three parts may be given (train, val[, test]); a part not given is empty. Each part
    gets floor(fraction * n) molecules, except that when the fractions sum to 1 the last part
    given takes the remainder, so that every molecule lands in exactly one part. Molecules not
    asked for (fractions summing below 1, counts below n) are in no part.
    """
    if not isinstance(n_molecules, Integral) or n_molecules < 0:
        raise MolstrataError(f"n_molecules must be a whole number >= 0, got {n_molecules!r}")
    if (fractions is None) == (counts is None):
        raise MolstrataError(
            "give the split either as fractions (e.g. 0.8, 0.1, 0.1) or as counts, not both "
            "or neither"
        )
    sizes = (
        _counts_from_fractions(fractions, n_molecules)
        if fractions is not None
        else _checked_counts(counts, n_molecules)
    )
    bounds = np.cumsum([0, *sizes, *[0] * (len(PART_NAMES) - len(sizes))])
    order = np.random.default_rng(seed).permutation(n_molecules)
    return Split(*(np.sort(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])))


def restrict(
    split: Split, selection: np.ndarray | Sequence[int], parts: Sequence[str] = PART_NAMES
) -> Split:
    """The split with the named `parts` keeping only rows in `selection`; other parts unchanged.

    selection: a bool mask over the dataset's rows, or row indices (an undersampled or filtered
    subset). Use `parts=("train", "val")` to train on a subset while the test set stays whole.
    """
    unknown = [p for p in parts if p not in PART_NAMES]
    if unknown:
        raise MolstrataError(
            f"unknown split part {unknown[0]!r}; choose from {', '.join(PART_NAMES)}"
        )
    selection = np.asarray(selection)
    if selection.dtype == bool:
        used = split.rows()
        largest = used[-1] if len(used) else -1
        if selection.ndim != 1 or len(selection) <= largest:
            raise ValueError(
                f"the mask covers {selection.size} rows but the split uses row {largest}"
            )
        selection = np.flatnonzero(selection)
    selection = selection.astype(np.int64, copy=False).reshape(-1)
    return Split(
        *(rows[np.isin(rows, selection)] if name in parts else rows for name, rows in split.items())
    )


def save_split(
    split: Split, path: str | os.PathLike, molecules: Molecules, **metadata: Any
) -> None:
    """Write the split as JSON, by molecule id, with the dataset's fingerprint and `metadata`
    (e.g. seed=0, fractions=[0.8, 0.1, 0.1]); written to a temporary file, then moved."""
    rows = split.rows()
    if len(rows) and (rows[0] < 0 or rows[-1] >= len(molecules)):
        raise ValueError(f"the split uses rows outside the {len(molecules)} molecules given")
    document = {
        "format": SPLIT_FORMAT,
        "version": SPLIT_VERSION,
        "fingerprint": molecules.fingerprint(),
        "n_molecules": len(molecules),
        "metadata": metadata,
        "parts": {name: molecules.ids[part].tolist() for name, part in split.items()},
    }
    atomic_write_text(path, json.dumps(document, default=_json_default) + "\n")


def load_split(
    path: str | os.PathLike, molecules: Molecules, allow_other_dataset: bool = False
) -> Split:
    """Read a split written by `save_split` and map its molecule ids to rows of `molecules`.

    The dataset must be the one the split was made for (same fingerprint); with
    `allow_other_dataset=True` it is enough that every id of the split is in `molecules`.
    """
    document = _read_document(Path(path))
    if document["fingerprint"] != molecules.fingerprint() and not allow_other_dataset:
        raise MolstrataError(
            f"split file {path} was made for another dataset (fingerprint "
            f"{str(document['fingerprint'])[:12]}…, this one {molecules.fingerprint()[:12]}…); "
            "make the split again for this dataset, or allow another dataset "
            "(allow_other_dataset=True) to map its molecule ids onto this one"
        )
    ids = document["parts"]
    everything = np.concatenate([np.asarray(ids[name], dtype=np.int64) for name in PART_NAMES])
    unique, seen = np.unique(everything, return_counts=True)
    if np.any(seen > 1):
        raise MolstrataError(
            f"split file {path} puts molecule ids {unique[seen > 1][:5].tolist()} in more than "
            "one part (or twice in one); make the split again"
        )
    try:
        return Split(*(np.sort(molecules.rows_of_ids(ids[name])) for name in PART_NAMES))
    except MolstrataError as error:
        raise MolstrataError(f"split file {path}: {error}") from None


def _read_document(path: Path) -> dict[str, Any]:
    """The checked JSON of a split file, or a MolstrataError saying what is wrong with it."""
    document = read_versioned_json(path, SPLIT_FORMAT, {SPLIT_VERSION}, what="split file",
                                   fix="make the split again (molstrata data split)")
    parts = document.get("parts")
    valid = (
        isinstance(parts, dict)
        and all(
            isinstance(parts.get(name), list)
            and all(isinstance(i, int) and not isinstance(i, bool) for i in parts[name])
            for name in PART_NAMES
        )
        and "fingerprint" in document
    )
    if not valid:
        raise MolstrataError(
            f"split file {path} is damaged (needs a fingerprint and integer id lists for "
            f"{', '.join(PART_NAMES)}); make the split again"
        )
    return document


def _counts_from_fractions(fractions: Sequence[float], n: int) -> list[int]:
    values = _checked_parts(fractions, "fractions", Real)
    if any(not math.isfinite(f) or f < 0 for f in values):
        raise MolstrataError(f"fractions must each be between 0 and 1, got {list(fractions)}")
    total = math.fsum(values)
    if total > 1 + 1e-9:
        raise MolstrataError(f"fractions sum to {total:g}, more than 1; make them sum to 1 or less")
    sizes = [math.floor(f * n + 1e-9) for f in values]
    if abs(total - 1) <= 1e-9:
        sizes[-1] = n - sum(sizes[:-1])
    return sizes


def _checked_counts(counts: Sequence[int], n: int) -> list[int]:
    values = _checked_parts(counts, "counts", Integral)
    if any(c < 0 for c in values):
        raise MolstrataError(f"counts must each be 0 or more, got {list(counts)}")
    if sum(values) > n:
        raise MolstrataError(
            f"counts sum to {sum(values)}, more than the {n} molecules; lower them"
        )
    return [int(c) for c in values]


def _checked_parts(values: Sequence, name: str, kind: type) -> list:
    """2 or 3 numbers of `kind` (train, val[, test]), or a MolstrataError."""
    try:
        values = np.asarray(values).reshape(-1).tolist()
    except (TypeError, ValueError):
        values = []
    if len(values) not in (2, 3) or not all(
        isinstance(v, kind) and not isinstance(v, bool) for v in values
    ):
        raise MolstrataError(f"{name} must be 2 or 3 numbers (train, val[, test]), got {values}")
    return values


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays in metadata, as JSON."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in split metadata")
