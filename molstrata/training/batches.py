"""A dataset that lives on the compute device, and batches gathered from it by index.

Positions never change while training on energies, so the neighbour pairs and the geometry
the model asks for (`EnergyModel.geometry`: distances, or vectors r_j - r_i) are computed once,
on the device and vectorised over the whole set (half pairs: each unordered pair once), and
kept as packed arrays beside the atoms. A batch is then a handful of gathers
and index shifts, with no per-molecule Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from molstrata.data.molecules import Molecules
from molstrata.models.geometry import pair_geometry
from molstrata.models.messages import MessageSums
from molstrata.models.neighbors import neighbor_pairs_chunked


@dataclass
class Batch:
    """Tensors of B molecules, ready for `EnergyModel.forward`.

    numbers: (n_atoms,) long; geometry: (n_pairs,) distances in Å or (n_pairs, 3) vectors
    r_j - r_i in Å, as the model asks; idx_i, idx_j: (n_pairs,) half pairs; molecule_index:
    (n_atoms,) long; target: (B,) residual in the target unit; weight: (B,); sums: the
    `MessageSums` of the half pairs, or None (datasets off the CPU).
    """

    numbers: torch.Tensor
    geometry: torch.Tensor
    idx_i: torch.Tensor
    idx_j: torch.Tensor
    molecule_index: torch.Tensor
    n_molecules: int
    target: torch.Tensor
    weight: torch.Tensor
    rows: torch.Tensor
    sums: MessageSums | None = None


class DeviceDataset:
    """Molecules with their half neighbour pairs and targets, as tensors on one device.

    targets: (n,) residual targets (target minus reference energies), float64 numpy.
    weights: (n,) per-molecule loss weights (1 by default). geometry: what the model takes
    per pair, "distances" or "vectors" (its `geometry`), computed in float64, kept in `dtype`.
    message_sums: whether batches carry `MessageSums` (their pairs molecule by molecule, checked
    to join only their own molecule's atoms, which SchNet's compiled convolution splits between
    threads; default: on a CPU, where that kernel runs).
    """

    def __init__(
        self,
        molecules: Molecules,
        cutoff: float,
        device: torch.device,
        dtype: torch.dtype,
        targets: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        geometry: str = "distances",
        message_sums: bool | None = None,
    ) -> None:
        n = len(molecules)
        self.n_molecules = n
        self.device = device
        self.numbers = torch.as_tensor(molecules.numbers, device=device).long()
        self.atom_offsets = torch.as_tensor(molecules.offsets, device=device)
        self.atom_counts = self.atom_offsets[1:] - self.atom_offsets[:-1]
        positions = torch.as_tensor(molecules.positions, device=device, dtype=torch.float64)
        local_i, local_j, distances, pair_offsets = neighbor_pairs_chunked(
            positions, self.atom_offsets, cutoff
        )
        self.local_i, self.local_j = local_i, local_j
        self.pair_offsets = pair_offsets
        self.pair_counts = pair_offsets[1:] - pair_offsets[:-1]
        if geometry == "distances":
            self.geometry = distances.to(dtype)
        else:
            first = torch.repeat_interleave(self.atom_offsets[:-1], self.pair_counts,
                                            output_size=len(distances))
            self.geometry = pair_geometry(positions, local_i.long() + first,
                                          local_j.long() + first, geometry).to(dtype)
        self.target = torch.as_tensor(
            np.zeros(n) if targets is None else targets, device=device, dtype=dtype
        )
        self.weight = torch.as_tensor(
            np.ones(n) if weights is None else weights, device=device, dtype=dtype
        )
        self.message_sums = device.type == "cpu" if message_sums is None else message_sums

    def __len__(self) -> int:
        return self.n_molecules

    @property
    def n_pairs(self) -> int:
        return len(self.geometry)

    def batch(self, rows: torch.Tensor) -> Batch:
        """Gather molecules `rows` (long tensor on the device) into one batch."""
        device = self.device
        b = len(rows)
        counts = self.atom_counts[rows]
        pair_counts = self.pair_counts[rows]
        new_offsets = torch.cumsum(counts, 0) - counts
        n_atoms = int(counts.sum())
        n_pairs = int(pair_counts.sum())
        arange_b = torch.arange(b, device=device)
        molecule_index = torch.repeat_interleave(arange_b, counts, output_size=n_atoms)
        atoms = self.atom_offsets[rows][molecule_index] + (
            torch.arange(n_atoms, device=device) - new_offsets[molecule_index]
        )
        pair_molecule = torch.repeat_interleave(arange_b, pair_counts, output_size=n_pairs)
        pair_offsets = pair_counts.new_zeros(b + 1)  # the batch's pairs, molecule by molecule
        torch.cumsum(pair_counts, 0, out=pair_offsets[1:])
        pairs = self.pair_offsets[rows][pair_molecule] + (
            torch.arange(n_pairs, device=device) - pair_offsets[:-1][pair_molecule]
        )
        shift = new_offsets[pair_molecule]
        idx_i = self.local_i[pairs].long() + shift
        idx_j = self.local_j[pairs].long() + shift
        sums = (MessageSums(idx_i, idx_j, n_atoms, pair_offsets, molecule_index)
                if self.message_sums else None)
        return Batch(
            numbers=self.numbers[atoms],
            geometry=self.geometry[pairs],
            idx_i=idx_i,
            idx_j=idx_j,
            molecule_index=molecule_index,
            n_molecules=b,
            target=self.target[rows],
            weight=self.weight[rows],
            rows=rows,
            sums=sums,
        )

    def batches(self, order: torch.Tensor, batch_size: int):
        """Consecutive batches of `order` (a permutation or selection of rows)."""
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start : start + batch_size])
