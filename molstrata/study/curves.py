"""The learning_curve analysis: per-stratum learning curves over nested training subsets.

For every size and element stratum, its test MAE (mean over training seeds) is set against the
number of that stratum's molecules in each training subset, not the subset's total, and fitted
(evaluation.scaling: a power law, or one with a floor where AICc prefers it), with two-level
bootstrap intervals (seeds, then the stratum's test molecules). From the fits: a held-out
check (fit without the largest subset, predict it) and whether rarer strata learn more slowly
(Spearman of the exponent b against the stratum's training share).

The advice is what the design measures: growing the whole training set in proportion. In
nested subsets every stratum's count is its share times the total, so a stratum's curve
against its own count is its curve against the total, and a "gain per added molecule of this
stratum" read from it would rank rare strata first by construction. So the advice fits each
stratum's MAE against the subset's total and says how many training molecules in all, grown
in proportion, reach the target; what one stratum's own molecules are worth is measured by
the data_value analysis, which thins one stratum at a time (study/value.py). Computed once
per analysis and shared by findings and report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from molstrata.errors import MolstrataError
from molstrata.evaluation.metrics import spearman
from molstrata.evaluation.results import RunResult, alignment, same_molecules, stratum_rows
from molstrata.evaluation.scaling import (
    Advice,
    Curve,
    HeldOutCheck,
    StratumErrors,
    bootstrap_curve,
    data_advice,
    fit_problem,
    global_curve,
    held_out_check,
)
from molstrata.evaluation.stratified import ELEMENT, SIZE, stratum_rng
from molstrata.study.plan import Analysis
from molstrata.units import error_unit

DEFAULT_TARGET = 43.0
"""meV: chemical accuracy, the advice's target when the plan names none."""
N_BOOTSTRAP = 1000
GRID = 40
"""Points of each fitted curve drawn, from the smallest measured n to EXTEND x the largest."""
EXTEND = 8.0


@dataclass(frozen=True, eq=False)
class CurveAnalysis:
    """What the learning_curve analysis measured. Errors in `unit` (meV for energies).

    subsets: the experiments, smallest first; n_train: (m,) their training molecules.
    overall: the global curve. curves[kind][label]: each fitted stratum's Curve (kind: size or
    element); problems[kind][label]: why a stratum has no fit. advice[kind]: the
    proportional-growth advice (each stratum fitted against the subset's total: its n_train
    and n_needed are totals; in the strata's order); held_out[kind]: the held-out check;
    shares[kind][label]: training share in the largest subset; correlation[kind]: (rho, p,
    n) of share against b over fitted strata.
    """

    unit: str
    target: float
    subsets: tuple[str, ...]
    n_train: np.ndarray
    k_seeds: tuple[int, ...]
    overall: Curve
    curves: dict[str, dict[str, Curve]]
    problems: dict[str, dict[str, str]]
    advice: dict[str, list[Advice]]
    held_out: dict[str, HeldOutCheck]
    shares: dict[str, dict[str, float]]
    correlation: dict[str, tuple[float, float, int]]


_CACHE: dict[tuple, CurveAnalysis] = {}


def curve_analysis(analysis: Analysis, results: Mapping[str, RunResult]) -> CurveAnalysis:
    """The analysis of these results (computed once: findings and report both ask)."""
    key = (analysis.name, analysis.experiments, analysis.target_mae,
           tuple(id(results[name]) for name in analysis.experiments))
    if key not in _CACHE:
        _CACHE.clear()  # one study at a time
        _CACHE[key] = _compute(analysis, results)
    return _CACHE[key]


def _compute(analysis: Analysis, results: Mapping[str, RunResult]) -> CurveAnalysis:
    arms = sorted((results[name] for name in analysis.experiments), key=lambda r: r.n_train)
    if len({arm.n_train for arm in arms}) < 3:
        raise MolstrataError(
            f"analysis {analysis.name}: a learning curve needs at least 3 training subsets of "
            f"different sizes, got {[arm.n_train for arm in arms]}; add experiments with "
            "other subset.max_train"
        )
    factor, unit = error_unit(arms[0].report.unit)
    base = arms[0].predictions
    errors = [factor * _aligned(arm, arms[0]) for arm in arms]  # (k, n) each
    target = analysis.target_mae or DEFAULT_TARGET
    n_total = np.array([arm.n_train for arm in arms], dtype=float)
    grid = np.geomspace(n_total[0], EXTEND * n_total[-1], GRID)
    overall = global_curve(errors, n_total, np.random.default_rng(0), at_n=grid,
                           target_mae=target, n_bootstrap=N_BOOTSTRAP)

    largest = arms[-1].report
    curves: dict[str, dict[str, Curve]] = {}
    problems: dict[str, dict[str, str]] = {}
    advice: dict[str, list[Advice]] = {}
    held: dict[str, HeldOutCheck] = {}
    shares: dict[str, dict[str, float]] = {}
    correlation: dict[str, tuple[float, float, int]] = {}
    for kind, strata in ((SIZE, largest.sizes), (ELEMENT, largest.elements)):
        measured = []
        for stratum in strata:
            rows = stratum_rows(base, kind, stratum.key)
            n_train = np.array([arm.report.training.count(kind, stratum.key) for arm in arms],
                               dtype=float)
            measured.append(StratumErrors(stratum.label, n_train, [e[:, rows] for e in errors]))
        curves[kind], problems[kind] = {}, {}
        shares[kind] = {s.label: s.train_share for s in strata}
        for index, item in enumerate(measured):
            usable = item.n_train >= 1
            problem = fit_problem(item.n_train[usable], len(item.errors[0][0]), item.label)
            if problem is not None:
                problems[kind][item.label] = problem
                continue
            rng = stratum_rng(1, kind, index)
            curves[kind][item.label] = bootstrap_curve(
                list(item.errors), item.n_train, rng, label=item.label,
                at_n=np.geomspace(max(1.0, item.n_train[usable][0]),
                                  EXTEND * item.n_train[-1], GRID),
                target_mae=target, n_bootstrap=N_BOOTSTRAP)
        proportional = [StratumErrors(item.label, n_total, item.errors) for item in measured]
        order = {item.label: i for i, item in enumerate(measured)}
        advice[kind] = sorted(data_advice(proportional, target,
                                          stratum_rng(2, kind),
                                          n_bootstrap=N_BOOTSTRAP),
                              key=lambda a: order[a.label])
        held[kind] = held_out_check(measured)
        fitted = list(curves[kind])
        if len(fitted) >= 3:
            rho, p = spearman(np.array([shares[kind][label] for label in fitted]),
                              np.array([curves[kind][label].fit.b for label in fitted]))
            correlation[kind] = (float(rho), float(p), len(fitted))
    return CurveAnalysis(unit, float(target), tuple(arm.label for arm in arms), n_total,
                         tuple(arm.k for arm in arms), overall, curves, problems, advice, held,
                         shares, correlation)


def _aligned(arm: RunResult, base: RunResult) -> np.ndarray:
    """The arm's (k, n) absolute errors in the molecule order of `base` (the same molecules)."""
    if not same_molecules([base, arm]):
        raise MolstrataError(
            f"{arm.label} was tested on other molecules than the smallest subset; the subsets of "
            "a learning curve share one split: run them from one plan"
        )
    return arm.seed_errors[:, alignment(base.predictions.ids, arm.predictions.ids)]


def exponent_text(curve: Curve) -> str:
    low, high = curve.b_interval
    return f"b = {curve.fit.b:.2f} [{low:.2f}, {high:.2f}]"


def needed_text(n: float, interval: tuple[float, float]) -> str:
    """Molecules needed, with its interval, as a reader wants it."""
    def one(x: float) -> str:
        if not math.isfinite(x):
            return "unreachable"
        return f"{x:,.0f}" if x < 1e7 else f"{x:.1e}"
    return f"{one(n)} [{one(interval[0])}, {one(interval[1])}]"
