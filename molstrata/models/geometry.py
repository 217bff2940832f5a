"""The pair geometry a model reads: distances or vectors, computed from positions in one place.

A model says which it needs (`EnergyModel.geometry`); code outside `models/` asks it and calls
`pair_geometry` instead of assuming SchNet's distances. Vectors follow SchNetPack's sign
convention, r_ij = R[idx_j] - R[idx_i]: from atom i (the receiver) to atom j (its neighbour).
"""

from __future__ import annotations

import torch

GEOMETRIES = ("distances", "vectors")
"""What a model may need per pair: `distances` (n_pairs,) or `vectors` (n_pairs, 3), in Å."""


def pair_geometry(
    positions: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor, kind: str
) -> torch.Tensor:
    """The pairs' geometry of `kind`, differentiable in `positions`.

    positions: (n_atoms, 3) in Å; idx_i, idx_j: (n_pairs,) long. kind 'vectors' gives
    r_ij = positions[idx_j] - positions[idx_i], (n_pairs, 3); kind 'distances' gives |r_ij|,
    (n_pairs,). The result has the positions' dtype: cast it to the model's afterwards, so that
    float32 models see float64 geometry rounded once.
    """
    if kind not in GEOMETRIES:
        raise ValueError(f"pair geometry must be one of {GEOMETRIES}, got {kind!r}")
    # index_select, not positions[idx]: its backward is an index_add, faster on CPUs.
    vectors = torch.index_select(positions, 0, idx_j) - torch.index_select(positions, 0, idx_i)
    if kind == "vectors":
        return vectors
    return torch.linalg.vector_norm(vectors, dim=1)


def distances_of(geometry: torch.Tensor) -> torch.Tensor:
    """Distances (n_pairs,) from either kind of geometry: (n_pairs,) as is, (n_pairs, 3) normed."""
    if geometry.dim() == 1:
        return geometry
    if geometry.dim() == 2 and geometry.shape[1] == 3:
        return torch.linalg.vector_norm(geometry, dim=1)
    raise ValueError(
        f"pair geometry must be distances (n_pairs,) or vectors (n_pairs, 3), "
        f"got shape {tuple(geometry.shape)}"
    )


def vectors_of(geometry: torch.Tensor) -> torch.Tensor:
    """The vectors (n_pairs, 3) themselves; distances cannot be turned back into vectors."""
    if geometry.dim() == 2 and geometry.shape[1] == 3:
        return geometry
    raise ValueError(
        f"this model needs pair vectors r_j - r_i (n_pairs, 3), got shape "
        f"{tuple(geometry.shape)}; compute them with "
        "molstrata.models.pair_geometry(positions, idx_i, idx_j, model.geometry)"
    )
