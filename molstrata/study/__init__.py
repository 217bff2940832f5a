"""The study as a plan over the stages: describe the data, train, evaluate stratified.

`run_study` is resumable: a finished training is reused, an interrupted one resumes, and the
cheap steps (describe, evaluate) run again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from molstrata.data.datasets import load_dataset
from molstrata.data.molecules import atomic_number
from molstrata.errors import MolstrataError
from molstrata.evaluation.evaluate import Evaluation, evaluate_run, summary_text
from molstrata.report.describe import describe
from molstrata.training.config import preset
from molstrata.training.run import RunPaths, train
from molstrata.training.targets import MAX_Z, Standardization
from molstrata.units import error_unit

STUDIES: dict[str, dict] = {
    # Describe all of QM9, train a baseline on 12,000 molecules, evaluate it by stratum.
    "quick": {"train_preset": "quick", "cap": 2000},
}


def run_study(name: str, out_dir: str | os.PathLike, *, cache_dir: str | None = None,
              device: str = "auto", threads: int | None = None,
              overrides: list[tuple[str, str, object]] = (), progress: bool = True,
              log=print) -> str:
    """Run study `name` into `out_dir`; returns the closing summary text.

    overrides: (section, key, value) options applied to the training config of the plan.
    """
    if name not in STUDIES:
        raise MolstrataError(f"unknown study {name!r}; use one of {', '.join(STUDIES)}")
    plan = STUDIES[name]
    out = Path(out_dir)
    config = preset(plan["train_preset"])
    config.data.cache_dir = cache_dir
    config.runtime.device = device
    config.runtime.threads = threads
    for section, key, value in overrides:
        config.override(section, key, value, "--set")
    config.validate()

    log("== describing the data")
    qm9 = load_dataset(config.data.dataset, config.data.target, cache_root=cache_dir,
                       progress=progress)
    description = describe(qm9, out / "describe", name="QM9", cap=plan["cap"])
    log(description.text.split("\n\n")[0])

    run_dir = out / "baseline"
    paths = RunPaths(run_dir)
    status = json.loads(paths.summary.read_text())["status"] if paths.summary.is_file() else None
    if status in ("finished", "stopped early"):
        log(f"== reusing the finished training in {run_dir}")
    else:
        resume = paths.config.is_file()
        log(f"== {'resuming' if resume else 'training'} the baseline in {run_dir}")
        train(config, run_dir, resume=resume, progress=progress, log=log)

    log("== evaluating on the test split, per size and per element")
    evaluation = evaluate_run(run_dir, split="test", device=device, progress=progress)
    linear = _linear_baseline_mae(evaluation, paths)
    factor, unit = error_unit(evaluation.predictions.unit)
    mae = evaluation.report.overall.summary.mae
    comparison = [] if linear is None else [
        f"SchNet test MAE {factor * mae:.1f} {unit} vs {factor * linear:.1f} {unit} for "
        f"per-element reference energies alone ({linear / mae:.1f}x better)"]
    return "\n".join([
        summary_text(evaluation),
        "",
        *comparison,
        f"data description: {out / 'describe'}",
        f"training run:     {run_dir} (learning_curve.csv, checkpoints/)",
        f"stratified report: {evaluation.out_dir}",
    ])


def _linear_baseline_mae(evaluation: Evaluation, paths: RunPaths) -> float | None:
    """MAE on the evaluated molecules of the per-element reference energies alone: those the
    run fitted on its training split (run.json), with no network on top. None for an
    intensive target, which has no reference energies."""
    refs = json.loads(paths.summary.read_text())["reference_energies"]
    if not refs:
        return None
    atomrefs = np.zeros(MAX_Z)
    for symbol, energy in refs.items():
        atomrefs[atomic_number(symbol)] = energy
    reference = Standardization(atomrefs, 0.0, 1.0, True).reference(evaluation.molecules)
    return float(np.abs(evaluation.predictions.true - reference).mean())
