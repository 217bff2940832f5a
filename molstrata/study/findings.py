"""Whether each of the study's claims held on this run, from this run's numbers.

Every finding states the claim (as the thesis made it), whether it holds here, and the
statistic it rests on. Differences between two models are measured on the same test molecules
with a paired bootstrap, stratified by size, so that "lower" means lower beyond noise only when
the interval says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from molstrata.evaluation.bootstrap import percentile_bootstrap
from molstrata.evaluation.compare import RunResult
from molstrata.evaluation.stratified import SIGNIFICANCE, StratifiedReport
from molstrata.study.plan import Analysis
from molstrata.units import error_unit

_H3 = ("Hypothesis 3: capping every size to the same number of training molecules balances "
       "the errors across sizes (a lower spread of the per-size MAE)")
STUDY_BEST_RATE = 10.0  # the rate the thesis found best for both weightings (Figures 7, 8)
N_BOOTSTRAP = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Finding:
    """One claim, whether it holds on this run (None: cannot be tested here), and why."""

    claim: str
    holds: bool | None
    evidence: str

    @property
    def verdict(self) -> str:
        return {True: "holds", False: "does not hold", None: "not testable"}[self.holds]


@dataclass(frozen=True)
class Change:
    """Macro-averaged MAE over `sizes` (each size weighs the same) of a reference and of a
    run, and the 95 % paired-bootstrap interval of run − reference (target unit)."""

    sizes: tuple[int, ...]
    reference: float
    value: float
    low: float
    high: float

    @property
    def difference(self) -> float:
        return self.value - self.reference

    @property
    def relative(self) -> float:
        return self.difference / self.reference if self.reference else float("nan")

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def size_mae(report: StratifiedReport) -> dict[int, float]:
    """MAE per reported size (sizes with enough test molecules), in the target unit."""
    return {int(s.key): s.summary.mae for s in report.sizes}


def macro_change(reference: RunResult, run: RunResult, sizes: Sequence[int], *,
                 n_bootstrap: int = N_BOOTSTRAP, seed: int = 0) -> Change | None:
    """Change of the macro MAE over `sizes` from `reference` to `run`, on the molecules both
    evaluated; None when no reported size is in `sizes`."""
    return _size_change(reference, run, sizes, lambda mae: mae.mean(axis=-1), n_bootstrap,
                        seed)


def spread_change(reference: RunResult, run: RunResult, *, n_bootstrap: int = N_BOOTSTRAP,
                  seed: int = 0) -> Change | None:
    """Change of the spread of the per-size MAE (coefficient of variation: standard deviation
    over mean, across the reported sizes) from `reference` to `run`, with its paired interval."""
    return _size_change(reference, run, size_mae(reference.report), _cv, n_bootstrap, seed,
                        min_sizes=2)


def _cv(mae: np.ndarray) -> np.ndarray:
    return mae.std(axis=-1) / mae.mean(axis=-1)


def _size_change(reference: RunResult, run: RunResult, sizes: Sequence[int] | Mapping,
                 measure: Callable[[np.ndarray], np.ndarray], n_bootstrap: int, seed: int,
                 min_sizes: int = 1) -> Change | None:
    """`measure` (per-size MAE (..., n_sizes) -> (...)) of both runs over the reported `sizes`,
    and the percentile interval of run − reference from a paired bootstrap: molecules resampled
    within each size, the same draw for both runs. None with fewer than `min_sizes` sizes."""
    reported = set(size_mae(reference.report)) & set(size_mae(run.report))
    wanted = tuple(sorted(int(s) for s in sizes if int(s) in reported))
    if len(wanted) < min_sizes:
        return None
    ref_err, run_err, mol_sizes = _paired_errors(reference, run)
    keep = np.isin(mol_sizes, wanted)
    ref_err, run_err, mol_sizes = ref_err[keep], run_err[keep], mol_sizes[keep]
    blocks = [np.flatnonzero(mol_sizes == size) for size in wanted]

    def per_size(errors: np.ndarray) -> np.ndarray:  # (..., n) -> (..., n_sizes)
        return np.stack([errors[..., rows].mean(axis=-1) for rows in blocks], axis=-1)

    def difference(ref: np.ndarray, new: np.ndarray) -> np.ndarray:
        return measure(per_size(new)) - measure(per_size(ref))

    low, high = percentile_bootstrap([ref_err, run_err], difference,
                                     np.random.default_rng(seed), n_bootstrap=n_bootstrap,
                                     confidence=CONFIDENCE, strata=mol_sizes)
    return Change(wanted, float(measure(per_size(ref_err))), float(measure(per_size(run_err))),
                  float(low), float(high))


def _paired_errors(a: RunResult, b: RunResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Absolute errors of a and b on the molecules both evaluated (matched by id), and sizes."""
    pa, pb = a.predictions, b.predictions
    common, ia, ib = np.intersect1d(pa.ids, pb.ids, return_indices=True)
    if len(common) == 0:
        raise ValueError(f"{a.label} and {b.label} share no evaluated molecule")
    return (np.abs(pa.predicted - pa.true)[ia], np.abs(pb.predicted - pb.true)[ib],
            np.asarray(pa.sizes)[ia])


def analyse(analysis: Analysis, results: Mapping[str, RunResult]) -> list[Finding]:
    """The findings of one analysis of a plan."""
    return FINDINGS[analysis.kind](analysis, results)


def _baseline(analysis: Analysis, results: Mapping[str, RunResult]) -> list[Finding]:
    run = results[analysis.experiments[0]]
    report = run.report
    factor, unit = error_unit(report.unit)
    findings = [
        _correlation(report, "size", "Hypothesis 1: the rarer a molecule size is in training, "
                     "the larger its error"),
        _correlation(report, "element", "Hypothesis 2: the rarer an element is in training, "
                     "the larger the error of the molecules that contain it"),
    ]
    overall = report.overall.summary.mae
    worst = report.worst.get("size")
    if worst is not None:
        ratio = worst.summary.mae / overall
        findings.append(Finding(
            "One global error figure hides how badly the rare sizes are predicted",
            ratio > 1,
            f"global MAE {factor * overall:.1f} {unit}; worst size {worst.label}: "
            f"{factor * worst.summary.mae:.1f} {unit} ({ratio:.1f}x the global figure, "
            f"{worst.train_share * 100:.2f} % of the training set)"))
    return findings


def _correlation(report: StratifiedReport, kind: str, claim: str) -> Finding:
    corr = report.correlations.get(kind)
    if corr is None or corr.rho is None or not np.isfinite(corr.rho):
        n = 0 if corr is None else corr.n_strata
        return Finding(claim, None, f"{n} {kind} strata: too few for a rank correlation")
    note = f"; {corr.note}" if corr.note else ""
    return Finding(
        claim, bool(corr.holds),
        f"Spearman rho = {corr.rho:+.2f} between {'an' if kind[0] in 'aeiou' else 'a'} {kind}'s "
        "share of the training set and its "
        f"MAE over {corr.n_strata} {kind} strata, p = {corr.p_value:.3g} "
        f"({corr.method}; holds when rho < 0 and p < {SIGNIFICANCE:g}){note}")


def _undersampling(analysis: Analysis, results: Mapping[str, RunResult]) -> list[Finding]:
    reference = results[analysis.reference]
    caps = sorted((results[name] for name in analysis.runs),
                  key=lambda r: r.config.subset.cap or 0)
    factor, unit = error_unit(reference.report.unit)
    spreads = [(run, spread_change(reference, run)) for run in caps]
    if any(change is None for _, change in spreads):
        findings = [Finding(_H3, None, "fewer than 2 sizes are reported")]
    else:
        findings = [Finding(
            _H3, any(change.high < 0 for _, change in spreads),
            f"coefficient of variation (std / mean) of the per-size MAE over "
            f"{len(spreads[0][1].sizes)} sizes: {reference.label} {spreads[0][1].reference:.2f}; "
            + "; ".join(f"{run.label} {c.value:.2f} (95 % CI of the change "
                        f"[{c.low:+.2f}, {c.high:+.2f}])" for run, c in spreads)
            + "; holds when a cap lowers it beyond the interval")]
    lo, hi = analysis.sizes or (19, max(size_mae(reference.report)))
    sizes = range(lo, hi + 1)
    changes = [(run, macro_change(reference, run, sizes)) for run in caps]
    if any(change is None for _, change in changes):
        return findings + [Finding(
            f"The most balanced cap lowers the error of sizes {lo}-{hi}", None,
            f"no size {lo}-{hi} has enough test molecules to be reported")]
    first, change = changes[0]
    findings.append(Finding(
        f"The most balanced cap ({first.label}) lowers the error of the large sizes "
        f"({_range(change.sizes)} atoms)",
        change.high < 0,
        _change_text(change, reference.label, first.label, factor, unit)))
    if len(changes) > 1:
        helped = [run.label for run, c in changes[1:] if c.high < 0]
        findings.append(Finding(
            "Only the most balanced cap helps: the larger caps do not lower the error of "
            f"sizes {_range(change.sizes)}",
            not helped,
            "; ".join(_change_text(c, reference.label, run.label, factor, unit)
                      for run, c in changes[1:])))
    return findings


def _rate_sweep(analysis: Analysis, results: Mapping[str, RunResult]) -> list[Finding]:
    reference = results[analysis.reference]
    factor, unit = error_unit(reference.report.unit)
    lo, hi = analysis.sizes or (min(size_mae(reference.report)), max(size_mae(reference.report)))
    runs = [reference] + [results[name] for name in analysis.runs]
    changes = {run.label: macro_change(reference, run, range(lo, hi + 1)) for run in runs[1:]}
    if any(c is None for c in changes.values()):
        return [Finding(f"A positive rate lowers the error of sizes {lo}-{hi}", None,
                        f"no size {lo}-{hi} has enough test molecules to be reported")]
    rates = {run.label: run.config.training.rate for run in runs}
    macro = {reference.label: next(iter(changes.values())).reference,
             **{label: c.value for label, c in changes.items()}}
    best = min(macro, key=macro.get)
    sizes = next(iter(changes.values())).sizes
    listing = ", ".join(f"r = {rates[label]:g}: {factor * value:.1f}"
                        for label, value in sorted(macro.items(), key=lambda kv: rates[kv[0]]))
    findings = [Finding(
        f"Weighting the loss towards large sizes lowers their error: the best rate beats the "
        f"plain loss (r = 0) on sizes {_range(sizes)}",
        None if best == reference.label else changes[best].high < 0,
        f"macro MAE over sizes {_range(sizes)} ({unit}): {listing}"
        + ("" if best == reference.label else
           "; " + _change_text(changes[best], reference.label, best, factor, unit)))]
    if best == reference.label:
        findings[0] = Finding(findings[0].claim, False, findings[0].evidence
                              + "; the plain loss is best")
    tested = sorted(rates.values())
    findings.append(Finding(
        f"The best rate is r = {STUDY_BEST_RATE:g}, as the study found for both weightings",
        None if STUDY_BEST_RATE not in tested else rates[best] == STUDY_BEST_RATE,
        f"lowest macro MAE over sizes {_range(sizes)} at r = {rates[best]:g} "
        f"(rates tried: {', '.join(f'{r:g}' for r in tested)})"))
    return findings


def _directed(analysis: Analysis, results: Mapping[str, RunResult]) -> list[Finding]:
    reference = results[analysis.reference]
    run = results[analysis.runs[0]]
    factor, unit = error_unit(reference.report.unit)
    lo, hi = analysis.sizes or (run.config.subset.min_size or 1, run.config.subset.max_size or 99)
    reported = sorted(size_mae(reference.report))
    inside = [s for s in reported if lo <= s <= hi]
    outside = [s for s in reported if not lo <= s <= hi]
    change_in = macro_change(reference, run, inside)
    change_out = macro_change(reference, run, outside)
    per_size = _per_size_changes(reference, run, factor)
    findings = [Finding(
        f"Hypothesis 4: training only on the targeted sizes ({lo}-{hi} atoms) lowers their "
        "error",
        None if change_in is None else change_in.high < 0,
        "no targeted size is reported" if change_in is None else
        _change_text(change_in, reference.label, run.label, factor, unit)
        + f"; per size ({unit}): {per_size}")]
    findings.append(Finding(
        "The sizes left out of training get worse",
        None if change_out is None else change_out.low > 0,
        "every reported size is targeted" if change_out is None else
        _change_text(change_out, reference.label, run.label, factor, unit)))
    return findings


def _final(analysis: Analysis, results: Mapping[str, RunResult]) -> list[Finding]:
    default = results[analysis.reference]
    custom = results[analysis.runs[0]]
    d_name, c_name = analysis.label(default.label), analysis.label(custom.label)
    factor, unit = error_unit(default.report.unit)
    mse_d, mse_c = default.report.overall.summary.mse, custom.report.overall.summary.mse
    squared = default.report.unit + "²"
    findings = [Finding(
        f"The {d_name} model has the lower total MSE (study: 0.0643 against 0.0925 eV²)",
        mse_d < mse_c,
        f"test MSE {d_name} {mse_d:.4g} {squared}, {c_name} {mse_c:.4g} {squared} "
        f"(MAE {factor * default.report.overall.summary.mae:.1f} against "
        f"{factor * custom.report.overall.summary.mae:.1f} {unit})")]
    reported = sorted(size_mae(default.report))
    lo, hi = analysis.sizes or (20, max(reported))
    inside = [s for s in reported if lo <= s <= hi]
    below = [s for s in reported if s < lo]
    change_in = macro_change(default, custom, inside)
    change_below = macro_change(default, custom, below)
    findings.append(Finding(
        f"The {c_name} model is better on the large sizes ({lo}-{hi} atoms)",
        None if change_in is None else change_in.high < 0,
        "no such size is reported" if change_in is None else
        _change_text(change_in, d_name, c_name, factor, unit)))
    findings.append(Finding(
        f"The {d_name} model is better on the smaller sizes (under {lo} atoms)",
        None if change_below is None else change_below.low > 0,
        "no such size is reported" if change_below is None else
        _change_text(change_below, d_name, c_name, factor, unit)))
    time_d, time_c = _run_time(default), _run_time(custom)
    findings.append(Finding(
        f"The {c_name} model takes less time to train and evaluate (study: 1 h 28 m against "
        "1 h 46 m)",
        time_c < time_d,
        f"training + evaluation: {d_name} {time_d:.0f} s, {c_name} {time_c:.0f} s"))
    return findings


def _compare(analysis: Analysis, results: Mapping[str, RunResult]) -> list[Finding]:
    return []


def _run_time(run: RunResult) -> float:
    return float(run.summary.get("total_seconds") or 0.0) + float(run.evaluation_seconds or 0.0)


def _per_size_changes(reference: RunResult, run: RunResult, factor: float) -> str:
    ref, new = size_mae(reference.report), size_mae(run.report)
    return ", ".join(f"{s}: {factor * ref[s]:.0f}->{factor * new[s]:.0f}"
                     for s in sorted(set(ref) & set(new)))


def _change_text(change: Change, ref_label: str, label: str, factor: float, unit: str) -> str:
    return (f"macro MAE over sizes {_range(change.sizes)}: {ref_label} "
            f"{factor * change.reference:.1f} -> {label} {factor * change.value:.1f} {unit} "
            f"({100 * change.relative:+.0f} %, 95 % CI of the difference "
            f"[{factor * change.low:+.1f}, {factor * change.high:+.1f}] {unit}, paired bootstrap "
            "over the test molecules)")


def _range(sizes: Sequence[int]) -> str:
    sizes = list(sizes)
    if not sizes:
        return "none"
    if sizes == list(range(sizes[0], sizes[-1] + 1)):
        return f"{sizes[0]}-{sizes[-1]}" if len(sizes) > 1 else str(sizes[0])
    return ", ".join(map(str, sizes))


# The claims each analysis kind tests: one entry per kind of plan.ANALYSES.
FINDINGS: dict[str, Callable[[Analysis, Mapping[str, RunResult]], list[Finding]]] = {
    "baseline": _baseline,
    "undersampling": _undersampling,
    "rate_sweep": _rate_sweep,
    "directed": _directed,
    "final": _final,
    "compare": _compare,
}
