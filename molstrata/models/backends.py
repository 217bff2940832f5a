"""How a model's hot spots run, one backend per device, chosen once (as MACE's wrapper_ops picks
cuEquivariance or e3nn when the model is built): SchNet's convolutions and softplus layers,
PaiNN's interaction messages.

    BACKENDS = {"kernel-openmp": ..., "torch": ...}

- "kernel-openmp": molstrata's compiled C++ kernels (kernels.py), chosen on a CPU where they
  build: SchNet's convolution and PaiNN's messages each in one pass over the pairs (threads
  split by molecule), the bias and softplus in one pass over a layer's output. About 2x as
  fast as "torch" on a CPU for SchNet (training steps 1.8-2.3x on a 2-core Xeon,
  `bench/bench_message_sums.py`).
- "torch": PyTorch's ops (index_select, index_add_, softplus), on any device, and the one
  fallback: on GPUs, on a CPU without a C++ compiler or with MOLSTRATA_KERNELS=0, and in
  every graph torch.compile or torch.export traces (a graph cannot call a ctypes library).

Both compute the same function (the float32 softplus within 3 ulp, the rest up to the order
of float additions). `choose(device)` is the one rule, `on_device` the one place a model asks
it; a model's `backend` says which ran.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import molstrata.models.kernels as kernels
from molstrata.models.messages import MessageSums, gather, message_routes, scatter


class TorchBackend:
    """PyTorch's ops, autograd's backward."""

    name = "torch"

    @staticmethod
    def pairs(idx_i: torch.Tensor, idx_j: torch.Tensor, n_atoms: int, half_pairs: bool,
              sums: MessageSums | None) -> tuple:
        """The batch's (senders, receivers, half_pairs), built once per forward for every
        interaction."""
        return (*message_routes(idx_i, idx_j, half_pairs), half_pairs)

    @staticmethod
    def convolution(h: torch.Tensor, filters: torch.Tensor, cutoff: torch.Tensor,
                    pairs: tuple) -> torch.Tensor:
        """(n_atoms, F): each atom's sum over its messages of h[sender] * filter * cutoff;
        h: (n_atoms, F), filters: (n_pairs, F), cutoff: (n_pairs,); half pairs send two
        messages (n_pairs + p shares pair p's filter)."""
        senders, receivers, _ = pairs
        n_pairs, width = filters.shape
        messages = gather(h, senders).view(-1, n_pairs, width) * (filters * cutoff[:, None])
        return scatter(messages.view(-1, width), receivers, h.shape[0])

    @staticmethod
    def linear_softplus(x: torch.Tensor, weight: torch.Tensor,
                        bias: torch.Tensor) -> torch.Tensor:
        """softplus(x W^T + b)."""
        return F.softplus(F.linear(x, weight, bias))

    @staticmethod
    def painn_messages(x: torch.Tensor, mu: torch.Tensor | None, rbf: torch.Tensor,
                       weight: torch.Tensor, bias: torch.Tensor, cutoff: torch.Tensor,
                       directions: torch.Tensor,
                       pairs: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """PaiNN's messages summed per receiving atom, (dq (n_atoms, F), dmu (n_atoms, 3, F)):
        each message x_sender * filter, the filter (rbf weight^T + bias) * cutoff, split into
        (q, R, mu) parts, gives dq = q part, dmu = R part * direction + mu part * mu_sender.

        x: (n_atoms, 3F); mu: (n_atoms, 3, F) or None (zeros: the term is skipped); rbf:
        (n_pairs, n_rbf); weight: (3F, n_rbf), bias: (3F,): the block's filter network;
        cutoff: (n_pairs,); directions: (n_pairs, 3) unit vectors r̂_ij; half pairs send two
        messages, n_pairs + p sharing pair p's filter with -r̂_ij."""
        senders, receivers, half_pairs = pairs
        n_atoms, width = x.shape[0], x.shape[1] // 3
        n_pairs = rbf.shape[0]
        filters = F.linear(rbf, weight, bias) * cutoff[:, None]
        if half_pairs:
            messages = (
                gather(x, senders).view(2, n_pairs, 3 * width) * filters
            ).view(2 * n_pairs, 3 * width)
            directions = torch.cat([directions, -directions])
        else:
            messages = gather(x, senders) * filters
        dq, dmu_r, dmu_mu = torch.split(messages, width, dim=-1)
        dmu = dmu_r[:, None, :] * directions[:, :, None]
        if mu is not None:
            mu_senders = gather(mu.reshape(n_atoms, 3 * width), senders)
            dmu = dmu + dmu_mu[:, None, :] * mu_senders.view(-1, 3, width)
        return scatter(dq, receivers, n_atoms), scatter(dmu, receivers, n_atoms)


class KernelBackend:
    """The compiled CPU kernels of kernels.py, with their own backward."""

    name = "kernel-openmp"

    @staticmethod
    def pairs(idx_i: torch.Tensor, idx_j: torch.Tensor, n_atoms: int, half_pairs: bool,
              sums: MessageSums | None) -> tuple:
        """(checked pairs, both ways): the batch's `MessageSums`, whose molecule offsets split
        the pairs between threads, or the pairs checked here once (one thread)."""
        return (sums if sums is not None else MessageSums(idx_i, idx_j, n_atoms)), half_pairs

    @staticmethod
    def convolution(h: torch.Tensor, filters: torch.Tensor, cutoff: torch.Tensor,
                    pairs: tuple) -> torch.Tensor:
        """As `TorchBackend.convolution`; the kernel applies the cutoff as it reads the
        filters, except where forces need its gradient (the kernel gives none)."""
        if cutoff.requires_grad:
            filters, cutoff = filters * cutoff[:, None], None
        return kernels.pair_convolution(h, filters, cutoff, *pairs)

    @staticmethod
    def linear_softplus(x: torch.Tensor, weight: torch.Tensor,
                        bias: torch.Tensor) -> torch.Tensor:
        return kernels.bias_softplus(F.linear(x, weight), bias)

    @staticmethod
    def painn_messages(x: torch.Tensor, mu: torch.Tensor | None, rbf: torch.Tensor,
                       weight: torch.Tensor, bias: torch.Tensor, cutoff: torch.Tensor,
                       directions: torch.Tensor,
                       pairs: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """As `TorchBackend.painn_messages`, in one pass over the pairs each way, each filter
        computed as its pair is read."""
        return kernels.painn_messages(x, mu, rbf, weight, bias, cutoff, directions, *pairs)


BACKENDS = {KernelBackend.name: KernelBackend, TorchBackend.name: TorchBackend}
"""Name -> backend, the names a model's `backends` and run.json's `backend` hold."""


def choose(device: torch.device) -> str:
    """The backend for `device`: "kernel-openmp" on a CPU where the compiled kernels load
    (`kernels.status()` says why not), "torch" elsewhere."""
    if device.type == "cpu" and kernels.library() is not None:
        return KernelBackend.name
    return TorchBackend.name


def on_device(chosen: dict[str, str], device: torch.device) -> type:
    """The backend (an entry of `BACKENDS`) a model runs on `device`: `chosen[device.type]`,
    set by `choose` on the model's first call there and kept for its life; "torch" in a graph
    torch.compile or torch.export traces, which cannot call the compiled library."""
    if torch.compiler.is_compiling():
        return TorchBackend
    if device.type not in chosen:
        chosen[device.type] = choose(device)
    return BACKENDS[chosen[device.type]]
