"""Confidence intervals, once: resample molecules, apply a statistic, take the interval.

Every confidence interval molstrata reports comes from here: the MAE and MSE of a stratum
(metrics.summarize), the lead of one run over another (compare.lead_interval) and the change
of a macro average, a spread or a regression coefficient (study findings). numpy and scipy.

A stratum's MAE and MSE with one training seed are means over its molecules:
`studentized_mean_interval` (the bootstrap-t) gives them, which holds its level on strata of
ten molecules where the percentile bootstrap does not.

With one training seed per arm, `percentile_bootstrap` resamples the test molecules (paired
between arms, stratified by size where asked) and takes percentiles: it measures the test
molecules' noise only, and the caller must say that training noise was not measured.

When an experiment ("arm") is trained k >= 2 times (training seeds, and with subset.draw =
"seed" the draw of training molecules too), `two_level_interval` combines two sources of noise:
  - the test molecules, shared by every arm and seed: the variance of the statistic over a
    paired (stratified) bootstrap of molecules, every seed kept;
  - the training seed: a delete-one-seed jackknife per arm (for a mean over seeds of a per-seed
    figure it is exactly s^2 / k), with k - 1 degrees of freedom;
and gives estimate +- t * se, the t quantile at the Welch-Satterthwaite degrees of freedom of
the sum. Why not resample the seeds as well: with k = 2 or 3, a bootstrap over seeds can see
no spread wider than the seeds showed, and its "95 %" interval covered 65 % (k = 2) to 80 %
(k = 3) of the time in simulation; the t quantile at k - 1 degrees of freedom is what pays for
estimating a variance from two or three values (tests/evaluation/test_coverage.py checks
coverage >= 93 % at k = 2, 3, 5, for seed- and molecule-dominated noise; bench/coverage.py
prints the table). With paired_seeds, arms trained with the same seeds (same initialisation,
batch order and data draw) are jackknifed together, which removes what the seeds share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

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


def studentized_mean_interval(
    values: np.ndarray,
    rng: np.random.Generator,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high), each (m,): the bootstrap-t interval of the mean of each row of `values`
    (m, n), one draw of the n molecules for every row (a stratum's absolute and squared
    errors stay together).

    Each replicate's t = (mean* - mean) / se*, se* = sd* / sqrt(n) from the same resample;
    the interval is mean - t_high * se .. mean - t_low * se, se from the data. Unlike the
    percentile bootstrap, it pays for estimating the spread from few molecules and corrects
    for the skew of absolute errors: on 10 molecules its nominal 95 % covered 93-95 % in
    simulation (normal, Laplace and exponential errors) where the percentile interval covered
    85-90 % (tests/evaluation/test_coverage.py, bench/coverage.py). Resamples of one repeated
    value (se* = 0) are left out; a row without spread gets the interval [mean, mean]."""
    low, high, _ = studentized_mean_test(values, rng, n_bootstrap=n_bootstrap,
                                         confidence=confidence)
    return low, high


def studentized_mean_test(
    values: np.ndarray,
    rng: np.random.Generator,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, p), each (m,): `studentized_mean_interval`, and the two-sided p-value of a
    zero mean (a paired lead, as the mean of each molecule's difference in absolute error):
    t = mean / se against Student's t with n - 1 degrees of freedom, the paired t-test, whose
    p is not limited to steps of 1 / n_bootstrap as a bootstrap tail share would be (Holm
    over 18 strata needs p < 0.0028); 1 where a row has no spread and a zero mean, 0 where it
    has none and another mean."""
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    _check_settings(n_bootstrap, confidence)
    m, n = values.shape
    if n == 0:
        raise ValueError("the bootstrap needs at least one molecule")
    mean = values.mean(axis=1)
    se = values.std(axis=1, ddof=1) / math.sqrt(n) if n > 1 else np.zeros(m)
    per_chunk = max(1, CHUNK // n)
    t_values = []
    for start in range(0, n_bootstrap, per_chunk):
        rows = min(per_chunk, n_bootstrap - start)
        resampled = values[:, _draw(n, rows, rng)]  # (m, rows, n)
        spread = resampled.std(axis=2, ddof=1) / math.sqrt(n) if n > 1 else \
            np.zeros((m, rows))
        with np.errstate(divide="ignore", invalid="ignore"):
            t_values.append(np.where(spread > 0,
                                     (resampled.mean(axis=2) - mean[:, None]) / spread, np.nan))
    t_values = np.concatenate(t_values, axis=1)
    tail = 100 * (1 - confidence) / 2
    low_t, high_t = np.zeros(m), np.zeros(m)
    p = np.where(mean == 0, 1.0, 0.0)
    usable = (se > 0) & np.isfinite(t_values).any(axis=1)
    if usable.any():
        t = t_values[usable]
        low_t[usable], high_t[usable] = np.nanpercentile(t, [tail, 100 - tail], axis=1)
    spread = se > 0
    p[spread] = 2 * stats.t.sf(np.abs(mean[spread] / se[spread]), df=n - 1)
    return mean - high_t * se, mean - low_t * se, p


@dataclass(frozen=True)
class Interval:
    """A statistic's estimate and its interval at `confidence` (arrays shaped like one value
    of the statistic), and how it was made.

    se: the standard error (training seeds and test molecules together; NaN for a percentile
    interval); se_seed, se_molecules its two parts; df: the t quantile's degrees of freedom
    (inf where only molecules were resampled); mc_error: the Monte Carlo standard error of an
    end (from the bootstrap's finite replicates); seeds_measured: every arm had >= 2 seeds,
    so training noise is in the interval."""

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    se: np.ndarray
    se_seed: np.ndarray
    se_molecules: np.ndarray
    df: np.ndarray
    mc_error: np.ndarray
    seeds_measured: bool
    confidence: float

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.low, self.high

    def p_value(self, null: float = 0.0) -> np.ndarray:
        """Two-sided p-value of estimate == null: from the t statistic, or for a percentile
        interval from the normal standard error its width implies."""
        return 2 * np.minimum(self.p_above(null), self.p_below(null))

    def p_below(self, bound: float) -> np.ndarray:
        """One-sided p-value of 'the statistic is >= bound' (small: it lies below bound)."""
        return stats.t.cdf((self.estimate - bound) / self._se(), self.df)

    def p_above(self, bound: float) -> np.ndarray:
        """One-sided p-value of 'the statistic is <= bound' (small: it lies above bound)."""
        return stats.t.sf((self.estimate - bound) / self._se(), self.df)

    def _se(self) -> np.ndarray:
        if np.all(np.isfinite(self.se)):
            return np.maximum(self.se, 1e-300)
        z = stats.norm.ppf(0.5 + self.confidence / 2)
        return np.maximum((self.high - self.low) / (2 * z), 1e-300)

    def seeds_to_resolve(self, threshold: float, k: int, limit: int = 50) -> int | None:
        """The smallest number of seeds per arm (> k, <= limit) at which, with this estimate
        and these variances, the interval would end beyond `threshold`'s side of the estimate
        (|estimate - threshold| > t * se); None when more seeds alone cannot do it (the test
        molecules' noise alone is too large) or no seed level was measured."""
        if not self.seeds_measured or self.estimate.ndim:
            return None
        gap = abs(float(self.estimate) - threshold)
        v_mol, v_seed = float(self.se_molecules) ** 2, float(self.se_seed) ** 2
        for more in range(k + 1, limit + 1):
            v_s = v_seed * k / more
            df = _satterthwaite(v_mol + v_s, [v_s], [more - 1])
            if stats.t.ppf(0.5 + self.confidence / 2, df) * math.sqrt(v_mol + v_s) < gap:
                return more
        return None


def two_level_interval(
    arms: Sequence[np.ndarray],
    statistic: Statistic,
    rng: np.random.Generator,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    strata: np.ndarray | None = None,
    paired_seeds: bool = False,
) -> Interval:
    """The interval at `confidence` of `statistic` over training seeds and test molecules.

    arms: one (k_i, n) array per arm, a row per training seed, the columns the same n test
    molecules in the same order for every arm and seed ((n,) is one seed). statistic(*arms),
    each arm (rows, k_i, n) -> (rows, ...). The molecule level draws n molecules with
    replacement (within their `strata` label), shared by all arms and seeds, keeping every
    seed; the seed level is a delete-one-seed jackknife of each arm with k_i >= 2 (with
    paired_seeds and the same k for every arm: seed r deleted from all arms at once, k - 1
    degrees of freedom). The interval is estimate +- t * se (module docstring). When every arm
    has one seed, it is the percentile bootstrap over molecules (the same rng gives the same
    interval as percentile_bootstrap, paired), seeds_measured False.
    """
    arms = [_as_seeds(a) for a in arms]
    _check_settings(n_bootstrap, confidence)
    _, groups = _check_arms(arms, strata)
    ks = [len(a) for a in arms]
    estimate = np.asarray(statistic(*[a[None] for a in arms]), dtype=np.float64)[0]
    if max(ks) == 1:
        replicates = _molecule_replicates(arms, statistic, rng, n_bootstrap, groups,
                                          draw_seeds=True)
        low, high = _interval([replicates], confidence)
        nan = np.full_like(estimate, np.nan)
        return Interval(estimate, low, high, nan, nan, nan, np.full_like(estimate, np.inf),
                        _percentile_mc_error(replicates, confidence), False, confidence)
    replicates = _molecule_replicates(arms, statistic, rng, n_bootstrap, groups)
    v_mol = replicates.var(axis=0, ddof=1) if n_bootstrap > 1 else np.zeros_like(estimate)
    parts, dfs = _seed_variances(arms, statistic, paired_seeds)
    v_seed = sum(parts, np.zeros_like(estimate))
    total = v_mol + v_seed
    df = _satterthwaite(total, parts, dfs)
    t = stats.t.ppf(0.5 + confidence / 2, df)
    se = np.sqrt(total)
    with np.errstate(divide="ignore", invalid="ignore"):
        mc = np.where(se > 0, t * v_mol * math.sqrt(2 / max(n_bootstrap - 1, 1)) / (2 * se), 0.0)
    return Interval(estimate, estimate - t * se, estimate + t * se, se, np.sqrt(v_seed),
                    np.sqrt(v_mol), np.asarray(df, dtype=np.float64), mc, min(ks) > 1,
                    confidence)


def two_level_bootstrap(
    arms: Sequence[np.ndarray],
    statistic: Statistic,
    rng: np.random.Generator,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    strata: np.ndarray | None = None,
    paired_seeds: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of `two_level_interval`: the interval over training seeds and test
    molecules, each end shaped like one value of the statistic."""
    return two_level_interval(arms, statistic, rng, n_bootstrap=n_bootstrap,
                              confidence=confidence, strata=strata,
                              paired_seeds=paired_seeds).bounds


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order: rejecting those under alpha
    holds the family-wise error rate at alpha, for any dependence between the tests."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def _check_arms(arms: list[np.ndarray],
                strata: np.ndarray | None) -> tuple[int, list[np.ndarray] | None]:
    """The arms' number of molecules and the strata's groups of columns, or a ValueError."""
    if not arms or any(a.size == 0 for a in arms):
        raise ValueError("the bootstrap needs at least one arm with at least one seed and "
                         "one molecule")
    n_molecules = {a.shape[1] for a in arms}
    if len(n_molecules) > 1:
        raise ValueError(f"arms must hold the same test molecules, got {sorted(n_molecules)} "
                         "molecules per seed")
    n = arms[0].shape[1]
    if strata is None:
        return n, None
    strata = np.asarray(strata).reshape(-1)
    if len(strata) != n:
        raise ValueError(f"strata label the molecules: {n} labels needed, got {len(strata)}")
    return n, [np.flatnonzero(strata == label) for label in np.unique(strata)]


def _molecule_replicates(arms: list[np.ndarray], statistic: Statistic,
                         rng: np.random.Generator, n_bootstrap: int,
                         groups: list[np.ndarray] | None, draw_seeds: bool = False) -> np.ndarray:
    """(n_bootstrap, ...): the statistic on paired draws of molecules, every seed kept (with
    draw_seeds, seeds are also drawn per arm, as the percentile two-level bootstrap does)."""
    n = arms[0].shape[1]
    per_chunk = max(1, CHUNK // (n * max(len(a) for a in arms)))
    replicates = []
    for start in range(0, n_bootstrap, per_chunk):
        rows = min(per_chunk, n_bootstrap - start)
        seeds = [_draw_seeds(len(a), rows, rng) if draw_seeds else
                 np.broadcast_to(np.arange(len(a)), (rows, len(a))) for a in arms]
        molecules = _draw(n, rows, rng, groups)[:, None, :]
        resampled = [a[s[:, :, None], molecules] for a, s in zip(arms, seeds)]
        replicates.append(np.asarray(statistic(*resampled), dtype=np.float64))
    return np.concatenate(replicates)


def _seed_variances(arms: list[np.ndarray], statistic: Statistic,
                    paired_seeds: bool) -> tuple[list[np.ndarray], list[int]]:
    """The jackknife variance over seeds of each arm with >= 2 seeds, and its degrees of
    freedom; paired_seeds with one k for all arms: one variance, seeds deleted together."""
    ks = [len(a) for a in arms]

    def without(drop: dict[int, int]) -> np.ndarray:
        kept = [np.delete(a, drop[i], axis=0) if i in drop else a for i, a in enumerate(arms)]
        return np.asarray(statistic(*[a[None] for a in kept]), dtype=np.float64)[0]

    def jackknife(values: list[np.ndarray]) -> np.ndarray:
        values = np.stack(values)
        k = len(values)
        return (k - 1) / k * ((values - values.mean(axis=0)) ** 2).sum(axis=0)

    if paired_seeds and len(set(ks)) == 1 and ks[0] > 1:
        return [jackknife([without(dict.fromkeys(range(len(arms)), r))
                           for r in range(ks[0])])], [ks[0] - 1]
    parts, dfs = [], []
    for i, k in enumerate(ks):
        if k > 1:
            parts.append(jackknife([without({i: r}) for r in range(k)]))
            dfs.append(k - 1)
    return parts, dfs


def _satterthwaite(total: np.ndarray | float, parts: Sequence[np.ndarray | float],
                   dfs: Sequence[int]) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom of a sum of variances: `parts` with `dfs`, the
    rest of `total` (the molecules' part) with infinitely many, capped at twice the seed
    level's own (the sum of `dfs`). Why the cap: where a 1- or 2-df seed variance happens to
    come out small beside the molecules', the uncapped df grows large and the interval
    narrow just when it should not (paired seeds at k = 2 covered 0.87-0.90 in simulation;
    capped, >= 0.95); its cost is a wider interval where the molecules' noise dominates."""
    total = np.asarray(total, dtype=np.float64)
    denominator = sum((np.asarray(v, dtype=np.float64) ** 2 / d for v, d in zip(parts, dfs)),
                      np.zeros_like(total))
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denominator > 0, total**2 / denominator, np.inf)
    if not dfs:
        return df
    return np.clip(df, min(dfs), 2 * sum(dfs))


def _percentile_mc_error(replicates: np.ndarray, confidence: float,
                         batches: int = 10) -> np.ndarray:
    """Monte Carlo standard error of a percentile interval's ends (the larger of the two):
    the spread of the ends over `batches` disjoint batches of replicates, over sqrt(batches)."""
    if len(replicates) < 2 * batches:
        return np.full(replicates.shape[1:], np.nan)
    ends = [np.stack(_interval([part], confidence)) for part in
            np.array_split(replicates, batches)]
    spread = np.stack(ends).std(axis=0, ddof=1) / math.sqrt(batches)
    return spread.max(axis=0)


def resampled_seeds_bootstrap(
    arms: Sequence[np.ndarray],
    statistic: Statistic,
    rng: np.random.Generator,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    strata: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high): the percentile interval of `statistic` when both training seeds and test
    molecules are resampled, each shaped like one replicate of the statistic. It under-covers
    with few seeds (see the module docstring): molstrata's verdicts use two_level_interval; the
    learning-curve fits keep this one for now, since their statistics (fitted exponents, the
    reciprocal of a need that may be infinite) need percentiles, not a standard error.

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
    _, groups = _check_arms(arms, strata)
    replicates = _molecule_replicates(arms, statistic, rng, n_bootstrap, groups,
                                      draw_seeds=True)
    return _interval([replicates], confidence)


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
