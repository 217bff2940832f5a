"""The Python API end to end on a slice of the real QM9: train -> Run, evaluate -> Metrics whose
numbers are those of the files written, a model file predicting what evaluate predicted,
comparisons, studies, and one-line errors for options that do not exist."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import ase.io
import numpy as np
import pytest

import molstrata
from molstrata.cli import main
from molstrata.data.ase_io import to_atoms, write_extxyz
from molstrata.errors import MolstrataError
from molstrata.evaluation.metrics import MIN_INTERVAL_COUNT
from molstrata.tables import read_csv_rows

TINY = {"max_molecules": 300, "data__excludes": ["F"], "split_seed": 1, "n_atom_basis": 16,
        "n_interactions": 1, "n_rbf": 8, "epochs": 2, "batch_size": 32, "lr": 3e-3,
        "threads": 1}
"""A run of seconds: 240 training molecules (no fluorine, so that a run trained on large
molecules alone has seen every element of the shared test split), a tiny SchNet, 2 epochs."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory, qm9_cache_dir):
    """Two runs on the same molecules: all sizes (the `accurate` preset, whose 30-minute
    budget `epochs` replaces) and one trained and validated on molecules of 15 atoms or more."""
    folder = tmp_path_factory.mktemp("api-runs")
    options = {**TINY, "cache_dir": str(qm9_cache_dir)}
    base = molstrata.train("accurate", out=folder / "base", progress=False, **options)
    large = molstrata.train("quick", out=folder / "large", progress=False, **options,
                            subset__min_size=15)
    return base, large


@pytest.fixture(scope="module")
def metrics(runs):
    return runs[0].evaluate(n_bootstrap=200)


def text_column(text: str, title: str, column: str) -> list[str]:
    """The cells of one column of the text table under `title` (cut at its rule of dashes)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    header, rule = lines[start + 1], lines[start + 2]
    a, b = next((m.start(), m.end()) for m in re.finditer(r"-+", rule)
                if header[m.start():m.end()].strip() == column)
    rows = []
    for line in lines[start + 3:]:
        if not line.strip():
            break
        rows.append(line[a:b].strip())
    return rows


def test_train_returns_the_run_with_its_config_summary_and_curve(runs):
    base, large = runs
    assert isinstance(base, molstrata.Run)
    config = base.config
    assert (config.model.n_atom_basis, config.model.n_interactions) == (16, 1)
    assert config.training.time_budget is None and config.training.epochs == 2  # not 30 min
    assert config.training.ema == 0.995  # the rest is the preset's
    assert config.data.excludes == ["F"] and config.subset.excludes == []
    assert large.config.subset.min_size == 15 and large.config.data.min_size is None
    summary = base.summary
    assert summary["status"] == "finished" and summary["epochs_done"] == 2
    curve = base.learning_curve
    assert curve.column("epoch") == [1, 2]
    assert summary["best_val_mae_meV"] == pytest.approx(
        min(curve.column("val_mae_meV")), rel=1e-9)
    reopened = molstrata.Run.open(base.path)
    assert reopened == base and reopened.summary == summary
    frame = curve.to_dataframe()
    assert list(frame.columns)[:4] == ["epoch", "train_loss_eV2", "val_loss_eV2", "val_mae_meV"]


def test_evaluate_returns_the_numbers_it_writes_with_their_units(runs, metrics):
    assert metrics.out_dir == runs[0].path / "eval-test"
    document = json.loads((metrics.out_dir / "metrics.json").read_text())
    assert metrics.mae_meV == document["global"]["mae_meV"]
    assert metrics.rmse_meV == document["global"]["rmse_meV"]
    assert metrics.mse_eV2 == document["global"]["mse_eV2"]
    assert metrics.mae_meV == pytest.approx(1000 * metrics.report.overall.summary.mae)
    assert metrics.macro_size_mae_meV == document["macro"]["size"]["mae_meV"]
    assert metrics.worst_size_n_atoms == document["worst"]["size"]["size"]
    assert (metrics.target, metrics.unit, metrics.error_unit) == ("U0", "eV", "meV")
    written = read_csv_rows(metrics.out_dir / "metrics_by_size.csv", "")
    assert [r["n_atoms"] for r in written] == [str(r["n_atoms"]) for r in metrics.per_size]
    assert [float(r["mae_meV"]) for r in written] == metrics.per_size.column("mae_meV")
    predictions = read_csv_rows(metrics.out_dir / "predictions.csv", "")
    assert [float(r["predicted_eV"]) for r in predictions] == \
        metrics.predictions.column("predicted_eV")
    assert np.mean(np.abs(metrics.predictions.column("error_meV"))) == pytest.approx(
        metrics.mae_meV)
    assert {h["strata"] for h in metrics.hypotheses} == {"size", "element"}
    assert "mae_meV=" in repr(metrics) and "Per size" in metrics.text()
    counts = [int(c) for c in text_column(metrics.text(), "Per size", "count")]
    for column in ("MAE meV", "95% CI", "RMSE meV", "MSE eV2"):  # one precision per column
        cells = text_column(metrics.text(), "Per size", column)
        assert len(cells) == len(metrics.per_size)
        if column == "95% CI":  # none for a size of under MIN_INTERVAL_COUNT molecules
            assert [c == "-" for c in cells] == [n < MIN_INTERVAL_COUNT for n in counts]
            cells = [c for c in cells if c != "-"]
        numbers = [d for c in cells for d in re.findall(r"\d+(?:\.(\d+))?(?:e[-+]\d+)?", c)]
        assert len(numbers) >= len(cells) and len({len(d) for d in numbers}) <= 1, cells
    with pytest.raises(AttributeError, match="no attribute 'mae_eV'; its numbers are"):
        metrics.mae_eV  # noqa: B018


def test_evaluate_draws_the_evaluation_figures_when_asked(runs, metrics, tmp_path):
    assert not list(metrics.out_dir.glob("*.png"))
    drawn = runs[0].evaluate("val", out=tmp_path / "val", n_bootstrap=20, plots=True)
    figures = {p.name for p in drawn.files if p.suffix == ".png"}
    assert figures == {"error_by_size.png", "error_by_element.png", "predicted_vs_true.png",
                       "learning_curve.png"}
    assert all((tmp_path / "val" / name).is_file() for name in figures)
    assert drawn.evaluated == "val" and drawn.numbers["n_molecules"] == 30


def test_the_model_file_predicts_what_evaluate_predicted(runs, metrics, tmp_path):
    path = runs[0].export(tmp_path / "model.pt")
    model = molstrata.load_model(path, device="cpu")
    assert (model.target, model.unit) == ("U0", "eV")
    atoms = [to_atoms(metrics.molecules, i) for i in range(len(metrics.molecules))]
    prediction = model.predict(atoms)
    evaluated = np.array(metrics.predictions.column("predicted_eV"))
    assert prediction.unit == "eV" and prediction.name == "predicted_U0_eV"
    assert prediction.predicted_U0_eV is prediction.values
    np.testing.assert_allclose(prediction.values, evaluated, rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(prediction), evaluated, rtol=0, atol=1e-5)
    one = model.predict(atoms[3])  # one Atoms
    assert one.values == pytest.approx(evaluated[3:4], abs=1e-5)
    from_run = molstrata.load_model(runs[0], device="cpu").predict(atoms[:5])
    np.testing.assert_allclose(from_run.values, evaluated[:5], rtol=0, atol=1e-5)
    assert len(prediction.records()) == len(atoms)


def test_predict_flags_a_periodic_structure_and_carries_on_as_the_command_does(
        runs, metrics, tmp_path, capsys):
    from ase.build import bulk

    model = molstrata.load_model(runs[0].export(tmp_path / "model.pt"), device="cpu")
    atoms = [to_atoms(metrics.molecules, i) for i in range(4)]
    cell = bulk("Cu", "fcc", a=3.6)
    prediction = model.predict(atoms[:2] + [cell] + atoms[2:])
    evaluated = np.array(metrics.predictions.column("predicted_eV"))[:4]
    np.testing.assert_allclose(np.delete(prediction.values, 2), evaluated, rtol=0, atol=1e-5)
    assert np.isnan(prediction.values[2]) and prediction.flags[2] == ("periodic",)
    assert prediction.records()[2]["note"] == ("not predicted: periodic structure (the models "
                                               "know molecules only)")
    assert prediction.records()[0]["note"] == ""
    assert "not predicted (periodic: the models know molecules only): structure 2" in \
        prediction.text().splitlines()
    assert "1 periodic (not predicted)" in prediction.text()
    # the same words as `molstrata predict` on a file of these structures
    path = tmp_path / "mixed.extxyz"
    ase.io.write(path, atoms[:2] + [cell] + atoms[2:], format="extxyz")
    assert main(["predict", str(tmp_path / "model.pt"), str(path), "-o",
                 str(tmp_path / "p"), "-q", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert f"not predicted (periodic: the models know molecules only): {path} structure 2" in \
        printed
    only_cells = model.predict([cell, cell])
    assert np.isnan(only_cells.values).all() and "structures 0, 1" in only_cells.text()


def test_evaluate_takes_the_commands_names_and_refuses_unknown_keywords(runs, metrics,
                                                                       tmp_path):
    path = tmp_path / "test.extxyz"
    write_extxyz(metrics.molecules, path)
    named = runs[0].evaluate(dataset=path, property="U0", unit="eV", n_bootstrap=20,
                             out=tmp_path / "own", min_stratum=0)
    assert named.numbers["n_molecules"] == len(metrics.molecules)
    np.testing.assert_allclose(named.predictions.column("predicted_eV"),
                               metrics.predictions.column("predicted_eV"), rtol=0, atol=1e-5)
    cases = [({"propertyname": "U0"}, "Run.evaluate: unknown keyword 'propertyname'; did you "
                                      "mean property? it takes split, dataset, property, unit"),
             ({"bootstrap": 20}, "unknown keyword 'bootstrap'; did you mean n_bootstrap?"),
             ({"property": "U0", "property_name": "U0"}, "give property or property_name")]
    for options, message in cases:
        with pytest.raises(MolstrataError, match=re.escape(message)) as error:
            runs[0].evaluate(dataset=path, out=tmp_path / "never", **options)
        assert "\n" not in str(error.value)
    assert not (tmp_path / "never").exists()


def test_compare_sets_two_runs_side_by_side(runs, metrics, tmp_path):
    base, large = runs
    comparison = molstrata.compare({"base": base, "large": large}, out=tmp_path / "cmp",
                                   n_bootstrap=200)
    assert comparison.labels == ("base", "large") and comparison.same_molecules
    assert comparison.run("base")["mae_meV"] == pytest.approx(metrics.mae_meV, rel=1e-12)
    assert comparison.run("large")["n_train"] < comparison.run("base")["n_train"]
    assert "mae_meV_base" in comparison.per_size[0]
    assert {w["kind"] for w in comparison.wins} == {"all", "size", "element"}
    assert comparison.validation["base"] == "val: all sizes without F, 30 molecules"
    assert re.fullmatch(r"val: sizes ≥ 15 without F, \d+ molecules",
                        comparison.validation["large"])
    assert "validated on different molecules" in comparison.text()
    assert (tmp_path / "cmp" / "learning_curves.png").is_file()
    assert (large.path / "eval-test" / "error_by_size.png").is_file()  # evaluated, drawn now
    assert [r["label"] for r in molstrata.compare([base, large]).runs] == ["base", "large"]


def test_unknown_or_ambiguous_options_are_refused_in_one_line_before_any_work(tmp_path):
    out = tmp_path / "never"
    cases = [({"lrr": 1e-3}, "unknown option 'lrr'; did you mean lr?"),
             ({"min_size": 18}, "option 'min_size' is in data and subset; name its section: "
                                "data__min_size=... or subset__min_size=..."),
             ({"training__nope": 1}, "unknown option training.nope"),
             ({"training.lr": "fast"}, "option training.lr must be float"),
             ({"epochs": 0}, "training.epochs must be >= 1")]
    for options, message in cases:
        with pytest.raises(MolstrataError, match=message) as error:
            molstrata.train("quick", out=out, progress=False, **options)
        assert "\n" not in str(error.value)
    with pytest.raises(MolstrataError, match="'quik' is neither a preset"):
        molstrata.train("quik", out=out)
    assert not out.exists()


def test_study_runs_a_plan_with_options_for_every_experiment(tmp_path, qm9_cache_dir):
    plan = tmp_path / "plan.toml"
    plan.write_text("""
[study]
title = "Two runs"
preset = "quick"
[defaults.data]
max_molecules = 300
excludes = ["F"]
[defaults.model]
n_atom_basis = 8
n_interactions = 1
n_rbf = 8
[defaults.training]
epochs = 3
batch_size = 32
[experiments.base]
[experiments.big.subset]
min_size = 15
[[analyses]]
kind = "directed"
reference = "base"
runs = ["big"]
""")
    study = molstrata.run_study(plan, out=tmp_path / "study", progress=False,
                                cache_dir=str(qm9_cache_dir), threads=1, epochs=1)
    assert set(study.runs) == {"base", "big"}
    assert all(len(runs) == 1 and runs[0].config.training.epochs == 1
               for runs in study.runs.values())
    assert study.findings and {f["analysis"] for f in study.findings} == {"directed"}
    assert all(f["verdict"] in ("holds", "does not hold", "cannot tell")
               for f in study.findings)
    assert all("training noise not measured" in f["caveats"] for f in study.findings)
    assert study.report is not None and study.report.is_file()
    assert "report:" in study.text()


def test_learning_curve_from_python(tmp_path, qm9_cache_dir):
    study = molstrata.learning_curve(
        out=tmp_path / "lc", sizes=[60, 120, 240], max_molecules=400, epochs=1, min_steps=0,
        replicates=1, progress=False, cache_dir=str(qm9_cache_dir), threads=1,
        n_atom_basis=8, n_interactions=1, n_rbf=8, data__excludes=["F"])
    assert set(study.runs) == {"n-60", "n-120", "n-240"}
    assert [run.summary["n_molecules"]["train"] for run in
            (study.runs[f"n-{n}"][0] for n in (60, 120, 240))] == [60, 120, 240]
    claims = [f["claim"] for f in study.findings]
    assert any(c.startswith("More training molecules lower the global error") for c in claims)


def test_import_molstrata_imports_neither_torch_nor_matplotlib():
    code = ("import sys, molstrata; molstrata.Run; molstrata.Records; "
            "heavy = [m for m in ('torch', 'matplotlib') if m in sys.modules]; "
            "print(heavy, sorted(set(molstrata.__all__) - set(dir(molstrata))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["[]", "[]"]


def test_the_study_package_and_the_function_that_runs_a_study_have_two_names():
    """`molstrata.study` was both the package and, through a swapped module class, the
    function; the package is a plain module now and the function is `run_study`."""
    code = ("import types, molstrata, molstrata.study as package; "
            "print(type(package) is types.ModuleType, molstrata.study is package, "
            "callable(package), molstrata.run_study.__module__, "
            "package.run_study.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "True", "False", "molstrata.api", "molstrata.study.runner"]
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        molstrata.nope  # noqa: B018


def test_to_dataframe_without_pandas_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MolstrataError, match="needs pandas, which molstrata does not install"):
        molstrata.Records([{"a": 1}]).to_dataframe()
