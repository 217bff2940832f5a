"""Coverage of molstrata's intervals, checked by simulation: a nominal 95 % interval of the
difference between two arms' MAE covers the true difference at least 93 % of the time, with
k = 2, 3 and 5 training seeds per arm, for null and non-null differences, when the training
seed's noise dominates and when the test molecules' noise does. The percentile bootstrap that
also resamples seeds does not (it is kept for the learning curves only)."""

from __future__ import annotations

import numpy as np
import pytest

from molstrata.evaluation.bootstrap import (
    mae_difference,
    resampled_seeds_bootstrap,
    two_level_interval,
)

N_MOLECULES = 200
REPEATS = 500
NOISE = {"seed": (0.05, 2.0), "molecule": (0.002, 15.0)}
"""Noise kind -> (relative seed-to-seed sd of a model's errors, molecule noise sd in meV)."""


def _arm(difficulty: np.ndarray, k: int, kind: str, shift: float,
         rng: np.random.Generator) -> np.ndarray:
    """(k, n) absolute errors: every molecule's shared difficulty, scaled by each seed's own
    factor (training noise) and by 1 + shift (the arm's effect), plus per-molecule noise."""
    seed_sd, molecule_sd = NOISE[kind]
    factor = 1 + rng.normal(0.0, seed_sd, size=(k, 1))
    return np.abs(difficulty * factor * (1 + shift)
                  + rng.normal(0.0, molecule_sd, size=(k, len(difficulty))))


def _true_difference(kind: str, shift: float) -> float:
    """The expected MAE difference, from one very large simulated population."""
    if shift == 0.0:
        return 0.0
    rng = np.random.default_rng(99)
    difficulty = rng.exponential(20.0, 200_000) + 5.0
    return float(_arm(difficulty, 40, kind, shift, rng).mean()
                 - _arm(difficulty, 40, kind, 0.0, rng).mean())


def _coverage(k: int, kind: str, shift: float, method: str) -> float:
    rng = np.random.default_rng([k, len(kind), int(1000 * shift)])
    truth = _true_difference(kind, shift)
    hits = 0
    for _ in range(REPEATS):
        difficulty = rng.exponential(20.0, N_MOLECULES) + 5.0
        a = _arm(difficulty, k, kind, 0.0, rng)
        b = _arm(difficulty, k, kind, shift, rng)
        if method == "two_level":
            low, high = two_level_interval([b, a], mae_difference, rng, n_bootstrap=200).bounds
        else:
            low, high = resampled_seeds_bootstrap([b, a], mae_difference, rng, n_bootstrap=200)
        hits += bool(low <= truth <= high)
    return hits / REPEATS


@pytest.mark.parametrize("kind", ["seed", "molecule"])
@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("shift", [0.0, 0.05])
def test_a_nominal_95_percent_interval_covers_at_least_93_percent(k, kind, shift):
    assert _coverage(k, kind, shift, "two_level") >= 0.93


def test_resampling_two_or_three_seeds_under_covers():
    """The reason for the t quantile: the seeds' own bootstrap sees no wider spread than two
    or three seeds showed (0.65 and 0.80 in the issue's simulation)."""
    assert _coverage(2, "seed", 0.0, "resampled") < 0.8
    assert _coverage(3, "seed", 0.0, "resampled") < 0.9
