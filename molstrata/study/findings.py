"""Whether each of the study's claims held on this run, from this run's numbers.

Every finding states the claim, what the thesis found, whether it holds here, and the
statistic it rests on. Differences between two models are measured on the same test molecules
(paired, stratified by size); with several training seeds per experiment the interval has two
levels (bootstrap.two_level_interval: the seeds by a t interval, then the molecules), so a
difference that flips sign between seeds is not called a win. A verdict has three values, from
the claim's `Evidence` (verdicts.py): holds (the interval lies on the claim's side of zero), does
not hold (it lies beyond minus the margin declared in advance: no effect as large as the
margin, or the opposite), or cannot tell (too noisy to say either way; the evidence says how
many seeds would resolve it). The thesis' hypotheses 1-4 and the default-vs-custom MSE are the
primary claims, judged together at a family-wise level (Holm, `adjust_family`); the rest are
exploratory. Each finding also says what its verdict does not measure: the training seed when
an arm had one, and convergence when an arm's validation curve was still falling at the end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from molstrata.evaluation.bootstrap import Interval, two_level_interval
from molstrata.evaluation.rarity import rarity_elasticity
from molstrata.evaluation.results import RunResult
from molstrata.evaluation.stratified import SIGNIFICANCE, StratifiedReport
from molstrata.study.plan import Analysis
from molstrata.study.verdicts import (
    Evidence,
    Settings,
    any_of,
    family_verdicts,
    lowers,
    raises,
    within,
)
from molstrata.units import error_unit

_H3 = ("Hypothesis 3: capping every size to the same number of training molecules balances "
       "the errors across sizes (a lower spread of the per-size MAE)")
STUDY_BEST_RATE = 10.0  # the rate the thesis found best for both weightings (Figures 7, 8)
N_BOOTSTRAP = 2000
"""Molecule draws per interval: enough that an end's Monte Carlo error is about 1.6 % of the
molecules' part of its half-width; a verdict closer than that to flipping is marked borderline."""
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
    test: Evidence | None = None
    """The evidence for and against (None: a verdict by a rule stated in `evidence`)."""
    primary: bool = False
    """One of the study's primary claims, judged as a family (adjust_family)."""
    family: str = "exploratory"
    """How the verdict's error rate is held: "primary: ..." or "exploratory"."""

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
    interval: Interval | None = None
    """The interval of run - reference, with its standard error and Monte Carlo error."""

    def margin(self, fraction: float) -> float:
        """The equivalence margin: `fraction` of the reference's figure."""
        return fraction * abs(self.reference)

    def lowers(self, settings: Settings) -> Evidence:
        """The test of 'the run lowers the figure' at the settings' margin."""
        return lowers(self.interval, self.margin(settings.margin), min(self.seeds))

    def raises(self, settings: Settings) -> Evidence:
        """The test of 'the run raises the figure' at the settings' margin."""
        return raises(self.interval, self.margin(settings.margin), min(self.seeds))

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
                 n_bootstrap: int = N_BOOTSTRAP, seed: int = 0,
                 paired_seeds: bool = False) -> Change | None:
    """Change of the macro MAE over `sizes` from `reference` to `run`, on the molecules both
    evaluated; None when no reported size is in `sizes`."""
    return _size_change(reference, run, sizes, _macro, n_bootstrap, seed,
                        paired_seeds=paired_seeds)


def spread_change(reference: RunResult, run: RunResult, *, n_bootstrap: int = N_BOOTSTRAP,
                  seed: int = 0, paired_seeds: bool = False) -> Change | None:
    """Change of the spread of the per-size MAE (`noise_free_spread`, in the target unit)
    from `reference` to `run` over the reference's reported sizes, with its interval."""
    return _size_change(reference, run, size_mae(reference.report), noise_free_spread,
                        n_bootstrap, seed, min_sizes=2, paired_seeds=paired_seeds)


def _macro(per_size: np.ndarray, noise: np.ndarray) -> np.ndarray:
    return per_size.mean(axis=-1)


def noise_free_spread(per_size: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The standard deviation across sizes of the per-size MAE, less what sampling noise alone
    adds: sqrt(max(0, var_s(MAE_s) - mean_s(noise_s))), noise_s the variance of size s's MAE
    estimate (its molecules', and its seeds' when k >= 2). The raw spread grows with every
    size's sampling noise, and a coefficient of variation falls when a cap raises the mean;
    this one does neither. per_size, noise: (..., n_sizes) -> (...)."""
    excess = per_size.var(axis=-1, ddof=1) - noise.mean(axis=-1)
    return np.sqrt(np.maximum(excess, 0.0))


def _size_change(reference: RunResult, run: RunResult, sizes: Sequence[int] | Mapping,
                 measure: Callable[[np.ndarray, np.ndarray], np.ndarray], n_bootstrap: int,
                 seed: int, min_sizes: int = 1, paired_seeds: bool = False) -> Change | None:
    """`measure` (per-size MAE and its noise variance, (..., n_sizes) each -> (...)) of both
    runs over the reported `sizes`, and the two-level interval of run - reference: molecules
    resampled within each size, the same draw for both runs. None with fewer than
    `min_sizes` sizes."""
    reported = set(size_mae(reference.report)) & set(size_mae(run.report))
    wanted = tuple(sorted(int(s) for s in sizes if int(s) in reported))
    if len(wanted) < min_sizes:
        return None
    ref_err, run_err, mol_sizes = _paired_errors(reference, run)
    keep = np.isin(mol_sizes, wanted)
    ref_err, run_err, mol_sizes = ref_err[:, keep], run_err[:, keep], mol_sizes[keep]
    blocks = [np.flatnonzero(mol_sizes == size) for size in wanted]

    def figure(errors: np.ndarray) -> np.ndarray:
        """(..., k, n) errors -> measure of each size's MAE averaged over the seeds."""
        per_seed = np.stack([errors[..., rows].mean(axis=-1) for rows in blocks], axis=-1)
        per_size = per_seed.mean(axis=-2)  # (..., n_sizes)
        k = errors.shape[-2]
        molecules = np.stack([errors[..., rows].mean(axis=-2).var(axis=-1, ddof=1) / len(rows)
                              if len(rows) > 1 else np.zeros(errors.shape[:-2])
                              for rows in blocks], axis=-1)
        seeds = per_seed.var(axis=-2, ddof=1) / k if k > 1 else 0.0
        return measure(per_size, molecules + seeds)

    interval = two_level_interval([ref_err, run_err], lambda ref, new: figure(new) - figure(ref),
                                  np.random.default_rng(seed), n_bootstrap=n_bootstrap,
                                  confidence=CONFIDENCE, strata=mol_sizes,
                                  paired_seeds=paired_seeds)
    return Change(wanted, float(figure(ref_err)), float(figure(run_err)), float(interval.low),
                  float(interval.high), (reference.k, run.k), interval)


def global_change(reference: RunResult, run: RunResult, *, squared: bool = False,
                  n_bootstrap: int = N_BOOTSTRAP, seed: int = 0,
                  paired_seeds: bool = False) -> Change:
    """Change of the MAE (or the MSE, `squared`) over every test molecule from `reference` to
    `run`, means over seeds, with its two-level paired interval; sizes: every size."""
    ref_err, run_err, mol_sizes = _paired_errors(reference, run)
    power = 2 if squared else 1

    def value(errors: np.ndarray) -> np.ndarray:  # (..., k, n) -> (...)
        return (errors**power).mean(axis=-1).mean(axis=-1)

    interval = two_level_interval([ref_err, run_err], lambda a, b: value(b) - value(a),
                                  np.random.default_rng(seed), n_bootstrap=n_bootstrap,
                                  confidence=CONFIDENCE,
                                  paired_seeds=paired_seeds)
    return Change(tuple(int(s) for s in np.unique(mol_sizes)), float(value(ref_err)),
                  float(value(run_err)), float(interval.low), float(interval.high),
                  (reference.k, run.k), interval)


def _paired_errors(a: RunResult, b: RunResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Absolute errors (k, n) of a and b under each of their training seeds, on the molecules
    both evaluated (matched by id), and the molecules' sizes (n,)."""
    pa, pb = a.predictions, b.predictions
    common, ia, ib = np.intersect1d(pa.ids, pb.ids, return_indices=True)
    if len(common) == 0:
        raise ValueError(f"{a.label} and {b.label} share no evaluated molecule")
    return a.seed_errors[:, ia], b.seed_errors[:, ib], np.asarray(pa.sizes)[ia]


def analyse(analysis: Analysis, results: Mapping[str, RunResult],
            still_learning: Mapping[str, str] | None = None,
            settings: Settings | None = None) -> list[Finding]:
    """The findings of one analysis of a plan, each decided at settings.alpha alone (the
    primary ones are decided again as a family by `adjust_family`). still_learning:
    experiment -> why its models were still learning at the end (training.convergence); a
    finding that rests on such an experiment says so, as does one whose experiments had a
    single training seed."""
    settings = settings or Settings()
    findings = FINDINGS[analysis.kind](analysis, results, settings)
    runs = [results[name] for name in analysis.experiments]
    caveats = []
    if all(run.k == 1 for run in runs):
        caveats.append("one training seed per experiment: training noise not measured")
    elif any(run.k == 1 for run in runs):
        caveats.append("an experiment had one training seed: its training noise is not "
                       "measured")
    learning = [name for name in analysis.experiments if name in (still_learning or {})]
    if 0 < len(learning) <= 2:
        caveats.append("from models still learning (" + "; ".join(
            f"{name}: {still_learning[name]}" for name in learning) + ")")
    elif learning:
        caveats.append(f"from models still learning ({len(learning)} of "
                       f"{len(analysis.experiments)} experiments: {', '.join(learning)}; "
                       "see each in the report's table of experiments)")
    decided = []
    for f in findings:
        extra = list(caveats)
        holds = f.holds
        if f.test is not None:
            holds = f.test.decide(settings.alpha)
            if f.test.borderline:
                extra.append("borderline: an interval's end lies within two Monte Carlo "
                             "errors of the threshold it is judged by")
            if holds is None and f.test.resolve:
                extra.append(f.test.resolve)
        decided.append(dataclasses.replace(f, holds=holds, caveats=(*f.caveats, *extra)))
    return decided


def adjust_family(findings: Sequence[Finding], settings: Settings | None = None) -> list[Finding]:
    """The findings with the primary ones decided together at family-wise level
    settings.alpha (Holm over each primary claim's p_for and p_against), and each labelled
    with how its error rate is held."""
    settings = settings or Settings()
    primary = [i for i, f in enumerate(findings) if f.primary and f.test is not None]
    verdicts = family_verdicts([findings[i].test for i in primary], settings.alpha)
    family = (f"primary: one of {len(primary)} claims judged together at a family-wise "
              f"{100 * settings.alpha:g} % (Holm)")
    out = list(findings)
    for i, holds in zip(primary, verdicts):
        alone = out[i].test.decide(settings.alpha)
        caveats = out[i].caveats
        if holds is None and alone is not None:
            p = out[i].test.p_for if alone else out[i].test.p_against
            caveats = (*caveats, f"{'holds' if alone else 'does not hold'} alone (p = "
                       f"{p:.2g}), not after Holm's adjustment over the {len(primary)} "
                       "primary claims")
        out[i] = dataclasses.replace(out[i], holds=holds, family=family, caveats=caveats)
    return [f if f.primary else dataclasses.replace(
                f, family=f"exploratory: at {100 * settings.alpha:g} % alone"
                if f.test is not None else "exploratory: by the rule in its evidence")
            for f in out]


def _baseline(analysis: Analysis, results: Mapping[str, RunResult],
              settings: Settings) -> list[Finding]:
    run = results[analysis.experiments[0]]
    report = run.report
    factor, unit = error_unit(report.unit)
    findings = [
        _rarity(run, "size", "Hypothesis 1: the rarer a molecule size is in training, "
                "the larger its error", settings),
        _rarity(run, "element", "Hypothesis 2: the rarer an element is in training, "
                "the larger the error of the molecules that contain it", settings),
    ]
    worst = report.worst.get("size")
    if worst is not None:
        findings.append(_worst_size(run, worst, factor, unit, settings))
    return findings


def _worst_size(run: RunResult, worst, factor: float, unit: str,
                settings: Settings) -> Finding:
    """The worst size's excess over the global MAE, on the same seeds and molecules (what a
    seed shares cancels), tested as the largest of the reported sizes: Bonferroni over them."""
    overall = run.report.overall.summary
    rows = run.predictions.sizes == worst.key
    interval = two_level_interval(
        [run.seed_errors], lambda e: e[..., rows].mean(axis=-1).mean(axis=-1)
        - e.mean(axis=-1).mean(axis=-1), np.random.default_rng(1), n_bootstrap=N_BOOTSTRAP,
        confidence=CONFIDENCE, strata=run.predictions.sizes)
    n_sizes = len(run.report.sizes)
    test = raises(interval, settings.margin * overall.mae, run.k)
    test = dataclasses.replace(test, p_for=min(1.0, n_sizes * test.p_for))
    return Finding(
        "One global error figure hides how badly the rare sizes are predicted",
        None,
        f"global MAE {factor * overall.mae:.1f} {unit}; worst size {worst.label}: "
        f"{factor * worst.summary.mae:.1f} {unit} ({worst.summary.mae / overall.mae:.1f}x the "
        f"global figure, {worst.train_share * 100:.2f} % of the training set); its excess "
        f"{factor * float(interval.estimate):+.1f} {unit} (95 % CI "
        f"[{factor * float(interval.low):+.1f}, {factor * float(interval.high):+.1f}], "
        f"{_interval_method(interval, run.k)}, the same seeds and molecules); holds when the "
        f"excess is above zero after Bonferroni over the {n_sizes} sizes it was picked from",
        "one global MSE represents only the frequent molecules", True, test=test)


def _rarity(run: RunResult, kind: str, claim: str, settings: Settings) -> Finding:
    """Hypothesis 1 (sizes) or 2 (elements): the rarity elasticity, size held fixed for sizes;
    the thesis' Spearman correlation quoted beside it."""
    thesis = "confirmed: validation loss inversely correlated with the frequency"
    strata = run.report.strata(kind)
    minimum = 4 if kind == "size" else 3
    if len(strata) < minimum:
        return Finding(claim, None, f"{len(strata)} {kind} strata: too few to fit the rarity "
                       f"elasticity (at least {minimum})", thesis, True, primary=True)
    predictions = run.predictions
    if kind == "size":
        members = np.stack([predictions.sizes == s.key for s in strata])
        covariate = np.array([float(s.key) for s in strata])
    else:
        columns = [predictions.elements.index(str(s.key)) for s in strata]
        members = predictions.presence[:, columns].T
        covariate = None
    shares = np.array([max(s.train_share, 1e-12) for s in strata])
    elasticity = rarity_elasticity(run.seed_errors, members, shares,
                                   tuple(s.label for s in strata), covariate,
                                   strata=predictions.sizes, n_bootstrap=N_BOOTSTRAP,
                                   rng=np.random.default_rng(0), confidence=CONFIDENCE)
    interval = elasticity.interval
    # the claim: the rarer, the larger the error, i.e. the elasticity is below zero
    test = lowers(interval, settings.rarity_margin, run.k)
    corr = run.report.correlations.get(kind)
    spearman = "" if corr is None or corr.rho is None or not np.isfinite(corr.rho) else (
        f"; the thesis' statistic, Spearman's rho of share against MAE, is {corr.rho:+.2f} "
        f"(p = {corr.p_value:.3g}), which confounds rarity with "
        + ("size" if kind == "size" else "the elements' chemistry"))
    held = ("with the size held fixed (log MAE = b0 + b1 log share + b2 size)" if kind == "size"
            else "(log MAE = b0 + b1 log share; element strata overlap, H and C are in almost "
            "every molecule, and 5 strata leave 3 degrees of freedom: weak evidence at best)")
    return Finding(
        claim, test.decide(settings.alpha),
        f"rarity elasticity b1 = {elasticity.value:+.3f} (95 % CI [{float(interval.low):+.3f}, "
        f"{float(interval.high):+.3f}], {_interval_method(interval, run.k)}) over "
        f"{len(strata)} {kind} strata {held}; holds when b1 < 0, does not hold when b1 > "
        f"-{settings.rarity_margin:g} (a stratum half as common is at most "
        f"{100 * (2 ** settings.rarity_margin - 1):.0f} % worse){spearman}; an observational "
        "test across strata: the causal one changes a stratum's count (the caps, the "
        "per-stratum data value)",
        thesis, True, test=test, primary=True)


def _undersampling(analysis: Analysis, results: Mapping[str, RunResult],
                   settings: Settings) -> list[Finding]:
    reference = results[analysis.reference]
    caps = sorted((results[name] for name in analysis.runs),
                  key=lambda r: r.config.subset.cap or 0)
    factor, unit = error_unit(reference.report.unit)
    thesis_h3 = ("not as stated: only the 2,000 cap helped, and only above 18 atoms; "
                 "balancing the data alone did not balance the errors")
    paired = settings.paired_seeds
    spreads = [(run, spread_change(reference, run, paired_seeds=paired)) for run in caps]
    macros = [(run, macro_change(reference, run, size_mae(reference.report),
                                 paired_seeds=paired)) for run in caps]
    if any(change is None for _, change in spreads):
        findings = [Finding(_H3, None, "fewer than 2 sizes are reported", thesis_h3, False,
                            primary=True)]
    else:
        test = any_of([c.lowers(settings) for _, c in spreads])
        first = spreads[0][1]
        findings = [Finding(
            _H3, test.decide(settings.alpha),
            f"spread of the per-size MAE over {len(first.sizes)} sizes, less its sampling "
            f"noise ({unit}): {reference.label} {factor * first.reference:.1f}; "
            + "; ".join(f"{run.label} {factor * c.value:.1f} (95 % CI of the change "
                        f"[{factor * c.low:+.1f}, {factor * c.high:+.1f}]; macro MAE "
                        f"{factor * m.reference:.1f} -> {factor * m.value:.1f})"
                        for (run, c), (_, m) in zip(spreads, macros))
            + f"; holds when some cap lowers it (Bonferroni over the {len(spreads)} caps), does "
              f"not hold when no cap lowers it by more than the margin "
              f"({factor * first.margin(settings.margin):.1f} {unit}, "
              f"{100 * settings.margin:g} % of the reference's spread)",
            thesis_h3, False, test=test, primary=True)]
    lo, hi = analysis.sizes or (19, max(size_mae(reference.report)))
    sizes = range(lo, hi + 1)
    thesis_cap = "the 2,000 cap (the most balanced) helped sizes over 18 atoms"
    changes = [(run, macro_change(reference, run, sizes, paired_seeds=paired)) for run in caps]
    if any(change is None for _, change in changes):
        return findings + [Finding(
            f"The most balanced cap lowers the error of sizes {lo}-{hi}", None,
            f"no size {lo}-{hi} has enough test molecules to be reported", thesis_cap, True)]
    first, change = changes[0]
    findings.append(Finding(
        f"The most balanced cap ({first.label}) lowers the error of the large sizes "
        f"({_range(change.sizes)} atoms)",
        None, _change_text(change, reference.label, first.label, factor, unit, settings),
        thesis_cap, True, test=change.lowers(settings)))
    if len(changes) > 1:
        larger = [c for _, c in changes[1:]]
        findings.append(Finding(
            "Only the most balanced cap helps: the larger caps do not lower the error of "
            f"sizes {_range(change.sizes)}",
            None,
            "; ".join(_change_text(c, reference.label, run.label, factor, unit, settings)
                      for run, c in changes[1:])
            + "; holds when no larger cap lowers it by more than the margin, does not hold "
              f"when one lowers it (Bonferroni over the {len(larger)} caps)",
            "the 4,000 and 6,000 caps did not help", True,
            test=any_of([c.lowers(settings) for c in larger]).swapped()))
    return findings


def _rate_sweep(analysis: Analysis, results: Mapping[str, RunResult],
                settings: Settings) -> list[Finding]:
    reference = results[analysis.reference]
    factor, unit = error_unit(reference.report.unit)
    lo, hi = analysis.sizes or (min(size_mae(reference.report)), max(size_mae(reference.report)))
    thesis = f"r = {STUDY_BEST_RATE:g} was best for both weightings"
    paired = settings.paired_seeds
    runs = [reference] + [results[name] for name in analysis.runs]
    changes = {run.label: macro_change(reference, run, range(lo, hi + 1), paired_seeds=paired)
               for run in runs[1:]}
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
    detail = "; ".join(_change_text(c, reference.label, label, factor, unit, settings)
                       for label, c in changes.items())
    findings = [Finding(
        f"Weighting the loss towards large sizes lowers their error: some rate beats the "
        f"plain loss (r = 0) on sizes {_range(sizes)}",
        None, f"macro MAE over sizes {_range(sizes)} ({unit}): {listing}; {detail}; holds when "
        f"some rate lowers it (Bonferroni over the {len(changes)} rates, not the best rate "
        "picked by its estimate and tested alone), does not hold when none lowers it by more "
        "than the margin",
        thesis, True, test=any_of([c.lowers(settings) for c in changes.values()]))]
    tested = sorted(rates.values())
    study_rate = next((label for label, r in rates.items() if r == STUDY_BEST_RATE), None)
    claim = f"The best rate is r = {STUDY_BEST_RATE:g}, as the study found for both weightings"
    if study_rate is None:
        findings.append(Finding(
            claim, None, f"r = {STUDY_BEST_RATE:g} was not tried (rates tried: "
                         f"{', '.join(f'{r:g}' for r in tested)})", thesis, True))
        return findings
    others = [label for label in macro if label != study_rate]
    versus = {label: macro_change(by_label[label], by_label[study_rate], range(lo, hi + 1),
                                  paired_seeds=paired) for label in others}
    if any(v is None for v in versus.values()):
        findings.append(Finding(claim, None, "no size reported", thesis, True))
        return findings
    # r = 10 is the best when it beats every other rate (each test must hold: the largest p),
    # and it is not when some other rate beats it (Bonferroni over the others)
    beats = [v.lowers(settings) for v in versus.values()]
    beaten = any_of([v.raises(settings) for v in versus.values()])
    test = Evidence(max(t.p_for for t in beats), beaten.p_for,
                any(t.borderline for t in beats) or beaten.borderline)
    findings.append(Finding(
        claim, None,
        f"lowest macro MAE over sizes {_range(sizes)} at r = {rates[best]:g} (rates tried: "
        f"{', '.join(f'{r:g}' for r in tested)}); r = {STUDY_BEST_RATE:g} against each other "
        "rate: " + "; ".join(_change_text(v, label, study_rate, factor, unit, settings)
                             for label, v in versus.items())
        + "; holds when r = 10 beats every other rate, does not hold when another rate beats "
          "it (Bonferroni over the others)",
        thesis, True, test=test))
    return findings


def _directed(analysis: Analysis, results: Mapping[str, RunResult],
              settings: Settings) -> list[Finding]:
    reference = results[analysis.reference]
    run = results[analysis.runs[0]]
    factor, unit = error_unit(reference.report.unit)
    lo, hi = analysis.sizes or (run.config.subset.min_size or 1, run.config.subset.max_size or 99)
    reported = sorted(size_mae(reference.report))
    inside = [s for s in reported if lo <= s <= hi]
    outside = [s for s in reported if not lo <= s <= hi]
    paired = settings.paired_seeds
    change_in = macro_change(reference, run, inside, paired_seeds=paired)
    change_out = macro_change(reference, run, outside, paired_seeds=paired)
    per_size = _per_size_changes(reference, run, factor)
    findings = [Finding(
        f"Hypothesis 4: training only on the targeted sizes ({lo}-{hi} atoms) lowers their "
        "error",
        None,
        "no targeted size is reported" if change_in is None else
        _change_text(change_in, reference.label, run.label, factor, unit, settings)
        + f"; per size ({unit}): {per_size}",
        "confirmed: sizes over 19 atoms improved a lot", True,
        test=None if change_in is None else change_in.lowers(settings), primary=True)]
    findings.append(Finding(
        "The sizes left out of training get worse",
        None,
        "every reported size is targeted" if change_out is None else
        _change_text(change_out, reference.label, run.label, factor, unit, settings),
        "confirmed: sizes under 19 atoms got worse", True,
        test=None if change_out is None else change_out.raises(settings)))
    return findings


def _final(analysis: Analysis, results: Mapping[str, RunResult],
           settings: Settings) -> list[Finding]:
    default = results[analysis.reference]
    custom = results[analysis.runs[0]]
    d_name, c_name = analysis.label(default.label), analysis.label(custom.label)
    factor, unit = error_unit(default.report.unit)
    squared = default.report.unit + "²"
    paired = settings.paired_seeds
    mse = global_change(custom, default, squared=True, paired_seeds=paired)
    findings = [Finding(
        f"The {d_name} model has the lower total MSE (study: 0.0643 against 0.0925 eV²)",
        None,
        f"test MSE {d_name} {mse.value:.4g} {squared}, {c_name} {mse.reference:.4g} {squared} "
        f"(95 % CI of {d_name} - {c_name}: [{mse.low:+.4g}, {mse.high:+.4g}] {squared}, "
        f"{_method(mse)}; margin {mse.margin(settings.margin):.3g} {squared}; MAE "
        f"{factor * default.report.overall.summary.mae:.1f} against "
        f"{factor * custom.report.overall.summary.mae:.1f} {unit})",
        "confirmed: default 0.0643 against custom 0.0925 eV²", True,
        test=mse.lowers(settings), primary=True)]
    reported = sorted(size_mae(default.report))
    lo, hi = analysis.sizes or (20, max(reported))
    inside = [s for s in reported if lo <= s <= hi]
    below = [s for s in reported if s < lo]
    change_in = macro_change(default, custom, inside, paired_seeds=paired)
    change_below = macro_change(default, custom, below, paired_seeds=paired)
    findings.append(Finding(
        f"The {c_name} model is better on the large sizes ({lo}-{hi} atoms)",
        None,
        "no such size is reported" if change_in is None else
        _change_text(change_in, d_name, c_name, factor, unit, settings),
        "compared per size (its Figure 10); the text gives no verdict", None,
        test=None if change_in is None else change_in.lowers(settings)))
    findings.append(Finding(
        f"The {d_name} model is better on the smaller sizes (under {lo} atoms)",
        None,
        "no such size is reported" if change_below is None else
        _change_text(change_below, d_name, c_name, factor, unit, settings),
        "compared per size (its Figure 10); the text gives no verdict", None,
        test=None if change_below is None else change_below.raises(settings)))
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


def _compare(analysis: Analysis, results: Mapping[str, RunResult],
             settings: Settings) -> list[Finding]:
    return []


_NOT_IN_THESIS = ("not measured by the thesis, which concluded that QM9's imbalance should be "
                  "fixed without saying how")


def _learning_curve(analysis: Analysis, results: Mapping[str, RunResult],
                    settings: Settings) -> list[Finding]:
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


HELD_OUT_TOLERANCE = 0.2
"""How close the own-data line's prediction of the full arm must be to call it good: within
20 % of the measured MAE, the whole interval of the difference."""

_THESIS_RARITY = ("rare sizes and elements are predicted worse because they are rare "
                  "(hypotheses 1 and 2, read from one model across strata)")


def _data_value(analysis: Analysis, results: Mapping[str, RunResult],
                settings: Settings) -> list[Finding]:
    """Per thinned stratum: more of its own molecules lower its error (the own-data line's
    change over the measured range, against the margin); across strata: rarer ones gain
    more per own molecule; the held-out check; no cross effects."""
    from molstrata.study.value import value_analysis

    value = value_analysis(analysis, results)
    unit = value.unit
    findings = []
    for label in value.strata:
        claim = (f"{label}: its error depends on its own training molecules: more of them "
                 "lower its MAE, every other training molecule held fixed")
        curve = value.curves.get(label)
        if curve is None:
            findings.append(Finding(claim, None, value.problems[label], _THESIS_RARITY, True))
            continue
        margin = settings.margin * abs(curve.reference)
        findings.append(Finding(
            claim, None,
            f"{own_value_text(curve, unit)}; the line's change over the measured range "
            f"{_interval_text(curve.range_change, unit)} (margin {margin:.1f} {unit}, "
            f"{100 * settings.margin:g} % of its MAE with every molecule, "
            f"{_interval_method(curve.range_change, value.k_seeds)}); holds when that "
            "change's interval lies below zero, does not hold when it lies above minus the "
            "margin (its own molecules are worth less than the margin over the whole range)",
            _THESIS_RARITY, True, test=lowers(curve.range_change, margin, value.k_seeds)))
    for kind, gradient in value.gradient.items():
        strata = {label: c for label, c in value.curves.items()
                  if value.stratum[label][0] == kind}
        margin = settings.margin * float(np.mean([abs(c.reference) for c in strata.values()]))
        shares = [c.share for c in strata.values()]
        findings.append(Finding(
            f"Rarer {kind}s gain more per own molecule: the rarer a thinned {kind} in training, "
            "the more 1,000 of its own molecules lower its MAE",
            None,
            f"slope of the gain per 1,000 own molecules on log10 of the training share across "
            f"{len(strata)} thinned {kind} strata (shares {100 * min(shares):.2f}-"
            f"{100 * max(shares):.2f} %): {_interval_text(gradient, unit)} per 1,000 "
            f"molecules per tenfold share (margin {margin:.2f}, {100 * settings.margin:g} % of "
            "their mean MAE); gains: "
            + ", ".join(f"{label} {-float(c.slope.estimate):+.1f} ({100 * c.share:.2f} %)"
                        for label, c in strata.items())
            + "; holds when the slope's interval lies below zero, does not hold when it lies "
              "above minus the margin; sizes and elements are not pooled",
            "the thesis measured no gain per molecule; its reading, that rarity causes the "
            "error, implies that rare strata gain more", None,
            test=lowers(gradient, margin, value.k_seeds)))
    checks = [(label, c.held_out) for label, c in value.curves.items()
              if c.held_out is not None]
    if checks:
        tests = [(within(h.difference, HELD_OUT_TOLERANCE * abs(h.measured)), h)
                 for _, h in checks]
        findings.append(Finding(
            "The own-data line extrapolates: fitted without the full training set, it "
            f"predicts each thinned stratum's MAE there within {100 * HELD_OUT_TOLERANCE:g} %",
            None,
            "; ".join(f"{label}: predicted {_interval_text(h.predicted, unit)}, measured "
                      f"{h.measured:.1f} {unit} (difference "
                      f"{_interval_text(h.difference, unit)})" for label, h in checks)
            + f"; holds when every difference's interval lies within +-"
              f"{100 * HELD_OUT_TOLERANCE:g} % of the measured MAE, does not hold when one "
              "excludes zero (Bonferroni over the strata)",
            _NOT_IN_THESIS, None,
            test=Evidence(max(t.p_for for t, _ in tests),
                          min(1.0, len(tests) * min(float(h.difference.p_value(0.0))
                                                    for _, h in tests)))))
    cells = [(label, value.evaluated[j], value.cross[label], j)
             for label in value.strata for j in range(len(value.evaluated))
             if value.evaluated[j] != label and np.isfinite(value.cross[label].estimate[j])]
    if cells:
        report = results[analysis.reference].report
        factor = error_unit(report.unit)[0]
        mae = {s.label: factor * s.summary.mae for s in (*report.sizes, *report.elements)}
        tests = [(change, j, settings.margin * mae[other]) for _, other, change, j in cells]
        p_for = max(float(within(_one(c, j), m).p_for) for c, j, m in tests)
        p_values = [float(_one(c, j).p_value(0.0)) for c, j, _ in tests]
        moved = [f"{label} -> {other} {float(c.estimate[j]):+.1f} [{float(c.low[j]):+.1f}, "
                 f"{float(c.high[j]):+.1f}]" for (label, other, c, j) in cells
                 if c.low[j] > 0 or c.high[j] < 0]
        findings.append(Finding(
            "Thinning a stratum changes only its own error: no other stratum's MAE (on its "
            "molecules outside the thinned one) moves",
            None,
            f"{len(cells)} cross effects of the most thinned arm of each stratum; intervals "
            f"excluding zero ({unit}): " + ("; ".join(moved) if moved else "none")
            + "; holds when every cross effect lies within the margin (5 % of the evaluated "
              "stratum's MAE), does not hold when one lies outside zero (Bonferroni over the "
              "cells)",
            _NOT_IN_THESIS, None,
            test=Evidence(p_for, min(1.0, len(p_values) * min(p_values)))))
    return findings


def own_value_text(curve, unit: str) -> str:
    """One thinned stratum's own-data value in words, with its intervals."""
    zero = ("" if curve.at_zero is None else
            f"; with no own molecule (pure transfer) its MAE is "
            f"{_interval_text(curve.at_zero, unit)}")
    return (f"own-data slope {_interval_text(curve.slope, unit)} per 1,000 own molecules over "
            f"{curve.n_own[0]:,.0f}-{curve.n_own[-1]:,.0f} of them (MAE "
            + " -> ".join(f"{float(v):.1f}" for v in curve.mae.estimate)
            + f" {unit}){zero}")


def _interval_text(interval: Interval, unit: str) -> str:
    return (f"{float(interval.estimate):+.2f} [{float(interval.low):+.2f}, "
            f"{float(interval.high):+.2f}] {unit}")


def _one(interval: Interval, j: int) -> Interval:
    from molstrata.evaluation.data_value import part

    return part(interval, j)


def _run_times(run: RunResult) -> list[float]:
    """Seconds of training and evaluation of each replicate."""
    return [float(r.summary.get("total_seconds") or 0.0) + float(r.evaluation_seconds or 0.0)
            for r in run.replicates or (run,)]


def _times_text(times: list[float]) -> str:
    if len(times) == 1:
        return f"{times[0]:.0f} s"
    return f"{np.mean(times):.0f} s (seeds: {', '.join(f'{t:.0f}' for t in times)})"


def _method(change: Change) -> str:
    return _interval_method(change.interval, max(change.seeds), change.seeds)


def _interval_method(interval: Interval | None, k: int,
                     seeds: tuple[int, ...] | None = None) -> str:
    if interval is None or k == 1:
        return "paired bootstrap over the test molecules"
    counts = " and ".join(map(str, seeds)) if seeds else str(k)
    return (f"{counts} training seeds (t interval, {float(interval.df):.1f} df) and the test "
            "molecules (paired bootstrap)")


def _per_size_changes(reference: RunResult, run: RunResult, factor: float) -> str:
    ref, new = size_mae(reference.report), size_mae(run.report)
    return ", ".join(f"{s}: {factor * ref[s]:.0f}->{factor * new[s]:.0f}"
                     for s in sorted(set(ref) & set(new)))


def _change_text(change: Change, ref_label: str, label: str, factor: float, unit: str,
                 settings: Settings | None = None) -> str:
    margin = "" if settings is None else \
        f", margin +-{factor * change.margin(settings.margin):.1f} {unit}"
    return (f"macro MAE over sizes {_range(change.sizes)}: {ref_label} "
            f"{factor * change.reference:.1f} -> {label} {factor * change.value:.1f} {unit} "
            f"({100 * change.relative:+.0f} %, 95 % CI of the difference "
            f"[{factor * change.low:+.1f}, {factor * change.high:+.1f}] {unit}{margin}, "
            f"{_method(change)})")


def _range(sizes: Sequence[int]) -> str:
    sizes = list(sizes)
    if not sizes:
        return "none"
    if sizes == list(range(sizes[0], sizes[-1] + 1)):
        return f"{sizes[0]}-{sizes[-1]}" if len(sizes) > 1 else str(sizes[0])
    return ", ".join(map(str, sizes))


# The claims each analysis kind tests: one entry per kind of plan.ANALYSES.
FINDINGS: dict[str, Callable[[Analysis, Mapping[str, RunResult], Settings], list[Finding]]] = {
    "baseline": _baseline,
    "undersampling": _undersampling,
    "rate_sweep": _rate_sweep,
    "directed": _directed,
    "final": _final,
    "compare": _compare,
    "learning_curve": _learning_curve,
    "data_value": _data_value,
}
