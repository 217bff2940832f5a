"""`molstrata compare`: a comparison of runs (or of other models' prediction files, on the
same structures) written as tables, plots and terminal text.

    OUT/comparison.csv      one row per run: global errors with CIs, macro and worst strata,
                            hypothesis tests, training and evaluation seconds, strata won
    OUT/comparison.md       the same, readable, with the per-stratum table and the wins
    OUT/per_size.csv        one row per size stratum: its count and each run's MAE
    OUT/per_element.csv     the same per element
    OUT/wins.csv            per stratum: winner, runner-up, lead and its bootstrap interval
    OUT/error_by_size.png, error_by_element.png, learning_curves.png, run_time.png
                            (prediction files: no learning curves, evaluation time only)
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molstrata._files import atomic_write_text
from molstrata.errors import MolstrataError
from molstrata.evaluation import DEFAULT_UNIT
from molstrata.evaluation.compare import Comparison, compare_runs
from molstrata.evaluation.compare_predictions import prediction_results
from molstrata.evaluation.results import RunResult, load_runs
from molstrata.evaluation.stratified import ALL, StratumMetrics
from molstrata.evaluation.wins import MIN_TESTED, StratumWin
from molstrata.report import evaluation_plots
from molstrata.report.plots import plt, save_figure
from molstrata.tables import column_formatter, format_cells, format_table, write_csv
from molstrata.training.config import TrainConfig
from molstrata.training.convergence import still_learning
from molstrata.training.rundir import read_split_ids
from molstrata.units import error_unit, squared_unit
from molstrata.wording import counted

CSV_FILES = {"overview": "comparison.csv", "per_size": "per_size.csv",
             "per_element": "per_element.csv", "wins": "wins.csv"}
MARKDOWN = "comparison.md"
PLOTS = ("error_by_size.png", "error_by_element.png", "learning_curves.png", "run_time.png")

NOT_LIKE_FOR_LIKE = (
    "WARNING: the runs were NOT evaluated on the same molecules, so per-stratum comparisons "
    "are NOT like-for-like: a run may win a stratum because it was given easier molecules. "
    "Leads are tested unpaired. Evaluate every run on the same split for a fair comparison."
)


@dataclass(frozen=True)
class ComparisonFiles:
    """A comparison and where `compare` wrote it."""

    comparison: Comparison
    out_dir: Path
    files: list[Path]


def compare(
    run_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    *,
    labels: Sequence[str] | None = None,
    split: str = "test",
    evaluate_missing: bool = True,
    device: str = "auto",
    progress: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> ComparisonFiles:
    """Load, compare and write runs (evaluating those whose evaluation is missing or stale);
    `out_dir` defaults to results/compare/LABELS-DATE-TIME."""
    runs = load_runs(run_dirs, labels, split, evaluate_missing, device, progress)
    for run in runs:
        if run.evaluated_now:
            evaluation_plots.draw_evaluation(run, run.eval_dir)
    comparison = compare_runs(runs, n_bootstrap=n_bootstrap, seed=seed)
    out = Path(out_dir) if out_dir is not None else default_out_dir(comparison.labels)
    return ComparisonFiles(comparison, out, write_comparison(comparison, out))


def compare_predictions(
    sources: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    *,
    labels: Sequence[str] | None = None,
    predicted: str | Sequence[str] | None = None,
    reference: str | None = None,
    unit: str = DEFAULT_UNIT,
    structures: str | os.PathLike | None = None,
    train: str | os.PathLike | None = None,
    skip_periodic: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> ComparisonFiles:
    """Read, match, compare and write other models' prediction files (see
    `prediction_results`); `out_dir` defaults to results/compare/LABELS-DATE-TIME. Nothing is
    written unless every file is read and matched."""
    runs = prediction_results(sources, labels=labels, predicted=predicted, reference=reference,
                              unit=unit, structures=structures, train=train,
                              skip_periodic=skip_periodic, n_bootstrap=n_bootstrap, seed=seed,
                              log=log)
    comparison = compare_runs(runs, n_bootstrap=n_bootstrap, seed=seed)
    out = Path(out_dir) if out_dir is not None else default_out_dir(comparison.labels)
    return ComparisonFiles(comparison, out, write_comparison(comparison, out))


def default_out_dir(labels: Sequence[str]) -> Path:
    """results/compare/A-vs-B-YYYYmmdd-HHMMSS, the labels made safe for a folder name."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", "-vs-".join(labels)).strip("._") or "runs"
    return Path("results", "compare") / f"{name[:80]}-{time.strftime('%Y%m%d-%H%M%S')}"


def write_comparison(comparison: Comparison, out_dir: str | os.PathLike) -> list[Path]:
    """Write the comparison's CSVs, markdown and plots into `out_dir` (see the module's
    docstring), each atomically; return their paths. Every input is read and every text built
    before the first file is written."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise MolstrataError(f"{out} is a file; give a folder for the comparison with -o")
    tables = {"overview": comparison.overview, "per_size": comparison.per_size,
              "per_element": comparison.per_element, "wins": comparison.wins_table()}
    markdown = comparison_markdown(comparison)
    validation = validation_sets(comparison)
    curve_labels, curve_title = learning_curve_labels(validation)
    curves = [(curve_labels[r.label], rows) for r in comparison.runs if r.curve is not None
              for rows in [evaluation_plots.read_learning_curve(r.curve)] if rows]
    reports = [(r.label, r.report) for r in comparison.runs]
    seeds = [[m.report for m in r.replicates] for r in comparison.runs]
    where = _where(comparison)

    files = []
    for name, table in tables.items():
        files.append(out / CSV_FILES[name])
        write_csv(files[-1], table.header, table.rows)
    files.append(out / MARKDOWN)
    atomic_write_text(files[-1], markdown)
    files.append(out / PLOTS[0])
    evaluation_plots.error_by_size(
        reports, files[-1], title=f"{comparison.target}: error per molecule size ({where})",
        seeds=seeds)
    files.append(out / PLOTS[1])
    evaluation_plots.error_by_element(
        reports, files[-1], title=f"{comparison.target}: error per element ({where})",
        seeds=seeds)
    if curves:
        files.append(out / PLOTS[2])
        evaluation_plots.learning_curve(curves, files[-1], title=curve_title)
    files.append(out / PLOTS[3])
    run_time(comparison.runs, files[-1])
    return files


# ---- validation sets -----------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationSet:
    """The molecules a run's learning curve was validated on. `text` names them for a legend
    ("val: sizes ≥ 18, 1,204 molecules"); `key` tells two sets apart: the distinct (dataset
    fingerprint, validation ids) of the split.json of the run, or of each run of a group,
    else the text."""

    text: str
    key: object


def validation_set(run: RunResult) -> ValidationSet | None:
    """The validation set of a run, from its config's filters and its split.json (a run
    directed at some sizes validates on those sizes only); a group's from its replicates'
    runs, one set when they share a split. None for a prediction file: not known."""
    if run.predicted_elsewhere:
        return None
    ids = {read_split_ids(member.run_dir, "val") for member in run.replicates or (run,)}
    known = None not in ids
    counts = run.summary.get("n_molecules")
    count = len(next(iter(ids))[1]) if known and len(ids) == 1 else (
        counts.get("val") if isinstance(counts, dict) else None)
    text = f"val: {_selection_text(run.config)}" + (
        f", {count:,} molecules" if isinstance(count, int) else "")
    return ValidationSet(text, frozenset(ids) if known else text)


def validation_sets(comparison: Comparison) -> dict[str, ValidationSet]:
    """label -> the validation set of each run of a comparison (prediction files have none)."""
    return {run.label: found for run in comparison.runs
            if (found := validation_set(run)) is not None}


def learning_curve_labels(validation: dict[str, ValidationSet]) -> tuple[dict[str, str], str]:
    """(label -> its curves' legend label, the figure's title). Runs validated on different
    molecules have their validation set in the legend and a warning in the title: their
    validation curves are not comparable."""
    sets = list(validation.values())
    if not sets:
        return {}, "Learning curves"
    if all(v.key == sets[0].key for v in sets):
        shared = sets[0].text.removeprefix("val: ")
        return ({label: label for label in validation},
                f"Learning curves (validated on the same molecules: {shared})")
    return ({label: f"{label}; {v.text}" for label, v in validation.items()},
            "Learning curves: the runs were validated on DIFFERENT molecules (see the legend);\n"
            "their validation losses and MAEs are not comparable")


def validation_note(validation: dict[str, ValidationSet]) -> str | None:
    """A line for the text and markdown when the runs were validated on different molecules."""
    sets = list(validation.values())
    if all(v.key == sets[0].key for v in sets):  # none (prediction files), or one set
        return None
    named = "; ".join(f"{label}: {v.text}" for label, v in validation.items())
    return (f"Note: the runs were validated on different molecules ({named}), so their "
            "learning curves (validation loss and MAE) are not comparable.")


def _selection_text(config: TrainConfig) -> str:
    """The sizes and elements a run's [data] and [subset] filters let into validation."""
    d, s = config.data, config.subset
    low = max((v for v in (d.min_size, s.min_size) if v is not None), default=None)
    high = min((v for v in (d.max_size, s.max_size) if v is not None), default=None)
    parts = [f"sizes {low}–{high}" if low is not None and high is not None else
             f"sizes ≥ {low}" if low is not None else
             f"sizes ≤ {high}" if high is not None else "all sizes"]
    contains = list(dict.fromkeys([*d.contains, *s.contains]))
    excludes = list(dict.fromkeys([*d.excludes, *s.excludes]))
    if contains:
        parts.append(f"with {' and '.join(contains)}")
    if excludes:
        parts.append(f"without {', '.join(excludes)}")
    return " ".join(parts)


# ---- text --------------------------------------------------------------------------------


def comparison_text(comparison: Comparison) -> str:
    """The terminal summary: global errors, hypotheses and run time, MAE per stratum with the
    winner and its lead, and one line per run with the strata it wins."""
    parts = [_heading(comparison)]
    if not comparison.same_molecules:
        parts.append(NOT_LIKE_FOR_LIKE)
    note = validation_note(validation_sets(comparison))
    if note:
        parts.append(note)
    for title, header, rows in _sections(comparison):
        parts.append(format_table(header, rows, title=title))
    parts.append("\n".join(_win_lines(comparison)))
    if not comparison.same_molecules:
        parts.append(NOT_LIKE_FOR_LIKE)
    return "\n\n".join(parts)


def comparison_markdown(comparison: Comparison) -> str:
    """comparison.md: the terminal summary's tables as markdown."""
    parts = [f"# Comparison of {', '.join(comparison.labels)}", _heading(comparison)]
    if not comparison.same_molecules:
        parts.append(f"**{NOT_LIKE_FOR_LIKE}**")
    runs = [f"- **{_md(r.label)}**: {_source_text(r)}" for r in comparison.runs]
    parts.append("\n".join(runs))
    note = validation_note(validation_sets(comparison))
    if note:
        parts.append(_md(note))
    for title, header, rows in _sections(comparison):
        parts.append(f"## {title}\n\n{_markdown_table(header, rows)}")
    parts.append("## Strata won\n\n" + "\n".join(f"- {_md(line)}"
                                                  for line in _win_lines(comparison)))
    parts.append("All numbers with full precision: comparison.csv, per_size.csv, "
                 "per_element.csv, wins.csv.")
    return "\n\n".join(parts) + "\n"


def _source_text(run: RunResult) -> str:
    """Where a run's figures come from: its folder, or its prediction files and keys."""
    if not run.predicted_elsewhere:
        return f"`{run.run_dir}`"
    return ", ".join(f"`{m.run_dir}` ({m.summary['predictions']['predicted']})"
                     for m in run.replicates or (run,))


def _where(comparison: Comparison) -> str:
    """What the compared molecules are, for titles: the split, or the prediction files'."""
    if comparison.of_predictions:
        return "the structures of the prediction files"
    return f"{comparison.split} split"


def _heading(comparison: Comparison) -> str:
    runs = comparison.runs
    if comparison.of_predictions:
        n = runs[0].report.n_molecules
        return (f"{counted(len(runs), 'model')} of {comparison.target} [{comparison.unit}] on "
                f"the {counted(n, 'structure')} of the prediction files, the same in every "
                "file (paired tests)")
    counts = sorted({r.report.n_molecules for r in runs})
    if comparison.same_molecules:
        molecules = f"{counts[0]:,} molecules, the same in every run (paired tests)"
    else:
        molecules = ("different molecules: " +
                     ", ".join(f"{r.label} {r.report.n_molecules:,}" for r in runs))
    evaluated = [r.label for r in runs if r.evaluated_now]
    note = f"; evaluated now: {', '.join(evaluated)}" if evaluated else ""
    return (f"{len(runs)} runs of {comparison.target} [{comparison.unit}] on the "
            f"{comparison.split} split: {molecules}{note}")


def _sections(comparison: Comparison) -> list[tuple[str, list[str], list[list[object]]]]:
    """(title, header, rows) of the three tables the text and the markdown show."""
    factor, unit = error_unit(comparison.unit)
    sq = squared_unit(comparison.unit)
    level = f"{100 * comparison.confidence:g}% CI"
    errors, tests = [], []
    worst_text = {kind: _worst_cells([r.report.worst.get(kind) for r in comparison.runs], factor)
                  for kind in ("size", "element")}
    for i, run in enumerate(comparison.runs):
        report, s = run.report, run.report.overall.summary
        macro = report.macro
        errors.append([
            run.label, run.n_train, report.n_molecules, factor * s.mae,
            (factor * s.mae_ci_low, factor * s.mae_ci_high), factor * s.rmse, s.mse,
            factor * macro["size"].mae if "size" in macro else None,
            factor * macro["element"].mae if "element" in macro else None,
            worst_text["size"][i], worst_text["element"][i],
        ])
        corr = report.correlations
        tests.append([
            run.label,
            *(cell for kind in ("size", "element") for cell in (
                (corr[kind].rho, corr[kind].p_value) if kind in corr else (None, None))),
            _duration(run.train_seconds), _duration(run.evaluation_seconds),
            run.summary.get("epochs_done", "-"), run.summary.get("best_epoch", "-"),
        ])
    errors_header = ["run", "trained on", "evaluated", f"MAE {unit}", level, f"RMSE {unit}",
                     f"MSE {sq}", "macro sizes", "macro elements", "worst size",
                     "worst element"]
    tests_header = ["run", "size rho", "p", "element rho", "p", "training", "evaluation",
                    "epochs", "best epoch"]
    if comparison.of_predictions:  # no training time, epochs or curve to show
        errors_header[0] = tests_header[0] = "model"
        tests_header = tests_header[:5] + ["evaluation"]
        tests = [row[:5] + [row[6]] for row in tests]
    labels = comparison.labels
    test = "a paired" if comparison.same_molecules else "an UNPAIRED"
    strata_header = ["stratum", "count", *labels, "winner", f"lead {unit}", level]
    strata = [[w.label, w.count, *(factor * w.mae[label] for label in labels),
               "tie" if w.tie else w.winner + ("*" if w.significant else ""),
               factor * w.lead, (factor * w.lead_low, factor * w.lead_high)]
              for w in comparison.wins]
    timed = "evaluation time" if comparison.of_predictions else "run time"
    return [
        (f"Global errors; macro = mean MAE ({unit}) over the strata of a kind, worst = the "
         "stratum of highest MAE", errors_header, errors),
        (f"Training share vs MAE (Spearman; hypotheses 1: sizes, 2: elements) and {timed}",
         tests_header, tests),
        (f"MAE ({unit}) per stratum; lead = runner-up's MAE - winner's, {level} from {test} "
         f"bootstrap over the stratum's molecules; * = significant", strata_header, strata),
    ]


def _win_lines(comparison: Comparison) -> list[str]:
    """Who is best on all molecules, then one line per run: the size and element strata it
    wins."""
    factor, unit = error_unit(comparison.unit)
    strata = [w for w in comparison.wins if w.kind != ALL]
    lines = []
    for overall in (w for w in comparison.wins if w.kind == ALL):
        lines.append("all molecules: " + ("tie" if overall.tie else
                     f"{overall.winner} leads {overall.runner_up} by "
                     f"{_num(factor * overall.lead)} {unit}, {_verdict(overall)}"))
    won = comparison.strata_won()
    significant = comparison.strata_won(significant=True)
    for label in comparison.labels:
        mine = [w for w in strata if w.winner == label and not w.tie]
        names = ", ".join(_win_name(w) for w in mine) or "none"
        lines.append(f"{label} wins {won[label]} of {len(strata)} strata "
                     f"({significant[label]} significantly): {names}")
    ties = [w.label for w in strata if w.tie]
    if ties:
        lines.append("tied (equal MAE): " + (f"all {len(strata)} strata"
                                              if len(ties) == len(strata) else ", ".join(ties)))
    lines.append(f"* = lead significant at {100 * comparison.confidence:g} %, after Holm's "
                 f"adjustment over the {len(strata)} size and element strata (family-wise); "
                 f"strata under {MIN_TESTED} molecules are not tested")
    return lines + _noise_lines(comparison)


def _noise_lines(comparison: Comparison) -> list[str]:
    """Which noise the leads' intervals cover, and which runs were still learning."""
    seeds = [r.k for r in comparison.runs]
    if comparison.of_predictions:
        untrained = any(r.n_train is None for r in comparison.runs)
        return [_prediction_noise(comparison)] + [
            "no training structures given, so training shares and the tests of hypotheses 1 "
            "and 2 are left out: give the models' training file with --train FILE (train= in "
            "Python)"] * untrained
    if max(seeds) == 1:
        covered = ("intervals cover the test molecules only: one training seed per run, so "
                   "training noise is not measured (compare folders of seed-S runs to measure "
                   "it)")
    else:
        covered = ("intervals cover the training seeds (" + ", ".join(
            f"{r.label} {r.k}" for r in comparison.runs) + ") and the test molecules")
    learning, unknown = [], []
    for run in comparison.runs:
        curves = [m.curve for m in run.replicates or (run,)]
        if all(curve is None for curve in curves):
            unknown.append(run.label)
        elif why := still_learning(curves):
            learning.append(f"{run.label} ({why})")
    lines = [covered, "still learning at the end: " + "; ".join(learning) if learning else
             "every run with a learning curve had flattened (for its worst seed, the trend of "
             "the validation MAE over the last 40 % of training projects a fall under 2 %)"]
    if unknown:
        lines.append(f"no learning curve, so convergence unknown: {', '.join(unknown)}")
    return lines


def _prediction_noise(comparison: Comparison) -> str:
    """Which noise the leads' intervals cover, for prediction files."""
    if max(r.k for r in comparison.runs) == 1:
        return ("intervals cover the structures only: one file per model, so training noise "
                "is not measured (give one file per training seed under one label to measure "
                "it)")
    return ("intervals cover the replicates (one file per training seed: " + ", ".join(
        f"{r.label} {r.k}" for r in comparison.runs) + ") and the structures")


def _verdict(win: StratumWin) -> str:
    if not win.tested:
        return f"not tested (under {MIN_TESTED} molecules)"
    return "significant" if win.significant else "not significant"


def _win_name(win: StratumWin) -> str:
    return win.label + ("*" if win.significant else "")


def _worst_cells(strata: Sequence[StratumMetrics | None], factor: float) -> list[str]:
    """'18 atoms (12.35)' for each run's worst stratum, their MAEs with one precision."""
    number = column_formatter([factor * s.summary.mae for s in strata if s is not None])
    return ["-" if s is None else f"{s.label} ({number(factor * s.summary.mae)})"
            for s in strata]


def _num(value: float | None) -> str:
    if value is None or np.isnan(value):
        return "-"
    return f"{value:.4g}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.3e}"


def _duration(seconds: float | None) -> str:
    """12.3 s, 4 m 05 s, 1 h 46 m."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("*", "\\*")


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(_md(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in format_cells(rows)]
    return "\n".join(lines)


# ---- plots -------------------------------------------------------------------------------


def run_time(runs: Sequence[RunResult], path: str | os.PathLike) -> None:
    """Training and evaluation time of each run as grouped bars, each written above its bar;
    prediction files have no training time, so their reading and metrics time only."""
    labels = [r.label for r in runs]
    files = all(r.predicted_elsewhere for r in runs)
    times = {"training": [r.train_seconds for r in runs],
             "evaluation": [r.evaluation_seconds for r in runs]}
    if files:
        times = {"reading and metrics": times["evaluation"]}
    known = [t for values in times.values() for t in values if t is not None]
    longest = max(known, default=0.0)
    scale, unit = (3600.0, "h") if longest >= 7200 else (60.0, "min") if longest >= 120 \
        else (1.0, "s")
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(runs) + 2), 4.2))
    x = np.arange(len(runs))
    width = 0.38
    for i, (name, values) in enumerate(times.items()):
        heights = [0.0 if t is None else t / scale for t in values]
        bars = ax.bar(x + (i - (len(times) - 1) / 2) * width, heights, width=width * 0.95,
                      color=evaluation_plots.COLORS[i], label=name)
        for bar, seconds in zip(bars, values):
            ax.annotate(_duration(seconds) if seconds is not None else "n/a",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                        textcoords="offset points")
    ax.set_xticks(x, labels)
    ax.set_ylabel(f"time ({unit})")
    ax.set_ylim(0, 1.15 * max(longest / scale, 1e-9))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(frameon=False)
    ax.set_title("Evaluation time: reading the prediction files and the metrics" if files
                 else "Run time: training epochs and evaluation")
    save_figure(fig, path)
