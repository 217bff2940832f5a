"""`molstrata evaluate`: a trained run's errors, stratified, written as metrics files.

The numbers only: the figures of an evaluation are drawn by the report stage
(`molstrata.report.evaluation_plots.draw_evaluation`), which the command line calls next.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from molstrata._files import atomic_write_text
from molstrata.data.datasets import load_dataset
from molstrata.data.molecules import LABEL, Molecules, element_symbol
from molstrata.errors import MolstrataError, OptionError
from molstrata.evaluation import SPLITS
from molstrata.evaluation.domain import DEFAULT_MIN_STRATUM, Applicability, applicability
from molstrata.evaluation.domain import size_range as training_range
from molstrata.evaluation.domain import summary_text as domain_summary
from molstrata.evaluation.files import format_summary, write_metrics
from molstrata.evaluation.forces import ForceReport
from molstrata.evaluation.offsets import ReferenceOffset, fit_reference_offset
from molstrata.evaluation.predict import predict
from molstrata.evaluation.stratified import Predictions, StratifiedReport, stratified_metrics
from molstrata.models import EnergyModel
from molstrata.training.checkpoints import model_from_checkpoint
from molstrata.training.data import prepare
from molstrata.training.distributed import Ranks, process_group, resolve_device
from molstrata.training.rundir import RunPaths, read_run_config
from molstrata.training.targets import check_finite

EVALUATION_JSON = "evaluation.json"


@dataclass(frozen=True)
class Evaluation:
    """What `evaluate_run` computed and where it wrote it.

    curve: the run's learning_curve.csv, None where it has none. domain: the evaluated
    molecules' domain-of-applicability flags against the training set (another dataset
    only, None for a split of the run's own). offset: the per-element offset of the
    references from the predictions (`molstrata.evaluation.offsets`; None where it cannot
    be fitted), reported when `offset.detected`. left_out: the molecules `skip_unseen` left
    out (see `evaluate_run`), None where none were. notes: lines the summary ends with.
    predicted_elsewhere: the predictions came from a file (`evaluate --predictions`), so
    molecules of an element training never saw were predicted and are evaluated.
    """

    report: StratifiedReport
    predictions: Predictions
    molecules: Molecules
    out_dir: Path
    files: list[Path]
    seconds: float
    curve: Path | None = None
    domain: Applicability | None = None
    min_stratum: int = DEFAULT_MIN_STRATUM
    offset: ReferenceOffset | None = None
    left_out: dict | None = None
    notes: tuple[str, ...] = ()
    predicted_elsewhere: bool = False
    forces: ForceReport | None = None
    """The force errors of a predictions file that carries forces; None otherwise."""


def load_model(run_dir: str | os.PathLike, checkpoint: str = "best",
               device: str | torch.device = "auto") -> EnergyModel:
    """The model of a run's best (or last) checkpoint, in eval mode on `device`."""
    paths = RunPaths(run_dir).require()
    config = read_run_config(paths.root)
    where = device if isinstance(device, torch.device) else resolve_device(device)
    model, _ = model_from_checkpoint(paths.best if checkpoint == "best" else paths.last,
                                     config.runtime.dtype, where)
    return model


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
    min_stratum: int = DEFAULT_MIN_STRATUM,
    skip_periodic: bool = False,
    skip_unseen: bool = False,
) -> Evaluation | None:
    """Predict a split of the run's data (or another dataset) and write stratified metrics
    and evaluation.json (timing, and the offset of `molstrata.evaluation.offsets`; for
    another dataset also its domain-of-applicability flags, rare below `min_stratum`
    training molecules). skip_periodic leaves the periodic structures of `dataset` out
    (said in one printed line) instead of refusing the file. skip_unseen leaves out the
    molecules holding an element no training molecule has, which `predict` flags and does
    not predict, instead of refusing them: a printed line and evaluation.json say which,
    and the domain flags of `dataset` count them.

    Started by torchrun as one of several processes, each predicts a piece of the molecules
    and rank 0 computes the metrics once from all of them, writes and returns them; the other
    ranks return None."""
    if split not in SPLITS:
        raise MolstrataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if checkpoint not in ("best", "last"):
        raise MolstrataError(f"unknown checkpoint {checkpoint!r}; use best or last")
    if min_stratum < 0:
        raise OptionError("min_stratum", f"must be 0 or more, got {min_stratum}")
    with process_group(device) as ranks:
        return _evaluate(run_dir, split, dataset, property_name, unit, checkpoint, out_dir,
                         all_sizes, n_bootstrap, seed, progress and ranks.main, min_stratum,
                         skip_periodic, skip_unseen, ranks)


def _evaluate(run_dir, split, dataset, property_name, unit, checkpoint, out_dir, all_sizes,
              n_bootstrap, seed, progress, min_stratum, skip_periodic, skip_unseen,
              ranks: Ranks) -> Evaluation | None:
    started = time.perf_counter()
    paths = RunPaths(run_dir).require()
    config = read_run_config(paths.root)
    model = load_model(run_dir, checkpoint, ranks.device)
    data = prepare(config, paths.split, progress=progress)
    train = data.molecules.subset(data.split.train)
    if dataset is not None:
        molecules = load_dataset(dataset, property_name or data.target, unit,
                                 cache_root=config.data.cache_dir, progress=progress,
                                 skip_periodic=skip_periodic, log=print if ranks.main else None)
        true = check_finite(molecules, property_name or data.target)
        name = Path(dataset).stem
    else:
        rows = {"test": data.split.test, "val": data.split.val, "train": data.split.train,
                "all": None}[split]
        if rows is not None and len(rows) == 0:
            raise MolstrataError(f"the run's {split} split is empty; evaluate its val split or "
                                 "all of its molecules instead")
        molecules = data.molecules if rows is None else data.molecules.subset(rows)
        true = data.values if rows is None else data.values[rows]
        name = split
    given = molecules
    unseen = _unseen(train, molecules)
    left_out = None
    if unseen.any():
        left_out = _left_out(train, molecules, unseen, name, skip_unseen)
        molecules, true = molecules.subset(~unseen), true[~unseen]
        if ranks.main:
            print(left_out["text"])
    predicted = predict(model, molecules, config.pair_cutoff, config.runtime.eval_batch_size,
                        ranks)
    if not ranks.main:
        return None
    predictions = Predictions.from_molecules(molecules, true, predicted, data.unit, data.target)
    report = stratified_metrics(predictions, train, all_sizes=all_sizes, seed=seed,
                                n_bootstrap=n_bootstrap)
    domain = (applicability(given, report.training, min_stratum)
              if dataset is not None else None)
    offset = (fit_reference_offset(molecules.composition, _symbols(molecules), true, predicted,
                                   data.unit) if data.extensive else None)
    out = Path(out_dir) if out_dir is not None else paths.evaluation(name)
    files = write_metrics(report, predictions, out, molecules.annotations.get(LABEL))
    seconds = time.perf_counter() - started
    summary = {"evaluated": name, "checkpoint": checkpoint, "n_molecules": len(molecules),
               "evaluation_seconds": seconds, "device": str(next(model.parameters()).device),
               "threads": torch.get_num_threads(), "processes": ranks.world}
    if offset is not None:
        summary["reference_offset"] = offset.document()
    if left_out is not None:
        summary["left_out_unseen"] = {k: v for k, v in left_out.items() if k != "text"}
    if domain is not None:
        summary["domain"] = domain_document(domain, report, min_stratum)
    atomic_write_text(out / EVALUATION_JSON, json.dumps(summary, indent=2) + "\n")
    return Evaluation(report, predictions, molecules, out, files + [out / EVALUATION_JSON],
                      seconds, paths.curve if paths.curve.is_file() else None, domain,
                      min_stratum, offset, left_out)


def domain_document(domain: Applicability, report: StratifiedReport, min_stratum: int) -> dict:
    """evaluation.json's "domain" block: the flags of the evaluated molecules against the
    training set (`evaluate --dataset`, `evaluate --predictions --train`)."""
    return {"min_stratum": min_stratum, "training_sizes": list(training_range(report.training)),
            "n_flagged": int(domain.flagged.sum()), "flags": domain.counts()}


def _unseen(train: Molecules, molecules: Molecules) -> np.ndarray:
    """(n_molecules,) bool: the molecules holding an element no training molecule has."""
    holds = np.zeros(len(molecules), dtype=bool)
    for z in np.setdiff1d(molecules.elements, train.elements):
        holds |= molecules.contains(int(z))
    return holds


def _left_out(train: Molecules, molecules: Molecules, unseen: np.ndarray, name: str,
              skip_unseen: bool) -> dict:
    """What `skip_unseen` leaves out (its count, elements, ids and a line saying so), or the
    refusal that names how to leave them out."""
    symbols = _symbols(molecules.subset(unseen))
    elements = [s for s in symbols if s not in set(_symbols(train))]
    ids = np.asarray(molecules.identifiers(), dtype=object)[unseen].tolist()
    n, k = len(molecules), int(unseen.sum())
    shown = ", ".join(map(str, ids[:5])) + (", ..." if k > 5 else "")
    which = (f"{k:,} of the {n:,} evaluated ({name}) molecules hold {' '.join(elements)}, "
             f"which no training molecule has (ids {shown})")
    if not skip_unseen:
        raise MolstrataError(f"{which}; leave them out with --skip-unseen (command line) or "
                             "skip_unseen=True (Python), as predict does, or train on "
                             f"molecules with {' '.join(elements)}")
    if k == n:
        raise MolstrataError(f"{which}: none is left to evaluate; evaluate molecules made of "
                             f"the training elements ({' '.join(_symbols(train))})")
    return {"n_molecules": k, "elements": elements, "ids": ids,
            "text": f"not evaluated (element never seen in training), as skip_unseen asks: "
                    f"{k:,} of {n:,} molecules of {name}, ids {shown} ({' '.join(elements)})"}


def _symbols(molecules: Molecules) -> list[str]:
    return [element_symbol(z) for z in np.asarray(molecules.elements)]


def summary_text(evaluation: Evaluation, figures: Sequence[Path] = ()) -> str:
    """The terminal summary of an evaluation: the stratified tables, the domain flags (another
    dataset), the offset hint where it applies, and how many files were written (`figures`:
    those the report stage drew besides)."""
    parts = [format_summary(evaluation.report)]
    notes = []
    if evaluation.domain is not None:
        notes.append(domain_summary(evaluation.domain, training_range(evaluation.report.training),
                                    evaluation.min_stratum, evaluation.predicted_elsewhere))
    if evaluation.offset is not None and evaluation.offset.detected:
        target = evaluation.report.target
        notes += [evaluation.offset.hint(target, f"the evaluated {target} values"),
                  f"{evaluation.offset.mae_line()}; in {EVALUATION_JSON}"]
    notes += evaluation.notes
    if notes:
        parts.append("\n".join(notes))
    n_files = len(evaluation.files) + len(figures)
    parts.append(f"wrote {n_files} files to {evaluation.out_dir}")
    return "\n\n".join(parts)
