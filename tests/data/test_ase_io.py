"""ASE interop: round trips through extxyz and ASE databases, units at the edge, user errors."""

from __future__ import annotations

import os
from pathlib import Path

import ase.db
import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from molstrata.data import ase_io
from molstrata.data.ase_io import (
    from_atoms_list,
    read_molecules,
    to_atoms,
    write_db,
    write_extxyz,
)
from molstrata.data.molecules import Molecules
from molstrata.errors import MolstrataError

HARTREE_IN_EV = 27.211386245988
BOHR_IN_ANGSTROM = 0.529177210903

# Plausible geometries (Å): methane, water, ammonia.
CH4 = (
    [6, 1, 1, 1, 1],
    [
        [0.0, 0.0, 0.0],
        [0.629118, 0.629118, 0.629118],
        [-0.629118, -0.629118, 0.629118],
        [-0.629118, 0.629118, -0.629118],
        [0.629118, -0.629118, -0.629118],
    ],
)
H2O = ([8, 1, 1], [[0.0, 0.0, 0.119262], [0.0, 0.763239, -0.477047], [0.0, -0.763239, -0.477047]])
NH3 = (
    [7, 1, 1, 1],
    [[0.0, 0.0, 0.116489], [0.0, 0.939731, -0.271808], [0.813831, -0.469865, -0.271808],
     [-0.813831, -0.469865, -0.271808]],
)
U0_HARTREE = [-40.47893, -76.404702, -56.525887]
GAP_EV = [13.7342, 9.1234567890123, 8.4]


@pytest.fixture
def molecules() -> Molecules:
    """CH4, H2O, NH3 with two properties in internal units, non-trivial ids and SMILES."""
    rng = np.random.default_rng(0)
    shifted = [np.asarray(r) + rng.normal(scale=0.01, size=(len(r), 3)) for _, r in (CH4, H2O, NH3)]
    return Molecules.from_lists(
        [z for z, _ in (CH4, H2O, NH3)],
        shifted,
        properties={"U0": np.asarray(U0_HARTREE) * HARTREE_IN_EV, "gap": GAP_EV},
        units={"U0": "eV", "gap": "eV"},
        ids=[101, 7, 42],
        annotations={"smiles": ["C", "O", "N"]},
    )


@pytest.fixture
def plain_atoms() -> list[Atoms]:
    """The three molecules as plain ASE Atoms: energy on a calculator, a custom info key."""
    images = []
    for (numbers, positions), energy, mu in zip((CH4, H2O, NH3), U0_HARTREE, [0.0, 1.85, 1.47]):
        atoms = Atoms(numbers=numbers, positions=positions)
        atoms.info["mu"] = mu
        atoms.calc = SinglePointCalculator(atoms, energy=energy)
        images.append(atoms)
    return images


@pytest.fixture
def plain_xyz(tmp_path: Path, plain_atoms: list[Atoms]) -> Path:
    path = tmp_path / "plain.extxyz"
    ase.io.write(path, plain_atoms, format="extxyz")
    return path


def schnetpack_db(path: Path, distance_unit: str = "Ang") -> Path:
    """An ASE database laid out as SchNetPack 2 writes one: properties as arrays in row.data."""
    with ase.db.connect(path) as db:
        for (numbers, positions), u0 in zip((CH4, H2O, NH3), U0_HARTREE):
            atoms = Atoms(numbers=numbers, positions=positions)
            db.write(atoms, data={"energy_U0": np.array([u0])})
    db = ase.db.connect(path)
    db.metadata = {
        "_property_unit_dict": {"energy_U0": "Hartree"},
        "_distance_unit": distance_unit,
        "atomrefs": {},
    }
    return path


def assert_same_molecules(got: Molecules, want: Molecules, atol: float = 0.0) -> None:
    np.testing.assert_array_equal(got.numbers, want.numbers)
    np.testing.assert_array_equal(got.offsets, want.offsets)
    np.testing.assert_allclose(got.positions, want.positions, rtol=0, atol=atol)
    np.testing.assert_array_equal(got.ids, want.ids)
    assert dict(got.units) == dict(want.units)
    assert set(got.properties) == set(want.properties)
    for name in want.properties:
        np.testing.assert_array_equal(got.properties[name], want.properties[name])
    assert set(got.annotations) == set(want.annotations)
    for name in want.annotations:
        np.testing.assert_array_equal(got.annotations[name], want.annotations[name])


# ---- round trips ----------------------------------------------------------------------


def test_extxyz_round_trip(tmp_path: Path, molecules: Molecules) -> None:
    path = tmp_path / "m.extxyz"
    write_extxyz(molecules, path)
    assert_same_molecules(read_molecules(path), molecules, atol=1e-8)


def test_extxyz_keys_are_the_property_names(tmp_path: Path, molecules: Molecules) -> None:
    path = tmp_path / "m.extxyz"
    write_extxyz(molecules, path)
    first = ase.io.read(path, index=0)
    assert first.info["gap"] == GAP_EV[0]
    assert first.info["molstrata_id"] == 101
    assert first.info["smiles"] == "C"


def test_db_round_trip(tmp_path: Path, molecules: Molecules) -> None:
    path = tmp_path / "m.db"
    write_db(molecules, path)
    assert_same_molecules(read_molecules(path), molecules)


def test_db_is_laid_out_for_schnetpack(tmp_path: Path, molecules: Molecules) -> None:
    path = tmp_path / "m.db"
    write_db(molecules, path)
    db = ase.db.connect(path)
    row = db.get(id=2)
    assert db.metadata["_property_unit_dict"] == {"U0": "eV", "gap": "eV"}
    assert db.metadata["_distance_unit"] == "Ang"
    assert row.data["gap"].shape == (1,)
    assert row.key_value_pairs["molstrata_id"] == 7


def test_write_db_replaces_an_existing_database(tmp_path: Path, molecules: Molecules) -> None:
    path = tmp_path / "m.db"
    write_db(molecules, path)
    write_db(molecules.subset([0]), path)
    back = read_molecules(path)
    np.testing.assert_array_equal(back.ids, [101])


def test_round_trip_converts_other_units_to_internal(tmp_path: Path, molecules: Molecules) -> None:
    in_hartree = molecules.with_property("U0", U0_HARTREE, "Hartree")
    path = tmp_path / "m.extxyz"
    write_extxyz(in_hartree, path)
    back = read_molecules(path)
    assert back.units["U0"] == "eV"
    np.testing.assert_array_equal(back.properties["U0"], np.asarray(U0_HARTREE) * HARTREE_IN_EV)


def test_db_keeps_annotations_extxyz_cannot(tmp_path: Path, molecules: Molecules) -> None:
    odd = Molecules.from_lists(
        [CH4[0], H2O[0]], [CH4[1], H2O[1]], annotations={"label": ["T", ""]}
    )
    write_db(odd, tmp_path / "odd.db")
    back = read_molecules(tmp_path / "odd.db")
    np.testing.assert_array_equal(back.annotations["label"], ["T", ""])
    with pytest.raises(MolstrataError, match="label.*ASE .db instead"):
        write_extxyz(odd, tmp_path / "odd.extxyz")
    assert not (tmp_path / "odd.extxyz").exists()


def test_to_atoms_and_from_atoms_list_round_trip(molecules: Molecules) -> None:
    atoms = to_atoms(molecules, 1)
    assert atoms.get_chemical_formula() == "H2O"
    assert not atoms.pbc.any()
    back = from_atoms_list([to_atoms(molecules, i) for i in range(len(molecules))])
    assert_same_molecules(back, molecules)


def test_writer_refuses_names_extxyz_reserves(tmp_path: Path, molecules: Molecules) -> None:
    bad = molecules.with_property("stress", [1.0, 2.0, 3.0], "eV")
    with pytest.raises(MolstrataError, match="'stress'.*rename"):
        write_extxyz(bad, tmp_path / "bad.extxyz")


# ---- reading other tools' files -------------------------------------------------------


def test_reads_plain_ase_extxyz(plain_xyz: Path) -> None:
    got = read_molecules(plain_xyz, {"energy": "eV", "mu": "Debye"})
    np.testing.assert_array_equal(got.properties["energy"], U0_HARTREE)
    np.testing.assert_array_equal(got.properties["mu"], [0.0, 1.85, 1.47])
    assert got.units == {"energy": "eV", "mu": "Debye"}
    np.testing.assert_array_equal(got.ids, [0, 1, 2])
    np.testing.assert_array_equal(got.formulas(), ["CH4", "H2O", "H3N"])
    np.testing.assert_allclose(got.atoms_of(2)[1], NH3[1], atol=1e-8)


def test_hartree_converted_to_ev_exactly(plain_xyz: Path) -> None:
    got = read_molecules(plain_xyz, {"energy": "Hartree"})
    assert got.units["energy"] == "eV"
    np.testing.assert_array_equal(got.properties["energy"], np.asarray(U0_HARTREE) * HARTREE_IN_EV)


def test_energy_alias_reads_calculator_energy(plain_xyz: Path) -> None:
    got = read_molecules(plain_xyz, {"U0": "Hartree"}, energy_aliases=["U0"])
    np.testing.assert_array_equal(got.properties["U0"], np.asarray(U0_HARTREE) * HARTREE_IN_EV)


def test_index_keeps_file_positions_as_ids(plain_xyz: Path) -> None:
    np.testing.assert_array_equal(read_molecules(plain_xyz, index="1:").ids, [1, 2])
    np.testing.assert_array_equal(read_molecules(plain_xyz, index="-1").ids, [2])


def test_schnetpack_db_takes_units_from_metadata(tmp_path: Path) -> None:
    path = schnetpack_db(tmp_path / "spk.db")
    got = read_molecules(path, {"energy_U0": None})
    assert got.units == {"energy_U0": "eV"}
    np.testing.assert_array_equal(
        got.properties["energy_U0"], np.asarray(U0_HARTREE) * HARTREE_IN_EV
    )
    np.testing.assert_array_equal(got.ids, [1, 2, 3])
    everything = read_molecules(path)
    np.testing.assert_array_equal(everything.properties["energy_U0"], got.properties["energy_U0"])


def test_db_distance_unit_bohr_converts_positions(tmp_path: Path) -> None:
    path = schnetpack_db(tmp_path / "bohr.db", distance_unit="Bohr")
    got = read_molecules(path, {"energy_U0": None})
    want = np.asarray(H2O[1]) * BOHR_IN_ANGSTROM
    np.testing.assert_allclose(got.atoms_of(1)[1], want, rtol=1e-15)


def test_nan_and_inf_pass_at_read_time(tmp_path: Path, plain_atoms: list[Atoms]) -> None:
    plain_atoms[0].info["mu"] = float("nan")
    plain_atoms[1].info["mu"] = float("inf")
    ase.io.write(tmp_path / "nan.extxyz", plain_atoms, format="extxyz")
    mu = read_molecules(tmp_path / "nan.extxyz", {"mu": "Debye"}).properties["mu"]
    assert np.isnan(mu[0]) and np.isposinf(mu[1]) and mu[2] == 1.47


def test_write_db_output_readable_as_plain_ase_db(tmp_path: Path, molecules: Molecules) -> None:
    write_db(molecules, tmp_path / "m.db")
    rows = list(ase.db.connect(tmp_path / "m.db").select())
    assert [row.formula for row in rows] == ["CH4", "H2O", "H3N"]


# ---- user errors ----------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MolstrataError, match="not found.*nowhere.xyz"):
        read_molecules(tmp_path / "nowhere.xyz")


@pytest.mark.parametrize(
    ("name", "content"),
    [("junk.xyz", b"hello world\nnot a molecule\n"), ("junk.db", b"not sqlite" * 20)],
)
def test_unparsable_file_names_file_and_formats(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(MolstrataError) as caught:
        read_molecules(tmp_path / name)
    message = str(caught.value)
    assert name in message and "extxyz, xyz, ASE .db" in message and "\n" not in message


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    (tmp_path / "empty.xyz").write_text(content)
    with pytest.raises(MolstrataError, match="empty.xyz.*(empty|no structures)"):
        read_molecules(tmp_path / "empty.xyz")


def test_empty_database(tmp_path: Path) -> None:
    ase.db.connect(tmp_path / "none.db").metadata = {"_distance_unit": "Ang"}
    with pytest.raises(MolstrataError, match="no structures"):
        read_molecules(tmp_path / "none.db")


def test_missing_property_names_structure_and_what_the_file_has(
    tmp_path: Path, plain_atoms: list[Atoms]
) -> None:
    del plain_atoms[1].info["mu"]
    ase.io.write(tmp_path / "gap.extxyz", plain_atoms, format="extxyz")
    with pytest.raises(MolstrataError) as caught:
        read_molecules(tmp_path / "gap.extxyz", {"mu": "Debye"})
    message = str(caught.value)
    assert "'mu'" in message and "structure 1" in message and "has: energy" in message


def test_missing_property_in_schnetpack_db_lists_data_keys(tmp_path: Path) -> None:
    path = schnetpack_db(tmp_path / "spk.db")
    with pytest.raises(MolstrataError, match="'gap'.*structure 1 .*has: energy_U0"):
        read_molecules(path, {"gap": "eV"})


@pytest.mark.parametrize("value", ["high", np.array([1.0, 2.0]), True])
def test_non_numeric_or_non_scalar_property(
    tmp_path: Path, plain_atoms: list[Atoms], value: object
) -> None:
    plain_atoms[2].info["mu"] = value
    ase.io.write(tmp_path / "odd.extxyz", plain_atoms, format="extxyz")
    with pytest.raises(MolstrataError, match="'mu' of structure 2.*not one number"):
        read_molecules(tmp_path / "odd.extxyz", {"mu": "Debye"})


def test_unknown_unit(plain_xyz: Path) -> None:
    with pytest.raises(MolstrataError, match="'energy'.*unknown unit 'furlong'"):
        read_molecules(plain_xyz, {"energy": "furlong"})


def test_missing_unit(plain_xyz: Path) -> None:
    with pytest.raises(MolstrataError, match="no unit for property 'mu'") as caught:
        read_molecules(plain_xyz, {"mu": None})
    assert "--unit (command line" in str(caught.value)
    assert "properties={'mu': 'eV'} (Python)" in str(caught.value)


def test_unit_contradicting_file_metadata(tmp_path: Path) -> None:
    path = schnetpack_db(tmp_path / "spk.db")
    with pytest.raises(MolstrataError, match="'energy_U0'.*'eV'.*declares 'Hartree'"):
        read_molecules(path, {"energy_U0": "eV"})


def test_unit_spelled_differently_from_metadata_is_no_contradiction(tmp_path: Path) -> None:
    path = schnetpack_db(tmp_path / "spk.db")
    got = read_molecules(path, {"energy_U0": "Ha"})
    np.testing.assert_array_equal(
        got.properties["energy_U0"], np.asarray(U0_HARTREE) * HARTREE_IN_EV
    )


def test_distance_unit_that_is_not_a_length(tmp_path: Path) -> None:
    path = schnetpack_db(tmp_path / "spk.db", distance_unit="eV")
    with pytest.raises(MolstrataError, match="_distance_unit.*cannot convert 'eV'"):
        read_molecules(path, {"energy_U0": None})


def test_unknown_element(tmp_path: Path) -> None:
    (tmp_path / "xx.xyz").write_text("2\n\nXx 0.0 0.0 0.0\nH 0.0 0.0 0.74\n")
    with pytest.raises(MolstrataError, match="xx.xyz.*unknown chemical element 'Xx'"):
        read_molecules(tmp_path / "xx.xyz")


def test_periodic_structure(tmp_path: Path, plain_atoms: list[Atoms]) -> None:
    plain_atoms[1].cell = [10.0, 10.0, 10.0]
    plain_atoms[1].pbc = [True, False, False]
    ase.io.write(tmp_path / "pbc.extxyz", plain_atoms, format="extxyz")
    with pytest.raises(MolstrataError, match=r"1 periodic structure \(of 3; first: structure 1, "
                                             "a wire\\)"):
        read_molecules(tmp_path / "pbc.extxyz")


# ---- files mixing molecules and periodic structures -----------------------------------


def test_periodic_structures_are_counted_before_the_file_is_refused(
    mixed_periodic_extxyz: Path,
) -> None:
    with pytest.raises(MolstrataError) as caught:
        read_molecules(mixed_periodic_extxyz, {"energy": "eV"})
    message = str(caught.value)
    assert "mixed.extxyz holds 3 periodic structures (of 12; first: structure 5, a bulk cell)" \
        in message
    assert "--skip-periodic" in message and "skip_periodic = true" in message
    assert "skip_periodic=True" in message and "\n" not in message


def test_skip_periodic_leaves_them_out_and_says_which(mixed_periodic_extxyz: Path) -> None:
    reading = ase_io.read_file(mixed_periodic_extxyz, {"energy": "eV"}, skip_periodic=True)
    frames = ase.io.read(mixed_periodic_extxyz, index=":")
    kept = [i for i, atoms in enumerate(frames) if not atoms.pbc.any()]
    assert reading.skipped_periodic == (5, 7, 9)
    assert reading.n_structures == 12
    np.testing.assert_array_equal(reading.molecules.ids, kept)
    np.testing.assert_array_equal(reading.molecules.sizes, [len(frames[i]) for i in kept])
    np.testing.assert_array_equal(reading.molecules.property("energy"),
                                  [frames[i].get_potential_energy() for i in kept])
    assert reading.skipped_text("mixed.extxyz") == (
        "left out 3 periodic structures of 12 in mixed.extxyz (structures 5, 7, 9), as "
        "skip_periodic asks")
    molecules = read_molecules(mixed_periodic_extxyz, {"energy": "eV"}, skip_periodic=True)
    assert_same_molecules(molecules, reading.molecules)


def test_a_file_of_molecules_skips_nothing(plain_xyz: Path) -> None:
    reading = ase_io.read_file(plain_xyz, skip_periodic=True)
    assert reading.skipped_periodic == () and reading.skipped_text(plain_xyz) is None


def test_skip_periodic_in_an_atoms_list(plain_atoms: list[Atoms]) -> None:
    plain_atoms[0].pbc = [True, True, False]
    plain_atoms[0].cell = [8.0, 8.0, 0.0]
    with pytest.raises(MolstrataError, match="first: structure 0, a slab"):
        from_atoms_list(plain_atoms, {"mu": "Debye"})
    got = from_atoms_list(plain_atoms, {"mu": "Debye"}, skip_periodic=True)
    np.testing.assert_array_equal(got.ids, [1, 2])


def test_a_file_of_periodic_structures_only(tmp_path: Path) -> None:
    ase.io.write(tmp_path / "bulk.extxyz", [bulk("Cu"), bulk("Si")], format="extxyz")
    with pytest.raises(MolstrataError, match="holds only periodic structures \\(2\\)"):
        read_molecules(tmp_path / "bulk.extxyz", skip_periodic=True)


def test_bad_index(plain_xyz: Path) -> None:
    with pytest.raises(MolstrataError, match="bad index 'first'"):
        read_molecules(plain_xyz, index="first")


# ---- atomic writes --------------------------------------------------------------------


def fail_on_second_molecule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the writers' per-molecule step die after one molecule has been written."""
    real = ase_io.to_atoms

    def flaky(molecules: Molecules, i: int) -> Atoms:
        if i == 1:
            raise RuntimeError("disk unplugged")
        return real(molecules, i)

    monkeypatch.setattr(ase_io, "to_atoms", flaky)


@pytest.mark.parametrize("writer", [write_extxyz, write_db])
def test_interrupted_write_leaves_no_file(
    tmp_path: Path, molecules: Molecules, monkeypatch: pytest.MonkeyPatch, writer
) -> None:
    fail_on_second_molecule(monkeypatch)
    with pytest.raises(RuntimeError, match="disk unplugged"):
        writer(molecules, tmp_path / "out.file")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("writer", [write_extxyz, write_db])
def test_interrupted_write_keeps_old_file(
    tmp_path: Path, molecules: Molecules, monkeypatch: pytest.MonkeyPatch, writer
) -> None:
    target = tmp_path / "out.file"
    target.write_bytes(b"previous contents")
    fail_on_second_molecule(monkeypatch)
    with pytest.raises(RuntimeError):
        writer(molecules, target)
    assert target.read_bytes() == b"previous contents"
    assert os.listdir(tmp_path) == ["out.file"]


# ---- the molecules' own identifiers ---------------------------------------------------


def with_ids(atoms_list: list[Atoms], key: str, values: list) -> list[Atoms]:
    for atoms, value in zip(atoms_list, values):
        atoms.info[key] = value
    return atoms_list


def test_a_repeated_molstrata_id_is_one_line_naming_file_id_and_structures(
    tmp_path: Path, plain_atoms: list[Atoms]
) -> None:
    ase.io.write(tmp_path / "dup.extxyz", with_ids(plain_atoms, "molstrata_id", [4, 9, 4]))
    with pytest.raises(MolstrataError) as caught:
        read_molecules(tmp_path / "dup.extxyz", {"energy": "eV"})
    message = str(caught.value)
    assert message.startswith(f"structures 0 and 2 of {tmp_path / 'dup.extxyz'} share "
                              "molstrata_id 4; each structure needs its own")
    assert "remove molstrata_id" in message and "\n" not in message
    with pytest.raises(MolstrataError, match="structures 1 and 2 of the atoms list share "
                                             "molstrata_id 'mol7'"):
        from_atoms_list(with_ids(plain_atoms, "molstrata_id", ["mol1", "mol7", "mol7"]))


def test_the_cli_refuses_a_repeated_molstrata_id_and_writes_nothing(
    tmp_path: Path, plain_atoms: list[Atoms], capsys
) -> None:
    from molstrata.cli import main

    ase.io.write(tmp_path / "dup.extxyz", with_ids(plain_atoms, "molstrata_id", [4, 4, 5]))
    out = tmp_path / "out.extxyz"
    code = main(["data", "export", "--dataset", str(tmp_path / "dup.extxyz"), "--property",
                 "energy", "--unit", "eV", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "structures 0 and 1" in err and "molstrata_id 4" in err and not out.exists()


@pytest.mark.parametrize("suffix", [".extxyz", ".db"])
def test_string_ids_are_kept_and_written_back(
    tmp_path: Path, plain_atoms: list[Atoms], suffix: str
) -> None:
    names = ["mol88169", "mol3", "gdb_12"]
    ase.io.write(tmp_path / "named.extxyz", with_ids(plain_atoms, "molstrata_id", names))
    got = read_molecules(tmp_path / "named.extxyz", {"energy": "eV"})
    np.testing.assert_array_equal(got.ids, [0, 1, 2])  # positions in the file
    assert got.identifiers() == names
    assert got.subset([2, 0]).identifiers() == ["gdb_12", "mol88169"]
    path = tmp_path / f"again{suffix}"
    (write_db if suffix == ".db" else write_extxyz)(got, path)
    assert read_molecules(path).identifiers() == names


@pytest.mark.parametrize("key", ["name", "id"])
def test_a_files_own_id_key_names_the_molecules_unless_repeated(
    tmp_path: Path, plain_atoms: list[Atoms], key: str
) -> None:
    ase.io.write(tmp_path / "own.extxyz", with_ids(plain_atoms, key, ["a1", "b2", "c3"]))
    reading = ase_io.read_file(tmp_path / "own.extxyz", {"energy": "eV"})
    assert reading.molecules.identifiers() == ["a1", "b2", "c3"] and reading.notes == ()
    ase.io.write(tmp_path / "own.extxyz", with_ids(plain_atoms, key, ["aspirin", "x",
                                                                      "aspirin"]))
    reading = ase_io.read_file(tmp_path / "own.extxyz", {"energy": "eV"})
    assert reading.molecules.identifiers() == [0, 1, 2]
    assert len(reading.notes) == 1 and reading.notes[0].startswith(
        f"structures 0 and 2 of {tmp_path / 'own.extxyz'} share {key} 'aspirin'")


def test_integer_ids_stay_the_ids(tmp_path: Path, plain_atoms: list[Atoms]) -> None:
    ase.io.write(tmp_path / "ints.extxyz", with_ids(plain_atoms, "id", [17, 3, 99]))
    got = read_molecules(tmp_path / "ints.extxyz", {"energy": "eV"})
    np.testing.assert_array_equal(got.ids, [17, 3, 99])
    assert ase_io.LABEL not in got.annotations
