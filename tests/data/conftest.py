"""Fixtures of the data tests: a structure file of the kind other projects ship."""

from __future__ import annotations

from pathlib import Path

import ase.io
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule


def _water_dimer(shift: float) -> Atoms:
    first, second = molecule("H2O"), molecule("H2O")
    second.translate([0.0, 0.0, shift])
    return first + second


@pytest.fixture
def mixed_periodic_extxyz(tmp_path: Path) -> Path:
    """An extxyz like another project's test data: isolated atoms, molecules, water dimers,
    two bulk cells (pbc True) and a slab (pbc True, True, False): 12 structures, those at 5
    (bulk Cu), 7 (an Al slab) and 9 (bulk Si) periodic. Each frame has an 'energy' in eV in
    its info, with no declared unit."""
    builders = {
        0: lambda: Atoms("H", positions=[[0.0, 0.0, 0.0]]),
        1: lambda: Atoms("O", positions=[[0.0, 0.0, 0.0]]),
        2: lambda: molecule("H2O"),
        3: lambda: molecule("CH4"),
        4: lambda: _water_dimer(2.9),
        5: lambda: bulk("Cu", "fcc", a=3.6, cubic=True),
        6: lambda: molecule("NH3"),
        7: lambda: fcc111("Al", size=(2, 2, 3), vacuum=8.0),
        8: lambda: molecule("H2O"),
        9: lambda: bulk("Si", "diamond", a=5.43),
        10: lambda: molecule("CH4"),
        11: lambda: _water_dimer(3.2),
    }
    frames = []
    for i in range(len(builders)):
        atoms = builders[i]()
        atoms.info.pop("adsorbate_info", None)  # a slab's, which extxyz cannot hold
        atoms.info["energy"] = -10.0 * len(atoms) - 0.1 * i
        frames.append(atoms)
    assert [i for i, a in enumerate(frames) if a.pbc.any()] == [5, 7, 9]
    assert frames[7].pbc.tolist() == [True, True, False]
    path = tmp_path / "mixed.extxyz"
    ase.io.write(path, frames, format="extxyz")
    return path
