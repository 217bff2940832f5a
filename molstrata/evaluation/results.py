"""What an evaluated run knows, read from its run directory: its configuration, summary,
learning curve, stratified report and per-molecule predictions on one split.

`load_run_result` gathers them, evaluating the run first where its evaluation is missing or
older than its best checkpoint (`RunPaths.evaluation_problem`); `load_runs` checks every run
before it loads the first. A run may be a group of replicates: one configuration trained with k
training seeds on the same split (a folder of seed-S run directories, as a replicated study
writes them; `group_runs`), whose figures are the means over seeds with two-level intervals.
`same_molecules`, `alignment` and `stratum_rows` line runs' molecules up for the statistics
(`molstrata.evaluation.wins`). Another model's predictions read from a file are results too
(`molstrata.evaluation.compare_predictions`), without a config, curve or training time.
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
from typing import Any

import numpy as np

from molstrata._files import read_json
from molstrata.data.molecules import atomic_number
from molstrata.errors import MolstrataError
from molstrata.evaluation import SPLITS
from molstrata.evaluation.evaluate import EVALUATION_JSON, evaluate_run
from molstrata.evaluation.files import METRICS_JSON, PREDICTIONS_CSV, load_metrics
from molstrata.evaluation.stratified import (
    ALL,
    SIZE,
    Predictions,
    StratifiedReport,
    stratified_metrics,
)
from molstrata.tables import read_csv_rows
from molstrata.training.config import TrainConfig
from molstrata.training.distributed import one_process
from molstrata.training.rundir import RunPaths, read_run_config, read_run_summary
from molstrata.units import unit_key

EVALUATION_FILES = (METRICS_JSON, PREDICTIONS_CSV, EVALUATION_JSON)
"""The files of RUN/eval-SPLIT that a comparison reads."""


@dataclass(frozen=True, eq=False)
class RunResult:
    """What an evaluated run knows: its configuration, summary, learning curve, stratified
    report and per-molecule predictions (in the target unit) on one split. For another
    model's predictions read from a file (`predicted_elsewhere`), `config` is None and
    `run_dir` is the file."""

    label: str
    run_dir: Path
    split: str
    config: TrainConfig | None
    summary: dict[str, Any]
    curve: Path | None
    eval_dir: Path | None
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
    def predicted_elsewhere(self) -> bool:
        """Whether these are another model's predictions read from a file, not a run."""
        return self.config is None

    @property
    def seeds(self) -> tuple[int, ...]:
        """The training seed (runtime.seed) of each replicate; for prediction files, whose
        seed is not known, the replicates' positions 0 .. k-1."""
        members = self.replicates or (self,)
        if any(m.config is None for m in members):
            return tuple(range(len(members)))
        return tuple(m.config.runtime.seed for m in members)

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
    def n_train(self) -> int | None:
        """Molecules the model was trained on; None where not known (predictions read from a
        file without the model's training file)."""
        counts = self.summary.get("n_molecules")
        if isinstance(counts, dict) and isinstance(counts.get("train"), int):
            return counts["train"]
        return self.report.training.n_molecules if self.report.training.known else None


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
    run is needed (its config, learning curve and evaluation folder). Replicates read from
    prediction files (one per training seed) have no config to check: the caller matched
    their structures."""
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
        if (member.config is None) != (first.config is None):
            raise MolstrataError(
                f"{member.run_dir} and {first.run_dir} are a run and a prediction file; a "
                "group holds replicates of one kind")
        if first.config is not None and \
                _split_config(member.config) != _split_config(first.config):
            raise MolstrataError(
                f"{member.run_dir} and {first.run_dir} differ in more than the training seed "
                "(model, data or training options); a group holds replicates of one config"
            )
    seeds = [m.config.runtime.seed for m in members if m.config is not None]
    if len(set(seeds)) < len(seeds):
        raise MolstrataError(f"the replicates {', '.join(str(m.run_dir) for m in members)} "
                             f"share a training seed ({seeds}); replicates need their own")
    predictions = first.predictions
    r = first.report
    training = r.training if r.training.known else None  # prediction files, without train
    report = stratified_metrics(predictions, training, min_share=r.min_share,
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
    paths = RunPaths(run_dir).require_trained()
    eval_dir = paths.evaluation(split)
    problem = paths.evaluation_problem(split, EVALUATION_FILES)
    if problem is not None and not evaluate_missing:
        problem = f"the {split} evaluation of {paths.root} {problem}"
        raise MolstrataError(
            f"{problem}; evaluate it first (Run({str(paths.root)!r}).evaluate(split="
            f"{split!r})), or let compare evaluate it (evaluate_missing=True)",
            cli=f"{problem}; run `molstrata evaluate {paths.root} --split {split}` first, or "
                "let compare evaluate it")
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
        config=read_run_config(paths.root),
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
            RunPaths(member).require_trained()
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
            raise MolstrataError("a run label is empty; give every run a name in labels",
                                 cli="a run label is empty; give every run a name with "
                                     "--labels")
    seen = set()
    for label in labels:
        if label in seen:
            problem = f"two runs are labelled {label!r}; labels must be unique: give"
            raise MolstrataError(f"{problem} labels (e.g. labels=['A', 'B'])",
                                 cli=f"{problem} --labels (e.g. --labels A B)")
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

