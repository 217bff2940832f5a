"""Run a study plan end to end: describe the data, train every experiment, evaluate each on
the shared test split, compare, test the study's claims, and write the report.

Resumable: a run that finished is reused (when its saved config is the plan's), an
interrupted one resumes from its last checkpoint, and evaluations newer than their checkpoint
are reused; the cheap steps (describe, compare, report) run again.

Every training of the plan (experiment x replicate, OUT/runs/NAME/seed-S) is an item of a work
queue in OUT/queue.db, or in the database at `storage` (PostgreSQL; study/queue.py), so several
workers share one study: `workers=N` starts N - 1 more processes on this machine, and the same
command started on other machines that share OUT (and `storage`) works through the same queue.
Each item is claimed once; a dead worker's item is taken over after a grace period and resumes
from its checkpoint. The report is the queue's last item: one worker evaluates the runs and
writes it, the others wait for it and print its summary (a worker that dies writing it is taken
over too). A command started on a study already finished writes the report again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from molstrata._files import atomic_write_text
from molstrata.errors import MolstrataError, OptionError
from molstrata.evaluation.compare import compare_runs
from molstrata.evaluation.results import RunResult, group_runs, load_run_result
from molstrata.report.compare import write_comparison
from molstrata.report.describe import describe
from molstrata.report.evaluation_plots import draw_evaluation
from molstrata.study.findings import adjust_family, analyse
from molstrata.study.plan import Replicate, StudyPlan, dataset_name, load_plan
from molstrata.study.queue import Claim, WorkQueue, next_claim
from molstrata.study.report import write_study_report
from molstrata.study.results import AnalysisResult, StudyResult
from molstrata.study.verdicts import Settings
from molstrata.training.config import TrainConfig
from molstrata.training.convergence import still_learning
from molstrata.training.data import is_extensive, load_molecules
from molstrata.training.distributed import one_process
from molstrata.training.machine import OWN_WORKERS_ENV
from molstrata.training.run import train
from molstrata.training.rundir import RunPaths, is_finished
from molstrata.wording import counted

REPORT = "report"
"""The queue's last item: evaluating every run and writing the report, once."""
STORAGE_ENV = "MOLSTRATA_STUDY_STORAGE"
"""How a helper worker is told the storage URL: not on its command line, which `ps` shows."""

# Options that say where and how fast a run computes, not what it computes: a finished run
# is reused whatever they are.
_RUNTIME_ONLY = {("runtime", "device"), ("runtime", "threads"), ("runtime", "eval_batch_size"),
                 ("runtime", "track"), ("data", "cache_dir")}


def run_study(plan: str | os.PathLike, out_dir: str | os.PathLike, *,
              cache_dir: str | None = None, device: str = "auto", threads: int | None = None,
              overrides: list[tuple[str, str, Any]] | tuple = (), replicates: int | None = None,
              workers: int = 1, storage: str | None = None, heartbeat_s: int = 30,
              progress: bool = True, log=print) -> StudyResult:
    """Run the plan (a preset name or a TOML file) into `out_dir`.

    overrides: (section, key, value) applied to every experiment's config, last. replicates:
    training seeds per experiment, instead of the plan's. workers: processes on this machine
    that train at once (each with threads // workers CPU threads). storage: the work queue's
    database URL, the same for every worker (default: OUT/queue.db, SQLite); its password never
    reaches a file or a message. heartbeat_s: how often a worker signs its claim; a claim
    silent for twice that is taken over.
    """
    one_process("molstrata study")
    started = time.perf_counter()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise OptionError("workers", f"must be a whole number >= 1, got {workers!r}")
    if workers > 1:
        threads = max(1, (threads or torch_threads()) // workers)
    spec = {"plan": str(plan), "out": str(out_dir), "cache_dir": cache_dir, "device": device,
            "threads": threads, "overrides": [list(o) for o in overrides],
            "replicates": replicates, "heartbeat_s": heartbeat_s}
    plan = _load(spec)
    out = Path(out_dir)
    _check_layout(plan, out)
    for replicate in plan.runs:  # refuse a changed plan before any work
        _check_reusable(replicate, out / "runs" / replicate.key)
    out.mkdir(parents=True, exist_ok=True)
    keys = [r.key for r in plan.runs]
    queue = WorkQueue.for_folder(out, storage, heartbeat_s=heartbeat_s, log=log)  # before the
    queue.add([*keys, REPORT])                                 # data: a bad URL fails at once
    again = queue.all_done([*keys, REPORT])  # a finished study: its report is written again
    atomic_write_text(out / "plan.toml", plan.source or _plan_note(plan))

    log(f"== {plan.title}")
    log(f"   {counted(len(plan.experiments), 'experiment')} x "
        f"{counted(plan.replicates, 'training seed')} = {counted(len(plan.runs), 'run')}, "
        f"{counted(len(plan.analyses), 'analysis', 'analyses')} -> {out}")
    if plan.replicates == 1:
        log("   one training seed per experiment: intervals will carry the test molecules' "
            "noise only, not the training seed's (--replicates 3 measures it)")
    base = plan.experiments[0].config
    molecules = load_molecules(base, progress)
    description = describe(molecules, out / "describe", name=dataset_name(base),
                           target=base.data.target, extensive=is_extensive(base))
    log(description.text.split("\n\n")[0])

    finished = [r.key for r in plan.runs if is_finished(out / "runs" / r.key)]
    if finished:
        log(f"   reusing {counted(len(finished), 'finished run')} of {len(plan.runs)}")
    on_cpu = device == "cpu" or (device == "auto" and not _cuda())
    if workers == 1 and len(plan.runs) - len(finished) > 1 and on_cpu and \
            (os.cpu_count() or 1) >= 2:
        log("   tip: --workers 2 trains two runs at once, one core each: small models train "
            "about twice as fast that way on a CPU")
    helpers = [_start_worker(spec, n, storage) for n in range(2, workers + 1)]
    try:
        trained, report = _work(plan, out, queue, progress, log,
                                final=None if again else REPORT)
        with report or contextlib.nullcontext():  # done when the report is written
            _wait(helpers)
            write = report is not None or again
            _check_finished(queue, keys, write)
            if not write:
                log("== the report was written by another worker: its summary")
            return _conclude(plan, out, molecules, description, trained, started, device,
                             progress, log, write=write)
    finally:
        _stop(helpers)


def _check_finished(queue: WorkQueue, keys: list[str], write: bool) -> None:
    """Refuse to conclude a study whose runs are not all done, or whose report this worker
    does not write and no other worker wrote."""
    status = queue.status(keys)
    if len(status.done) < len(keys):
        raise MolstrataError(
            f"{counted(len(keys) - len(status.done), 'run')} of the study did not finish "
            f"(failed: {', '.join(status.failed) or 'none'}; still held: "
            f"{', '.join(status.running) or 'none'}); run the same command again to retry them"
        )
    if not write and not queue.all_done([REPORT]):
        raise MolstrataError("the study's report was not written (its worker stopped, and its "
                             "retries are spent); run the same command again")


def _conclude(plan: StudyPlan, out: Path, molecules, description, trained: float,
              started: float, device: str, progress: bool, log, *,
              write: bool) -> StudyResult:
    """Evaluate every run, compare, test the claims and (when `write`) write the report; else
    compute the same result from what the worker that wrote it left."""
    for replicate in plan.runs:  # done in the queue, but its folder was deleted or damaged
        if write and not is_finished(out / "runs" / replicate.key):
            log(f"== {replicate.key}: the queue has it done but its run is not finished: "
                "training it here")
            trained += _train(replicate, out / "runs" / replicate.key, progress, log)
    if write:
        log("== evaluating every run on the shared test split and writing the report")
    results, members = {}, []
    for e in plan.experiments:
        runs = [load_run_result(out / "runs" / r.key, r.key, "test", evaluate_missing=True,
                                device=device, progress=progress) for r in plan.replicates_of(e)]
        members += runs
        group = group_runs(runs, e.name)
        if group.k > 1:  # the experiment's own figures: seed means, two-level intervals
            group = dataclasses.replace(group, eval_dir=out / "experiments" / e.name)
            if write:
                draw_evaluation(group, group.eval_dir)
        results[e.name] = group
    for run in members:
        if run.evaluated_now and write:
            draw_evaluation(run, run.eval_dir)
    _check_same_test_molecules(results)
    learning = {e.name: why for e in plan.experiments
                if (why := still_learning([m.curve for m in results[e.name].replicates
                                           or (results[e.name],)])) is not None}

    analyses = []
    for analysis in plan.analyses:
        compared = [dataclasses.replace(results[name], label=analysis.label(name))
                    for name in analysis.experiments]
        comparison = folder = None
        if len(compared) >= 2:
            comparison = compare_runs(compared)
            folder = out / "comparisons" / analysis.name
            if write:
                write_comparison(comparison, folder)
        findings = analyse(analysis, results, learning, plan.verdicts)
        analyses.append(AnalysisResult(analysis.name, analysis.kind, analysis.title,
                                       analysis.experiments, comparison, findings, folder))
    analyses = _judged_as_a_family(analyses, plan.verdicts)
    seconds = time.perf_counter() - started
    result = StudyResult(plan, out, results, analyses, [], seconds, trained, molecules, learning)
    if not write:
        return dataclasses.replace(result, report_files=[out / "report" / "report.html"])
    files = write_study_report(result, description)
    return dataclasses.replace(result, report_files=files)


def _judged_as_a_family(analyses: list[AnalysisResult],
                        settings: Settings) -> list[AnalysisResult]:
    """The analyses with their primary claims decided together (findings.adjust_family)."""
    flat = adjust_family([f for a in analyses for f in a.findings], settings)
    out, start = [], 0
    for analysis in analyses:
        end = start + len(analysis.findings)
        out.append(dataclasses.replace(analysis, findings=flat[start:end]))
        start = end
    return out


def study_text(result: StudyResult) -> str:
    """The closing summary: every finding with its verdict, and where the report is."""
    lines = [f"{result.plan.title}", ""]
    for analysis in result.analyses:
        if not analysis.findings:
            continue
        lines.append(f"{analysis.title}")
        for finding in analysis.findings:
            lines.append(f"  [{finding.verdict}] {finding.claim} ({finding.family})")
            lines.append(f"      {finding.evidence}")
            lines.append(f"      thesis: {finding.thesis} -> {finding.agreement}")
            for caveat in finding.caveats:
                lines.append(f"      caveat: {caveat}")
        lines.append("")
    report = next((p for p in result.report_files if p.suffix == ".html"), None)
    minutes = result.seconds / 60
    recorded = sum(float(m.summary.get("train_seconds") or 0.0) for r in result.results.values()
                   for m in r.replicates or (r,))
    lines += [f"wall time of this call {minutes:.1f} min ({result.trained_seconds / 60:.1f} min "
              f"of it training); training time of all experiments {recorded / 60:.1f} min",
              f"report:      {report}",
              f"runs:        {result.out_dir / 'runs'}",
              f"comparisons: {result.out_dir / 'comparisons'}"]
    return "\n".join(lines)


def work(spec_json: str) -> None:
    """A helper worker started by run_study(workers=N): train the plan's runs that no other
    worker holds, quietly, until none is left. Its argument is run_study's options as JSON."""
    spec = json.loads(spec_json)
    plan = _load(spec)
    prefix = f"[worker {spec['worker']}]"
    def log(text: str) -> None:
        print(f"{prefix} {text.strip()}", flush=True)

    try:
        queue = WorkQueue.for_folder(spec["out"], os.environ.get(STORAGE_ENV),
                                     heartbeat_s=spec["heartbeat_s"], log=log)
        _work(plan, Path(spec["out"]), queue, False, log)
    except KeyboardInterrupt:
        sys.exit(130)
    except MolstrataError as error:
        log(f"error: {error}")
        sys.exit(2)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _load(spec: dict) -> StudyPlan:
    runtime = [("data", "cache_dir", spec["cache_dir"]), ("runtime", "device", spec["device"]),
               ("runtime", "threads", spec["threads"])]
    overrides = [tuple(o) for o in spec["overrides"]]
    return load_plan(spec["plan"], [*overrides, *((s, k, v) for s, k, v in runtime
                                                   if v is not None)],
                     replicates=spec["replicates"])


def _work(plan: StudyPlan, out: Path, queue: WorkQueue, progress: bool, log,
          final: str | None = None) -> tuple[float, Claim | None]:
    """Train the runs of the plan this worker claims, one at a time, until every run is done
    or held by another worker; the seconds spent training, and the claim of `final` when this
    worker got it (every run is done then), for the caller to finish."""
    by_key = {r.key: r for r in plan.runs}
    number = {key: i for i, key in enumerate(by_key, 1)}
    trained = 0.0
    while (claim := next_claim(queue, list(by_key), final=final, log=log)) is not None:
        if claim.key == final:
            return trained, claim
        with claim:
            replicate = by_key[claim.key]
            log(f"== [{number[claim.key]}/{len(by_key)}] {claim.key}: "
                f"{replicate.experiment.title}"
                + (" (taken over from a worker that stopped)" if claim.taken_over else ""))
            trained += _train(replicate, out / "runs" / claim.key, progress, log)
    return trained, None


def _train(replicate: Replicate, run_dir: Path, progress: bool, log) -> float:
    """Train, resume or reuse one run; the seconds spent training now."""
    paths = RunPaths(run_dir)
    if is_finished(run_dir):
        log(f"   reusing the finished run in {run_dir}")
        return 0.0
    config = replicate.config
    resume = paths.config.is_file()
    started = time.perf_counter()
    if resume:
        log(f"   resuming {run_dir}")
        changes = {("runtime", "threads"): config.runtime.threads,
                   ("runtime", "device"): config.runtime.device}
        train(None, run_dir, resume=True, changes=changes, progress=progress, log=log)
    else:
        train(config, run_dir, progress=progress, log=log)
    return time.perf_counter() - started


def _start_worker(spec: dict, number: int, storage: str | None) -> subprocess.Popen:
    """A helper worker, told that this process and its other helpers are its siblings (their
    load is the plan's, not a busy CPU to warn about), and the storage in its environment."""
    arguments = json.dumps({**spec, "worker": number})
    env = {**os.environ, OWN_WORKERS_ENV: str(os.getpid())}
    env.pop(STORAGE_ENV, None)
    if storage:
        env[STORAGE_ENV] = storage
    return subprocess.Popen([sys.executable, "-c", "import sys; from molstrata.study.runner "
                             "import work; work(sys.argv[1])", arguments], env=env)


def _wait(helpers: list[subprocess.Popen]) -> None:
    """Wait for the helper workers; a helper that failed is an error (its item is queued
    again, and the same command resumes it)."""
    for helper in helpers:
        code = helper.wait()
        if code != 0:
            raise MolstrataError(f"a study worker (process {helper.pid}) stopped with status "
                                 f"{code}; see its lines above, then run the same command again")


def _stop(helpers: list[subprocess.Popen]) -> None:
    """Stop helpers still running (after an error or Ctrl-C here): Ctrl-C first, so that
    they put their runs back in the queue, then, after 30 s, for good."""
    running = [h for h in helpers if h.poll() is None]
    for helper in running:
        helper.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 30
    for helper in running:
        try:
            helper.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            helper.kill()


def _check_layout(plan: StudyPlan, out: Path) -> None:
    """Refuse an output folder of molstrata's earlier layout (one run per experiment in
    runs/NAME), which this version would train again beside."""
    for experiment in plan.experiments:
        old = out / "runs" / experiment.name
        if RunPaths(old).config.is_file():
            new = old / f"seed-{experiment.config.runtime.seed}"
            raise MolstrataError(
                f"{old} is a run of an earlier molstrata (one run per experiment); runs are now "
                f"OUT/runs/NAME/seed-S: move its files to {new} to reuse it, or write the study "
                "to another folder"
            )


def _check_reusable(replicate: Replicate, run_dir: Path) -> None:
    """Refuse to reuse or resume a run trained with another config than the plan's."""
    paths = RunPaths(run_dir)
    if not paths.config.is_file():
        return
    saved = TrainConfig.from_toml(paths.config, saved=True).to_dict()
    wanted = replicate.config.to_dict()
    for section, values in wanted.items():
        for key, value in values.items():
            if (section, key) in _RUNTIME_ONLY or saved[section][key] == value:
                continue
            raise MolstrataError(
                f"run {replicate.key}: {run_dir} was trained with {section}.{key} = "
                f"{saved[section][key]!r} but the plan now says {value!r}; write the study to "
                f"another folder, or delete {run_dir} to retrain it"
            )


def _check_same_test_molecules(results: dict[str, RunResult]) -> None:
    first_name, first = next(iter(results.items()))
    for name, result in results.items():
        if len(result.predictions.ids) != len(first.predictions.ids) or \
                (result.predictions.ids != first.predictions.ids).any():
            raise MolstrataError(
                f"experiments {first_name} and {name} were tested on different molecules; "
                f"their runs in {first.run_dir.parent} come from different data: delete them "
                "and run the study again"
            )


def _plan_note(plan: StudyPlan) -> str:
    return f"# plan {plan.name}: built in Python, no source text\n"
