"""Comparing runs: their global and stratified errors side by side, and which run wins where.

`load_run_result` gathers what one evaluated run knows (evaluating it first where its
evaluation is missing or older than its best checkpoint); `compare_runs` sets several side by
side. For every size stratum, every element stratum and all molecules together, the run with
the lowest MAE wins; its lead over the runner-up is tested with a seeded bootstrap of the
difference in absolute errors, paired over the molecules when every run was evaluated on the
same ones (the usual case: runs on the same split), unpaired otherwise. Numbers only; the
tables, text and plots are written by `molstrata.report.compare`.

A run may be a group of replicates: one configuration trained with k training seeds on the
same split (a folder of seed-S run directories, as a replicated study writes them;
`group_runs`). Its figures are the means over seeds, every interval comes from the two-level
bootstrap (seeds, then molecules), and a lead is significant only when it survives both: a
difference that flips sign between seeds is not a win, however many molecules agree.

The size and element strata overlap and are many (about 20 on QM9): a lead counts as
significant only after Holm's adjustment over every tested size and element stratum of the
comparison, so that "strata won significantly" holds a family-wise error rate of 1 -
confidence; all molecules together is tested on its own.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from molstrata._files import read_json
from molstrata.data.molecules import atomic_number
from molstrata.errors import MolstrataError
from molstrata.evaluation import SPLITS
from molstrata.evaluation.bootstrap import (
    holm,
    mae_difference,
    percentile_bootstrap,
    two_level_interval,
)
from molstrata.evaluation.evaluate import EVALUATION_JSON, evaluate_run
from molstrata.evaluation.files import METRICS_JSON, PREDICTIONS_CSV, load_metrics
from molstrata.evaluation.metrics import ci_key
from molstrata.evaluation.stratified import (
    ELEMENT,
    SIZE,
    Predictions,
    StratifiedReport,
    StratumMetrics,
    stratified_metrics,
)
from molstrata.tables import read_csv_rows
from molstrata.training.config import TrainConfig
from molstrata.training.distributed import one_process
from molstrata.training.run import RunPaths, read_run_summary
from molstrata.units import error_unit, squared_unit, unit_key

ALL = "all"
"""The kind of the one stratum holding every evaluated molecule."""

MIN_TESTED = 10
"""A lead is tested only where the stratum holds at least this many molecules (in each run):
a percentile bootstrap over 2 or 3 molecules would call almost any lead significant."""

KIND_CODES = {ALL: 0, SIZE: 1, ELEMENT: 2}
"""Seed components of each kind of stratum, so every stratum's bootstrap has its own stream."""


# ---- one run -----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RunResult:
    """What an evaluated run knows: its configuration, summary, learning curve, stratified
    report and per-molecule predictions (in the target unit) on one split."""

    label: str
    run_dir: Path
    split: str
    config: TrainConfig
    summary: dict[str, Any]
    curve: Path | None
    eval_dir: Path
    report: StratifiedReport
    predictions: Predictions
    evaluation_seconds: float | None
    evaluated_now: bool = False
    replicates: tuple[RunResult, ...] = ()
    """The runs of a group (one per training seed; `group_runs`); empty for a single run."""

    @property
    def k(self) -> int:
        """Training seeds behind the figures: 1 for a single run."""
        return len(self.replicates) or 1

    @property
    def seeds(self) -> tuple[int, ...]:
        """The training seed (runtime.seed) of each replicate."""
        return tuple(r.config.runtime.seed for r in self.replicates or (self,))

    @property
    def abs_errors(self) -> np.ndarray:
        """(n,) |predicted - true| of every evaluated molecule, in the target unit; for a group,
        the first replicate's (use seed_errors)."""
        return np.abs(self.predictions.errors)

    @functools.cached_property
    def seed_errors(self) -> np.ndarray:
        """(k, n) |predicted - true| of every evaluated molecule under each training seed, in
        the order of `predictions`."""
        return np.abs(_signed_errors(self.predictions, self.replicates or (self,)))

    @property
    def train_seconds(self) -> float | None:
        """Time spent in training epochs (run.json), without data loading and evaluation."""
        return _number(self.summary.get("train_seconds"))

    @property
    def n_train(self) -> int:
        """Molecules the model was trained on."""
        counts = self.summary.get("n_molecules")
        if isinstance(counts, dict) and isinstance(counts.get("train"), int):
            return counts["train"]
        return self.report.training.n_molecules


def replicate_dirs(folder: str | os.PathLike) -> list[Path]:
    """The seed-S run directories of a group folder (a replicated study's runs/NAME), by seed;
    empty when `folder` is a run directory itself or holds none."""
    folder = Path(folder)
    if RunPaths(folder).config.is_file() or not folder.is_dir():
        return []
    found = [p for p in folder.glob("seed-*") if RunPaths(p).config.is_file()
             and re.fullmatch(r"seed-\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def group_runs(members: Sequence[RunResult], label: str) -> RunResult:
    """The replicates of one configuration (the same split, target and test molecules; only
    the training seed differs) as one result: figures are means over seeds with two-level
    intervals, summary times are means, and the first replicate stands for the rest where one
    run is needed (its config, learning curve and evaluation folder)."""
    members = tuple(members)
    if len(members) == 1:
        return dataclasses.replace(members[0], label=label)
    first = members[0]
    for member in members[1:]:
        if not same_molecules([first, member]):
            raise MolstrataError(
                f"{member.run_dir} and {first.run_dir} were evaluated on different molecules; "
                "replicates of one experiment share a split: evaluate both on the same split"
            )
        if _split_config(member.config) != _split_config(first.config):
            raise MolstrataError(
                f"{member.run_dir} and {first.run_dir} differ in more than the training seed "
                "(model, data or training options); a group holds replicates of one config"
            )
    seeds = [m.config.runtime.seed for m in members]
    if len(set(seeds)) < len(seeds):
        raise MolstrataError(f"the replicates {', '.join(str(m.run_dir) for m in members)} "
                             f"share a training seed ({seeds}); replicates need their own")
    predictions = first.predictions
    r = first.report
    report = stratified_metrics(predictions, r.training, min_share=r.min_share,
                                all_sizes=r.all_sizes, seed=r.seed, n_bootstrap=r.n_bootstrap,
                                confidence=r.confidence,
                                seed_errors=_signed_errors(predictions, members))
    summary = dict(first.summary)
    for key in ("train_seconds", "total_seconds"):
        values = [_number(m.summary.get(key)) for m in members]
        summary[key] = None if None in values else float(np.mean(values))
    summary["replicates"] = len(members)
    seconds = [m.evaluation_seconds for m in members]
    return dataclasses.replace(
        first, label=label, run_dir=first.run_dir.parent, report=report, summary=summary,
        evaluation_seconds=None if None in seconds else float(np.mean(seconds)),
        evaluated_now=any(m.evaluated_now for m in members), replicates=members)


def _signed_errors(predictions: Predictions, members: Sequence[RunResult]) -> np.ndarray:
    """(k, n) predicted - true of each member, in the molecule order of `predictions`."""
    return np.stack([m.predictions.errors[alignment(predictions.ids, m.predictions.ids)]
                     for m in members])


def _split_config(config: TrainConfig) -> dict:
    """A config without its runtime section (seed, device, threads)."""
    return {k: v for k, v in config.to_dict().items() if k != "runtime"}


def check_run(run_dir: str | os.PathLike) -> RunPaths:
    """The paths of a run trained to at least one checkpoint, or a MolstrataError naming the
    folder and the fix (cheap: reads no file, so every run can be checked before any work)."""
    paths = RunPaths(run_dir)
    if not paths.root.exists():
        raise MolstrataError(f"{paths.root} does not exist; give a run directory written by "
                             "`molstrata train`")
    paths.require()
    if not paths.best.is_file():
        raise MolstrataError(
            f"{paths.root} has no checkpoints/best.pt: it was never trained through an epoch; "
            f"finish it with `molstrata train --resume {paths.root}`"
        )
    return paths


def load_run_result(
    run_dir: str | os.PathLike,
    label: str | None = None,
    split: str = "test",
    evaluate_missing: bool = True,
    device: str = "auto",
    progress: bool = False,
) -> RunResult:
    """The result of a run on one split, read from RUN/eval-SPLIT/. An evaluation that is
    missing, incomplete or older than checkpoints/best.pt is redone first when
    `evaluate_missing`, else refused. `label` defaults to the run directory's name."""
    if split not in SPLITS:
        raise MolstrataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    label = default_label(run_dir) if label is None else label
    members = replicate_dirs(run_dir)
    if members:
        return group_runs([load_run_result(m, f"{label}/{m.name}", split, evaluate_missing,
                                           device, progress) for m in members], label)
    paths = check_run(run_dir)
    eval_dir = paths.root / f"eval-{split}"
    problem = _evaluation_problem(eval_dir, paths.best)
    if problem is not None and not evaluate_missing:
        raise MolstrataError(
            f"the {split} evaluation of {paths.root} {problem}; run `molstrata evaluate "
            f"{paths.root} --split {split}` first, or let compare evaluate it"
        )
    if problem is not None:
        one_process("molstrata compare")
        evaluate_run(paths.root, split=split, device=device, progress=progress)
    report = load_metrics(eval_dir / METRICS_JSON)
    predictions = read_predictions(eval_dir / PREDICTIONS_CSV, report.unit, report.target)
    _check_agreement(eval_dir, report, predictions)
    timing = read_json(eval_dir / EVALUATION_JSON, "evaluation record",
                       f"evaluate the run again (molstrata evaluate {paths.root})")
    return RunResult(
        label=label,
        run_dir=paths.root,
        split=split,
        config=TrainConfig.from_toml(paths.config),
        summary=read_run_summary(paths.root),
        curve=paths.curve if paths.curve.is_file() else None,
        eval_dir=eval_dir,
        report=report,
        predictions=predictions,
        evaluation_seconds=_number(timing.get("evaluation_seconds")),
        evaluated_now=problem is not None,
    )


def load_runs(
    run_dirs: Sequence[str | os.PathLike],
    labels: Sequence[str] | None = None,
    split: str = "test",
    evaluate_missing: bool = True,
    device: str = "auto",
    progress: bool = False,
) -> list[RunResult]:
    """`load_run_result` of every run, after checking them all (count, labels, run folders)
    so that a mistake in the last one is found before the first is evaluated. A folder given
    twice (under two labels) is read once."""
    if labels is not None and len(labels) != len(run_dirs):
        raise MolstrataError(
            f"{len(labels)} labels for {len(run_dirs)} runs; give one label per run"
        )
    names = list(labels) if labels is not None else [default_label(d) for d in run_dirs]
    check_labels(names)
    if split not in SPLITS:
        raise MolstrataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    for run_dir in run_dirs:
        for member in replicate_dirs(run_dir) or [run_dir]:
            check_run(member)
    loaded: dict[Path, RunResult] = {}
    results = []
    for run_dir, name in zip(run_dirs, names):
        key = Path(run_dir).resolve()
        if key not in loaded:
            loaded[key] = load_run_result(run_dir, name, split, evaluate_missing, device,
                                          progress)
        results.append(dataclasses.replace(loaded[key], label=name))
    return results


def default_label(run_dir: str | os.PathLike) -> str:
    """A run's name in tables: its directory's name."""
    return Path(run_dir).resolve().name


def check_labels(labels: Sequence[str]) -> None:
    """At least two runs, each with its own non-empty label, or a MolstrataError."""
    if len(labels) < 2:
        raise MolstrataError(
            f"a comparison needs at least 2 runs, got {len(labels)}; give two or more run "
            "directories"
        )
    for label in labels:
        if not str(label).strip():
            raise MolstrataError("a run label is empty; give every run a name with --labels")
    seen = set()
    for label in labels:
        if label in seen:
            raise MolstrataError(
                f"two runs are labelled {label!r}; labels must be unique: give --labels "
                "(e.g. --labels A B)"
            )
        seen.add(label)


def read_predictions(path: str | os.PathLike, unit: str, target: str) -> Predictions:
    """The predictions.csv of an evaluation (its `elements` column in Hill order, e.g. 'CHNO')
    as Predictions in `unit`; a missing or damaged file is a MolstrataError."""
    path = Path(path)
    key = unit_key(unit)
    columns = ["id", "n_atoms", "elements", f"true_{key}", f"predicted_{key}"]
    rows = read_csv_rows(path, "evaluate the run again")
    missing = [c for c in columns if rows and c not in rows[0]]
    if not rows or missing:
        raise MolstrataError(
            f"{path} {'is empty' if not rows else f'lacks the columns {missing}'}; evaluate "
            "the run again"
        )
    try:
        formulas = [re.findall(r"[A-Z][a-z]?", row["elements"]) for row in rows]
        symbols = sorted({s for f in formulas for s in f}, key=atomic_number)
        presence = np.array([[s in f for s in symbols] for f in formulas], dtype=bool)
        return Predictions(
            ids=[int(row["id"]) for row in rows],
            sizes=[int(row["n_atoms"]) for row in rows],
            presence=presence.reshape(len(rows), len(symbols)),
            elements=tuple(symbols),
            true=[float(row[columns[3]]) for row in rows],
            predicted=[float(row[columns[4]]) for row in rows],
            unit=unit,
            target=target,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise MolstrataError(
            f"{path} is damaged ({type(error).__name__}: {error}); evaluate the run again"
        ) from None


def _evaluation_problem(eval_dir: Path, best: Path) -> str | None:
    """Why the evaluation in `eval_dir` cannot be used as it is, or None."""
    files = [eval_dir / name for name in (METRICS_JSON, PREDICTIONS_CSV, EVALUATION_JSON)]
    absent = [f.name for f in files if not f.is_file()]
    if len(absent) == len(files):
        return "is missing"
    if absent:
        return f"is incomplete (no {', '.join(absent)})"
    if min(f.stat().st_mtime for f in files) < best.stat().st_mtime:
        return "is older than its best checkpoint"
    return None


def _check_agreement(eval_dir: Path, report: StratifiedReport, predictions: Predictions) -> None:
    """predictions.csv must be the molecules metrics.json was computed from."""
    mae = float(np.abs(predictions.errors).mean())
    if len(predictions) != report.n_molecules or not math.isclose(
        mae, report.overall.summary.mae, rel_tol=1e-6, abs_tol=1e-12
    ):
        raise MolstrataError(
            f"{eval_dir}: predictions.csv ({len(predictions)} molecules) does not match "
            f"metrics.json ({report.n_molecules} molecules); evaluate the run again"
        )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


# ---- several runs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """Column names (a unit in every name that has one) and rows; missing values are None."""

    header: list[str]
    rows: list[list[Any]]

    def column(self, name: str) -> list[Any]:
        """The values of one column, top to bottom."""
        k = self.header.index(name)
        return [row[k] for row in self.rows]

    def records(self) -> list[dict[str, Any]]:
        """The rows as column name -> value."""
        return [dict(zip(self.header, row)) for row in self.rows]


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


@dataclass(frozen=True)
class Comparison:
    """Runs side by side: `overview` has one row per run; `per_size` and `per_element` one
    row per stratum with each run's MAE; `wins` one entry per stratum (all molecules first).
    Values in the tables are in report units (meV, eV2 for an eV target), named in the
    columns."""

    runs: tuple[RunResult, ...]
    target: str
    unit: str
    confidence: float
    same_molecules: bool
    overview: Table
    per_size: Table
    per_element: Table
    wins: tuple[StratumWin, ...]
    n_bootstrap: int
    seed: int

    @property
    def labels(self) -> list[str]:
        return [r.label for r in self.runs]

    @property
    def split(self) -> str:
        return self.runs[0].split

    def strata_won(self, significant: bool = False) -> dict[str, int]:
        """label -> size and element strata it wins (see `count_wins`)."""
        return count_wins(self.wins, self.labels, significant)

    def wins_table(self) -> Table:
        """One row per stratum: winner (empty on a tie), runner-up, their MAE, the lead and
        its interval."""
        factor, unit = error_unit(self.unit)
        e = unit_key(unit)
        ci = ci_key(self.confidence)
        header = ["kind", "stratum", "count", "winner", f"winner_mae_{e}", "runner_up",
                  f"runner_up_mae_{e}", f"lead_{e}", f"lead_{ci}_low_{e}", f"lead_{ci}_high_{e}",
                  "p_value", "p_adjusted", "significant", "test"]
        rows = [[w.kind, w.label, w.count, "" if w.tie else w.winner,
                 factor * w.mae[w.winner], w.runner_up, factor * w.mae[w.runner_up],
                 factor * w.lead, _finite(factor * w.lead_low), _finite(factor * w.lead_high),
                 _finite(w.p_value), _finite(w.p_adjusted), w.significant, _test_name(w)]
                for w in self.wins]
        return Table(header, rows)


def compare_runs(
    results: Sequence[RunResult], *, n_bootstrap: int = 1000, seed: int = 0
) -> Comparison:
    """Set evaluated runs side by side: global metrics, per-stratum MAE, and who wins where.

    The runs must be of the same target and unit with unique labels. Leads are tested with
    `n_bootstrap` seeded resamples at the reports' confidence level (95 % as evaluated).
    """
    runs = tuple(results)
    check_labels([r.label for r in runs])
    if n_bootstrap < 1:
        raise MolstrataError(f"n_bootstrap must be at least 1, got {n_bootstrap}; 1000 is usual")
    first = runs[0].report
    for run in runs[1:]:
        if (run.report.target, run.report.unit) != (first.target, first.unit):
            raise MolstrataError(
                f"{run.label} predicts {run.report.target} [{run.report.unit}] but "
                f"{runs[0].label} predicts {first.target} [{first.unit}]; compare runs of the "
                "same target"
            )
        if run.report.confidence != first.confidence:
            raise MolstrataError(
                f"{run.label} was evaluated at {run.report.confidence:g} confidence and "
                f"{runs[0].label} at {first.confidence:g}; evaluate them alike"
            )
    same = same_molecules(runs)
    wins = _holm_over_strata(tuple(_wins(runs, same, n_bootstrap, seed, first.confidence)))
    return Comparison(
        runs=runs,
        target=first.target,
        unit=first.unit,
        confidence=first.confidence,
        same_molecules=same,
        overview=_overview(runs, wins, first.confidence),
        per_size=_stratum_mae_table(runs, SIZE, same),
        per_element=_stratum_mae_table(runs, ELEMENT, same),
        wins=wins,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )


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


def same_molecules(runs: Sequence[RunResult]) -> bool:
    """Whether every run was evaluated on the same molecules: the same ids, each once, with
    the same true values (the same ids from another dataset are other molecules)."""
    base = runs[0].predictions
    if len(np.unique(base.ids)) != len(base.ids):
        return False
    for run in runs[1:]:
        p = run.predictions
        if len(p) != len(base) or not np.array_equal(np.sort(p.ids), np.sort(base.ids)):
            return False
        order = alignment(base.ids, p.ids)
        if not np.allclose(p.true[order], base.true, rtol=1e-9, atol=1e-9):
            return False
    return True


def alignment(reference: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(n,) rows of `ids` in the order of `reference` (both hold the same unique ids; check
    with `same_molecules` first)."""
    order = np.empty(len(reference), dtype=np.int64)
    order[np.argsort(reference, kind="stable")] = np.argsort(ids, kind="stable")
    return order


def _overview(runs: Sequence[RunResult], wins: Sequence[StratumWin], confidence: float) -> Table:
    """The global table: one row per run."""
    target_unit = runs[0].report.unit
    factor, unit = error_unit(target_unit)
    e, sq = unit_key(unit), unit_key(squared_unit(target_unit))
    ci = ci_key(confidence)
    header = [
        "label", "run_dir", "status", "seeds", "n_train", "n_evaluated",
        f"mae_{e}", f"mae_{ci}_low_{e}", f"mae_{ci}_high_{e}", f"mae_seed_sd_{e}",
        f"rmse_{e}", f"rmse_{ci}_low_{e}", f"rmse_{ci}_high_{e}",
        f"mse_{sq}", f"mse_{ci}_low_{sq}", f"mse_{ci}_high_{sq}",
        f"macro_size_mae_{e}", f"macro_element_mae_{e}",
        "worst_size_n_atoms", f"worst_size_mae_{e}", "worst_element", f"worst_element_mae_{e}",
        "size_rho", "size_p_value", "size_hypothesis_holds",
        "element_rho", "element_p_value", "element_hypothesis_holds",
        "train_seconds", "evaluation_seconds", "epochs_done", "best_epoch",
        "strata_won", "strata_won_significant",
    ]
    labels = [r.label for r in runs]
    won, won_significant = count_wins(wins, labels), count_wins(wins, labels, significant=True)
    rows = []
    for run in runs:
        report, s = run.report, run.report.overall.summary
        macro, worst, corr = report.macro, report.worst, report.correlations
        row = [
            run.label, str(run.run_dir), run.summary.get("status"), run.k, run.n_train,
            report.n_molecules,
            factor * s.mae, factor * s.mae_ci_low, factor * s.mae_ci_high,
            None if s.mae_seed_sd is None else factor * s.mae_seed_sd,
            factor * s.rmse, factor * s.rmse_ci_low, factor * s.rmse_ci_high,
            s.mse, s.mse_ci_low, s.mse_ci_high,
            factor * macro[SIZE].mae if SIZE in macro else None,
            factor * macro[ELEMENT].mae if ELEMENT in macro else None,
            worst[SIZE].key if SIZE in worst else None,
            factor * worst[SIZE].summary.mae if SIZE in worst else None,
            worst[ELEMENT].key if ELEMENT in worst else None,
            factor * worst[ELEMENT].summary.mae if ELEMENT in worst else None,
        ]
        for kind in (SIZE, ELEMENT):
            c = corr.get(kind)
            row += [None, None, None] if c is None else \
                [_finite(c.rho), _finite(c.p_value), c.holds]
        row += [run.train_seconds, run.evaluation_seconds, run.summary.get("epochs_done"),
                run.summary.get("best_epoch"), won[run.label], won_significant[run.label]]
        rows.append(row)
    return Table(header, rows)


def _stratum_mae_table(runs: Sequence[RunResult], kind: str, same: bool) -> Table:
    """One row per stratum of `kind` any run reports: its count and every run's MAE."""
    factor, unit = error_unit(runs[0].report.unit)
    e = unit_key(unit)
    by_run = [{s.key: s for s in r.report.strata(kind)} for r in runs]
    keys = sorted({k for strata in by_run for k in strata},
                  key=lambda k: atomic_number(k) if kind == ELEMENT else k)
    key_column = "n_atoms" if kind == SIZE else "element"
    counts = ["count"] if same else [f"count_{r.label}" for r in runs]
    header = ["stratum", key_column, *counts, *(f"mae_{e}_{r.label}" for r in runs)]
    rows = []
    for key in keys:
        present = [strata.get(key) for strata in by_run]
        label = next(s.label for s in present if s is not None)
        if same:
            count_cells = [next(s.count for s in present if s is not None)]
        else:
            count_cells = [None if s is None else s.count for s in present]
        mae = [None if s is None else factor * s.summary.mae for s in present]
        rows.append([label, key, *count_cells, *mae])
    return Table(header, rows)


# ---- wins --------------------------------------------------------------------------------


def _wins(runs: Sequence[RunResult], same: bool, n_bootstrap: int, seed: int,
          confidence: float) -> list[StratumWin]:
    """A StratumWin for all molecules and every size and element stratum all runs report."""
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
            rng = np.random.default_rng([seed, KIND_CODES[kind], *_key_ints(key)])
            wins.append(_win(runs, kind, key, strata, errors, same, rng, n_bootstrap,
                             confidence))
    return wins


def _common_strata(runs: Sequence[RunResult], kind: str):
    """(key, [each run's StratumMetrics]) for the strata of `kind` that every run reports."""
    if kind == ALL:
        yield None, [r.report.overall for r in runs]
        return
    by_run = [{s.key: s for s in r.report.strata(kind)} for r in runs]
    for s in runs[0].report.strata(kind):
        if all(s.key in strata for strata in by_run):
            yield s.key, [strata[s.key] for strata in by_run]


def stratum_rows(predictions: Predictions, kind: str, key: int | str | None) -> np.ndarray:
    """The rows of `predictions` in one stratum: all, a size, or the molecules with an
    element."""
    if kind == ALL:
        return np.arange(len(predictions))
    if kind == SIZE:
        return np.flatnonzero(predictions.sizes == key)
    if key not in predictions.elements:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(predictions.presence[:, predictions.elements.index(key)])


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
    cancels); with seeds, the interval is `two_level_interval`'s (a t interval over the seeds
    plus the molecules' variance), and the MAEs are means over seeds. Unpaired: each run's (n,)
    molecules are resampled on their own (p from the normal standard error the interval's
    width implies). NaNs with fewer than `min_molecules` (at least 2) on either side: too few
    to resample.
    """
    winner = np.asarray(winner, dtype=np.float64)
    runner_up = np.asarray(runner_up, dtype=np.float64)
    if paired and winner.shape[-1] != runner_up.shape[-1]:
        raise ValueError(f"paired errors must hold the same molecules, got {winner.shape} and "
                         f"{runner_up.shape}")
    if min(winner.shape[-1], runner_up.shape[-1]) < max(2, min_molecules):
        return math.nan, math.nan, math.nan
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


def _key_ints(key: int | str | None) -> list[int]:
    if key is None:
        return []
    return [atomic_number(key)] if isinstance(key, str) else [int(key)]


def _finite(value: float) -> float | None:
    """None for NaN (an empty cell), the value otherwise."""
    return None if value is None or math.isnan(value) else value


def _test_name(win: StratumWin) -> str:
    if not win.tested:
        return f"none (under {MIN_TESTED} molecules)"
    if not win.paired:
        return "unpaired bootstrap (different molecules)"
    return "two-level bootstrap (seeds, then molecules)" if win.seeds > 1 else "paired bootstrap"
