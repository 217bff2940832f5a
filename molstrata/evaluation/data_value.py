"""What a stratum's own training molecules are worth, measured by thinning one stratum at a
time. The numbers only: no I/O, no plotting.

The design (study/data_value.py) trains a `full` arm (every training molecule) and, for each
thinned stratum s, arms that keep a fraction of s's training molecules and every other one;
every arm is tested on the same molecules with k training seeds. For s, from those arms:

- its own-data curve: s's test MAE against its own training molecules, the rest held fixed;
- the own-data slope: the least-squares line of that MAE on the own count over the measured
  range, in error units per 1,000 own molecules (the verdicts and the advice read it), and the
  step between the two largest counts (the marginal value near today's count);
- the error at zero own molecules (pure transfer from the other strata) where fraction 0 ran;
- a held-out check that matches the advice: the line fitted without the full arm predicts the
  full arm's MAE, with an interval, and the check says whether the measured MAE lies inside;
- cross effects: the change of every evaluated stratum's MAE when s is thinned most.

Unlike a learning curve over nested subsets of the whole training set (evaluation.scaling),
where every stratum grows in proportion and a stratum's curve against its own count is its
curve against the total, only s's count changes here, so the slope is the effect of s's own
molecules. Every interval is bootstrap.two_level_interval: a t interval over the training
seeds (each arm jackknifed on its own: arms that share seeds are treated as independent,
which is conservative for a contrast when they are positively correlated) plus a bootstrap
of the test molecules, within each size, shared by every arm.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from molstrata.errors import MolstrataError
from molstrata.evaluation.bootstrap import Interval, mean_mae, two_level_interval

PER = 1000.0
"""Own molecules per slope unit: slopes are changes of MAE per 1,000 own molecules."""
GRID = 24
"""Points of the drawn own-data line, across the measured range."""


@dataclass(frozen=True, eq=False)
class Thinned:
    """One thinned stratum: its label, n_own (m,) its own training molecules in each of its
    arms (mean over seeds; ascending, the last arm the full training set), arms: the indices
    of those arms in the shared list of arms, members (n,) bool: its test molecules among the
    n shared ones, and share: its share of the full training set."""

    label: str
    n_own: np.ndarray
    arms: tuple[int, ...]
    members: np.ndarray
    share: float

    def __post_init__(self) -> None:
        n_own = np.asarray(self.n_own, dtype=np.float64)
        if n_own.ndim != 1 or len(n_own) != len(self.arms) or len(n_own) < 2:
            raise ValueError(f"{self.label}: one own count per arm, at least 2 arms")
        if (np.diff(n_own) < 0).any():
            raise ValueError(f"{self.label}: arms run from the most thinned to the full one, "
                             f"got own counts {n_own.tolist()}")
        object.__setattr__(self, "n_own", n_own)
        object.__setattr__(self, "members", np.asarray(self.members, dtype=bool))


@dataclass(frozen=True)
class HeldOut:
    """The line through the other arms predicts the full arm's MAE: `predicted` (its
    interval from those arms), `measured`, and `difference` (predicted - measured, over every
    arm); inside: the difference's interval holds zero."""

    predicted: Interval
    measured: float
    difference: Interval

    @property
    def inside(self) -> bool:
        return bool(self.difference.low <= 0 <= self.difference.high)


@dataclass(frozen=True, eq=False)
class OwnCurve:
    """One thinned stratum's own-data curve (errors in the unit given).

    n_own (m,) and mae: the MAE at each arm (a vector Interval, mean over seeds); slope: the
    line's change of MAE per 1,000 own molecules; range_change: the line's change across the
    measured range (slope x (n_max - n_min) / 1,000), what the verdict is judged on;
    top_step: the change per 1,000 between the two largest own counts; at_zero: the MAE with
    no own molecule (None where fraction 0 was not run); grid and line: the fitted line and
    its band; reference: the MAE with every own molecule; held_out: None with fewer than two
    other arms of distinct counts."""

    label: str
    n_own: np.ndarray
    n_test: int
    share: float
    k_seeds: tuple[int, ...]
    mae: Interval
    slope: Interval
    range_change: Interval
    top_step: Interval
    at_zero: Interval | None
    grid: np.ndarray
    line: Interval
    held_out: HeldOut | None

    @property
    def reference(self) -> float:
        return float(self.mae.estimate[-1])

    @property
    def extrapolated(self) -> bool:
        """Whether 1,000 own molecules reach beyond the measured range (then the rate per
        1,000 is an extrapolation, not a measurement)."""
        return bool(PER > self.n_own[-1] - self.n_own[0])


def part(interval: Interval, index) -> Interval:
    """The entries `index` of a vector Interval, as an Interval."""
    arrays = {f.name: np.asarray(getattr(interval, f.name))[index]
              for f in dataclasses.fields(Interval)
              if f.name not in ("seeds_measured", "confidence")}
    return Interval(**arrays, seeds_measured=interval.seeds_measured,
                    confidence=interval.confidence)


def line_slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of y (rows, m) on x (m,) over the last axis: (rows,)."""
    dx = x - x.mean()
    return ((y - y.mean(axis=-1, keepdims=True)) * dx).sum(axis=-1) / (dx * dx).sum()


def _line(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The least-squares line of y (rows, m) on x (m,) evaluated at `at` (g,): (rows, g)."""
    slope = line_slope(x, y)
    intercept = y.mean(axis=-1) - slope * x.mean()
    return intercept[:, None] + slope[:, None] * at[None, :]


def own_curve(errors: Sequence[np.ndarray], thinned: Thinned, rng: np.random.Generator, *,
              strata: np.ndarray | None = None, n_bootstrap: int = 1000,
              confidence: float = 0.95) -> OwnCurve:
    """The own-data curve of one thinned stratum from the shared arms' absolute errors
    (one (k_i, n) array per arm, the same n test molecules in the same order). strata: (n,)
    labels (the molecules' sizes) within which the bootstrap resamples them."""
    members = thinned.members
    n_test = int(members.sum())
    if n_test < 2:
        raise MolstrataError(f"{thinned.label}: {n_test} test molecules; its own-data curve "
                             "needs at least 2 (use a larger slice or another stratum)")
    arms = [np.asarray(errors[i], dtype=np.float64)[..., members] for i in thinned.arms]
    labels = None if strata is None else np.asarray(strata)[members]
    x = thinned.n_own
    m = len(x)
    if len(np.unique(x)) < 2:
        raise MolstrataError(f"{thinned.label}: its arms hold the same number of its training "
                             f"molecules ({x[0]:g}); thinning needs a stratum with training "
                             "molecules")
    grid = np.linspace(x[0], x[-1], GRID)
    span = x[-1] - x[0]
    top = x[-1] - x[-2]
    others = x[:-1]
    held = len(np.unique(others)) >= 2

    def maes(resampled: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([mean_mae(arm) for arm in resampled], axis=-1)  # (rows, arms)

    def predict(*resampled: np.ndarray) -> np.ndarray:
        """The full arm's MAE from the line through the other arms: (rows, 1)."""
        return _line(others, maes(resampled), x[-1:])

    def statistic(*resampled: np.ndarray) -> np.ndarray:
        y = maes(resampled)
        slope = line_slope(x, y)
        step = (y[:, -1] - y[:, -2]) / top if top > 0 else np.full(len(y), np.nan)
        columns = [y, (PER * slope)[:, None], (span * slope)[:, None], (PER * step)[:, None],
                   _line(x, y, grid)]
        if held:
            columns.append(predict(*resampled[:-1]) - y[:, -1:])
        return np.concatenate(columns, axis=-1)

    interval = two_level_interval(arms, statistic, rng, n_bootstrap=n_bootstrap,
                                  confidence=confidence, strata=labels)
    held_out = None
    if held:
        predicted = two_level_interval(arms[:-1], predict, rng, n_bootstrap=n_bootstrap,
                                       confidence=confidence, strata=labels)
        held_out = HeldOut(part(predicted, 0), float(interval.estimate[m - 1]),
                           part(interval, m + 3 + GRID))
    zero = np.flatnonzero(x == 0)
    return OwnCurve(
        label=thinned.label, n_own=x, n_test=n_test, share=thinned.share,
        k_seeds=tuple(len(np.atleast_2d(arm)) for arm in arms),
        mae=part(interval, slice(0, m)), slope=part(interval, m),
        range_change=part(interval, m + 1), top_step=part(interval, m + 2),
        at_zero=part(interval, int(zero[0])) if len(zero) else None, grid=grid,
        line=part(interval, slice(m + 3, m + 3 + GRID)), held_out=held_out)


def cross_effects(full: np.ndarray, thinned: np.ndarray, columns: Sequence[np.ndarray],
                  rng: np.random.Generator, *, strata: np.ndarray | None = None,
                  n_bootstrap: int = 1000, confidence: float = 0.95) -> Interval:
    """The change of each evaluated stratum's MAE from the full arm to a thinned one: a vector
    Interval, one entry per mask of `columns` ((n,) bool, the stratum's test molecules).
    full, thinned: (k, n) absolute errors of the same test molecules."""
    masks = [np.asarray(c, dtype=bool) for c in columns]
    if any(mask.sum() == 0 for mask in masks):
        raise ValueError("every evaluated stratum needs at least one test molecule")

    def statistic(reference: np.ndarray, run: np.ndarray) -> np.ndarray:
        return np.stack([mean_mae(run[..., mask]) - mean_mae(reference[..., mask])
                         for mask in masks], axis=-1)

    return two_level_interval([full, thinned], statistic, rng, n_bootstrap=n_bootstrap,
                              confidence=confidence, strata=strata)


def gain_against_rarity(errors: Sequence[np.ndarray], thinned: Sequence[Thinned],
                        rng: np.random.Generator, *, strata: np.ndarray | None = None,
                        n_bootstrap: int = 1000, confidence: float = 0.95) -> Interval:
    """Whether rarer strata gain more per own molecule: the least-squares slope, across the
    thinned strata, of each one's gain (minus its own-data slope, per 1,000 own molecules) on
    log10 of its training share. Negative: the rarer a stratum, the more each of its own
    molecules lowers its error. Needs strata of at least 2 different shares."""
    shares = np.log10([t.share for t in thinned])
    if len(thinned) < 2 or len(np.unique(shares)) < 2:
        raise MolstrataError("comparing gains across strata needs at least 2 thinned strata "
                             "of different training shares")
    used = sorted({i for t in thinned for i in t.arms})
    position = {arm: j for j, arm in enumerate(used)}
    union = np.any([t.members for t in thinned], axis=0)
    arms = [np.asarray(errors[i], dtype=np.float64)[..., union] for i in used]
    members = [t.members[union] for t in thinned]

    def statistic(*resampled: np.ndarray) -> np.ndarray:
        gains = []
        for t, mask in zip(thinned, members):
            y = np.stack([mean_mae(resampled[position[i]][..., mask]) for i in t.arms], axis=-1)
            gains.append(-PER * line_slope(t.n_own, y))
        return line_slope(shares, np.stack(gains, axis=-1))

    labels = None if strata is None else np.asarray(strata)[union]
    return two_level_interval(arms, statistic, rng, n_bootstrap=n_bootstrap,
                              confidence=confidence, strata=labels)
