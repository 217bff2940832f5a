"""The percentile bootstrap, once: resample molecules, apply a statistic, take the percentiles.

Every confidence interval molstrata reports comes from here: the MAE and MSE of a stratum
(metrics.summarize), the lead of one run over another (compare.lead_interval) and the change
of a macro average or of the spread across sizes (study findings). numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from molstrata.errors import MolstrataError

CHUNK = 2**22
"""Resampled values held in memory at once per array (32 MiB of float64): replicates are
drawn in chunks of CHUNK // n so memory stays bounded for any number of molecules."""

Statistic = Callable[..., np.ndarray]
"""statistic(*resampled) -> (n_replicates, ...): one value (or one row of values) per
replicate, from each array resampled to (n_replicates, n)."""


def percentile_bootstrap(
    arrays: Sequence[np.ndarray],
    statistic: Statistic,
    rng: np.random.Generator,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    paired: bool = True,
    strata: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high): the percentile-bootstrap interval at `confidence` of `statistic`, each
    shaped like one replicate of it (a 0-d array for a scalar statistic).

    Every replicate resamples each array's n entries with replacement and calls
    `statistic(*resampled)` (a chunk of replicates at a time, each array (chunk, n)).
    paired: all arrays are (n,) values of the same molecules in the same order, and one draw
    of molecules resamples them all, so a molecule's values stay together; unpaired, each
    array is resampled on its own (their lengths may differ). strata: (n,) labels (paired
    only); molecules are resampled within their label, so each stratum keeps its count, and
    column j of a resampled array is still a molecule of label strata[j].
    """
    arrays = [np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays]
    if n_bootstrap < 1:
        raise MolstrataError(f"n_bootstrap must be at least 1, got {n_bootstrap}; 1000 is usual")
    if not 0.0 < confidence < 1.0:
        raise MolstrataError(f"confidence must be between 0 and 1, got {confidence}; e.g. 0.95")
    if not arrays or any(len(a) == 0 for a in arrays):
        raise ValueError("the bootstrap needs at least one non-empty array")
    lengths = {len(a) for a in arrays}
    if paired and len(lengths) > 1:
        raise ValueError(f"paired arrays must have one length, got {sorted(lengths)}")
    if strata is not None:
        strata = np.asarray(strata).reshape(-1)
        if not paired or len(strata) != len(arrays[0]):
            raise ValueError("strata label the molecules of paired arrays: one label each")
    groups = None if strata is None else \
        [np.flatnonzero(strata == label) for label in np.unique(strata)]
    per_chunk = max(1, CHUNK // max(lengths))
    replicates = []
    for start in range(0, n_bootstrap, per_chunk):
        rows = min(per_chunk, n_bootstrap - start)
        if paired:
            index = _draw(len(arrays[0]), rows, rng, groups)
            resampled = [a[index] for a in arrays]
        else:
            resampled = [a[_draw(len(a), rows, rng)] for a in arrays]
        replicates.append(np.asarray(statistic(*resampled), dtype=np.float64))
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(np.concatenate(replicates), [tail, 100 - tail], axis=0)
    return low, high


def _draw(n: int, rows: int, rng: np.random.Generator,
          groups: list[np.ndarray] | None = None) -> np.ndarray:
    """(rows, n) indices drawn with replacement from 0..n-1, or with groups, column j from
    the group that holds j."""
    if groups is None:
        return rng.integers(0, n, size=(rows, n), dtype=_index_type(n))
    index = np.empty((rows, n), dtype=np.int64)
    for members in groups:
        m = len(members)
        index[:, members] = members[rng.integers(0, m, size=(rows, m), dtype=_index_type(m))]
    return index


def _index_type(n: int) -> type:
    return np.int32 if n < 2**31 else np.int64  # int32 draws are faster
