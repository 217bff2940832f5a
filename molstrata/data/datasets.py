"""One entry point for the data a command works on: QM9 by default, or a user's ASE file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from molstrata.data.molecules import Molecules
from molstrata.errors import OptionError

QM9_NAMES = ("qm9", "QM9")

DEFAULT_TARGET = "U0"
"""QM9's property a run trains on, and `data describe` checks, unless another is named."""


def load_dataset(
    dataset: str | os.PathLike | None = None,
    property_name: str | None = None,
    unit: str | None = None,
    *,
    cache_root: str | os.PathLike | None = None,
    progress: bool = True,
    skip_periodic: bool = False,
    log: Callable[[str], None] | None = None,
) -> Molecules:
    """QM9 (the default) or the molecules of an ASE-readable file, with `property_name` checked.

    For a file, `property_name` is the name of the per-structure property to read and `unit`
    its unit in the file (None: taken from the file's metadata where it has one).
    skip_periodic leaves a file's periodic structures out (else they are refused), and `log`
    (e.g. print) is told how many were left out, how the molecules are identified where the
    file's own ids could not be kept, and whether its energies look like another unit
    (`molstrata.data.ase_io.Reading.messages`). QM9 has none of these.
    """
    if is_qm9(dataset):
        from molstrata.data.qm9 import load_qm9

        if unit is not None:
            raise OptionError("unit", "applies to a property read from a file; QM9's units "
                                      "are known (energies in eV): leave it out")
        molecules = load_qm9(cache_root, progress=progress)
        if property_name is not None:
            molecules.property(property_name)
        return molecules
    from molstrata.data.ase_io import read_file

    path = Path(dataset)
    properties = {property_name: unit} if property_name else {}
    if unit is not None and property_name is None:
        raise OptionError("unit", "needs the property it belongs to: name that property too")
    reading = read_file(path, properties, skip_periodic=skip_periodic)
    if log is not None:
        for line in reading.messages(path):
            log(line)
    return reading.molecules


def is_qm9(dataset: str | os.PathLike | None) -> bool:
    """Whether `dataset` names QM9 (None, 'qm9' or 'QM9') rather than a file."""
    return dataset is None or str(dataset) in QM9_NAMES


def described_property(dataset: str | os.PathLike | None, property_name: str | None) -> str | None:
    """The property whose values `data describe` checks: the one named, else QM9's default
    target; None for a file read without a property (there are no values to check)."""
    if property_name is not None:
        return property_name
    return DEFAULT_TARGET if is_qm9(dataset) else None


def is_extensive(dataset: str | os.PathLike | None, property_name: str) -> bool:
    """Whether a property sums over atoms: QM9's own rule for its properties (energies, ZPVE,
    polarizability, <R²>, Cv sum; orbital energies, dipole, rotational constants do not);
    a property of a user's file is taken to be an energy, which sums."""
    if is_qm9(dataset):
        from molstrata.data.qm9 import QM9_PROPERTIES

        known = QM9_PROPERTIES.get(property_name)
        return True if known is None else known.extensive
    return True
