"""The percentile bootstrap, once: resample molecules, apply a statistic, take the percentiles.

Every confidence interval molstrata reports comes from here: the MAE and MSE of a stratum
(metrics.summarize), the lead of one run over another (compare.lead_interval) and the change
of a macro average or of the spread across sizes (study findings). numpy only.

When an experiment ("arm") is trained k times with different training seeds on one split,
`two_level_bootstrap` resamples at two levels: the seeds of each arm (training noise), then
the test molecules, shared by all arms and seeds (test noise, paired). Why two levels: the
training seed is usually the larger source of noise, and a difference that flips sign between
seeds must not be called a win, even when each seed's own molecule-level interval excludes
zero; resampling molecules alone measures only the test set and would call it one. Caveat:
with few seeds (k = 2 or 3) the seed level resamples few values, so the interval is as wide
as those seeds allow and no wider (it cannot see a spread the seeds did not show); with k = 1
training noise is not measured at all, and the caller must say so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from molstrata.errors import MolstrataError

CHUNK = 2**22
"""Resampled values held in memory at once per array (32 MiB of float64): replicates are
drawn in chunks of CHUNK // n so memory stays bounded for any number of molecules."""

Statistic = Callable[..., np.ndarray]
"""statistic(*resampled) -> (n_replicates, ...): one value (or one row of values) per
replicate, from each array resampled to (n_replicates, n) (two_level_bootstrap: each arm
resampled to (n_replicates, k, n))."""


def percentile_bootstrap(
    arrays: Sequence[np.ndarray],
    statistic: Statistic,
    rng: np.random.Generator,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    paired: bool = True,
    strata: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high): the percentile-bootstrap interval at `confidence` of `statistic`, each
    shaped like one replicate of it (a 0-d array for a scalar statistic).

    Every replicate resamples each array's n entries with replacement and calls
    `statistic(*resampled)` (a chunk of replicates at a time, each array (chunk, n)).
    paired: all arrays are (n,) values of the same molecules in the same order, and one draw
    of molecules resamples them all, so a molecule's values stay together; unpaired, each
    array is resampled on its own (their lengths may differ). strata: (n,) labels (paired
    only); molecules are resampled within their label, so each stratum keeps its count, and
    column j of a resampled array is still a molecule of label strata[j].
    """
    arrays = [np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays]
    _check_settings(n_bootstrap, confidence)
    if not arrays or any(len(a) == 0 for a in arrays):
        raise ValueError("the bootstrap needs at least one non-empty array")
    lengths = {len(a) for a in arrays}
    if paired and len(lengths) > 1:
        raise ValueError(f"paired arrays must have one length, got {sorted(lengths)}")
    if strata is not None:
        strata = np.asarray(strata).reshape(-1)
        if not paired or len(strata) != len(arrays[0]):
            raise ValueError("strata label the molecules of paired arrays: one label each")
    groups = None if strata is None else \
        [np.flatnonzero(strata == label) for label in np.unique(strata)]
    per_chunk = max(1, CHUNK // max(lengths))
    replicates = []
    for start in range(0, n_bootstrap, per_chunk):
        rows = min(per_chunk, n_bootstrap - start)
        if paired:
            index = _draw(len(arrays[0]), rows, rng, groups)
            resampled = [a[index] for a in arrays]
        else:
            resampled = [a[_draw(len(a), rows, rng)] for a in arrays]
        replicates.append(np.asarray(statistic(*resampled), dtype=np.float64))
    return _interval(replicates, confidence)


def two_level_bootstrap(
    arms: Sequence[np.ndarray],
    statistic: Statistic,
    rng: np.random.Generator,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    strata: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high): the percentile-bootstrap interval at `confidence` of `statistic` over
    training seeds and test molecules, each shaped like one replicate of the statistic.

    arms: one (k_i, n) array per arm, a row per training seed, the columns the same n test
    molecules in the same order for every arm and seed ((n,) is one seed). Every replicate
    draws, for each arm on its own, k_i of its seeds with replacement, then one draw of n
    molecules shared by all arms and seeds (paired: a molecule's values stay together), and
    calls `statistic(*resampled)` with each arm (chunk, k_i, n). strata: (n,) labels;
    molecules are resampled within their label as in `percentile_bootstrap`. With k = 1 for
    every arm nothing is drawn at the seed level, so it is `percentile_bootstrap` (paired):
    the same rng gives the same interval.
    """
    arms = [_as_seeds(a) for a in arms]
    _check_settings(n_bootstrap, confidence)
    if not arms or any(a.size == 0 for a in arms):
        raise ValueError("the bootstrap needs at least one arm with at least one seed and "
                         "one molecule")
    n_molecules = {a.shape[1] for a in arms}
    if len(n_molecules) > 1:
        raise ValueError(f"arms must hold the same test molecules, got {sorted(n_molecules)} "
                         "molecules per seed")
    n = arms[0].shape[1]
    groups = None
    if strata is not None:
        strata = np.asarray(strata).reshape(-1)
        if len(strata) != n:
            raise ValueError(f"strata label the molecules: {n} labels needed, got {len(strata)}")
        groups = [np.flatnonzero(strata == label) for label in np.unique(strata)]
    per_chunk = max(1, CHUNK // (n * max(len(a) for a in arms)))
    replicates = []
    for start in range(0, n_bootstrap, per_chunk):
        rows = min(per_chunk, n_bootstrap - start)
        seeds = [_draw_seeds(len(a), rows, rng) for a in arms]
        molecules = _draw(n, rows, rng, groups)[:, None, :]
        resampled = [a[s[:, :, None], molecules] for a, s in zip(arms, seeds)]
        replicates.append(np.asarray(statistic(*resampled), dtype=np.float64))
    return _interval(replicates, confidence)


def _check_settings(n_bootstrap: int, confidence: float) -> None:
    if n_bootstrap < 1:
        raise MolstrataError(f"n_bootstrap must be at least 1, got {n_bootstrap}; 1000 is usual")
    if not 0.0 < confidence < 1.0:
        raise MolstrataError(f"confidence must be between 0 and 1, got {confidence}; e.g. 0.95")


def _interval(replicates: list[np.ndarray], confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The percentiles that bound the middle `confidence` of the replicates (axis 0)."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(np.concatenate(replicates), [tail, 100 - tail], axis=0)
    return low, high


def per_seed_mae(errors: np.ndarray) -> np.ndarray:
    """The MAE of each seed, over the last (molecule) axis: (k, n) -> (k,), or inside a
    statistic (rows, k, n) -> (rows, k). errors: absolute errors."""
    return np.asarray(errors, dtype=np.float64).mean(axis=-1)


def mean_mae(errors: np.ndarray) -> np.ndarray:
    """The mean over seeds of each seed's MAE, the figure an arm is judged by: (rows, k, n)
    absolute errors -> (rows,) (a statistic for two_level_bootstrap), or (k, n) -> 0-d."""
    return per_seed_mae(errors).mean(axis=-1)


def mae_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """mean_mae(a) - mean_mae(b) per replicate, for two arms of absolute errors (rows, k_a, n)
    and (rows, k_b, n): negative where arm a is the better one."""
    return mean_mae(a) - mean_mae(b)


def seed_means(values: np.ndarray) -> np.ndarray:
    """The mean over seeds of a per-seed figure (an MAE, or a row of them per stratum):
    values (k, ...), seeds first as in an arm -> (...)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0 or len(values) == 0:
        raise ValueError("seed_means needs at least one seed, seeds on the first axis")
    return values.mean(axis=0)


@dataclass(frozen=True)
class SeedSpread:
    """One arm's figure over its training seeds: the mean, the seed-to-seed standard
    deviation (ddof=1; NaN with one seed, where training noise is not measured) and k."""

    mean: float
    sd: float
    k: int


def seed_spread(per_seed: np.ndarray) -> SeedSpread:
    """SeedSpread of one arm's per-seed figures (k,), e.g. per_seed_mae of its errors, so a
    report can show how much the training seed alone moves the figure."""
    per_seed = np.asarray(per_seed, dtype=np.float64)
    if per_seed.ndim != 1 or len(per_seed) == 0:
        raise ValueError(f"seed_spread needs one figure per seed, (k,), got {per_seed.shape}")
    k = len(per_seed)
    sd = float(per_seed.std(ddof=1)) if k > 1 else float("nan")
    return SeedSpread(mean=float(per_seed.mean()), sd=sd, k=k)


def _as_seeds(arm: np.ndarray) -> np.ndarray:
    """An arm as float64 (k, n), an (n,) array being one seed."""
    arm = np.asarray(arm, dtype=np.float64)
    if arm.ndim == 1:
        return arm[None, :]
    if arm.ndim != 2:
        raise ValueError(f"an arm is (k_seeds, n_molecules) or (n_molecules,), got {arm.shape}")
    return arm


def _draw_seeds(k: int, rows: int, rng: np.random.Generator) -> np.ndarray:
    """(rows, k) seed indices drawn with replacement; with one seed nothing is drawn, so the
    rng stream (and the interval) is the molecule-level bootstrap's."""
    if k == 1:
        return np.zeros((rows, 1), dtype=np.intp)
    return rng.integers(0, k, size=(rows, k), dtype=_index_type(k))


def _draw(n: int, rows: int, rng: np.random.Generator,
          groups: list[np.ndarray] | None = None) -> np.ndarray:
    """(rows, n) indices drawn with replacement from 0..n-1, or with groups, column j from
    the group that holds j."""
    if groups is None:
        return rng.integers(0, n, size=(rows, n), dtype=_index_type(n))
    index = np.empty((rows, n), dtype=np.int64)
    for members in groups:
        m = len(members)
        index[:, members] = members[rng.integers(0, m, size=(rows, m), dtype=_index_type(m))]
    return index


def _index_type(n: int) -> type:
    return np.int32 if n < 2**31 else np.int64  # int32 draws are faster
