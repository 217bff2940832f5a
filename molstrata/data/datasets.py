"""One entry point for the data a command works on: QM9 by default, or a user's ASE file."""

from __future__ import annotations

import os
from pathlib import Path

from molstrata.data.molecules import Molecules
from molstrata.errors import MolstrataError

QM9_NAMES = ("qm9", "QM9")


def load_dataset(
    dataset: str | os.PathLike | None = None,
    property_name: str | None = None,
    unit: str | None = None,
    *,
    cache_root: str | os.PathLike | None = None,
    progress: bool = True,
) -> Molecules:
    """QM9 (the default) or the molecules of an ASE-readable file, with `property_name` checked.

    For a file, `property_name` is the name of the per-structure property to read and `unit`
    its unit in the file (None: taken from the file's metadata where it has one).
    """
    if dataset is None or str(dataset) in QM9_NAMES:
        from molstrata.data.qm9 import load_qm9

        if unit is not None:
            raise MolstrataError(
                "--unit applies to a file given with --dataset; QM9's units are known "
                "(energies in eV): drop --unit"
            )
        molecules = load_qm9(cache_root, progress=progress)
        if property_name is not None:
            molecules.property(property_name)
        return molecules
    from molstrata.data.ase_io import read_molecules

    path = Path(dataset)
    properties = {property_name: unit} if property_name else {}
    if unit is not None and property_name is None:
        raise MolstrataError("--unit needs --property: name the property the unit belongs to")
    return read_molecules(path, properties)
