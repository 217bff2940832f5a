"""Units: eV and Å inside molstrata; conversions happen at the edges, through this table.

Every unit name maps to a physical dimension and its value in the internal unit of that
dimension (ASE's conventions: eV for energy, Å for length, Debye for dipole moments).
"""

from __future__ import annotations

import re

import numpy as np
from ase import units as ase_units

from molstrata.errors import MolstrataError

HARTREE_TO_EV = 27.211386245988
"""CODATA 2018 value of one Hartree in eV, the factor the study's data needs."""

BOHR_TO_ANGSTROM = 0.529177210903
"""CODATA 2018 Bohr radius in Å."""

# name -> (dimension, value of one such unit in the dimension's internal unit)
UNITS: dict[str, tuple[str, float]] = {
    "eV": ("energy", 1.0),
    "meV": ("energy", 1e-3),
    "Hartree": ("energy", HARTREE_TO_EV),
    "mHa": ("energy", HARTREE_TO_EV * 1e-3),
    "Ry": ("energy", HARTREE_TO_EV / 2),
    "kcal/mol": ("energy", ase_units.kcal / ase_units.mol),
    "kJ/mol": ("energy", ase_units.kJ / ase_units.mol),
    "Angstrom": ("length", 1.0),
    "Bohr": ("length", BOHR_TO_ANGSTROM),
    "nm": ("length", 10.0),
    "Angstrom**2": ("area", 1.0),
    "Bohr**2": ("area", BOHR_TO_ANGSTROM**2),
    "Angstrom**3": ("volume", 1.0),
    "Bohr**3": ("volume", BOHR_TO_ANGSTROM**3),
    "Debye": ("dipole", 1.0),
    "e*Angstrom": ("dipole", 1.0 / ase_units.Debye),
    "e*Bohr": ("dipole", BOHR_TO_ANGSTROM / ase_units.Debye),
    "GHz": ("frequency", 1.0),
    "MHz": ("frequency", 1e-3),
    "cal/mol/K": ("heat_capacity", 1.0),
    "J/mol/K": ("heat_capacity", 1.0 / 4.184),
    "1": ("dimensionless", 1.0),
}

# Spellings found in other tools' files (SchNetPack writes "a0 a0 a0", "Hartree", "Debye").
ALIASES: dict[str, str] = {
    "hartree": "Hartree",
    "ha": "Hartree",
    "å": "Angstrom",
    "arb. unit": "1",
    "ev": "eV",
    "mev": "meV",
    "kj/mol": "kJ/mol",
    "angstrom": "Angstrom",
    "ang": "Angstrom",
    "a": "Angstrom",
    "bohr": "Bohr",
    "a0": "Bohr",
    "a0 a0": "Bohr**2",
    "a0^2": "Bohr**2",
    "a0 a0 a0": "Bohr**3",
    "a0^3": "Bohr**3",
    "bohr^3": "Bohr**3",
    "bohr3": "Bohr**3",
    "angstrom^3": "Angstrom**3",
    "debye": "Debye",
    "ghz": "GHz",
    "": "1",
    "none": "1",
    "dimensionless": "1",
}

INTERNAL_UNIT: dict[str, str] = {
    "energy": "eV",
    "length": "Angstrom",
    "area": "Angstrom**2",
    "volume": "Angstrom**3",
    "dipole": "Debye",
    "frequency": "GHz",
    "heat_capacity": "cal/mol/K",
    "dimensionless": "1",
}


def canonical_unit(name: str) -> str:
    """The one spelling of a unit ('Ha' -> 'Hartree'), or an error listing the known ones."""
    if name in UNITS:
        return name
    key = name.strip().lower()
    if key in ALIASES:
        return ALIASES[key]
    for known in UNITS:
        if known.lower() == key:
            return known
    raise MolstrataError(
        f"unknown unit {name!r}; use one of: {', '.join(sorted(UNITS))}"
    )


def dimension(unit: str) -> str:
    """The physical dimension of a unit ('energy', 'length', ...)."""
    return UNITS[canonical_unit(unit)][0]


def internal_unit(unit: str) -> str:
    """The unit molstrata stores quantities of this unit's dimension in (eV for energies)."""
    return INTERNAL_UNIT[dimension(unit)]


def conversion_factor(from_unit: str, to_unit: str) -> float:
    """Factor that turns values in `from_unit` into values in `to_unit`."""
    src_dim, src_value = UNITS[canonical_unit(from_unit)]
    dst_dim, dst_value = UNITS[canonical_unit(to_unit)]
    if src_dim != dst_dim:
        raise MolstrataError(
            f"cannot convert {from_unit!r} ({src_dim}) to {to_unit!r} ({dst_dim}); "
            f"give a unit of dimension {dst_dim}, e.g. {INTERNAL_UNIT[dst_dim]!r}"
        )
    return src_value / dst_value


def convert(values: np.ndarray | float, from_unit: str, to_unit: str) -> np.ndarray:
    """Values converted from one unit to another of the same dimension."""
    return np.asarray(values, dtype=np.float64) * conversion_factor(from_unit, to_unit)



def error_unit(target_unit: str) -> tuple[float, str]:
    """(factor, unit) errors of a target in `target_unit` are reported in: eV -> (1000, 'meV');
    any other unit as it is (factor 1). Squared errors stay in the target unit squared."""
    unit = canonical_unit(target_unit)
    if unit == "eV":
        return 1000.0, "meV"
    return 1.0, unit


def squared_unit(unit: str) -> str:
    """The square of a unit, as written in reports: 'eV' -> 'eV2', 'Angstrom**3' ->
    'Angstrom6', 'kcal/mol' -> '(kcal/mol)2', '1' -> '1'."""
    if unit == "1":
        return "1"
    power = re.fullmatch(r"([A-Za-z]+)\*\*(\d+)", unit)
    if power:
        return f"{power[1]}{2 * int(power[2])}"
    if re.fullmatch(r"[A-Za-z]+", unit):
        return f"{unit}2"
    return f"({unit})2"


def unit_key(unit: str) -> str:
    """A unit spelled for a JSON key or CSV column name: 'eV2' -> 'eV2', 'kcal/mol' ->
    'kcal_per_mol', '(kcal/mol)2' -> 'kcal_per_mol_squared', '1' -> 'unitless'."""
    squared = re.fullmatch(r"\((.*)\)2", unit)
    if squared:
        return f"{unit_key(squared[1])}_squared"
    if unit == "1":
        return "unitless"
    return unit.replace("**", "").replace("/", "_per_").replace("*", "_")
