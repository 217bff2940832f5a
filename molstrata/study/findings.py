"""Whether each of the study's claims held on this run, from this run's numbers.

Every finding states the claim, what the thesis found, whether it holds here, and the
statistic it rests on. Differences between two models are measured on the same test molecules
with a paired bootstrap stratified by size; when the experiments were trained with several
training seeds, the bootstrap has two levels (each arm's seeds, then the molecules), so that a
difference that flips sign between seeds is not called a win. A verdict has three values: the
claim holds (the interval lies on its side of zero), does not hold (the interval lies on the
other side), or cannot tell (the interval straddles zero, or the claim cannot be tested here).
Each finding also says what its verdict does not measure: the training seed when every arm had
one, and convergence when an arm's validation curve was still falling at the end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from molstrata.evaluation.bootstrap import two_level_bootstrap
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
    """One claim; whether it holds on this run (True), is contradicted (False) or cannot be
    told (None); why; what the thesis found (`thesis`, and `thesis_holds`: whether the thesis
    found the claim true, None where its text gives no verdict); and `caveats`, what the
    verdict leaves unmeasured (one training seed, models still learning)."""

    claim: str
    holds: bool | None
    evidence: str
    thesis: str = ""
    thesis_holds: bool | None = None
    caveats: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        return {True: "holds", False: "does not hold", None: "cannot tell"}[self.holds]

    @property
    def agreement(self) -> str:
        """Whether this run agrees with the thesis on the claim."""
        if self.holds is None:
            return "cannot tell at this budget"
        if self.thesis_holds is None:
            return "the thesis gives no verdict"
        return "agrees" if self.holds == self.thesis_holds else "disagrees"


@dataclass(frozen=True)
class Change:
    """Macro-averaged MAE over `sizes` (each size weighs the same) of a reference and of a
    run, and the 95 % paired-bootstrap interval of run − reference (target unit)."""

    sizes: tuple[int, ...]
    reference: float
    value: float
    low: float
    high: float
    seeds: tuple[int, int] = (1, 1)
    """Training seeds of the reference and of the run."""

    @property
    def difference(self) -> float:
        return self.value - self.reference

    @property
    def relative(self) -> float:
        return self.difference / self.reference if self.reference else float("nan")

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0

    @property
    def lower(self) -> bool | None:
        """True when the run is lower beyond noise, False when higher, None when the interval
        holds zero."""
        return True if self.high < 0 else False if self.low > 0 else None


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
    ref_err, run_err, mol_sizes = ref_err[:, keep], run_err[:, keep], mol_sizes[keep]
    blocks = [np.flatnonzero(mol_sizes == size) for size in wanted]

    def per_size(errors: np.ndarray) -> np.ndarray:
        """(..., k, n) errors -> (..., n_sizes): each size's MAE, averaged over the seeds."""
        return np.stack([errors[..., rows].mean(axis=-1).mean(axis=-1) for rows in blocks],
                        axis=-1)

    def difference(ref: np.ndarray, new: np.ndarray) -> np.ndarray:
        return measure(per_size(new)) - measure(per_size(ref))

    low, high = two_level_bootstrap([ref_err, run_err], difference, np.random.default_rng(seed),
                                    n_bootstrap=n_bootstrap, confidence=CONFIDENCE,
                                    strata=mol_sizes)
    return Change(wanted, float(measure(per_size(ref_err))), float(measure(per_size(run_err))),
                  float(low), float(high), (reference.k, run.k))


def global_change(reference: RunResult, run: RunResult, *, squared: bool = False,
                  n_bootstrap: int = N_BOOTSTRAP, seed: int = 0) -> Change:
    """Change of the MAE (or the MSE, `squared`) over every test molecule from `reference` to
    `run`, means over seeds, with its two-level paired interval; sizes: every size."""
    ref_err, run_err, mol_sizes = _paired_errors(reference, run)
    power = 2 if squared else 1

    def value(errors: np.ndarray) -> np.ndarray:  # (..., k, n) -> (...)
        return (errors**power).mean(axis=-1).mean(axis=-1)

    low, high = two_level_bootstrap([ref_err, run_err], lambda a, b: value(b) - value(a),
                                    np.random.default_rng(seed), n_bootstrap=n_bootstrap,
                                    confidence=CONFIDENCE)
    return Change(tuple(int(s) for s in np.unique(mol_sizes)), float(value(ref_err)),
                  float(value(run_err)), float(low), float(high), (reference.k, run.k))


def _paired_errors(a: RunResult, b: RunResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Absolute errors (k, n) of a and b under each of their training seeds, on the molecules
    both evaluated (matched by id), and the molecules' sizes (n,)."""
    pa, pb = a.predictions, b.predictions
    common, ia, ib = np.intersect1d(pa.ids, pb.ids, return_indices=True)
    if len(common) == 0:
        raise ValueError(f"{a.label} and {b.label} share no evaluated molecule")
    return a.seed_errors[:, ia], b.seed_errors[:, ib], np.asarray(pa.sizes)[ia]


def analyse(analysis: Analysis, results: Mapping[str, RunResult],
            still_learning: Mapping[str, str] | None = None) -> list[Finding]:
    """The findings of one analysis of a plan. still_learning: experiment -> why its models
    were still learning at the end (training.convergence); a finding that rests on such an
    experiment says so, as does one whose experiments had a single training seed."""
    findings = FINDINGS[analysis.kind](analysis, results)
    runs = [results[name] for name in analysis.experiments]
    caveats = []
    if all(run.k == 1 for run in runs):
        caveats.append("one training seed per experiment: training noise not measured")
    learning = [name for name in analysis.experiments if name in (still_learning or {})]
    if 0 < len(learning) <= 2:
        caveats.append("from models still learning (" + "; ".join(
            f"{name}: {still_learning[name]}" for name in learning) + ")")
    elif learning:
        caveats.append(f"from models still learning ({len(learning)} of "
                       f"{len(analysis.experiments)} experiments: {', '.join(learning)}; "
                       "see each in the report's table of experiments)")
    return [dataclasses.replace(f, caveats=(*f.caveats, *caveats)) for f in findings]


def _baseline(analysis: Analysis, results: Mapping[str, RunResult]) -> list[Finding]:
    run = results[analysis.experiments[0]]
    report = run.report
    factor, unit = error_unit(report.unit)
    findings = [
        _correlation(run, "size", "Hypothesis 1: the rarer a molecule size is in training, "
                     "the larger its error"),
        _correlation(run, "element", "Hypothesis 2: the rarer an element is in training, "
                     "the larger the error of the molecules that contain it"),
    ]
    overall = report.overall.summary
    worst = report.worst.get("size")
    if worst is not None:
        ratio = worst.summary.mae / overall.mae
        beyond = worst.summary.mae_ci_low > overall.mae_ci_high
        findings.append(Finding(
            "One global error figure hides how badly the rare sizes are predicted",
            True if beyond else None,
            f"global MAE {factor * overall.mae:.1f} {unit} [{factor * overall.mae_ci_low:.1f}, "
            f"{factor * overall.mae_ci_high:.1f}]; worst size {worst.label}: "
            f"{factor * worst.summary.mae:.1f} {unit} [{factor * worst.summary.mae_ci_low:.1f}, "
            f"{factor * worst.summary.mae_ci_high:.1f}] ({ratio:.1f}x the global figure, "
            f"{worst.train_share * 100:.2f} % of the training set); holds when the two "
            "intervals do not overlap",
            "one global MSE represents only the frequent molecules", True))
    return findings


def _correlation(run: RunResult, kind: str, claim: str) -> Finding:
    thesis = "confirmed: validation loss inversely correlated with the frequency"
    corr = run.report.correlations.get(kind)
    if corr is None or corr.rho is None or not np.isfinite(corr.rho):
        n = 0 if corr is None else corr.n_strata
        return Finding(claim, None, f"{n} {kind} strata: too few for a rank correlation",
                       thesis, True)
    note = f"; {corr.note}" if corr.note else ""
    significant = corr.p_value < SIGNIFICANCE
    holds = None if not significant else bool(corr.rho < 0)
    seeds = ""
    if run.k > 1:
        per_seed = [r.report.correlations.get(kind) for r in run.replicates]
        held = sum(bool(c is not None and c.holds) for c in per_seed)
        seeds = (f"; on the MAE averaged over {run.k} training seeds, and it holds on "
                 f"{held} of the {run.k} seeds' own models")
    return Finding(
        claim, holds,
        f"Spearman rho = {corr.rho:+.2f} between {'an' if kind[0] in 'aeiou' else 'a'} {kind}'s "
        "share of the training set and its "
        f"MAE over {corr.n_strata} {kind} strata, p = {corr.p_value:.3g} "
        f"({corr.method}; holds when rho < 0 and p < {SIGNIFICANCE:g}, does not hold when "
        f"rho > 0 and p < {SIGNIFICANCE:g}){seeds}{note}",
        thesis, True)


def _undersampling(analysis: Analysis, results: Mapping[str, RunResult]) -> list[Finding]:
    reference = results[analysis.reference]
    caps = sorted((results[name] for name in analysis.runs),
                  key=lambda r: r.config.subset.cap or 0)
    factor, unit = error_unit(reference.report.unit)
    thesis_h3 = ("not as stated: only the 2,000 cap helped, and only above 18 atoms; "
                 "balancing the data alone did not balance the errors")
    spreads = [(run, spread_change(reference, run)) for run in caps]
    if any(change is None for _, change in spreads):
        findings = [Finding(_H3, None, "fewer than 2 sizes are reported", thesis_h3, False)]
    else:
        verdicts = [c.lower for _, c in spreads]
        findings = [Finding(
            _H3, True if True in verdicts else False if all(v is False for v in verdicts)
            else None,
            f"coefficient of variation (std / mean) of the per-size MAE over "
            f"{len(spreads[0][1].sizes)} sizes: {reference.label} {spreads[0][1].reference:.2f}; "
            + "; ".join(f"{run.label} {c.value:.2f} (95 % CI of the change "
                        f"[{c.low:+.2f}, {c.high:+.2f}])" for run, c in spreads)
            + "; holds when a cap lowers it beyond the interval, does not hold when every "
              "cap raises it",
            thesis_h3, False)]
    lo, hi = analysis.sizes or (19, max(size_mae(reference.report)))
    sizes = range(lo, hi + 1)
    thesis_cap = "the 2,000 cap (the most balanced) helped sizes over 18 atoms"
    changes = [(run, macro_change(reference, run, sizes)) for run in caps]
    if any(change is None for _, change in changes):
        return findings + [Finding(
            f"The most balanced cap lowers the error of sizes {lo}-{hi}", None,
            f"no size {lo}-{hi} has enough test molecules to be reported", thesis_cap, True)]
    first, change = changes[0]
    findings.append(Finding(
        f"The most balanced cap ({first.label}) lowers the error of the large sizes "
        f"({_range(change.sizes)} atoms)",
        change.lower,
        _change_text(change, reference.label, first.label, factor, unit), thesis_cap, True))
    if len(changes) > 1:
        lowered = [c.lower for _, c in changes[1:]]
        findings.append(Finding(
            "Only the most balanced cap helps: the larger caps do not lower the error of "
            f"sizes {_range(change.sizes)}",
            False if True in lowered else True if all(v is False for v in lowered) else None,
            "; ".join(_change_text(c, reference.label, run.label, factor, unit)
                      for run, c in changes[1:])
            + "; holds when every larger cap raises it, does not hold when one lowers it",
            "the 4,000 and 6,000 caps did not help", True))
    return findings


def _rate_sweep(analysis: Analysis, results: Mapping[str, RunResult]) -> list[Finding]:
    reference = results[analysis.reference]
    factor, unit = error_unit(reference.report.unit)
    lo, hi = analysis.sizes or (min(size_mae(reference.report)), max(size_mae(reference.report)))
    thesis = f"r = {STUDY_BEST_RATE:g} was best for both weightings"
    runs = [reference] + [results[name] for name in analysis.runs]
    changes = {run.label: macro_change(reference, run, range(lo, hi + 1)) for run in runs[1:]}
    if any(c is None for c in changes.values()):
        return [Finding(f"A positive rate lowers the error of sizes {lo}-{hi}", None,
                        f"no size {lo}-{hi} has enough test molecules to be reported",
                        thesis, True)]
    by_label = {run.label: run for run in runs}
    rates = {run.label: run.config.training.rate for run in runs}
    macro = {reference.label: next(iter(changes.values())).reference,
             **{label: c.value for label, c in changes.items()}}
    best = min(macro, key=macro.get)
    sizes = next(iter(changes.values())).sizes
    listing = ", ".join(f"r = {rates[label]:g}: {factor * value:.1f}"
                        for label, value in sorted(macro.items(), key=lambda kv: rates[kv[0]]))
    if best == reference.label:
        rival = min(changes, key=lambda label: changes[label].value)
        beats = None if changes[rival].lower is None else False
        detail = ("; the plain loss is best; the closest rate: "
                  + _change_text(changes[rival], reference.label, rival, factor, unit))
    else:
        beats = changes[best].lower
        detail = "; " + _change_text(changes[best], reference.label, best, factor, unit)
    findings = [Finding(
        f"Weighting the loss towards large sizes lowers their error: the best rate beats the "
        f"plain loss (r = 0) on sizes {_range(sizes)}",
        beats, f"macro MAE over sizes {_range(sizes)} ({unit}): {listing}{detail}",
        thesis, True)]
    tested = sorted(rates.values())
    study_rate = next((label for label, r in rates.items() if r == STUDY_BEST_RATE), None)
    if study_rate is None:
        findings.append(Finding(
            f"The best rate is r = {STUDY_BEST_RATE:g}, as the study found for both weightings",
            None, f"r = {STUDY_BEST_RATE:g} was not tried (rates tried: "
                  f"{', '.join(f'{r:g}' for r in tested)})", thesis, True))
        return findings
    others = sorted((label for label in macro if label != study_rate), key=macro.get)
    rival = others[0]
    versus = macro_change(by_label[rival], by_label[study_rate], range(lo, hi + 1))
    holds = None if versus is None else versus.lower
    findings.append(Finding(
        f"The best rate is r = {STUDY_BEST_RATE:g}, as the study found for both weightings",
        holds,
        f"lowest macro MAE over sizes {_range(sizes)} at r = {rates[best]:g} (rates tried: "
        f"{', '.join(f'{r:g}' for r in tested)}); r = {STUDY_BEST_RATE:g} against the best "
        f"other rate (r = {rates[rival]:g}): "
        + ("no size reported" if versus is None else
           _change_text(versus, rival, study_rate, factor, unit)),
        thesis, True))
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
        None if change_in is None else change_in.lower,
        "no targeted size is reported" if change_in is None else
        _change_text(change_in, reference.label, run.label, factor, unit)
        + f"; per size ({unit}): {per_size}",
        "confirmed: sizes over 19 atoms improved a lot", True)]
    findings.append(Finding(
        "The sizes left out of training get worse",
        None if change_out is None or change_out.lower is None else not change_out.lower,
        "every reported size is targeted" if change_out is None else
        _change_text(change_out, reference.label, run.label, factor, unit),
        "confirmed: sizes under 19 atoms got worse", True))
    return findings


def _final(analysis: Analysis, results: Mapping[str, RunResult]) -> list[Finding]:
    default = results[analysis.reference]
    custom = results[analysis.runs[0]]
    d_name, c_name = analysis.label(default.label), analysis.label(custom.label)
    factor, unit = error_unit(default.report.unit)
    squared = default.report.unit + "²"
    mse = global_change(custom, default, squared=True)
    findings = [Finding(
        f"The {d_name} model has the lower total MSE (study: 0.0643 against 0.0925 eV²)",
        mse.lower,
        f"test MSE {d_name} {mse.value:.4g} {squared}, {c_name} {mse.reference:.4g} {squared} "
        f"(95 % CI of {d_name} - {c_name}: [{mse.low:+.4g}, {mse.high:+.4g}] {squared}, "
        f"{_method(mse)}; MAE {factor * default.report.overall.summary.mae:.1f} against "
        f"{factor * custom.report.overall.summary.mae:.1f} {unit})",
        "confirmed: default 0.0643 against custom 0.0925 eV²", True)]
    reported = sorted(size_mae(default.report))
    lo, hi = analysis.sizes or (20, max(reported))
    inside = [s for s in reported if lo <= s <= hi]
    below = [s for s in reported if s < lo]
    change_in = macro_change(default, custom, inside)
    change_below = macro_change(default, custom, below)
    findings.append(Finding(
        f"The {c_name} model is better on the large sizes ({lo}-{hi} atoms)",
        None if change_in is None else change_in.lower,
        "no such size is reported" if change_in is None else
        _change_text(change_in, d_name, c_name, factor, unit),
        "compared per size (its Figure 10); the text gives no verdict", None))
    findings.append(Finding(
        f"The {d_name} model is better on the smaller sizes (under {lo} atoms)",
        None if change_below is None or change_below.lower is None else not change_below.lower,
        "no such size is reported" if change_below is None else
        _change_text(change_below, d_name, c_name, factor, unit),
        "compared per size (its Figure 10); the text gives no verdict", None))
    times_d, times_c = _run_times(default), _run_times(custom)
    faster = True if max(times_c) < min(times_d) else False if min(times_c) > max(times_d) \
        else None
    findings.append(Finding(
        f"The {c_name} model takes less time to train and evaluate (study: 1 h 28 m against "
        "1 h 46 m)",
        faster,
        f"training + evaluation: {d_name} {_times_text(times_d)}, {c_name} "
        f"{_times_text(times_c)}" + ("; holds when every seed's run is faster"
                                     if max(default.k, custom.k) > 1 else ""),
        "confirmed: 1 h 28 m against 1 h 46 m", True))
    return findings


def _compare(analysis: Analysis, results: Mapping[str, RunResult]) -> list[Finding]:
    return []


_NOT_IN_THESIS = ("not measured by the thesis, which concluded that QM9's imbalance should be "
                  "fixed without saying how")


def _learning_curve(analysis: Analysis, results: Mapping[str, RunResult]) -> list[Finding]:
    from molstrata.study.curves import curve_analysis, exponent_text, needed_text

    curves = curve_analysis(analysis, results)
    overall, unit = curves.overall, curves.unit
    low, high = overall.b_interval
    findings = [Finding(
        "More training molecules lower the global error, as a power law of their number",
        True if low > 0 else False if high < 0 else None,
        f"global MAE against training molecules ({curves.n_train[0]:,.0f} to "
        f"{curves.n_train[-1]:,.0f}): {overall.fit.form} fit, {exponent_text(overall)} "
        f"(95 % two-level bootstrap interval); {curves.target:g} {unit} would take "
        f"{needed_text(overall.n_needed, overall.n_needed_interval)} training molecules",
        _NOT_IN_THESIS, None)]
    for kind, noun in (("size", "size"), ("element", "element")):
        corr = curves.correlation.get(kind)
        article = "an" if noun[0] in "aeiou" else "a"
        claim = (f"Rare {noun}s learn more slowly: the rarer {article} {noun} in training, the "
                 "smaller the exponent of its learning curve")
        if corr is None:
            findings.append(Finding(claim, None, f"fewer than 3 {noun} strata could be fitted",
                                    _NOT_IN_THESIS, None))
            continue
        rho, p, n = corr
        significant = p < SIGNIFICANCE
        findings.append(Finding(
            claim, None if not significant else bool(rho > 0),
            f"Spearman rho = {rho:+.2f} between {article} {noun}'s share of the training set "
            f"and its exponent b over {n} fitted {noun} strata, p = {p:.3g} (holds when "
            f"rho > 0 and p < {SIGNIFICANCE:g}; does not hold when rho < 0 and "
            f"p < {SIGNIFICANCE:g}: then "
            "rare strata learn at least as fast and only start from fewer molecules)",
            _NOT_IN_THESIS, None))
    check = curves.held_out.get("size")
    if check is not None and check.rows:
        error = check.median_abs_relative_error
        findings.append(Finding(
            "The per-size fits extrapolate: fitted without the largest subset, they predict its "
            "per-size MAE within 10 %",
            bool(error <= 0.10),
            f"median absolute error of the prediction {100 * error:.1f} % over "
            f"{len(check.rows)} sizes (worst: "
            + ", ".join(f"{r.label} {100 * r.relative_error:+.0f} %" for r in
                        sorted(check.rows, key=lambda r: -abs(r.relative_error))[:3])
            + ")", _NOT_IN_THESIS, None))
    return findings


def _run_times(run: RunResult) -> list[float]:
    """Seconds of training and evaluation of each replicate."""
    return [float(r.summary.get("total_seconds") or 0.0) + float(r.evaluation_seconds or 0.0)
            for r in run.replicates or (run,)]


def _times_text(times: list[float]) -> str:
    if len(times) == 1:
        return f"{times[0]:.0f} s"
    return f"{np.mean(times):.0f} s (seeds: {', '.join(f'{t:.0f}' for t in times)})"


def _method(change: Change) -> str:
    if max(change.seeds) > 1:
        return (f"two-level bootstrap: {change.seeds[0]} and {change.seeds[1]} training seeds, "
                "then the test molecules")
    return "paired bootstrap over the test molecules"


def _per_size_changes(reference: RunResult, run: RunResult, factor: float) -> str:
    ref, new = size_mae(reference.report), size_mae(run.report)
    return ", ".join(f"{s}: {factor * ref[s]:.0f}->{factor * new[s]:.0f}"
                     for s in sorted(set(ref) & set(new)))


def _change_text(change: Change, ref_label: str, label: str, factor: float, unit: str) -> str:
    return (f"macro MAE over sizes {_range(change.sizes)}: {ref_label} "
            f"{factor * change.reference:.1f} -> {label} {factor * change.value:.1f} {unit} "
            f"({100 * change.relative:+.0f} %, 95 % CI of the difference "
            f"[{factor * change.low:+.1f}, {factor * change.high:+.1f}] {unit}, "
            f"{_method(change)})")


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
    "learning_curve": _learning_curve,
}
