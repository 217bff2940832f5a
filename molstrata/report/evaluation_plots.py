"""Plots of a model's errors (the study's Figures 3, 4, A3, A4, and predicted vs true) as PNGs.

Every plot that shows strata takes one `StratifiedReport` or a list of (label, report) pairs,
so runs can be compared on one axis. Units come from the report or from the column names.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from matplotlib import ticker

from molstrata.errors import MolstrataError
from molstrata.evaluation.stratified import Predictions, StratifiedReport
from molstrata.report.plots import log_axis, plt, save_figure
from molstrata.tables import read_csv_rows
from molstrata.units import error_unit

Reports = StratifiedReport | Sequence[tuple[str, StratifiedReport]]
Rows = Sequence[Mapping[str, object]]
CurveSource = str | os.PathLike | Rows | Sequence[tuple[str, "str | os.PathLike | Rows"]]

COLORS = ["#1f5a96", "#c0392b", "#27864a", "#8e44ad", "#d68910", "#17a2b8", "#6d4c41"]
HEXBIN_ABOVE = 2000
"""predicted_vs_true draws a hexbin density instead of points above this many molecules."""


# ---- strata ------------------------------------------------------------------------------


def error_by_size(reports: Reports, path: str | os.PathLike, *, title: str | None = None,
                  seeds: Sequence[Sequence[StratifiedReport]] | None = None) -> None:
    """MAE per size with confidence intervals on a log axis, the training set's size histogram
    drawn behind it (the study's Figure 3); the overall MAE of each run as a dashed line.
    seeds: for each run, the reports of its training seeds (a replicated run's line is their
    mean), drawn as small dots around its line: the spread over seeds."""
    runs = _labelled(reports)
    factor, unit = _common_error_unit(runs)
    fig, ax = plt.subplots(figsize=(9, 4.8))
    behind = ax.twinx()
    ax.set_zorder(behind.get_zorder() + 1)
    ax.patch.set_visible(False)
    first_training = runs[0][1].training
    for i, (label, report) in enumerate(runs):
        counts = report.training.sizes
        if report.training.known and i == 0:
            behind.bar(list(counts), list(counts.values()), width=0.8, color="#d5dde6",
                       label=f"training molecules{_suffix(label, len(runs))}")
        elif report.training.known and counts != first_training.sizes:
            sizes = np.array(sorted(counts))
            behind.step(sizes, [counts[s] for s in sizes], where="mid", color=_color(i),
                        alpha=0.5, lw=1, label=f"training molecules ({label})")
        if not report.sizes:
            continue
        offset = (i - (len(runs) - 1) / 2) * 0.12
        x = np.array([s.key for s in report.sizes], dtype=float) + offset
        mae, low, high = _mae_with_interval(report.sizes, factor)
        ax.errorbar(x, mae, yerr=[mae - low, high - mae], fmt="o-", ms=4, lw=1.2, capsize=3,
                    color=_color(i), label=f"MAE per size{_suffix(label, len(runs))}")
        members = seeds[i] if seeds and len(seeds[i]) > 1 else []
        for k, member in enumerate(members):
            points = [(s.key + offset, s.summary.mae * factor) for s in member.sizes]
            ax.plot(*zip(*points), "_", ms=9, mew=1.6, color=_color(i), alpha=0.8,
                    label=f"each training seed{_suffix(label, len(runs))}" if k == 0 else None)
        ax.axhline(report.overall.summary.mae * factor, color=_color(i), ls="--", lw=0.9,
                   label=f"overall MAE{_suffix(label, len(runs))}")
    _log_axis(ax)
    ax.set_xlabel("molecule size (number of atoms)")
    ax.set_ylabel(f"MAE ({unit}), {_level(runs)} CI")
    behind.set_ylabel("training molecules" if first_training.known else "")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.grid(axis="y", which="both", alpha=0.25)
    _legend(ax, behind)
    ax.set_title(title or f"{runs[0][1].target}: error per molecule size (Figure 3)")
    save_figure(fig, path)


def error_by_element(
    reports: Reports, path: str | os.PathLike, *, title: str | None = None,
    seeds: Sequence[Sequence[StratifiedReport]] | None = None,
) -> None:
    """MAE of the molecules containing each element, with confidence intervals; each element's
    share of the training set and the molecules evaluated are written under it (Figure 4).
    seeds: as error_by_size's, each seed's MAE a small dot on its run's bar."""
    runs = _labelled(reports)
    factor, unit = _common_error_unit(runs)
    symbols = list(dict.fromkeys(s.key for _, r in runs for s in r.elements))
    fig, ax = plt.subplots(figsize=(max(5.5, 1.3 * len(symbols) + 2), 4.6))
    width = 0.8 / len(runs)
    for i, (label, report) in enumerate(runs):
        by_symbol = {s.key: s for s in report.elements}
        present = [k for k, sym in enumerate(symbols) if sym in by_symbol]
        strata = [by_symbol[symbols[k]] for k in present]
        mae, low, high = _mae_with_interval(strata, factor)
        x = np.array(present) + (i - (len(runs) - 1) / 2) * width
        ax.bar(x, mae, width=width * 0.92, color=_color(i), alpha=0.85,
               yerr=[mae - low, high - mae], capsize=3, ecolor="black", error_kw={"lw": 0.9},
               label=f"MAE{_suffix(label, len(runs))}")
        members = seeds[i] if seeds and len(seeds[i]) > 1 else []
        for k, member in enumerate(members):
            own = {s.key: s.summary.mae * factor for s in member.elements}
            points = [(xk, own[symbols[j]]) for xk, j in zip(x, present) if symbols[j] in own]
            ax.plot(*zip(*points), "o", ms=3, color="black", alpha=0.6, mfc="white",
                    label=f"each training seed{_suffix(label, len(runs))}" if k == 0 else None)
        ax.axhline(report.overall.summary.mae * factor, color=_color(i), ls="--", lw=0.9,
                   label=f"overall MAE{_suffix(label, len(runs))}")
    first = {s.key: s for s in runs[0][1].elements}
    ticks = []
    for sym in symbols:
        s = first.get(sym)
        share = "" if s is None or math.isnan(s.train_share) else \
            f"\n{100 * s.train_share:.3g} % of train"
        ticks.append(sym if s is None else f"{sym}{share}\n{s.count:,} evaluated")
    ax.set_xticks(range(len(symbols)), ticks, fontsize=8)
    ax.set_ylabel(f"MAE ({unit}), {_level(runs)} CI")
    ax.set_xlabel("molecules containing the element")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    _legend(ax, below=0.22)
    ax.set_title(title or f"{runs[0][1].target}: error per element (Figure 4)")
    save_figure(fig, path)


# ---- molecules ---------------------------------------------------------------------------


def predicted_vs_true(
    predictions: Predictions, path: str | os.PathLike, *, title: str | None = None
) -> None:
    """Predicted against true values with the diagonal (a hexbin density for many molecules),
    and beside it the error against the true value, with MAE and RMSE written in."""
    if len(predictions) == 0:
        raise MolstrataError("no predictions to plot; give at least one molecule")
    factor, unit = error_unit(predictions.unit)
    true, predicted = predictions.true, predictions.predicted
    errors = predictions.errors * factor
    fig, (ax, ax_err) = plt.subplots(1, 2, figsize=(11, 4.8),
                                     gridspec_kw={"width_ratios": [1, 1.15]})
    dense = len(predictions) > HEXBIN_ABOVE
    for axis, y in ((ax, predicted), (ax_err, errors)):
        if dense:
            image = axis.hexbin(true, y, gridsize=70, bins="log", mincnt=1, cmap="viridis")
        else:
            axis.scatter(true, y, s=9, alpha=0.7, color=COLORS[0], lw=0)
    if dense:
        fig.colorbar(image, ax=ax_err, label="molecules per cell", pad=0.01)
    low, high = min(true.min(), predicted.min()), max(true.max(), predicted.max())
    pad = 0.02 * (high - low or 1.0)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], color="#c0392b", lw=1,
            label="predicted = true")
    ax_err.axhline(0, color="#c0392b", lw=1)
    target, t_unit = predictions.target, predictions.unit
    ax.set_xlabel(f"true {target} ({t_unit})")
    ax.set_ylabel(f"predicted {target} ({t_unit})")
    ax.legend(frameon=False, loc="lower right")
    ax_err.set_xlabel(f"true {target} ({t_unit})")
    ax_err.set_ylabel(f"predicted - true ({unit})")
    mae, rmse = float(np.abs(errors).mean()), float(np.sqrt(np.mean(errors**2)))
    ax.text(0.03, 0.97, f"{len(predictions):,} molecules\nMAE {mae:.4g} {unit}\n"
            f"RMSE {rmse:.4g} {unit}", transform=ax.transAxes, va="top", fontsize=9,
            bbox={"boxstyle": "round", "fc": "white", "ec": "#cccccc"})
    for axis in (ax, ax_err):
        axis.grid(alpha=0.25)
    fig.suptitle(title or f"{target}: predicted vs true")
    save_figure(fig, path)


# ---- learning curves ---------------------------------------------------------------------


def read_learning_curve(path: str | os.PathLike) -> list[dict[str, float]]:
    """The rows of a learning_curve.csv as floats (empty cells as NaN)."""
    path = Path(path)
    rows = read_csv_rows(path, "give a run's learning_curve.csv")
    try:
        return [{k: _float(v) for k, v in row.items() if k is not None} for row in rows]
    except ValueError as error:
        raise MolstrataError(f"{path} holds a value that is not a number ({error})") from None


def learning_curve(
    source: CurveSource, path: str | os.PathLike, *, title: str | None = None
) -> None:
    """Training loss with its band (mean of the 5 lowest to mean of the 5 highest batch losses
    of each logging step), validation loss, and validation MAE, on log axes (Figures A3, A4).

    `source` is a learning_curve.csv, its rows, or a list of (label, csv or rows) to overlay
    runs. Columns are found by prefix (`train_loss_`, `val_loss_`, `val_mae_`, `band_low_`,
    `band_high_`) and their unit is the suffix (`train_loss_eV2` is in eV²).
    """
    runs = _curve_runs(source)
    fig, (ax_loss, ax_mae) = plt.subplots(1, 2, figsize=(11.5, 4.4))
    loss_unit = mae_unit = None
    for i, (label, rows) in enumerate(runs):
        if not rows:
            raise MolstrataError(f"learning curve {label or ''} has no rows; train for an epoch")
        name = label or "run"
        train, unit = _column(rows, "train_loss_", name, required=True)
        loss_unit = _same_unit(loss_unit, unit, "loss")
        epoch = _values(rows, "epoch", name)
        color, suffix = _color(i), _suffix(label, len(runs))
        ax_loss.plot(epoch, train, color=color, lw=1.4, label=f"train loss{suffix}")
        low, _ = _column(rows, "band_low_", name)
        high, _ = _column(rows, "band_high_", name)
        if low is not None and high is not None:
            ax_loss.fill_between(epoch, low, high, color=color, alpha=0.18, lw=0,
                                 label=f"5 lowest / 5 highest batches{suffix}")
        val, unit = _column(rows, "val_loss_", name)
        if val is not None:
            loss_unit = _same_unit(loss_unit, unit, "loss")
            ax_loss.plot(epoch, val, color=color, lw=1.2, ls="--", marker="o", ms=3,
                         label=f"validation loss{suffix}")
        mae, unit = _column(rows, "val_mae_", name)
        if mae is not None:
            mae_unit = _same_unit(mae_unit, unit, "MAE")
            ax_mae.plot(epoch, mae, color=color, lw=1.2, marker="o", ms=3,
                        label=f"validation MAE{suffix}")
    ax_loss.set_ylabel(f"loss, MSE ({_pretty(loss_unit)})")
    ax_mae.set_ylabel(f"validation MAE ({_pretty(mae_unit)})" if mae_unit else "validation MAE")
    for axis in (ax_loss, ax_mae):
        _log_axis(axis)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        axis.grid(which="both", alpha=0.25)
        if axis.has_data():
            axis.legend(frameon=False, fontsize=8)
    fig.suptitle(title or "Learning curve")
    save_figure(fig, path)


# ---- an evaluation's figures -------------------------------------------------------------


class EvaluatedRun(Protocol):
    """What `draw_evaluation` draws: `molstrata.evaluation.evaluate.Evaluation` and
    `molstrata.evaluation.results.RunResult` both are one."""

    @property
    def report(self) -> StratifiedReport: ...

    @property
    def predictions(self) -> Predictions: ...

    @property
    def curve(self) -> Path | None: ...


EVALUATION_FIGURES = ("error_by_size.png", "error_by_element.png", "predicted_vs_true.png")
"""The figures of every evaluation; learning_curve.png joins them where the run has a curve."""


def draw_evaluation(evaluation: EvaluatedRun, out_dir: str | os.PathLike) -> list[Path]:
    """Draw an evaluation's figures into `out_dir` (its error per size and per element,
    predicted vs true, and the run's learning curve); return their paths."""
    out = Path(out_dir)
    files = [out / name for name in EVALUATION_FIGURES]
    seeds = [[m.report for m in getattr(evaluation, "replicates", ())]]
    error_by_size(evaluation.report, files[0], seeds=seeds)
    error_by_element(evaluation.report, files[1], seeds=seeds)
    predicted_vs_true(evaluation.predictions, files[2])
    members = [m for m in getattr(evaluation, "replicates", ()) if m.curve is not None]
    if len(members) > 1:  # every training seed's curve
        files.append(out / "learning_curve.png")
        learning_curve([(f"seed {m.config.runtime.seed}", m.curve) for m in members], files[-1])
    elif evaluation.curve is not None:
        files.append(out / "learning_curve.png")
        learning_curve(evaluation.curve, files[-1])
    return files


def _curve_runs(source: CurveSource) -> list[tuple[str, list[Mapping[str, object]]]]:
    if isinstance(source, str | os.PathLike):
        return [("", read_learning_curve(source))]
    items = list(source)
    if items and isinstance(items[0], tuple):
        return [
            (str(label), read_learning_curve(x) if isinstance(x, str | os.PathLike) else list(x))
            for label, x in items
        ]
    return [("", items)]


def _column(
    rows: Rows, prefix: str, run: str, required: bool = False
) -> tuple[np.ndarray | None, str | None]:
    """(values, unit) of the one column whose name starts with `prefix`, unit = the rest."""
    names = [k for k in rows[0] if k.startswith(prefix)]
    if len(names) > 1:
        raise MolstrataError(f"{run}: several columns start with {prefix!r} ({names}); keep one")
    if not names:
        if required:
            raise MolstrataError(
                f"{run}: no column starting with {prefix!r} (found {list(rows[0])}); give a "
                "learning_curve.csv written by molstrata training"
            )
        return None, None
    return _values(rows, names[0], run), names[0][len(prefix):]


def _values(rows: Rows, name: str, run: str) -> np.ndarray:
    try:
        return np.array([_float(row.get(name)) for row in rows], dtype=float)
    except ValueError as error:
        raise MolstrataError(f"{run}: column {name!r} holds a non-number ({error})") from None


def _float(value: object) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    return float(value)


def _same_unit(known: str | None, unit: str | None, what: str) -> str | None:
    if known is not None and unit is not None and unit != known:
        raise MolstrataError(
            f"the runs give the {what} in different units ({known}, {unit}); compare runs of "
            "the same target unit"
        )
    return known or unit


def _pretty(unit: str | None) -> str:
    """A unit token for an axis label: 'eV2' -> 'eV²', 'kcal_per_mol' -> 'kcal/mol'."""
    if unit is None:
        return ""
    unit = unit.replace("_per_", "/")
    squared = re.fullmatch(r"(.*)_squared", unit)
    if squared:
        return f"({squared[1]})²"
    return re.sub(r"(?<=[A-Za-z])2$", "²", unit)


# ---- shared ------------------------------------------------------------------------------


def _labelled(reports: Reports) -> list[tuple[str, StratifiedReport]]:
    runs = [("", reports)] if isinstance(reports, StratifiedReport) else list(reports)
    if not runs:
        raise MolstrataError("no reports to plot; give at least one")
    return runs


def _common_error_unit(runs: list[tuple[str, StratifiedReport]]) -> tuple[float, str]:
    units = {r.unit for _, r in runs}
    if len(units) > 1:
        raise MolstrataError(
            f"the reports are in different units ({', '.join(sorted(units))}); compare reports "
            "of the same target"
        )
    return error_unit(runs[0][1].unit)


def _mae_with_interval(strata, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mae = np.array([s.summary.mae for s in strata]) * factor
    low = np.array([s.summary.mae_ci_low for s in strata]) * factor
    high = np.array([s.summary.mae_ci_high for s in strata]) * factor
    return mae, low, high


def _level(runs: list[tuple[str, StratifiedReport]]) -> str:
    return f"{100 * runs[0][1].confidence:g} %"


def _legend(*axes, below: float = 0.14) -> None:
    """One legend for the entries of all `axes`, below the plot where it hides no data."""
    handles, labels = [], []
    for axis in axes:
        h, lab = axis.get_legend_handles_labels()
        handles += h
        labels += lab
    axes[0].legend(handles, labels, frameon=False, fontsize=8, loc="upper center",
                   bbox_to_anchor=(0.5, -below), ncol=min(3, len(labels)))


def _log_axis(axis) -> None:
    """A log y axis labelled with plain numbers, major and minor ticks alike (`log_axis`)."""
    log_axis(axis)


def _suffix(label: str, n_runs: int) -> str:
    """' (label)' after a legend entry where runs are compared."""
    return f" ({label})" if label and n_runs > 1 else ""


def _color(i: int) -> str:
    return COLORS[i % len(COLORS)]
