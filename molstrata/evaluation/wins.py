"""Who wins each stratum of a comparison, and whether its lead is significant.

For every size stratum, every element stratum and all molecules together, the run with the
lowest MAE wins; its lead over the runner-up is tested with a seeded bootstrap of the difference
in absolute errors, paired over the molecules when every run was evaluated on the same ones (the
usual case: runs on the same split), unpaired otherwise. For groups of replicates every interval
comes from the two-level bootstrap (seeds, then molecules), and a lead is significant only when
it survives both: a difference that flips sign between seeds is not a win, however many
molecules agree.

The size and element strata overlap and are many (about 20 on QM9): a lead counts as
significant only after Holm's adjustment over every tested size and element stratum of the
comparison, so that "strata won significantly" holds a family-wise error rate of 1 -
confidence; all molecules together is tested on its own.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from molstrata.errors import MolstrataError
from molstrata.evaluation.bootstrap import (
    holm,
    mae_difference,
    percentile_bootstrap,
    studentized_mean_test,
    two_level_interval,
)
from molstrata.evaluation.results import RunResult, alignment, stratum_rows
from molstrata.evaluation.stratified import ALL, ELEMENT, SIZE, StratumMetrics, stratum_rng

MIN_TESTED = 10
"""A lead is tested only where the stratum holds at least this many molecules (in each run):
a percentile bootstrap over 2 or 3 molecules would call almost any lead significant."""


@dataclass(frozen=True)
class StratumWin:
    """Which run has the lowest MAE in one stratum, and whether its lead is significant.

    mae: label -> MAE in the target unit. lead: the runner-up's MAE minus the winner's
    (>= 0; 0 is a tie, which nobody wins), with the bootstrap interval [lead_low, lead_high]
    at `confidence` (NaN for strata under MIN_TESTED molecules: untested): significant when
    lead_low > 0. paired: the bootstrap resampled molecules, keeping each molecule's errors
    of both runs together.
    """

    kind: str
    key: int | str | None
    label: str
    count: int | None
    mae: dict[str, float]
    winner: str
    runner_up: str
    lead: float
    lead_low: float
    lead_high: float
    confidence: float
    paired: bool
    seeds: int = 1
    """The most training seeds either run of the lead has (1: training noise not measured)."""
    p_value: float = math.nan
    """Two-sided p-value of a zero lead (NaN: untested)."""
    p_adjusted: float = math.nan
    """p_value after Holm's adjustment over the comparison's tested size and element strata
    (all molecules: its own p_value)."""

    @property
    def tie(self) -> bool:
        return self.lead == 0

    @property
    def tested(self) -> bool:
        return not math.isnan(self.lead_low)

    @property
    def significant(self) -> bool:
        """The lead's interval excludes zero and, among the strata, survives Holm's
        adjustment at 1 - confidence."""
        adjusted = self.p_adjusted if not math.isnan(self.p_adjusted) else self.p_value
        family = math.isnan(adjusted) or adjusted < 1 - self.confidence
        return bool(not self.tie and self.tested and self.lead_low > 0 and family)


def find_wins(runs: Sequence[RunResult], same: bool, n_bootstrap: int, seed: int,
              confidence: float) -> tuple[StratumWin, ...]:
    """A StratumWin for all molecules and every size and element stratum all runs report,
    with p_adjusted (Holm over the tested size and element strata). same: whether every run
    was evaluated on the same molecules (`same_molecules`), so that the tests are paired."""
    if not same and any(r.k > 1 for r in runs):
        raise MolstrataError(
            "replicated runs (groups of training seeds) are compared on the same test "
            "molecules only; evaluate every run on the same split"
        )
    if same:
        base = runs[0].predictions
        aligned = [r.seed_errors[:, alignment(base.ids, r.predictions.ids)] for r in runs]
    wins = []
    for kind in (ALL, SIZE, ELEMENT):
        for key, strata in _common_strata(runs, kind):
            if same:
                rows = stratum_rows(runs[0].predictions, kind, key)
                errors = [a[:, rows] for a in aligned]
            else:
                errors = [r.abs_errors[stratum_rows(r.predictions, kind, key)] for r in runs]
            for run, stratum, e in zip(runs, strata, errors):
                if e.shape[-1] != stratum.count:
                    raise MolstrataError(
                        f"{run.eval_dir}: {stratum.label} holds {stratum.count} molecules in "
                        f"metrics.json but {e.shape[-1]} in predictions.csv; evaluate the run "
                        "again"
                    )
            wins.append(_win(runs, kind, key, strata, errors, same,
                             stratum_rng(seed, kind, key), n_bootstrap, confidence))
    return _holm_over_strata(tuple(wins))


def _holm_over_strata(wins: tuple[StratumWin, ...]) -> tuple[StratumWin, ...]:
    """The wins with p_adjusted: Holm over the tested size and element strata."""
    family = [i for i, w in enumerate(wins) if w.kind != ALL and not math.isnan(w.p_value)]
    adjusted = holm([wins[i].p_value for i in family])
    out = [dataclasses.replace(w, p_adjusted=w.p_value) for w in wins]
    for i, value in zip(family, adjusted):
        out[i] = dataclasses.replace(out[i], p_adjusted=float(value))
    return tuple(out)


def count_wins(wins: Sequence[StratumWin], labels: Sequence[str],
               significant: bool = False) -> dict[str, int]:
    """label -> size and element strata it wins (all molecules not counted, ties not won);
    with `significant`, only wins whose lead is significant."""
    counts = dict.fromkeys(labels, 0)
    for win in wins:
        if win.kind != ALL and not win.tie and (win.significant or not significant):
            counts[win.winner] += 1
    return counts


def _common_strata(runs: Sequence[RunResult], kind: str):
    """(key, [each run's StratumMetrics]) for the strata of `kind` that every run reports."""
    if kind == ALL:
        yield None, [r.report.overall for r in runs]
        return
    by_run = [{s.key: s for s in r.report.strata(kind)} for r in runs]
    for s in runs[0].report.strata(kind):
        if all(s.key in strata for strata in by_run):
            yield s.key, [strata[s.key] for strata in by_run]


def _win(runs: Sequence[RunResult], kind: str, key, strata: list[StratumMetrics],
         errors: list[np.ndarray], paired: bool, rng: np.random.Generator, n_bootstrap: int,
         confidence: float) -> StratumWin:
    """The winner of one stratum (lowest MAE as reported) and the test of its lead."""
    mae = [s.summary.mae for s in strata]
    order = sorted(range(len(runs)), key=lambda k: mae[k])
    best, second = order[0], order[1]
    lead = mae[second] - mae[best]
    low, high, p = lead_test(errors[best], errors[second], paired=paired, rng=rng,
                             n_bootstrap=n_bootstrap, confidence=confidence)
    counts = {s.count for s in strata}
    return StratumWin(
        kind=kind, key=key, label=strata[0].label,
        count=counts.pop() if len(counts) == 1 else None,
        mae={r.label: m for r, m in zip(runs, mae)},
        winner=runs[best].label, runner_up=runs[second].label, lead=lead,
        lead_low=low, lead_high=high, confidence=confidence, paired=paired,
        seeds=max(runs[best].k, runs[second].k), p_value=p,
    )


def lead_interval(
    winner: np.ndarray,
    runner_up: np.ndarray,
    *,
    paired: bool,
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    min_molecules: int = MIN_TESTED,
) -> tuple[float, float]:
    """The interval of MAE(runner_up) - MAE(winner) from absolute errors (`lead_test`)."""
    low, high, _ = lead_test(winner, runner_up, paired=paired, rng=rng, n_bootstrap=n_bootstrap,
                             confidence=confidence, min_molecules=min_molecules)
    return low, high


def lead_test(
    winner: np.ndarray,
    runner_up: np.ndarray,
    *,
    paired: bool,
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    min_molecules: int = MIN_TESTED,
) -> tuple[float, float, float]:
    """(low, high, p): the interval of MAE(runner_up) - MAE(winner) from absolute errors, and
    the two-sided p-value of a zero lead.

    Paired: winner and runner_up are (n,) errors of the same molecules in the same order, or
    (k, n) errors under k training seeds (the two k may differ), and each replicate resamples
    molecules, keeping both runs' errors of a molecule together (the runs' shared difficulty
    cancels): with one seed each, the bootstrap-t of the mean paired difference
    (`studentized_mean_test`, which holds its level on strata of tens of molecules where the
    percentile bootstrap did not); with seeds, the interval is `two_level_interval`'s (a t
    interval over the seeds plus the molecules' variance), and the MAEs are means over seeds.
    Unpaired: each run's (n,) molecules are resampled on their own (p from the normal
    standard error the interval's width implies). NaNs with fewer than `min_molecules` (at
    least 2) on either side: too few to resample.
    """
    winner = np.asarray(winner, dtype=np.float64)
    runner_up = np.asarray(runner_up, dtype=np.float64)
    if paired and winner.shape[-1] != runner_up.shape[-1]:
        raise ValueError(f"paired errors must hold the same molecules, got {winner.shape} and "
                         f"{runner_up.shape}")
    if min(winner.shape[-1], runner_up.shape[-1]) < max(2, min_molecules):
        return math.nan, math.nan, math.nan
    if paired and winner.size == winner.shape[-1] and runner_up.size == runner_up.shape[-1]:
        differences = runner_up.reshape(-1) - winner.reshape(-1)  # one seed each
        low, high, p = studentized_mean_test(differences, rng, n_bootstrap=n_bootstrap,
                                             confidence=confidence)
        return float(low[0]), float(high[0]), float(p[0])
    if paired:
        interval = two_level_interval([runner_up, winner], mae_difference, rng,
                                      n_bootstrap=n_bootstrap, confidence=confidence)
        return float(interval.low), float(interval.high), float(interval.p_value(0.0))
    low, high = percentile_bootstrap([winner.reshape(-1), runner_up.reshape(-1)], _lead,
                                     rng, n_bootstrap=n_bootstrap, confidence=confidence,
                                     paired=False)
    se = (high - low) / (2 * NormalDist().inv_cdf(0.5 + confidence / 2))
    lead = float(_lead(winner.reshape(1, -1), runner_up.reshape(1, -1))[0])
    p = 2 * NormalDist().cdf(-abs(lead) / se) if se > 0 else float(lead == 0)
    return float(low), float(high), p


def _lead(winner: np.ndarray, runner_up: np.ndarray) -> np.ndarray:
    """(n_replicates,): MAE(runner_up) - MAE(winner) of each replicate."""
    return runner_up.mean(axis=1) - winner.mean(axis=1)


def lead_test_name(win: StratumWin) -> str:
    """How the lead of `win` was tested, for the wins table."""
    if not win.tested:
        return f"none (under {MIN_TESTED} molecules)"
    if not win.paired:
        return "unpaired bootstrap (different molecules)"
    return ("two-level bootstrap (seeds, then molecules)" if win.seeds > 1
            else "paired bootstrap-t")

