"""Plots of the per-stratum data value as PNGs: each thinned stratum's own-data curve (its test
MAE against its own training molecules, the rest held fixed) with the fitted line and its
band, and the cross effects as a heat map (thinned stratum x evaluated stratum).

The inputs are plain arrays, so that these plots do not depend on how the values were computed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from molstrata.report.evaluation_plots import COLORS
from molstrata.report.plots import plt, save_figure

PANEL_COLUMNS = 4
SEED_MARK = {"marker": "o", "ms": 3, "mfc": "white", "mew": 0.8, "ls": "none"}
KEY_COLOR = "#555555"


@dataclass(frozen=True, eq=False)
class OwnPanel:
    """One thinned stratum: n (m,) its own training molecules per arm, mae (m,) with its 95 %
    interval low, high (m,), seeds (k, m) each seed's MAE (NaN where absent), and the fitted
    line on `grid` (g,) with its band line_low, line_high; title: its label and slope."""

    title: str
    n: np.ndarray
    mae: np.ndarray
    low: np.ndarray
    high: np.ndarray
    seeds: np.ndarray | None
    grid: np.ndarray
    line: np.ndarray
    line_low: np.ndarray
    line_high: np.ndarray


def own_data_curves(panels: Sequence[OwnPanel], path: str | os.PathLike, *, unit: str,
                    title: str) -> None:
    """One panel per thinned stratum: its MAE against its own training molecules (linear
    axes, so that zero own molecules, the pure-transfer point, is on the plot), each seed a
    small mark, the least-squares line and its 95 % band."""
    if not panels:
        raise ValueError("no own-data curves to plot: give at least one panel")
    columns = min(PANEL_COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, grid = plt.subplots(rows, columns, figsize=(3.5 * columns, 2.9 * rows + 0.9),
                             squeeze=False, layout="constrained")
    for ax, panel in zip(grid.flat, panels):
        color = COLORS[0]
        ax.fill_between(panel.grid, panel.line_low, panel.line_high, color=color, alpha=0.15,
                        lw=0)
        ax.plot(panel.grid, panel.line, color=color, lw=1.4)
        bars = np.stack([panel.mae - panel.low, panel.high - panel.mae])
        ax.errorbar(panel.n, panel.mae, yerr=np.where(np.isfinite(bars), bars, 0.0), fmt="o",
                    ms=4.5, lw=1.2, capsize=3, color=color, zorder=3)
        if panel.seeds is not None:
            x = np.broadcast_to(panel.n, panel.seeds.shape)
            ax.plot(x.ravel(), panel.seeds.ravel(), color=color, zorder=4, **SEED_MARK)
        if panel.n[0] == 0:
            ax.annotate("no own molecule:\npure transfer", (0, panel.mae[0]),
                        xytext=(6, 0), textcoords="offset points", fontsize=7, va="center")
        ax.set_title(panel.title, fontsize=8.5)
        ax.set_xlabel("own training molecules", fontsize=8.5)
        ax.grid(alpha=0.25)
    for ax in grid.flat[len(panels):]:
        ax.set_visible(False)
    fig.supylabel(f"test MAE of the stratum ({unit}): mean over seeds, 95 % interval",
                  fontsize=9.5)
    key = [Line2D([], [], color=KEY_COLOR, label="each training seed", **SEED_MARK),
           Line2D([], [], color=KEY_COLOR, lw=1.4, label="least-squares line (own-data slope)"),
           Patch(color=KEY_COLOR, alpha=0.2, lw=0, label="95 % band of the line")]
    fig.legend(handles=key, frameon=False, fontsize=8, loc="outside lower center", ncol=3)
    fig.suptitle(title)
    save_figure(fig, path)


def cross_effect_map(rows: Sequence[str], columns: Sequence[str], change: np.ndarray,
                     low: np.ndarray, high: np.ndarray, path: str | os.PathLike, *, unit: str,
                     title: str) -> None:
    """The change of each evaluated stratum's MAE (columns) when a stratum (rows) is thinned
    most, coloured on a scale centred at zero; every cell's value written in it, bold with a *
    where its 95 % interval excludes zero, blank (grey) where it is not defined."""
    change, low, high = (np.asarray(a, dtype=float) for a in (change, low, high))
    if change.shape != (len(rows), len(columns)) or low.shape != change.shape or \
            high.shape != change.shape:
        raise ValueError(f"change, low and high must be ({len(rows)}, {len(columns)}): one "
                         "row per thinned stratum, one column per evaluated stratum")
    finite = change[np.isfinite(change)]
    bound = max(float(np.abs(finite).max()) if len(finite) else 1.0, 1e-9)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.62 * len(columns) + 2.5),
                                    max(2.4, 0.5 * len(rows) + 1.6)))
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(change), cmap=cmap, aspect="auto",
                      norm=TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound))
    for i in range(len(rows)):
        for j in range(len(columns)):
            if not np.isfinite(change[i, j]):
                continue
            significant = low[i, j] > 0 or high[i, j] < 0
            ax.text(j, i, f"{change[i, j]:+.1f}" + ("*" if significant else ""), ha="center",
                    va="center", fontsize=7, fontweight="bold" if significant else "normal",
                    color="white" if abs(change[i, j]) > 0.6 * bound else "black")
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), [f"{r} thinned" for r in rows], fontsize=8)
    ax.set_xlabel("evaluated stratum (its test molecules outside the thinned one; the thinned "
                  "stratum itself on its own column)", fontsize=8)
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label(f"change of MAE ({unit})", fontsize=8)
    ax.set_title(title, fontsize=10)
    save_figure(fig, path)
