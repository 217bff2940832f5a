"""`molstrata evaluate --dataset`: a trained model on another file, as `predict` is, with the
same domain-of-applicability flags and the same hint when the file's energies lie on another
zero. It shares this folder's trained run."""

from __future__ import annotations

import json

import numpy as np
from ase import Atoms

from molstrata.cli import main
from molstrata.data.ase_io import from_atoms_list, to_atoms, write_extxyz
from molstrata.data.molecules import Molecules

FILES = {"metrics.json", "metrics_by_size.csv", "metrics_by_element.csv",
         "metrics_by_size_element.csv", "predictions.csv", "error_by_size.png",
         "error_by_element.png", "predicted_vs_true.png", "learning_curve.png",
         "evaluation.json"}
"""What `molstrata evaluate` writes, the figures drawn by the report stage included."""


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def with_a_pair(molecules: Molecules) -> Molecules:
    """The molecules and one more structure: the largest twice, 100 Å apart (too many atoms
    for the training range), its U0 the sum of the two."""
    big = int(np.argmax(molecules.sizes))
    one = to_atoms(molecules, big)
    pair = one + Atoms(numbers=one.numbers, positions=one.positions + 100.0)
    pair.info.update(one.info)
    pair.info["U0"] = 2 * one.info["U0"]
    pair.info["molstrata_id"] = -1
    frames = [to_atoms(molecules, i) for i in range(len(molecules))] + [pair]
    return from_atoms_list(frames, {"U0": "eV"})


def test_evaluate_on_another_zero_gives_the_hint_and_the_domain_flags(
        tmp_path, trained_run, evaluation, on_another_zero, capsys):
    shifted = tmp_path / "atomisation.extxyz"
    write_extxyz(on_another_zero(with_a_pair(evaluation.molecules)), shifted)
    out_dir = tmp_path / "shifted"
    code, out, err = run(capsys, "evaluate", trained_run, "--dataset", shifted, "--property",
                         "U0", "--bootstrap", "20", "--min-stratum", "0", "-o", out_dir)
    assert code == 0, err
    assert {p.name for p in out_dir.iterdir()} == FILES
    hint = [line for line in out.splitlines() if line.startswith("hint:")]
    assert len(hint) == 1 and "look like energies on another zero" in hint[0]
    high = max(evaluation.report.training.sizes)
    low = min(evaluation.report.training.sizes)
    assert ("domain of applicability: 1 of 31 structures flagged: 1 size outside the training "
            f"range {low}-{high}") in out
    summary = json.loads((out_dir / "evaluation.json").read_text())
    offset = summary["reference_offset"]
    assert offset["detected"] is True
    assert offset["raw_mae_meV"] > 1e6
    assert offset["offset_corrected_mae_meV"] < offset["raw_mae_meV"] / 1000
    assert set(offset["per_atom_offset_eV"]) == {"H", "C", "N", "O"}
    assert (f"offset-corrected MAE (per-element offset fitted by least squares on 31 "
            f"structures, then removed): {offset['offset_corrected_mae_meV']:.2f} meV") in out
    assert summary["domain"]["flags"] == {"size_outside_training": 1}


def test_evaluate_on_the_models_own_zero_gives_no_hint(tmp_path, trained_run, evaluation,
                                                      capsys):
    same = tmp_path / "same.extxyz"
    write_extxyz(evaluation.molecules, same)
    out_dir = tmp_path / "same"
    code, out, err = run(capsys, "evaluate", trained_run, "--dataset", same, "--bootstrap",
                         "20", "-o", out_dir)
    assert code == 0, err
    assert "hint:" not in out and "offset-corrected" not in out
    assert "domain of applicability: 30 of 30 structures flagged" in out  # 240 training mols
    offset = json.loads((out_dir / "evaluation.json").read_text())["reference_offset"]
    assert offset["detected"] is False
    mae = 1000 * evaluation.report.overall.summary.mae
    assert np.isclose(offset["raw_mae_meV"], mae, rtol=1e-6)


def test_evaluate_a_file_with_periodic_structures_leaves_them_out_when_asked(
        tmp_path, trained_run, evaluation, capsys):
    frames = [to_atoms(evaluation.molecules, i) for i in range(len(evaluation.molecules))]
    slab = Atoms("Cu4", positions=np.random.default_rng(0).uniform(0, 3, (4, 3)),
                 cell=[3.0, 3.0, 20.0], pbc=[True, True, False])
    slab.info["U0"] = -1.0
    path = tmp_path / "mixed.extxyz"
    from ase.io import write

    write(path, frames[:5] + [slab] + frames[5:], format="extxyz")
    out_dir = tmp_path / "mixed"
    code, out, err = run(capsys, "evaluate", trained_run, "--dataset", path, "--property", "U0",
                         "--unit", "eV", "--bootstrap", "20", "-o", out_dir)
    assert code == 2 and "1 periodic structure (of 31; first: structure 5, a slab)" in err
    assert "--skip-periodic" in err and not out_dir.exists()
    code, out, err = run(capsys, "evaluate", trained_run, "--dataset", path, "--property", "U0",
                         "--unit", "eV", "--bootstrap", "20", "--skip-periodic", "-o", out_dir)
    assert code == 0, err
    assert "left out 1 periodic structure of 31" in out
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["global"]["count"] == 30
    code, out, err = run(capsys, "evaluate", trained_run, "--skip-periodic")
    assert code == 2 and "applies to the structures of --dataset FILE" in err


def test_an_element_never_seen_in_training_is_refused_or_left_out_as_asked(
        tmp_path, trained_run, evaluation, capsys):
    from ase.build import molecule

    frames = [to_atoms(evaluation.molecules, i) for i in range(len(evaluation.molecules))]
    sulfur = molecule("SH2")
    sulfur.info.update({"U0": -10850.0, "molstrata_id": 99999})
    path = tmp_path / "sulfur.extxyz"
    from ase.io import write

    write(path, frames + [sulfur], format="extxyz")
    out_dir = tmp_path / "sulfur"
    code, out, err = run(capsys, "evaluate", trained_run, "--dataset", path, "--property", "U0",
                         "--unit", "eV", "--bootstrap", "20", "-o", out_dir)
    assert code == 2 and err.count("\n") == 1 and not out_dir.exists()
    assert ("1 of the 31 evaluated (sulfur) molecules hold S, which no training molecule has "
            "(ids 99999); leave them out with --skip-unseen (command line) or "
            "skip_unseen=True (Python)") in err
    assert "--excludes" not in err
    code, out, err = run(capsys, "evaluate", trained_run, "--dataset", path, "--property", "U0",
                         "--unit", "eV", "--bootstrap", "20", "--skip-unseen", "-o", out_dir)
    assert code == 0, err
    assert ("not evaluated (element never seen in training), as skip_unseen asks: 1 of 31 "
            "molecules of sulfur, ids 99999 (S)") in out
    assert "1 element never seen in training (not predicted)" in out  # as predict says
    assert json.loads((out_dir / "metrics.json").read_text())["global"]["count"] == 30
    summary = json.loads((out_dir / "evaluation.json").read_text())
    assert summary["left_out_unseen"] == {"n_molecules": 1, "elements": ["S"], "ids": [99999]}
    assert summary["domain"]["flags"]["unseen_element"] == 1


def test_string_ids_of_the_file_go_to_predictions_csv(tmp_path, trained_run, evaluation):
    from molstrata.evaluation.evaluate import evaluate_run
    from molstrata.tables import read_csv_rows

    frames = [to_atoms(evaluation.molecules, i) for i in range(len(evaluation.molecules))]
    names = [f"mol{88169 + i}" for i in range(len(frames))]
    for frame, name in zip(frames, names):
        frame.info["molstrata_id"] = name
    path = tmp_path / "named.extxyz"
    from ase.io import write

    write(path, frames, format="extxyz")
    result = evaluate_run(trained_run, dataset=str(path), n_bootstrap=10, device="cpu",
                          progress=False, out_dir=tmp_path / "named")
    rows = read_csv_rows(tmp_path / "named" / "predictions.csv", "")
    assert list(rows[0])[:2] == ["id", "molstrata_id"]
    assert [r["molstrata_id"] for r in rows] == names
    assert [int(r["id"]) for r in rows] == list(range(len(frames)))
    np.testing.assert_allclose([float(r["predicted_eV"]) for r in rows],
                               evaluation.predictions.predicted, rtol=0, atol=1e-6)
    assert result.molecules.identifiers() == names
