"""Run a study plan end to end: describe the data, train every experiment, evaluate each on
the shared test split, compare, test the study's claims, and write the report.

Resumable: an experiment whose run finished is reused (when its saved config is the plan's),
an interrupted one resumes from its last checkpoint, and evaluations newer than their
checkpoint are reused; the cheap steps (describe, compare, report) run again.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from molstrata._files import atomic_write_text
from molstrata.errors import MolstrataError
from molstrata.evaluation.compare import RunResult, compare_runs, load_run_result
from molstrata.report.compare import write_comparison
from molstrata.report.describe import describe
from molstrata.report.evaluation_plots import draw_evaluation
from molstrata.study.findings import analyse
from molstrata.study.plan import Experiment, StudyPlan, load_plan
from molstrata.study.report import write_study_report
from molstrata.study.results import AnalysisResult, StudyResult
from molstrata.training.config import TrainConfig
from molstrata.training.data import is_extensive, load_molecules
from molstrata.training.distributed import one_process
from molstrata.training.run import RunPaths, read_run_summary, train

# Options that say where and how fast a run computes, not what it computes: a finished run
# is reused whatever they are.
_RUNTIME_ONLY = {("runtime", "device"), ("runtime", "threads"), ("runtime", "eval_batch_size"),
                 ("runtime", "track"), ("data", "cache_dir")}


def run_study(plan: str | os.PathLike, out_dir: str | os.PathLike, *,
              cache_dir: str | None = None, device: str = "auto", threads: int | None = None,
              overrides: list[tuple[str, str, Any]] | tuple = (), progress: bool = True,
              log=print) -> StudyResult:
    """Run the plan (a preset name or a TOML file) into `out_dir`.

    overrides: (section, key, value) applied to every experiment's config, last.
    """
    one_process("molstrata study")
    started = time.perf_counter()
    runtime = [("data", "cache_dir", cache_dir), ("runtime", "device", device),
               ("runtime", "threads", threads)]
    plan = load_plan(plan, [*overrides, *((s, k, v) for s, k, v in runtime if v is not None)])
    out = Path(out_dir)
    runs = {e.name: out / "runs" / e.name for e in plan.experiments}
    for experiment in plan.experiments:  # refuse a changed plan before any work
        _check_reusable(experiment, runs[experiment.name])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "plan.toml", plan.source or _plan_note(plan))

    log(f"== {plan.title}")
    log(f"   {len(plan.experiments)} experiments, {len(plan.analyses)} analyses -> {out}")
    base = plan.experiments[0].config
    molecules = load_molecules(base, progress)
    description = describe(molecules, out / "describe", name=_dataset_name(base),
                           target=base.data.target, extensive=is_extensive(base))
    log(description.text.split("\n\n")[0])

    trained = 0.0
    for i, experiment in enumerate(plan.experiments, 1):
        log(f"== [{i}/{len(plan.experiments)}] {experiment.name}: {experiment.title}")
        trained += _train(experiment, runs[experiment.name], progress, log)

    log("== evaluating every experiment on the shared test split")
    results = {e.name: load_run_result(runs[e.name], e.name, "test", evaluate_missing=True,
                                       device=device, progress=progress)
               for e in plan.experiments}
    for result in results.values():
        if result.evaluated_now:
            draw_evaluation(result, result.eval_dir)
    _check_same_test_molecules(results)

    analyses = []
    for analysis in plan.analyses:
        compared = [dataclasses.replace(results[name], label=analysis.label(name))
                    for name in analysis.experiments]
        comparison = folder = None
        if len(compared) >= 2:
            comparison = compare_runs(compared)
            folder = out / "comparisons" / analysis.name
            write_comparison(comparison, folder)
        findings = analyse(analysis, results)
        analyses.append(AnalysisResult(analysis.name, analysis.kind, analysis.title,
                                       analysis.experiments, comparison, findings, folder))
    seconds = time.perf_counter() - started
    result = StudyResult(plan, out, results, analyses, [], seconds, trained, molecules)
    files = write_study_report(result, description)
    return dataclasses.replace(result, report_files=files)


def study_text(result: StudyResult) -> str:
    """The closing summary: every finding with its verdict, and where the report is."""
    lines = [f"{result.plan.title}", ""]
    for analysis in result.analyses:
        if not analysis.findings:
            continue
        lines.append(f"{analysis.title}")
        for finding in analysis.findings:
            lines.append(f"  [{finding.verdict}] {finding.claim}")
            lines.append(f"      {finding.evidence}")
        lines.append("")
    report = next((p for p in result.report_files if p.suffix == ".html"), None)
    minutes = result.seconds / 60
    recorded = sum(float(r.summary.get("train_seconds") or 0.0) for r in result.results.values())
    lines += [f"wall time of this call {minutes:.1f} min ({result.trained_seconds / 60:.1f} min "
              f"of it training); training time of all experiments {recorded / 60:.1f} min",
              f"report:      {report}",
              f"runs:        {result.out_dir / 'runs'}",
              f"comparisons: {result.out_dir / 'comparisons'}"]
    return "\n".join(lines)


def _train(experiment: Experiment, run_dir: Path, progress: bool, log) -> float:
    """Train, resume or reuse one experiment's run; the seconds spent training now."""
    paths = RunPaths(run_dir)
    status = read_run_summary(run_dir).get("status")
    if status in ("finished", "stopped early"):
        log(f"   reusing the finished run in {run_dir}")
        return 0.0
    resume = paths.config.is_file()
    if resume:
        log(f"   resuming {run_dir}")
    started = time.perf_counter()
    train(experiment.config, run_dir, resume=resume, progress=progress, log=log)
    return time.perf_counter() - started


def _check_reusable(experiment: Experiment, run_dir: Path) -> None:
    """Refuse to reuse or resume a run trained with another config than the plan's."""
    paths = RunPaths(run_dir)
    if not paths.config.is_file():
        return
    saved = TrainConfig.from_toml(paths.config).to_dict()
    wanted = experiment.config.to_dict()
    for section, values in wanted.items():
        for key, value in values.items():
            if (section, key) in _RUNTIME_ONLY or saved[section][key] == value:
                continue
            raise MolstrataError(
                f"experiment {experiment.name}: {run_dir} was trained with {section}.{key} = "
                f"{saved[section][key]!r} but the plan now says {value!r}; write the study to "
                f"another --out, or delete {run_dir} to retrain it"
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


def _dataset_name(config: TrainConfig) -> str:
    d = config.data
    name = "QM9" if d.dataset.lower() == "qm9" else Path(d.dataset).name
    return f"{name} ({d.max_molecules:,}-molecule slice)" if d.max_molecules else name


def _plan_note(plan: StudyPlan) -> str:
    return f"# plan {plan.name}: built in Python, no source text\n"
