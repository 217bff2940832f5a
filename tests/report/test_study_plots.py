"""Plots of the loss-weight study: the weight factors v(s) and the errors of the rate sweep."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from molstrata.errors import MolstrataError
from molstrata.evaluation.stratified import Predictions, TrainingCounts, stratified_metrics
from molstrata.report import study_plots
from molstrata.training.weights import weight_factors

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ELEMENTS = ("H", "C", "N", "O", "F")


def make_report(rate: float, unit: str = "eV", n: int = 300):
    """Predictions whose large molecules improve and small ones worsen as the rate grows."""
    rng = np.random.default_rng(int(10 * rate))
    sizes = rng.integers(10, 20, n)
    presence = rng.random((n, 5)) < [1.0, 0.99, 0.6, 0.85, 0.05]
    true = -60.0 * sizes
    scale = 0.01 * (1 + (sizes > 15) * (4 - np.log1p(rate)) + (sizes <= 15) * rate / 10)
    predicted = true + rng.normal(0, 1, n) * scale
    p = Predictions(np.arange(n), sizes, presence, ELEMENTS, true, predicted, unit, "U0")
    values, counts = np.unique(sizes, return_counts=True)
    train = TrainingCounts(4 * n, {int(s): int(4 * c) for s, c in zip(values, counts)},
                           {e: int(4 * c) for e, c in zip(ELEMENTS, presence.sum(axis=0))})
    return stratified_metrics(p, train, n_bootstrap=20)


@pytest.fixture
def figures(monkeypatch):
    """The axes of each figure saved, recorded before it closes."""
    saved = []
    real = study_plots.save_figure

    def record(fig, path):
        saved.append(fig.get_axes())
        real(fig, path)

    monkeypatch.setattr(study_plots, "save_figure", record)
    return saved


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05


# ---- weight factors ----------------------------------------------------------------------


def test_weight_curve_matches_the_formula_by_hand():
    train = np.array([10, 10, 12, 14])
    sizes, v = study_plots.weight_curve(train, "size", rate=2.0)
    # v(s) = 1 + 2 (s - 10) / 4 -> 1, 2, 3 at sizes 10, 12, 14; mean over the 4 molecules 7/4
    assert sizes.tolist() == [10, 12, 14]
    assert np.allclose(v, np.array([1.0, 2.0, 3.0]) / (7 / 4))
    assert np.isclose(np.mean(np.repeat(v, [2, 1, 1])), 1.0)
    # size_frequency: f = 1/2, 1/4, 1/4, f_max = 1/2 -> 1, 1 + 1 * 1/2, 1 + 2 * 1/2
    sizes, v = study_plots.weight_curve(train, "size_frequency", rate=2.0)
    assert np.allclose(v, np.array([1.0, 1.5, 2.0]) / (5.5 / 4))
    _, v = study_plots.weight_curve(train, "size", rate=0.0)
    assert np.allclose(v, 1.0)


def test_loss_weight_factors_draws_the_weights_training_uses(tmp_path, figures):
    rng = np.random.default_rng(0)
    peaked = np.r_[1:7, 6:1:-1].astype(float)  # sizes 13..23, most molecules at 18
    train = rng.choice(np.arange(13, 24), size=2000, p=peaked / peaked.sum())
    rates = [1, 5, 10]
    study_plots.loss_weight_factors(train, rates, tmp_path / "a2.png")
    assert_png(tmp_path / "a2.png")
    axes = figures[0]
    panels = [ax for ax in axes if ax.get_title()]
    assert [ax.get_title().split(":\n")[0] for ax in panels] == ["size", "size_frequency"]
    for panel, weighting in zip(panels, ("size", "size_frequency")):
        lines = [line for line in panel.get_lines() if line.get_label().startswith("r = ")]
        assert [line.get_label() for line in lines] == ["r = 1", "r = 5", "r = 10"]
        for line, rate in zip(lines, rates):
            x = np.asarray(line.get_xdata())
            assert x.tolist() == np.unique(train).tolist()
            assert np.allclose(line.get_ydata(), weight_factors(x, train, weighting, rate))
    histogram = [ax for ax in axes if ax.get_ylabel() == "training molecules"][-1]
    heights = [bar.get_height() for bar in histogram.patches]
    assert heights == np.unique(train, return_counts=True)[1].tolist()


def test_loss_weight_factors_refuses_bad_input(tmp_path):
    with pytest.raises(ValueError, match="unknown weighting 'sizes'"):
        study_plots.loss_weight_factors([10, 12], [1], tmp_path / "x.png", weightings=["sizes"])
    with pytest.raises(ValueError, match="no rates"):
        study_plots.loss_weight_factors([10, 12], [], tmp_path / "x.png")
    with pytest.raises(ValueError, match="no training sizes"):
        study_plots.loss_weight_factors([], [1], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# ---- the rate sweep ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep():
    reports = {r: make_report(r) for r in (0, 1, 5, 10, 20)}
    return {
        "size": [(r, reports[r]) for r in (10, 0, 1, 5, 20)],  # any order
        "size_frequency": [(r, make_report(r + 0.5)) for r in (0, 5, 10)],
    }


def test_rate_sweep_table_reads_the_reports_in_meV(sweep):
    header, rows = study_plots.rate_sweep_table(sweep)
    assert header == ["weighting", "rate", "mae_meV", "macro_mae_sizes_meV", "worst_size",
                      "worst_size_mae_meV"]
    assert [(w, r) for w, r, *_ in rows] == [
        ("size", 0), ("size", 1), ("size", 5), ("size", 10), ("size", 20),
        ("size_frequency", 0), ("size_frequency", 5), ("size_frequency", 10)]
    report = dict(sweep["size"])[5]
    assert rows[2][2:] == pytest.approx([
        1000 * report.overall.summary.mae, 1000 * report.macro["size"].mae,
        report.worst["size"].key, 1000 * report.worst["size"].summary.mae])


def test_metric_by_rate_draws_three_panels_and_rings_the_best_rate(tmp_path, sweep, figures):
    study_plots.metric_by_rate(sweep, tmp_path / "rates.png")
    assert_png(tmp_path / "rates.png")
    header, rows = study_plots.rate_sweep_table(sweep)
    panels = figures[0]
    assert len(panels) == 3
    for panel, column in zip(panels, (2, 3, 5)):
        assert panel.get_ylabel() == "MAE (meV)"
        assert panel.get_xscale() == "symlog"  # r = 0 sits on the axis
        for weighting in sweep:
            mine = [row for row in rows if row[0] == weighting]
            best = min(mine, key=lambda row: row[column])
            line = next(line for line in panel.get_lines()
                        if line.get_label().startswith(f"{weighting}, best r"))
            assert line.get_label() == f"{weighting}, best r = {best[1]:g}"
            assert np.allclose(line.get_xdata(), [row[1] for row in mine])
            assert np.allclose(line.get_ydata(), [row[column] for row in mine])


def test_metric_by_rate_refuses_an_empty_sweep_and_mixed_units(tmp_path, sweep):
    with pytest.raises(ValueError, match="no rate sweep"):
        study_plots.metric_by_rate({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="'size' has no runs"):
        study_plots.metric_by_rate({"size": []}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="gives a rate twice"):
        study_plots.metric_by_rate({"size": sweep["size"][:1] * 2}, tmp_path / "x.png")
    mixed = {"size": sweep["size"], "other": [(1.0, make_report(1.0, unit="Debye"))]}
    with pytest.raises(MolstrataError, match="different units"):
        study_plots.metric_by_rate(mixed, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
