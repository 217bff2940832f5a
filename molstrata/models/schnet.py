"""SchNet (Schütt et al. 2018) as in SchNetPack 2.1.1: the same weights give the same function.

With `half_pairs=True` it is faster than SchNetPack's forward without changing what it
computes: each unordered pair's filter is computed once and sends messages both ways (the filter
depends only on the distance, so W_ij = W_ji), which halves the filter networks' work, most of
SchNet's cost.
"""

from __future__ import annotations

import torch
from torch import nn

from molstrata.models.activations import activation as activation_by_name
from molstrata.models.dense import Dense
from molstrata.models.geometry import distances_of
from molstrata.models.radial import CosineCutoff, GaussianRBF


class SchNetInteraction(nn.Module):
    """One continuous-filter convolution block; returns the update v that SchNet adds to x.

    v_i = f2out(sum_j in2f(x)_j * W_ij), with the filter W_ij = filter_network(rbf(d_ij)) times
    the cosine cutoff of d_ij. Submodule names and shapes are SchNetPack's: `in2f` (no bias),
    `filter_network` = [Dense(n_rbf -> n_filters, act), Dense(n_filters -> n_filters)],
    `f2out` = [Dense(n_filters -> n_atom_basis, act), Dense(n_atom_basis -> n_atom_basis)].
    """

    def __init__(
        self,
        n_atom_basis: int = 128,
        n_rbf: int = 20,
        n_filters: int = 128,
        activation: str = "shifted_softplus",
    ):
        super().__init__()
        act = activation_by_name(activation)
        self.in2f = Dense(n_atom_basis, n_filters, bias=False)
        self.filter_network = nn.Sequential(
            Dense(n_rbf, n_filters, activation=act), Dense(n_filters, n_filters)
        )
        self.f2out = nn.Sequential(
            Dense(n_filters, n_atom_basis, activation=act), Dense(n_atom_basis, n_atom_basis)
        )

    def filters(self, rbf: torch.Tensor, cutoff: torch.Tensor) -> torch.Tensor:
        """rbf: (n_pairs, n_rbf), cutoff: (n_pairs,) -> W: (n_pairs, n_filters)."""
        return self.filter_network(rbf) * cutoff[:, None]

    def forward(
        self,
        x: torch.Tensor,
        filters: torch.Tensor,
        idx_i: torch.Tensor,
        idx_j: torch.Tensor,
        half_pairs: bool,
    ) -> torch.Tensor:
        """The update v: (n_atoms, n_atom_basis).

        x: (n_atoms, n_atom_basis); filters: (n_pairs, n_filters) from `filters`;
        idx_i, idx_j: (n_pairs,). Directed pairs (half_pairs=False): only i receives x_j W_ij.
        Unordered pairs given once (half_pairs=True): i receives x_j W_ij and j receives x_i W_ij.
        """
        h = self.in2f(x)
        n_pairs, n_filters = filters.shape
        # index_select, not h[idx]: its backward is an index_add, several times faster on
        # CPUs than the accumulating index_put that plain indexing backpropagates through.
        if half_pairs:
            senders = torch.cat([idx_j, idx_i])
            receivers = torch.cat([idx_i, idx_j])
            gathered = torch.index_select(h, 0, senders).view(2, n_pairs, n_filters)
            messages = (gathered * filters).view(-1, n_filters)
        else:
            receivers = idx_i
            messages = torch.index_select(h, 0, idx_j) * filters
        summed = torch.zeros_like(h).index_add_(0, receivers, messages)
        return self.f2out(summed)


class SchNet(nn.Module):
    """SchNet representation: atom-type embedding refined by `n_interactions` residual blocks.

    Submodules and state-dict keys are those of SchNetPack 2.1.1's `SchNet` with
    `GaussianRBF(n_rbf, cutoff)` and `CosineCutoff(cutoff)`: `embedding`, `radial_basis`,
    `cutoff_fn`, `interactions.<k>`. Reads pair distances in Å (vectors are accepted too, and
    normed). n_filters defaults to n_atom_basis.
    """

    geometry = "distances"
    OPTIONS = {"n_filters": None, "activation": "shifted_softplus"}
    """Hyper-parameters of SchNet's own, with their defaults, beside EnergyModel's common ones."""

    def __init__(
        self,
        n_atom_basis: int = 128,
        n_interactions: int = 3,
        n_rbf: int = 20,
        cutoff: float = 5.0,
        n_filters: int | None = None,
        max_z: int = 100,
        activation: str = "shifted_softplus",
    ):
        super().__init__()
        self.n_atom_basis = n_atom_basis
        self.n_filters = n_filters or n_atom_basis
        self.cutoff = cutoff
        self.embedding = nn.Embedding(max_z, n_atom_basis)
        self.radial_basis = GaussianRBF(n_rbf, cutoff)
        self.cutoff_fn = CosineCutoff(cutoff)
        self.interactions = nn.ModuleList(
            SchNetInteraction(n_atom_basis, n_rbf, self.n_filters, activation)
            for _ in range(n_interactions)
        )

    def forward(
        self,
        numbers: torch.Tensor,
        geometry: torch.Tensor,
        idx_i: torch.Tensor,
        idx_j: torch.Tensor,
        half_pairs: bool,
    ) -> torch.Tensor:
        """Atom features (n_atoms, n_atom_basis).

        numbers: (n_atoms,) long atomic numbers; geometry: distances (n_pairs,) |r_j - r_i| in
        Å, or vectors r_j - r_i (n_pairs, 3), whose norms are taken (see `pair_geometry`);
        idx_i, idx_j: (n_pairs,) long atom indices into the batch. half_pairs=False: directed
        pairs, each atom receiving from every neighbour listed as its j (SchNetPack's
        neighbour list, both i->j and j->i present). half_pairs=True: each unordered pair
        given once (conventionally i < j); messages flow both ways, so the result equals the
        directed version on the pairs and their reverses, at half the filter cost.
        """
        distances = distances_of(geometry)
        rbf = self.radial_basis(distances)
        cutoff = self.cutoff_fn(distances)
        x = self.embedding(numbers)
        for interaction in self.interactions:
            filters = interaction.filters(rbf, cutoff)
            x = x + interaction(x, filters, idx_i, idx_j, half_pairs)
        return x
