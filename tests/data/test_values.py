"""The value check behind `data describe`: non-finite values, spread per size, outliers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from molstrata.data.molecules import Molecules
from molstrata.data.values import OUTLIER_ROBUST_SD, check_values

REFERENCES_EV = {1: -13.6, 6: -1029.0, 7: -1485.0, 8: -2042.0, 9: -2713.0}


def linear_energies(molecules: Molecules) -> np.ndarray:
    """Σ_atoms e_Z: energies an exact per-element fit leaves no residual of."""
    per_atom = np.array([REFERENCES_EV[int(z)] for z in molecules.numbers])
    return np.bincount(molecules.atom_molecule, weights=per_atom, minlength=len(molecules))


def test_nonfinite_values_are_reported_and_left_out_of_the_statistics(tiny_molecules):
    values = tiny_molecules.property("U0").copy()
    values[[3, 17]] = [np.nan, np.inf]
    molecules = tiny_molecules.with_property("U0", values, "eV")
    report = check_values(molecules, "U0")
    np.testing.assert_array_equal(report.nonfinite_rows, [3, 17])
    assert report.unit == "eV" and report.n_molecules == 34
    finite = np.isfinite(values)
    for stats in report.per_size:
        mine = molecules.sizes == stats.n_atoms
        assert stats.molecules == mine.sum()
        assert stats.nonfinite == (mine & ~finite).sum()
        kept = values[mine & finite]
        assert stats.min == kept.min() and stats.max == kept.max()
        assert stats.mean == pytest.approx(kept.mean()) and stats.std == pytest.approx(kept.std())
    assert report.overall.mean == pytest.approx(values[finite].mean())
    assert sum(s.nonfinite for s in report.per_size) == 2


def test_a_size_without_finite_values_has_nan_statistics(tiny_molecules):
    values = tiny_molecules.property("U0").copy()
    values[tiny_molecules.sizes == 20] = np.nan  # the one 20-atom molecule
    report = check_values(tiny_molecules.with_property("U0", values, "eV"), "U0")
    last = report.per_size[-1]
    assert (last.n_atoms, last.molecules, last.nonfinite) == (20, 1, 1)
    assert np.isnan(last.mean) and np.isnan(last.std)


def test_exact_reference_energies_leave_no_outlier(tiny_molecules):
    molecules = tiny_molecules.with_property("U0", linear_energies(tiny_molecules), "eV")
    outliers = check_values(molecules, "U0").outliers
    assert len(outliers.rows) == 0
    assert outliers.reference_energies == pytest.approx(
        {"H": -13.6, "C": -1029.0, "N": -1485.0, "O": -2042.0, "F": -2713.0})


def test_a_shifted_energy_is_an_outlier_of_the_residual_per_atom(tiny_molecules):
    rng = np.random.default_rng(1)
    energies = linear_energies(tiny_molecules) + rng.normal(scale=0.05, size=34)
    energies[9] += 5.0
    report = check_values(tiny_molecules.with_property("U0", energies, "eV"), "U0")
    assert report.outliers.rows.tolist() == [9]
    assert report.outliers.scores[0] > OUTLIER_ROBUST_SD
    assert report.outliers.residual.startswith("residual per atom")


def test_shifted_qm9_energy_is_found_among_real_molecules(qm9):
    rows = np.sort(np.random.default_rng(0).choice(len(qm9), 3000, replace=False))
    sample = qm9.subset(rows)
    clean = check_values(sample, "U0").outliers
    energies = sample.property("U0").copy()
    victim = int(np.argmax(sample.sizes == 18))
    assert victim not in clean.rows
    energies[victim] += 50.0
    outliers = check_values(sample.with_property("U0", energies, "eV"), "U0").outliers
    assert outliers.rows[0] == victim  # the farthest
    assert outliers.residuals[0] == pytest.approx(50.0 / 18, rel=0.05)
    assert len(outliers.rows) <= len(clean.rows) + 1


def test_an_intensive_property_is_judged_on_its_value(tiny_molecules):
    rng = np.random.default_rng(2)
    gap = rng.normal(loc=7.0, scale=0.3, size=34)
    gap[4] = 30.0
    report = check_values(tiny_molecules.with_property("gap", gap, "eV"), "gap", extensive=False)
    assert report.outliers.rows.tolist() == [4] and report.outliers.residual == "value"
    assert report.outliers.reference_energies == {}
    assert report.outliers.residuals[0] == 30.0


def test_too_few_finite_values_are_not_judged(tiny_molecules):
    values = np.full(34, np.nan)
    values[:2] = [1.0, 100.0]
    report = check_values(tiny_molecules.with_property("U0", values, "eV"), "U0")
    assert len(report.outliers.rows) == 0 and np.isnan(report.outliers.robust_sd)
    assert len(report.nonfinite_rows) == 32


# ---- the scale of energies: a file read in the wrong unit ------------------------------


def only_u0(molecules: Molecules, values: np.ndarray) -> Molecules:
    """The molecules with `values` as their one property U0, declared in eV."""
    return dataclasses.replace(molecules, properties={"U0": np.asarray(values)},
                               units={"U0": "eV"}, annotations={})


def test_kcal_per_mol_read_as_ev_warns_and_names_the_unit(tmp_path, qm9, capsys):
    from molstrata.cli import main
    from molstrata.data.ase_io import read_file, write_extxyz

    some = qm9.subset(slice(0, 200))
    path = tmp_path / "kcal.extxyz"
    write_extxyz(only_u0(some, some.property("U0", "kcal/mol")), path)  # declares eV
    notes = read_file(path).notes
    assert len(notes) == 1 and notes[0].startswith(
        f"warning: U0 of {path} cannot be energies in eV: 200 of 200 molecules lie below the "
        "lowest energy their atoms can have (e.g. CH4, id 1: -25,401 eV, floor -1,452 eV); "
        "read in kcal/mol, they are total energies of the usual size")
    assert notes[0].endswith(f"fix the unit {path} declares for U0 (eV -> kcal/mol)")
    code = main(["data", "describe", "--dataset", str(path), "--property", "U0", "--unit",
                 "eV", "-o", str(tmp_path / "described")])
    out = capsys.readouterr().out
    assert code == 0 and out.splitlines()[0].startswith(f"warning: U0 of {path} cannot be")
    assert "give their unit: --unit kcal/mol (command line" in out.splitlines()[0]


def test_energies_in_their_own_unit_do_not_warn(tmp_path, qm9):
    from molstrata.data.ase_io import read_file, write_extxyz

    some = qm9.subset(slice(0, 200))
    atoms_ha = {1: -0.500273, 6: -37.846772, 7: -54.583861, 8: -75.064579, 9: -99.718730}
    isolated = np.array([atoms_ha[int(z)] * 27.211386245988 for z in some.numbers])
    atomisation = some.property("U0") - np.bincount(some.atom_molecule, weights=isolated)
    assert -10 < (atomisation / some.sizes).min() and (atomisation / some.sizes).max() < 0
    for name, values in [("total", some.property("U0")),
                         ("atomisation", atomisation),
                         ("gap", some.property("gap")),
                         ("kcal", some.property("U0", "kcal/mol"))]:
        molecules = only_u0(some, values)
        if name == "kcal":  # declared as what they are
            molecules = molecules.with_property("U0", values, "kcal/mol")
        write_extxyz(molecules, tmp_path / f"{name}.extxyz")
        assert read_file(tmp_path / f"{name}.extxyz").notes == (), name


def test_the_floor_lies_below_every_real_total_energy(qm9):
    from molstrata.data.values import energy_floor

    share = qm9.property("U0") / energy_floor(qm9)
    assert 0.6 < share.min() and share.max() < 0.8  # TYPICAL_SHARE is 0.75
