"""Plots of the study's loss-weight experiment: the weight factors v(s) (Figure A2) and the
errors of the rate sweep against the rate r, as PNGs."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from molstrata.evaluation.stratified import SIZE, StratifiedReport
from molstrata.report.evaluation_plots import _color, _common_error_unit, _legend
from molstrata.report.plots import log_axis, plt, save_figure
from molstrata.training.weights import LOSS_WEIGHTS, weight_factors
from molstrata.units import unit_key

FORMULAS = {
    "none": "v(s) = 1",
    "size": r"$v(s) = 1 + r\,(s - s_{min})\,/\,(s_{max} - s_{min})$",
    "size_frequency": r"$v(s) = 1 + r\,(s - s_{min})\,/\,(s_{max} - s_{min})"
                      r"\cdot(1 - f(s)\,/\,f_{max})$",
    "inverse_frequency": r"$v(s) \propto f(s)^{-\alpha}$",
}
"""Each weighting's formula as a panel title (before normalisation to mean 1)."""

RateSeries = Mapping[str, Sequence[tuple[float, StratifiedReport]]]


# ---- weight factors ----------------------------------------------------------------------


def weight_curve(
    train_sizes: np.ndarray, weighting: str, rate: float, alpha: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(sizes, v): every distinct size of the training set, ascending, and its loss weight
    v(s), normalised to mean 1 over the training molecules (what training multiplies by)."""
    train_sizes = np.asarray(train_sizes, dtype=np.int64).reshape(-1)
    if len(train_sizes) == 0:
        raise ValueError("no training sizes: give the sizes of the training molecules")
    if weighting not in LOSS_WEIGHTS:
        raise ValueError(f"unknown weighting {weighting!r}; use one of {', '.join(LOSS_WEIGHTS)}")
    sizes = np.unique(train_sizes)
    return sizes, weight_factors(sizes, train_sizes, weighting, rate, alpha)


def loss_weight_factors(
    train_sizes: np.ndarray,
    rates: Sequence[float],
    path: str | os.PathLike,
    *,
    weightings: Sequence[str] = ("size", "size_frequency"),
    alpha: float = 1.0,
) -> None:
    """v(s) against molecule size for each rate r, one panel per weighting (Figure A2), over
    the training set's size histogram that v is normalised on (mean 1 over its molecules)."""
    if not len(rates):
        raise ValueError("no rates: give at least one rate r")
    if not weightings:
        raise ValueError("no weightings: give at least one, e.g. 'size'")
    train_sizes = np.asarray(train_sizes, dtype=np.int64).reshape(-1)
    curves = {w: [(r, *weight_curve(train_sizes, w, r, alpha)) for r in _rates_of(w, rates)]
              for w in weightings}
    sizes, counts = np.unique(train_sizes, return_counts=True)
    fig, axes = plt.subplots(1, len(weightings), figsize=(5.2 * len(weightings) + 0.6, 4.6),
                             squeeze=False)
    for ax, weighting in zip(axes[0], weightings):
        behind = ax.twinx()
        ax.set_zorder(behind.get_zorder() + 1)
        ax.patch.set_visible(False)
        behind.bar(sizes, counts, width=0.8, color="#e1e7ee", label="training molecules")
        behind.tick_params(axis="y", colors="#7b8794", labelsize=8)
        ax.axhline(1.0, color="#555555", lw=0.8, ls=":", label="plain loss (v = 1)")
        for i, (rate, x, v) in enumerate(curves[weighting]):
            label = (f"α = {alpha:g}" if weighting == "inverse_frequency"
                     else "r = any" if weighting == "none" else f"r = {rate:g}")
            ax.plot(x, v, "o-", ms=3.5, lw=1.3, color=_color(i), label=label)
        ax.set_title(f"{weighting}:\n{FORMULAS[weighting]}", fontsize=10)
        ax.set_xlabel("molecule size s (number of atoms)")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(bottom=0)
        _legend(ax, behind, below=0.16)
    axes[0][0].set_ylabel("loss weight v(s) (dimensionless, mean 1 over training)")
    behind.set_ylabel("training molecules", color="#7b8794")
    fig.subplots_adjust(wspace=0.32, top=0.8)
    fig.suptitle(f"Loss weight per molecule size, {len(train_sizes):,} training molecules "
                 "(Figure A2)")
    save_figure(fig, path)


def _rates_of(weighting: str, rates: Sequence[float]) -> list[float]:
    """The rates that change this weighting: one curve for those that ignore r."""
    return [0.0] if weighting in ("none", "inverse_frequency") else sorted(float(r) for r in rates)


# ---- the rate sweep ----------------------------------------------------------------------


def rate_sweep_table(series: RateSeries) -> tuple[list[str], list[list]]:
    """(header, rows) of the rate sweep: per weighting and rate, the overall MAE, the macro
    average of the per-size MAEs and the worst size with its MAE, in report units (meV for eV
    targets); rows ordered by weighting as given, then by rate."""
    runs = _check_series(series)
    factor, unit = _common_error_unit([("", report) for _, _, report in runs])
    u = unit_key(unit)
    header = ["weighting", "rate", f"mae_{u}", f"macro_mae_sizes_{u}", "worst_size",
              f"worst_size_mae_{u}"]
    rows = []
    for weighting, rate, report in runs:
        macro = report.macro.get(SIZE)
        worst = report.worst.get(SIZE)
        rows.append([
            weighting, rate, report.overall.summary.mae * factor,
            None if macro is None else macro.mae * factor,
            None if worst is None else worst.key,
            None if worst is None else worst.summary.mae * factor,
        ])
    return header, rows


def metric_by_rate(series: RateSeries, path: str | os.PathLike) -> None:
    """Overall MAE, macro-averaged MAE over sizes and worst-size MAE against the rate r, one
    line per weighting, the best r of each weighting ringed (the study's rate sweep)."""
    _, rows = rate_sweep_table(series)
    runs = _check_series(series)
    weightings = list(dict.fromkeys(weighting for weighting, _, _ in runs))
    _, unit = _common_error_unit([("", report) for _, _, report in runs])
    panels = [(2, "overall MAE (all molecules)"), (3, "macro-average of the per-size MAEs"),
              (5, "MAE of the worst size (size written above)")]
    rates = sorted({row[1] for row in rows})
    positive = [r for r in rates if r > 0]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4))
    for ax, (column, title) in zip(axes, panels):
        for i, weighting in enumerate(weightings):
            mine = [row for row in rows if row[0] == weighting]
            x = np.array([row[1] for row in mine], dtype=float)
            y = np.array([math.nan if row[column] is None else row[column] for row in mine])
            label = weighting
            if np.isfinite(y).any():
                best = int(np.nanargmin(y))
                ax.plot(x[best], y[best], "o", ms=11, mfc="none", mew=1.6, color=_color(i))
                label = f"{weighting}, best r = {x[best]:g}"
            ax.plot(x, y, "o-", ms=4, lw=1.4, color=_color(i), label=label)
            if column == 5:
                for xi, yi, row in zip(x, y, mine):
                    if row[4] is not None:
                        ax.annotate(f"{row[4]}", (xi, yi), xytext=(0, 6), fontsize=7,
                                    textcoords="offset points", ha="center", color=_color(i))
        if rates[0] <= 0 < rates[-1]:
            ax.set_xscale("symlog", linthresh=min(positive), linscale=0.6)
        elif positive and rates[-1] / rates[0] > 20:
            ax.set_xscale("log")
        ax.set_xticks(rates, [f"{r:g}" for r in rates], fontsize=8)
        ax.minorticks_off()
        ax.set_xlabel("rate r of the loss weight (r = 0: plain loss)")
        ax.set_ylabel(f"MAE ({unit})")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    report = runs[0][2]
    strata = ("all sizes" if report.all_sizes
              else f"sizes holding ≥ {100 * report.min_share:g} % of the evaluated molecules")
    fig.suptitle(f"{report.target}: errors against the loss-weight rate r (per-size errors over "
                 f"{strata}; rings: best r)")
    save_figure(fig, path)


def _check_series(series: RateSeries) -> list[tuple[str, float, StratifiedReport]]:
    """(weighting, rate, report) for every run, by weighting as given then by rate."""
    if not series:
        raise ValueError("no rate sweep to plot: give at least one weighting with its runs")
    runs = []
    for weighting, points in series.items():
        points = sorted(points, key=lambda p: p[0])
        if not points:
            raise ValueError(f"weighting {weighting!r} has no runs; give (rate, report) pairs")
        rates = [float(r) for r, _ in points]
        if len(set(rates)) < len(rates):
            raise ValueError(f"weighting {weighting!r} gives a rate twice: {rates}")
        runs += [(str(weighting), float(r), report) for r, report in points]
    return runs


# ---- training sets -----------------------------------------------------------------------


def training_size_histograms(series: Sequence[tuple[str, Mapping[int, int]]],
                             path: str | os.PathLike, *, title: str | None = None) -> None:
    """Training molecules per size of several runs on one axis: the full training set as bars,
    each undersampled one as a line (the study's Figure 5, drawn for what was trained on)."""
    if not series:
        raise ValueError("no training sets: give at least one (label, counts per size)")
    fig, ax = plt.subplots(figsize=(9, 4.4))
    for i, (label, counts) in enumerate(series):
        sizes = np.array(sorted(counts))
        values = np.array([counts[s] for s in sizes])
        text = f"{label} ({values.sum():,} molecules)"
        if i == 0:
            ax.bar(sizes, values, width=0.8, color="#d5dde6", label=text)
        else:
            ax.step(sizes, values, where="mid", lw=1.6, color=_color(i), label=text)
    log_axis(ax)
    ax.set_xlabel("molecule size (number of atoms)")
    ax.set_ylabel("training molecules (log scale)")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.grid(axis="y", which="both", alpha=0.25)
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(title or "Training molecules per size, before and after undersampling "
                          "(Figure 5)")
    save_figure(fig, path)
