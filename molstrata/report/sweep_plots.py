"""Plots of a hyper-parameter sweep: optimisation history, parameter importances, Pareto front."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.ticker import MaxNLocator

from molstrata.report.plots import plt, save_figure


def optimization_history(numbers: Sequence[int], values: Sequence[Sequence[float]],
                         labels: Sequence[str], path: str | os.PathLike) -> None:
    """Each objective per trial (completed trials) with its best-so-far line; one panel per
    objective. values: (n_trials, n_objectives)."""
    values = np.asarray(values, dtype=float).reshape(len(numbers), len(labels))
    fig, axes = plt.subplots(len(labels), 1, figsize=(7, 3.2 * len(labels)), squeeze=False)
    for k, (ax, label) in enumerate(zip(axes[:, 0], labels)):
        ax.plot(numbers, values[:, k], "o", color="#3a6ea5", label="trial")
        ax.step(numbers, np.minimum.accumulate(values[:, k]), where="post", color="#c0392b",
                label="best so far")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    axes[-1, 0].set_xlabel("trial")
    axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].set_title("Optimisation history (validation split)")
    save_figure(fig, path)


def param_importances(importances: Mapping[str, Mapping[str, float]],
                      path: str | os.PathLike) -> None:
    """Horizontal bars of each parameter's importance, one group per objective.
    importances: {objective label: {parameter: importance, summing to 1}}."""
    params = sorted({p for imp in importances.values() for p in imp},
                    key=lambda p: -max(imp.get(p, 0.0) for imp in importances.values()))
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(params) * len(importances) + 1.6))
    height = 0.8 / len(importances)
    y = np.arange(len(params))[::-1]
    for k, (label, imp) in enumerate(importances.items()):
        ax.barh(y + (k - (len(importances) - 1) / 2) * height, [imp.get(p, 0.0) for p in params],
                height=height, label=label)
    ax.set_yticks(y, params)
    ax.set_xlabel("importance (PED-ANOVA, Optuna; sums to 1 per objective)")
    ax.set_title("Hyper-parameter importances")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    save_figure(fig, path)


def pareto_front(numbers: Sequence[int], values: Sequence[Sequence[float]],
                 optimal: Sequence[bool], labels: Sequence[str], path: str | os.PathLike) -> None:
    """Two objectives of every completed trial; the Pareto-optimal ones joined and labelled."""
    values = np.asarray(values, dtype=float).reshape(len(numbers), 2)
    optimal = np.asarray(optimal, dtype=bool)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    ax.scatter(values[~optimal, 0], values[~optimal, 1], color="#9bb7d4", label="trial")
    front = values[optimal]
    order = np.argsort(front[:, 0])
    ax.step(front[order, 0], front[order, 1], where="post", color="#c0392b", lw=1)
    ax.scatter(front[:, 0], front[:, 1], color="#c0392b", label="Pareto-optimal", zorder=3)
    for n, (x, y) in zip(np.asarray(numbers)[optimal], front):
        ax.annotate(str(n), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title("Pareto front (validation split; labels: trial numbers)")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    save_figure(fig, path)
