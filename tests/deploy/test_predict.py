"""`molstrata export` and `molstrata predict`: evaluate's numbers, ensembles, flags, periodic
structures, references on another zero, what the extxyz keeps, bad input."""

from __future__ import annotations

import csv

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator

from molstrata.cli import main
from molstrata.data.ase_io import read_molecules, to_atoms, write_db, write_extxyz
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


def test_periodic_structures_get_a_flagged_row_and_the_molecules_are_predicted(
        tmp_path, model_path, evaluation, test_file, capsys):
    frames = ase.io.read(test_file, index=":5")
    bulk = frames[1].copy()
    bulk.cell, bulk.pbc = [12.0, 12.0, 12.0], True
    slab = frames[3].copy()
    slab.cell, slab.pbc = [10.0, 11.0, 30.0], [True, True, False]
    slab_forces = np.linspace(-1, 1, 3 * len(slab)).reshape(-1, 3)
    slab.calc = SinglePointCalculator(slab, energy=-5.0, forces=slab_forces,
                                      stress=np.arange(6.0))
    mixed = tmp_path / "mixed.extxyz"
    ase.io.write(mixed, [frames[0], bulk, frames[2], slab, frames[4]], format="extxyz")
    crystals = tmp_path / "crystals.extxyz"  # a file of periodic structures only
    ase.io.write(crystals, [bulk], format="extxyz")
    code, out, err = run(capsys, "predict", model_path, mixed, crystals, "-o", tmp_path / "p",
                         "-q", "--min-stratum", "0")
    assert code == 0, err
    rows = read_rows(tmp_path / "p.csv")
    assert [r["file"] for r in rows] == [str(mixed)] * 5 + [str(crystals)]
    assert [r["flags"] for r in rows] == ["", "periodic", "", "periodic", "", "periodic"]
    periodic = [1, 3, 5]
    for i, row in enumerate(rows):
        if i in periodic:
            assert row["predicted_U0_eV"] == "" and row["in_domain"] == "False"
            assert row["note"] == "not predicted: periodic structure (the models know " \
                                  "molecules only)"
    molecules = [0, 2, 4]
    predicted = np.array([float(rows[i]["predicted_U0_eV"]) for i in molecules])
    np.testing.assert_allclose(predicted, evaluation.predictions.predicted[[0, 2, 4]],
                               rtol=0, atol=1e-6)
    assert [rows[i]["formula"] for i in periodic] == [
        rows[1]["formula"], frames[3].get_chemical_formula(mode="hill"), rows[1]["formula"]]
    assert "predicted U0 (eV) for 3 of 6 structures in 2 files" in out
    assert "domain of applicability: 3 of 6 structures flagged: 3 periodic (not predicted)" \
        in out
    assert (f"not predicted (periodic: the models know molecules only): {mixed} structures "
            f"1, 3; {crystals} structure 0") in out
    back = ase.io.read(tmp_path / "p.extxyz", index=":")
    assert [bool(a.pbc.any()) for a in back] == [False, True, False, True, False, True]
    np.testing.assert_allclose(back[3].cell.array, slab.cell.array)
    np.testing.assert_allclose(back[3].get_forces(), slab_forces)  # the file's data kept
    np.testing.assert_allclose(back[3].get_stress(), np.arange(6.0))
    assert back[3].info["domain_flags"] == "periodic" and "predicted_U0_eV" not in back[3].info


def test_references_on_another_zero_get_a_hint_and_an_offset_corrected_mae(
        tmp_path, model_path, evaluation, test_file, on_another_zero, capsys):
    shifted = tmp_path / "atomisation.extxyz"
    write_extxyz(on_another_zero(evaluation.molecules), shifted)
    code, out, err = run(capsys, "predict", model_path, shifted, "-o", tmp_path / "s", "-q")
    assert code == 0, err
    hint = [line for line in out.splitlines() if line.startswith("hint:")]
    assert len(hint) == 1
    assert "the model predicts total energies (U0" in hint[0]
    assert "look like energies on another zero" in hint[0]
    rows = read_rows(tmp_path / "s.csv")
    assert {"offset_U0_eV", "offset_corrected_error_meV"} <= set(rows[0])
    raw = np.abs([float(r["error_meV"]) for r in rows]).mean()
    corrected = np.abs([float(r["offset_corrected_error_meV"]) for r in rows]).mean()
    assert raw > 1e6  # thousands of eV: the atoms' energies
    assert corrected < raw / 1000
    # what is left is the model's own error (the fit may absorb a little of its bias)
    model_mae = 1000 * evaluation.report.overall.summary.mae
    assert 0.5 * model_mae < corrected < 1.5 * model_mae
    assert (f"offset-corrected MAE (per-element offset fitted by least squares on 30 "
            f"structures, then removed): {corrected:.2f} meV (raw MAE {raw:.2f} meV)") in out
    errors = np.array([float(r["error_meV"]) for r in rows])
    offsets = np.array([float(r["offset_U0_eV"]) for r in rows])
    np.testing.assert_allclose([float(r["offset_corrected_error_meV"]) for r in rows],
                               errors + 1000 * offsets, rtol=1e-9, atol=1e-6)
    # the file on the model's own zero: no hint, no extra columns
    code, out, err = run(capsys, "predict", model_path, test_file, "-o", tmp_path / "t", "-q")
    assert code == 0, err
    assert "hint:" not in out and "offset-corrected" not in out
    assert "offset_corrected_error_meV" not in read_rows(tmp_path / "t.csv")[0]


def test_an_ensembles_training_range_is_the_union_of_its_members(tmp_path, model_path,
                                                                 evaluation, capsys):
    document = torch.load(model_path, weights_only=True)
    domain = document["training_domain"]
    low = min(size for size, _ in domain["sizes"])
    assert low > 3
    domain["sizes"] = [[3, 500], *domain["sizes"]]  # this member also saw 3 atoms
    domain["size_elements"] += [[3, "H", 500], [3, "O", 500]]
    other = save_model_file(tmp_path / "other.pt", document)
    numbers, positions = evaluation.molecules.atoms_of(int(np.argmax(evaluation.molecules.sizes)))
    big = Atoms(numbers=numbers.astype(int), positions=positions)
    big += Atoms(numbers=numbers.astype(int), positions=positions + 100.0)
    water = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    path = tmp_path / "two.xyz"
    ase.io.write(path, [water, big], format="extxyz")
    code, out, err = run(capsys, "predict", model_path, other, path, "-o", tmp_path / "e", "-q")
    assert code == 0, err
    high = max(size for size, _ in domain["sizes"])
    assert f"1 size outside the training range 3-{high}" in out
    rows = read_rows(tmp_path / "e.csv")
    # water lies in the ensemble's range; the first member never saw its size: rare there
    assert rows[0]["flags"].startswith("rare_size:3(0)")
    assert rows[1]["flags"].startswith(f"size_outside_training:{len(big)}")


def test_the_extxyz_keeps_the_files_per_atom_arrays_and_cell(tmp_path, model_path, evaluation):
    frames = []
    for i in range(3):
        numbers, positions = evaluation.molecules.atoms_of(i)
        atoms = Atoms(numbers=numbers.astype(int), positions=positions, cell=[20.0, 21.0, 22.0])
        atoms.set_initial_charges(np.linspace(-0.5, 0.5, len(atoms)))
        forces = np.arange(3 * len(atoms), dtype=float).reshape(-1, 3) / 10
        atoms.calc = SinglePointCalculator(atoms, energy=-float(i), forces=forces)
        frames.append(atoms)
    path = tmp_path / "with_data.extxyz"
    ase.io.write(path, frames, format="extxyz")
    result = predict_files([model_path], [path], tmp_path / "d", progress=False)
    back = ase.io.read(tmp_path / "d.extxyz", index=":")
    for given, written, predicted in zip(frames, back, result.predicted):
        np.testing.assert_allclose(written.get_initial_charges(), given.get_initial_charges())
        np.testing.assert_allclose(written.get_forces(), given.get_forces())
        np.testing.assert_allclose(written.cell.array, given.cell.array)
        np.testing.assert_allclose(written.positions, given.positions, atol=1e-8)
        assert not written.pbc.any()
        assert written.info["predicted_U0_eV"] == pytest.approx(predicted)


def test_a_target_with_no_unit_says_how_to_get_the_reference(tmp_path, model_path, evaluation,
                                                             capsys):
    frames = [to_atoms(evaluation.molecules, i) for i in range(5)]
    for frame in frames:
        del frame.info["molstrata_units"]
    path = tmp_path / "unitless.extxyz"
    ase.io.write(path, frames, format="extxyz")
    code, out, err = run(capsys, "predict", model_path, path, "-o", tmp_path / "p", "-q")
    assert code == 0, err
    assert (f"no reference or error for {path}: it holds U0 but declares no unit for it; to "
            "compare the predictions with it, give its unit: --unit UNIT (Python: "
            "unit='UNIT')") in out.splitlines()
    assert "reference_U0_eV" not in read_rows(tmp_path / "p.csv")[0]
    code, out, err = run(capsys, "predict", model_path, path, "--unit", "eV", "-o",
                         tmp_path / "q", "-q")
    assert code == 0, err
    assert "no reference" not in out and "MAE against the files' reference" in out
    rows = read_rows(tmp_path / "q.csv")
    np.testing.assert_array_equal([float(r["reference_U0_eV"]) for r in rows],
                                  evaluation.predictions.true[:5])


def test_the_files_own_ids_name_the_rows(tmp_path, model_path, evaluation):
    frames = [to_atoms(evaluation.molecules, i) for i in range(4)]
    names = ["mol88169", "mol12", "gdb_7", "x-1"]
    for frame, name in zip(frames, names):
        frame.info["molstrata_id"] = name
    path = tmp_path / "named.extxyz"
    ase.io.write(path, frames, format="extxyz")
    predict_files([model_path], [path], tmp_path / "pred", progress=False)
    assert [r["id"] for r in read_rows(tmp_path / "pred.csv")] == names
    back = ase.io.read(tmp_path / "pred.extxyz", index=":")
    assert [f.info["molstrata_id"] for f in back] == names


def test_export_and_predict_say_which_earlier_files_they_replaced(tmp_path, trained_run,
                                                                  test_file, capsys):
    """They overwrote earlier output without a word; evaluate says the same (tests/test_cli)."""
    model = tmp_path / "model.pt"
    lines = []
    for _ in range(2):
        code, out, err = run(capsys, "export", trained_run, "-o", model)
        assert code == 0, err
        lines.append(out.strip().splitlines()[-1])
    assert not lines[0].startswith("replaced")
    assert lines[1] == f"replaced 1 earlier file in {tmp_path}: model.pt"
    lines = []
    for _ in range(2):
        code, out, err = run(capsys, "predict", model, test_file, "-o", tmp_path / "p", "-q")
        assert code == 0, err
        lines.append(out.strip().splitlines()[-1])
    assert not lines[0].startswith("replaced")
    assert lines[1] == f"replaced 2 earlier files in {tmp_path}: p.csv, p.extxyz"


def test_predicting_into_a_log_draws_no_bar(tmp_path, model_path, test_file, capsys):
    """stderr captured here is no terminal: a bar would leave carriage returns in a log."""
    predict_files([model_path], [test_file], tmp_path / "p", progress=True)
    assert "\r" not in capsys.readouterr().err
