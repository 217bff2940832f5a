"""Does a stratum's rarity in training go with a larger error, size held fixed?

The thesis' hypotheses 1 and 2 were tested by a rank correlation of each stratum's training
share with its MAE. In QM9 a size's share is hump-shaped in the size, and the error also
depends on the size itself, so that correlation confounds rarity with size. Here the test is a
regression across strata of log MAE on log training share with the size as a covariate:

    log MAE_s = b0 + b1 log share_s + b2 s

b1 is the rarity elasticity (b1 = -0.1: a stratum half as common has a 7 % larger error), and
its interval comes from the two-level interval over the same training seeds and test molecules
as every other verdict (each bootstrap draw refits the line). What it cannot show: it is still
an observational comparison across strata; a stratum's count changed on purpose (the caps, the
per-stratum data-value design) is the causal test. Element strata overlap (a molecule holds
several elements), H and C are in almost every molecule, and five strata leave two degrees of
freedom: their elasticity (no covariate) is fitted the same way and is weak evidence at best.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from molstrata.evaluation.bootstrap import Interval, two_level_interval


@dataclass(frozen=True)
class Elasticity:
    """The rarity elasticity b1 over `labels` strata (their training shares and MAEs, the
    MAE in the errors' unit) and its interval; covariate: what was held fixed ("size" or "")."""

    labels: tuple[str, ...]
    shares: np.ndarray
    mae: np.ndarray
    interval: Interval
    covariate: str

    @property
    def value(self) -> float:
        return float(self.interval.estimate)


def rarity_elasticity(errors: np.ndarray, members: np.ndarray, shares: np.ndarray,
                      labels: tuple[str, ...], covariate: np.ndarray | None = None, *,
                      strata: np.ndarray | None = None, rng: np.random.Generator,
                      n_bootstrap: int = 1000, confidence: float = 0.95) -> Elasticity:
    """errors: (k, n) absolute errors under k training seeds; members: (n_strata, n) bool,
    molecule j in stratum i; shares: (n_strata,) training shares (> 0); covariate:
    (n_strata,) values held fixed (the size), or None; strata: (n,) labels the bootstrap
    resamples within (molecule sizes)."""
    members = np.asarray(members, dtype=bool)
    shares = np.asarray(shares, dtype=np.float64)
    columns = [np.ones(len(shares)), np.log(shares)]
    if covariate is not None:
        columns.append(np.asarray(covariate, dtype=np.float64))
    design = np.column_stack(columns)
    if len(shares) <= design.shape[1]:
        raise ValueError(f"{len(shares)} strata cannot fit {design.shape[1]} coefficients")
    pseudo_inverse = np.linalg.pinv(design)  # (p, n_strata)
    weights = members / members.sum(axis=1, keepdims=True)  # (n_strata, n): a stratum's mean

    def slope(arm: np.ndarray) -> np.ndarray:
        """(rows, k, n) errors -> (rows,) b1: each stratum's MAE averaged over the seeds."""
        mae = arm.mean(axis=-2) @ weights.T  # (rows, n_strata)
        return np.log(np.maximum(mae, 1e-300)) @ pseudo_inverse[1]

    interval = two_level_interval([errors], slope, rng, n_bootstrap=n_bootstrap,
                                  confidence=confidence, strata=strata)
    mae = np.asarray(errors, dtype=np.float64).reshape(-1, members.shape[1]).mean(axis=0) \
        @ weights.T
    return Elasticity(labels, shares, mae, interval, "size" if covariate is not None else "")
