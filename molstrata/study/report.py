"""The study's report: every table and figure of the thesis, drawn from this run, with the
findings up front. One self-contained HTML file, the same in Markdown, and every table as CSV.

Figures keep the thesis' numbers (Table 1, Figures 1, 3-10, A2-A5, Table 2) so a reader can
set them beside the original; figures the thesis did not have are numbered S1, S2, ...
"""

from __future__ import annotations

import csv
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import molstrata
from molstrata.data.molecules import Molecules, atomic_number
from molstrata.evaluation.compare import Table
from molstrata.evaluation.files import stratum_table
from molstrata.evaluation.results import RunResult
from molstrata.evaluation.stratified import StratifiedReport
from molstrata.report import study_plots
from molstrata.report.describe import Description
from molstrata.report.evaluation_plots import learning_curve
from molstrata.report.html import ReportFigure, ReportSection, ReportTable, write_report
from molstrata.study.results import AnalysisResult, StudyResult
from molstrata.training.convergence import FLAT, TAIL, run_convergence
from molstrata.training.targets import MAX_Z, Standardization
from molstrata.units import error_unit, unit_key
from molstrata.wording import counted


class _Numbers:
    """Hands out the thesis' figure and table labels, and S-numbers once one is taken."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.extra = {"Figure": 0, "Table": 0}

    def __call__(self, wanted: str | None, kind: str = "Figure") -> str:
        label = f"{kind} {wanted}" if wanted else None
        if label is None or label in self.used:
            self.extra[kind] += 1
            label = f"{kind} S{self.extra[kind]}"
        self.used.add(label)
        return label


def write_study_report(result: StudyResult, description: Description) -> list[Path]:
    """Write OUT/report/: report.html, report.md, tables/*.csv, figures/*.png."""
    out = result.out_dir / "report"
    figures = result.out_dir / "plots"  # the study's own plots; the report embeds copies
    figures.mkdir(parents=True, exist_ok=True)
    number = _Numbers()
    sections = [_conclusions(result, number), _data(result, description, number)]
    for analysis in result.analyses:
        sections.append(SECTIONS[analysis.kind](result, analysis, figures, number))
    sections.append(_runs(result, number))
    first = next(iter(result.results.values()))
    facts = [
        ("study", f"{result.plan.name}: {counted(len(result.plan.experiments), 'experiment')} x "
                  f"{counted(result.plan.replicates, 'training seed')}, "
                  f"{counted(len(result.plan.analyses), 'analysis', 'analyses')}"),
        ("test set", f"{first.report.n_molecules:,} molecules, the same for every experiment"),
        ("target", f"{first.report.target} ({first.report.unit}); errors in "
                   f"{error_unit(first.report.unit)[1]}"),
        ("training time", f"{_duration(_training_seconds(result))} over all experiments "
                          "(as recorded in each run.json)"),
        ("wall time of this call", _duration(result.seconds)),
        ("device", f"{first.summary.get('device', '?')}, {first.summary.get('threads', '?')} "
                   f"threads, {platform.processor() or platform.machine()}"),
        ("software", f"molstrata {molstrata.__version__}, torch {torch.__version__}"),
        ("written", time.strftime("%Y-%m-%d %H:%M")),
    ]
    intro = [result.plan.description] if result.plan.description else []
    sections = [_relative_run_dirs(section, result.out_dir) for section in sections]
    return write_report(out, result.plan.title, sections, intro=intro, facts=facts)


# ---- sections ----------------------------------------------------------------------------


def _conclusions(result: StudyResult, number: _Numbers) -> ReportSection:
    findings = [(a, f) for a in result.analyses for f in a.findings]
    rows = [[a.name, f.claim, f.verdict, f.family, f.thesis, f.agreement, f.evidence,
             "; ".join(f.caveats)] for a, f in findings]
    counts = {v: sum(f.verdict == v for _, f in findings)
              for v in ("holds", "does not hold", "cannot tell")}
    agree = {v: sum(f.agreement == v for _, f in findings) for v in ("agrees", "disagrees")}
    settings = result.plan.verdicts
    primary = [f for _, f in findings if f.primary]
    decided = {v: sum(f.verdict == v for f in primary)
               for v in ("holds", "does not hold", "cannot tell")}
    return ReportSection(
        "Conclusions: which of the study's claims held on this run",
        [f"Of {len(findings)} claims, {counts['holds']} hold on this run, "
         f"{counts['does not hold']} do not hold and {counts['cannot tell']} cannot be told at "
         f"this budget; this run agrees with the thesis on {agree['agrees']} and disagrees on "
         f"{agree['disagrees']}. **{len(primary)} are primary** (the thesis' hypotheses 1-4 "
         f"and the default against the custom model: {decided['holds']} hold, "
         f"{decided['does not hold']} do not, {decided['cannot tell']} cannot be told), judged "
         f"together so that the chance of any wrong primary verdict is at most "
         f"{100 * settings.alpha:g} % (Holm's method over each claim's evidence for and "
         f"against); the other {len(findings) - len(primary)} are exploratory, each at "
         f"{100 * settings.alpha:g} % alone, and read as leads, not findings.",
         "Every verdict below is computed from this run's numbers, not written in advance. "
         "A claim that a treatment lowers an error holds when the whole 95 % interval of the "
         "change lies below zero; it does not hold when the interval lies above minus the "
         f"margin declared before the run ({100 * settings.margin:g} % of the reference's "
         "figure): the treatment does not lower the error by more than that, whether it has "
         "no effect or the opposite one; cannot tell means the interval reaches both, too "
         "noisy to say either way, and the caveats say how many training seeds would "
         "resolve it. Hypotheses 1 and 2 are tested by the rarity elasticity (the slope of "
         "log MAE on log training share across strata, the size held fixed for sizes; margin "
         f"+-{settings.rarity_margin:g}). A claim over several arms (some cap, some rate) pays "
         "for the choice (Bonferroni over the arms).",
         _noise_paragraph(result), *_learning_paragraphs(result)],
        tables=[ReportTable("findings", number(None, "Table"),
                            "The study's claims: whether each holds here, how its error rate "
                            "is held (primary or exploratory), what the thesis found and "
                            "whether this run agrees, the statistic behind the verdict, and "
                            "what the verdict leaves unmeasured.",
                            ["analysis", "claim", "verdict", "family", "thesis", "agreement",
                             "evidence", "caveats"], rows)])


def _noise_paragraph(result: StudyResult) -> str:
    """Which sources of noise the verdicts measure."""
    k = result.plan.replicates
    if k == 1:
        return ("**Training noise is not measured.** Every experiment was trained once (one "
                "training seed), so the intervals carry the test molecules' noise only; another "
                "seed may reverse a small difference. Every verdict carries this caveat; "
                "`molstrata study --replicates 3` measures it.")
    spreads = [r.report.overall.summary.mae_seed_sd for r in result.results.values()]
    spreads = [s for s in spreads if s is not None]
    factor, unit = error_unit(next(iter(result.results.values())).report.unit)
    spread = (f" The seed-to-seed standard deviation of the test MAE ranges from "
              f"{factor * min(spreads):.1f} to {factor * max(spreads):.1f} {unit} over the "
              "experiments." if spreads else "")
    draws = {e.config.subset.draw for e in result.plan.experiments}
    data = ("each seed also drew its own training molecules (train / validation split and "
            "caps; `subset.draw = \"seed\"`), so the intervals carry data-sampling noise too"
            if draws == {"seed"} else "every seed trained on the same molecules (only the "
            "initialisation and the batch order differ: data-sampling noise is not measured; "
            "`--draw seed` measures it)")
    paired = ("Arms are judged seed by seed (paired seeds: seed r of every arm shares its "
              "initialisation and data draw)." if result.plan.verdicts.paired_seeds else "")
    return (f"**Training noise is measured.** Every experiment was trained with {k} training "
            f"seeds; {data}. The test molecules are the same for every run. Every figure is "
            "the mean over seeds; every interval adds the seeds' variance (a delete-one-seed "
            "jackknife, with a t quantile at its Welch-Satterthwaite degrees of freedom: with "
            "k seeds a variance is estimated from k values, and the interval pays for it) to "
            "the test molecules' (a paired bootstrap, every seed kept). In simulation these "
            "95 % intervals cover at least 93 % at k = 2, 3 and 5, where resampling the seeds "
            f"covered 65-85 %.{spread} {paired}").rstrip()


def _learning_paragraphs(result: StudyResult) -> list[str]:
    """Whether the models had stopped learning, and how far the study is from the full one."""
    base = next(iter(result.results.values()))
    n_train, epochs = base.n_train, base.summary.get("epochs_done")
    scale = (f"These models saw {n_train:,} training molecules for {epochs} epochs; the "
             "thesis trained on all of QM9 (about 105,000 training molecules of 130,831) for "
             "22 epochs at batch 512.")
    curves = [run_convergence(m.curve) for r in result.results.values()
              for m in r.replicates or (r,)]
    blind = ("" if not any(c is not None and c.scheduled for c in curves) else
             " The learning rate decayed to the end of training, which flattens any curve by "
             "construction: flat here means the models had stopped learning at this budget, "
             "not that a longer budget of the same recipe would not lower the error.")
    if not result.still_learning:
        return [f"**Convergence.** For every experiment's worst training seed, the trend of "
                f"the validation MAE fitted over the last {100 * TAIL:.0f} % of its epochs "
                f"projects a fall of less than {100 * FLAT:g} % over as many epochs again."
                f"{blind} {scale}"]
    names = ", ".join(result.still_learning)
    return [f"**Some models were still learning.** For {names}, the trend of the validation "
            f"MAE fitted over the last {100 * TAIL:.0f} % of the epochs (the worst seed) "
            f"projects a fall of {100 * FLAT:g} % or more over as many epochs again: the "
            "claims that rest on them speak about this budget, not about converged models "
            f"(see each claim's caveats).{blind} {scale}"]


def _data(result: StudyResult, description: Description, number: _Numbers) -> ReportSection:
    folder = description.files[0].parent
    header, rows = _read_csv(folder / "element_frequency.csv")
    figures = [
        ReportFigure(folder / "size_histogram.png", number("1"),
                     "Molecules per size (number of atoms) in the dataset the study used; the "
                     "right axis gives each size's share. Sizes under 1 % are not reported in "
                     "the stratified errors."),
        ReportFigure(folder / "size_element_heatmap.png", number("A5"),
                     "Share (%) of the molecules of each size that contain each element."),
        ReportFigure(folder / "element_frequency.png", number(None),
                     "Share (%) of the molecules that contain each element (Table 1, drawn)."),
    ]
    return ReportSection(
        "The data",
        [description.text.split("\n\n")[0]],
        figures=figures,
        tables=[ReportTable("table1_elements", number("1", "Table"),
                            "Molecules containing each element: count and share (%).",
                            header, rows)])


def _baseline(result: StudyResult, analysis: AnalysisResult, folder: Path,
              number: _Numbers) -> ReportSection:
    run = result.results[analysis.experiments[0]]
    report = run.report
    factor, unit = error_unit(report.unit)
    paragraphs = _finding_paragraphs(analysis) + _reference_baseline(run, result.molecules)
    figures = [
        ReportFigure(run.eval_dir / "error_by_size.png", number("3"),
                     f"{run.label}: test MAE ({unit}, log scale) per molecule size with "
                     f"{_intervals(run)}, over the training set's size histogram (bars); "
                     "dashed: the global MAE. " + _correlation_caption(report, "size")),
        ReportFigure(run.eval_dir / "error_by_element.png", number("4"),
                     f"{run.label}: test MAE ({unit}) of the molecules containing each element, "
                     f"with {_intervals(run)}, against how often the element occurs in "
                     "training. " + _correlation_caption(report, "element")),
        ReportFigure(run.eval_dir / "predicted_vs_true.png", number(None),
                     f"{run.label}: predicted against reference {report.target} on the test "
                     f"molecules ({report.unit})"
                     + (f", training seed {run.seeds[0]}." if run.k > 1 else ".")),
    ]
    tables = [
        _stratum_table(f"{analysis.name}_per_size", number(None, "Table"),
                       f"{run.label}: test errors per size", report, "size"),
        _stratum_table(f"{analysis.name}_per_element", number(None, "Table"),
                       f"{run.label}: test errors per element", report, "element"),
    ]
    return ReportSection(analysis.title, paragraphs, figures, tables)


def _undersampling(result: StudyResult, analysis: AnalysisResult, folder: Path,
                   number: _Numbers) -> ReportSection:
    runs = _runs_of(result, analysis)
    hist = folder / f"{analysis.name}_training_sizes.png"
    study_plots.training_size_histograms([(r.label, r.report.training.sizes) for r in runs],
                                         hist)
    _, unit = error_unit(runs[0].report.unit)
    figures = [
        ReportFigure(hist, number("5"),
                     "Training molecules per size (log scale): the full training split (bars) "
                     "and each undersampled one (lines). A cap keeps at most that many molecules "
                     "of each size, chosen at random with the run's seed; the test set is "
                     "untouched."),
        ReportFigure(analysis.out_dir / "error_by_size.png", number("6"),
                     f"Test MAE ({unit}, log scale) per size of the reference and of each "
                     "undersampled model, with 95 % bootstrap intervals; dashed: global MAE."),
    ]
    return _comparison_section(analysis, figures, number)


def _rate_sweep(result: StudyResult, analysis: AnalysisResult, folder: Path,
                number: _Numbers) -> ReportSection:
    runs = _runs_of(result, analysis)
    reference, swept = runs[0], runs[1:]
    weighting = swept[0].config.training.loss_weighting
    counts = reference.report.training.sizes
    train_sizes = np.repeat(np.array(list(counts), dtype=np.int64),
                            np.array(list(counts.values()), dtype=np.int64))
    sweeps = [a for a in result.analyses if a.kind == "rate_sweep"]
    weightings = list(dict.fromkeys(
        result.results[a.experiments[-1]].config.training.loss_weighting for a in sweeps))
    all_rates = {result.results[name].config.training.rate for a in sweeps
                 for name in a.experiments}
    factors = folder / "loss_weights.png"
    by_rate = folder / f"{analysis.name}_by_rate.png"
    series = {weighting: [(r.config.training.rate, r.report) for r in runs]}
    study_plots.metric_by_rate(series, by_rate)
    _, unit = error_unit(reference.report.unit)
    wanted = {"size": "7", "size_frequency": "8"}.get(weighting)
    figures = [
        ReportFigure(analysis.out_dir / "error_by_size.png", number(wanted),
                     f"{weighting} loss weights, trained on {_subset_text(reference)}: test MAE "
                     f"({unit}, log scale) per size for each rate r (r = 0 is the plain loss), "
                     "with 95 % bootstrap intervals."),
    ]
    if analysis is sweeps[0]:  # one Figure A2 for every weighting of the plan
        study_plots.loss_weight_factors(train_sizes, sorted(all_rates | {0.0}), factors,
                                        weightings=weightings,
                                        alpha=swept[0].config.training.alpha)
        figures.append(ReportFigure(
            factors, number("A2"),
            "The loss weight v(s) against the molecule size for the rates of the sweeps, one "
            f"panel per weighting ({', '.join(weightings)}), normalised to mean 1 over the "
            "training molecules (whose sizes are drawn behind)."))
    figures += [
        ReportFigure(by_rate, number(None),
                     f"{weighting} weighting: global MAE, macro-average MAE over sizes and MAE "
                     f"of the worst size ({unit}) against the rate r; rings mark the best r."),
    ]
    header, rows = study_plots.rate_sweep_table(series)
    section = _comparison_section(analysis, figures, number)
    extra = ReportTable(f"{analysis.name}_by_rate", number(None, "Table"),
                        f"{weighting} weighting: errors against the rate r.", header, rows)
    return ReportSection(section.title, section.paragraphs, section.figures,
                         [extra, *section.tables])


def _directed(result: StudyResult, analysis: AnalysisResult, folder: Path,
              number: _Numbers) -> ReportSection:
    runs = _runs_of(result, analysis)
    _, unit = error_unit(runs[0].report.unit)
    figures = [ReportFigure(
        analysis.out_dir / "error_by_size.png", number("9"),
        f"Test MAE ({unit}, log scale) per size: {runs[0].label} against {runs[1].label}, "
        f"trained on {_subset_text(runs[1])} only; the test set holds every size.")]
    return _comparison_section(analysis, figures, number)


def _final(result: StudyResult, analysis: AnalysisResult, folder: Path,
           number: _Numbers) -> ReportSection:
    runs = analysis.comparison.runs
    _, unit = error_unit(runs[0].report.unit)
    figures = [ReportFigure(
        analysis.out_dir / "error_by_size.png", number("10"),
        f"Test MAE ({unit}, log scale) per size of the {runs[0].label} and the {runs[1].label} "
        "model, with 95 % bootstrap intervals; dashed: global MAE.")]
    for run, wanted in zip(runs, ("A3", "A4")):
        path = folder / f"{analysis.name}_{run.label}_learning_curve.png"
        learning_curve(run.curve, path, title=f"Learning curve of the {run.label} model")
        figures.append(ReportFigure(
            path, number(wanted),
            f"Learning curve of the {run.label} model: training loss per epoch (MSE, eV² for "
            "energies) with the study's band (mean of the 5 lowest to the 5 highest batch "
            f"losses of the epoch), validation loss, and validation MAE ({unit})."))
    figures.append(ReportFigure(
        analysis.out_dir / "run_time.png", number(None),
        "Training and evaluation time of each model (seconds)."))
    final = _final_table(analysis, number("2", "Table"))
    section = _comparison_section(analysis, figures, number)
    return ReportSection(section.title, section.paragraphs, section.figures,
                         [final, *section.tables[1:]])


def _generic(result: StudyResult, analysis: AnalysisResult, folder: Path,
             number: _Numbers) -> ReportSection:
    figures = []
    if analysis.comparison is not None:
        _, unit = error_unit(analysis.comparison.unit)
        figures = [
            ReportFigure(analysis.out_dir / "error_by_size.png", number(None),
                         f"Test MAE ({unit}, log scale) per size of each run."),
            ReportFigure(analysis.out_dir / "error_by_element.png", number(None),
                         f"Test MAE ({unit}) per element of each run."),
            ReportFigure(analysis.out_dir / "learning_curves.png", number(None),
                         "Learning curves with the band of the 5 lowest / highest batch losses."),
        ]
    return _comparison_section(analysis, figures, number)


def _runs(result: StudyResult, number: _Numbers) -> ReportSection:
    first = next(iter(result.results.values()))
    factor, unit = error_unit(first.report.unit)
    e = unit_key(unit)
    header = ["experiment", "what", "seeds", "train_molecules", "epochs", f"test_mae_{e}",
              f"test_mae_ci95_low_{e}", f"test_mae_ci95_high_{e}", f"seed_sd_{e}",
              "worst_size", f"worst_size_mae_{e}", f"worst_size_seed_sd_{e}",
              "val_mae_projected_fall_worst_seed", "still_learning",
              "train_seconds_mean", "runs"]
    rows, per_run = [], []
    for experiment in result.plan.experiments:
        run = result.results[experiment.name]
        s = run.report.overall.summary
        worst = run.report.worst.get("size")
        falls = [c.projected_fall for c in (run_convergence(m.curve)
                                            for m in run.replicates or (run,)) if c is not None]
        rows.append([
            experiment.name, experiment.title, run.k, run.n_train,
            run.summary.get("epochs_done"), factor * s.mae, factor * s.mae_ci_low,
            factor * s.mae_ci_high, _scaled(s.mae_seed_sd, factor),
            None if worst is None else worst.label,
            None if worst is None else factor * worst.summary.mae,
            None if worst is None else _scaled(worst.summary.mae_seed_sd, factor),
            None if not falls else round(float(np.max(falls)), 4),
            experiment.name in result.still_learning, run.train_seconds,
            str(run.run_dir.relative_to(result.out_dir))])
        for member in run.replicates or (run,):
            m = member.summary
            per_run.append([experiment.name, member.config.runtime.seed,
                            m.get("epochs_done"), m.get("best_epoch"), m.get("train_seconds"),
                            member.evaluation_seconds,
                            factor * member.report.overall.summary.mae,
                            member.report.overall.summary.mse,
                            str(member.run_dir.relative_to(result.out_dir))])
    mse_unit = unit_key(first.report.unit) + "2"
    return ReportSection(
        "Every experiment",
        ["Each run is a directory (config.toml, split.json, checkpoints, learning_curve.csv, "
         "run.json) with its test evaluation in eval-test/; `molstrata compare` compares any of "
         "them, and a folder of seed-S runs (runs/NAME) as one group of training seeds. "
         "Experiments: the mean over seeds and its two-level interval, the seed-to-seed "
         "standard deviation, and for the worst seed the fall of the validation MAE that its "
         "trend over the last 40 % of training projects over as many epochs again (still "
         "learning: 2 % or more)."],
        tables=[ReportTable("experiments", number(None, "Table"), "Every experiment of the plan.",
                            header, rows),
                ReportTable("runs", number(None, "Table"), "Every training run (one per seed).",
                            ["experiment", "seed", "epochs", "best_epoch", "train_seconds",
                             "evaluation_seconds", f"test_mae_{e}", f"test_mse_{mse_unit}",
                             "run_dir"], per_run)])


# ---- helpers -----------------------------------------------------------------------------


def _comparison_section(analysis: AnalysisResult, figures: list[ReportFigure],
                        number: _Numbers) -> ReportSection:
    tables = []
    if analysis.comparison is not None:
        c = analysis.comparison
        tables = [
            _table(f"{analysis.name}_overview", number(None, "Table"),
                   "Global test errors of each model, macro averages and worst strata, and "
                   "time.", c.overview),
            _table(f"{analysis.name}_per_size", number(None, "Table"),
                   "Test MAE per size of each model.", c.per_size),
            _table(f"{analysis.name}_per_element", number(None, "Table"),
                   "Test MAE per element of each model.", c.per_element),
            _table(f"{analysis.name}_wins", number(None, "Table"),
                   "Which model has the lowest MAE in each stratum, its lead over the "
                   "runner-up and the lead's bootstrap interval (paired over the same "
                   "molecules; two-level, seeds then molecules, for replicated models).",
                   c.wins_table()),
        ]
    return ReportSection(analysis.title, _finding_paragraphs(analysis), figures, tables)


def _final_table(analysis: AnalysisResult, label: str) -> ReportTable:
    overview = analysis.comparison.overview
    wanted = [name for name in overview.header
              if name.split("_")[0] in ("label", "mse", "mae", "rmse")
              or "seconds" in name or name.startswith("macro") or name.startswith("worst")]
    keep = [overview.header.index(name) for name in wanted]
    return ReportTable(f"{analysis.name}_table2", label,
                       "The default against the custom model on the same test molecules: total "
                       "MSE (the study's Table 2 figure), MAE and RMSE with 95 % intervals, "
                       "macro averages and worst strata, and the time of training and "
                       "evaluation.",
                       wanted, [[row[k] for k in keep] for row in overview.rows])


def _table(name: str, label: str, caption: str, table: Table) -> ReportTable:
    return ReportTable(name, label, caption, list(table.header),
                       [[_cell(v) for v in row] for row in table.rows])


def _relative_run_dirs(section: ReportSection, root: Path) -> ReportSection:
    """The section with every table's run_dir column as a path inside the study folder (a
    comparison holds the path the study was given), so the report reads the same anywhere."""
    tables = []
    for table in section.tables:
        if "run_dir" in table.header:
            k = table.header.index("run_dir")
            rows = [[*row[:k], _inside(row[k], root), *row[k + 1:]] for row in table.rows]
            table = ReportTable(table.name, table.label, table.caption, table.header, rows)
        tables.append(table)
    return ReportSection(section.title, section.paragraphs, section.figures, tables)


def _inside(path: Any, root: Path) -> Any:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except (TypeError, ValueError):  # None, or a run outside the study folder: as it was
        return path


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _stratum_table(name: str, label: str, caption: str, report: StratifiedReport,
                   kind: str) -> ReportTable:
    _, unit = error_unit(report.unit)
    header, rows = stratum_table(report, kind)
    return ReportTable(name, label, f"{caption}: count, share of the training set (%), MAE "
                       f"and RMSE ({unit}) and MSE ({report.unit}²) with 95 % bootstrap "
                       "intervals.", header, [[_cell(v) for v in row] for row in rows])


def _finding_paragraphs(analysis: AnalysisResult) -> list[str]:
    return [f"**{f.claim}: {f.verdict}** (thesis: {f.thesis}; {f.agreement}). {f.evidence}."
            + "".join(f" *Caveat: {c}.*" for c in f.caveats) for f in analysis.findings]


def _intervals(run: RunResult) -> str:
    """What a run's intervals are, for captions."""
    few = (f"; none for a stratum of fewer than {run.report.min_interval_count} test "
           "molecules")
    if run.k > 1:
        return (f"the mean over {run.k} training seeds (dots: each seed) and 95 % two-level "
                f"bootstrap intervals (seeds, then molecules{few})")
    return f"95 % bootstrap intervals over the test molecules (one training seed{few})"


def _correlation_caption(report: StratifiedReport, kind: str) -> str:
    corr = report.correlations.get(kind)
    if corr is None or corr.rho is None or not np.isfinite(corr.rho):
        return "Too few strata for a rank correlation."
    return (f"Spearman rho between training share and MAE: {corr.rho:+.2f} over "
            f"{corr.n_strata} strata (p = {corr.p_value:.3g}).")


def _reference_baseline(run: RunResult, molecules: Molecules) -> list[str]:
    """For scale, the test MAE of the per-element reference energies alone (fitted on
    the run's training split, no network); nothing for an intensive target, which has none."""
    refs = run.summary.get("reference_energies") or {}
    if not refs:
        return []
    atomrefs = np.zeros(MAX_Z)
    for symbol, energy in refs.items():
        atomrefs[atomic_number(symbol)] = energy
    tested = molecules.subset(molecules.rows_of_ids(run.predictions.ids))
    reference = Standardization(atomrefs, 0.0, 1.0, True).reference(tested)
    linear = float(np.abs(run.predictions.true - reference).mean())
    factor, unit = error_unit(run.report.unit)
    mae = run.report.overall.summary.mae
    return [
        f"For scale: the per-element reference energies alone (fitted on the training split, "
        f"no network) reach a test MAE of {factor * linear:.1f} {unit}; the model reaches "
        f"{factor * mae:.1f} {unit}, {linear / mae:.0f}x lower."]


def _read_csv(path: Path) -> tuple[list[str], list[list[Any]]]:
    """A CSV as header and rows, numbers as numbers."""
    with open(path, newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    return header, [[_number(cell) for cell in row] for row in rows]


def _number(cell: str) -> Any:
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    return cell


def _runs_of(result: StudyResult, analysis: AnalysisResult) -> list[RunResult]:
    if analysis.comparison is not None:
        return list(analysis.comparison.runs)
    return [result.results[name] for name in analysis.experiments]


def _subset_text(run: RunResult) -> str:
    s = run.config.subset
    if s.min_size and s.max_size:
        return f"molecules of {s.min_size}-{s.max_size} atoms"
    if s.min_size:
        return f"molecules of at least {s.min_size} atoms"
    if s.max_size:
        return f"molecules of at most {s.max_size} atoms"
    return "all training molecules"


def _training_seconds(result: StudyResult) -> float:
    return sum(float(m.summary.get("train_seconds") or 0.0) for r in result.results.values()
               for m in r.replicates or (r,))


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def _learning_curve(result: StudyResult, analysis: AnalysisResult, folder: Path,
                    number: _Numbers) -> ReportSection:
    from molstrata.report import learning_curve_plots as plots
    from molstrata.study.curves import curve_analysis, exponent_text, needed_text

    plan_analysis = next(a for a in result.plan.analyses if a.name == analysis.name)
    curves = curve_analysis(plan_analysis, result.results)
    arms = [result.results[name] for name in curves.subsets]
    factor, unit = error_unit(arms[0].report.unit)
    figures, tables = [], []
    kinds = (("size", "sizes", "Figure"), ("element", "elements", "Figure"))
    for kind, plural, _ in kinds:
        drawn = []
        for stratum in arms[-1].report.strata(kind):
            points = _curve_points(arms, kind, stratum.key, stratum.label, factor)
            curve = curves.curves[kind].get(stratum.label)
            fit = None if curve is None else plots.CurveFit(
                curve.at_n, curve.predicted, curve.predicted_low, curve.predicted_high,
                curve.fit.form, curve.fit.b, *curve.b_interval)
            drawn.append((points, fit))
        path = folder / f"{analysis.name}_{plural}.png"
        plots.learning_curves(drawn, path, unit=unit, target=curves.target, max_panels=20,
                              title=f"Test MAE of each {kind} against its training molecules")
        figures.append(ReportFigure(
            path, number(None),
            f"Learning curve of each {kind} stratum: its test MAE ({unit}; the mean over "
            f"{max(curves.k_seeds)} training seeds, 95 % two-level intervals; marks: each "
            f"seed) against the number of its own molecules in each nested training subset, "
            f"log-log, with the fit (line; dashed where it extrapolates) and its 95 % band; "
            f"dashed level: the {curves.target:g} {unit} target."))
    fitted = curves.curves["size"]
    if fitted:
        path = folder / f"{analysis.name}_exponents.png"
        labels = list(fitted)
        plots.exponents_against_share(
            labels, [curves.shares["size"][label] for label in labels],
            [fitted[label].fit.b for label in labels],
            [fitted[label].b_interval[0] for label in labels],
            [fitted[label].b_interval[1] for label in labels], path,
            title="Learning-curve exponent of each size against its share of training",
            kind="size", global_b=curves.overall.fit.b)
        figures.append(ReportFigure(
            path, number(None),
            "The fitted exponent b of each size (MAE ∝ n^-b, 95 % intervals) against the "
            "size's share of the training molecules; line: the global curve's b. Rare sizes "
            "that learn more slowly sit low on the left."))
    for kind, plural, _ in kinds:
        header = ["stratum", "total_training_molecules_now", "share_pct", "test_molecules",
                  f"mae_now_{unit}", "form", "b_against_total", "b_ci95_low", "b_ci95_high",
                  "total_molecules_needed", "needed_ci95_low", "needed_ci95_high",
                  "far_extrapolation", "note"]
        rows = [[a.label, a.n_train, _finite(100 * curves.shares[kind].get(a.label, np.nan)),
                 a.n_test, a.mae_now, a.form, _finite(a.b), _finite(a.b_interval[0]),
                 _finite(a.b_interval[1]), _finite(a.n_needed),
                 _finite(a.n_needed_interval[0]), _finite(a.n_needed_interval[1]),
                 a.extrapolated, a.note]
                for a in curves.advice[kind]]
        tables.append(ReportTable(
            f"{analysis.name}_advice_{plural}", number(None, "Table"),
            f"Proportional growth (advice a), per {kind}: grow the whole training set in "
            f"proportion, every stratum at its share; the total training molecules each "
            f"{kind}'s fit against the subset's total says reach {curves.target:g} {unit} "
            "(95 % interval; far_extrapolation: more than 10 times the largest measured "
            "subset, which is not advice). It does not say which stratum's molecules do the "
            "work: that is the per-stratum data value (`molstrata data-value`), which thins "
            "one stratum at a time.", header, rows))
    check = curves.held_out["size"]
    tables.append(ReportTable(
        f"{analysis.name}_held_out", number(None, "Table"),
        "Held-out check: each size's curve fitted without the largest subset, and its "
        f"prediction of the largest subset's MAE ({unit}) against the measured one.",
        ["stratum", "training_molecules", "form", f"predicted_{unit}", f"measured_{unit}",
         "relative_error"],
        [[r.label, r.n_train, r.form, r.predicted, r.measured, r.relative_error]
         for r in check.rows]))
    paragraphs = [_advice_paragraph(curves, unit, needed_text, exponent_text),
                  *_finding_paragraphs(analysis)]
    return ReportSection(analysis.title, paragraphs, figures, tables)


def _curve_points(arms, kind: str, key, label: str, factor: float):
    from molstrata.report.learning_curve_plots import CurvePoints

    n, mae, low, high, seeds = [], [], [], [], []
    for arm in arms:
        stratum = next((s for s in arm.report.strata(kind) if s.key == key), None)
        n.append(arm.report.training.count(kind, key))
        summary = None if stratum is None else stratum.summary
        mae.append(np.nan if summary is None else factor * summary.mae)
        low.append(np.nan if summary is None else factor * summary.mae_ci_low)
        high.append(np.nan if summary is None else factor * summary.mae_ci_high)
        own = []
        for member in arm.replicates or (arm,):
            s = next((x for x in member.report.strata(kind) if x.key == key), None)
            own.append(np.nan if s is None else factor * s.summary.mae)
        seeds.append(own)
    width = max(len(s) for s in seeds)
    seed_array = np.array([s + [np.nan] * (width - len(s)) for s in seeds]).T
    keep = np.array(n) >= 1
    return CurvePoints(label, np.array(n, dtype=float)[keep], np.array(mae)[keep],
                       np.array(low)[keep], np.array(high)[keep], seed_array[:, keep])


def _advice_paragraph(curves, unit: str, needed_text, exponent_text) -> str:
    """The proportional-growth advice in words: the strata that need the most molecules in
    all to reach the target when the whole training set grows in proportion."""
    parts = []
    for kind in ("size", "element"):
        fitted = sorted((a for a in curves.advice[kind] if a.form is not None),
                        key=lambda a: -a.n_needed if np.isfinite(a.n_needed) else -np.inf)
        if not fitted:
            continue
        parts.append(
            f"Per {kind}, the most molecules in all are needed for "
            + "; ".join(f"{a.label} ({needed_text(a.n_needed, a.n_needed_interval)} training "
                        f"molecules to reach {curves.target:g} {unit}, {a.n_train:,} now"
                        + (", a far extrapolation" if a.extrapolated else "") + ")"
                        for a in fitted[:3]) + ".")
    overall = curves.overall
    return (f"**Proportional growth.** The global curve falls with {exponent_text(overall)}. "
            "Grown in proportion (every stratum at its share), the whole training set would "
            "need: " + " ".join(parts) + " This is what nested subsets measure: every "
            "stratum's count grows with the total, so these figures do not say which "
            "stratum's molecules help; what one stratum's own molecules are worth is measured "
            "by thinning it alone (`molstrata data-value`). Intervals are 95 % two-level "
            "bootstrap intervals (training seeds, then test molecules); strata without a fit "
            "are listed with the reason.")


def _data_value(result: StudyResult, analysis: AnalysisResult, folder: Path,
                number: _Numbers) -> ReportSection:
    from molstrata.report import data_value_plots as plots
    from molstrata.study.findings import own_value_text
    from molstrata.study.value import value_analysis

    plan_analysis = next(a for a in result.plan.analyses if a.name == analysis.name)
    value = value_analysis(plan_analysis, result.results)
    unit = value.unit
    factor = error_unit(result.results[value.reference].report.unit)[0]
    figures, tables = [], []
    panels = []
    for label, curve in value.curves.items():
        seeds = _own_seed_maes(result, value, label, factor)
        panels.append(plots.OwnPanel(
            f"{label}: {float(curve.slope.estimate):+.1f} [{float(curve.slope.low):+.1f}, "
            f"{float(curve.slope.high):+.1f}] {unit} / 1,000", curve.n_own, curve.mae.estimate,
            curve.mae.low, curve.mae.high, seeds, curve.grid, curve.line.estimate,
            curve.line.low, curve.line.high))
    if panels:
        path = folder / f"{analysis.name}_own_curves.png"
        plots.own_data_curves(panels, path, unit=unit,
                              title="Each thinned stratum's test MAE against its own training "
                                    "molecules, every other training molecule kept")
        figures.append(ReportFigure(
            path, number(None),
            f"Own-data curves: each thinned stratum's test MAE ({unit}; the mean over "
            f"{value.k_seeds} or more training seeds with its 95 % two-level interval; marks: "
            "each seed) against its own training molecules, the rest of the training set "
            "held fixed; line: the least-squares line whose slope is the own-data value (in "
            f"the panel's title, {unit} per 1,000 own molecules), with its 95 % band. A point "
            "at zero is the error with no own molecule: what the other strata teach it."))
    rows = list(value.strata)
    if rows:
        cross = np.array([value.cross[label].estimate for label in rows])
        low = np.array([value.cross[label].low for label in rows])
        high = np.array([value.cross[label].high for label in rows])
        path = folder / f"{analysis.name}_cross_effects.png"
        plots.cross_effect_map(rows, list(value.evaluated), cross, low, high, path, unit=unit,
                               title="Change of each stratum's MAE when one stratum is "
                                     "thinned most")
        figures.append(ReportFigure(
            path, number(None),
            f"Cross effects: the change of each evaluated stratum's test MAE ({unit}) from "
            "the full training set to the most thinned arm of each thinned stratum (rows), "
            "measured on the evaluated stratum's test molecules outside the thinned one (an "
            "element stratum and a size share molecules); the thinned stratum's own change "
            "on its own column; * and bold: the 95 % two-level interval excludes zero; grey: "
            "no molecule outside the thinned stratum."))
    e = unit_key(unit)
    advice_rows = []
    for label in value.strata:
        curve = value.curves.get(label)
        if curve is None:
            advice_rows.append([label, None, None, None, None, None, None, None, None, None,
                                None, None, None, None, value.problems[label]])
            continue
        zero = curve.at_zero
        advice_rows.append([
            label, round(float(curve.n_own[-1])), round(100 * curve.share, 3), curve.n_test,
            _finite(curve.reference), f"{curve.n_own[0]:,.0f}-{curve.n_own[-1]:,.0f}",
            _finite(curve.slope.estimate), _finite(curve.slope.low), _finite(curve.slope.high),
            _finite(curve.top_step.estimate), _finite(curve.top_step.low),
            _finite(curve.top_step.high),
            None if zero is None else _finite(zero.estimate), curve.extrapolated,
            _own_note(curve, unit)])
    tables.append(ReportTable(
        f"{analysis.name}_own_value", number(None, "Table"),
        "Own-data value (advice b): what 1,000 molecules of each thinned stratum change its "
        f"own MAE by ({unit}; negative: lower), measured by thinning that stratum alone, every "
        "other training molecule kept: the least-squares slope over the measured range and "
        "the step between its two largest counts (the value near today's count), with 95 % "
        "two-level intervals; the MAE with no own molecule (pure transfer) where fraction 0 "
        "ran; extrapolated: 1,000 molecules reach beyond the measured range, so the rate is a "
        "direction, not a measurement.",
        ["stratum", "own_training_molecules", "share_pct", "test_molecules", f"mae_{e}",
         "measured_range", f"change_per_1000_{e}", "change_ci95_low", "change_ci95_high",
         f"top_step_per_1000_{e}", "top_step_ci95_low", "top_step_ci95_high",
         f"mae_at_zero_own_{e}", "extrapolated", "note"], advice_rows))
    point_rows = []
    for label, curve in value.curves.items():
        for j, name in enumerate(value.arms[label]):
            point_rows.append([label, name, value.fractions[label][j], float(curve.n_own[j]),
                               _finite(curve.mae.estimate[j]), _finite(curve.mae.low[j]),
                               _finite(curve.mae.high[j])])
    tables.append(ReportTable(
        f"{analysis.name}_own_curves", number(None, "Table"),
        f"The own-data curves' points: each arm's fraction of the stratum kept, its own "
        f"training molecules (mean over seeds) and the stratum's test MAE ({unit}, 95 % "
        "two-level interval).",
        ["stratum", "experiment", "fraction", "own_training_molecules", f"mae_{e}",
         "mae_ci95_low", "mae_ci95_high"], point_rows))
    cross_rows = [[label, other, _finite(value.cross[label].estimate[j]),
                   _finite(value.cross[label].low[j]), _finite(value.cross[label].high[j]),
                   _finite(value.removed[label][j])]
                  for label in value.strata for j, other in enumerate(value.evaluated)]
    tables.append(ReportTable(
        f"{analysis.name}_cross_effects", number(None, "Table"),
        f"Cross effects: the change of each evaluated stratum's MAE ({unit}) on its test "
        "molecules outside the thinned stratum, from the full training set to the thinned "
        "stratum's most thinned arm, with 95 % two-level intervals, and the evaluated "
        "stratum's training molecules that arm lost (mean over seeds; non-zero where the "
        "strata overlap).",
        ["thinned", "evaluated", f"change_{e}", "change_ci95_low", "change_ci95_high",
         "training_molecules_removed"], cross_rows))
    held_rows = [[label, float(c.n_own[-1]), _finite(c.held_out.predicted.estimate),
                  _finite(c.held_out.predicted.low), _finite(c.held_out.predicted.high),
                  _finite(c.held_out.measured), _finite(c.held_out.difference.low),
                  _finite(c.held_out.difference.high), c.held_out.inside]
                 for label, c in value.curves.items() if c.held_out is not None]
    tables.append(ReportTable(
        f"{analysis.name}_held_out", number(None, "Table"),
        "Held-out check of the advice: each own-data line fitted without the full training "
        f"set predicts the stratum's MAE there ({unit}, 95 % interval from the other arms); "
        "inside: the interval of predicted minus measured holds zero.",
        ["stratum", "own_training_molecules", f"predicted_{e}", "predicted_ci95_low",
         "predicted_ci95_high", f"measured_{e}", "difference_ci95_low",
         "difference_ci95_high", "inside"], held_rows))
    words = "; ".join(f"{label}: {own_value_text(c, unit)}" for label, c in value.curves.items())
    paragraphs = [
        "**What was measured.** Each thinned stratum's training molecules were thinned to a "
        "few fractions while every other training molecule stayed, and validation and test "
        "molecules stayed the split's; each replicate draws its own thinned molecules. So "
        "the change of a stratum's error is the effect of its own molecules, not of a "
        "training set that grows as a whole. " + (words + "." if words else ""),
        "**Two kinds of advice, kept apart.** (a) Growing the whole training set in "
        "proportion is what a learning curve over nested subsets measures (`molstrata "
        "learning-curve`: the total molecules needed for a target MAE); it says nothing about "
        "which stratum's molecules did the work. (b) The own-data value above is what adding "
        "molecules of one stratum alone is worth, within the measured range; beyond it, the "
        "table flags the rate as an extrapolation.",
        *_finding_paragraphs(analysis)]
    return ReportSection(analysis.title, paragraphs, figures, tables)


def _own_seed_maes(result: StudyResult, value, label: str, factor: float) -> np.ndarray:
    """(k, m): each seed's MAE of the thinned stratum in each of its arms, NaN where absent."""
    from molstrata.evaluation.results import stratum_rows

    kind, key = value.stratum[label]
    columns = []
    for name in value.arms[label]:
        run = result.results[name]
        rows = stratum_rows(run.predictions, kind, key)
        columns.append(factor * run.seed_errors[:, rows].mean(axis=1))
    width = max(len(c) for c in columns)
    return np.array([np.r_[c, [np.nan] * (width - len(c))] for c in columns]).T


def _own_note(curve, unit: str) -> str:
    """One plain line: whether its own molecules were measured to matter."""
    slope = curve.slope
    if slope.low <= 0 <= slope.high:
        text = (f"no own-data effect measured: the slope's interval holds zero over "
                f"{curve.n_own[0]:,.0f}-{curve.n_own[-1]:,.0f} own molecules")
    elif slope.high < 0:
        text = (f"its own molecules lower its MAE, about {-float(slope.estimate):.1f} {unit} "
                "per 1,000")
    else:
        text = "its MAE rises with its own molecules over the measured range"
    if curve.extrapolated:
        text += (f"; 1,000 molecules is {1000 / max(curve.n_own[-1], 1):.1f} times today's "
                 "count: an extrapolation")
    return text


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else factor * value


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


# The report section of each analysis kind: one entry per kind of plan.ANALYSES.
SECTIONS: dict[str, Callable[[StudyResult, AnalysisResult, Path, _Numbers], ReportSection]] = {
    "baseline": _baseline,
    "undersampling": _undersampling,
    "rate_sweep": _rate_sweep,
    "directed": _directed,
    "final": _final,
    "compare": _generic,
    "learning_curve": _learning_curve,
    "data_value": _data_value,
}
