"""Batches for model tests: neighbour pairs by brute force, independent of molstrata's own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from molstrata.data.molecules import Molecules


@dataclass
class Batch:
    """Model inputs for a few molecules; positions in Å, float64."""

    numbers: torch.Tensor  # (n_atoms,) long
    positions: torch.Tensor  # (n_atoms, 3)
    idx_i: torch.Tensor  # (n_pairs,) long
    idx_j: torch.Tensor  # (n_pairs,) long
    molecule_index: torch.Tensor  # (n_atoms,) long
    n_molecules: int
    half: bool

    def vectors(self, positions: torch.Tensor | None = None) -> torch.Tensor:
        """(n_pairs, 3) r_j - r_i in Å (SchNetPack's r_ij), differentiable in `positions`."""
        r = self.positions if positions is None else positions
        return r[self.idx_j] - r[self.idx_i]

    def distances(self, positions: torch.Tensor | None = None) -> torch.Tensor:
        """(n_pairs,) |r_j - r_i| in Å, differentiable in `positions`."""
        return torch.linalg.vector_norm(self.vectors(positions), dim=1)

    def args(
        self, positions: torch.Tensor | None = None, dtype=torch.float64, kind: str = "distances"
    ) -> tuple:
        """The arguments of EnergyModel.forward, up to half_pairs, with the pair geometry of
        `kind` ('distances' or 'vectors': pass the model's `geometry`)."""
        geometry = self.vectors(positions) if kind == "vectors" else self.distances(positions)
        return (
            self.numbers, geometry.to(dtype), self.idx_i, self.idx_j, self.molecule_index,
            self.n_molecules,
        )


def brute_force_pairs(
    positions: np.ndarray, offsets: np.ndarray, cutoff: float, half: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Atom pairs of each molecule closer than `cutoff`: i < j once (half) or both ways."""
    parts_i, parts_j = [], []
    for start, stop in zip(offsets[:-1], offsets[1:]):
        r = positions[start:stop]
        d = np.linalg.norm(r[:, None, :] - r[None, :, :], axis=-1)
        close = (d < cutoff) & ~np.eye(len(r), dtype=bool)
        if half:
            close &= np.triu(np.ones_like(close), k=1)
        i, j = np.nonzero(close)
        parts_i.append(i + start)
        parts_j.append(j + start)
    return np.concatenate(parts_i).astype(np.int64), np.concatenate(parts_j).astype(np.int64)


def batch_of(molecules: Molecules, cutoff: float = 5.0, half: bool = True) -> Batch:
    """A Batch holding all of `molecules`, with pairs within `cutoff`."""
    idx_i, idx_j = brute_force_pairs(molecules.positions, molecules.offsets, cutoff, half)
    return Batch(
        numbers=torch.as_tensor(molecules.numbers.astype(np.int64)),
        positions=torch.as_tensor(molecules.positions, dtype=torch.float64),
        idx_i=torch.as_tensor(idx_i),
        idx_j=torch.as_tensor(idx_j),
        molecule_index=torch.as_tensor(molecules.atom_molecule),
        n_molecules=len(molecules),
        half=half,
    )


@pytest.fixture
def make_batch() -> Callable[..., Batch]:
    """batch_of(molecules, cutoff=5.0, half=True) -> Batch."""
    return batch_of


@pytest.fixture(scope="session")
def qm9_sample(qm9) -> Molecules:
    """20 real QM9 molecules: methane, the largest molecule, one with F, and 17 at random."""
    rng = np.random.default_rng(0)
    fluorine = int(np.flatnonzero(qm9.contains("F"))[0])
    rows = [0, int(np.argmax(qm9.sizes)), fluorine, *rng.choice(len(qm9), 17, replace=False)]
    return qm9.subset(np.asarray(list(dict.fromkeys(rows))))
