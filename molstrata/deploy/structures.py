"""The structures of one file `predict` is given: molecules for the models, and what else the
file holds, kept for the output.

Molecules are read through the training reader (`molstrata.data.ase_io.read_file`, units and
ids as training settles them), periodic structures left out there and flagged here. A second,
plain pass with ASE keeps what the reader does not: each structure's per-atom arrays (initial
charges, forces, ...), its cell and its calculator's results, and the periodic structures
whole, so that `predict`'s extxyz gives every structure back with its data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ase.db
import ase.io
import numpy as np
from ase import Atoms
from ase.outputs import all_outputs

from molstrata.data.ase_io import SPK_DISTANCE_KEY, Reading, is_database, read_file, to_atoms
from molstrata.data.molecules import Molecules
from molstrata.errors import MolstrataError
from molstrata.units import canonical_unit, conversion_factor

_OWN_ARRAYS = ("numbers", "positions")
"""Per-atom arrays the molecules themselves carry."""


@dataclass(frozen=True)
class Extras:
    """What one structure holds besides its atoms and the properties read: per-atom arrays
    (name -> (n_atoms, ...)), the cell (3, 3) in Å and the calculator's results."""

    arrays: Mapping[str, np.ndarray]
    cell: np.ndarray | None
    results: Mapping[str, Any]

    def apply(self, atoms: Atoms) -> Atoms:
        """`atoms` with these arrays and cell; per-atom results (forces) become arrays and the
        others (an energy, a stress) info entries, where info does not hold one already: the
        extxyz writer writes both, and ASE reads them back as calculator results."""
        for name, values in self.arrays.items():
            atoms.arrays[name] = np.array(values)
        if self.cell is not None:
            atoms.cell = self.cell
        for name, value in self.results.items():
            value = np.asarray(value)
            if _per_atom(name, value, len(atoms)):
                atoms.arrays.setdefault(name, value.copy())
            elif name not in atoms.info:
                atoms.info[name] = value.item() if value.ndim == 0 else value.copy()
        return atoms


def _per_atom(name: str, value: np.ndarray, n_atoms: int) -> bool:
    """Whether a calculator result holds one entry per atom: by ASE's table of outputs
    (forces, charges: yes; stress, dipole: no), else by its shape."""
    known = all_outputs.get(name)
    if known is not None:
        return bool(known.shapespec) and known.shapespec[0] == "natoms"
    return value.ndim >= 1 and len(value) == n_atoms


@dataclass(frozen=True, eq=False)
class StructureFile:
    """One input file: every structure in file order, the non-periodic ones as `molecules`.

    periodic: (n_structures,) bool. reference: (n_structures,) the target in the model's unit
    (NaN for a periodic structure), None where the file does not hold it. extras: per
    structure what `Extras` keeps, or None. periodic_atoms: the periodic structures (positions
    and cell in Å, their calculator results in `extras`), in file order. notes: the reader's
    lines for the user (`Reading.notes`); undeclared: numbers the file holds with no unit,
    which were not read (`Reading.undeclared`).
    """

    path: Path
    molecules: Molecules
    periodic: np.ndarray
    reference: np.ndarray | None
    reference_name: str | None
    extras: list[Extras | None]
    periodic_atoms: list[Atoms]
    notes: tuple[str, ...] = ()
    undeclared: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.periodic)

    @property
    def molecule_rows(self) -> np.ndarray:
        """(n_molecules,) the structure index of each molecule."""
        return np.flatnonzero(~self.periodic)

    def formulas(self) -> list[str]:
        """Hill formulas of every structure."""
        out = np.empty(len(self), dtype=object)
        out[~self.periodic] = self.molecules.formulas()
        if self.periodic_atoms:
            out[self.periodic] = _as_molecules(self.periodic_atoms).formulas()
        return out.tolist()

    def sizes(self) -> np.ndarray:
        """(n_structures,) atoms of every structure."""
        out = np.zeros(len(self), dtype=np.int64)
        out[~self.periodic] = self.molecules.sizes
        out[self.periodic] = [len(atoms) for atoms in self.periodic_atoms]
        return out

    def ids(self) -> list[int | str | None]:
        """The molecules' identifiers (as training reads them: the file's own where it has
        them, `Molecules.identifiers`); None for a periodic structure."""
        out: list[int | str | None] = [None] * len(self)
        for row, i in zip(self.molecule_rows.tolist(), self.molecules.identifiers()):
            out[row] = i
        return out

    def atoms(self) -> Iterator[Atoms]:
        """Every structure as ASE Atoms for the output: a molecule as `to_atoms` writes it
        (positions in Å, properties in molstrata's units, declared) with its extras; a
        periodic structure as the file holds it."""
        periodic = iter(self.periodic_atoms)
        molecule = 0
        for row in range(len(self)):
            if self.periodic[row]:
                atoms = next(periodic).copy()
            else:
                atoms = to_atoms(self.molecules, molecule)
                molecule += 1
            extras = self.extras[row]
            yield extras.apply(atoms) if extras is not None else atoms


def read_structures(path: str | Path, target: str, unit: str, property_name: str | None,
                    property_unit: str | None) -> StructureFile:
    """A structure file for a model of `target` in `unit`, with the reference converted to
    `unit` where the file holds the target (or `property_name`, in `property_unit`)."""
    path = Path(path)
    properties = {property_name: property_unit} if property_name else None
    try:
        reading = read_file(path, properties, skip_periodic=True)
    except MolstrataError:
        if not _only_periodic(path):
            raise
        reading = Reading(Molecules.from_lists([], []), 0, ())
    molecules, notes, undeclared = reading.molecules, reading.notes, reading.undeclared
    periodic, extras, periodic_atoms = _plain_pass(path)
    if int((~periodic).sum()) != len(molecules):
        raise RuntimeError(f"{path}: {len(molecules)} molecules read, but ASE finds "
                           f"{int((~periodic).sum())} non-periodic structures")
    name = property_name or (target if target in molecules.properties else None)
    if name is None:
        return StructureFile(path, molecules, periodic, None, None, extras, periodic_atoms,
                             notes, undeclared)
    try:
        values = np.asarray(molecules.property(name, unit), dtype=np.float64)
    except MolstrataError as error:
        raise MolstrataError(f"{path}: property {name!r} cannot be compared with the model's "
                             f"{target} ({error})") from None
    reference = np.full(len(periodic), np.nan)
    reference[~periodic] = values
    return StructureFile(path, molecules, periodic, reference, name, extras, periodic_atoms,
                         notes, undeclared)


def _plain_pass(path: Path) -> tuple[np.ndarray, list[Extras | None], list[Atoms]]:
    """(periodic (n,), extras per structure, the periodic structures) of a file the training
    reader has already read (so ASE parses it)."""
    frames, factor = _frames(path)
    periodic, extras, whole = [], [], []
    for atoms in frames:
        if factor != 1.0:
            atoms.positions = atoms.positions * factor
            atoms.cell = atoms.cell.array * factor
        periodic.append(bool(atoms.pbc.any()))
        if periodic[-1]:
            results = dict(getattr(atoms.calc, "results", None) or {})
            atoms.calc = None  # its results go with the extras, which copies keep
            whole.append(atoms)
            extras.append(Extras({}, None, results) if results else None)
        else:
            extras.append(_extras(atoms))
    return np.array(periodic, dtype=bool), extras, whole


def _frames(path: Path) -> tuple[Iterator[Atoms], float]:
    """The file's structures in the training reader's order, and the factor to Å."""
    if is_database(path):
        db = ase.db.connect(path, type="db", create_indices=False, use_lock_file=False)
        unit = (db.metadata or {}).get(SPK_DISTANCE_KEY, "Angstrom")
        factor = conversion_factor(canonical_unit(str(unit)), "Angstrom")
        return (row.toatoms() for row in db.select()), factor
    return ase.io.iread(path, index=":"), 1.0


def _extras(atoms: Atoms) -> Extras | None:
    """What a molecule holds beyond its atoms, or None for nothing (most molecules)."""
    arrays = {k: v for k, v in atoms.arrays.items() if k not in _OWN_ARRAYS}
    cell = atoms.cell.array.copy() if atoms.cell.any() else None
    results = dict(getattr(atoms.calc, "results", None) or {})
    if not arrays and cell is None and not results:
        return None
    return Extras(arrays, cell, results)


def _only_periodic(path: Path) -> bool:
    """Whether ASE reads `path` and finds only periodic structures (which the training
    reader refuses, and `predict` flags)."""
    try:
        frames, _ = _frames(path)
        kinds = [bool(atoms.pbc.any()) for atoms in frames]
    except Exception:  # any failure to read it: the training reader's own error stands
        return False
    return bool(kinds) and all(kinds)


def _as_molecules(atoms_list: list[Atoms]) -> Molecules:
    return Molecules.from_lists([a.numbers for a in atoms_list],
                                [a.positions for a in atoms_list])
