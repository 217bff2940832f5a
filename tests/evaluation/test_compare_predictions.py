"""`molstrata compare --predictions` and `molstrata.compare_predictions`: other models'
energies on the same structures, paired structure by structure. Synthetic molecules written
as extxyz files, as mace_eval_configs leaves them (REF_energy and a predicted key in info),
are the yardstick: two files give the leads `compare_runs` gives for runs with the same
errors, in whatever order the files list their structures."""

from __future__ import annotations

import csv
import dataclasses

import ase.io
import numpy as np
import pytest
from ase import Atoms

import molstrata
from molstrata.cli import main
from molstrata.errors import MolstrataError
from molstrata.evaluation.compare import compare_runs
from molstrata.evaluation.compare_predictions import prediction_results
from molstrata.evaluation.predictions_file import load_predictions
from molstrata.evaluation.results import RunResult
from molstrata.evaluation.stratified import stratified_metrics
from molstrata.report.compare import comparison_text
from molstrata.training.config import TrainConfig

N = 120
N_BOOTSTRAP = 200
FILES = {"comparison.csv", "comparison.md", "per_size.csv", "per_element.csv", "wins.csv",
         "error_by_size.png", "error_by_element.png", "run_time.png"}
"""What compare --predictions writes: a comparison of runs without learning curves."""


@pytest.fixture(scope="module")
def frames():
    """N small molecules of 3 to 8 atoms (H, C, N, O) with a reference energy each."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(N):
        size = int(rng.integers(3, 9))
        numbers = rng.choice([1, 6, 7, 8], size=size, p=[0.5, 0.3, 0.1, 0.1])
        numbers[0] = 6
        atoms = Atoms(numbers=numbers, positions=rng.normal(scale=1.5, size=(size, 3)))
        atoms.info["REF_energy"] = float(-10.0 * size + rng.normal())
        out.append(atoms)
    return out


def model_errors(frames, scale: float, large: float, seed: int) -> np.ndarray:
    """(N,) errors in eV: noise of `scale`, plus `large` on molecules of 6 atoms or more."""
    rng = np.random.default_rng(seed)
    sizes = np.array([len(a) for a in frames])
    return rng.normal(scale=scale, size=len(frames)) + large * (sizes >= 6)


def write(path, frames, energies: dict[str, np.ndarray], *, order=None, ids=None,
          change=None):
    """An extxyz file of `frames` (in `order`) carrying `energies` (key -> (N,) eV) beside
    REF_energy; ids: the info key to name each structure s0, s1, ...; change(i, atoms)
    alters structure i."""
    order = range(len(frames)) if order is None else order
    written = []
    for i in order:
        atoms = frames[i].copy()
        for key, values in energies.items():
            atoms.info[key] = float(atoms.info["REF_energy"] + values[i])
        if ids is not None:
            atoms.info[ids] = f"s{i}"
        if change is not None:
            change(i, atoms)
        written.append(atoms)
    ase.io.write(path, written, format="extxyz")
    return path


@pytest.fixture(scope="module")
def errors(frames):
    """Model A: noise of 50 meV; model B: 40 meV, 80 meV worse on the larger molecules."""
    return {"A": model_errors(frames, 0.05, 0.0, 1), "B": model_errors(frames, 0.04, 0.08, 2)}


@pytest.fixture(scope="module")
def files(tmp_path_factory, frames, errors):
    folder = tmp_path_factory.mktemp("models")
    return {name: write(folder / f"{name}.xyz", frames, {"MACE_energy": e})
            for name, e in errors.items()}


def compared(sources, **kw):
    return compare_runs(prediction_results(sources, n_bootstrap=N_BOOTSTRAP, log=lambda _: None,
                                           **kw), n_bootstrap=N_BOOTSTRAP)


def lead_rows(comparison):
    """The wins table without the labels and MAE (the same numbers, whatever the names)."""
    table = comparison.wins_table()
    keep = [k for k, name in enumerate(table.header)
            if name.startswith(("lead", "p_")) or name in ("kind", "stratum", "count",
                                                           "significant")]
    return [[row[k] for k in keep] for row in table.rows]


def as_run(label, predictions) -> RunResult:
    """A run of molstrata's own with these predictions, as `compare RUN RUN` loads one."""
    return RunResult(label=label, run_dir=label, split="test", config=TrainConfig(),
                     summary={"status": "finished"}, curve=None, eval_dir=label,
                     report=stratified_metrics(predictions, None, n_bootstrap=N_BOOTSTRAP),
                     predictions=predictions, evaluation_seconds=1.0)


def test_the_lead_of_two_files_is_the_lead_of_two_runs_with_the_same_errors(files):
    comparison = compared([files["A"], files["B"]])
    runs = [as_run(name, load_predictions(files[name], log=lambda _: None).predictions)
            for name in ("A", "B")]
    yardstick = compare_runs(runs, n_bootstrap=N_BOOTSTRAP)
    assert comparison.same_molecules and comparison.labels == ["A", "B"]
    assert comparison.wins_table().rows == yardstick.wins_table().rows
    assert comparison.overview.column("mae_meV") == yardstick.overview.column("mae_meV")
    overall = comparison.wins[0]
    assert overall.paired and overall.winner == "A" and overall.significant
    text = comparison_text(comparison)
    assert text.startswith(f"2 models of energy [eV] on the {N} structures of the prediction "
                           "files")
    assert "intervals cover the structures only" in text and "split" not in text


@pytest.mark.parametrize("ids", [None, "molstrata_id", "name"])
def test_files_listing_the_structures_in_another_order_give_the_same_comparison(
        tmp_path, frames, errors, files, ids):
    order = np.random.default_rng(5).permutation(N)
    a = write(tmp_path / "A.xyz", frames, {"MACE_energy": errors["A"]}, ids=ids)
    b = write(tmp_path / "B.xyz", frames, {"MACE_energy": errors["B"]}, order=order, ids=ids)
    assert lead_rows(compared([a, b])) == lead_rows(compared([files["A"], files["B"]]))
    # the first file sets the order: B first pairs the same errors in B's order (the
    # bootstrap's draws then fall on other structures, so only the leads themselves agree)
    leads = compared([b, a]).wins_table()
    assert leads.column("lead_meV") == pytest.approx(
        compared([files["A"], files["B"]]).wins_table().column("lead_meV"), rel=1e-12)


@pytest.mark.parametrize("ids, edit, message", [
    (None, "drop", "structure 7 ({formula}) of {a} is not in {b} (no structure there has its "
                   "atoms"),
    ("name", "drop", "structure 's7' ({formula}) of {a} is not in {b};"),
    ("name", "extra", "structure 's{n}' (CH4) of {b} is not in {a};"),
    ("name", "atoms", "structure 's7' is {formula} in {a} but has other atoms in {b}"),
    ("name", "moved", "structure 's7' is {formula} in {a} but has other positions (up to 0.1 Å "
                      "apart) in {b}"),
    (None, "reference", "structure 7 ({formula}) has the reference energy {ref:.6f} eV in {a} "
                        "but {changed:.6f} eV in {b}"),
])
def test_files_of_other_structures_are_refused_at_their_first_difference(
        tmp_path, frames, errors, ids, edit, message, capsys):
    """Structure 7 is missing, has other atoms, or another reference energy in b; or b holds
    one structure more. Nothing is written."""
    a = write(tmp_path / "a.xyz", frames, {"MACE_energy": errors["A"]}, ids=ids)
    methane = Atoms("CH4", positions=np.eye(5, 3) * 1.1, info={"REF_energy": -50.0})
    kept = [*frames, methane] if edit == "extra" else frames
    order = [i for i in range(len(kept)) if not (edit == "drop" and i == 7)]

    def change(i, atoms):
        if i == 7 and edit == "atoms":
            atoms.numbers[-1] = 9
        if i == 7 and edit == "moved":
            atoms.positions[0, 0] += 0.1
        if i == 7 and edit == "reference":
            atoms.info["REF_energy"] += 0.01

    b = write(tmp_path / "b.xyz", kept, {"MACE_energy": np.append(errors["B"], 0.0)},
              order=order, ids=ids, change=change)
    ref = frames[7].info["REF_energy"]
    expected = message.format(a=a, b=b, n=N, formula=formula(frames[7]), ref=ref,
                              changed=ref + 0.01)
    with pytest.raises(MolstrataError) as error:
        prediction_results([a, b], log=lambda _: None)
    assert expected in str(error.value) and "\n" not in str(error.value)
    out = tmp_path / "cmp"
    assert main(["compare", "--predictions", str(a), str(b), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def formula(atoms: Atoms) -> str:
    return atoms.get_chemical_formula(mode="hill")


def test_several_predicted_keys_of_one_file_are_compared_as_models(tmp_path, frames, errors,
                                                                   files, capsys):
    both = write(tmp_path / "both.xyz", frames,
                 {"MACE_energy": errors["A"], "nequip_energy": errors["B"]})
    comparison = compared([both], predicted=["MACE_energy", "nequip_energy"])
    assert comparison.labels == ["MACE_energy", "nequip_energy"]
    assert lead_rows(comparison) == lead_rows(compared([files["A"], files["B"]]))
    out = tmp_path / "cmp"
    assert main(["compare", "--predictions", str(both), "--predicted", "MACE_energy",
                 "nequip_energy", "--labels", "MACE", "NequIP", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "MACE wins" in stdout and "NequIP wins" in stdout
    assert "(MACE_energy)" in (out / "comparison.md").read_text()


def test_replicate_files_of_a_model_give_two_level_intervals(tmp_path, frames, errors, capsys):
    """Three files per model (one per training seed) whose seeds disagree: intervals over
    seeds and structures, at least as wide as one file's."""
    paths, labels = [], []
    for model, (scale, large) in {"MACE": (0.05, 0.0), "NequIP": (0.04, 0.08)}.items():
        for seed, factor in enumerate((0.6, 1.0, 1.6)):
            e = model_errors(frames, scale * factor, large * factor, 10 * seed + len(paths))
            paths.append(write(tmp_path / f"{model}-seed{seed}.xyz", frames,
                               {"MACE_energy": e}))
            labels.append(model)
    grouped = compared(paths, labels=labels)
    single = compared([paths[0], paths[3]], labels=["MACE", "NequIP"])
    assert [r.k for r in grouped.runs] == [3, 3] and grouped.runs[0].seeds == (0, 1, 2)
    assert [m.label for m in grouped.runs[0].replicates] == ["MACE/0", "MACE/1", "MACE/2"]
    for group, one in zip(grouped.runs, single.runs):
        g, s = group.report.overall.summary, one.report.overall.summary
        assert g.mae_ci_high - g.mae_ci_low >= s.mae_ci_high - s.mae_ci_low
    lead, lead_single = grouped.wins[0], single.wins[0]
    assert lead.seeds == 3
    assert lead.lead_high - lead.lead_low >= lead_single.lead_high - lead_single.lead_low
    text = comparison_text(grouped)
    assert ("intervals cover the replicates (one file per training seed: MACE 3, NequIP 3) "
            "and the structures") in text
    assert main(["compare", "--predictions", *map(str, paths), "--labels", *labels,
                 "-o", str(tmp_path / "cmp")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "cmp" / "comparison.csv", newline="")))
    assert [(r["label"], r["seeds"]) for r in rows] == [("MACE", "3"), ("NequIP", "3")]


def test_compare_predictions_command_writes_the_comparison(tmp_path, frames, files, capsys):
    train = tmp_path / "train.xyz"
    ase.io.write(train, frames, format="extxyz")
    out = tmp_path / "cmp"
    code = main(["compare", "--predictions", str(files["A"]), str(files["B"]), "--labels",
                 "MACE", "NequIP", "--train", str(train), "-o", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == FILES
    assert f"2 models of energy [eV] on the {N} structures" in stdout
    assert f"wrote {len(FILES)} files to {out}" in stdout
    rows = list(csv.DictReader(open(out / "comparison.csv", newline="")))
    assert [r["label"] for r in rows] == ["MACE", "NequIP"]
    assert [r["n_train"] for r in rows] == [str(N), str(N)] and rows[0]["size_rho"] != ""
    assert [r["run_dir"] for r in rows] == [str(files["A"]), str(files["B"])]


@pytest.mark.parametrize("argv, message", [
    (["{a}", "{b}", "--predictions", "{a}", "{b}"], "give RUNs or --predictions FILE ..., not "
                                                    "both"),
    ([], "compare needs two or more RUN directories, or --predictions FILE"),
    (["--predictions", "{a}", "{b}", "--split", "val"], "--split applies to RUNs, not to "
                                                        "--predictions"),
    (["--predictions", "{a}", "{b}", "--no-evaluate"], "--no-evaluate applies to RUNs"),
    (["--predictions", "{a}", "{b}", "--device", "cpu"], "--device applies to RUNs"),
    (["{a}", "{b}", "--predicted", "X"], "--predicted applies to --predictions FILE"),
    (["--predictions", "{a}"], "a comparison needs at least 2 models, got 1 (A); give two or "
                               "more files to --predictions"),
    (["--predictions", "{a}", "{a}"], "are both named 'A'; give --labels"),
    (["--predictions", "{a}", "{b}", "--predicted", "X", "Y", "Z"],
     "3 predicted keys for 2 prediction files"),
])
def test_compare_refuses_runs_and_files_together_or_neither_in_one_line(
        tmp_path, files, argv, message, capsys):
    out = tmp_path / "cmp"
    argv = [a.format(a=files["A"], b=files["B"]) for a in argv]
    try:
        code = main(["compare", *argv, "-o", str(out)])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_python_compare_predictions_returns_what_compare_returns(tmp_path, files):
    result = molstrata.compare_predictions([files["A"], files["B"]], labels=["MACE", "NequIP"],
                                           out=tmp_path / "cmp", n_bootstrap=N_BOOTSTRAP)
    assert isinstance(result, molstrata.RunComparison)
    assert result.labels == ("MACE", "NequIP") and result.same_molecules
    assert result.validation == {} and {p.name for p in result.files} == FILES
    assert result.run("MACE")["n_evaluated"] == N
    unwritten = molstrata.compare_predictions([files["A"], files["B"]], ["MACE", "NequIP"],
                                              n_bootstrap=N_BOOTSTRAP)
    assert unwritten.files == () and unwritten.wins == result.wins
    assert "compare_predictions" in molstrata.__all__


def test_a_prediction_result_is_a_run_result_without_a_run(files):
    a, b = prediction_results([files["A"], files["B"]], n_bootstrap=N_BOOTSTRAP,
                              log=lambda _: None)
    assert a.config is None and a.predicted_elsewhere and a.curve is None
    assert a.n_train is None and a.train_seconds is None and a.evaluation_seconds > 0
    assert np.array_equal(a.predictions.ids, b.predictions.ids)
    assert dataclasses.replace(a, label="x").seeds == (0,)
