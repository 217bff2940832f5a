"""The study's learning-curve band: how unstable the batch losses of an epoch are."""

from __future__ import annotations

import numpy as np


def loss_band(batch_losses: np.ndarray, k: int = 5) -> tuple[float, float]:
    """(mean of the k lowest, mean of the k highest) batch losses of one logging interval.

    With fewer than k batches, all of them are used on both sides.
    """
    losses = np.sort(np.asarray(batch_losses, dtype=np.float64))
    if len(losses) == 0:
        raise ValueError("no batch losses to summarise")
    k = min(k, len(losses))
    return float(losses[:k].mean()), float(losses[-k:].mean())
