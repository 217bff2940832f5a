"""`molstrata evaluate`: a trained run's errors, stratified, written as metrics files and plots."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from molstrata._files import atomic_write_text
from molstrata.data.datasets import load_dataset
from molstrata.data.molecules import Molecules
from molstrata.errors import MolstrataError
from molstrata.evaluation.files import format_summary, write_metrics
from molstrata.evaluation.predict import predict
from molstrata.evaluation.stratified import Predictions, StratifiedReport, stratified_metrics
from molstrata.models import EnergyModel
from molstrata.report import evaluation_plots
from molstrata.training.checkpoints import load_checkpoint
from molstrata.training.config import TrainConfig
from molstrata.training.data import check_elements, prepare
from molstrata.training.distributed import Ranks, process_group, resolve_device
from molstrata.training.run import RunPaths
from molstrata.training.targets import check_finite

SPLITS = ("test", "val", "train", "all")


@dataclass(frozen=True)
class Evaluation:
    """What `evaluate_run` computed and where it wrote it."""

    report: StratifiedReport
    predictions: Predictions
    molecules: Molecules
    out_dir: Path
    files: list[Path]
    seconds: float


def load_model(run_dir: str | os.PathLike, checkpoint: str = "best",
               device: str | torch.device = "auto") -> EnergyModel:
    """The model of a run's best (or last) checkpoint, in eval mode on `device`."""
    paths = RunPaths(run_dir).require()
    config = TrainConfig.from_toml(paths.config)
    payload = load_checkpoint(paths.best if checkpoint == "best" else paths.last)
    model = EnergyModel(**payload["hyperparameters"])
    model.load_state_dict(payload["model"])
    dtype = torch.float64 if config.runtime.dtype == "float64" else torch.float32
    where = device if isinstance(device, torch.device) else resolve_device(device)
    return model.to(device=where, dtype=dtype).eval()


def evaluate_run(
    run_dir: str | os.PathLike,
    *,
    split: str = "test",
    dataset: str | None = None,
    property_name: str | None = None,
    unit: str | None = None,
    checkpoint: str = "best",
    out_dir: str | os.PathLike | None = None,
    all_sizes: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    plots: bool = True,
) -> Evaluation | None:
    """Predict a split of the run's data (or another dataset) and write stratified metrics
    (and, unless `plots` is False, their plots).

    Started by torchrun as one of several processes, each predicts a piece of the molecules
    and rank 0 computes the metrics once from all of them, writes and returns them; the other
    ranks return None."""
    if split not in SPLITS:
        raise MolstrataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if checkpoint not in ("best", "last"):
        raise MolstrataError(f"unknown checkpoint {checkpoint!r}; use best or last")
    with process_group(device) as ranks:
        return _evaluate(run_dir, split, dataset, property_name, unit, checkpoint, out_dir,
                         all_sizes, n_bootstrap, seed, progress and ranks.main, plots, ranks)


def _evaluate(run_dir, split, dataset, property_name, unit, checkpoint, out_dir, all_sizes,
              n_bootstrap, seed, progress, plots, ranks: Ranks) -> Evaluation | None:
    started = time.perf_counter()
    paths = RunPaths(run_dir).require()
    config = TrainConfig.from_toml(paths.config)
    model = load_model(run_dir, checkpoint, ranks.device)
    data = prepare(config, paths.split, progress=progress)
    train = data.molecules.subset(data.split.train)
    if dataset is not None:
        molecules = load_dataset(dataset, property_name or data.target, unit,
                                 cache_root=config.data.cache_dir, progress=progress)
        true = check_finite(molecules, property_name or data.target)
        name = Path(dataset).stem
    else:
        rows = {"test": data.split.test, "val": data.split.val, "train": data.split.train,
                "all": None}[split]
        if rows is not None and len(rows) == 0:
            raise MolstrataError(f"the run's {split} split is empty; evaluate --split val or all")
        molecules = data.molecules if rows is None else data.molecules.subset(rows)
        true = data.values if rows is None else data.values[rows]
        name = split
    check_elements(train, molecules, f"evaluated ({name})")
    predicted = predict(model, molecules, config.data.neighbor_cutoff,
                        config.runtime.eval_batch_size, ranks)
    if not ranks.main:
        return None
    predictions = Predictions.from_molecules(molecules, true, predicted, data.unit, data.target)
    report = stratified_metrics(predictions, train, all_sizes=all_sizes, seed=seed,
                                n_bootstrap=n_bootstrap)
    out = Path(out_dir) if out_dir is not None else paths.root / f"eval-{name}"
    files = write_metrics(report, predictions, out)
    if plots:
        files += _plots(report, predictions, paths, out)
    seconds = time.perf_counter() - started
    timing = {"evaluated": name, "checkpoint": checkpoint, "n_molecules": len(molecules),
              "evaluation_seconds": seconds, "device": str(next(model.parameters()).device),
              "threads": torch.get_num_threads(), "processes": ranks.world}
    atomic_write_text(out / "evaluation.json", json.dumps(timing, indent=2) + "\n")
    return Evaluation(report, predictions, molecules, out, files + [out / "evaluation.json"],
                      seconds)


def _plots(report: StratifiedReport, predictions: Predictions, paths: RunPaths,
           out: Path) -> list[Path]:
    files = [out / "error_by_size.png", out / "error_by_element.png",
             out / "predicted_vs_true.png"]
    evaluation_plots.error_by_size(report, files[0])
    evaluation_plots.error_by_element(report, files[1])
    evaluation_plots.predicted_vs_true(predictions, files[2])
    if paths.curve.is_file():
        files.append(out / "learning_curve.png")
        evaluation_plots.learning_curve(paths.curve, files[-1])
    return files


def summary_text(evaluation: Evaluation) -> str:
    """The terminal summary of an evaluation."""
    return format_summary(evaluation.report) + f"\n\nwrote {len(evaluation.files)} files to " \
        f"{evaluation.out_dir}"

