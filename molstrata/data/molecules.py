"""`Molecules`: a collection of molecules held as packed contiguous arrays.

All atoms of all molecules sit in one array (`numbers`, `positions`); molecule m owns atoms
`offsets[m]:offsets[m + 1]`. Per-molecule properties are 1-D arrays with their unit. This is the
one representation every later stage consumes: training batches gather from it, strata count
on it, reports read its ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from molstrata.errors import MolstrataError
from molstrata.units import canonical_unit, convert

Index = np.ndarray | slice | Iterable[int]

LABEL = "molstrata_id"
"""The annotation holding the molecules' own identifiers where their file gave strings
('mol88169'): `ids` are then the structures' positions in the file. It is named after the key
files hold ids under, so that writing the molecules gives each its identifier back."""


def element_symbol(z: int) -> str:
    """Chemical symbol of atomic number z ('H' for 1)."""
    return chemical_symbols[int(z)]


def atomic_number(symbol: str) -> int:
    """Atomic number of a chemical symbol, or a MolstrataError naming the bad symbol."""
    z = atomic_numbers.get(symbol.strip().capitalize()) if isinstance(symbol, str) else None
    if not z:
        raise MolstrataError(f"unknown element {symbol!r}; use a chemical symbol such as H, C, N")
    return z


@dataclass(frozen=True, eq=False)
class Molecules:
    """Molecules as packed arrays.

    numbers: (n_atoms_total,) atomic numbers.
    positions: (n_atoms_total, 3) Cartesian coordinates in Å.
    offsets: (n_molecules + 1,) start of each molecule's atoms; offsets[0] = 0,
        offsets[-1] = n_atoms_total.
    ids: (n_molecules,) stable integer id of each molecule (QM9's index, a file's integer
        molstrata_id, or the structure's position in its file).
    properties: name -> (n_molecules,) float64 values, in `units[name]`.
    units: name -> unit of that property (see `molstrata.units`).
    annotations: name -> (n_molecules,) strings (e.g. SMILES); `LABEL` holds the molecules'
        own identifiers where their file gave strings (see `identifiers`).
    """

    numbers: np.ndarray
    positions: np.ndarray
    offsets: np.ndarray
    ids: np.ndarray
    properties: Mapping[str, np.ndarray] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_atoms = len(self.numbers)
        n_mol = len(self.offsets) - 1
        if self.numbers.ndim != 1 or self.positions.shape != (n_atoms, 3):
            raise ValueError(
                f"numbers must be (n_atoms,) and positions (n_atoms, 3); got "
                f"{self.numbers.shape} and {self.positions.shape}"
            )
        if n_mol < 0 or self.offsets[0] != 0 or self.offsets[-1] != n_atoms:
            raise ValueError("offsets must start at 0 and end at the number of atoms")
        if np.any(np.diff(self.offsets) < 1):
            raise ValueError("every molecule must have at least one atom")
        if self.ids.shape != (n_mol,):
            raise ValueError(f"ids must have shape ({n_mol},), got {self.ids.shape}")
        if len(np.unique(self.ids)) != n_mol:
            unique, counts = np.unique(self.ids, return_counts=True)
            raise ValueError(f"ids must be unique: each names one molecule; "
                             f"{unique[counts > 1][:5].tolist()} repeat")
        for name, values in {**self.properties, **self.annotations}.items():
            if values.shape != (n_mol,):
                raise ValueError(f"{name!r} must have shape ({n_mol},), got {values.shape}")
        missing = set(self.properties) - set(self.units)
        if missing:
            raise ValueError(f"properties without a unit: {sorted(missing)}")

    @classmethod
    def from_lists(
        cls,
        numbers: Iterable[Iterable[int]],
        positions: Iterable[np.ndarray],
        properties: Mapping[str, Iterable[float]] | None = None,
        units: Mapping[str, str] | None = None,
        ids: Iterable[int] | None = None,
        annotations: Mapping[str, Iterable[str]] | None = None,
    ) -> Molecules:
        """Pack per-molecule lists (small data, tests, file readers) into a collection."""
        numbers = [np.asarray(z, dtype=np.int64).reshape(-1) for z in numbers]
        positions = [np.asarray(p, dtype=np.float64).reshape(-1, 3) for p in positions]
        if len(numbers) != len(positions):
            raise ValueError("numbers and positions must list the same molecules")
        sizes = np.array([len(z) for z in numbers], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        flat_z = np.concatenate(numbers) if numbers else np.zeros(0, np.int64)
        flat_r = np.concatenate(positions) if positions else np.zeros((0, 3))
        n_mol = len(numbers)
        return cls(
            numbers=flat_z.astype(np.uint8),
            positions=flat_r,
            offsets=offsets,
            ids=np.arange(n_mol, dtype=np.int64) if ids is None else np.asarray(ids, np.int64),
            properties={k: np.asarray(v, np.float64) for k, v in (properties or {}).items()},
            units={k: canonical_unit(v) for k, v in (units or {}).items()},
            annotations={k: np.asarray(list(v), dtype=str) for k, v in (annotations or {}).items()},
        )

    # ---- sizes and composition -------------------------------------------------------

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_atoms_total(self) -> int:
        return len(self.numbers)

    @cached_property
    def sizes(self) -> np.ndarray:
        """(n_molecules,) number of atoms of each molecule."""
        return np.diff(self.offsets)

    @cached_property
    def atom_molecule(self) -> np.ndarray:
        """(n_atoms_total,) index of the molecule each atom belongs to."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.sizes)

    @cached_property
    def elements(self) -> np.ndarray:
        """Sorted atomic numbers present in the collection."""
        return np.unique(self.numbers).astype(np.int64)

    @cached_property
    def composition(self) -> np.ndarray:
        """(n_molecules, n_elements) count of each element of `elements` in each molecule."""
        column = np.searchsorted(self.elements, self.numbers)
        flat = self.atom_molecule * len(self.elements) + column
        counts = np.bincount(flat, minlength=len(self) * len(self.elements))
        return counts.reshape(len(self), len(self.elements))

    def contains(self, element: int | str) -> np.ndarray:
        """(n_molecules,) bool: which molecules hold at least one atom of `element`."""
        z = atomic_number(element) if isinstance(element, str) else int(element)
        column = np.searchsorted(self.elements, z)
        if column == len(self.elements) or self.elements[column] != z:
            return np.zeros(len(self), dtype=bool)
        return self.composition[:, column] > 0

    def formulas(self) -> np.ndarray:
        """(n_molecules,) Hill formulas (C and H first, then alphabetical), e.g. 'CH4'."""
        symbols = [element_symbol(z) for z in self.elements]
        order = sorted(range(len(symbols)), key=lambda k: _hill_key(symbols[k], "C" in symbols))
        out = []
        for row in self.composition[:, order]:
            out.append(
                "".join(
                    symbols[k] + (str(n) if n > 1 else "")
                    for k, n in zip(order, row)
                    if n > 0
                )
            )
        return np.asarray(out, dtype=str)

    # ---- access -----------------------------------------------------------------------

    def atoms_of(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(numbers (n,), positions (n, 3)) of molecule i, as views."""
        start, stop = self.offsets[i], self.offsets[i + 1]
        return self.numbers[start:stop], self.positions[start:stop]

    def identifiers(self) -> list[int | str]:
        """Each molecule's identifier as its file gave it, for output files: the `LABEL`
        annotation where the molecules have one (string ids), else the integer id."""
        if LABEL in self.annotations:
            return self.annotations[LABEL].tolist()
        return self.ids.tolist()

    def property(self, name: str, unit: str | None = None) -> np.ndarray:
        """(n_molecules,) values of a property, converted to `unit` when given."""
        if name not in self.properties:
            available = ", ".join(self.properties) or "none"
            raise MolstrataError(
                f"unknown property {name!r}; this dataset has: {available}"
            )
        values = self.properties[name]
        if unit is None or canonical_unit(unit) == canonical_unit(self.units[name]):
            return values
        return convert(values, self.units[name], unit)

    def with_property(self, name: str, values: np.ndarray, unit: str) -> Molecules:
        """A collection sharing these atoms with one more (or a replaced) property."""
        values = np.asarray(values, dtype=np.float64)
        return Molecules(
            self.numbers,
            self.positions,
            self.offsets,
            self.ids,
            {**self.properties, name: values},
            {**self.units, name: canonical_unit(unit)},
            self.annotations,
        )

    # ---- subsets --------------------------------------------------------------------

    def subset(self, index: Index) -> Molecules:
        """The molecules selected by a slice, an index array or a boolean mask.

        A slice with step 1 returns views of the atom arrays; anything else gathers, with one
        vectorised index computation and no per-molecule Python.
        """
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                stop = max(stop, start)
                a, b = self.offsets[start], self.offsets[stop]
                return Molecules(
                    self.numbers[a:b],
                    self.positions[a:b],
                    self.offsets[start : stop + 1] - a,
                    self.ids[start:stop],
                    {k: v[start:stop] for k, v in self.properties.items()},
                    self.units,
                    {k: v[start:stop] for k, v in self.annotations.items()},
                )
            index = np.arange(start, stop, step)
        index = np.asarray(index)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise ValueError(f"mask must have shape ({len(self)},), got {index.shape}")
            index = np.flatnonzero(index)
        index = index.astype(np.int64, copy=False).reshape(-1)
        if len(index) and (index.min() < -len(self) or index.max() >= len(self)):
            raise IndexError(f"molecule index out of range for {len(self)} molecules")
        index = index % max(len(self), 1)
        sizes = self.sizes[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        atom_index = np.repeat(self.offsets[index] - offsets[:-1], sizes) + np.arange(offsets[-1])
        return Molecules(
            self.numbers[atom_index],
            self.positions[atom_index],
            offsets,
            self.ids[index],
            {k: v[index] for k, v in self.properties.items()},
            self.units,
            {k: v[index] for k, v in self.annotations.items()},
        )

    def rows_of_ids(self, ids: Iterable[int]) -> np.ndarray:
        """Rows of the molecules with these ids, or a MolstrataError naming missing ones."""
        ids = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), dtype=np.int64)
        order = np.argsort(self.ids, kind="stable")
        sorted_ids = self.ids[order]
        pos = np.searchsorted(sorted_ids, ids)
        found = pos < len(sorted_ids)
        found[found] = sorted_ids[pos[found]] == ids[found]
        if not found.all():
            raise MolstrataError(
                f"molecule ids {ids[~found][:5].tolist()} are not in this dataset; the split or "
                "index file was made for other data: make it again for this dataset"
            )
        return order[pos]

    @staticmethod
    def concatenate(parts: Iterable[Molecules]) -> Molecules:
        """One collection holding all molecules of `parts` in order (properties they all share)."""
        parts = list(parts)
        if not parts:
            raise ValueError("nothing to concatenate")
        names = set.intersection(*(set(p.properties) for p in parts))
        labels = set.intersection(*(set(p.annotations) for p in parts))
        offsets = [np.zeros(1, np.int64)]
        total = 0
        for p in parts:
            offsets.append(p.offsets[1:] + total)
            total += p.n_atoms_total
        first = parts[0]
        return Molecules(
            np.concatenate([p.numbers for p in parts]),
            np.concatenate([p.positions for p in parts]),
            np.concatenate(offsets),
            np.concatenate([p.ids for p in parts]),
            {n: np.concatenate([p.property(n, first.units[n]) for p in parts]) for n in names},
            {n: first.units[n] for n in names},
            {n: np.concatenate([p.annotations[n] for p in parts]) for n in labels},
        )

    # ---- identity ---------------------------------------------------------------------

    def fingerprint(self) -> str:
        """SHA-256 of atoms, geometry, ids and properties: names the exact data a run used."""
        digest = hashlib.sha256()
        for array in (self.numbers, self.positions, self.offsets, self.ids):
            digest.update(np.ascontiguousarray(array).tobytes())
        for name in sorted(self.properties):
            digest.update(name.encode())
            digest.update(self.units[name].encode())
            digest.update(np.ascontiguousarray(self.properties[name]).tobytes())
        return digest.hexdigest()

    def __repr__(self) -> str:
        props = ", ".join(f"{k} [{self.units[k]}]" for k in self.properties)
        return (
            f"Molecules({len(self)} molecules, {self.n_atoms_total} atoms, "
            f"elements {[element_symbol(z) for z in self.elements]}, properties: {props})"
        )


def _hill_key(symbol: str, has_carbon: bool) -> tuple[int, str]:
    if has_carbon and symbol == "C":
        return (0, "")
    if has_carbon and symbol == "H":
        return (1, "")
    return (2, symbol)
