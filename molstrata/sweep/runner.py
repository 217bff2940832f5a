"""Run a sweep: trials drawn by an Optuna sampler, each a training run judged on its
VALIDATION split's stratified metrics, hopeless ones pruned from their learning curves.

A worker runs trials until the study holds `n_trials` finished (complete or pruned) trials,
counting every worker's: start the same command on many machines with one `--storage` URL and
`--study-name` and they share the work, or again after an interruption and it goes on where it
stopped. A trial whose worker died is failed once its heartbeat is `grace_s` old and retried
with the same parameters, resuming its run directory from the last checkpoint.

    OUT/sweep.db                 the storage (SQLite, unless --storage names another)
    OUT/trials/trial-NNNN/       each trial's run directory (molstrata train's layout) with
                                 eval-val/: its stratified metrics on the validation split
    OUT/trials.csv, best.toml, pareto-trial-NNNN.toml, *.png: see outputs.py
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from molstrata.errors import MolstrataError
from molstrata.evaluation.evaluate import evaluate_run
from molstrata.report.evaluation_plots import draw_evaluation
from molstrata.sweep import objectives, outputs
from molstrata.sweep.config import Sweep
from molstrata.sweep.storage import default_url, open_storage, redacted
from molstrata.training.distributed import one_process
from molstrata.training.run import StopTraining, train
from molstrata.training.rundir import RunPaths, is_finished, read_run_summary
from molstrata.training.tracking import open_tracker
from molstrata.wording import counted

SPEC_ATTR = "molstrata_sweep"


@dataclass(frozen=True)
class SweepResult:
    """What a worker's sweep did and where it wrote it."""

    sweep: Sweep
    study_name: str
    storage: str                    # the URL, password hidden
    out_dir: Path
    rows: list[outputs.TrialRow]    # every trial of the study, all workers
    best: list[int]                 # the best trial's number, or the Pareto front's
    unit: str                       # the target's unit (eV)
    ran: list[int]                  # trials this worker finished
    files: list[Path]
    notes: list[str]
    seconds: float


class _OverBudget(Exception):
    """Another worker took the sweep's last trial at the same moment: this one is not run."""


class _Interrupted(Exception):
    """The user interrupted a trial (Ctrl-C); it is queued again to resume."""


def run_sweep(sweep: Sweep, out_dir: str | os.PathLike, *, storage: str | None = None,
              study_name: str | None = None, n_trials: int | None = None,
              sampler: str | None = None, timeout: float | None = None,
              clean_pruned: bool | None = None, progress: bool = False,
              log=print) -> SweepResult:
    """Run (or resume, or join) the sweep into `out_dir`; the arguments override [sweep]."""
    one_process("molstrata sweep")
    started = time.perf_counter()
    sweep = sweep.with_settings(storage=storage, study_name=study_name, n_trials=n_trials,
                                sampler=sampler, timeout=timeout, clean_pruned=clean_pruned)
    s = sweep.settings
    out = Path(out_dir).resolve()
    notes: list[str] = []
    budget = s.n_trials
    if s.sampler == "grid" and sweep.space.grid_size() < budget:
        budget = sweep.space.grid_size()
        notes.append(f"the grid has {budget} points: n_trials lowered from {s.n_trials}")
    url = s.storage or default_url(out)
    name = s.study_name or sweep.name
    verbosity = optuna.logging.get_verbosity()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial is ours
        try:
            if s.storage is None:  # the embedded storage lives in the output folder
                out.mkdir(parents=True, exist_ok=True)
            study = _open_study(sweep, url, name)
            out.mkdir(parents=True, exist_ok=True)
            ran = _work(sweep, study, out, budget, progress, log)
            return _finish(sweep, study, out, url, ran, notes, started)
        finally:
            optuna.logging.set_verbosity(verbosity)


def _open_study(sweep: Sweep, url: str, name: str) -> optuna.Study:
    """Create the study or join it, refusing one started from another sweep config."""
    s = sweep.settings
    storage = open_storage(url, s.heartbeat_s, s.grace, s.max_retries)
    pruner = _pruner(sweep)
    try:
        study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True,
                                    directions=["minimize"] * len(s.objective), pruner=pruner,
                                    sampler=_sampler(sweep))
    except Exception as error:
        raise MolstrataError(
            f"cannot open study {name!r} in {redacted(url)}: {error}; check the storage"
        ) from None
    spec = sweep.spec()
    saved = study.user_attrs.get(SPEC_ATTR)
    if saved is None:
        study.set_user_attr(SPEC_ATTR, spec)
    elif saved != spec:
        raise MolstrataError(
            f"study {name!r} in {redacted(url)} was started from another sweep config "
            f"({_first_difference(json.loads(saved), json.loads(spec))} differs); give it the "
            "same config, or another study name or output folder"
        )
    for params in s.enqueue:
        study.enqueue_trial(params, skip_if_exists=True)
    return study


def _first_difference(old: dict, new: dict, prefix: str = "") -> str:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}".replace("base.", "")
    return ""


def _pruner(sweep: Sweep) -> optuna.pruners.BasePruner:
    s = sweep.settings
    if s.pruning == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=s.pruner_startup_trials,
                                           n_warmup_steps=s.pruner_warmup_epochs)
    if s.pruning == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=s.pruner_warmup_epochs or "auto")
    return optuna.pruners.NopPruner()


def _sampler(sweep: Sweep) -> optuna.samplers.BaseSampler:
    """The sweep's sampler. The grid is shuffled by the seed alone (every worker must shuffle
    it the same way); TPE and random draw each trial from (seed, trial number)."""
    s = sweep.settings
    if s.sampler == "grid":
        return optuna.samplers.GridSampler(sweep.space.grid(), seed=s.seed)
    if s.sampler == "random":
        return _TrialSeeded(lambda seed: optuna.samplers.RandomSampler(seed=seed), s.seed)
    return _TrialSeeded(lambda seed: optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=s.startup_trials), s.seed)


class _TrialSeeded(optuna.samplers.BaseSampler):
    """A sampler made afresh for every trial, seeded by (seed, trial number): a resumed or a
    second worker never replays another's draws (trial numbers are unique in a study), and a
    one-worker sweep is reproducible. The samplers read the history from the storage, so
    nothing is lost by making them anew."""

    def __init__(self, make, seed: int) -> None:
        self._make, self._seed = make, seed
        self._inner = make(seed)

    def before_trial(self, study, trial) -> None:
        seed = int(np.random.SeedSequence([self._seed, trial.number]).generate_state(1)[0])
        self._inner = self._make(seed)
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def _work(sweep: Sweep, study: optuna.Study, out: Path, budget: int, progress: bool,
          log) -> list[int]:
    """Run trials until the study has `budget` finished ones (or the timeout); the numbers of
    the trials this worker finished."""
    s = sweep.settings
    deadline = None if s.timeout is None else time.monotonic() + s.timeout
    poll = max(0.5, min(5.0, s.heartbeat_s / 2))
    ran: list[int] = []
    waiting_said = False
    current: dict[str, int] = {}
    objective = _objective(sweep, study, out, budget, progress, log, current)
    while True:
        if deadline is not None and time.monotonic() > deadline:
            log(f"timeout of {s.timeout:g} s reached: no new trial started")
            break
        trials = study.get_trials(deepcopy=False)
        count = {state: sum(t.state == state for t in trials) for state in TrialState}
        finished = count[TrialState.COMPLETE] + count[TrialState.PRUNED]
        if finished >= budget:
            break
        if count[TrialState.WAITING] == 0 and finished + count[TrialState.RUNNING] >= budget:
            if not waiting_said:  # the last trials run elsewhere, or died (then retried here)
                log(f"waiting for {count[TrialState.RUNNING]} trial(s) running in other "
                    f"workers (a dead worker's trial is retried after {s.grace} s)")
                waiting_said = True
            optuna.storages.fail_stale_trials(study)
            time.sleep(poll)
            continue
        waiting_said = False
        try:
            study.optimize(objective, n_trials=1, catch=(_OverBudget,))
        except _Interrupted:
            trial = _trial(study, current["number"])
            RetryHeartbeatStaleTrialCallback(max_retry=None, inherit_intermediate_values=True)(
                study, trial)
            log(f"interrupted in trial {trial.number}; run the same command again to go on "
                "(the trial resumes from its last checkpoint)")
            raise KeyboardInterrupt from None
        trial = _trial(study, current["number"])
        if trial.state in outputs.FINISHED:
            ran.append(trial.number)
        _write_tables(sweep, study, out)
    return ran


def _objective(sweep: Sweep, study: optuna.Study, out: Path, budget: int, progress: bool,
               log, current: dict[str, int]):
    s = sweep.settings
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial: optuna.Trial) -> list[float]:
        current["number"] = trial.number
        if _over_budget(study, trial.number, budget):
            trial.set_user_attr("note", "not run: another worker took the sweep's last trial")
            raise _OverBudget
        frozen = _trial(study, trial.number)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry_of = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        params = sweep.space.suggest(trial)
        config = sweep.trial_config(params)
        relative = f"trials/trial-{(retry_of if retry_of is not None else trial.number):04d}"
        run_dir = out / relative
        trial.set_user_attr("run_dir", relative)
        trial.set_user_attr("worker", worker)
        resume = _prepare_run_dir(run_dir, retry_of)
        again = "" if retry_of is None else f" (retry of trial {retry_of})"
        if resume:
            done = read_run_summary(run_dir).get("epochs_done") or 0
            trial.set_user_attr("resumed_after_epoch", done)
            again = f" (retry of trial {retry_of}, resuming its run after epoch {done})"
        described = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
        log(f"trial {trial.number}{again}: {described}")
        hooks = [_pruning_hook(trial)] if s.pruning != "none" else []
        tracker = open_tracker(config.runtime.track, run_dir, config.to_dict(), config.to_toml(),
                               group=study.study_name)
        try:
            if resume and is_finished(run_dir):  # the earlier attempt failed after training
                summary = read_run_summary(run_dir)
            else:
                summary = train(config, run_dir, resume=resume, progress=progress,
                                log=log if progress else _quiet, on_epoch=hooks, tracker=tracker)
            trial.set_user_attr("epochs_done", summary["epochs_done"])
            if summary["status"] == "pruned":
                key = next(k for k in summary if k.startswith("best_val_mae_"))
                log(f"  pruned after epoch {summary['epochs_done']} (best validation MAE "
                    f"{summary[key]:.2f} {key.removeprefix('best_val_mae_')}); "
                    f"{summary['train_seconds']:.1f} s training")
                if s.clean_pruned:
                    shutil.rmtree(run_dir, ignore_errors=True)
                raise optuna.TrialPruned()
            evaluation = evaluate_run(run_dir, split="val", n_bootstrap=s.bootstrap,
                                      seed=config.runtime.seed, device=config.runtime.device,
                                      progress=False)
            if s.trial_plots:
                draw_evaluation(evaluation, evaluation.out_dir)
            values = objectives.compute(evaluation.report, summary)
            if tracker is not None:
                unit = evaluation.report.unit
                tracker.log({f"val/{objectives.column(k, unit)}": v for k, v in values.items()},
                            summary["epochs_done"])
        except KeyboardInterrupt:
            raise _Interrupted from None
        except MolstrataError:
            if read_run_summary(run_dir).get("status") == "interrupted":
                raise _Interrupted from None
            raise
        finally:
            if tracker is not None:
                tracker.close()
        study.set_user_attr("target_unit", evaluation.report.unit)
        trial.set_user_attr("metrics", values)
        chosen = objectives.select(values, s.objective)
        unit = evaluation.report.unit
        log("  " + ", ".join(f"{n} {v:.2f} {objectives.unit_of(n, unit)}"
                             for n, v in zip(s.objective, chosen))
            + f" ({counted(summary['epochs_done'], 'epoch')}, {summary['train_seconds']:.1f} s "
               "training)")
        return chosen

    return objective


def _pruning_hook(trial: optuna.Trial):
    """Report each epoch's validation MAE to the pruner; stop the run when it says so."""

    def hook(row: dict[str, float]) -> None:
        mae = next(v for k, v in row.items() if k.startswith("val_mae_"))
        trial.report(mae, int(row["epoch"]))
        if trial.should_prune():
            raise StopTraining("pruned")

    return hook


def _trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def _over_budget(study: optuna.Study, number: int, budget: int) -> bool:
    """Whether earlier trials (finished, running or queued) already fill the sweep: only when
    two workers asked for the last trial at the same moment."""
    holding = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    earlier = [t for t in study.get_trials(deepcopy=False)
               if t.number < number and t.state in holding]
    return len(earlier) >= budget


def _prepare_run_dir(run_dir: Path, retry_of: int | None) -> bool:
    """Whether the trial resumes an earlier attempt's run; clears an attempt that died before
    its run was written, and refuses a folder holding another sweep's run."""
    paths = RunPaths(run_dir)
    complete = paths.is_run()
    if retry_of is not None:
        if complete:
            return True
        shutil.rmtree(run_dir, ignore_errors=True)
        return False
    if complete:
        raise MolstrataError(
            f"{run_dir} already holds a run that is not this study's trial; give the sweep "
            "an empty -o folder (or the one it was started in, with the same storage)"
        )
    shutil.rmtree(run_dir, ignore_errors=True)
    return False


def _quiet(*_args, **_kwargs) -> None:
    return None


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _write_tables(sweep: Sweep, study: optuna.Study, out: Path) -> list[Path]:
    """trials.csv and the best config(s), rewritten after every trial."""
    unit = outputs.target_unit(study)
    rows = outputs.trial_rows(study.get_trials())
    outputs.write_trials_csv(out / "trials.csv", sweep, rows, unit)
    return [out / "trials.csv", *outputs.write_best_configs(out, sweep, study, unit)]


def _finish(sweep: Sweep, study: optuna.Study, out: Path, url: str, ran: list[int],
            notes: list[str], started: float) -> SweepResult:
    if sweep.settings.clean_pruned:
        removed = outputs.clean_pruned(out, outputs.trial_rows(study.get_trials()))
        if removed:
            notes.append(f"removed {len(removed)} pruned trials' run directories")
    files = _write_tables(sweep, study, out)
    unit = outputs.target_unit(study)
    plots, plot_notes = outputs.write_plots(out, sweep, study, unit)
    rows = outputs.trial_rows(study.get_trials())
    return SweepResult(sweep, study.study_name, redacted(url), out, rows,
                       [t.number for t in outputs.best_trials(study)], unit, ran, files + plots,
                       notes + plot_notes, time.perf_counter() - started)


def sweep_text(result: SweepResult) -> str:
    """The terminal summary of a sweep."""
    s = result.sweep.settings
    states = {}
    for row in result.rows:
        states[row.state] = states.get(row.state, 0) + 1
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(states.items()))
    lines = [
        f"sweep {result.study_name!r} in {result.storage}: {len(result.rows)} trials ({counts});"
        f" this worker finished {len(result.ran)} in {result.seconds:.0f} s",
        f"objective: {', '.join(s.objective)} on the VALIDATION split (never the test split); "
        f"sampler {s.sampler}, pruner {s.pruning}",
        "",
        outputs.trials_text(result.sweep, result.rows, result.unit),
        "",
    ]
    by_number = {r.number: r for r in result.rows}
    for number in result.best:
        row = by_number[number]
        scores = ", ".join(f"{n} {row.values[n]:.2f} {objectives.unit_of(n, result.unit)}"
                           for n in s.objective)
        label = "Pareto-optimal" if len(s.objective) > 1 else "best"
        lines.append(f"{label}: trial {number}, {scores}")
    configs = [f for f in result.files if f.suffix == ".toml"]
    if configs:
        lines.append(f"train it: molstrata train --config {configs[0]}"
                     + (f" (and {len(configs) - 1} more Pareto configs)" if len(configs) > 1
                        else ""))
    lines += [f"note: {note}" for note in result.notes]
    lines.append(f"wrote {', '.join(f.name for f in result.files)} to {result.out_dir}")
    return "\n".join(lines)
