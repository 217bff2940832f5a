"""QM9 from the `qm9pack` package: all 130,831 molecules, every scalar property, in eV and Å.

qm9pack ships the dataset as CSV files in `qm9pack/data/` (energies in Hartree). We read those
files directly (qm9pack's own `get_data` needs `pkg_resources`) and never import the package.
The first load parses the CSVs and writes a cache; later loads read the cache in a fraction of
a second. A cache from another molstrata version or from changed CSVs is rebuilt.
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import molstrata
from molstrata.data import cache
from molstrata.data.molecules import Molecules
from molstrata.errors import MolstrataError
from molstrata.progress import progress_bar
from molstrata.units import conversion_factor

N_MOLECULES = 130_831
CACHE_FORMAT = 1
PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")


@dataclass(frozen=True)
class Qm9Property:
    """One scalar property of QM9: its CSV column, units, and how it scales with size."""

    column: str
    source_unit: str
    unit: str
    extensive: bool
    description: str


QM9_PROPERTIES: dict[str, Qm9Property] = {
    "U0": Qm9Property("InternalEnergy_0K_au", "Hartree", "eV", True, "internal energy at 0 K"),
    "U": Qm9Property("InternalEnergy_298K_au", "Hartree", "eV", True, "internal energy at 298 K"),
    "H": Qm9Property("Enthalphy_298K_au", "Hartree", "eV", True, "enthalpy at 298 K"),
    "G": Qm9Property("GibbsFreeEnergy_298K_au", "Hartree", "eV", True, "free energy at 298 K"),
    "homo": Qm9Property("HOMO_au", "Hartree", "eV", False, "HOMO energy"),
    "lumo": Qm9Property("LUMO_au", "Hartree", "eV", False, "LUMO energy"),
    "gap": Qm9Property("HOMO_LUMO_gap_au", "Hartree", "eV", False, "HOMO-LUMO gap"),
    "zpve": Qm9Property("ZPVE_au", "Hartree", "eV", True, "zero-point vibrational energy"),
    "mu": Qm9Property("Dipole_debye", "Debye", "Debye", False, "dipole moment"),
    "alpha": Qm9Property(
        "Polarizability_bohr3", "Bohr**3", "Angstrom**3", True, "isotropic polarizability"
    ),
    "r2": Qm9Property("R2_bohr2", "Bohr**2", "Angstrom**2", True, "electronic spatial extent <R²>"),
    "Cv": Qm9Property(
        "Heatcapacity_Cv_cal_mol_K", "cal/mol/K", "cal/mol/K", True, "heat capacity at 298 K"
    ),
    "A": Qm9Property("RotA_GHz", "GHz", "GHz", False, "rotational constant A"),
    "B": Qm9Property("RotB_GHz", "GHz", "GHz", False, "rotational constant B"),
    "C": Qm9Property("RotC_GHz", "GHz", "GHz", False, "rotational constant C"),
}

_SYMBOL_TO_Z = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}


def data_dir() -> Path:
    """The folder of qm9pack's CSV files, found without importing qm9pack."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise MolstrataError(
            "QM9 needs the package qm9pack, which is not installed; run: pip install qm9pack"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    missing = [name for name in PARTS if not (folder / name).is_file()]
    if missing:
        raise MolstrataError(
            f"qm9pack's data files {missing} are missing from {folder}; "
            "reinstall it: pip install --force-reinstall qm9pack"
        )
    return folder


def cache_path(cache_root: str | os.PathLike | None = None) -> Path:
    """Where the QM9 cache lives (see `molstrata.data.cache.cache_dir`)."""
    return cache.cache_dir(cache_root) / "qm9.npz"


def cache_key(folder: Path) -> dict:
    """What a valid cache must have been built from (without the contents' digest, which
    `load_qm9` computes only when the files' times differ from the cache's)."""
    try:
        qm9pack_version = importlib.metadata.version("qm9pack")
    except importlib.metadata.PackageNotFoundError:
        qm9pack_version = "unknown"
    return {
        "format": CACHE_FORMAT,
        "molstrata": molstrata.__version__,
        "qm9pack": qm9pack_version,
        "sources": cache.source_stamp([folder / name for name in PARTS]),
    }


def load_qm9(
    cache_root: str | os.PathLike | None = None,
    *,
    use_cache: bool = True,
    progress: bool = True,
) -> Molecules:
    """All of QM9 as Molecules (ids: QM9's index; annotation `smiles`).

    Reads the cache when it is valid, else parses qm9pack's CSVs and writes the cache.
    """
    folder = data_dir()
    key = cache_key(folder)
    path = cache_path(cache_root)
    if use_cache:
        stored = cache.stored_key(path)
        if stored is not None and _same_sources(stored, key, folder):
            arrays = cache.load(path, stored)
            if arrays is not None:
                return _from_arrays(arrays)
        if path.exists():
            print(f"molstrata: rebuilding the stale or damaged QM9 cache {path}", file=sys.stderr)
    arrays = parse_csv(folder, progress=progress)
    if use_cache:
        try:
            cache.save(path, arrays, {**key, "digest": _digest(folder)})
        except OSError as error:
            print(f"molstrata: could not write the QM9 cache {path} ({error}); "
                  f"set {cache.ENV_VAR} to a writable folder", file=sys.stderr)
    return _from_arrays(arrays)


def _digest(folder: Path) -> str:
    return cache.source_digest([folder / name for name in PARTS])


def _same_sources(stored: dict, key: dict, folder: Path) -> bool:
    """Whether a cache written under `stored` holds what `key` asks for. Equal keys (the
    digest aside) say so at once; keys that differ only in the files' modification times (the
    same qm9pack installed again, or in another environment sharing the cache) say so when
    the files' contents still have the digest the cache was written with."""
    key = cache.plain(key)
    stored = dict(stored)
    digest = stored.pop("digest", None)
    if stored == key:
        return True
    if digest is None or {**stored, "sources": None} != {**key, "sources": None}:
        return False
    sizes = [entry[:2] for entry in stored["sources"]] == [entry[:2] for entry in key["sources"]]
    return sizes and digest == _digest(folder)


def parse_csv(folder: Path, progress: bool = True) -> dict[str, np.ndarray]:
    """Parse qm9pack's CSV files into the packed arrays of a Molecules."""
    csv.field_size_limit(sys.maxsize)
    columns = ["Index", "SMILES", "N_atoms", "Elements", "XYZ_Ang"]
    columns += [spec.column for spec in QM9_PROPERTIES.values()]
    rows: dict[str, list[str]] = {name: [] for name in columns}
    with progress_bar(total=N_MOLECULES, show=progress, desc="parsing QM9 CSV",
                      unit="mol") as bar:
        for name in PARTS:
            _read_part(folder / name, columns, rows, bar)
    return _pack(rows)


def _read_part(path: Path, columns: list[str], rows: dict[str, list[str]], bar) -> None:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None) or []
        missing = [c for c in columns if c not in header]
        if missing:
            raise MolstrataError(
                f"{path} lacks the columns {missing}; reinstall qm9pack (pip install "
                "--force-reinstall qm9pack)"
            )
        where = [header.index(c) for c in columns]
        lists = [rows[c] for c in columns]
        for count, record in enumerate(reader, 1):
            for target, position in zip(lists, where):
                target.append(record[position])
            if count % 4096 == 0:
                bar.update(4096)
        bar.update(count % 4096)


def _pack(rows: dict[str, list[str]]) -> dict[str, np.ndarray]:
    sizes = np.asarray(rows["N_atoms"], dtype=np.int64)
    symbols = ",".join(rows["Elements"]).translate(str.maketrans("", "", "[]' \"")).split(",")
    xyz = ",".join(rows["XYZ_Ang"]).translate(str.maketrans("", "", "[] ")).split(",")
    try:
        numbers = np.asarray([_SYMBOL_TO_Z[s] for s in symbols], dtype=np.uint8)
        positions = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    except (KeyError, ValueError) as error:
        raise MolstrataError(
            f"qm9pack's CSV holds an unreadable element or coordinate ({error}); "
            "reinstall it: pip install --force-reinstall qm9pack"
        ) from None
    if len(numbers) != sizes.sum() or len(positions) != sizes.sum():
        raise MolstrataError(
            "qm9pack's CSV atom counts disagree with its element and coordinate lists; "
            "reinstall it: pip install --force-reinstall qm9pack"
        )
    arrays = {
        "numbers": numbers,
        "positions": positions,
        "offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        "ids": np.asarray(rows["Index"], dtype=np.int64),
        "smiles": np.asarray(rows["SMILES"], dtype=str),
    }
    for name, spec in QM9_PROPERTIES.items():
        values = np.asarray(rows[spec.column], dtype=np.float64)
        arrays[f"property/{name}"] = values * conversion_factor(spec.source_unit, spec.unit)
    return arrays


def _from_arrays(arrays: dict[str, np.ndarray]) -> Molecules:
    return Molecules(
        numbers=arrays["numbers"],
        positions=arrays["positions"],
        offsets=arrays["offsets"],
        ids=arrays["ids"],
        properties={name: arrays[f"property/{name}"] for name in QM9_PROPERTIES},
        units={name: spec.unit for name, spec in QM9_PROPERTIES.items()},
        annotations={"smiles": arrays["smiles"]},
    )
