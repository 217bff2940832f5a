"""A sweep's files: the table of trials, the best configs ready to train, and the plots.

    OUT/trials.csv                    one row per trial: number, state, parameters, objective
                                      values (units in the column names), run dir, seconds
    OUT/best.toml                     the best trial's full config (one objective), or
    OUT/pareto-trial-NNNN.toml        one per Pareto-optimal trial (several objectives)
    OUT/optimization_history.png      each objective per trial, with the best so far
    OUT/param_importances.png         PED-ANOVA importances (2+ completed trials, 1+ parameter)
    OUT/pareto_front.png              two objectives: every trial and the Pareto front
"""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from molstrata._files import atomic_write_text
from molstrata.report import sweep_plots
from molstrata.sweep import objectives
from molstrata.sweep.config import Sweep
from molstrata.tables import format_table, write_csv

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class TrialRow:
    """One trial as the outputs show it."""

    number: int
    state: str
    params: dict[str, Any]
    values: dict[str, float]        # every objective computed, in its reported unit
    epochs: int | None
    seconds: float | None
    run_dir: str
    worker: str                     # host:pid of the worker that ran it
    retry_of: int | None
    note: str


def trial_rows(trials: list[FrozenTrial]) -> list[TrialRow]:
    """The trials of a study as rows, in trial order."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        history = {t.number: RetryHeartbeatStaleTrialCallback.retry_history(t) for t in trials}
    retried_as = {previous: number for number, chain in history.items() for previous in chain[-1:]}
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        seconds = None
        if t.datetime_start is not None and t.datetime_complete is not None:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        attrs = t.user_attrs
        note = attrs.get("note", "")
        if t.number in retried_as:
            note = f"its worker died or was interrupted; retried as trial {retried_as[t.number]}"
        retry_of = history[t.number][0] if history[t.number] else None
        rows.append(TrialRow(t.number, t.state.name, dict(t.params), dict(attrs.get("metrics", {})),
                             attrs.get("epochs_done"), seconds, attrs.get("run_dir", ""),
                             attrs.get("worker", ""), retry_of, note))
    return rows


def target_unit(study: optuna.Study) -> str:
    """The unit of the sweep's target (eV for energies), as the first evaluated trial saw it."""
    return study.user_attrs.get("target_unit", "eV")


def write_trials_csv(path: Path, sweep: Sweep, rows: list[TrialRow], unit: str) -> None:
    names = list(objectives.OBJECTIVES)
    header = ["trial", "state", *sweep.space.options,
              *(objectives.column(n, unit) for n in names), "epochs", "seconds", "run_dir",
              "worker", "retry_of", "note"]
    body = [[r.number, r.state, *(r.params.get(o, "") for o in sweep.space.options),
             *(r.values.get(n, "") for n in names), _blank(r.epochs), _blank(r.seconds),
             r.run_dir, r.worker, _blank(r.retry_of), r.note] for r in rows]
    write_csv(path, header, body)


def _blank(value: Any) -> Any:
    return "" if value is None else value


def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The best completed trial (one objective) or the Pareto front (several), by number."""
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return []
    if len(study.directions) == 1:
        return [study.best_trial]
    return sorted(study.best_trials, key=lambda t: t.number)


def write_best_configs(out: Path, sweep: Sweep, study: optuna.Study, unit: str) -> list[Path]:
    """best.toml, or pareto-trial-NNNN.toml per Pareto-optimal trial (older ones removed): each
    the full config of that trial, ready for `molstrata train --config FILE`."""
    best = best_trials(study)
    multi = len(sweep.settings.objective) > 1
    files = []
    for trial in best:
        path = out / (f"pareto-trial-{trial.number:04d}.toml" if multi else "best.toml")
        scores = ", ".join(f"{n} {v:.6g} {objectives.unit_of(n, unit)}"
                           for n, v in zip(sweep.settings.objective, trial.values))
        header = (f"# molstrata sweep {study.study_name!r}: trial {trial.number}, {scores} on "
                  "the VALIDATION split\n"
                  f"# ({'Pareto-optimal' if multi else 'the best'} of "
                  f"{sum(t.state == TrialState.COMPLETE for t in study.get_trials())} completed "
                  "trials). Train it: molstrata train --config " + path.name + "\n\n")
        config = sweep.trial_config(trial.params)
        atomic_write_text(path, header + config.to_toml())
        files.append(path)
    if multi:
        keep = set(files)
        for old in out.glob("pareto-trial-*.toml"):
            if old not in keep:
                old.unlink()
    return files


def write_plots(out: Path, sweep: Sweep, study: optuna.Study, unit: str) -> tuple[list[Path],
                                                                                    list[str]]:
    """The plots a sweep's trials allow, and a note for each one skipped."""
    names = sweep.settings.objective
    labels = [f"{n} ({objectives.unit_of(n, unit)})" for n in names]
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    files, notes = [], []
    if not done:
        return files, ["no completed trial yet: no plots"]
    numbers = [t.number for t in done]
    values = [t.values for t in done]
    files.append(out / "optimization_history.png")
    sweep_plots.optimization_history(numbers, values, labels, files[-1])
    varied = {p for p in sweep.space.options if len({repr(t.params.get(p)) for t in done}) > 1}
    if len(done) < 2 or not varied:
        notes.append("parameter importances need 2 or more completed trials that differ in a "
                     "parameter: param_importances.png skipped")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            importances = {
                label: optuna.importance.get_param_importances(
                    study, evaluator=evaluator, params=sorted(varied),
                    target=lambda t, k=k: t.values[k])
                for k, label in enumerate(labels)}
        files.append(out / "param_importances.png")
        sweep_plots.param_importances(importances, files[-1])
    if len(names) == 2:
        front = {t.number for t in best_trials(study)}
        files.append(out / "pareto_front.png")
        sweep_plots.pareto_front(numbers, values, [n in front for n in numbers], labels,
                                 files[-1])
    return files, notes


def clean_pruned(out: Path, rows: list[TrialRow]) -> list[str]:
    """Remove the run directories of pruned trials under `out`; their relative paths."""
    removed = []
    for row in rows:
        path = out / row.run_dir if row.run_dir else None
        if row.state == "PRUNED" and path is not None and path.is_dir():
            shutil.rmtree(path)
            removed.append(row.run_dir)
    return removed


def trials_text(sweep: Sweep, rows: list[TrialRow], unit: str, limit: int = 10) -> str:
    """The completed trials, best first by the first objective, as an aligned table."""
    names = sweep.settings.objective
    done = sorted((r for r in rows if r.state == "COMPLETE" and all(n in r.values for n in names)),
                  key=lambda r: r.values[names[0]])
    header = ["trial", *sweep.space.options,
              *(f"{n} ({objectives.unit_of(n, unit)})" for n in names), "epochs", "seconds"]
    body = [[r.number, *(_short(r.params.get(o)) for o in sweep.space.options),
             *(round(r.values[n], 2) for n in names), _blank(r.epochs),
             "" if r.seconds is None else round(r.seconds, 1)] for r in done[:limit]]
    title = (f"Completed trials, best first by {names[0]}"
             + (f" (top {limit} of {len(done)})" if len(done) > limit else ""))
    return format_table(header, body, title=title)


def _short(value: Any) -> Any:
    return float(f"{value:.4g}") if isinstance(value, float) else value
