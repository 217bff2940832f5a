"""Energies of any molecules from a trained model, batched on the model's device."""

from __future__ import annotations

import numpy as np
import torch

from molstrata.data.molecules import Molecules
from molstrata.training.batches import DeviceDataset
from molstrata.training.distributed import Ranks
from molstrata.training.loop import predict_residuals


def predict(
    model: torch.nn.Module,
    molecules: Molecules,
    pair_cutoff: float,
    batch_size: int = 2048,
    ranks: Ranks | None = None,
) -> np.ndarray:
    """(n,) predictions in the target's unit, float64: the model's residual plus the reference
    energies of each molecule's elements, added in float64. With several ranks each predicts
    its piece of the molecules (neighbour pairs included) and all receive the whole.

    pair_cutoff: Å, the pairs the model is given, as the run trained it: read it from
    `TrainConfig.pair_cutoff` or `ModelFile.pair_cutoff`, which own the rule."""
    ranks = ranks or Ranks()
    parameter = next(model.parameters())
    n = len(molecules)
    if ranks.distributed:
        molecules = molecules.subset(np.arange(n)[ranks.piece(n)])
    dataset = DeviceDataset(molecules, pair_cutoff, parameter.device, parameter.dtype,
                            geometry=model.geometry)
    residual = predict_residuals(model, dataset, batch_size).double()
    molecule_index = torch.repeat_interleave(
        torch.arange(len(dataset), device=dataset.device), dataset.atom_counts)
    with torch.no_grad():
        reference = model.reference(dataset.numbers, molecule_index, len(dataset))
    return ranks.gather(residual + reference, n).cpu().numpy()
