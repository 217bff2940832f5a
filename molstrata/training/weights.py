"""Per-molecule loss weights that favour large or rare sizes (STUDY.md section 4).

s: atoms in the molecule; f(s): share of the training set with that size; r: rate.
  size:              v(s) = 1 + r (s - s_min) / (s_max - s_min)
  size_frequency:    v(s) = 1 + r (s - s_min) / (s_max - s_min) (1 - f(s) / f_max)
  inverse_frequency: v(s) ∝ f(s)^(-alpha), 0 <= alpha <= 1
  none:              v(s) = 1
s_min, s_max and f come from the training set only; weights are normalised to mean 1 over it,
so r = 0 (or "none") is the plain loss.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Factors = Callable[[np.ndarray, np.ndarray, float, float], np.ndarray]


def _size_term(sizes: np.ndarray, train_sizes: np.ndarray) -> np.ndarray:
    s_min, s_max = train_sizes.min(), train_sizes.max()
    return (sizes - s_min) / (s_max - s_min) if s_max > s_min else np.zeros(len(sizes))


def _frequency(sizes: np.ndarray, train_sizes: np.ndarray) -> tuple[np.ndarray, float]:
    counts = np.bincount(train_sizes, minlength=max(sizes.max(), train_sizes.max()) + 1)
    share = counts / len(train_sizes)
    return share[sizes], share.max()


def _none(sizes, train_sizes, rate, alpha):
    return np.ones(len(sizes))


def _size(sizes, train_sizes, rate, alpha):
    return 1.0 + rate * _size_term(sizes, train_sizes)


def _size_frequency(sizes, train_sizes, rate, alpha):
    f, f_max = _frequency(sizes, train_sizes)
    return 1.0 + rate * _size_term(sizes, train_sizes) * (1.0 - f / f_max)


def _inverse_frequency(sizes, train_sizes, rate, alpha):
    f, _ = _frequency(sizes, train_sizes)
    return np.where(f > 0, np.maximum(f, 1e-300) ** -alpha, 0.0)


LOSS_WEIGHTS: dict[str, Factors] = {
    "none": _none,
    "size": _size,
    "size_frequency": _size_frequency,
    "inverse_frequency": _inverse_frequency,
}


def weight_factors(
    sizes: np.ndarray, train_sizes: np.ndarray, scheme: str, rate: float = 0.0, alpha: float = 1.0
) -> np.ndarray:
    """v(s) for molecules of `sizes`, normalised to mean 1 over the training set `train_sizes`."""
    sizes = np.asarray(sizes, dtype=np.int64)
    train_sizes = np.asarray(train_sizes, dtype=np.int64)
    factors = LOSS_WEIGHTS[scheme]
    norm = factors(train_sizes, train_sizes, rate, alpha).mean()
    return factors(sizes, train_sizes, rate, alpha) / norm
