"""Plots of errors: valid PNG files, and what each figure holds (axes, units, series)."""

from __future__ import annotations

import csv
import subprocess
import sys
from types import SimpleNamespace

import matplotlib.image
import numpy as np
import pytest

from molstrata.errors import MolstrataError
from molstrata.evaluation.stratified import Predictions, TrainingCounts, stratified_metrics
from molstrata.report import evaluation_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ELEMENTS = ("H", "C", "N", "O", "F")
CURVE_COLUMNS = ["epoch", "train_loss_eV2", "val_loss_eV2", "val_mae_meV", "lr", "wall_time_s",
                 "band_low_eV2", "band_high_eV2"]


def make_predictions(n: int = 400, scale: float = 0.02, unit: str = "eV", seed: int = 0):
    """n molecules of sizes 8..20, the larger the worse predicted; about 2 % hold F."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(8, 21, n)
    presence = rng.random((n, 5)) < [1.0, 0.99, 0.6, 0.85, 0.02]
    presence[0, 4] = True
    true = -60.0 * sizes + rng.normal(0, 5, n)
    predicted = true + rng.normal(0, scale, n) * (1 + (sizes > 17) * 3)
    return Predictions(np.arange(n), sizes, presence, ELEMENTS, true, predicted, unit, "U0")


def make_report(p: Predictions):
    sizes, counts = np.unique(p.sizes, return_counts=True)
    train = TrainingCounts(
        4 * len(p),
        {int(s): int(4 * c) for s, c in zip(sizes, counts)},
        {e: int(4 * c) for e, c in zip(ELEMENTS, p.presence.sum(axis=0))},
    )
    return stratified_metrics(p, train, n_bootstrap=50)


@pytest.fixture
def report():
    return make_report(make_predictions())


@pytest.fixture
def figures(monkeypatch):
    """Each figure a plot saves, as {'axes': [...], 'suptitle': ...}, recorded before it closes."""
    saved = []
    real = evaluation_plots.save_figure

    def record(fig, path):
        saved.append({"axes": fig.get_axes(),
                      "suptitle": fig._suptitle.get_text() if fig._suptitle else None})
        real(fig, path)

    monkeypatch.setattr(evaluation_plots, "save_figure", record)
    return saved


def assert_png(path, min_bytes: int = 10_000, min_pixels: int = 300) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_bytes
    image = matplotlib.image.imread(path)
    assert image.shape[0] > min_pixels and image.shape[1] > min_pixels
    assert image[..., :3].std() > 0.05  # something is drawn, not a blank canvas


def write_curve(path, rows) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def curve_rows(epochs: int = 12, scale: float = 1.0, unit: str = "eV2", mae_unit: str = "meV"):
    rows = []
    for epoch in range(1, epochs + 1):
        loss = scale / epoch**1.5
        rows.append({"epoch": epoch, f"train_loss_{unit}": loss, f"val_loss_{unit}": 1.2 * loss,
                     f"val_mae_{mae_unit}": 300 * loss**0.5, "lr": 1e-3,
                     "wall_time_s": 10.0 * epoch, f"band_low_{unit}": 0.6 * loss,
                     f"band_high_{unit}": 1.8 * loss})
    return rows


# ---- strata ------------------------------------------------------------------------------


def test_error_by_size_draws_mae_on_a_log_axis_over_the_training_histogram(
    tmp_path, report, figures
):
    evaluation_plots.error_by_size(report, tmp_path / "size.png")
    assert_png(tmp_path / "size.png")
    mae_axis, histogram_axis = figures[0]["axes"]
    assert mae_axis.get_yscale() == "log"
    assert mae_axis.get_ylabel().startswith("MAE (meV)")
    assert len(histogram_axis.patches) == len(report.training.sizes)
    heights = sorted(bar.get_height() for bar in histogram_axis.patches)
    assert heights == sorted(report.training.sizes.values())
    line = mae_axis.get_lines()[0]
    assert np.allclose(line.get_ydata(), [1000 * s.summary.mae for s in report.sizes])


def test_error_by_size_compares_several_reports(tmp_path, figures):
    a = make_report(make_predictions(scale=0.02))
    b = make_report(make_predictions(scale=0.05, seed=1))
    evaluation_plots.error_by_size([("default", a), ("custom", b)], tmp_path / "both.png")
    assert_png(tmp_path / "both.png")
    _, labels = figures[0]["axes"][0].get_legend_handles_labels()
    assert "MAE per size (default)" in labels and "MAE per size (custom)" in labels


def test_error_by_element_annotates_the_training_frequency(tmp_path, report, figures):
    evaluation_plots.error_by_element(report, tmp_path / "element.png")
    assert_png(tmp_path / "element.png")
    axis = figures[0]["axes"][0]
    ticks = [t.get_text() for t in axis.get_xticklabels()]
    assert [t.split("\n")[0] for t in ticks] == ["H", "C", "N", "O", "F"]
    f_share = 100 * next(s for s in report.elements if s.key == "F").train_share
    assert f"{f_share:.3g} % of train" in ticks[-1]
    bars = [p.get_height() for p in axis.patches]
    assert np.allclose(bars, [1000 * s.summary.mae for s in report.elements])


def test_error_by_element_compares_reports_and_refuses_mixed_units(tmp_path):
    a = make_report(make_predictions())
    b = make_report(make_predictions(scale=0.05, seed=2))
    evaluation_plots.error_by_element([("a", a), ("b", b)], tmp_path / "two.png")
    assert_png(tmp_path / "two.png")
    debye = make_report(make_predictions(unit="Debye"))
    with pytest.raises(MolstrataError, match="different units"):
        evaluation_plots.error_by_element([("a", a), ("d", debye)], tmp_path / "bad.png")
    with pytest.raises(MolstrataError, match="no reports"):
        evaluation_plots.error_by_size([], tmp_path / "none.png")
    assert not (tmp_path / "bad.png").exists()


# ---- predictions -------------------------------------------------------------------------


@pytest.mark.parametrize("n", [300, 5000])
def test_predicted_vs_true_writes_a_scatter_or_a_density(tmp_path, figures, n):
    p = make_predictions(n=n)
    evaluation_plots.predicted_vs_true(p, tmp_path / "pvt.png")
    assert_png(tmp_path / "pvt.png")
    axis, errors_axis = figures[0]["axes"][:2]
    assert axis.get_xlabel() == "true U0 (eV)" and axis.get_ylabel() == "predicted U0 (eV)"
    assert errors_axis.get_ylabel() == "predicted - true (meV)"
    text = axis.texts[0].get_text()
    assert f"MAE {1000 * np.abs(p.errors).mean():.4g} meV" in text
    dense = n > evaluation_plots.HEXBIN_ABOVE
    assert len(figures[0]["axes"]) == (3 if dense else 2)  # a colour bar for the density


# ---- learning curves ---------------------------------------------------------------------


def test_learning_curve_from_a_csv_draws_loss_band_and_mae(tmp_path, figures):
    write_curve(tmp_path / "learning_curve.csv", curve_rows())
    evaluation_plots.learning_curve(tmp_path / "learning_curve.csv", tmp_path / "curve.png")
    assert_png(tmp_path / "curve.png")
    loss, mae = figures[0]["axes"]
    assert loss.get_yscale() == "log" and mae.get_yscale() == "log"
    assert loss.get_ylabel() == "loss, MSE (eV²)"
    assert mae.get_ylabel() == "validation MAE (meV)"
    assert len(loss.collections) == 1  # the band
    band = loss.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(0.6 / 12**1.5)
    assert band[:, 1].max() == pytest.approx(1.8)
    _, labels = loss.get_legend_handles_labels()
    assert labels == ["train loss", "5 lowest / 5 highest batches", "validation loss"]


def test_learning_curve_takes_the_unit_from_the_column_names(tmp_path, figures):
    rows = curve_rows(unit="kcal_per_mol_squared", mae_unit="kcal_per_mol")
    evaluation_plots.learning_curve(rows, tmp_path / "kcal.png")
    loss, mae = figures[0]["axes"]
    assert loss.get_ylabel() == "loss, MSE ((kcal/mol)²)"
    assert mae.get_ylabel() == "validation MAE (kcal/mol)"
    rows = curve_rows(unit="Hartree2", mae_unit="mHa")
    evaluation_plots.learning_curve(rows, tmp_path / "ha.png")
    assert figures[1]["axes"][0].get_ylabel() == "loss, MSE (Hartree²)"


def test_learning_curves_of_several_runs_overlay(tmp_path, figures):
    write_curve(tmp_path / "a.csv", curve_rows())
    runs = [("default", tmp_path / "a.csv"), ("custom", curve_rows(epochs=30, scale=2.0))]
    evaluation_plots.learning_curve(runs, tmp_path / "runs.png", title="default vs custom")
    assert_png(tmp_path / "runs.png")
    loss, mae = figures[0]["axes"]
    assert figures[0]["suptitle"] == "default vs custom"
    assert len(loss.collections) == 2
    assert [len(line.get_xdata()) for line in mae.get_lines()] == [12, 30]
    _, labels = mae.get_legend_handles_labels()
    assert labels == ["validation MAE (default)", "validation MAE (custom)"]


def test_learning_curve_without_band_or_validation_still_draws(tmp_path, figures):
    rows = [{"epoch": e, "train_loss_eV2": 1.0 / e} for e in range(1, 6)]
    evaluation_plots.learning_curve(rows, tmp_path / "plain.png")
    loss, _ = figures[0]["axes"]
    assert len(loss.collections) == 0 and len(loss.get_lines()) == 1


def test_bad_learning_curves_are_user_errors(tmp_path):
    rows = [{"epoch": 1, "loss": 0.5}]
    with pytest.raises(MolstrataError, match="train_loss_"):
        evaluation_plots.learning_curve(rows, tmp_path / "x.png")
    with pytest.raises(MolstrataError, match="different units"):
        evaluation_plots.learning_curve(
            [("a", curve_rows()), ("b", curve_rows(unit="Hartree2"))], tmp_path / "x.png")
    with pytest.raises(MolstrataError, match="cannot read"):
        evaluation_plots.learning_curve(tmp_path / "missing.csv", tmp_path / "x.png")
    (tmp_path / "text.csv").write_text("epoch,train_loss_eV2\n1,abc\n")
    with pytest.raises(MolstrataError, match="not a number"):
        evaluation_plots.learning_curve(tmp_path / "text.csv", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# ---- an evaluation's figures -------------------------------------------------------------


def test_draw_evaluation_draws_an_evaluations_figures(tmp_path, figures):
    predictions = make_predictions()
    write_curve(tmp_path / "curve.csv", curve_rows())
    evaluated = SimpleNamespace(report=make_report(predictions), predictions=predictions,
                                curve=tmp_path / "curve.csv")
    files = evaluation_plots.draw_evaluation(evaluated, tmp_path / "out")
    assert [f.name for f in files] == ["error_by_size.png", "error_by_element.png",
                                       "predicted_vs_true.png", "learning_curve.png"]
    for path in files:
        assert_png(path, min_bytes=5_000)
    no_curve = SimpleNamespace(report=evaluated.report, predictions=predictions, curve=None)
    assert len(evaluation_plots.draw_evaluation(no_curve, tmp_path / "again")) == 3


def test_evaluation_computes_numbers_and_imports_no_report():
    # evaluation comes before report in the data's journey: it never imports it
    code = ("import sys, molstrata.evaluation.evaluate, molstrata.evaluation.compare; "
            "print(sorted(m for m in sys.modules if m.startswith('molstrata.report')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
