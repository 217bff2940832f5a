"""`data describe` looks at the target's values: non-finite ones, spread per size, outliers,
with ids in summary.json and value_flags.csv, on a QM9 slice written to extxyz and on QM9."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from molstrata.cli import main
from molstrata.data.ase_io import write_extxyz
from molstrata.errors import MolstrataError
from molstrata.report.describe import describe


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def damaged_slice(qm9, tmp_path):
    """2,000 QM9 molecules in an extxyz (QM9 ids kept), U0 only: one NaN, one shifted by
    +50 eV. Returns (path, the NaN one's id, the shifted one's id, the molecules)."""
    rows = np.sort(np.random.default_rng(3).choice(len(qm9), 2000, replace=False))
    sample = qm9.subset(rows)
    energies = sample.property("U0").copy()
    energies[10] = np.nan
    shifted = int(np.flatnonzero(sample.sizes == 17)[0])
    energies[shifted] += 50.0
    sample = type(sample)(sample.numbers, sample.positions, sample.offsets, sample.ids,
                          {"U0": energies}, {"U0": "eV"})
    path = tmp_path / "slice.extxyz"
    write_extxyz(sample, path)
    return path, int(sample.ids[10]), int(sample.ids[shifted]), sample


def test_describe_reports_nan_and_outlier_with_their_ids(tmp_path, capsys, damaged_slice):
    path, nan_id, shifted_id, sample = damaged_slice
    out_dir = tmp_path / "d"
    code, out, err = run(capsys, "data", "describe", "--dataset", path, "--property", "U0",
                         "-o", out_dir)
    assert code == 0, err
    values = json.loads((out_dir / "summary.json").read_text())["values"]
    assert values["property"] == "U0" and values["unit"] == "eV"
    assert values["n_nonfinite"] == 1 and values["nonfinite_ids"] == [nan_id]
    outliers = values["outliers"]
    assert outliers["ids"][0] == shifted_id and outliers["n_outliers"] == len(outliers["ids"])
    assert outliers["residual_per_atom_eV"][0] == pytest.approx(50 / 17, rel=0.05)
    assert outliers["scores_robust_sd"][0] > outliers["threshold_robust_sd"] == 6
    assert set(outliers["reference_energies_eV"]) == {"H", "C", "N", "O", "F"}
    energies = sample.property("U0")
    finite = np.isfinite(energies)
    assert values["mean_eV"] == pytest.approx(energies[finite].mean())
    assert values["max_eV"] == pytest.approx(energies[finite].max())
    assert f"1 NaN or infinite (ids {nan_id})" in out
    assert "outliers beyond 6 robust standard deviations" in out and str(shifted_id) in out

    with open(out_dir / "values_per_size.csv") as handle:
        rows = {int(r["n_atoms"]): r for r in csv.DictReader(handle)}
    assert list(next(iter(rows.values()))) == ["n_atoms", "molecules", "nonfinite", "min_eV",
                                               "max_eV", "mean_eV", "std_eV"]
    of_17 = energies[(sample.sizes == 17) & finite]
    assert float(rows[17]["std_eV"]) == pytest.approx(of_17.std())
    assert float(rows[17]["max_eV"]) == pytest.approx(of_17.max())
    assert sum(int(r["nonfinite"]) for r in rows.values()) == 1
    assert sum(int(r["molecules"]) for r in rows.values()) == 2000
    with open(out_dir / "value_flags.csv") as handle:
        flags = list(csv.DictReader(handle))
    assert (int(flags[0]["id"]), flags[0]["problem"], flags[0]["residual_per_atom_eV"]) == \
        (nan_id, "nonfinite", "")
    assert (int(flags[1]["id"]), flags[1]["problem"]) == (shifted_id, "outlier")
    assert int(flags[1]["n_atoms"]) == 17 and flags[1]["formula"].startswith("C")


def test_describe_without_a_target_checks_no_values(tmp_path, tiny_molecules):
    result = describe(tiny_molecules, tmp_path / "d")
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["values"] is None and "Values of" not in result.text
    assert not (tmp_path / "d" / "values_per_size.csv").exists()


def test_an_unknown_target_writes_nothing(tmp_path, tiny_molecules):
    with pytest.raises(MolstrataError, match="unknown property 'gap'"):
        describe(tiny_molecules, tmp_path / "d", target="gap")
    assert not (tmp_path / "d").exists()


def test_qm9_describes_cleanly(tmp_path, capsys, qm9_cache_dir):
    code, out, err = run(capsys, "data", "describe", "--cache-dir", qm9_cache_dir,
                         "-o", tmp_path / "q")
    assert code == 0, err
    values = json.loads((tmp_path / "q" / "summary.json").read_text())["values"]
    assert values["property"] == "U0" and values["n_nonfinite"] == 0
    with open(tmp_path / "q" / "size_histogram.csv") as handle:
        sizes = [int(r["n_atoms"]) for r in csv.DictReader(handle)]
    assert [row["n_atoms"] for row in values["per_size"]] == sizes
    assert sum(row["molecules"] for row in values["per_size"]) == values["n_molecules"]
    # Real QM9 has a few high-nitrogen molecules far from the per-element fit, not more.
    assert values["outliers"]["n_outliers"] <= 1e-3 * values["n_molecules"]
    assert "Values of U0 (eV) in 130,831 molecules: all finite" in out
