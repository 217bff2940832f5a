"""Plots of the dataset's imbalance (the study's Figures 1, 5, A5 and Table 1), as PNG files,
and what every plot shares: saving a figure, log axes."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import math  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402

from molstrata._files import atomic_open  # noqa: E402


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> None:
    """Save a figure as PNG atomically and release it."""
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=130, bbox_inches="tight")
    plt.close(fig)


LABELLED_MINOR_TICKS = {0.5: (2, 3, 4, 5, 6, 7, 8, 9), 2.0: (2, 3, 5)}
"""Minor ticks of a log axis that get a label: all of them over at most half a decade, those of
2, 3 and 5 times a power of ten over at most 2 decades, none over a wider range."""


def plain_number(value: float, _position: object = None) -> str:
    """A tick label as a plain number: 0.06, 0.1, 20, 300 (1e-05 and 1e+06 beyond)."""
    return f"{value:g}"


def log_axis(ax: plt.Axes, which: str = "y") -> None:
    """A log scale on the `which` axis ("x" or "y"), its major and minor ticks labelled alike
    as plain numbers (0.06, 0.1, 0.2), minor ones only where the range leaves room."""
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    axis = ax.yaxis if which == "y" else ax.xaxis

    def minor(value: float, _position: object = None) -> str:
        low, high = sorted(abs(v) for v in axis.get_view_interval())
        decades = math.log10(high / low) if low > 0 else math.inf
        labelled = next((c for span, c in LABELLED_MINOR_TICKS.items() if decades <= span), ())
        coefficient = round(value / 10 ** math.floor(math.log10(value) + 1e-9))
        return plain_number(value) if coefficient in labelled else ""

    axis.set_major_formatter(ticker.FuncFormatter(plain_number))
    axis.set_minor_formatter(ticker.FuncFormatter(minor))
    ax.tick_params(axis=which, which="minor", labelsize=7)


def size_histogram(
    sizes: np.ndarray,
    counts: np.ndarray,
    path: str | os.PathLike,
    title: str,
    capped: np.ndarray | None = None,
    cap: int | None = None,
) -> None:
    """Molecules per size (Figure 1); with `capped`, the undersampled counts over it (Figure 5)."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    total = counts.sum()
    label = f"all ({total:,} molecules)"
    ax.bar(sizes, counts, color="#9bb7d4" if capped is not None else "#3a6ea5", label=label)
    if capped is not None:
        ax.bar(sizes, capped, width=0.55, color="#c0392b",
               label=f"cap {cap:,} per size ({capped.sum():,} molecules)")
        ax.axhline(cap, color="#c0392b", lw=0.8, ls="--")
    ax.set_xlabel("molecule size (number of atoms)")
    ax.set_ylabel("molecules")
    ax.set_xticks(sizes[:: max(1, len(sizes) // 27)])
    share = ax.secondary_yaxis("right", functions=(lambda c: 100 * c / total,
                                                   lambda p: p * total / 100))
    share.set_ylabel("share of all molecules (%)")
    ax.set_title(title)
    ax.legend(frameon=False)
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


def element_frequency(
    symbols: Sequence[str], shares: np.ndarray, counts: np.ndarray, path: str | os.PathLike,
    title: str,
) -> None:
    """Share of molecules containing each element (the study's Table 1, drawn)."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    percent = 100 * np.asarray(shares)
    bars = ax.bar(symbols, percent, color="#3a6ea5")
    for bar, p, n in zip(bars, percent, counts):
        ax.annotate(f"{p:.3f} %\n({n:,})", (bar.get_x() + bar.get_width() / 2, p),
                    ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                    textcoords="offset points")
    ax.set_ylim(0, 118)
    ax.set_ylabel("molecules containing the element (%)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


def size_element_heatmap(
    sizes: np.ndarray, symbols: Sequence[str], share: np.ndarray, counts: np.ndarray,
    path: str | os.PathLike, title: str,
) -> None:
    """Share of the molecules of each size that contain each element (Figure A5)."""
    fig, ax = plt.subplots(figsize=(max(6, 0.38 * len(sizes) + 2), 0.5 * len(symbols) + 2.2))
    image = ax.imshow(100 * share.T, aspect="auto", cmap="viridis", vmin=0, vmax=100)
    ax.set_xticks(range(len(sizes)), [str(s) for s in sizes], fontsize=8)
    ax.set_yticks(range(len(symbols)), symbols)
    for i in range(len(sizes)):
        for j in range(len(symbols)):
            value = 100 * share[i, j]
            ax.text(i, j, f"{value:.0f}", ha="center", va="center", fontsize=6.5,
                    color="white" if value < 60 else "black")
    ax.set_xlabel("molecule size (number of atoms)")
    ax.set_ylabel("element")
    top = ax.secondary_xaxis("top")
    top.set_xlabel("molecules of that size", fontsize=8)
    top.set_xticks(range(len(sizes)), [f"{c}" for c in counts],
                                         fontsize=5.5, rotation=90)
    fig.colorbar(image, ax=ax, label="molecules of that size containing it (%)", pad=0.01)
    ax.set_title(title, pad=12)
    save_figure(fig, path)
