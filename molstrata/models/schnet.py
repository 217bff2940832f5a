"""SchNet (Schütt et al. 2018) as in SchNetPack 2.1.1: the same weights give the same function.

With `half_pairs=True` it is faster than SchNetPack's forward without changing what it
computes: each unordered pair's filter is computed once and sends messages both ways (the filter
depends only on the distance, so W_ij = W_ji), which halves the filter networks' work, most of
SchNet's cost. On CPUs, batches of `DeviceDataset` carry `MessageSums`; with them, each
convolution runs as one compiled kernel (kernels.py) that reads every pair's filter once and
applies the cutoff on the fly, or, where that kernel cannot be built, sums the messages with
sparse products instead of scatter-adds (see messages.py), in blocks of pairs that stay in the
cache when a batch's (pairs x filters) tensors are big and wide (SchNetPack's 128 filters at
batch 100: `_BlockedConvolution`). The shifted softplus's constant is moved into the next
layer's bias (`dense_pair`), and in float32 a compiled kernel adds the first layer's bias and
takes the softplus in one pass (within 3 ulp of PyTorch's softplus). Apart from that
softplus, all of this changes only the order of float additions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from molstrata.models.activations import LOG2
from molstrata.models.activations import activation as activation_by_name
from molstrata.models.dense import Dense
from molstrata.models.geometry import distances_of
from molstrata.models.kernels import bias_softplus, half_pair_convolution, usable
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

    def compiled(self, x: torch.Tensor, rbf: torch.Tensor, cutoff: torch.Tensor,
                 sums: MessageSums) -> torch.Tensor:
        """The update v for half pairs, as `filters` then `forward` compute it, with the
        messages summed by the compiled CPU kernel (kernels.py), which applies the cutoff as it
        reads the filters. Only where `kernels.usable`."""
        filters = dense_pair(rbf, self.filter_network, self.activation)
        if cutoff.requires_grad:  # the kernel gives no gradient for the cutoff: apply it here
            filters, cutoff = filters * cutoff[:, None], None
        summed = half_pair_convolution(self.in2f(x), filters, cutoff, sums)
        return dense_pair(summed, self.f2out, self.activation)

    def blocked(self, x: torch.Tensor, rbf: torch.Tensor, cutoff: torch.Tensor,
                idx_i: torch.Tensor, idx_j: torch.Tensor, rows: int) -> torch.Tensor:
        """The update v for half pairs, as `filters` then `forward` compute it, with the
        filter network and the messages run `rows` pairs at a time (`_BlockedConvolution`).
        Shifted softplus only; rbf and cutoff must not need gradients (no forces)."""
        first, second = self.filter_network
        summed = _BlockedConvolution.apply(self.in2f(x), rbf, cutoff, first.weight, first.bias,
                                           second.weight, after_softplus(second), idx_i, idx_j,
                                           rows)
        return dense_pair(summed, self.f2out, self.activation)


BLOCK_ABOVE = 4 << 20
"""Bytes of one (pairs x filters) tensor above which SchNet runs its convolutions in blocks of
pairs on a CPU: such tensors no longer stay in the caches between the passes over them."""
BLOCK_BYTES = 1 << 20
"""Bytes of one (rows x filters) block: a few of them stay in a core's L2 cache."""
BLOCK_MIN_FILTERS = 96
"""Narrower filters are never blocked: measured on a 2-core AMD EPYC, blocks made 128 filters
1.14-1.22x faster to train (`bench/bench_message_sums.py --blocking`) and 38 filters at batch
512 no faster (0.99x; 0.89x for prediction)."""


class _BlockedConvolution(torch.autograd.Function):
    """sum over messages of h[sender] * W for half pairs, W = (softplus(rbf W1^T + b1) W2^T
    + b2) * cutoff, computed `rows` pairs at a time so that each block's intermediates stay in
    the cache between the operations on them; the backward recomputes the softplus and the
    gathers per block and keeps only the pre-activations and the filters of the forward."""

    @staticmethod
    def forward(ctx, h, rbf, cutoff, w1, b1, w2, b2, idx_i, idx_j, rows):
        n_pairs, width = rbf.shape[0], w1.shape[0]
        keep = any(ctx.needs_input_grad)
        z_all = rbf.new_empty(n_pairs, width) if keep else None
        filters_all = rbf.new_empty(n_pairs, width) if keep else None
        summed = torch.zeros_like(h)
        for start in range(0, n_pairs, rows):
            stop = min(start + rows, n_pairs)
            z = torch.addmm(b1, rbf[start:stop], w1.t(),
                            out=z_all[start:stop] if keep else None)
            filters = torch.addmm(b2, F.softplus(z), w2.t(),
                                  out=filters_all[start:stop] if keep else None)
            filters.mul_(cutoff[start:stop, None])
            i, j = idx_i[start:stop], idx_j[start:stop]
            summed.index_add_(0, i, torch.index_select(h, 0, j).mul_(filters))
            summed.index_add_(0, j, torch.index_select(h, 0, i).mul_(filters))
        if keep:
            ctx.rows = rows
            ctx.save_for_backward(h, rbf, cutoff, w1, w2, idx_i, idx_j, z_all, filters_all)
        return summed

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        h, rbf, cutoff, w1, w2, idx_i, idx_j, z_all, filters_all = ctx.saved_tensors
        grad = grad.contiguous()
        grad_h, grad_w1, grad_w2 = torch.zeros_like(h), torch.zeros_like(w1), torch.zeros_like(w2)
        grad_b1, grad_b2 = w1.new_zeros(w1.shape[0]), w2.new_zeros(w2.shape[0])
        for start in range(0, len(rbf), ctx.rows):
            stop = min(start + ctx.rows, len(rbf))
            i, j = idx_i[start:stop], idx_j[start:stop]
            z, filters = z_all[start:stop], filters_all[start:stop]
            to_i, to_j = torch.index_select(grad, 0, i), torch.index_select(grad, 0, j)
            # the filter's gradient: both directions' messages use it
            grad_filters = torch.index_select(h, 0, j).mul_(to_i).addcmul_(
                torch.index_select(h, 0, i), to_j)
            grad_h.index_add_(0, j, to_i.mul_(filters))
            grad_h.index_add_(0, i, to_j.mul_(filters))
            grad_filters.mul_(cutoff[start:stop, None])
            grad_w2.addmm_(grad_filters.t(), F.softplus(z))
            grad_b2 += grad_filters.sum(0)
            grad_z = torch.ops.aten.softplus_backward(torch.mm(grad_filters, w2), z, 1, 20)
            grad_w1.addmm_(grad_z.t(), rbf[start:stop])
            grad_b1 += grad_z.sum(0)
        return grad_h, None, None, grad_w1, grad_b1, grad_w2, grad_b2, None, None, None


def dense_pair(x: torch.Tensor, layers: nn.Sequential, activation: str) -> torch.Tensor:
    """layers[1](layers[0](x)): the Dense with an activation, then the linear one.

    For the shifted softplus, softplus(z) - log 2 followed by W2, b2 equals softplus(z)
    followed by W2 and the bias b2 - log 2 * W2 1: the subtraction moves from every row of the
    (n, width) activations to one (width,) vector. In float32 on a CPU with molstrata's
    kernels, the first bias and the softplus are one pass (`kernels.bias_softplus`).
    """
    first, second = layers
    if activation != "shifted_softplus":
        return second(first.activation(F.linear(x, first.weight, first.bias)))
    if x.dtype == torch.float32 and usable(x):  # the bias and the softplus in one pass
        hidden = bias_softplus(F.linear(x, first.weight), first.bias)
    else:
        hidden = F.softplus(F.linear(x, first.weight, first.bias))
    return F.linear(hidden, second.weight, after_softplus(second))


def after_softplus(layer: nn.Linear) -> torch.Tensor:
    """The bias that makes softplus(z) W^T + bias equal shifted_softplus(z) W^T + b, for the
    layer's weight W and bias b: b - log 2 * W 1."""
    return layer.bias - LOG2 * layer.weight.sum(dim=1)


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
        compiled = sums is not None and usable(rbf)
        rows = 0 if compiled else self._block_rows(rbf, cutoff, half_pairs)
        if not (compiled or rows):  # the other paths read the pairs themselves
            senders, receivers = message_routes(idx_i, idx_j, half_pairs)
        x = self.embedding(numbers)
        for interaction in self.interactions:
            if compiled:
                x = x + interaction.compiled(x, rbf, cutoff, sums)
                continue
            if rows:
                x = x + interaction.blocked(x, rbf, cutoff, idx_i, idx_j, rows)
                continue
            filters = interaction.filters(rbf, cutoff)
            x = x + interaction(x, filters, senders, receivers, half_pairs, sums)
        return x

    def _block_rows(self, rbf: torch.Tensor, cutoff: torch.Tensor, half_pairs: bool) -> int:
        """Pairs per block when the convolutions run in blocks (`SchNetInteraction.blocked`):
        eager on a CPU, half pairs, the shifted softplus, no gradient wanted through the
        distances (energy training and prediction, not forces), at least BLOCK_MIN_FILTERS
        filters, and (pairs x filters) tensors over BLOCK_ABOVE bytes. 0 otherwise."""
        size = self.n_filters * rbf.element_size()
        if (not half_pairs or rbf.device.type != "cpu" or rbf.requires_grad
                or self.n_filters < BLOCK_MIN_FILTERS
                or cutoff.requires_grad or torch.compiler.is_compiling()
                or rbf.shape[0] * size <= BLOCK_ABOVE
                or any(block.activation != "shifted_softplus" for block in self.interactions)):
            return 0
        return max(256, BLOCK_BYTES // size)
