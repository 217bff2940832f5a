"""Writing a comparison: its files hold the comparison's numbers, its text names who wins
where, its plots draw every run, and a bad input writes nothing."""

from __future__ import annotations

import csv
import dataclasses
import json
import re

import matplotlib.image
import numpy as np
import pytest

from molstrata.errors import MolstrataError
from molstrata.evaluation.compare import compare_runs
from molstrata.evaluation.results import RunResult, group_runs
from molstrata.evaluation.stratified import Predictions, TrainingCounts, stratified_metrics
from molstrata.report import compare as compare_report
from molstrata.report.compare import comparison_text, default_out_dir, write_comparison
from molstrata.training.config import TrainConfig
from molstrata.training.convergence import still_learning

ELEMENTS = ("H", "C", "N", "O", "F")
FILES = {"comparison.csv", "comparison.md", "per_size.csv", "per_element.csv", "wins.csv",
         "error_by_size.png", "error_by_element.png", "learning_curves.png", "run_time.png"}


def write_curve(path, epochs: int, scale: float) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "train_loss_eV2", "val_loss_eV2", "val_mae_meV", "lr",
                         "wall_time_s", "band_low_eV2", "band_high_eV2"])
        for epoch in range(1, epochs + 1):
            loss = scale / epoch
            writer.writerow([epoch, loss, 1.2 * loss, 300 * loss**0.5, 1e-3, 10 * epoch,
                             0.5 * loss, 2 * loss])


def make_run(tmp_path, label, scale, *, seed=0, ids=None, train_seconds=5400.0,
             evaluation_seconds=120.0) -> RunResult:
    """A run of 500 molecules of sizes 8..20, the larger the worse predicted by `scale` eV."""
    rng = np.random.default_rng(seed)
    n = 500
    sizes = rng.integers(8, 21, n)
    presence = rng.random((n, 5)) < [1.0, 0.99, 0.6, 0.85, 0.05]
    true = -60.0 * sizes
    errors = rng.normal(0, 0.01, n) + scale * (sizes > 16) * rng.normal(0, 1, n)
    predictions = Predictions(np.arange(n) if ids is None else ids, sizes, presence, ELEMENTS,
                              true, true + errors, "eV", "U0")
    values, counts = np.unique(sizes, return_counts=True)
    training = TrainingCounts(4 * n, {int(s): int(4 * c) for s, c in zip(values, counts)},
                              {e: int(4 * c) for e, c in zip(ELEMENTS, presence.sum(axis=0))})
    curve = tmp_path / f"{label}-curve.csv"
    write_curve(curve, 5, scale + 0.1)
    return RunResult(
        label=label, run_dir=tmp_path / label, split="test", config=TrainConfig(),
        summary={"status": "finished", "train_seconds": train_seconds, "epochs_done": 5,
                 "best_epoch": 4, "n_molecules": {"train": 4 * n, "val": n, "test": n}},
        curve=curve, eval_dir=tmp_path / label / "eval-test",
        report=stratified_metrics(predictions, training, n_bootstrap=50),
        predictions=predictions, evaluation_seconds=evaluation_seconds)


@pytest.fixture
def runs(tmp_path):
    return [make_run(tmp_path, "default", 0.005, seed=1),
            make_run(tmp_path, "custom", 0.05, seed=1, train_seconds=6360.0,
                     evaluation_seconds=90.0)]


@pytest.fixture
def figures(monkeypatch):
    """File name of each plot the comparison saves -> its axes, recorded before it closes."""
    saved = {}
    for module in (compare_report, compare_report.evaluation_plots):

        def record(fig, path, real=module.save_figure):
            saved[path.name] = fig.get_axes()
            real(fig, path)

        monkeypatch.setattr(module, "save_figure", record)
    return saved


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_every_file_is_written_with_the_comparisons_numbers(tmp_path, runs):
    comparison = compare_runs(runs)
    out = tmp_path / "out"
    files = write_comparison(comparison, out)
    assert {p.name for p in files} == FILES == {p.name for p in out.iterdir()}
    for name, table in [("comparison.csv", comparison.overview),
                        ("per_size.csv", comparison.per_size),
                        ("per_element.csv", comparison.per_element),
                        ("wins.csv", comparison.wins_table())]:
        header, *rows = read_csv(out / name)
        assert header == table.header
        assert len(rows) == len(table.rows)
        k = header.index(next(h for h in header if h.startswith("mae_meV") or
                              h == "winner_mae_meV"))
        assert [float(r[k]) for r in rows] == [row[k] for row in table.rows]
    header, *rows = read_csv(out / "comparison.csv")
    assert "train_seconds" in header and "evaluation_seconds" in header
    assert [r[header.index("train_seconds")] for r in rows] == ["5400.0", "6360.0"]
    for name in FILES - {"comparison.csv", "comparison.md", "per_size.csv", "per_element.csv",
                         "wins.csv"}:
        image = matplotlib.image.imread(out / name)
        assert image.shape[0] > 300 and image[..., :3].std() > 0.05, name
    markdown = (out / "comparison.md").read_text()
    assert markdown.startswith("# Comparison of default, custom")
    assert "| run | trained on | evaluated | MAE meV |" in markdown
    assert "custom wins" in markdown


def test_text_gives_the_global_table_and_who_wins_which_strata(runs):
    comparison = compare_runs(runs)
    text = comparison_text(comparison)
    assert "2 runs of U0 [eV] on the test split: 500 molecules, the same in every run" in text
    assert "NOT like-for-like" not in text
    line = next(r for r in text.splitlines() if r.startswith("default "))
    mae = 1000 * runs[0].report.overall.summary.mae
    assert f"{mae:.4g}" in line
    won = comparison.strata_won()
    significant = comparison.strata_won(significant=True)
    n_strata = sum(1 for w in comparison.wins if w.kind != "all")
    for label in ("default", "custom"):
        wins_line = next(r for r in text.splitlines() if r.startswith(f"{label} wins "))
        assert wins_line.startswith(f"{label} wins {won[label]} of {n_strata} strata "
                                    f"({significant[label]} significantly): ")
        for win in comparison.wins:
            if win.kind != "all" and win.winner == label and not win.tie:
                assert win.label + ("*" if win.significant else "") in wins_line
    # the worse-predicted large molecules: default wins them, significantly
    assert won["default"] > 0 and significant["default"] >= 4
    assert "1 h 30 m" in text and "1 h 46 m" in text and "2 m 00 s" in text
    # which noise the leads cover, and what is known of convergence
    assert "intervals cover the test molecules only: one training seed per run" in text
    learning = [r.label for r in runs if still_learning([r.curve])]
    line = next(r for r in text.splitlines() if "still learning" in r or "flattened" in r)
    assert [label for label in ("default", "custom") if f"{label} (" in line] == learning


def test_runs_on_other_molecules_are_called_out_loudly(tmp_path, runs):
    other = make_run(tmp_path, "other", 0.05, seed=9, ids=np.arange(500) + 10_000)
    comparison = compare_runs([runs[0], other])
    text = comparison_text(comparison)
    assert text.count("NOT like-for-like") == 2
    assert "different molecules: default 500, other 500" in text
    assert "unpaired bootstrap" in text.replace("UNPAIRED", "unpaired")
    write_comparison(comparison, tmp_path / "out")
    assert "**WARNING" in (tmp_path / "out" / "comparison.md").read_text()


def test_plots_draw_every_run(tmp_path, runs, figures):
    write_comparison(compare_runs(runs), tmp_path / "out")
    loss_axis, _ = figures["learning_curves.png"]
    assert len(loss_axis.collections) == 2  # one band per run
    _, labels = loss_axis.get_legend_handles_labels()
    assert "train loss (default)" in labels and "train loss (custom)" in labels
    (time_axis,) = figures["run_time.png"]
    heights = [bar.get_height() for bar in time_axis.patches]
    assert heights == pytest.approx([90, 106, 2, 1.5])  # minutes, under two hours
    assert time_axis.get_ylabel() == "time (min)"
    _, labels = figures["error_by_size.png"][0].get_legend_handles_labels()
    assert "MAE per size (default)" in labels and "MAE per size (custom)" in labels


def test_a_bad_input_writes_nothing(tmp_path, runs):
    broken = tmp_path / "broken.csv"
    broken.write_text("epoch,train_loss_eV2\n1,abc\n")
    comparison = compare_runs([runs[0], dataclasses.replace(runs[1], curve=broken)])
    with pytest.raises(MolstrataError, match="not a number"):
        write_comparison(comparison, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(MolstrataError, match="is a file"):
        write_comparison(compare_runs(runs), a_file)


def test_default_folder_names_are_safe():
    path = default_out_dir(["seed default", "a/b"])
    assert path.parent.as_posix() == "results/compare"
    assert path.name.startswith("seed_default-vs-a_b-")


# ---- validation sets, precision, axes ------------------------------------------------------


def directed(run: RunResult, min_size: int, n_val: int) -> RunResult:
    """The run as if trained (and so validated) on molecules of `min_size` atoms or more."""
    config = TrainConfig()
    config.subset.min_size = min_size
    counts = {**run.summary["n_molecules"], "val": n_val}
    return dataclasses.replace(run, config=config,
                               summary={**run.summary, "n_molecules": counts})


def test_learning_curves_name_each_runs_validation_set_when_they_differ(runs, tmp_path,
                                                                        figures):
    comparison = compare_runs([runs[0], directed(runs[1], 18, 1204)])
    write_comparison(comparison, tmp_path / "out")
    loss_axis, mae_axis = figures["learning_curves.png"]
    _, labels = mae_axis.get_legend_handles_labels()
    assert labels == ["validation MAE (default; val: all sizes, 500 molecules)",
                      "validation MAE (custom; val: sizes ≥ 18, 1,204 molecules)"]
    assert "validated on DIFFERENT molecules" in mae_axis.figure.get_suptitle()
    note = ("Note: the runs were validated on different molecules (default: val: all sizes, "
            "500 molecules; custom: val: sizes ≥ 18, 1,204 molecules)")
    assert note in comparison_text(comparison)
    assert note in (tmp_path / "out" / "comparison.md").read_text()


def test_runs_validated_alike_say_so_once(runs, tmp_path, figures):
    comparison = compare_runs(runs)
    write_comparison(comparison, tmp_path / "out")
    _, mae_axis = figures["learning_curves.png"]
    _, labels = mae_axis.get_legend_handles_labels()
    assert labels == ["validation MAE (default)", "validation MAE (custom)"]
    assert mae_axis.figure.get_suptitle() == \
        "Learning curves (validated on the same molecules: all sizes, 500 molecules)"
    assert "validated on different molecules" not in comparison_text(comparison)


def test_validation_sets_are_told_apart_by_their_molecules(runs, tmp_path):
    for run, ids in zip(runs, ([3, 1, 2], [1, 2, 4])):
        run.run_dir.mkdir()
        (run.run_dir / "split.json").write_text(json.dumps(
            {"fingerprint": "abc", "parts": {"train": [], "val": ids, "test": []}}))
    sets = compare_report.validation_sets(compare_runs(runs))
    assert [v.text for v in sets.values()] == ["val: all sizes, 3 molecules"] * 2
    assert sets["default"].key != sets["custom"].key
    labels, title = compare_report.learning_curve_labels(sets)
    assert labels["custom"] == "custom; val: all sizes, 3 molecules"
    assert "DIFFERENT" in title


def test_a_group_and_a_run_of_one_split_were_validated_alike(runs, tmp_path):
    """A group of replicates (whose folder holds no split.json) beside a run of the same split
    was said to be evaluated on the same molecules and validated on different ones."""
    split = json.dumps({"fingerprint": "abc", "parts": {"train": [], "val": [4, 5, 6],
                                                        "test": []}})
    members = []
    for seed in (1, 2):
        config = TrainConfig()
        config.runtime.seed = seed
        members.append(dataclasses.replace(make_run(tmp_path, "m", 0.005 * seed, seed=1),
                                           config=config,
                                           run_dir=tmp_path / "group" / f"seed-{seed}"))
    single = dataclasses.replace(runs[1], label="single", run_dir=tmp_path / "single")
    for run in (*members, single):
        run.run_dir.mkdir(parents=True)
        (run.run_dir / "split.json").write_text(split)
    comparison = compare_runs([group_runs(members, "group"), single], n_bootstrap=50)
    text = comparison_text(comparison)
    assert "500 molecules, the same in every run (paired tests)" in text
    assert "validated on different molecules" not in text
    sets = compare_report.validation_sets(comparison)
    assert sets["group"].key == sets["single"].key
    assert sets["group"].text == "val: all sizes, 3 molecules"


def table_columns(text: str, title: str) -> dict[str, list[str]]:
    """The cells of each column of the text table under `title`, cut where its rule of dashes
    is cut."""
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith(title)))
    header, rule = lines[start + 1], lines[start + 2]
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", rule)]
    body = []
    for line in lines[start + 3:]:
        if not line.strip():
            break
        body.append(line)
    return {header[a:b].strip(): [row[a:b].strip() for row in body] for a, b in spans}


def decimals(cell: str) -> set[int]:
    """The number of decimals of each number in a cell ('8.13 - 9.20' -> {2})."""
    return {len(frac) for frac in re.findall(r"\d\.(\d+)", cell)}


def test_each_column_of_the_text_has_one_precision(runs):
    text = comparison_text(compare_runs(runs))
    errors = table_columns(text, "Global errors")
    maes = [1000 * r.report.overall.summary.mae for r in runs]
    assert max(maes) >= 10 > min(maes)  # magnitudes that "%.4g" writes with 3 and 2 decimals
    for column in ("MAE meV", "95% CI", "RMSE meV", "macro sizes", "worst size"):
        cells = errors[column]
        assert len(set().union(*(decimals(c) for c in cells))) == 1, (column, cells)
    assert [float(c) for c in errors["MAE meV"]] == pytest.approx(maes, abs=0.01)
    strata = table_columns(text, "MAE (meV) per stratum")
    for column in ("default", "custom", "lead meV"):
        assert len(set().union(*(decimals(c) for c in strata[column]))) == 1, column


def test_log_axes_label_major_and_minor_ticks_alike(runs, tmp_path, figures):
    write_comparison(compare_runs(runs), tmp_path / "out")
    for name in ("learning_curves.png", "error_by_size.png"):
        axis = figures[name][0]
        assert axis.get_yscale() == "log"
        labels = [t.get_text() for t in axis.yaxis.get_ticklabels(which="both")]
        shown = [label for label in labels if label]
        assert len(shown) >= 2, (name, labels)
        for label in shown:
            assert re.fullmatch(r"\d+(\.\d+)?", label), (name, label)  # 0.06, 0.1, 20: no 6e-02
