"""`molstrata export`: a trained run (or a model file) to a self-contained file for prediction.

    RUN -> model.pt    the molstrata model file (see `modelfile`): predict, ASE calculator
    RUN -> model.pt2   a torch.export program: energies with no molstrata installed
    model.pt -> model.pt2
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from molstrata.deploy.modelfile import (
    ModelFile,
    model_document,
    model_from_document,
    read_document,
    save_model_file,
)
from molstrata.errors import MolstrataError
from molstrata.evaluation.stratified import TrainingCounts
from molstrata.training.checkpoints import model_from_checkpoint
from molstrata.training.data import prepare
from molstrata.training.rundir import RunPaths, read_run_config, read_run_summary

CHECKPOINTS = ("best", "last")
SUFFIXES = {".pt": "model file", ".pt2": "torch.export program"}


@dataclass(frozen=True)
class Exported:
    """What `export` wrote."""

    path: Path
    kind: str
    model: ModelFile

    def text(self) -> str:
        return f"wrote {self.kind} {self.path}\n{self.model.describe()}"


def export(source: str | os.PathLike, out: str | os.PathLike,
           checkpoint: str = "best") -> Exported:
    """Export a run directory (its best or last checkpoint) or a model file to `out`: a model
    file if `out` ends in .pt, a torch.export program if it ends in .pt2."""
    out, source = Path(out), Path(source)
    kind = SUFFIXES.get(out.suffix.lower())
    if kind is None:
        raise MolstrataError(
            f"cannot tell what to write to {out}: end it in .pt (a molstrata model file) or "
            ".pt2 (a torch.export program)"
        )
    if source.is_dir():
        document = run_document(source, checkpoint)
    elif source.suffix.lower() == ".pt":
        document = read_document(source)
    elif not source.exists():
        raise MolstrataError(f"{source} does not exist; give a run directory or a model file")
    else:
        raise MolstrataError(f"{source} is neither a run directory nor a model file (.pt); "
                             "give the folder `molstrata train` wrote")
    model_file = model_from_document(document, path=source)
    if kind == "model file":
        save_model_file(out, document)
    else:
        from molstrata.deploy.program import save_program

        save_program(model_file, out)
    return Exported(out, kind, model_file)


def run_document(run_dir: str | os.PathLike, checkpoint: str = "best") -> dict:
    """A run's model file document: weights, target and units, the neighbour cutoff, the
    training domain (from the run's split of its data) and where it came from (run,
    checkpoint, epoch, hashes of the data and of the split)."""
    if checkpoint not in CHECKPOINTS:
        raise MolstrataError(f"unknown checkpoint {checkpoint!r}; use best or last")
    paths = RunPaths(run_dir).require()
    config = read_run_config(paths.root)
    model, payload = model_from_checkpoint(paths.best if checkpoint == "best" else paths.last,
                                           config.runtime.dtype)
    data = prepare(config, paths.split, progress=False)
    train = data.molecules.subset(data.split.train)
    provenance = {
        "run": str(paths.root.resolve()),
        "checkpoint": checkpoint,
        "epoch": int(payload["loop"]["epoch"]),
        "dataset": str(config.data.dataset),
        "dataset_fingerprint": data.molecules.fingerprint(),
        "training_data_sha256": train.fingerprint(),
        "split_sha256": hashlib.sha256(paths.split.read_bytes()).hexdigest(),
        "n_molecules": data.split.counts(),
        "run_summary": _run_summary(read_run_summary(paths.root)),
        "config": config.to_dict(),
    }
    return model_document(model, target=data.target, unit=data.unit,
                          neighbor_cutoff=config.data.neighbor_cutoff,
                          training=TrainingCounts.from_molecules(train), provenance=provenance)


def _run_summary(summary: dict) -> dict:
    """run.json's status, epochs and best validation figures, if the run wrote one."""
    keep = ("status", "epochs_done", "best_epoch", "train_seconds")
    return {k: v for k, v in summary.items()
            if (k in keep or k.startswith("best_val_")) and isinstance(v, int | float | str)}
