"""Per-atom force errors of another model's file (`molstrata.evaluation.forces`): known errors
give known figures, every way of storing forces gives the same numbers, bad forces are refused
naming the structure, and the intervals over molecules cover what they claim to."""

from __future__ import annotations

import csv
import json
import math

import ase.db
import ase.io
import ase.units
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from molstrata.data.ase_io import read_atoms, read_file
from molstrata.data.molecules import atomic_number
from molstrata.errors import MolstrataError
from molstrata.evaluation.bootstrap import percentile_bootstrap
from molstrata.evaluation.forces import (
    CSV_FILES,
    force_keys,
    force_metrics,
    force_summary_lines,
    force_unit,
    read_forces,
    write_force_metrics,
)
from molstrata.evaluation.metrics import MIN_INTERVAL_COUNT
from molstrata.evaluation.stratified import ELEMENT, SIZE

SYMBOLS = ("H", "C", "N", "O")
N_MOLECULES = 50


def make_frames(n: int = N_MOLECULES, seed: int = 0) -> list[Atoms]:
    """n molecules of 2-8 atoms of H, C, N, O (every one with H and C, so each element has
    10+ molecules), random positions, reference forces as REF_forces, predictions equal to
    them as MACE_forces, and energies in MACE's convention."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        size = int(rng.integers(2, 9))
        symbols = ["H", "C", *rng.choice(SYMBOLS, size=size - 2)]
        atoms = Atoms(symbols=symbols, positions=rng.normal(scale=2.0, size=(size, 3)),
                      pbc=False)
        forces = rng.normal(size=(size, 3))
        atoms.arrays["REF_forces"] = forces
        atoms.arrays["MACE_forces"] = forces.copy()
        atoms.info.update({"REF_energy": float(rng.normal()), "MACE_energy": 0.0})
        frames.append(atoms)
    return frames


def molecules_of(frames: list[Atoms]):
    return read_atoms(frames, {"REF_energy": "eV"}).molecules


def with_errors(frames: list[Atoms], errors: np.ndarray) -> list[Atoms]:
    """Copies of frames whose MACE_forces are REF_forces + errors (n_atoms_total, 3)."""
    out, start = [], 0
    for atoms in frames:
        atoms = atoms.copy()
        atoms.arrays["MACE_forces"] = atoms.arrays["REF_forces"] + errors[start:start + len(atoms)]
        start += len(atoms)
        out.append(atoms)
    return out


def correlated_errors(frames: list[Atoms], rng: np.random.Generator, shift: float,
                      noise: float) -> np.ndarray:
    """(n_atoms_total, 3) errors: one random 3-vector shift per molecule on all its atoms,
    plus independent noise; each component is N(0, shift² + noise²)."""
    parts = [rng.normal(scale=shift, size=3) + rng.normal(scale=noise, size=(len(a), 3))
             for a in frames]
    return np.concatenate(parts)


def test_offset_on_oxygen_gives_exact_element_figures():
    frames = make_frames()
    molecules = molecules_of(frames)
    d = 0.02
    is_o = molecules.numbers == atomic_number("O")
    errors = np.where(is_o[:, None], d, 0.0) * np.ones((molecules.n_atoms_total, 3))
    report = force_metrics(molecules, *_forces(with_errors(frames, errors)), n_bootstrap=200)
    by_element = {s.key: s for s in report.elements}
    assert by_element["O"].mae == pytest.approx(d)
    assert by_element["O"].rmse == pytest.approx(d)
    assert by_element["O"].mean_norm_error == pytest.approx(d * math.sqrt(3))
    assert by_element["O"].mae_ci == pytest.approx((d, d))
    for symbol in ("H", "C", "N"):
        assert by_element[symbol].mae == 0 and by_element[symbol].rmse == 0
    n_o = int(is_o.sum())
    assert by_element["O"].n_atoms == n_o
    assert report.overall.mae == pytest.approx(d * n_o / molecules.n_atoms_total)
    for s in report.sizes:
        in_size = np.repeat(molecules.sizes == s.key, molecules.sizes)
        assert s.mae == pytest.approx(d * is_o[in_size].sum() / in_size.sum())
    assert report.worst[ELEMENT].key == "O"


def test_figures_equal_hand_computation():
    frames = make_frames()
    molecules = molecules_of(frames)
    rng = np.random.default_rng(1)
    errors = rng.standard_t(3, size=(molecules.n_atoms_total, 3)) * 0.01
    report = force_metrics(molecules, *_forces(with_errors(frames, errors)), n_bootstrap=200)
    assert report.overall.mae == pytest.approx(np.abs(errors).mean())
    assert report.overall.rmse == pytest.approx(np.sqrt((errors**2).mean()))
    assert report.overall.mean_norm_error == pytest.approx(np.linalg.norm(errors, axis=1).mean())
    assert (report.n_atoms, report.n_molecules) == (molecules.n_atoms_total, N_MOLECULES)
    for s in report.sizes:
        atoms = np.repeat(molecules.sizes == s.key, molecules.sizes)
        assert s.mae == pytest.approx(np.abs(errors[atoms]).mean())
        assert s.n_molecules == int((molecules.sizes == s.key).sum())
    c = molecules.numbers == atomic_number("C")
    carbon = next(s for s in report.elements if s.key == "C")
    assert carbon.rmse == pytest.approx(np.sqrt((errors[c] ** 2).mean()))
    assert carbon.n_molecules == N_MOLECULES
    low, high = report.overall.mae_ci
    assert low < report.overall.mae < high


def test_extxyz_db_and_atoms_list_give_the_same_forces(tmp_path):
    frames = with_errors(make_frames(), np.random.default_rng(2).normal(
        scale=0.05, size=(sum(map(len, make_frames())), 3)))
    xyz = tmp_path / "eval.xyz"
    ase.io.write(xyz, frames, format="extxyz")
    db_path = tmp_path / "eval.db"
    with ase.db.connect(db_path) as db:
        for atoms in frames:
            bare = Atoms(numbers=atoms.numbers, positions=atoms.positions)
            db.write(bare, data={"MACE_forces": atoms.arrays["MACE_forces"],
                                 "REF_forces": atoms.arrays["REF_forces"]},
                     key_value_pairs={"REF_energy": atoms.info["REF_energy"]})
    reads = []
    for source in (frames, xyz, db_path):
        assert force_keys(source) == ("MACE_forces", "REF_forces")
        forces = read_forces(source, "MACE_forces", "REF_forces", "eV")
        reads.append(forces)
    molecules = read_file(xyz, {"REF_energy": "eV"}).molecules
    documents = []
    for forces in reads:
        forces.check_matches(molecules)
        np.testing.assert_allclose(forces.predicted, reads[0].predicted, rtol=0, atol=1e-7)
        np.testing.assert_allclose(forces.reference, reads[0].reference, rtol=0, atol=1e-7)
        report = force_metrics(molecules, forces.predicted, forces.reference,
                               n_bootstrap=100, forces=forces)
        documents.append(report.document())
    assert documents[0]["global"]["mae_meV_per_Angstrom"] == pytest.approx(
        documents[2]["global"]["mae_meV_per_Angstrom"], rel=1e-6)
    assert documents[1]["predicted"] == "MACE_forces" and documents[1]["unit"] == "meV/Angstrom"


def test_reference_forces_on_a_calculator_are_found(tmp_path):
    frames = make_frames(12)
    for atoms in frames:
        reference = atoms.arrays.pop("REF_forces")
        atoms.calc = SinglePointCalculator(atoms, energy=atoms.info.pop("REF_energy"),
                                           forces=reference + 0.01)
    path = tmp_path / "calc.xyz"
    ase.io.write(path, frames, format="extxyz")
    assert force_keys(path) == ("MACE_forces", "forces")
    forces = read_forces(path, "MACE_forces", "forces")
    np.testing.assert_allclose(forces.predicted - forces.reference, -0.01, atol=1e-7)


def test_force_keys_defaults_and_one_side_only():
    frames = make_frames(5)
    predicted_only = [a.copy() for a in frames]
    for atoms in predicted_only:
        del atoms.arrays["REF_forces"]
    assert force_keys(predicted_only) is None  # energies only: nothing to compare against
    with pytest.raises(MolstrataError, match="no reference forces REF_forces or forces"):
        force_keys(predicted_only, predicted="MACE_forces")
    with pytest.raises(MolstrataError, match="no predicted forces 'my_forces'.*MACE_forces"):
        force_keys(frames, predicted="my_forces")
    with pytest.raises(MolstrataError, match="both 'REF_forces'"):
        force_keys(frames, predicted="REF_forces", reference="REF_forces")


def test_conventions_are_tried_in_order():
    """NequIP's test-time writer: predictions on the calculator as forces, the dataset's
    as original_dataset_forces; MACE's pair is tried first and is not there."""
    frames = make_frames(6)
    for atoms in frames:
        atoms.arrays["original_dataset_forces"] = atoms.arrays.pop("REF_forces")
        atoms.calc = SinglePointCalculator(atoms, forces=atoms.arrays.pop("MACE_forces"))
    assert force_keys(frames) == ("forces", "original_dataset_forces")
    assert force_keys(frames, conventions=[("MACE_forces", ("REF_forces", "forces"))]) is None
    forces = read_forces(frames, "forces", "original_dataset_forces")
    np.testing.assert_array_equal(forces.predicted, forces.reference)


def test_units_are_converted():
    frames = make_frames(10)
    per_kcal = ase.units.kcal / ase.units.mol
    eV = read_forces(frames, "MACE_forces", "REF_forces", "eV")
    for unit, factor in (("kcal/mol", per_kcal), ("kcal/mol/Angstrom", per_kcal),
                         ("Hartree/Bohr", ase.units.Hartree / ase.units.Bohr),
                         ("meV/A", 1e-3)):
        forces = read_forces(frames, "MACE_forces", "REF_forces", unit)
        np.testing.assert_allclose(forces.reference, eV.reference * factor, rtol=1e-6)
    assert force_unit("kcal/mol")[0] == "kcal/mol/Angstrom"
    with pytest.raises(MolstrataError, match="not an energy per length"):
        force_unit("Angstrom")


def test_periodic_structures_skipped_as_the_energies_are(tmp_path):
    frames = make_frames(20)
    for i in (3, 11):
        frames[i].pbc = True
        frames[i].cell = [20.0, 20.0, 20.0]
    path = tmp_path / "mixed.xyz"
    ase.io.write(path, frames, format="extxyz")
    reading = read_file(path, {"REF_energy": "eV"}, skip_periodic=True)
    forces = read_forces(path, "MACE_forces", "REF_forces", skip_periodic=True)
    forces.check_matches(reading.molecules)
    assert forces.skipped_periodic == reading.skipped_periodic == (3, 11)
    with pytest.raises(MolstrataError, match="2 periodic structures.*skip-periodic"):
        read_forces(path, "MACE_forces", "REF_forces")


@pytest.mark.parametrize("damage, message", [
    (lambda a: a.arrays.pop("REF_forces"),
     r"structure 3 of the atoms list has no reference forces 'REF_forces' \(it has: "
     r"MACE_forces"),
    (lambda a: a.arrays.update(REF_forces=np.zeros((len(a), 2))),
     r"'REF_forces' of structure 3 of the atoms list are shape \(\d, 2\), not \(\d, 3\)"),
    (lambda a: a.arrays["MACE_forces"].__setitem__((0, 1), np.nan),
     r"'MACE_forces' of structure 3 of the atoms list are NaN or infinite on 1 atom"),
])
def test_bad_forces_are_refused_naming_the_structure(damage, message):
    frames = make_frames(8)
    damage(frames[3])
    with pytest.raises(MolstrataError, match=message):
        read_forces(frames, "MACE_forces", "REF_forces")


def test_files_document_and_lines(tmp_path):
    frames = make_frames()
    molecules = molecules_of(frames)
    errors = np.random.default_rng(3).normal(scale=0.03, size=(molecules.n_atoms_total, 3))
    forces = read_forces(with_errors(frames, errors), "MACE_forces", "REF_forces")
    report = force_metrics(molecules, forces.predicted, forces.reference, n_bootstrap=200,
                           forces=forces)
    files = write_force_metrics(report, tmp_path)
    assert [f.name for f in files] == [CSV_FILES[ELEMENT], CSV_FILES[SIZE]]
    with open(files[1], newline="") as handle:
        sizes = list(csv.DictReader(handle))
    assert list(sizes[0])[:8] == ["stratum", "n_atoms", "count", "atom_count",
                                  "mae_meV_per_Angstrom", "mae_ci95_low_meV_per_Angstrom",
                                  "mae_ci95_high_meV_per_Angstrom", "rmse_meV_per_Angstrom"]
    assert "mean_norm_error_ci95_high_meV_per_Angstrom" in sizes[0]
    for row in sizes:
        small = int(row["count"]) < MIN_INTERVAL_COUNT
        assert (row["mae_ci95_low_meV_per_Angstrom"] == "") == small
        assert int(row["atom_count"]) == int(row["count"]) * int(row["n_atoms"])
    with open(files[0], newline="") as handle:
        elements = {row["element"]: row for row in csv.DictReader(handle)}
    assert list(elements) == list(SYMBOLS)
    assert float(elements["C"]["mae_meV_per_Angstrom"]) == pytest.approx(
        1000 * next(s.mae for s in report.elements if s.key == "C"))
    document = json.loads(json.dumps(report.document(), allow_nan=False))
    assert document["n_atoms"] == molecules.n_atoms_total
    assert document["reference"] == "REF_forces" and document["file_unit"] == "eV/Angstrom"
    assert len(document["global"]["mae_ci95_meV_per_Angstrom"]) == 2
    assert set(document["worst"]) == {ELEMENT, SIZE}
    lines = force_summary_lines(report)
    assert lines[0].startswith("forces (MACE_forces vs REF_forces): MAE ")
    assert "95% CI" in lines[0] and "worst element" in lines[1] and "worst size" in lines[2]


def test_same_seed_same_intervals():
    frames = make_frames()
    molecules = molecules_of(frames)
    errors = np.random.default_rng(4).normal(size=(molecules.n_atoms_total, 3))
    predicted, reference = _forces(with_errors(frames, errors))
    first = force_metrics(molecules, predicted, reference, n_bootstrap=100, seed=5)
    again = force_metrics(molecules, predicted, reference, n_bootstrap=100, seed=5)
    assert first == again


def test_interval_covers_the_population_mae():
    """200 draws of molecule-correlated errors of known population MAE: the 95 % interval
    over molecules covers it in at least 90 % of them (0.94 at writing), where resampling
    atoms, as if they were independent, covers it far less often (0.60)."""
    frames = make_frames(60, seed=5)
    molecules = molecules_of(frames)
    reference = np.zeros((molecules.n_atoms_total, 3))
    shift, noise = 0.03, 0.01
    true_mae = math.sqrt(2 / math.pi) * math.hypot(shift, noise)
    rng = np.random.default_rng(6)
    covered = atoms_covered = 0
    for draw in range(200):
        errors = correlated_errors(frames, rng, shift, noise)
        low, high = force_metrics(molecules, errors, reference, n_bootstrap=300,
                                  seed=draw).overall.mae_ci
        covered += low <= true_mae <= high
        atom_low, atom_high = _atom_bootstrap(errors, draw, 300)
        atoms_covered += atom_low <= true_mae <= atom_high
    assert covered / 200 >= 0.90
    assert atoms_covered / 200 < 0.80


def test_molecule_bootstrap_is_wider_than_an_atom_bootstrap_for_correlated_errors():
    frames = make_frames(60, seed=7)
    molecules = molecules_of(frames)
    errors = correlated_errors(frames, np.random.default_rng(8), shift=0.05, noise=0.005)
    report = force_metrics(molecules, errors, np.zeros_like(errors), n_bootstrap=1000)
    low, high = report.overall.mae_ci
    atom_low, atom_high = _atom_bootstrap(errors, 0, 1000)
    assert low < report.overall.mae < high and atom_low < report.overall.mae < atom_high
    assert high - low > 1.5 * (atom_high - atom_low)  # 2.2 at writing


def _atom_bootstrap(errors: np.ndarray, seed: int, n_bootstrap: int) -> tuple[float, float]:
    """The MAE interval of a bootstrap that resamples atoms, ignoring their molecules."""
    low, high = percentile_bootstrap([np.abs(errors).mean(axis=1)], lambda a: a.mean(axis=1),
                                     np.random.default_rng(seed), n_bootstrap=n_bootstrap)
    return float(low), float(high)


def _forces(frames: list[Atoms]) -> tuple[np.ndarray, np.ndarray]:
    forces = read_forces(frames, "MACE_forces", "REF_forces")
    return forces.predicted, forces.reference
