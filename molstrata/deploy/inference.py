"""Energies of many molecules from a model file, chunk by chunk, and ensembles of models.

The molecules go through `molstrata.evaluation.predict` (the very code `evaluate` uses, so a
model file predicts exactly what its run evaluated) a chunk at a time: the neighbour pairs of
one chunk are held at once, never the whole dataset's, which bounds memory on any input size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from molstrata.data.molecules import Molecules
from molstrata.deploy.modelfile import ModelFile
from molstrata.evaluation.predict import predict

BATCH_SIZES = {"cpu": 128, "cuda": 2048}
"""Molecules per forward pass by device type: on a CPU, batches whose pair tensors stay in the
caches are fastest (128 ran twice as fast as 2048 for the study's model, bench_inference.py);
a GPU wants large batches."""


def default_batch_size(device: torch.device) -> int:
    return BATCH_SIZES.get(device.type, BATCH_SIZES["cpu"])

DEFAULT_CHUNK = 4096
"""Molecules whose neighbour pairs are held at once (about 10 MB of pairs for QM9), and the
progress bar's step."""


def compiled(model: torch.nn.Module) -> torch.nn.Module:
    """The model under `torch.compile` with dynamic shapes (every batch differs in atoms and
    pairs); the first batches pay the compilation."""
    return torch.compile(model, dynamic=True)


def predict_molecules(
    model_file: ModelFile,
    molecules: Molecules,
    *,
    batch_size: int | None = None,
    chunk: int = DEFAULT_CHUNK,
    model: torch.nn.Module | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """(n,) predictions in the model's target unit, float64, reference energies included.

    batch_size: molecules per forward pass (default: `default_batch_size` of the model's device).
    model: the network to run instead of `model_file.model` (e.g. its `compiled` version).
    on_progress(k) is called after each chunk with the number of molecules it held.
    """
    network = model_file.model if model is None else model
    if batch_size is None:
        batch_size = default_batch_size(next(model_file.model.parameters()).device)
    out = np.empty(len(molecules), dtype=np.float64)
    for start in range(0, len(molecules), chunk):
        part = molecules.subset(slice(start, start + chunk))
        out[start : start + len(part)] = predict(network, part, model_file.pair_cutoff,
                                                 batch_size)
        if on_progress is not None:
            on_progress(len(part))
    return out


def ensemble_statistics(predictions: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """(mean, standard deviation) across ensemble members of (n,) predictions each.

    The standard deviation is the sample one (n_members - 1 in the denominator), None for a
    single model. NaN (a structure not predicted) stays NaN.
    """
    stacked = np.vstack([np.asarray(p, dtype=np.float64) for p in predictions])
    mean = stacked.mean(axis=0)
    if len(stacked) < 2:
        return mean, None
    return mean, stacked.std(axis=0, ddof=1)
