"""The data_value analysis: what each thinned stratum's own training molecules are worth.

Its experiments are a reference (every training molecule) and runs that each thin one stratum
(subset.thin, subset.thin_fraction; study/data_value.py writes such a plan). For every thinned
stratum: its own-data curve, slope, error at zero own molecules and held-out check
(evaluation.data_value.own_curve); the cross effects of thinning it most on every reported
size and element, each measured on that stratum's test molecules outside the thinned one (so
that an overlap, such as the molecules of 12 atoms with F, does not pass an own effect off as
a cross effect); and, across thinned strata, whether rarer ones gain more per own molecule.
Computed once per analysis and shared by findings and report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from molstrata.errors import MolstrataError
from molstrata.evaluation.bootstrap import Interval
from molstrata.evaluation.data_value import (
    OwnCurve,
    Thinned,
    cross_effects,
    gain_against_rarity,
    own_curve,
)
from molstrata.evaluation.results import RunResult, alignment, same_molecules, stratum_rows
from molstrata.evaluation.scaling import MIN_TEST
from molstrata.evaluation.stratified import ELEMENT, SIZE
from molstrata.study.plan import Analysis
from molstrata.units import error_unit

N_BOOTSTRAP = 1000


@dataclass(frozen=True, eq=False)
class ValueAnalysis:
    """What the data_value analysis measured, errors in `unit` (meV for energies).

    strata: the thinned strata's labels, in the plan's order; stratum[label]: (kind, key);
    arms[label]: its experiments, most thinned first, the reference last; fractions[label]:
    theirs (1 for the reference); curves[label]: its OwnCurve; problems[label]: why a thinned
    stratum has no curve. evaluated: the reported strata's labels (sizes, then elements);
    cross[label]: the change of each evaluated stratum's MAE (outside the thinned stratum;
    the thinned stratum itself on the diagonal) from the reference to its most thinned arm,
    a vector Interval over `evaluated`, NaN where an evaluated stratum lies inside the thinned
    one; removed[label]: (len(evaluated),) training molecules of each evaluated stratum that
    arm lost; gradient[kind]: the slope of the gain per 1,000 own molecules on log10 share
    across the thinned strata of one kind (sizes, or elements: an element's chemistry is not
    a size's, so the two are not pooled), for the kinds with curves of 2 different shares."""

    unit: str
    reference: str
    strata: tuple[str, ...]
    stratum: dict[str, tuple[str, int | str]]
    arms: dict[str, tuple[str, ...]]
    fractions: dict[str, tuple[float, ...]]
    curves: dict[str, OwnCurve]
    problems: dict[str, str]
    evaluated: tuple[str, ...]
    cross: dict[str, Interval]
    removed: dict[str, np.ndarray]
    gradient: dict[str, Interval]
    k_seeds: int


_CACHE: dict[tuple, ValueAnalysis] = {}


def value_analysis(analysis: Analysis, results: Mapping[str, RunResult]) -> ValueAnalysis:
    """The analysis of these results (computed once: findings and report both ask)."""
    key = (analysis.name, analysis.experiments,
           tuple(id(results[name]) for name in analysis.experiments))
    if key not in _CACHE:
        _CACHE.clear()  # one study at a time
        _CACHE[key] = _compute(analysis, results)
    return _CACHE[key]


def _compute(analysis: Analysis, results: Mapping[str, RunResult]) -> ValueAnalysis:
    full = results[analysis.reference]
    if full.config.subset.thinned is not None and full.config.subset.thin_fraction < 1:
        raise MolstrataError(f"analysis {analysis.name}: its reference {analysis.reference} "
                             "thins a stratum; the reference trains on every molecule")
    factor, unit = error_unit(full.report.unit)
    base = full.predictions
    groups: dict[tuple[str, int | str], list[tuple[float, str]]] = {}
    for name in analysis.runs:
        subset = results[name].config.subset
        if subset.thinned is None or subset.thin_fraction == 1:
            raise MolstrataError(f"analysis {analysis.name}: {name} thins no stratum; a "
                                 "data_value analysis compares runs with subset.thin and a "
                                 "thin_fraction below 1 against the full reference")
        groups.setdefault(subset.thinned, []).append((subset.thin_fraction, name))
    names = [analysis.reference] + list(analysis.runs)
    index = {name: i for i, name in enumerate(names)}
    errors = [factor * _aligned(results[name], full) for name in names]
    sizes = np.asarray(base.sizes)

    evaluated, masks = [], []
    for kind, strata in ((SIZE, full.report.sizes), (ELEMENT, full.report.elements)):
        for s in strata:
            evaluated.append(s.label)
            masks.append(_mask(base, kind, s.key))
    labels, stratum, arms, fractions = [], {}, {}, {}
    curves, problems, cross, removed, thinned_all = {}, {}, {}, {}, []
    for (kind, key), members in groups.items():
        members.sort()
        label = _label(full, kind, key)
        labels.append(label)
        stratum[label] = (kind, key)
        arms[label] = tuple(name for _, name in members) + (analysis.reference,)
        fractions[label] = tuple(f for f, _ in members) + (1.0,)
        own = _mask(base, kind, key)
        n_own = np.array([_train_count(results[name], kind, key) for name in arms[label]])
        share = n_own[-1] / full.n_train
        if own.sum() < MIN_TEST:
            problems[label] = (f"{label}: {int(own.sum())} test molecules ({MIN_TEST} needed "
                               "for an own-data curve); use a larger slice")
        else:
            thinned = Thinned(label, n_own, tuple(index[name] for name in arms[label]), own,
                              share)
            curves[label] = own_curve(errors, thinned, _rng(1, len(labels)), strata=sizes,
                                      n_bootstrap=N_BOOTSTRAP)
            thinned_all.append(thinned)
        columns = [own if other == label else m & ~own for other, m in zip(evaluated, masks)]
        empty = [not c.any() for c in columns]
        change = cross_effects(errors[index[analysis.reference]], errors[index[arms[label][0]]],
                               [c if c.any() else own for c in columns], _rng(2, len(labels)),
                               strata=sizes, n_bootstrap=N_BOOTSTRAP)
        cross[label] = _blank(change, np.array(empty))
        most = results[arms[label][0]]
        removed[label] = np.array([
            _train_count(full, k, s.key) - _train_count(most, k, s.key)
            for k, strata in ((SIZE, full.report.sizes), (ELEMENT, full.report.elements))
            for s in strata])
    gradient = {}
    for number, kind in enumerate((SIZE, ELEMENT)):
        of_kind = [t for t in thinned_all if stratum[t.label][0] == kind]
        if len({t.share for t in of_kind}) >= 2:
            gradient[kind] = gain_against_rarity(errors, of_kind, _rng(3, number),
                                                 strata=sizes, n_bootstrap=N_BOOTSTRAP)
    return ValueAnalysis(unit, analysis.reference, tuple(labels), stratum, arms, fractions,
                         curves, problems, tuple(evaluated), cross, removed, gradient,
                         min(results[name].k for name in names))


def _rng(stream: int, number: int) -> np.random.Generator:
    return np.random.default_rng([4, stream, number])


def _mask(predictions, kind: str, key) -> np.ndarray:
    mask = np.zeros(len(predictions), dtype=bool)
    mask[stratum_rows(predictions, kind, key)] = True
    return mask


def _label(run: RunResult, kind: str, key) -> str:
    from molstrata.data.strata import stratum_label

    return stratum_label(int(key) if kind == SIZE else str(key))


def _train_count(run: RunResult, kind: str, key) -> float:
    """The stratum's training molecules, the mean over the run's training seeds."""
    return float(np.mean([m.report.training.count(kind, key) for m in run.replicates or (run,)]))


def _blank(interval: Interval, empty: np.ndarray) -> Interval:
    """The interval with the entries where `empty` is true set to NaN."""
    fields = {}
    for name in ("estimate", "low", "high", "se", "se_seed", "se_molecules", "df", "mc_error"):
        values = np.array(getattr(interval, name), dtype=np.float64)
        values[empty] = np.nan
        fields[name] = values
    return Interval(**fields, seeds_measured=interval.seeds_measured,
                    confidence=interval.confidence)


def _aligned(arm: RunResult, base: RunResult) -> np.ndarray:
    """The arm's (k, n) absolute errors in the molecule order of `base` (the same molecules)."""
    if not same_molecules([base, arm]):
        raise MolstrataError(
            f"{arm.label} was tested on other molecules than {base.label}; the arms of a data "
            "value analysis share one test set: run them from one plan"
        )
    return arm.seed_errors[:, alignment(base.predictions.ids, arm.predictions.ids)]
