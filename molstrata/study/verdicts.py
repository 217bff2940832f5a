"""How an interval becomes a verdict, and how a family of verdicts holds its error rate.

A claim rests on its `Evidence`: p_for, small when the data show the claim (e.g. the whole interval
of a change lies below zero: the treatment lowers the error), and p_against, small when they
show it does not hold (the whole interval lies above minus the margin declared in advance: the
treatment does not lower the error by more than the margin, which covers both "no effect" and
"the opposite"). Neither small: cannot tell, too noisy to say either way, and the test says how
many training seeds would resolve it. A claim of absence ("the larger caps do not help") is
the same test with the roles of p_for and p_against swapped.

The study's primary claims (the thesis' hypotheses 1-4 and the default against the custom
model) form one family: `adjust_family` applies Holm's step-down method to their 2m p-values
(each claim's for and against), so that the chance of any wrong primary verdict stays at or
below `alpha` whatever the number of claims; every other claim is exploratory, decided at
`alpha` alone and labelled so. A claim over several arms ("some cap helps", "the best rate
beats r = 0") is tested as what it is: some arm lowers the error (Bonferroni over the arms:
m times the smallest p) against no arm lowering it beyond the margin (every arm's interval
above minus the margin: the largest p, an intersection-union test).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from molstrata.evaluation.bootstrap import Interval, holm

ALPHA = 0.05
"""The family-wise error rate of the primary claims, and the level of each exploratory one."""
MARGIN = 0.05
"""Equivalence margin of a change, as a fraction of the reference's figure (5 % of its MAE)."""
RARITY_MARGIN = 0.1
"""Equivalence margin of the rarity elasticity (d log MAE / d log training share): within
+-0.1, halving a stratum's share changes its error by under 7 %."""


@dataclass(frozen=True)
class Settings:
    """A plan's declared verdict settings ([study] margin, rarity_margin, alpha,
    paired_seeds): paired_seeds judges arms trained with the same seeds (same initialisation,
    batch order and data draw) seed by seed (bootstrap.two_level_interval)."""

    margin: float = MARGIN
    rarity_margin: float = RARITY_MARGIN
    alpha: float = ALPHA
    paired_seeds: bool = False


@dataclass(frozen=True)
class Evidence:
    """The evidence for (p_for) and against (p_against) one claim; borderline when an
    interval's end lies within two Monte Carlo errors of the threshold it is judged by; resolve:
    what would resolve a "cannot tell" (seeds per arm), or ""."""

    p_for: float
    p_against: float
    borderline: bool = False
    resolve: str = ""

    def decide(self, level: float) -> bool | None:
        if self.p_for < level:
            return True
        if self.p_against < level:
            return False
        return None

    def swapped(self) -> Evidence:
        """The test of the claim's negation."""
        return dataclasses.replace(self, p_for=self.p_against, p_against=self.p_for)


def lowers(interval: Interval, margin: float, k: int = 0) -> Evidence:
    """Claim: the statistic (a change, new - reference) is below zero. For: the interval at
    its confidence lies below 0 (p_for = 2 P(T < estimate / se)); against: it lies above
    -margin. k: the arms' training seeds, to say how many would resolve a cannot tell."""
    estimate, mc = float(interval.estimate), float(np.nan_to_num(interval.mc_error))
    p_for = min(1.0, 2 * float(interval.p_below(0.0)))
    p_against = min(1.0, 2 * float(interval.p_above(-margin)))
    low, high = float(interval.low), float(interval.high)
    borderline = abs(high) < 2 * mc or abs(low + margin) < 2 * mc
    resolve = ""
    if min(p_for, p_against) >= 1 - interval.confidence and k:
        # the nearer threshold: 0 when the estimate is below -margin / 2, else -margin
        threshold = 0.0 if estimate < -margin / 2 else -margin
        needed = interval.seeds_to_resolve(threshold, k)
        resolve = (f"about {needed} training seeds per arm would resolve it at this estimate"
                   if needed else "more training seeds alone would not resolve it (the test "
                   "molecules' noise, or an estimate at the threshold)" if
                   interval.seeds_measured else "")
    return Evidence(p_for, p_against, borderline, resolve)


def raises(interval: Interval, margin: float, k: int = 0) -> Evidence:
    """Claim: the statistic is above zero (the mirror of `lowers`)."""
    mirrored = dataclasses.replace(interval, estimate=-interval.estimate, low=-interval.high,
                                   high=-interval.low)
    return lowers(mirrored, margin, k)


def within(interval: Interval, margin: float) -> Evidence:
    """Claim: no effect, the statistic within +-margin. For: two one-sided tests (the whole
    interval inside +-margin); against: the interval lies wholly outside it on one side."""
    p_for = min(1.0, 2 * max(float(interval.p_above(-margin)), float(interval.p_below(margin))))
    p_against = min(1.0, 2 * min(float(interval.p_below(-margin)),
                                 float(interval.p_above(margin))))
    return Evidence(p_for, p_against)


def any_of(tests: Sequence[Evidence]) -> Evidence:
    """Claim: some arm's claim holds (e.g. some cap lowers the error). For: Bonferroni over the
    arms; against: every arm's against (the largest p)."""
    m = len(tests)
    return Evidence(min(1.0, m * min(t.p_for for t in tests)), max(t.p_against for t in tests),
                any(t.borderline for t in tests),
                next((t.resolve for t in tests if t.resolve), ""))


def family_verdicts(tests: Sequence[Evidence], alpha: float = ALPHA) -> list[bool | None]:
    """The verdicts of a family of claims at family-wise level alpha: Holm over every claim's
    p_for and p_against together."""
    adjusted = holm([p for t in tests for p in (t.p_for, t.p_against)])
    return [Evidence(adjusted[2 * i], adjusted[2 * i + 1]).decide(alpha) for i in range(len(tests))]
