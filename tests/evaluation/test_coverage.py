"""Coverage of molstrata's intervals, checked by simulation: a nominal 95 % interval of the
difference between two arms' MAE covers the true difference at least 93 % of the time, with
k = 2, 3 and 5 training seeds per arm, for null and non-null differences, when the training
seed's noise dominates and when the test molecules' noise does. The percentile bootstrap that
also resamples seeds does not (it is kept for the learning curves only). A stratum's own
interval is given from MIN_INTERVAL_COUNT molecules, where its bootstrap-t holds its level."""

from __future__ import annotations

import numpy as np
import pytest

from molstrata.evaluation.bootstrap import (
    mae_difference,
    resampled_seeds_bootstrap,
    two_level_interval,
)
from molstrata.evaluation.metrics import MIN_INTERVAL_COUNT, summarize

N_MOLECULES = 200
REPEATS = 1000
NOISE = {"seed": (0.05, 2.0), "molecule": (0.002, 15.0), "shared": (0.05, 2.0)}
"""Noise kind -> (relative seed-to-seed sd of a model's errors, molecule noise sd in meV);
"shared": seed r of both arms shares 90 % of its effect's variance (the same initialisation,
batch order and data draw), judged with paired_seeds."""
SHARED = 0.9


def _arm(difficulty: np.ndarray, k: int, kind: str, shift: float,
         rng: np.random.Generator, common: np.ndarray | None = None) -> np.ndarray:
    """(k, n) absolute errors: every molecule's shared difficulty, scaled by each seed's own
    factor (training noise; `common`, (k, 1) standard normals, the part seed r shares with the
    other arm's seed r) and by 1 + shift (the arm's effect), plus per-molecule noise."""
    seed_sd, molecule_sd = NOISE[kind]
    own = rng.normal(0.0, 1.0, size=(k, 1))
    if common is not None:
        own = np.sqrt(SHARED) * common + np.sqrt(1 - SHARED) * own
    factor = 1 + seed_sd * own
    return np.abs(difficulty * factor * (1 + shift)
                  + rng.normal(0.0, molecule_sd, size=(k, len(difficulty))))


def _true_difference(kind: str, shift: float) -> float:
    """The expected MAE difference, from one large simulated population with the same seed
    factors and molecule noise in both arms (common random numbers: the arms differ by the
    shift alone, so the Monte Carlo error is far below the intervals' widths)."""
    if shift == 0.0:
        return 0.0
    rng = np.random.default_rng(99)
    seed_sd, molecule_sd = NOISE[kind]
    difficulty = rng.exponential(20.0, 20_000) + 5.0
    factor = 1 + seed_sd * rng.normal(0.0, 1.0, size=(400, 1))
    noise = rng.normal(0.0, molecule_sd, size=(400, len(difficulty)))
    return float(np.abs(difficulty * factor * (1 + shift) + noise).mean()
                 - np.abs(difficulty * factor + noise).mean())


def _coverage(k: int, kind: str, shift: float, method: str) -> float:
    rng = np.random.default_rng([k, len(kind), int(1000 * shift)])
    truth = _true_difference(kind, shift)
    hits = 0
    for _ in range(REPEATS):
        difficulty = rng.exponential(20.0, N_MOLECULES) + 5.0
        common = rng.normal(0.0, 1.0, size=(k, 1)) if kind == "shared" else None
        a = _arm(difficulty, k, kind, 0.0, rng, common)
        b = _arm(difficulty, k, kind, shift, rng, common)
        if method == "two_level":
            low, high = two_level_interval([b, a], mae_difference, rng, n_bootstrap=200,
                                           paired_seeds=kind == "shared").bounds
        else:
            low, high = resampled_seeds_bootstrap([b, a], mae_difference, rng, n_bootstrap=200)
        hits += bool(low <= truth <= high)
    return hits / REPEATS


@pytest.mark.parametrize("kind", ["seed", "molecule", "shared"])
@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("shift", [0.0, 0.05])
def test_a_nominal_95_percent_interval_covers_at_least_93_percent(k, kind, shift):
    assert _coverage(k, kind, shift, "two_level") >= 0.93


def test_resampling_two_or_three_seeds_under_covers():
    """The reason for the t quantile: the seeds' own bootstrap sees no wider spread than two
    or three seeds showed (0.65 and 0.80 in the issue's simulation)."""
    assert _coverage(2, "seed", 0.0, "resampled") < 0.8
    assert _coverage(3, "seed", 0.0, "resampled") < 0.9


def test_paired_seeds_give_narrower_intervals_when_seeds_share_their_effect():
    rng = np.random.default_rng(3)
    difficulty = rng.exponential(20.0, N_MOLECULES) + 5.0
    common = rng.normal(0.0, 1.0, size=(5, 1))
    a = _arm(difficulty, 5, "shared", 0.0, rng, common)
    b = _arm(difficulty, 5, "shared", 0.05, rng, common)
    paired = two_level_interval([b, a], mae_difference, rng, paired_seeds=True)
    apart = two_level_interval([b, a], mae_difference, rng)
    assert paired.high - paired.low < 0.6 * (apart.high - apart.low)


def _one_stratum_coverage(n: int, errors: str) -> float:
    """How often a stratum of n molecules' 95 % MAE interval covers its true MAE."""
    rng = np.random.default_rng([n, len(errors)])
    draw, truth = {"normal": (rng.normal, np.sqrt(2 / np.pi)), "laplace": (rng.laplace, 1.0),
                   "exponential": (rng.exponential, 1.0)}[errors]
    hits = 0
    for _ in range(REPEATS):
        s = summarize(draw(size=n), rng, n_bootstrap=300, min_count=1)
        hits += bool(s.mae_ci_low <= truth <= s.mae_ci_high)
    return hits / REPEATS


def _percentile_coverage(n: int, errors: str) -> float:
    """The same with the percentile bootstrap, which stratum intervals used before."""
    rng = np.random.default_rng([n, len(errors), 1])
    draw, truth = {"normal": (rng.normal, np.sqrt(2 / np.pi)), "laplace": (rng.laplace, 1.0),
                   "exponential": (rng.exponential, 1.0)}[errors]
    hits = 0
    for _ in range(REPEATS):
        absolute = np.abs(draw(size=n))
        means = absolute[rng.integers(0, n, size=(300, n))].mean(axis=1)
        low, high = np.percentile(means, [2.5, 97.5])
        hits += bool(low <= truth <= high)
    return hits / REPEATS


@pytest.mark.parametrize("errors", ["normal", "laplace", "exponential"])
def test_a_stratum_of_ten_molecules_gets_an_interval_that_holds_its_level(errors):
    """From MIN_INTERVAL_COUNT molecules on a stratum gets an interval, the bootstrap-t, which
    covers at least 92 % at a nominal 95 % (94-95 % at 2,000 repeats); the percentile
    bootstrap it replaced covered under 91 %. Below MIN_INTERVAL_COUNT a stratum gets its
    figures and no interval: at three molecules even the bootstrap-t is unreliable."""
    assert _one_stratum_coverage(MIN_INTERVAL_COUNT, errors) >= 0.92
    assert _percentile_coverage(MIN_INTERVAL_COUNT, errors) < 0.91
    small = summarize(np.ones(MIN_INTERVAL_COUNT - 1), np.random.default_rng(0))
    assert small.mae == 1.0 and np.isnan([small.mae_ci_low, small.mae_ci_high]).all()
