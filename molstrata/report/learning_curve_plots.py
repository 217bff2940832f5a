"""Plots of per-stratum learning curves as PNGs: each stratum's test MAE against its own training
molecules with the fitted curve and its extrapolation (log-log), and the fitted exponents
against each stratum's share of the training set.

The inputs are plain arrays, so that these plots do not depend on how the curves were fitted.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.artist import Artist
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from molstrata.report.evaluation_plots import COLORS
from molstrata.report.plots import log_axis, plt, save_figure

ONE_AXES_AT_MOST = len(COLORS)
"""Strata drawn together on one axes, each in a colour of its own; more go to small multiples."""
PANEL_COLUMNS = 4
KEY_COLOR = "#555555"
TARGET_COLOR = "black"
EXTRAPOLATED = (0, (3, 2))
TARGET_DASHES = (0, (7, 3))
SEED_MARK = {"marker": "o", "ms": 3, "mfc": "white", "mew": 0.8, "ls": "none"}
"""Each training seed's MAE: a small open circle, drawn over the mean's filled one."""


@dataclass(frozen=True, eq=False)
class CurvePoints:
    """The measured points of one stratum, one per nested training subset: `n` (m,) the
    stratum's training molecules, `mae` (m,) its test MAE (mean over training seeds) with its
    95 % interval `low`, `high` (m,), and `seeds` (k, m) each seed's MAE, NaN where absent.

    A point whose n or MAE is not positive cannot sit on log axes and is left out of the plot.
    """

    label: str
    n: np.ndarray
    mae: np.ndarray
    low: np.ndarray
    high: np.ndarray
    seeds: np.ndarray | None = None

    def __post_init__(self) -> None:
        where = f"stratum {self.label!r}"
        n = _vector(self.n, "n", where)
        reference = ("n", len(n))
        for name in ("mae", "low", "high"):
            object.__setattr__(self, name, _vector(getattr(self, name), name, where, reference))
        object.__setattr__(self, "n", n)
        _check_within(self.low, self.mae, self.high, where, "MAE")
        if self.seeds is not None:
            seeds = np.atleast_2d(np.asarray(self.seeds, dtype=float))
            if seeds.ndim != 2 or seeds.shape[1] != len(n):
                raise ValueError(f"{where}: seeds has shape {np.shape(self.seeds)}, expected "
                                 f"(k, {len(n)}): one row per seed, one column per point")
            object.__setattr__(self, "seeds", seeds)


@dataclass(frozen=True, eq=False)
class CurveFit:
    """The fitted curve of one stratum: its MAE `mae` (g,) on a `grid` (g,) of training
    molecules (ascending, reaching past the measured points to show the extrapolation), its
    95 % band `low`, `high` (g,), the form's name (e.g. "power law + floor") and the exponent
    b (MAE ~ n^-b) with its interval `b_low`, `b_high` (NaN where unknown)."""

    grid: np.ndarray
    mae: np.ndarray
    low: np.ndarray
    high: np.ndarray
    form: str
    b: float
    b_low: float
    b_high: float

    def __post_init__(self) -> None:
        where = f"fit {self.form!r}"
        grid = _vector(self.grid, "grid", where)
        if len(grid) < 2 or not (np.all(np.isfinite(grid)) and grid[0] > 0
                                 and np.all(np.diff(grid) > 0)):
            raise ValueError(f"{where}: grid must hold at least 2 positive, finite, strictly "
                             "increasing numbers of training molecules")
        reference = ("grid", len(grid))
        for name in ("mae", "low", "high"):
            object.__setattr__(self, name, _vector(getattr(self, name), name, where, reference))
        object.__setattr__(self, "grid", grid)
        _check_within(self.low, self.mae, self.high, where, "fitted MAE")
        for name in ("b", "b_low", "b_high"):
            object.__setattr__(self, name, float(getattr(self, name)))
        _check_within(np.array([self.b_low]), np.array([self.b]), np.array([self.b_high]),
                      where, "exponent b")


def learning_curves(
    curves: Sequence[tuple[CurvePoints, CurveFit | None]],
    path: str | os.PathLike,
    *,
    title: str,
    unit: str = "meV",
    target: float | None = None,
    max_panels: int = 12,
) -> list[str]:
    """Each stratum's test MAE against its training molecules on log-log axes: points with
    their intervals, each seed as a small mark, the fit solid over the measured range and
    dashed beyond it, its band shaded, b with its interval in the stratum's label.

    Up to ONE_AXES_AT_MOST strata share one axes; more become small multiples with a shared
    y scale, the first `max_panels` in the order given, the title saying how many were left
    out. `target` draws a labelled horizontal line (e.g. chemical accuracy, 43 meV).
    Returns the labels of the strata drawn, in order."""
    curves = list(curves)
    if not curves:
        raise ValueError("no learning curves to plot: give at least one (points, fit) pair")
    if max_panels < 1:
        raise ValueError(f"max_panels is {max_panels}; give at least 1")
    if target is not None and not (math.isfinite(target) and target > 0):
        raise ValueError(f"target is {target}; give a positive MAE to sit on a log axis")
    together = len(curves) <= ONE_AXES_AT_MOST
    shown = curves if together else curves[:max_panels]
    forms = sorted({fit.form for _, fit in shown if fit is not None})
    key = _key(shown, forms, unit, target)
    ylim = _y_range(shown, target)
    if together:
        fig = _one_axes(shown, key, forms, ylim, unit, target, title)
    else:
        fig = _small_multiples(shown, key, forms, ylim, unit, target, title, len(curves))
    save_figure(fig, path)
    return [points.label for points, _ in shown]


def exponents_against_share(
    labels: Sequence[str],
    shares: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    b_low: Sequence[float] | np.ndarray,
    b_high: Sequence[float] | np.ndarray,
    path: str | os.PathLike,
    *,
    title: str,
    kind: str,
    global_b: float | None = None,
) -> list[str]:
    """The fitted exponent b of each stratum, with its interval, against the stratum's share of
    the training set (a fraction, 0 < share <= 1, drawn in % on a log axis), each point named;
    `global_b`, the exponent of the curve over all molecules, as a horizontal line. `kind`
    names the strata (e.g. "size", "element"). Strata without an exponent (b NaN) are left
    out; returns the labels of those drawn."""
    labels = [str(label) for label in labels]
    where = f"{kind} exponents"
    reference = ("labels", len(labels))
    shares = _vector(shares, "shares", where, reference)
    b, b_low, b_high = (_vector(v, name, where, reference)
                        for v, name in ((b, "b"), (b_low, "b_low"), (b_high, "b_high")))
    if not np.all((shares > 0) & (shares <= 1)):
        raise ValueError(f"{where}: shares must be fractions of the training set in (0, 1], "
                         f"got {shares.min():g} to {shares.max():g}")
    _check_within(b_low, b, b_high, where, "exponent b")
    drawn = np.isfinite(b)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    x, y = 100 * shares[drawn], b[drawn]
    ax.errorbar(x, y, yerr=_bars(y, b_low[drawn], b_high[drawn]), fmt="o", ms=5, lw=1.1,
                capsize=3, color=COLORS[0], label=f"{kind} strata: fitted b, 95 % interval")
    for xi, yi, label in zip(x, y, np.array(labels, dtype=object)[drawn]):
        ax.annotate(label, (xi, yi), xytext=(5, 3), textcoords="offset points", fontsize=7.5)
    if global_b is not None:
        ax.axhline(global_b, color=COLORS[1], ls="--", lw=1,
                   label=f"all molecules: b = {global_b:.2f}")
    log_axis(ax, "x")
    if len(x):
        ax.set_xlim(10 ** math.floor(math.log10(x.min())), 1.6 * x.max())
    ax.set_xlabel(f"share of the training set (%), per {kind} stratum")
    ax.set_ylabel(r"fitted exponent b (MAE $\propto n^{-b}$)")
    ax.grid(which="both", alpha=0.25)
    ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14),
              ncol=2)
    ax.set_title(title)
    save_figure(fig, path)
    return [label for label, keep in zip(labels, drawn) if keep]


# ---- layouts -----------------------------------------------------------------------------


def _one_axes(shown, key, forms, ylim, unit, target, title) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(8.5, 5.4))
    for i, (points, fit) in enumerate(shown):
        _draw_stratum(ax, points, fit, COLORS[i], _label(points, fit, forms, ", "))
    _decorate(ax, ylim, unit, target)
    ax.set_xlabel("training molecules of the stratum")
    ax.set_ylabel(f"test MAE ({unit}): mean over training seeds, 95 % interval")
    handles = ax.get_legend_handles_labels()[0] + key
    ax.legend(handles=handles, frameon=False, fontsize=8, loc="upper center",
              bbox_to_anchor=(0.5, -0.13), ncol=2, handlelength=3)
    ax.set_title(title)
    return fig


def _small_multiples(shown, key, forms, ylim, unit, target, title, total) -> plt.Figure:
    columns = min(PANEL_COLUMNS, len(shown))
    rows = math.ceil(len(shown) / columns)
    fig, grid = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.7 * rows + 0.9),
                             sharey=True, squeeze=False, layout="constrained")
    for ax, (points, fit) in zip(grid.flat, shown):
        _draw_stratum(ax, points, fit, COLORS[0], None)
        _decorate(ax, ylim, unit, target)
        ax.set_title(_label(points, fit, forms, "\n"), fontsize=8.5)
    for ax in grid.flat[len(shown):]:
        ax.set_visible(False)
    for column in range(columns):
        bottom = grid[(len(shown) - 1 - column) // columns, column]
        bottom.set_xlabel("training molecules of the stratum", fontsize=9)
    fig.supylabel(f"test MAE ({unit}): mean over training seeds, 95 % interval", fontsize=10)
    fig.legend(handles=key, frameon=False, fontsize=8, loc="outside lower center",
               ncol=min(len(key), 5), handlelength=3)
    left_out = total - len(shown)
    note = f"\n(the first {len(shown)} of {total} strata; {left_out} left out)" if left_out else ""
    fig.suptitle(title + note)
    return fig


def _decorate(ax, ylim: tuple[float, float], unit: str, target: float | None) -> None:
    """Log axes, the y range of the data (a wide extrapolated band is cut, not the points),
    the target line with its value written on it."""
    if target is not None:
        ax.axhline(target, color=TARGET_COLOR, ls=TARGET_DASHES, lw=1.1)
        ax.annotate(f"{target:g} {unit}", (0, target), xycoords=("axes fraction", "data"),
                    xytext=(3, 2), textcoords="offset points", ha="left", va="bottom",
                    fontsize=7.5, color=TARGET_COLOR)
    log_axis(ax, "x")
    log_axis(ax, "y")
    ax.set_ylim(*ylim)
    ax.grid(which="both", alpha=0.25)


# ---- one stratum -------------------------------------------------------------------------


def _draw_stratum(ax, points: CurvePoints, fit: CurveFit | None, color: str,
                  label: str | None) -> None:
    ok = _positive(points.n) & _positive(points.mae)
    n, mae = points.n[ok], points.mae[ok]
    ax.errorbar(n, mae, yerr=_bars(mae, points.low[ok], points.high[ok]), fmt="o", ms=4.5,
                lw=1.2, capsize=3, color=color, label=label, zorder=3)
    if points.seeds is not None:
        x = np.broadcast_to(points.n, points.seeds.shape)
        marks = ok & _positive(points.seeds)
        ax.plot(x[marks], points.seeds[marks], color=color, alpha=0.8, zorder=4, **SEED_MARK)
    if fit is not None:
        _draw_fit(ax, fit, (n.min(), n.max()) if len(n) else None, color)


def _draw_fit(ax, fit: CurveFit, measured: tuple[float, float] | None, color: str) -> None:
    """The fit solid over the measured range of n, dashed outside it, its band shaded."""
    positive = fit.mae[_positive(fit.mae)]
    floor = 1e-3 * positive.min() if len(positive) else 1e-12
    ax.fill_between(fit.grid, np.maximum(fit.low, floor), np.maximum(fit.high, floor),
                    color=color, alpha=0.15, lw=0, zorder=1)
    if measured is None:
        ax.plot(fit.grid, fit.mae, color=color, lw=1.3, ls=EXTRAPOLATED, zorder=2)
        return
    ends = [v for v in measured if fit.grid[0] < v < fit.grid[-1]]
    x = np.unique(np.r_[fit.grid, ends])
    y = np.interp(np.log(x), np.log(fit.grid), fit.mae)
    lo, hi = measured
    inside = (x >= lo) & (x <= hi)
    ax.plot(x[inside], y[inside], color=color, lw=1.5, zorder=2)
    for outside in (x <= lo, x >= hi):
        if outside.sum() > 1:
            ax.plot(x[outside], y[outside], color=color, lw=1.3, ls=EXTRAPOLATED, zorder=2)


def _label(points: CurvePoints, fit: CurveFit | None, forms: list[str], sep: str) -> str:
    """'18 atoms: b = 0.42 [0.38, 0.47]', the form added where the strata's fits differ."""
    if fit is None:
        return f"{points.label} (no fit)"
    text = f"{points.label}: b = {fit.b:.2f}"
    if math.isfinite(fit.b_low) and math.isfinite(fit.b_high):
        text += f" [{fit.b_low:.2f}, {fit.b_high:.2f}]"
    return text + (f"{sep}{fit.form}" if len(forms) > 1 else "")


def _key(shown, forms: list[str], unit: str, target: float | None) -> list[Artist]:
    """Legend entries that explain the marks every stratum shares, drawn in grey."""
    key: list[Artist] = []
    if any(points.seeds is not None for points, _ in shown):
        key.append(Line2D([], [], color=KEY_COLOR, label="each training seed", **SEED_MARK))
    if forms:
        form = f" ({forms[0]})" if len(forms) == 1 else ""
        key += [Line2D([], [], color=KEY_COLOR, lw=1.5, label=f"fit{form}, measured range"),
                Line2D([], [], color=KEY_COLOR, lw=1.3, ls=EXTRAPOLATED, label="extrapolation"),
                Patch(color=KEY_COLOR, alpha=0.2, lw=0, label="95 % band of the fit")]
    if target is not None:
        key.append(Line2D([], [], color=TARGET_COLOR, lw=1.1, ls=TARGET_DASHES,
                          label=f"target: {target:g} {unit}"))
    return key


def _y_range(shown, target: float | None) -> tuple[float, float]:
    """The y range that holds every point, seed, interval, fitted line and the target."""
    values = [np.array([target if target is not None else np.nan])]
    for points, fit in shown:
        values += [points.mae, points.low, points.high]
        if points.seeds is not None:
            values.append(points.seeds.ravel())
        if fit is not None:
            values.append(fit.mae)
    values = np.concatenate(values)
    values = values[_positive(values)]
    if not len(values):
        return 0.1, 10.0
    return values.min() / 1.25, values.max() * 1.25


# ---- checks ------------------------------------------------------------------------------


def _vector(values, name: str, where: str, like: tuple[str, int] | None = None) -> np.ndarray:
    """`values` as a float array (m,), its length that of `like` (name, length) if given."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"{where}: {name} must be a non-empty 1-D array, got shape "
                         f"{array.shape}")
    if like is not None and len(array) != like[1]:
        raise ValueError(f"{where}: {name} has {len(array)} values but {like[0]} has "
                         f"{like[1]}; give one per {like[0]} entry")
    return array


def _check_within(low: np.ndarray, value: np.ndarray, high: np.ndarray, where: str,
                  what: str) -> None:
    """low <= value <= high wherever all are known, up to rounding."""
    slack = 1e-9 * np.abs(value)
    bad = (low > value + slack) | (value > high + slack)
    if bad.any():
        raise ValueError(f"{where}: the {what} lies outside its interval at position(s) "
                         f"{np.flatnonzero(bad).tolist()}; give low <= {what} <= high")


def _bars(value: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Error bars (2, m) below and above `value`; none where the interval is unknown."""
    bars = np.stack([value - low, high - value])
    return np.where(np.isfinite(bars), np.maximum(bars, 0.0), 0.0)


def _positive(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values > 0)
