"""Molecules in and out of files through ASE: extxyz, xyz and ASE databases (SchNetPack 2's too).

This is an edge of molstrata, so units are settled here: each property is converted to the
internal unit of its dimension (`molstrata.units.internal_unit`, eV for energies) and positions
to Å. Writers are atomic: they fill a temporary file next to the target and `os.replace` it, so
an interrupted write never leaves a partial file.
"""

from __future__ import annotations

import itertools
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import ase.db
import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.data import atomic_numbers
from ase.io.extxyz import key_val_dict_to_str, key_val_str_to_dict
from ase.io.formats import UnknownFileTypeError, string2index

from molstrata._files import atomic_open, atomic_path
from molstrata.data.molecules import LABEL, Molecules
from molstrata.data.values import energy_scale_warning
from molstrata.errors import MolstrataError
from molstrata.units import (
    canonical_unit,
    conversion_factor,
    convert,
    dimension,
    internal_unit,
)

ID_KEY = LABEL
"""Info / key_value_pairs key holding a molecule's molstrata id: an integer, or a string
('mol88169') kept as the `LABEL` annotation."""

OWN_ID_KEYS = ("id", "name")
"""Keys of a file's own identifiers, read in this order where the structures carry no
molstrata_id: the first that every structure carries, and no two share, names them."""

UNITS_KEY = "molstrata_units"
"""extxyz info key declaring property units, e.g. 'U0=eV gap=eV' (extxyz has no file header)."""

SPK_UNITS_KEY = "_property_unit_dict"
SPK_DISTANCE_KEY = "_distance_unit"
"""SchNetPack 2's database metadata keys: property -> unit, and the unit of positions."""

FORMAT_HINT = "give a file ASE can read: extxyz, xyz, ASE .db"

_EXTXYZ_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXTXYZ_RESERVED = {"Lattice", "Properties", "pbc", "stress", "virial", "uid"}
_RESERVED = {ID_KEY, UNITS_KEY}

# What ASE's readers raise on a malformed or foreign file.
_PARSE_ERRORS = (
    OSError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AssertionError,
    sqlite3.Error,
    UnknownFileTypeError,
)

Frame = tuple[int, Atoms, tuple[Mapping[str, Any], ...]]
"""(file id, atoms, extra sources): the id is the 0-based index in the file or a db row id;
extra sources are a db row's (data, key_value_pairs), looked up after atoms.info."""

_MISSING = object()


# ---- reading --------------------------------------------------------------------------


def read_molecules(
    path: str | os.PathLike,
    properties: Mapping[str, str | None] | None = None,
    index: str = ":",
    *,
    energy_aliases: Iterable[str] = (),
    skip_periodic: bool = False,
) -> Molecules:
    """Read the structures of any file ASE reads (extxyz, xyz, ASE .db) into Molecules.

    properties: name -> unit of that property in the file; a None unit takes the file's own
        (SchNetPack's `_property_unit_dict`, or molstrata's extxyz header). None reads every
        property the file declares a unit for.
    index: ASE's selection syntax (':', '0', '10:20', '-1').
    energy_aliases: property names, besides 'energy', that may come from the calculator's
        energy (ASE's extxyz reader moves `energy=` into a SinglePointCalculator).
    skip_periodic: leave out periodic structures (slabs, bulk cells) instead of refusing the
        file; `read_file` also says which were left out.

    Values are stored in molstrata's internal unit for their dimension. ids are the integers
    of `molstrata_id` where every structure carries one, else the db row ids or the 0-based
    index in the file. String identifiers (a string `molstrata_id`, else the first of
    `OWN_ID_KEYS` every structure carries with no two alike) are kept as the `LABEL`
    annotation, which output files name the molecules by. Two structures with one
    `molstrata_id` are refused.
    """
    return read_file(path, properties, index, energy_aliases=energy_aliases,
                     skip_periodic=skip_periodic).molecules


@dataclass(frozen=True)
class Reading:
    """What one read of a file gave: its molecules, how many structures the selection held,
    the file ids of the periodic structures left out (`skip_periodic`), lines to tell the
    user (`notes`: how the molecules are identified where the file's own ids could not be
    kept, a warning when energies look like another unit), and the names of the numbers the
    first structure holds without a unit (`undeclared`), which were not read."""

    molecules: Molecules
    n_structures: int
    skipped_periodic: tuple[int, ...]
    notes: tuple[str, ...] = ()
    undeclared: tuple[str, ...] = ()

    def messages(self, source: str | os.PathLike) -> list[str]:
        """Every line to tell the user about this read: what was left out, then the notes."""
        skipped = self.skipped_text(source)
        return [skipped] * (skipped is not None) + list(self.notes)

    def skipped_text(self, source: str | os.PathLike) -> str | None:
        """One line saying what was left out, for the user; None when nothing was."""
        if not self.skipped_periodic:
            return None
        n = len(self.skipped_periodic)
        ids = ", ".join(map(str, self.skipped_periodic[:5])) + (", ..." if n > 5 else "")
        return (f"left out {n} periodic structure{'s' * (n > 1)} of {self.n_structures} in "
                f"{source} (structures {ids}), as skip_periodic asks")


def read_file(
    path: str | os.PathLike,
    properties: Mapping[str, str | None] | None = None,
    index: str = ":",
    *,
    energy_aliases: Iterable[str] = (),
    skip_periodic: bool = False,
) -> Reading:
    """`read_molecules`, with what was left out: see `Reading`."""
    path = _existing_file(path)
    if is_database(path):
        frames, metadata = _db_frames(path, index)
        declared = _declared_units(metadata.get(SPK_UNITS_KEY))
        distance_unit = metadata.get(SPK_DISTANCE_KEY, "Angstrom")
    else:
        frames, declared, distance_unit = _file_frames(path, index), None, "Angstrom"
    return _pack(frames, properties, declared, distance_unit, str(path), energy_aliases,
                 skip_periodic)


def from_atoms_list(
    atoms_list: Iterable[Atoms],
    properties: Mapping[str, str | None] | None = None,
    *,
    energy_aliases: Iterable[str] = (),
    skip_periodic: bool = False,
) -> Molecules:
    """Molecules from ASE Atoms (ids 0, 1, ... unless each carries info['molstrata_id']).

    properties, energy_aliases and skip_periodic are as in `read_molecules`; a None unit is
    taken from the first structure's info['molstrata_units'], which `to_atoms` writes.
    """
    return read_atoms(atoms_list, properties, energy_aliases=energy_aliases,
                      skip_periodic=skip_periodic).molecules


def read_atoms(
    atoms_list: Iterable[Atoms],
    properties: Mapping[str, str | None] | None = None,
    *,
    energy_aliases: Iterable[str] = (),
    skip_periodic: bool = False,
) -> Reading:
    """`from_atoms_list`, with what was left out: see `Reading`."""
    frames = ((i, atoms, ()) for i, atoms in enumerate(atoms_list))
    return _pack(frames, properties, None, "Angstrom", "the atoms list", energy_aliases,
                 skip_periodic)


def first_structure_keys(source: str | os.PathLike | Sequence[Atoms]) -> dict[str, str]:
    """name -> kind of what the first structure of a file (or list of Atoms) carries besides
    its atoms: 'number' (one number: info, db data and key_value_pairs, calculator results),
    'per-atom' (atoms.arrays, or a calculator result with one row per atom, as forces) or
    'other' (a vector, a string). To say which keys a file has when one asked for is missing."""
    if isinstance(source, str | os.PathLike):
        path = _existing_file(source)
        frames = _db_frames(path, "0")[0] if is_database(path) else _file_frames(path, "0")
        first = next(frames, None)
    else:
        first = (0, source[0], ()) if len(source) else None
    if first is None:
        raise MolstrataError(f"{source} holds no structures; give a file with molecules in it")
    _, atoms, extra = first
    n_atoms = len(atoms)
    kinds = {name: "per-atom" for name in atoms.arrays if name not in ("numbers", "positions")}
    for src in (atoms.info, *extra, _calc_results(atoms)):
        for name, value in src.items():
            if name in _RESERVED or name in kinds:
                continue
            array = None if isinstance(value, (str, bytes)) else np.asarray(value)
            kinds[name] = ("number" if _is_number(value) else
                           "per-atom" if array is not None and array.ndim >= 1
                           and len(array) == n_atoms and n_atoms > 1 else "other")
    return kinds


def _existing_file(path: str | os.PathLike) -> Path:
    """The path, once it names a non-empty file."""
    path = Path(path)
    if not path.exists():
        raise MolstrataError(f"file not found: {path}; check the path")
    if not path.is_file():
        raise MolstrataError(f"{path} is not a file; {FORMAT_HINT}")
    if path.stat().st_size == 0:
        raise MolstrataError(f"{path} is empty (no structures); give a file with molecules in it")
    return path


def is_database(path: Path) -> bool:
    """Whether to read the file as an ASE database (by suffix or by SQLite's magic bytes)."""
    with path.open("rb") as handle:
        return path.suffix.lower() == ".db" or handle.read(16) == b"SQLite format 3\x00"


def _file_frames(path: Path, index: str) -> Iterator[Frame]:
    """Structures of a file ase.io reads, with their 0-based index in the file."""
    frames = ((i, atoms, ()) for i, atoms in enumerate(ase.io.iread(path, index=":")))
    return _select(_guarded(frames, path), index)


def _db_frames(path: Path, index: str) -> tuple[Iterator[Frame], dict[str, Any]]:
    """Rows of an ASE database with their data and key_value_pairs, and its metadata."""
    _require_ase_tables(path)
    with _ase_errors(path):
        db = ase.db.connect(path, type="db", create_indices=False, use_lock_file=False)
        metadata = db.metadata
    rows = ((row.id, row.toatoms(), (row.data, row.key_value_pairs)) for row in db.select())
    return _select(_guarded(rows, path), index), dict(metadata or {})


def _require_ase_tables(path: Path) -> None:
    """Check, read-only, that an SQLite file is an ASE database (connect would add tables)."""
    try:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as con:
            query = "SELECT name FROM sqlite_master WHERE type = 'table'"
            tables = {name for (name,) in con.execute(query)}
    except sqlite3.Error as err:
        raise _parse_error(path, err) from err
    if "systems" not in tables:
        raise MolstrataError(f"{path} is an SQLite file but not an ASE database; {FORMAT_HINT}")


def _declared_units(units: Any) -> dict[str, str]:
    """SchNetPack's property -> unit dict; its None ('unit-less') is molstrata's '1'."""
    if not isinstance(units, Mapping):
        return {}
    return {str(name): "1" if unit is None else str(unit) for name, unit in units.items()}


def _units_from_info(info: Mapping[str, Any]) -> dict[str, str]:
    """Units declared in an info string 'name=unit name=unit' (see `UNITS_KEY`)."""
    text = info.get(UNITS_KEY)
    if not isinstance(text, str):
        return {}
    pairs = (item.partition("=") for item in text.split())
    return {name: unit for name, _, unit in pairs if name and unit}


def _select(frames: Iterator[Frame], index: str) -> Iterator[Frame]:
    """The frames picked by an ASE index string, lazily unless it counts from the end."""
    try:
        selection = string2index(index)
    except ValueError:
        selection = None
    if not isinstance(selection, (int, slice)):
        raise MolstrataError(
            f"bad index {index!r}; use ASE's syntax, e.g. ':', '0', '10:20' or '-1'"
        )
    if isinstance(selection, int):
        selection = slice(selection, selection + 1 or None)
    start, stop, step = selection.start, selection.stop, selection.step
    if any(v is not None and v < 0 for v in (start, stop, step)):
        return iter(list(frames)[selection])
    return itertools.islice(frames, start, stop, step)


def _guarded(frames: Iterable[Frame], path: Path) -> Iterator[Frame]:
    """The frames, with ASE's parse errors turned into one-line MolstrataErrors that name the
    file and the 0-based position of the structure being read."""
    iterator = iter(frames)
    for position in itertools.count():
        with _ase_errors(path, position):
            frame = next(iterator, None)
        if frame is None:
            return
        yield frame


@contextmanager
def _ase_errors(path: Path, position: int | None = None) -> Iterator[None]:
    """Turn what ASE raises on a file it cannot parse into a MolstrataError naming the file."""
    try:
        yield
    except _PARSE_ERRORS as err:
        raise _parse_error(path, err, position) from err


def _parse_error(path: Path, err: Exception, position: int | None = None) -> MolstrataError:
    key = err.args[0] if isinstance(err, KeyError) and err.args else None
    where = "" if position is None else f" at structure {position}"
    if isinstance(key, str) and key.isalpha() and len(key) <= 3 and key not in atomic_numbers:
        return MolstrataError(
            f"{path}{where} names an unknown chemical element {key!r}; fix the symbol "
            "(H, C, N, O, F, ...) in that file"
        )
    detail = (str(err).strip().splitlines() or [""])[0]
    return MolstrataError(
        f"ASE cannot read {path}{where} ({type(err).__name__}: {detail}); {FORMAT_HINT}"
    )


# ---- packing structures into Molecules --------------------------------------------------


def _pack(
    frames: Iterable[Frame],
    properties: Mapping[str, str | None] | None,
    declared: Mapping[str, str] | None,
    distance_unit: str,
    source: str,
    energy_aliases: Iterable[str],
    skip_periodic: bool,
) -> Reading:
    """One pass over the frames into Molecules, with units settled before it starts.

    Periodic structures are counted, not packed: left out with `skip_periodic`, else the
    file is refused once all are counted, so that the error says how many there are.
    """
    aliases = (energy_aliases,) if isinstance(energy_aliases, str) else tuple(energy_aliases)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise MolstrataError(f"{source} holds no structures; give a file with molecules in it")
    if declared is None:
        declared = _units_from_info(first[1].info)
    file_units = _file_units(properties, declared, source)
    undeclared = _undeclared(first, declared, file_units)
    columns = _Columns(
        names=list(file_units),
        source=source,
        energy_names=frozenset({"energy", *aliases}),
        length_factor=_length_factor(distance_unit, source),
    )
    periodic: list[tuple[int, str]] = []
    n_structures = 0
    for frame in itertools.chain([first], frames):
        n_structures += 1
        kind = periodic_kind(frame[1].pbc)
        if kind is not None:
            periodic.append((frame[0], kind))
        elif skip_periodic or not periodic:  # once the file is refused, only count
            columns.add(*frame)
    if periodic and not skip_periodic:
        raise _periodic_error(periodic, n_structures, source)
    if not columns.file_ids:
        raise MolstrataError(
            f"{source} holds only periodic structures ({n_structures}); molstrata handles "
            "molecules only: give a file with non-periodic structures"
        )
    molecules, notes = columns.build(file_units)
    notes += _scale_warnings(molecules, file_units, properties, source)
    return Reading(molecules, n_structures, tuple(i for i, _ in periodic), tuple(notes),
                   undeclared)


def _undeclared(first: Frame, declared: Mapping[str, str],
                file_units: Mapping[str, str]) -> tuple[str, ...]:
    """Names of the numbers the first structure holds (info, db row, calculator) for which
    the file declares no unit and the caller asked for none."""
    _, atoms, extra = first
    skip = _RESERVED | set(declared) | set(file_units) | set(OWN_ID_KEYS)
    names = [name for src in (atoms.info, *extra, _calc_results(atoms)) for name, value in
             src.items() if name not in skip and _is_number(value)]
    return tuple(dict.fromkeys(names))


def _is_number(value: Any) -> bool:
    if isinstance(value, (str, bytes, bool, np.bool_)):
        return False
    array = np.asarray(value)
    return array.dtype.kind in "iuf" and array.size == 1


def _scale_warnings(molecules: Molecules, file_units: Mapping[str, str],
                    properties: Mapping[str, str | None] | None, source: str) -> list[str]:
    """`molstrata.data.values.energy_scale_warning` for every energy read, with the fix: the
    unit option where the caller gave the unit, the file's declaration where it gave it."""
    given = properties or {}
    notes = []
    for name, unit in file_units.items():
        if dimension(unit) != "energy" or not len(molecules):
            continue
        fix = partial(_unit_fix, source=source, name=name, unit=unit,
                      declared=given.get(name) is None)
        note = energy_scale_warning(molecules, name, unit, source, fix)
        if note is not None:
            notes.append(note)
    return notes


def _unit_fix(other: str, *, source: str, name: str, unit: str, declared: bool) -> str:
    """How to read property `name` in unit `other`: fix the file's declaration, or give the
    unit option in each place a file is read from."""
    if declared:
        return f"fix the unit {source} declares for {name} ({unit} -> {other})"
    return (f"give their unit: --unit {other} (command line; [data] unit in a train config; "
            f"unit={other!r} in Python)")


def periodic_kind(pbc: np.ndarray) -> str | None:
    """What a structure periodic along `pbc` (3 bools) is: 'a bulk cell' (3 directions),
    'a slab' (2), 'a wire' (1); None for a molecule."""
    return {0: None, 1: "a wire", 2: "a slab", 3: "a bulk cell"}[int(np.count_nonzero(pbc))]


def _periodic_error(periodic: list[tuple[int, str]], n_structures: int,
                    source: str) -> MolstrataError:
    """The refusal of a file with periodic structures, naming the way to leave them out in
    each place a file is read from: the command line, a train config, Python."""
    first_id, kind = periodic[0]
    n = len(periodic)
    return MolstrataError(
        f"{source} holds {n} periodic structure{'s' * (n > 1)} (of {n_structures}; first: "
        f"structure {first_id}, {kind}); molstrata handles molecules only: leave them out "
        "with --skip-periodic (command line), [data] skip_periodic = true (train config) or "
        "skip_periodic=True (Python)"
    )


def _file_units(
    properties: Mapping[str, str | None] | None, declared: Mapping[str, str], source: str
) -> dict[str, str]:
    """name -> unit of the values in the file, from the caller and the file's declaration."""
    wanted = dict.fromkeys(declared) if properties is None else dict(properties)
    return {
        name: _file_unit(name, unit, declared.get(name), source) for name, unit in wanted.items()
    }


def _file_unit(name: str, given: str | None, declared: str | None, source: str) -> str:
    if given is None and declared is None:
        raise MolstrataError(
            f"no unit for property {name!r}: {source} does not declare one; give its unit "
            f"with --unit (command line; [data] unit in a train config) or "
            f"properties={{{name!r}: 'eV'}} (Python)"
        )
    unit = _known_unit(given if given is not None else declared, f"property {name!r}", source)
    if given is not None and declared is not None:
        stated = _known_unit(declared, f"property {name!r}", source)
        if dimension(stated) != dimension(unit) or conversion_factor(stated, unit) != 1.0:
            raise MolstrataError(
                f"property {name!r}: you gave unit {given!r} but {source} declares "
                f"{declared!r}; give None to use the file's unit, or fix the file"
            )
    return unit


def _known_unit(unit: str, what: str, source: str) -> str:
    """The canonical spelling of a unit, or a MolstrataError saying whose unit it was."""
    try:
        return canonical_unit(str(unit))
    except MolstrataError as err:
        raise MolstrataError(f"{what} in {source}: {err}") from err


def _length_factor(unit: str, source: str) -> float:
    """Factor from the file's distance unit to Å."""
    try:
        return conversion_factor(_known_unit(unit, SPK_DISTANCE_KEY, source), "Angstrom")
    except MolstrataError as err:
        raise MolstrataError(f"{SPK_DISTANCE_KEY} of {source}: {err}") from err


@dataclass
class _Columns:
    """Per-molecule columns gathered in the one pass over a file's structures."""

    names: list[str]
    source: str
    energy_names: frozenset[str]
    length_factor: float
    numbers: list[np.ndarray] = field(default_factory=list)
    positions: list[np.ndarray] = field(default_factory=list)
    file_ids: list[int] = field(default_factory=list)
    given_ids: dict[str, list[int | str] | None] = field(
        default_factory=lambda: {key: [] for key in (ID_KEY, *OWN_ID_KEYS)})
    values: dict[str, list[float]] = field(default_factory=dict)
    texts: dict[str, list[str]] | None = None

    def add(self, file_id: int, atoms: Atoms, extra: tuple[Mapping[str, Any], ...]) -> None:
        """Take one structure: atoms, requested properties, id and string annotations."""
        _check_molecule(atoms, file_id, self.source)
        sources = (atoms.info, *extra, _calc_results(atoms))
        self.numbers.append(atoms.numbers)
        factor = self.length_factor
        self.positions.append(atoms.positions if factor == 1 else atoms.positions * factor)
        self.file_ids.append(file_id)
        for name in self.names:
            value = _lookup(name, atoms, sources, self.energy_names)
            if value is _MISSING:
                raise _missing_error(name, file_id, sources, self.source)
            self.values.setdefault(name, []).append(_scalar(value, name, file_id, self.source))
        for key, ids in self.given_ids.items():
            if ids is not None:
                self._add_id(key, ids, _lookup(key, atoms, sources, frozenset()), file_id)
        self._add_texts(sources)

    def _add_id(self, key: str, ids: list[int | str], value: Any, file_id: int) -> None:
        """Take one structure's identifier under `key`; a key some structure lacks, or holds
        something else than an integer or a string under, names no molecules."""
        number = np.asarray(value) if value is not _MISSING else None
        if isinstance(value, str):
            ids.append(value)
        elif number is not None and number.dtype.kind in "iu" and number.size == 1:
            ids.append(int(number.reshape(())))
        elif key == ID_KEY and value is not _MISSING:
            raise MolstrataError(
                f"{ID_KEY} of structure {file_id} in {self.source} is {value!r}, not an "
                f"integer or a string; fix or remove {ID_KEY}"
            )
        else:
            self.given_ids[key] = None

    def _add_texts(self, sources: tuple[Mapping[str, Any], ...]) -> None:
        """Keep the string-valued keys every structure so far has: the annotations."""
        skip = _RESERVED | set(self.names)
        strings = {
            k: v for src in sources for k, v in src.items() if isinstance(v, str) and k not in skip
        }
        if self.texts is None:
            self.texts = {k: [v] for k, v in strings.items()}
            return
        for name in list(self.texts):
            if name in strings:
                self.texts[name].append(strings[name])
            else:
                del self.texts[name]

    def build(self, file_units: Mapping[str, str]) -> tuple[Molecules, list[str]]:
        """The Molecules, with each property converted to its internal unit, and the notes
        on how they are identified (see `identify`)."""
        units = {name: internal_unit(unit) for name, unit in file_units.items()}
        properties = {
            name: convert(self.values.get(name, []), file_units[name], units[name])
            for name in self.names
        }
        ids, labels, notes = self.identify()
        annotations = dict(self.texts or {})
        if labels is not None:
            annotations[LABEL] = labels
        molecules = Molecules.from_lists(
            self.numbers,
            self.positions,
            properties=properties,
            units=units,
            ids=ids,
            annotations=annotations,
        )
        return molecules, notes

    def identify(self) -> tuple[list[int], list[str] | None, list[str]]:
        """(ids, string identifiers or None, notes): the first key of `ID_KEY`, then
        `OWN_ID_KEYS`, that every structure carries names them; integers are the ids,
        anything else is kept as strings, the ids being the file ids. Two structures sharing
        a `molstrata_id` are refused; a key of the file's own with repeated values (a
        molecule's name on each of its conformers) names no structures, which a note says."""
        notes = []
        for key, values in self.given_ids.items():
            if values is None or not self.file_ids:
                continue
            repeated = _repeated(values)
            if repeated is not None:
                first, second = (self.file_ids[i] for i in repeated)
                value = values[repeated[0]]
                if key == ID_KEY:
                    raise MolstrataError(
                        f"structures {first} and {second} of {self.source} share {ID_KEY} "
                        f"{value!r}; each structure needs its own: make them unique, or "
                        f"remove {ID_KEY} from every structure to number them by position"
                    )
                notes.append(
                    f"structures {first} and {second} of {self.source} share {key} {value!r}, "
                    f"so {key} does not identify them: they are numbered by position; give "
                    f"each a unique {ID_KEY} to keep ids of your own"
                )
                continue
            if all(isinstance(v, int) for v in values):
                return list(values), None, notes
            return self.file_ids, [str(v) for v in values], notes
        return self.file_ids, None, notes


def _repeated(values: list[int | str]) -> tuple[int, int] | None:
    """Positions of the first two equal identifiers (compared as text), or None."""
    seen: dict[str, int] = {}
    for position, value in enumerate(values):
        key = str(value)
        if key in seen:
            return seen[key], position
        seen[key] = position
    return None


def _check_molecule(atoms: Atoms, file_id: int, source: str) -> None:
    """Refuse what is not a molecule: empty structures, dummy atoms (periodic structures are
    sorted out before, in `_pack`)."""
    where = f"structure {file_id} in {source}"
    if len(atoms) == 0:
        raise MolstrataError(f"{where} has no atoms; remove it from the file")
    if not atoms.numbers.all():
        raise MolstrataError(f"{where} has a dummy atom 'X'; remove it or give its element")


def _calc_results(atoms: Atoms) -> Mapping[str, Any]:
    """Results stored on the attached calculator (where ASE's extxyz reader puts `energy=`)."""
    results = getattr(atoms.calc, "results", None)
    return results if isinstance(results, Mapping) else {}


def _lookup(
    name: str, atoms: Atoms, sources: tuple[Mapping[str, Any], ...], energy_names: frozenset[str]
) -> Any:
    """A structure's value for `name`: info, db data, key_value_pairs, calculator results,
    then for energy names the calculator's potential energy; _MISSING if none has it."""
    for source in sources:
        if name in source:
            return source[name]
    if name in energy_names and atoms.calc is not None:
        try:
            return atoms.get_potential_energy()
        except PropertyNotImplementedError:
            return _MISSING
    return _MISSING


def _scalar(value: Any, name: str, file_id: int, source: str) -> float:
    """A property value as one float; NaN and inf pass (targets are checked later)."""
    array = np.asarray(value) if not isinstance(value, (str, bytes)) else None
    if array is None or array.dtype.kind not in "iuf" or array.size != 1:
        shown = repr(value) if array is None or array.size == 1 else f"shape {array.shape}"
        raise MolstrataError(
            f"property {name!r} of structure {file_id} in {source} is {shown}, not one "
            "number; ask only for properties with one number per molecule"
        )
    return float(array.reshape(()))


def _missing_error(
    name: str, file_id: int, sources: tuple[Mapping[str, Any], ...], source: str
) -> MolstrataError:
    have = sorted({str(k) for src in sources for k in src} - _RESERVED)
    return MolstrataError(
        f"property {name!r} is missing in structure {file_id} of {source}, which has: "
        f"{', '.join(have) or 'no properties'}; ask for one of those"
    )


# ---- writing --------------------------------------------------------------------------


def to_atoms(molecules: Molecules, i: int) -> Atoms:
    """Molecule i as non-periodic ASE Atoms; info holds its properties (keys are the names),
    molstrata_id (its string identifier where it has one, `LABEL`), the annotations as
    strings and the property units (`UNITS_KEY`)."""
    numbers, positions = molecules.atoms_of(i)
    atoms = Atoms(numbers=numbers.astype(np.int64), positions=positions, pbc=False)
    atoms.info.update({name: float(values[i]) for name, values in molecules.properties.items()})
    atoms.info[ID_KEY] = int(molecules.ids[i])
    atoms.info.update({name: str(values[i]) for name, values in molecules.annotations.items()})
    if molecules.properties:
        atoms.info[UNITS_KEY] = " ".join(
            f"{name}={unit}" for name, unit in _write_units(molecules).items()
        )
    return atoms


def write_extxyz(molecules: Molecules, path: str | os.PathLike) -> None:
    """Write all molecules to an extxyz file, atomically (properties and ids in each frame's
    info, positions to 1e-8 Å), readable back by `read_molecules` with the same values."""
    _check_names(molecules, "extxyz", _EXTXYZ_RESERVED)
    with atomic_open(path, "w") as handle:
        for i in range(len(molecules)):
            atoms = to_atoms(molecules, i)
            _check_extxyz_strings(molecules, atoms, i)
            ase.io.write(handle, atoms, format="extxyz")


def write_db(molecules: Molecules, path: str | os.PathLike) -> None:
    """Write all molecules to a new ASE database, replacing any file there atomically.

    Properties go to row.data as 1-element arrays and the units to the metadata, as SchNetPack
    2 reads them; the integer molstrata_id goes to key_value_pairs; annotations (free strings,
    which ASE refuses in key_value_pairs when they look like numbers) go to row.data, string
    identifiers (`LABEL`) under molstrata_id, where the reader looks first.
    """
    _check_names(molecules, "ASE database", set())
    metadata = {
        SPK_UNITS_KEY: _write_units(molecules),
        SPK_DISTANCE_KEY: "Ang",
        "atomrefs": {},
    }
    with atomic_path(path) as tmp:
        db = ase.db.connect(tmp, type="db", use_lock_file=False)
        with db:
            for i in range(len(molecules)):
                atoms = to_atoms(molecules, i)
                info, atoms.info = atoms.info, {}
                data = _db_data(info)
                if LABEL in molecules.annotations:
                    data[LABEL] = info[ID_KEY]
                db.write(atoms, key_value_pairs={ID_KEY: int(molecules.ids[i])}, data=data)
        db.metadata = metadata


def _db_data(info: Mapping[str, Any]) -> dict[str, Any]:
    """row.data from `to_atoms`' info: numbers as 1-element arrays (SchNetPack), strings as is."""
    return {
        name: np.array([value]) if isinstance(value, float) else value
        for name, value in info.items()
        if name not in _RESERVED
    }


def _write_units(molecules: Molecules) -> dict[str, str]:
    """name -> canonical unit of each property, as files record them."""
    return {name: _known_unit(molecules.units[name], f"property {name!r}", "molecules")
            for name in molecules.properties}


def _check_names(molecules: Molecules, fmt: str, reserved: set[str]) -> None:
    """Refuse names the format cannot hold as keys, or that clash with reserved keys."""
    names = [*molecules.properties, *molecules.annotations]
    for name in names:
        if name == LABEL and name in molecules.annotations:
            continue  # the molecules' own identifiers, written as their molstrata_id
        if not _EXTXYZ_KEY.fullmatch(name) or name in reserved | _RESERVED:
            raise MolstrataError(
                f"cannot write {name!r} to {fmt}: names must be letters, digits and '_' and not "
                f"one of {sorted(reserved | _RESERVED)}; rename it"
            )
    if len(set(names)) < len(names):
        raise MolstrataError(
            f"a name is both a property and an annotation in {names}; rename one before writing"
        )


def _check_extxyz_strings(molecules: Molecules, atoms: Atoms, i: int) -> None:
    """Refuse annotations extxyz would read back as something else ('', 'T', '12')."""
    for name in molecules.annotations:
        value = atoms.info[name]
        back = key_val_str_to_dict(key_val_dict_to_str({name: value})).get(name)
        if not isinstance(back, str) or back != value:
            raise MolstrataError(
                f"annotation {name!r} of molecule id {molecules.ids[i]} is {value!r}, which "
                "extxyz reads back as something else; write an ASE .db instead"
            )
