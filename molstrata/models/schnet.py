"""SchNet (Schütt et al. 2018) as in SchNetPack 2.1.1: the same weights give the same function.

With `half_pairs=True` it is faster than SchNetPack's forward without changing what it
computes: each unordered pair's filter is computed once and sends messages both ways (the filter
depends only on the distance, so W_ij = W_ji), which halves the filter networks' work, most of
SchNet's cost. On CPUs, batches of `DeviceDataset` also carry `MessageSums`, which sum the
messages with sparse products instead of scatter-adds (see messages.py); the shifted
softplus's constant is moved into the next layer's bias (`dense_pair`). Both change only the
order of float additions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from molstrata.models.activations import LOG2
from molstrata.models.activations import activation as activation_by_name
from molstrata.models.dense import Dense
from molstrata.models.geometry import distances_of
from molstrata.models.messages import MessageSums, message_routes, pass_messages
from molstrata.models.radial import CosineCutoff, GaussianRBF


class SchNetInteraction(nn.Module):
    """One continuous-filter convolution block; returns the update v that SchNet adds to x.

    v_i = f2out(sum_j in2f(x)_j * W_ij), with the filter W_ij = filter_network(rbf(d_ij)) times
    the cosine cutoff of d_ij. Submodule names and shapes are SchNetPack's: `in2f` (no bias),
    `filter_network` = [Dense(n_rbf -> n_filters, act), Dense(n_filters -> n_filters)],
    `f2out` = [Dense(n_filters -> n_atom_basis, act), Dense(n_atom_basis -> n_atom_basis)].

    The layers are applied through `dense_pair`, which computes act(x W1^T + b1) W2^T + b2
    exactly but, for the shifted softplus, moves its constant -log 2 into the second bias:
    one pass over the largest tensors fewer, forward and backward.
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
        self.activation = activation
        self.in2f = Dense(n_atom_basis, n_filters, bias=False)
        self.filter_network = nn.Sequential(
            Dense(n_rbf, n_filters, activation=act), Dense(n_filters, n_filters)
        )
        self.f2out = nn.Sequential(
            Dense(n_filters, n_atom_basis, activation=act), Dense(n_atom_basis, n_atom_basis)
        )

    def filters(self, rbf: torch.Tensor, cutoff: torch.Tensor) -> torch.Tensor:
        """rbf: (n_pairs, n_rbf), cutoff: (n_pairs,) -> W: (n_pairs, n_filters)."""
        filters = dense_pair(rbf, self.filter_network, self.activation)
        if cutoff.requires_grad:  # forces: the product's backward needs both factors
            return filters * cutoff[:, None]
        # the linear layer's output is not needed by its backward: scale it in place, while
        # it is still in the cache
        return filters.mul_(cutoff[:, None])

    def forward(
        self,
        x: torch.Tensor,
        filters: torch.Tensor,
        senders: torch.Tensor,
        receivers: torch.Tensor,
        half_pairs: bool,
        sums: MessageSums | None = None,
    ) -> torch.Tensor:
        """The update v: (n_atoms, n_atom_basis).

        x: (n_atoms, n_atom_basis); filters: (n_pairs, n_filters) from `filters`; senders,
        receivers: the message routes from `message_routes`, (n_pairs,) each for directed
        pairs, (2 n_pairs,) for half pairs (half_pairs=True), where the first n_pairs
        messages use the filters of pairs 0..n_pairs-1 and the next n_pairs the same filters
        again (reverse direction); sums: the batch's `MessageSums` (half pairs only), or None
        for index_add.
        """
        summed = pass_messages(self.in2f(x), filters, senders, receivers, half_pairs, sums)
        return dense_pair(summed, self.f2out, self.activation)


def dense_pair(x: torch.Tensor, layers: nn.Sequential, activation: str) -> torch.Tensor:
    """layers[1](layers[0](x)): the Dense with an activation, then the linear one.

    For the shifted softplus, softplus(z) - log 2 followed by W2, b2 equals softplus(z)
    followed by W2 and the bias b2 - log 2 * W2 1: the subtraction moves from every row of the
    (n, width) activations to one (width,) vector.
    """
    first, second = layers
    z = F.linear(x, first.weight, first.bias)
    if activation != "shifted_softplus":
        return second(first.activation(z))
    bias = second.bias - LOG2 * second.weight.sum(dim=1)
    return F.linear(F.softplus(z), second.weight, bias)


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
        sums: MessageSums | None = None,
    ) -> torch.Tensor:
        """Atom features (n_atoms, n_atom_basis).

        numbers: (n_atoms,) long atomic numbers; geometry: distances (n_pairs,) |r_j - r_i| in
        Å, or vectors r_j - r_i (n_pairs, 3), whose norms are taken (see `pair_geometry`);
        idx_i, idx_j: (n_pairs,) long atom indices into the batch. half_pairs=False: directed
        pairs, each atom receiving from every neighbour listed as its j (SchNetPack's
        neighbour list, both i->j and j->i present). half_pairs=True: each unordered pair
        given once (conventionally i < j); messages flow both ways, so the result equals the
        directed version on the pairs and their reverses, at half the filter cost. sums: the
        batch's `MessageSums` (half pairs only; faster sums over messages on CPUs), or None.
        """
        if sums is not None and not half_pairs:
            raise ValueError("MessageSums are built for half pairs; pass sums=None")
        distances = distances_of(geometry)
        rbf = self.radial_basis(distances)
        cutoff = self.cutoff_fn(distances)
        senders, receivers = message_routes(idx_i, idx_j, half_pairs)
        x = self.embedding(numbers)
        for interaction in self.interactions:
            filters = interaction.filters(rbf, cutoff)
            x = x + interaction(x, filters, senders, receivers, half_pairs, sums)
        return x
