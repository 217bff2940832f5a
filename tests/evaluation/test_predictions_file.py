"""`molstrata evaluate --predictions FILE` and `molstrata.evaluate_predictions`: another
model's energies, stratified. A tiny run's own evaluation is the yardstick: its test molecules
written with its predictions as MACE_energy and its references as REF_energy must give the
same errors, globally and per size."""

from __future__ import annotations

import csv
import json

import ase.db
import ase.io
import ase.units
import numpy as np
import pytest
from ase import Atoms

import molstrata
from molstrata.cli import main
from molstrata.evaluation import DEFAULT_MIN_STRATUM
from molstrata.evaluation.evaluate import evaluate_run
from molstrata.evaluation.files import load_metrics
from molstrata.evaluation.predictions_file import evaluate_predictions
from molstrata.training.config import TrainConfig
from molstrata.training.run import train

FILES = {"metrics.json", "metrics_by_size.csv", "metrics_by_element.csv",
         "metrics_by_size_element.csv", "predictions.csv", "evaluation.json",
         "error_by_size.png", "error_by_element.png", "predicted_vs_true.png"}
"""What evaluate --predictions writes: a run's evaluation without its learning curve."""


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory, qm9_cache_dir):
    """A run of 300 QM9 molecules trained 1 epoch, evaluated on its test split (30)."""
    config = TrainConfig.from_dict({
        "data": {"cache_dir": str(qm9_cache_dir), "max_molecules": 300, "split_seed": 1},
        "model": {"n_atom_basis": 16, "n_interactions": 2, "n_rbf": 10},
        "training": {"epochs": 1, "batch_size": 16, "lr": 3e-3},
        "runtime": {"threads": 1, "seed": 1},
    }).validate()
    run_dir = tmp_path_factory.mktemp("byo") / "run"
    train(config, run_dir, progress=False, log=lambda *_: None)
    return evaluate_run(run_dir, n_bootstrap=50, device="cpu", progress=False)


@pytest.fixture(scope="module")
def structures(evaluated_run):
    """The run's test molecules as ASE Atoms, its predictions.csv's energies (eV) on them as
    MACE_energy and REF_energy, as mace_eval_configs leaves them (no calculator)."""
    with open(evaluated_run.out_dir / "predictions.csv", newline="") as handle:
        rows = {int(row["id"]): row for row in csv.DictReader(handle)}
    molecules = evaluated_run.molecules
    frames = []
    for i, identifier in enumerate(molecules.ids):
        numbers, positions = molecules.atoms_of(i)
        atoms = Atoms(numbers=numbers, positions=positions, pbc=False)
        row = rows[int(identifier)]
        atoms.info.update({"REF_energy": float(row["true_eV"]),
                           "MACE_energy": float(row["predicted_eV"])})
        frames.append(atoms)
    return frames


def metrics_of(folder) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def assert_same_errors(document: dict, yardstick: dict) -> None:
    """Global and per-size MAE, RMSE and counts of two metrics.json files agree."""
    for key in ("mae_meV", "rmse_meV", "count"):
        assert document["global"][key] == pytest.approx(yardstick["global"][key], rel=1e-9)
    assert [s["size"] for s in document["per_size"]] == [s["size"] for s in yardstick["per_size"]]
    for ours, theirs in zip(document["per_size"], yardstick["per_size"]):
        assert ours["count"] == theirs["count"]
        assert ours["mae_meV"] == pytest.approx(theirs["mae_meV"], rel=1e-9)
    assert [s["element"] for s in document["per_element"]] == \
        [s["element"] for s in yardstick["per_element"]]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_extxyz_of_a_runs_predictions_gives_the_runs_errors(evaluated_run, structures,
                                                                tmp_path, capsys):
    path = tmp_path / "mace_out.extxyz"
    ase.io.write(path, structures, format="extxyz")
    code, out, err = run(capsys, "evaluate", "--predictions", path, "--bootstrap", "50")
    assert code == 0, err
    folder = tmp_path / "mace_out-eval"
    assert {p.name for p in folder.iterdir()} == FILES
    document = metrics_of(folder)
    assert_same_errors(document, metrics_of(evaluated_run.out_dir))
    assert document["training"] is None and document["correlation"] == {}
    assert all(s["train_count"] is None and s["train_share_percent"] is None
               for s in document["per_size"])
    assert "training set not given" in out and "need the model's training file" in out
    summary = json.loads((folder / "evaluation.json").read_text())
    assert summary["predictions"] == {"predicted": "MACE_energy", "reference": "REF_energy",
                                      "unit": "eV"}
    assert load_metrics(folder / "metrics.json").training.known is False


def test_an_ase_db_in_kcal_per_mol_gives_the_same_errors(evaluated_run, structures, tmp_path,
                                                         capsys):
    path = tmp_path / "preds.db"
    to_kcal = 1 / (ase.units.kcal / ase.units.mol)
    with ase.db.connect(path) as db:
        for atoms in structures:
            db.write(Atoms(atoms.numbers, atoms.positions),
                     key_value_pairs={"dft": atoms.info["REF_energy"] * to_kcal,
                                      "nequip": atoms.info["MACE_energy"] * to_kcal})
    out_dir = tmp_path / "db-eval"
    code, _, err = run(capsys, "evaluate", "--predictions", path, "--predicted", "nequip",
                       "--reference", "dft", "--unit", "kcal/mol", "--bootstrap", "50",
                       "-o", out_dir)
    assert code == 0, err
    assert_same_errors(metrics_of(out_dir), metrics_of(evaluated_run.out_dir))


def test_python_with_a_list_of_atoms_returns_the_runs_metrics(evaluated_run, structures,
                                                              tmp_path):
    metrics = molstrata.evaluate_predictions(structures, out=tmp_path / "py", n_bootstrap=50)
    yardstick = metrics_of(evaluated_run.out_dir)
    assert metrics.mae_meV == pytest.approx(yardstick["global"]["mae_meV"], rel=1e-9)
    assert metrics.per_size.column("mae_meV") == pytest.approx(
        [s["mae_meV"] for s in yardstick["per_size"]], rel=1e-9)
    assert metrics.per_size.column("train_count") == [None] * len(metrics.per_size)
    assert list(metrics.hypotheses) == []
    assert_same_errors(metrics_of(tmp_path / "py"), yardstick)


@pytest.fixture(scope="module")
def training_frames(evaluated_run):
    """The run's training molecules as ASE Atoms (atoms only, no energies)."""
    from molstrata.training.data import prepare
    from molstrata.training.rundir import RunPaths, read_run_config

    paths = RunPaths(evaluated_run.out_dir.parent).require()
    data = prepare(read_run_config(paths.root), paths.split, progress=False)
    train = data.molecules.subset(data.split.train)
    return [Atoms(numbers=numbers, positions=positions, pbc=False)
            for numbers, positions in (train.atoms_of(i) for i in range(len(train)))]


def test_the_training_file_gives_the_runs_shares_and_hypothesis_tests(
        evaluated_run, structures, training_frames, tmp_path, capsys):
    predictions, train = tmp_path / "mace_out.extxyz", tmp_path / "train.extxyz"
    ase.io.write(predictions, structures, format="extxyz")
    ase.io.write(train, training_frames, format="extxyz")
    code, out, err = run(capsys, "evaluate", "--predictions", predictions, "--train", train,
                         "--bootstrap", "50")
    assert code == 0, err
    document = metrics_of(tmp_path / "mace_out-eval")
    yardstick = metrics_of(evaluated_run.out_dir)
    assert_same_errors(document, yardstick)
    assert document["training"] == yardstick["training"]
    assert document["training"]["n_molecules"] == len(training_frames)
    for kind in ("per_size", "per_element"):
        for ours, theirs in zip(document[kind], yardstick[kind], strict=True):
            assert ours["train_count"] == theirs["train_count"] is not None
            assert ours["train_share_percent"] == pytest.approx(theirs["train_share_percent"])
    assert set(document["correlation"]) == set(yardstick["correlation"]) != set()
    for kind, theirs in yardstick["correlation"].items():
        assert document["correlation"][kind] == pytest.approx(theirs)
    assert "need the model's training file" not in out
    summary = json.loads((tmp_path / "mace_out-eval" / "evaluation.json").read_text())
    assert summary["training"] == str(train)
    assert summary["domain"]["min_stratum"] == DEFAULT_MIN_STRATUM


def test_an_element_absent_from_training_is_flagged_not_refused(tmp_path):
    predictions = small_file(tmp_path)
    train = [Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]]) for _ in range(4)]
    evaluation = evaluate_predictions(predictions, train=train, n_bootstrap=10,
                                      log=lambda *_: None)
    assert evaluation.report.training.elements == {"H": 4}
    assert {s.key: s.train_count for s in evaluation.report.elements} == {"H": 4, "O": 0}
    assert all("unseen_element:O" in flags for flags in evaluation.domain.flags)
    from molstrata.evaluation.evaluate import summary_text

    text = summary_text(evaluation)
    assert "3 element never seen in training (evaluated all the same)" in text
    assert "not predicted" not in text


# ---- refusals: one line, nothing written ---------------------------------------------------


def small_file(tmp_path, edit=None, name="small.extxyz"):
    """Three water-like molecules with REF_energy and MACE_energy, changed by `edit`."""
    frames = []
    for k in range(3):
        atoms = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0.1 * k]])
        atoms.info.update({"REF_energy": -14.2 - 0.1 * k, "MACE_energy": -14.1 - 0.1 * k})
        frames.append(atoms)
    if edit is not None:
        edit(frames)
    path = tmp_path / name
    ase.io.write(path, frames, format="extxyz")
    return path


def nan_prediction(frames):
    frames[1].info["MACE_energy"] = float("nan")


def periodic(frames):
    frames[2].set_cell([5, 5, 5])
    frames[2].pbc = True


def forces(frames):
    for atoms in frames:
        atoms.arrays["MACE_forces"] = np.zeros((len(atoms), 3))


@pytest.mark.parametrize("edit, extra, words", [
    (None, ["--predicted", "nequip_energy"], ["nequip_energy", "REF_energy, MACE_energy",
                                               "--predicted"]),
    (None, ["--reference", "dft"], ["'dft'", "REF_energy, MACE_energy", "--reference"]),
    (nan_prediction, [], ["NaN", "structures 1"]),
    (periodic, [], ["periodic", "structure 2", "--skip-periodic"]),
    (None, ["--unit", "furlong"], ["unknown unit 'furlong'"]),
    (None, ["--unit", "Debye"], ["dipole", "energy unit"]),
    (forces, ["--predicted", "MACE_forces"], ["one value per atom", "per-structure"]),
    (None, ["--split", "val"], ["--split", "RUN"]),
    (None, ["--min-stratum", "0"], ["--min-stratum", "RUN"]),
], ids=["predicted", "reference", "nan", "periodic", "unknown-unit", "not-energy", "forces",
        "run-option", "run-option-zero"])
def test_a_refusal_is_one_line_and_writes_nothing(tmp_path, capsys, edit, extra, words):
    path = small_file(tmp_path, edit)
    assert_refused_in_one_line(tmp_path, capsys, words, "--predictions", path, *extra)


def assert_refused_in_one_line(tmp_path, capsys, words, *argv):
    """`molstrata evaluate ARGV` fails with one line holding every one of `words`, and
    leaves tmp_path as it was."""
    before = set(tmp_path.iterdir())
    code, _, err = run(capsys, "evaluate", *argv, "--bootstrap", "10")
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0]
    assert set(tmp_path.iterdir()) == before


def empty_file(tmp_path):
    path = tmp_path / "train.extxyz"
    path.write_text("")
    return path


def not_a_structure_file(tmp_path):
    path = tmp_path / "train.extxyz"
    path.write_text("this is not an extxyz file\n")
    return path


def periodic_training_file(tmp_path):
    return small_file(tmp_path, periodic, name="train.extxyz")


@pytest.mark.parametrize("make, words", [
    (empty_file, ["train.extxyz", "empty"]),
    (not_a_structure_file, ["train.extxyz"]),
    (periodic_training_file, ["periodic", "train.extxyz", "--skip-periodic"]),
    (lambda tmp_path: tmp_path / "missing.extxyz", ["not found", "missing.extxyz"]),
], ids=["empty", "unreadable", "periodic", "missing"])
def test_a_bad_training_file_is_one_line_and_writes_nothing(tmp_path, capsys, make, words):
    path = small_file(tmp_path)
    train = make(tmp_path)
    assert_refused_in_one_line(tmp_path, capsys, words, "--predictions", path, "--train", train)


def test_run_and_predictions_together_are_refused(tmp_path, capsys):
    path = small_file(tmp_path)
    code, _, err = run(capsys, "evaluate", tmp_path, "--predictions", path)
    assert code != 0 and "not both" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "evaluate")
    assert code != 0 and "--predictions FILE" in err
    assert not (tmp_path / "small-eval").exists()


def test_the_periodic_structure_can_be_left_out(tmp_path, capsys):
    path = small_file(tmp_path, periodic)
    code, out, err = run(capsys, "evaluate", "--predictions", path, "--skip-periodic",
                         "--bootstrap", "10")
    assert code == 0, err
    assert "left out 1 periodic structure" in out
    assert metrics_of(tmp_path / "small-eval")["n_molecules"] == 2
    assert metrics_of(tmp_path / "small-eval")["global"]["mae_meV"] == pytest.approx(100.0)


# ---- a table of predictions joined to the structures it predicted -------------------------


def reference_only(structures, with_ids=False):
    """The structures with their reference energy only (as a dataset file holds them)."""
    frames = []
    for i, atoms in enumerate(structures):
        plain = Atoms(numbers=atoms.numbers, positions=atoms.positions, pbc=False)
        plain.info["REF_energy"] = atoms.info["REF_energy"]
        if with_ids:
            plain.info["molstrata_id"] = 1000 + 7 * i
        frames.append(plain)
    return frames


@pytest.mark.parametrize("with_ids", [False, True], ids=["by-position", "by-molstrata_id"])
def test_a_csv_joined_to_its_structures_gives_the_runs_errors(evaluated_run, structures,
                                                              tmp_path, capsys, with_ids):
    dataset = tmp_path / "test_set.extxyz"
    ase.io.write(dataset, reference_only(structures, with_ids), format="extxyz")
    table = tmp_path / "nequip.csv"
    rows = [(1000 + 7 * i if with_ids else i, atoms.info["MACE_energy"])
            for i, atoms in enumerate(structures)]
    with open(table, "w", newline="") as handle:  # shuffled: rows are joined by id
        writer = csv.writer(handle)
        writer.writerow(["id", "nequip_energy"])
        writer.writerows(rows[::-1])
    code, _, err = run(capsys, "evaluate", "--predictions", table, "--structures", dataset,
                       "--bootstrap", "50")
    assert code == 0, err
    folder = tmp_path / "nequip-eval"
    assert_same_errors(metrics_of(folder), metrics_of(evaluated_run.out_dir))
    summary = json.loads((folder / "evaluation.json").read_text())
    assert summary["predictions"] == {"predicted": "nequip_energy", "reference": "REF_energy",
                                      "unit": "eV", "structures": str(dataset)}


def spk_database(structures, path):
    """The structures as SchNetPack's ASE database: the reference under data['energy_U0']
    and the unit in its metadata."""
    with ase.db.connect(path) as db:
        db.metadata = {"_property_unit_dict": {"energy_U0": "eV"}, "_distance_unit": "Ang"}
        for atoms in structures:
            db.write(Atoms(atoms.numbers, atoms.positions),
                     data={"energy_U0": np.array([atoms.info["REF_energy"]])})
    return path


@pytest.mark.parametrize("with_index", [False, True], ids=["in-order", "idx_m"])
def test_schnetpacks_predictions_pt_gives_the_runs_errors(evaluated_run, structures, tmp_path,
                                                          capsys, with_index):
    torch = pytest.importorskip("torch")
    database = spk_database(structures, tmp_path / "qm9_test.db")
    energies = torch.tensor([a.info["MACE_energy"] for a in structures], dtype=torch.float64)
    saved = {"energy_U0": energies}
    if with_index:  # spkpredict write_idx_m=True: each atom's dataset row, batches reordered
        order = np.random.default_rng(0).permutation(len(structures))
        saved["energy_U0"] = energies[order]
        saved["_idx_m"] = torch.tensor(np.repeat(order, [len(structures[i]) for i in order]))
    torch.save(saved, tmp_path / "predictions.pt")
    code, _, err = run(capsys, "evaluate", "--predictions", tmp_path / "predictions.pt",
                       "--structures", database, "--reference", "energy_U0",
                       "--bootstrap", "50")
    assert code == 0, err
    assert_same_errors(metrics_of(tmp_path / "predictions-eval"),
                       metrics_of(evaluated_run.out_dir))


class Payload:
    """A pickle that would write a file when loaded: a predictions.pt must not run code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def csv_without_id(tmp_path):
    (tmp_path / "p.csv").write_text("structure,energy\n0,1.0\n")
    return ["--predictions", tmp_path / "p.csv"]


def csv_unknown_id(tmp_path):
    (tmp_path / "p.csv").write_text("id,energy\n0,1.0\n7,2.0\n")
    return ["--predictions", tmp_path / "p.csv"]


def csv_twice(tmp_path):
    (tmp_path / "p.csv").write_text("id,energy\n0,1.0\n0,2.0\n")
    return ["--predictions", tmp_path / "p.csv"]


def csv_two_columns(tmp_path):
    (tmp_path / "p.csv").write_text("id,mace,nequip\n0,1.0,1.1\n")
    return ["--predictions", tmp_path / "p.csv"]


def csv_text_value(tmp_path):
    (tmp_path / "p.csv").write_text("id,energy\n0,-40.1\n1,diverged\n")
    return ["--predictions", tmp_path / "p.csv"]


def pt_with_code(tmp_path):
    import torch

    torch.save({"energy": Payload(tmp_path.parent / "pwned.txt")}, tmp_path / "p.pt")
    return ["--predictions", tmp_path / "p.pt"]


def pt_too_short(tmp_path):
    import torch

    torch.save({"energy": torch.zeros(2)}, tmp_path / "p.pt")
    return ["--predictions", tmp_path / "p.pt"]


@pytest.mark.parametrize("make, words", [
    (csv_without_id, ["no id column", "structure, energy"]),
    (csv_unknown_id, ["'7'", "line 3", "not a structure"]),
    (csv_twice, ["'0' twice", "lines 2 and 3"]),
    (csv_two_columns, ["mace, nequip", "--predicted"]),
    (csv_text_value, ["'diverged'", "line 3"]),
    (pt_with_code, ["cannot read", "predictions.pt"]),
    (pt_too_short, ["2 predictions for 3 structures", "idx_m"]),
], ids=["no-id", "unknown-id", "twice", "two-columns", "text", "code", "too-short"])
def test_a_bad_table_is_one_line_and_runs_and_writes_nothing(tmp_path, capsys, make, words):
    structures = small_file(tmp_path)
    argv = make(tmp_path)
    assert_refused_in_one_line(tmp_path, capsys, words, *argv, "--structures", structures)
    assert not (tmp_path.parent / "pwned.txt").exists()


def test_a_table_without_structures_says_how_to_join_it(tmp_path, capsys):
    (tmp_path / "p.csv").write_text("id,energy\n0,1.0\n")
    assert_refused_in_one_line(tmp_path, capsys, ["--structures FILE", "p.csv"],
                               "--predictions", tmp_path / "p.csv")


def test_nequips_test_time_file_needs_no_keys(evaluated_run, structures, tmp_path, capsys):
    """NequIP's TestTimeXYZFileWriter: the prediction through ase's calculator (energy=),
    the dataset's value as original_dataset_energy."""
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = []
    for atoms in structures:
        written = Atoms(numbers=atoms.numbers, positions=atoms.positions, pbc=False)
        written.info["original_dataset_energy"] = atoms.info["REF_energy"]
        written.calc = SinglePointCalculator(written, energy=atoms.info["MACE_energy"])
        frames.append(written)
    path = tmp_path / "test_dataset0.xyz"
    ase.io.write(path, frames, format="extxyz")
    code, _, err = run(capsys, "evaluate", "--predictions", path, "--bootstrap", "50")
    assert code == 0, err
    folder = tmp_path / "test_dataset0-eval"
    assert_same_errors(metrics_of(folder), metrics_of(evaluated_run.out_dir))
    read = json.loads((folder / "evaluation.json").read_text())["predictions"]
    assert (read["predicted"], read["reference"]) == ("energy", "original_dataset_energy")


def test_a_file_of_no_known_convention_names_the_conventions(tmp_path, capsys):
    frames = [Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])]
    frames[0].info.update({"dft": -14.2, "pred": -14.1})
    path = tmp_path / "own.extxyz"
    ase.io.write(path, frames, format="extxyz")
    assert_refused_in_one_line(tmp_path, capsys, ["MACE_energy", "original_dataset_energy",
                                                  "dft, pred", "--predicted"],
                               "--predictions", path)


def test_forces_in_the_file_are_evaluated_per_atom(tmp_path, capsys):
    """MACE's file with forces: predicted = reference + 0.05 eV/Å on each component of the
    O atoms only, so O's force MAE is 50 meV/Å, H's 0, and all atoms' 50/3."""
    rng = np.random.default_rng(3)
    frames = []
    for k in range(12):
        atoms = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0.01 * k]])
        reference = rng.normal(size=(3, 3))
        predicted = reference.copy()
        predicted[0] += 0.05
        atoms.info.update({"REF_energy": -14.2 - 0.1 * k, "MACE_energy": -14.1 - 0.1 * k})
        atoms.arrays.update({"REF_forces": reference, "MACE_forces": predicted})
        frames.append(atoms)
    path = tmp_path / "mace_forces.extxyz"
    ase.io.write(path, frames, format="extxyz")
    code, out, err = run(capsys, "evaluate", "--predictions", path, "--bootstrap", "50")
    assert code == 0, err
    folder = tmp_path / "mace_forces-eval"
    assert {"forces_by_element.csv", "forces_by_size.csv"} <= {p.name for p in folder.iterdir()}
    with open(folder / "forces_by_element.csv", newline="") as handle:
        by_element = {row["element"]: row for row in csv.DictReader(handle)}
    assert float(by_element["O"]["mae_meV_per_Angstrom"]) == pytest.approx(50.0)
    assert float(by_element["H"]["mae_meV_per_Angstrom"]) == pytest.approx(0.0, abs=1e-9)
    summary = json.loads((folder / "evaluation.json").read_text())
    assert summary["predictions"]["predicted_forces"] == "MACE_forces"
    assert summary["predictions"]["reference_forces"] == "REF_forces"
    assert summary["forces"]["global"]["mae_meV_per_Angstrom"] == pytest.approx(50.0 / 3)
    assert "force" in out.lower()
    metrics = molstrata.evaluate_predictions(path, out=tmp_path / "py", n_bootstrap=50)
    assert metrics.forces["global"]["mae_meV_per_Angstrom"] == pytest.approx(50.0 / 3)
