"""`molstrata export` and `molstrata predict`: evaluate's numbers, ensembles, flags, bad input."""

from __future__ import annotations

import csv

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms, units

from molstrata.cli import main
from molstrata.data.ase_io import read_molecules, write_db, write_extxyz
from molstrata.deploy.modelfile import save_model_file
from molstrata.deploy.predict import predict_files


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def test_file(tmp_path_factory, evaluation):
    """The run's test molecules as a molstrata extxyz, U0 (and every property) declared in eV."""
    path = tmp_path_factory.mktemp("structures") / "test.extxyz"
    write_extxyz(evaluation.molecules, path)
    return path


def test_export_then_predict_gives_evaluate_numbers(tmp_path, trained_run, evaluation,
                                                    test_file, capsys):
    model = tmp_path / "model.pt"
    code, out, err = run(capsys, "export", trained_run, "--best", "-o", model)
    assert code == 0, err
    assert f"wrote model file {model}" in out and "U0 in eV" in out
    code, out, err = run(capsys, "predict", model, test_file, "-o", tmp_path / "pred", "-q")
    assert code == 0, err
    rows = read_rows(tmp_path / "pred.csv")
    assert list(rows[0]) == ["file", "index", "id", "formula", "n_atoms", "predicted_U0_eV",
                             "reference_U0_eV", "error_meV", "in_domain", "flags", "note"]
    predicted = np.array([float(r["predicted_U0_eV"]) for r in rows])
    np.testing.assert_allclose(predicted, evaluation.predictions.predicted, rtol=0, atol=1e-6)
    reference = np.array([float(r["reference_U0_eV"]) for r in rows])
    np.testing.assert_array_equal(reference, evaluation.predictions.true)
    errors = np.array([float(r["error_meV"]) for r in rows])
    np.testing.assert_allclose(errors, 1000 * (predicted - reference), rtol=1e-9)
    assert [int(r["id"]) for r in rows] == evaluation.molecules.ids.tolist()
    assert [r["index"] for r in rows] == [str(i) for i in range(len(rows))]
    assert [int(r["n_atoms"]) for r in rows] == evaluation.molecules.sizes.tolist()
    mae_meV = 1000 * evaluation.report.overall.summary.mae
    assert f"MAE against the files' reference: {mae_meV:.2f} meV over 30 structures" in out
    assert "domain of applicability:" in out and "structures flagged" in out
    # the extxyz holds the same numbers, with units molstrata's reader understands
    back = read_molecules(tmp_path / "pred.extxyz", {"predicted_U0_eV": None, "U0": None})
    np.testing.assert_array_equal(back.property("predicted_U0_eV"), predicted)
    np.testing.assert_array_equal(back.property("U0"), reference)
    frames = ase.io.read(tmp_path / "pred.extxyz", index=":")
    assert [f.info["in_domain"] for f in frames] == [r["in_domain"] == "True" for r in rows]
    assert [f.info.get("domain_flags", "") for f in frames] == [r["flags"] for r in rows]


def test_several_files_of_several_formats_in_one_call(tmp_path, model_path, evaluation,
                                                      test_file):
    database = tmp_path / "test.db"
    write_db(evaluation.molecules, database)
    result = predict_files([model_path], [test_file, database], tmp_path / "both",
                           progress=False)
    rows = read_rows(tmp_path / "both.csv")
    assert [r["file"] for r in rows] == [str(test_file)] * 30 + [str(database)] * 30
    predicted = np.array([float(r["predicted_U0_eV"]) for r in rows])
    np.testing.assert_allclose(predicted[:30], predicted[30:], atol=1e-6)  # extxyz: 1e-8 Å
    np.testing.assert_allclose(predicted[30:], evaluation.predictions.predicted, atol=1e-6)
    np.testing.assert_array_equal(result.reference[30:], evaluation.predictions.true)


def test_an_ensemble_writes_the_mean_and_standard_deviation(tmp_path, model_path, test_file):
    document = torch.load(model_path, weights_only=True)
    state = document["model"]["state_dict"]
    last = max(k for k in state if k.startswith("head.outnet.") and k.endswith(".bias"))
    state[last] = state[last] + 0.05  # every atom's output moves: a different member
    other = save_model_file(tmp_path / "other.pt", document)
    singles = [
        predict_files([m], [test_file], tmp_path / name, progress=False).predicted
        for m, name in ((model_path, "a"), (other, "b"))
    ]
    assert np.abs(singles[0] - singles[1]).min() > 1e-3
    both = predict_files([model_path, other], [test_file], tmp_path / "ab", progress=False)
    rows = read_rows(tmp_path / "ab.csv")
    mean = np.array([float(r["predicted_U0_eV"]) for r in rows])
    std = np.array([float(r["std_U0_eV"]) for r in rows])
    np.testing.assert_allclose(mean, (singles[0] + singles[1]) / 2, rtol=0, atol=1e-9)
    np.testing.assert_allclose(std, np.abs(singles[0] - singles[1]) / np.sqrt(2), rtol=1e-9)
    np.testing.assert_array_equal(both.predicted, mean)


def test_structures_outside_the_training_range_are_flagged(tmp_path, model_path, evaluation,
                                                           capsys):
    molecules = evaluation.molecules
    big = int(np.argmax(molecules.sizes))
    sizes, counts = np.unique(molecules.sizes, return_counts=True)
    common = int(np.flatnonzero(molecules.sizes == sizes[np.argmax(counts)])[0])

    def atoms(i):
        numbers, positions = molecules.atoms_of(i)
        return Atoms(numbers=numbers.astype(int), positions=positions)

    pair = atoms(big) + atoms(big)  # two molecules 100 Å apart: one structure, too many atoms
    pair.positions[len(atoms(big)):] += 100.0
    chloro = atoms(common)
    chloro.numbers[0] = 17
    frames = [atoms(common), Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]),
              pair, chloro]
    path = tmp_path / "odd.xyz"
    ase.io.write(path, frames, format="extxyz")
    code, out, err = run(capsys, "predict", model_path, path, "-o", tmp_path / "odd", "-q",
                         "--min-stratum", "0")
    assert code == 0, err
    rows = read_rows(tmp_path / "odd.csv")
    assert "reference_U0_eV" not in rows[0]  # this file holds no U0
    assert rows[0]["flags"] == "" and rows[0]["in_domain"] == "True"
    assert rows[1]["flags"] == "size_outside_training:3"
    assert rows[2]["flags"] == f"size_outside_training:{len(pair)}"
    assert rows[3]["flags"].startswith("unseen_element:Cl")
    assert rows[3]["predicted_U0_eV"] == ""
    assert rows[3]["note"] == "not predicted: element Cl never seen in training"
    assert all(r["predicted_U0_eV"] for r in rows[:3])
    assert ("domain of applicability: 3 of 4 structures flagged: 1 element never seen in "
            "training (not predicted), 2 size outside the training range") in out
    assert f"not predicted (element never seen in training): {path} structure 3 (Cl)" in out
    assert "predicted U0 (eV) for 3 of 4 structures" in out


def test_a_reference_in_another_unit_is_converted(tmp_path, model_path, evaluation):
    frames = []
    for i in range(3):
        numbers, positions = evaluation.molecules.atoms_of(i)
        frame = Atoms(numbers=numbers.astype(int), positions=positions)
        frame.info["energy_kcal"] = evaluation.predictions.true[i] / (units.kcal / units.mol)
        frames.append(frame)
    path = tmp_path / "kcal.extxyz"
    ase.io.write(path, frames, format="extxyz")
    result = predict_files([model_path], [path], tmp_path / "k", property_name="energy_kcal",
                           unit="kcal/mol", progress=False)
    np.testing.assert_allclose(result.reference, evaluation.predictions.true[:3], rtol=1e-9)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("corrupt model", "truncated or damaged"),
        ("unparsable structures", "ASE cannot read {structures} at structure 30"),
        ("empty structures", "is empty"),
        ("no model", "give at least one model file"),
        ("checkpoint as model", "training checkpoint"),
        ("output over input", "would overwrite an input file"),
        ("program as model", "is a torch.export program"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(kind, message, tmp_path, model_path,
                                                  trained_run, test_file, capsys):
    model, structures = model_path, tmp_path / "in.extxyz"
    structures.write_bytes(test_file.read_bytes())
    out = tmp_path / "out"
    if kind == "corrupt model":
        model = tmp_path / "corrupt.pt"
        model.write_bytes(model_path.read_bytes()[:-300])
    elif kind == "unparsable structures":  # 30 good structures, then a bad one
        with structures.open("a") as handle:
            handle.write("2\nProperties=species:S:1:pos:R:3\nC 0 0 zero\nH 0 0 1\n")
    elif kind == "empty structures":
        structures.write_text("")
    elif kind == "checkpoint as model":
        model = tmp_path / "best.pt"
        model.write_bytes((trained_run / "checkpoints" / "best.pt").read_bytes())
    elif kind == "output over input":
        out = structures.with_suffix("")
    elif kind == "program as model":
        model = tmp_path / "model.pt2"
        model.write_bytes(b"PK\x03\x04")
    argv = ["predict", *([model] if kind != "no model" else []), structures, "-o", out, "-q"]
    code, stdout, err = run(capsys, *argv)
    message = message.format(structures=structures)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    named = model if kind in ("corrupt model", "checkpoint as model", "program as model") \
        else structures
    assert str(named) in err or kind == "no model"
    assert not out.with_suffix(".csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_export_errors_are_one_line(tmp_path, trained_run, capsys):
    for argv, message in (
        (["export", tmp_path, "-o", tmp_path / "m.pt"], "is not a molstrata run directory"),
        (["export", trained_run, "-o", tmp_path / "m.onnx"], "end it in .pt"),
        (["export", tmp_path / "nope", "-o", tmp_path / "m.pt"], "does not exist"),
    ):
        code, out, err = run(capsys, *argv)
        assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("command", ["export", "predict"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as raised:
        main([command, "--help"])
    assert raised.value.code == 0 and f"usage: molstrata {command}" in capsys.readouterr().out
