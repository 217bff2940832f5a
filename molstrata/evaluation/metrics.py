"""Error metrics of one group of molecules: MSE, MAE, RMSE with bootstrap confidence intervals,
the Spearman rank correlation the study's hypotheses 1 and 2 are tested with, and the units
errors are reported in. numpy only.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from molstrata.errors import MolstrataError
from molstrata.evaluation.bootstrap import studentized_mean_interval, two_level_bootstrap
from molstrata.units import canonical_unit, error_unit, squared_unit, unit_key

EXACT_MAX_N = 8
"""Up to this many pairs `spearman` enumerates all n! orderings; above it, it samples them."""

MIN_INTERVAL_COUNT = 10
"""Fewer molecules than this get no confidence interval, only their figures. A percentile
bootstrap over n molecules cannot see the spread it was not shown: in simulation its nominal
95 % interval of the MAE covered the true MAE 44-48 % of the time at n = 2, 77-84 % at n = 5,
and 87-88 % from n = 10 (normal and Laplace errors; tests/evaluation/test_coverage.py), and
one molecule's "333 - 333" claimed a precision nothing measured."""


# ---- units -------------------------------------------------------------------------------


def ci_key(confidence: float) -> str:
    """The name of a confidence interval in keys: 0.95 -> 'ci95', 0.9 -> 'ci90'."""
    return "ci" + f"{100 * confidence:g}".replace(".", "_")


# ---- error summaries ---------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorSummary:
    """Errors of one group of molecules, in the TARGET unit (MSE in it squared).

    The *_ci_low/_ci_high pairs bound a percentile-bootstrap confidence interval at
    `confidence`; they are NaN for a group too small to have one (`MIN_INTERVAL_COUNT`).
    """

    count: int
    mse: float
    mae: float
    rmse: float
    mae_ci_low: float
    mae_ci_high: float
    rmse_ci_low: float
    rmse_ci_high: float
    mse_ci_low: float
    mse_ci_high: float
    confidence: float = 0.95
    seeds: int = 1
    mae_seed_sd: float | None = None
    """Training seeds the figures average over (summarize), and the standard deviation
    of the per-seed MAE between them (None for one seed)."""

    def report_row(self, target_unit: str) -> dict[str, float]:
        """Column name -> value in report units (MAE, RMSE in meV for eV targets; MSE in the
        target unit squared), units spelled in every name: 'mae_meV', 'mae_ci95_low_meV', ..."""
        factor, unit = error_unit(target_unit)
        sq = unit_key(squared_unit(canonical_unit(target_unit)))
        unit = unit_key(unit)
        ci = ci_key(self.confidence)
        seeds = {} if self.seeds == 1 else {
            "seeds": self.seeds, f"mae_seed_sd_{unit}": self.mae_seed_sd * factor}
        return {
            f"mae_{unit}": self.mae * factor,
            f"mae_{ci}_low_{unit}": self.mae_ci_low * factor,
            f"mae_{ci}_high_{unit}": self.mae_ci_high * factor,
            **seeds,
            f"rmse_{unit}": self.rmse * factor,
            f"rmse_{ci}_low_{unit}": self.rmse_ci_low * factor,
            f"rmse_{ci}_high_{unit}": self.rmse_ci_high * factor,
            f"mse_{sq}": self.mse,
            f"mse_{ci}_low_{sq}": self.mse_ci_low,
            f"mse_{ci}_high_{sq}": self.mse_ci_high,
        }


def summarize(
    errors: np.ndarray,
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    *,
    name: str = "all molecules",
    min_count: int = MIN_INTERVAL_COUNT,
) -> ErrorSummary:
    """MSE, MAE, RMSE of one group of molecules and their confidence intervals. `errors`:
    (n,) one model's errors, or (k, n) the errors of the same molecules under k training seeds.
    A group of fewer than `min_count` molecules gets its figures and NaN intervals.

    With one seed, the bootstrap-t interval of the mean over the n molecules
    (`studentized_mean_interval`, one draw for the absolute and the squared errors), floored
    at zero. With several, MAE and MSE are the means over seeds of each seed's
    figure (RMSE the root of that MSE) and the intervals are `two_level_interval`'s (a t
    interval over the seeds plus the molecules' bootstrap variance, floored at zero), so they
    carry the training seed's noise as well as the molecules'. `name` names the group in the
    error raised when it is empty.
    """
    errors = np.asarray(errors, dtype=np.float64)
    errors = errors.reshape(1, -1) if errors.ndim < 2 else errors
    if errors.shape[1] == 0:
        raise MolstrataError(
            f"no molecules in {name}: nothing to measure; evaluate on a set that holds some"
        )
    if not np.all(np.isfinite(errors)):
        raise MolstrataError(
            f"{name} has {int(np.sum(~np.isfinite(errors)))} non-finite errors; check the "
            "predictions (a diverged model gives NaN)"
        )
    absolute = np.abs(errors)
    per_seed_mae, per_seed_mse = absolute.mean(axis=1), (absolute**2).mean(axis=1)
    if errors.shape[0] == 1:
        (mae_lo, mse_lo), (mae_hi, mse_hi) = studentized_mean_interval(
            np.stack([absolute[0], absolute[0] ** 2]), rng, n_bootstrap=n_bootstrap,
            confidence=confidence)
    else:
        (mae_lo, mse_lo), (mae_hi, mse_hi) = two_level_bootstrap(
            [absolute], _seed_means, rng, n_bootstrap=n_bootstrap, confidence=confidence)
    # with seeds the interval is estimate +- t se, which may reach below zero: an error is not
    mae_lo, mse_lo = max(float(mae_lo), 0.0), max(float(mse_lo), 0.0)
    if errors.shape[1] < min_count:
        mae_lo = mae_hi = mse_lo = mse_hi = math.nan
    mse = float(per_seed_mse.mean())
    seeds = errors.shape[0]
    return ErrorSummary(
        count=errors.shape[1],
        mse=mse,
        mae=float(per_seed_mae.mean()),
        rmse=math.sqrt(mse),
        mae_ci_low=float(mae_lo),
        mae_ci_high=float(mae_hi),
        rmse_ci_low=math.sqrt(mse_lo),
        rmse_ci_high=math.sqrt(mse_hi),
        mse_ci_low=float(mse_lo),
        mse_ci_high=float(mse_hi),
        confidence=confidence,
        seeds=seeds,
        mae_seed_sd=float(per_seed_mae.std(ddof=1)) if seeds > 1 else None,
    )


def _seed_means(absolute: np.ndarray) -> np.ndarray:
    """(n_replicates, 2): the mean over seeds of the MAE and of the MSE, from (rows, k, n)."""
    return np.stack([absolute.mean(axis=2).mean(axis=1), (absolute**2).mean(axis=2).mean(axis=1)],
                    axis=1)


# ---- rank correlation --------------------------------------------------------------------


def rankdata(values: np.ndarray) -> np.ndarray:
    """(n,) ranks 1..n of `values` (n,); tied values share the average of their ranks."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    n = len(values)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if n else np.zeros(0, int)
    ends = np.r_[starts[1:], n]
    ranks = np.empty(n)
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def spearman_method(n: int, n_permutations: int = 20_000, seed: int = 0) -> str:
    """How `spearman` computes the p-value for n pairs, in words (for reports)."""
    if n < 3:
        return "none (fewer than 3 pairs)"
    if n <= EXACT_MAX_N:
        return f"exact permutation test (all {math.factorial(n):,} orderings)"
    return f"Monte Carlo permutation test ({n_permutations:,} permutations, seed {seed})"


def spearman(
    x: np.ndarray, y: np.ndarray, *, n_permutations: int = 20_000, seed: int = 0
) -> tuple[float, float]:
    """(rho, p): Spearman's rank correlation of x (n,) and y (n,) and its two-sided p-value.

    rho is the Pearson correlation of the average ranks (ties allowed). The p-value is the
    share of orderings of y's ranks whose |rho| reaches the observed |rho|: over all n!
    orderings for n <= 8 (exact), else over `n_permutations` seeded random ones, counted as
    (hits + 1) / (n_permutations + 1) so it is never 0. Fewer than 3 pairs, or a constant x or
    y, give (nan, nan): there is no ranking to test.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite")
    n = len(x)
    rx = rankdata(x) - (n + 1) / 2
    ry = rankdata(y) - (n + 1) / 2
    norm = math.sqrt(float(rx @ rx) * float(ry @ ry))
    if n < 3 or norm == 0:
        return math.nan, math.nan
    rho = float(rx @ ry) / norm
    threshold = abs(rho) - 1e-12
    if n <= EXACT_MAX_N:
        orderings = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
        null = ry[orderings] @ rx / norm
        return rho, float(np.mean(np.abs(null) >= threshold))
    rng = np.random.default_rng(seed)
    hits = 0
    chunk = max(1, 2**20 // n)
    for start in range(0, n_permutations, chunk):
        rows = min(chunk, n_permutations - start)
        shuffled = rng.permuted(np.tile(ry, (rows, 1)), axis=1)
        hits += int(np.sum(np.abs(shuffled @ rx / norm) >= threshold))
    return rho, (hits + 1) / (n_permutations + 1)
