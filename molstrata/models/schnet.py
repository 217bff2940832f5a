"""SchNet (Schütt et al. 2018) as in SchNetPack 2.1.1: the same weights give the same function.

With `half_pairs=True` it is faster than SchNetPack's forward without changing what it
computes: each unordered pair's filter is computed once and sends messages both ways (the filter
depends only on the distance, so W_ij = W_ji), which halves the filter networks' work, most of
SchNet's cost. The shifted softplus's constant is moved into the next layer's bias
(`dense_pair`). The convolutions and softplus layers run on a backend (backends.py) chosen once
per device: compiled CPU kernels where they build, PyTorch's ops elsewhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from molstrata.models.activations import LOG2
from molstrata.models.activations import activation as activation_by_name
from molstrata.models.backends import TorchBackend, on_device
from molstrata.models.dense import Dense
from molstrata.models.geometry import distances_of
from molstrata.models.messages import MessageSums
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
        self.activation = activation
        self.in2f = Dense(n_atom_basis, n_filters, bias=False)
        self.filter_network = nn.Sequential(
            Dense(n_rbf, n_filters, activation=act), Dense(n_filters, n_filters)
        )
        self.f2out = nn.Sequential(
            Dense(n_filters, n_atom_basis, activation=act), Dense(n_atom_basis, n_atom_basis)
        )

    def forward(self, x: torch.Tensor, rbf: torch.Tensor, cutoff: torch.Tensor, pairs: tuple,
                backend=TorchBackend) -> torch.Tensor:
        """The update v: (n_atoms, n_atom_basis).

        x: (n_atoms, n_atom_basis); rbf: (n_pairs, n_rbf); cutoff: (n_pairs,); pairs: the
        batch's pairs as `backend.pairs` prepared them; backend: an entry of `BACKENDS`."""
        filters = dense_pair(rbf, self.filter_network, self.activation, backend)
        summed = backend.convolution(self.in2f(x), filters, cutoff, pairs)
        return dense_pair(summed, self.f2out, self.activation, backend)


def dense_pair(x: torch.Tensor, layers: nn.Sequential, activation: str,
               backend=TorchBackend) -> torch.Tensor:
    """layers[1](layers[0](x)): the Dense with an activation, then the linear one.

    For the shifted softplus, softplus(z) - log 2 followed by W2, b2 equals softplus(z)
    followed by W2 and the bias b2 - log 2 * W2 1: the subtraction moves from every row of the
    (n, width) activations to one (width,) vector, and the first layer and its softplus run
    as the backend's `linear_softplus`.
    """
    first, second = layers
    if activation != "shifted_softplus":
        return second(first.activation(F.linear(x, first.weight, first.bias)))
    hidden = backend.linear_softplus(x, first.weight, first.bias)
    return F.linear(hidden, second.weight, second.bias - LOG2 * second.weight.sum(dim=1))


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
        self.backends: dict[str, str] = {}
        """Device type ('cpu', 'cuda') -> the name of the backend (`BACKENDS`) the model runs
        there: chosen by `backends.choose` on the first call on that device, kept for the
        model's life (`backends.on_device`). Set an entry to choose yourself (tests,
        benchmarks)."""

    @property
    def backend(self) -> str:
        """The backend on the parameters' device, chosen now if no call chose it yet."""
        return on_device(self.backends, self.embedding.weight.device).name


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
        batch's `MessageSums` (half pairs only), whose molecule offsets let the compiled
        convolution use several threads, or None.
        """
        if sums is not None and not half_pairs:
            raise ValueError("MessageSums are built for half pairs; pass sums=None")
        distances = distances_of(geometry)
        rbf = self.radial_basis(distances)
        cutoff = self.cutoff_fn(distances)
        backend = on_device(self.backends, distances.device)
        pairs = backend.pairs(idx_i, idx_j, numbers.shape[0], half_pairs, sums)
        x = self.embedding(numbers)
        for interaction in self.interactions:
            x = x + interaction(x, rbf, cutoff, pairs, backend)
        return x
