"""Comparing runs: two tiny runs trained on a QM9 slice, and constructed runs whose winners
and leads are known; then `molstrata compare` end to end."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import shutil

import numpy as np
import pytest

from molstrata.cli import main
from molstrata.errors import MolstrataError
from molstrata.evaluation.compare import compare_runs
from molstrata.evaluation.results import RunResult, load_run_result, load_runs
from molstrata.evaluation.stratified import Predictions, TrainingCounts, stratified_metrics
from molstrata.evaluation.wins import lead_interval
from molstrata.training.config import TrainConfig
from molstrata.training.run import train

ELEMENTS = ("H", "C", "N", "O", "F")


def tiny_config(cache_dir, epochs: int, seed: int) -> TrainConfig:
    return TrainConfig.from_dict({
        "data": {"cache_dir": str(cache_dir), "max_molecules": 300, "split_seed": 1},
        "model": {"n_atom_basis": 16, "n_interactions": 2, "n_rbf": 10},
        "training": {"epochs": epochs, "batch_size": 16, "lr": 3e-3},
        "runtime": {"threads": 1, "seed": seed},
    }).validate()


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory, qm9_cache_dir):
    """Two tiny runs on the same split (so the same test molecules), not yet evaluated."""
    root = tmp_path_factory.mktemp("runs")
    for name, epochs, seed in (("one", 1, 1), ("two", 2, 2)):
        train(tiny_config(qm9_cache_dir, epochs, seed), root / name, progress=False,
              log=lambda *_: None)
    return root / "one", root / "two"


@pytest.fixture(scope="module")
def results(run_dirs):
    """Both runs loaded; loading evaluates them on their test split."""
    return [load_run_result(d, device="cpu") for d in run_dirs]


# ---- constructed runs ----------------------------------------------------------------------


def make_run(label, errors, *, ids=None, sizes=None, presence=None, unit="eV", seed=0,
             target="U0") -> RunResult:
    """A run evaluated on molecules of sizes 8..20 (about 2 % with F) with the given errors."""
    rng = np.random.default_rng(seed)
    n = len(errors)
    sizes = rng.integers(8, 21, n) if sizes is None else sizes
    presence = rng.random((n, 5)) < [1.0, 0.99, 0.6, 0.85, 0.02] if presence is None \
        else presence
    true = -60.0 * sizes
    predictions = Predictions(np.arange(n) if ids is None else ids, sizes, presence, ELEMENTS,
                              true, true + errors, unit, target)
    counts_sizes, counts = np.unique(sizes, return_counts=True)
    training = TrainingCounts(
        4 * n, {int(s): int(4 * c) for s, c in zip(counts_sizes, counts)},
        {e: int(4 * c) for e, c in zip(ELEMENTS, presence.sum(axis=0))})
    report = stratified_metrics(predictions, training, n_bootstrap=50)
    return RunResult(label=label, run_dir=label, split="test", config=TrainConfig(),
                     summary={"status": "finished", "train_seconds": 100.0, "epochs_done": 3,
                              "best_epoch": 3},
                     curve=None, eval_dir=label, report=report, predictions=predictions,
                     evaluation_seconds=5.0)


def same_molecules_pair(a_errors, b_errors, **kw):
    a = make_run("A", a_errors, seed=3, **kw)
    b = make_run("B", b_errors, sizes=a.predictions.sizes, presence=a.predictions.presence, **kw)
    return a, b


# ---- the tables are the runs' own numbers --------------------------------------------------


def test_tables_hold_each_runs_metrics_json_numbers(results, run_dirs):
    comparison = compare_runs(results)
    assert comparison.same_molecules and comparison.labels == ["one", "two"]
    rows = comparison.overview.records()
    for row, run_dir in zip(rows, run_dirs):
        metrics = json.loads((run_dir / "eval-test" / "metrics.json").read_text())
        summary = json.loads((run_dir / "run.json").read_text())
        timing = json.loads((run_dir / "eval-test" / "evaluation.json").read_text())
        g = metrics["global"]
        assert row["n_evaluated"] == metrics["n_molecules"] == 30
        assert row["n_train"] == summary["n_molecules"]["train"]
        for column, value in [
            ("mae_meV", g["mae_meV"]), ("mae_ci95_low_meV", g["mae_ci95_meV"][0]),
            ("mae_ci95_high_meV", g["mae_ci95_meV"][1]), ("rmse_meV", g["rmse_meV"]),
            ("mse_eV2", g["mse_eV2"]),
            ("macro_size_mae_meV", metrics["macro"]["size"]["mae_meV"]),
            ("macro_element_mae_meV", metrics["macro"]["element"]["mae_meV"]),
            ("worst_size_mae_meV", metrics["worst"]["size"]["mae_meV"]),
            ("size_rho", metrics["correlation"]["size"]["rho"]),
            ("element_p_value", metrics["correlation"]["element"]["p_value"]),
            ("train_seconds", summary["train_seconds"]),
            ("evaluation_seconds", timing["evaluation_seconds"]),
        ]:
            assert row[column] == pytest.approx(value, rel=1e-12), column
        assert row["worst_size_n_atoms"] == metrics["worst"]["size"]["size"]
        assert row["worst_element"] == metrics["worst"]["element"]["element"]
        assert (row["epochs_done"], row["best_epoch"]) == (summary["epochs_done"],
                                                           summary["best_epoch"])
        per_size = {d["size"]: d["mae_meV"] for d in metrics["per_size"]}
        assert comparison.per_size.column("n_atoms") == list(per_size)
        assert comparison.per_size.column(f"mae_meV_{row['label']}") == pytest.approx(
            list(per_size.values()), rel=1e-12)
        per_element = {d["element"]: d["mae_meV"] for d in metrics["per_element"]}
        assert comparison.per_element.column(f"mae_meV_{row['label']}") == pytest.approx(
            list(per_element.values()), rel=1e-12)
    assert rows[0]["epochs_done"] == 1 and rows[1]["epochs_done"] == 2


def test_each_strata_winner_has_the_lower_mae_by_hand(results, run_dirs):
    comparison = compare_runs(results)
    by_hand = {}  # (kind, key) -> {label: MAE meV}
    for label, run_dir in zip(["one", "two"], run_dirs):
        with open(run_dir / "eval-test" / "predictions.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        groups = {("all", None): rows}
        for row in rows:
            groups.setdefault(("size", int(row["n_atoms"])), []).append(row)
            for element in re.findall(r"[A-Z][a-z]?", row["elements"]):
                groups.setdefault(("element", element), []).append(row)
        for key, members in groups.items():
            mae = np.mean([abs(float(r["error_meV"])) for r in members])
            by_hand.setdefault(key, {})[label] = mae
            by_hand[key]["count"] = len(members)
    assert len(comparison.wins) == 1 + len(results[0].report.sizes) + len(
        results[0].report.elements)
    for win in comparison.wins:
        mae = by_hand[(win.kind, win.key)]
        assert win.count == mae.pop("count")
        assert 1000 * win.mae["one"] == pytest.approx(mae["one"], rel=1e-9)
        assert 1000 * win.mae["two"] == pytest.approx(mae["two"], rel=1e-9)
        assert win.winner == min(mae, key=mae.get)
        assert win.runner_up == max(mae, key=mae.get)
        assert 1000 * win.lead == pytest.approx(abs(mae["one"] - mae["two"]), abs=1e-9)
        assert win.paired
    won = comparison.strata_won()
    strata = [w for w in comparison.wins if w.kind != "all"]
    assert won["one"] + won["two"] == len(strata)
    assert comparison.overview.column("strata_won") == [won["one"], won["two"]]


def test_the_same_run_twice_ties_everywhere(results):
    twin = dataclasses.replace(results[0], label="twin")
    comparison = compare_runs([results[0], twin])
    assert comparison.same_molecules
    for win in comparison.wins:
        assert win.tie and not win.significant
        if win.tested:
            assert win.lead_low == win.lead_high == 0
    assert comparison.strata_won() == {"one": 0, "twin": 0}


def test_a_clear_lead_is_significant_and_a_shuffle_is_not():
    rng = np.random.default_rng(0)
    a_errors = rng.normal(0, 0.02, 600)
    a, _ = same_molecules_pair(a_errors, a_errors)
    sizes = a.predictions.sizes
    b_errors = a_errors.copy()
    big = sizes > 16
    b_errors[big] += np.sign(a_errors[big]) * 0.01  # 10 meV worse on every large molecule
    for size in np.unique(sizes[~big]):  # the same errors, on other molecules of that size
        rows = np.flatnonzero(sizes == size)
        b_errors[rows] = b_errors[rng.permutation(rows)]
    _, b = same_molecules_pair(a_errors, b_errors)
    comparison = compare_runs([a, b], seed=1)
    for win in (w for w in comparison.wins if w.kind == "size"):
        if win.key > 16:
            assert win.winner == "A" and win.significant
            assert win.lead == pytest.approx(0.01, rel=1e-6)
            assert win.lead_low == pytest.approx(0.01, rel=1e-6)  # the same lead everywhere
        else:
            assert win.lead == pytest.approx(0, abs=1e-12) and not win.significant
            assert win.lead_low < 0 < win.lead_high
    assert comparison.wins[0].winner == "A" and comparison.wins[0].significant


def test_strata_won_significantly_hold_a_family_wise_error_rate():
    """Two runs of the same expected error, 30 times: each stratum's lead alone is
    significant about 1 time in 20, so with some 18 strata a comparison often counts one; after
    Holm's adjustment over the strata, about 1 comparison in 20 does."""
    rng = np.random.default_rng(4)
    alone = family = 0
    for repeat in range(30):
        a_errors = rng.normal(0, 0.02, 400)
        b_errors = rng.normal(0, 0.02, 400)
        a, b = same_molecules_pair(a_errors, b_errors)
        wins = [w for w in compare_runs([a, b], seed=repeat, n_bootstrap=200).wins
                if w.kind != "all" and w.tested]
        assert all(w.p_adjusted >= w.p_value for w in wins)
        alone += any(w.lead_low > 0 for w in wins)
        family += any(w.significant for w in wins)
    assert family <= 4 < alone


def test_pairing_finds_a_small_shift_that_unpaired_misses():
    rng = np.random.default_rng(5)
    winner = np.abs(rng.normal(0, 0.05, 300))
    runner_up = winner + 0.002
    paired = lead_interval(winner, runner_up, paired=True, rng=np.random.default_rng(0))
    unpaired = lead_interval(winner, runner_up, paired=False, rng=np.random.default_rng(0))
    assert paired[0] == pytest.approx(0.002) and paired[1] == pytest.approx(0.002)
    assert unpaired[0] < 0 < unpaired[1]
    again = lead_interval(winner, runner_up, paired=False, rng=np.random.default_rng(0))
    assert again == unpaired  # seeded
    assert np.isnan(lead_interval(winner[:5], runner_up[:5], paired=True,
                                  rng=np.random.default_rng(0))).all()


def test_runs_on_different_molecules_are_flagged_and_tested_unpaired():
    rng = np.random.default_rng(1)
    a = make_run("A", rng.normal(0, 0.02, 400), seed=1)
    b = make_run("B", rng.normal(0, 0.02, 400), ids=np.arange(400) + 200, seed=2)
    comparison = compare_runs([a, b])
    assert not comparison.same_molecules
    assert all(not w.paired for w in comparison.wins)
    assert comparison.per_size.header[:4] == ["stratum", "n_atoms", "count_A", "count_B"]
    assert "unpaired" in comparison.wins_table().column("test")[0]
    # the same ids, but other true values: other molecules
    moved = dataclasses.replace(
        a, label="moved", predictions=dataclasses.replace(a.predictions,
                                                          true=a.predictions.true + 1.0))
    assert not compare_runs([a, moved]).same_molecules


def test_another_unit_keeps_its_unit_in_the_columns():
    rng = np.random.default_rng(2)
    a = make_run("A", rng.normal(0, 0.1, 200), unit="Debye", target="mu", seed=4)
    b = make_run("B", rng.normal(0, 0.2, 200), unit="Debye", target="mu", seed=4)
    comparison = compare_runs([a, b])
    assert "mae_Debye" in comparison.overview.header and "mse_Debye2" in comparison.overview.header
    assert "mae_Debye_A" in comparison.per_size.header
    assert comparison.overview.records()[0]["mae_Debye"] == a.report.overall.summary.mae
    assert "lead_Debye" in comparison.wins_table().header


# ---- loading -------------------------------------------------------------------------------


def test_a_missing_or_stale_evaluation_is_made_or_refused(run_dirs, results, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(run_dirs[0], run)
    again = load_run_result(run, device="cpu")
    assert not again.evaluated_now and again.label == "copy"
    assert again.report.overall.summary.mae == results[0].report.overall.summary.mae
    best = run / "checkpoints" / "best.pt"
    metrics = run / "eval-test" / "metrics.json"
    later = metrics.stat().st_mtime + 0.5
    os.utime(best, (later, later))  # a newer checkpoint than the evaluation
    with pytest.raises(MolstrataError, match=r"older than its best checkpoint; evaluate it "
                                             r"first \(Run\(") as stale:
        load_run_result(run, evaluate_missing=False)
    assert f"run `molstrata evaluate {run} --split test` first" in stale.value.cli
    assert load_run_result(run, device="cpu").evaluated_now
    shutil.rmtree(run / "eval-test")
    with pytest.raises(MolstrataError, match=r"is missing; evaluate it first"):
        load_run_result(run, evaluate_missing=False)
    assert not (run / "eval-test").exists()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("one run", "needs at least 2 runs, got 1"),
        ("missing", "does not exist"),
        ("not a run", "is not a molstrata run directory"),
        ("never trained", "has no checkpoints/best.pt: it was never trained"),
        ("duplicate labels", "two runs are labelled 'x'; labels must be unique"),
        ("same name", "two runs are labelled 'one'"),
        ("label count", "1 labels for 2 runs"),
    ],
)
def test_bad_inputs_are_refused_before_any_work(run_dirs, tmp_path, case, message):
    one, two = run_dirs
    (tmp_path / "empty").mkdir()
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    for name in ("config.toml", "split.json"):
        shutil.copy(one / name, untrained / name)
    fresh = tmp_path / "fresh"  # a trained run never evaluated: must stay so
    shutil.copytree(one, fresh, ignore=shutil.ignore_patterns("eval-*"))
    dirs, labels = {
        "one run": ([one], None),
        "missing": ([fresh, tmp_path / "nope"], None),
        "not a run": ([fresh, tmp_path / "empty"], None),
        "never trained": ([fresh, untrained], None),
        "duplicate labels": ([fresh, two], ["x", "x"]),
        "same name": ([one, one], None),
        "label count": ([fresh, two], ["x"]),
    }[case]
    with pytest.raises(MolstrataError, match=re.escape(message)):
        load_runs(dirs, labels)
    assert not (fresh / "eval-test").exists()


def test_compare_runs_refuses_bad_sets(results):
    with pytest.raises(MolstrataError, match="at least 2 runs"):
        compare_runs(results[:1])
    with pytest.raises(MolstrataError, match="labelled 'one'"):
        compare_runs([results[0], results[0]])
    gap = make_run("gap", np.full(30, 0.01), target="gap")
    with pytest.raises(MolstrataError, match="compare runs of the same target"):
        compare_runs([results[0], gap])


# ---- the command ---------------------------------------------------------------------------


def test_compare_command_writes_the_comparison(run_dirs, results, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", str(run_dirs[0]), str(run_dirs[1]), "--labels", "A", "B",
                 "--device", "cpu", "-q", "-o", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {
        "comparison.csv", "comparison.md", "per_size.csv", "per_element.csv", "wins.csv",
        "error_by_size.png", "error_by_element.png", "learning_curves.png", "run_time.png"}
    assert "A wins" in stdout and "B wins" in stdout and f"wrote 9 files to {out}" in stdout
    with open(out / "comparison.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["label"] for r in rows] == ["A", "B"]
    assert float(rows[1]["mae_meV"]) == pytest.approx(
        1000 * results[1].report.overall.summary.mae, rel=1e-12)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{one}"], "needs at least 2 runs"),
        (["{one}", "{tmp}/nope"], "nope does not exist"),
        (["{one}", "{one}"], "labels must be unique"),
        (["{one}", "{two}", "--labels", "A"], "1 labels for 2 runs"),
        (["{one}", "{two}", "--split", "training"], "invalid choice: 'training'"),
    ],
)
def test_compare_command_errors_are_one_line_and_write_nothing(
    run_dirs, tmp_path, capsys, argv, message
):
    out = tmp_path / "cmp"
    argv = [a.format(one=run_dirs[0], two=run_dirs[1], tmp=tmp_path) for a in argv]
    try:
        code = main(["compare", *argv, "-q", "-o", str(out)])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
