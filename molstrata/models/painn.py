"""PaiNN (Schütt, Unke, Gastegger 2021) as in SchNetPack 2.1.1: the same weights give the same
function.

Each atom carries scalar features q (n_atoms, F) and vector features mu (n_atoms, 3, F). With
`half_pairs=True` each unordered pair's filter is computed once and sends messages both ways:
the filter depends only on the distance (W_ji = W_ij) and the direction is antisymmetric
(r̂_ji = -r̂_ij), so the reverse message needs only a sign flip, not a second filter network.
The first block also skips the term carried by the neighbours' vector features, which are
still zero there. The interaction's messages run on a backend (backends.py) chosen once per
device: a compiled CPU kernel where it builds, PyTorch's ops elsewhere.
"""

from __future__ import annotations

import torch
from torch import nn

from molstrata.models.activations import activation as activation_by_name
from molstrata.models.backends import TorchBackend, on_device
from molstrata.models.dense import Dense
from molstrata.models.geometry import vectors_of
from molstrata.models.messages import MessageSums
from molstrata.models.radial import CosineCutoff, GaussianRBF

EPSILON = 1e-8
"""Added under the square root of the mixing block's vector norm, as SchNetPack 2.1.1 does:
it keeps the norm's gradient finite where an atom's vector features vanish."""


class PaiNNInteraction(nn.Module):
    """Message passing between atoms: returns q + dq, mu + dmu (SchNetPack's PaiNNInteraction).

    With x = interatomic_context_net(q) split into three F-wide parts by the filter W_ij:
    dq_i = sum_j (W x_j)_q, dmu_i = sum_j (W x_j)_R r̂_ij + (W x_j)_mu mu_j.
    Submodule names are SchNetPack's: `interatomic_context_net` = [Dense(F -> F, act),
    Dense(F -> 3F)].
    """

    def __init__(self, n_atom_basis: int, activation: str = "silu"):
        super().__init__()
        act = activation_by_name(activation)
        self.n_atom_basis = n_atom_basis
        self.interatomic_context_net = nn.Sequential(
            Dense(n_atom_basis, n_atom_basis, activation=act),
            Dense(n_atom_basis, 3 * n_atom_basis),
        )

    def forward(
        self,
        q: torch.Tensor,
        mu: torch.Tensor | None,
        rbf: torch.Tensor,
        filter_net: tuple[torch.Tensor, torch.Tensor],
        cutoff: torch.Tensor,
        directions: torch.Tensor,
        pairs: tuple,
        backend=TorchBackend,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q: (n_atoms, F); mu: (n_atoms, 3, F), or None for all zeros (before the first
        block: the mu_j term vanishes and is skipped, which changes no value or gradient);
        rbf: (n_pairs, n_rbf), the radial basis; filter_net: (weight (3F, n_rbf), bias (3F,)),
        this block's rows of PaiNN's filter network, whose filters (n_pairs, 3F) times cutoff
        (n_pairs,) weigh the messages; directions: (n_pairs, 3) unit vectors r̂_ij; pairs:
        the batch's pairs as `backend.pairs` prepared them (directed: i receives from j; half
        pairs: j also receives from i, with the same filter and direction -r̂_ij); backend:
        an entry of `BACKENDS`.
        """
        x = self.interatomic_context_net(q)
        dq, dmu = backend.painn_messages(x, mu, rbf, *filter_net, cutoff, directions, pairs)
        return q + dq, dmu if mu is None else mu + dmu


class PaiNNMixing(nn.Module):
    """Mixing within each atom: returns q + dq, mu + dmu (SchNetPack's PaiNNMixing).

    mu_channel_mix maps mu to (V, W); with a = intraatomic_context_net([q, |V|]) split in three:
    dq = a_q + a_qmu <V, W>, dmu = a_mu W, where |V| = sqrt(sum_xyz V^2 + epsilon).
    Submodules: `intraatomic_context_net` = [Dense(2F -> F, act), Dense(F -> 3F)],
    `mu_channel_mix` = Dense(F -> 2F, no bias).
    """

    def __init__(self, n_atom_basis: int, activation: str = "silu", epsilon: float = EPSILON):
        super().__init__()
        act = activation_by_name(activation)
        self.n_atom_basis = n_atom_basis
        self.epsilon = epsilon
        self.intraatomic_context_net = nn.Sequential(
            Dense(2 * n_atom_basis, n_atom_basis, activation=act),
            Dense(n_atom_basis, 3 * n_atom_basis),
        )
        self.mu_channel_mix = Dense(n_atom_basis, 2 * n_atom_basis, bias=False)

    def forward(self, q: torch.Tensor, mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q: (n_atoms, F); mu: (n_atoms, 3, F) -> the updated (q, mu)."""
        width = self.n_atom_basis
        mu_v, mu_w = torch.split(self.mu_channel_mix(mu), width, dim=-1)
        norm_v = torch.sqrt(torch.sum(mu_v**2, dim=1) + self.epsilon)
        a = self.intraatomic_context_net(torch.cat([q, norm_v], dim=-1))
        dq, dmu, dqmu = torch.split(a, width, dim=-1)
        q = q + dq + dqmu * torch.sum(mu_v * mu_w, dim=1)
        mu = mu + dmu[:, None, :] * mu_w
        return q, mu


class PaiNN(nn.Module):
    """PaiNN representation: scalar atom features refined by `n_interactions` pairs of
    interaction and mixing blocks, through equivariant vector features.

    Submodules and state-dict keys are those of SchNetPack 2.1.1's `PaiNN` with
    `GaussianRBF(n_rbf, cutoff)` and `CosineCutoff(cutoff)`: `embedding`, `radial_basis`,
    `cutoff_fn`, `filter_net`, `interactions.<k>`, `mixing.<k>`. `filter_net` maps the radial
    basis to 3F filters per block (3F shared by all blocks with shared_filters);
    shared_interactions makes every block the same module (SchNetPack's `replicate_module`:
    its state dict then lists the one block under every index). Reads pair vectors in Å.
    """

    geometry = "vectors"
    OPTIONS = {"activation": "silu", "shared_interactions": False, "shared_filters": False}
    """Hyper-parameters of PaiNN's own, with their defaults, beside EnergyModel's common ones."""

    def __init__(
        self,
        n_atom_basis: int = 128,
        n_interactions: int = 3,
        n_rbf: int = 20,
        cutoff: float = 5.0,
        max_z: int = 100,
        activation: str = "silu",
        shared_interactions: bool = False,
        shared_filters: bool = False,
        epsilon: float = EPSILON,
    ):
        super().__init__()
        self.n_atom_basis = n_atom_basis
        self.n_interactions = n_interactions
        self.cutoff = cutoff
        self.shared_filters = bool(shared_filters)
        self.embedding = nn.Embedding(max_z, n_atom_basis)
        self.radial_basis = GaussianRBF(n_rbf, cutoff)
        self.cutoff_fn = CosineCutoff(cutoff)
        n_filter_blocks = 1 if shared_filters else n_interactions
        self.filter_net = Dense(n_rbf, n_filter_blocks * 3 * n_atom_basis)
        if shared_interactions:
            interaction = PaiNNInteraction(n_atom_basis, activation)
            mixing = PaiNNMixing(n_atom_basis, activation, epsilon)
            self.interactions = nn.ModuleList([interaction] * n_interactions)
            self.mixing = nn.ModuleList([mixing] * n_interactions)
        else:
            self.interactions = nn.ModuleList(
                PaiNNInteraction(n_atom_basis, activation) for _ in range(n_interactions)
            )
            self.mixing = nn.ModuleList(
                PaiNNMixing(n_atom_basis, activation, epsilon) for _ in range(n_interactions)
            )
        self.backends: dict[str, str] = {}
        """Device type ('cpu', 'cuda') -> the name of the backend (`BACKENDS`) the model runs
        there, chosen on the first call on that device and kept (`backends.on_device`). Set
        an entry to choose yourself (tests, benchmarks)."""

    @property
    def backend(self) -> str:
        """The backend on the parameters' device, chosen now if no call chose it yet."""
        return on_device(self.backends, self.embedding.weight.device).name

    def filter_blocks(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each block's (weight (3F, n_rbf), bias (3F,)): `filter_net`'s rows in 3F-wide
        blocks, one per block (the one block of shared_filters for every block). A backend
        applies them to the radial basis: the compiled kernel pair by pair, without ever
        writing the (n_pairs, 3F) filters."""
        if self.shared_filters:
            return [(self.filter_net.weight, self.filter_net.bias)] * self.n_interactions
        rows = 3 * self.n_atom_basis
        return list(zip(torch.split(self.filter_net.weight, rows),
                        torch.split(self.filter_net.bias, rows)))

    def forward(
        self,
        numbers: torch.Tensor,
        geometry: torch.Tensor,
        idx_i: torch.Tensor,
        idx_j: torch.Tensor,
        half_pairs: bool,
        sums: MessageSums | None = None,
    ) -> torch.Tensor:
        """Scalar atom features q (n_atoms, n_atom_basis).

        numbers: (n_atoms,) long; geometry: (n_pairs, 3) vectors r_ij = R[idx_j] - R[idx_i]
        in Å (see `pair_geometry`); idx_i, idx_j: (n_pairs,) long. half_pairs=False: directed
        pairs, both i->j and j->i listed; half_pairs=True: each unordered pair once, messages
        flowing both ways, equal to the directed version at half the filter cost. sums: the
        batch's `MessageSums` (half pairs only), whose molecule offsets let the compiled
        kernel use several threads, or None.
        """
        if sums is not None and not half_pairs:
            raise ValueError("MessageSums are built for half pairs; pass sums=None")
        vectors = vectors_of(geometry)
        distances = torch.linalg.vector_norm(vectors, dim=1)
        directions = vectors / distances[:, None]
        rbf = self.radial_basis(distances)
        cutoff = self.cutoff_fn(distances)
        backend = on_device(self.backends, vectors.device)
        pairs = backend.pairs(idx_i, idx_j, numbers.shape[0], half_pairs, sums)
        q = self.embedding(numbers)
        mu = None  # all zeros until the first interaction
        blocks = self.filter_blocks()
        for interaction, mixing, filter_net in zip(self.interactions, self.mixing, blocks):
            q, mu = interaction(q, mu, rbf, filter_net, cutoff, directions, pairs, backend)
            q, mu = mixing(q, mu)
        return q
