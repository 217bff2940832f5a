"""Plots of per-stratum learning curves: MAE against training molecules with fits, and the
fitted exponents against each stratum's share of the training set."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from molstrata.report import learning_curve_plots as lcp
from molstrata.report.learning_curve_plots import CurveFit, CurvePoints

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SUBSETS = np.array([1000, 2000, 4000, 8000, 16000])
"""Training molecules of the nested subsets; a stratum holds its share of each."""


def make_points(label: str, share: float, a: float, b: float, seed: int,
                n_seeds: int = 3) -> CurvePoints:
    """A power law a n^-b measured with 5 % noise per seed, the interval mean ± 2 sd / sqrt(k)."""
    rng = np.random.default_rng(seed)
    n = np.round(share * SUBSETS)
    seeds = a * n ** -b * (1 + 0.05 * rng.standard_normal((n_seeds, len(n))))
    seeds[0, -1] = np.nan  # one seed did not finish the largest subset
    mae = np.nanmean(seeds, axis=0)
    half = 2 * np.nanstd(seeds, axis=0) / np.sqrt(np.isfinite(seeds).sum(axis=0))
    return CurvePoints(label, n, mae, mae - half, mae + half, seeds)


def make_fit(points: CurvePoints, a: float, b: float, form: str = "power law") -> CurveFit:
    """The true power law on a grid reaching 8x past the largest subset, its band widening."""
    grid = np.geomspace(points.n[0], 8 * points.n[-1], 40)
    mae = a * grid ** -b
    spread = 0.05 * (1 + np.log(grid / points.n[0]))
    return CurveFit(grid, mae, mae * (1 - spread / 2), mae * (1 + spread), form, b,
                    b - 0.04, b + 0.05)


def make_curves(count: int) -> list[tuple[CurvePoints, CurveFit | None]]:
    """`count` size strata with shares and exponents that differ; the second one unfitted."""
    curves = []
    for i in range(count):
        share, a, b = 0.02 + 0.3 / (i + 1), 2000.0 * (1 + 0.1 * i), 0.3 + 0.03 * i
        points = make_points(f"{10 + i} atoms", share, a, b, seed=i)
        curves.append((points, None if i == 1 else make_fit(points, a, b)))
    return curves


@pytest.fixture
def figures(monkeypatch):
    """Each figure saved, recorded before it closes."""
    saved = []
    real = lcp.save_figure

    def record(fig, path):
        saved.append(fig)
        real(fig, path)

    monkeypatch.setattr(lcp, "save_figure", record)
    return saved


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05


# ---- strata on one axes ------------------------------------------------------------------


def test_few_strata_share_one_log_log_axes_with_b_in_their_labels(tmp_path, figures):
    curves = make_curves(4)
    drawn = lcp.learning_curves(curves, tmp_path / "curves.png", title="U0 per size",
                                target=43.0)
    assert_png(tmp_path / "curves.png")
    assert drawn == ["10 atoms", "11 atoms", "12 atoms", "13 atoms"]
    (ax,) = figures[0].get_axes()
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert ax.get_title() == "U0 per size"
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    fit = curves[0][1]
    assert f"10 atoms: b = {fit.b:.2f} [{fit.b_low:.2f}, {fit.b_high:.2f}]" in texts
    assert "11 atoms (no fit)" in texts
    assert {"each training seed", "fit (power law), measured range", "extrapolation",
            "95 % band of the fit", "target: 43 meV"} <= set(texts)
    assert any(np.allclose(line.get_ydata(), 43.0) for line in ax.get_lines())
    low, high = ax.get_ylim()
    assert low < min(p.low.min() for p, _ in curves) and high > 43.0


def test_the_fit_is_solid_over_the_measured_range_and_dashed_beyond(tmp_path, figures):
    points, fit = make_curves(1)[0]
    lcp.learning_curves([(points, fit)], tmp_path / "one.png", title="one")
    ax = figures[0].get_axes()[0]
    lines = [line for line in ax.get_lines() if line.get_linestyle() != "None"]
    solid = [line for line in lines if line.get_linestyle() == "-"]
    dashed = [line for line in lines if line.get_linestyle() != "-"]
    assert len(solid) == 1 and len(dashed) == 1
    assert solid[0].get_xdata()[0] == points.n[0] and solid[0].get_xdata()[-1] == points.n[-1]
    assert dashed[0].get_xdata()[0] == points.n[-1]
    assert dashed[0].get_xdata()[-1] == pytest.approx(fit.grid[-1])


def test_mixed_forms_are_named_in_each_label(tmp_path, figures):
    (p1, f1), (p2, _) = make_curves(2)
    floor = make_fit(p2, 2000.0, 0.5, form="power law + floor")
    lcp.learning_curves([(p1, f1), (p2, floor)], tmp_path / "mixed.png", title="mixed")
    texts = [t.get_text() for t in figures[0].get_axes()[0].get_legend().get_texts()]
    assert texts[1] == "11 atoms: b = 0.50 [0.46, 0.55], power law + floor"
    assert "fit, measured range" in texts


# ---- small multiples ---------------------------------------------------------------------


def test_many_strata_become_panels_and_the_title_says_how_many_were_left_out(tmp_path,
                                                                           figures):
    curves = make_curves(15)
    drawn = lcp.learning_curves(curves, tmp_path / "panels.png", title="U0 per size",
                                target=43.0, max_panels=12)
    assert_png(tmp_path / "panels.png")
    assert drawn == [points.label for points, _ in curves[:12]]
    fig = figures[0]
    assert "first 12 of 15 strata; 3 left out" in fig._suptitle.get_text()
    panels = [ax for ax in fig.get_axes() if ax.get_visible()]
    assert len(panels) == 12
    assert len({ax.get_ylim() for ax in panels}) == 1  # one y scale
    assert panels[1].get_title() == "11 atoms (no fit)"
    assert panels[0].get_title().startswith("10 atoms: b = 0.30 [")


def test_panels_that_all_fit_leave_nothing_out(tmp_path, figures):
    count = lcp.ONE_AXES_AT_MOST + 1
    drawn = lcp.learning_curves(make_curves(count), tmp_path / "more.png", title="more")
    assert len(drawn) == count
    fig = figures[0]
    assert fig._suptitle.get_text() == "more"
    assert sum(ax.get_visible() for ax in fig.get_axes()) == count


# ---- exponents against share -------------------------------------------------------------


def test_exponents_against_share_names_each_point(tmp_path, figures):
    labels = ["with F", "with N", "with O", "no fit"]
    drawn = lcp.exponents_against_share(
        labels, [0.015, 0.5, 0.8, 0.001], [0.25, 0.4, 0.45, np.nan],
        [0.15, 0.37, 0.43, np.nan], [0.33, 0.44, 0.48, np.nan], tmp_path / "b.png",
        title="exponent per element", kind="element", global_b=0.42)
    assert_png(tmp_path / "b.png")
    assert drawn == ["with F", "with N", "with O"]
    ax = figures[0].get_axes()[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.texts] == drawn
    assert any(np.allclose(line.get_ydata(), 0.42) for line in ax.get_lines())
    assert "all molecules: b = 0.42" in [t.get_text() for t in ax.get_legend().get_texts()]


# ---- bad input ---------------------------------------------------------------------------


def test_bad_input_is_refused(tmp_path):
    n = np.array([10.0, 20.0, 40.0])
    mae = np.array([30.0, 20.0, 15.0])
    with pytest.raises(ValueError, match="mae has 2 values but n has 3"):
        CurvePoints("s", n, mae[:2], mae[:2] - 1, mae[:2] + 1)
    with pytest.raises(ValueError, match=r"seeds has shape \(2, 2\)"):
        CurvePoints("s", n, mae, mae - 1, mae + 1, seeds=np.ones((2, 2)))
    with pytest.raises(ValueError, match="outside its interval at position"):
        CurvePoints("s", n, mae, mae + 1, mae + 2)
    with pytest.raises(ValueError, match="high has 3 values but grid has 4"):
        CurveFit(np.arange(1.0, 5.0), np.ones(4), np.ones(4), np.ones(3), "power law",
                 0.4, 0.3, 0.5)
    with pytest.raises(ValueError, match="strictly increasing"):
        CurveFit(np.array([1.0, 1.0]), np.ones(2), np.ones(2), np.ones(2), "power law",
                 0.4, 0.3, 0.5)
    with pytest.raises(ValueError, match="exponent b lies outside"):
        CurveFit(np.array([1.0, 2.0]), np.ones(2), np.ones(2), np.ones(2), "power law",
                 0.6, 0.3, 0.5)
    with pytest.raises(ValueError, match="no learning curves"):
        lcp.learning_curves([], tmp_path / "x.png", title="x")
    with pytest.raises(ValueError, match="shares has 1 values but labels has 2"):
        lcp.exponents_against_share(["a", "b"], [0.5], [0.4, 0.4], [0.3, 0.3], [0.5, 0.5],
                                    tmp_path / "x.png", title="x", kind="size")
    with pytest.raises(ValueError, match="fractions of the training set"):
        lcp.exponents_against_share(["a"], [12.5], [0.4], [0.3], [0.5], tmp_path / "x.png",
                                    title="x", kind="size")
    assert not (tmp_path / "x.png").exists()
