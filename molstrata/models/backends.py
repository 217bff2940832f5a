"""SchNet's backends: how its convolutions and softplus layers run, one per device, chosen
once (as MACE's wrapper_ops picks cuEquivariance or e3nn when the model is built).

    BACKENDS = {"kernel-openmp": ..., "torch": ...}

- "kernel-openmp": molstrata's compiled C++ kernels (kernels.py), chosen on a CPU where they
  build: the convolution in one pass over the pairs (threads split by molecule), the bias and
  softplus in one pass over a layer's output. About 2x as fast as "torch" on a CPU (training
  steps 1.8-2.3x on a 2-core Xeon, `bench/bench_message_sums.py`).
- "torch": PyTorch's ops (index_select, index_add_, softplus), on any device, and the one
  fallback: on GPUs, on a CPU without a C++ compiler or with MOLSTRATA_KERNELS=0, and in
  every graph torch.compile or torch.export traces (a graph cannot call a ctypes library).

Both compute the same function (the float32 softplus within 3 ulp, the rest up to the order
of float additions). `choose(device)` is the one rule; `SchNet.backend` says which ran.
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
        """The batch's (senders, receivers), built once per forward for every interaction."""
        return message_routes(idx_i, idx_j, half_pairs)

    @staticmethod
    def convolution(h: torch.Tensor, filters: torch.Tensor, cutoff: torch.Tensor,
                    pairs: tuple) -> torch.Tensor:
        """(n_atoms, F): each atom's sum over its messages of h[sender] * filter * cutoff;
        h: (n_atoms, F), filters: (n_pairs, F), cutoff: (n_pairs,); half pairs send two
        messages (n_pairs + p shares pair p's filter)."""
        senders, receivers = pairs
        n_pairs, width = filters.shape
        messages = gather(h, senders).view(-1, n_pairs, width) * (filters * cutoff[:, None])
        return scatter(messages.view(-1, width), receivers, h.shape[0])

    @staticmethod
    def linear_softplus(x: torch.Tensor, weight: torch.Tensor,
                        bias: torch.Tensor) -> torch.Tensor:
        """softplus(x W^T + b)."""
        return F.softplus(F.linear(x, weight, bias))


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


BACKENDS = {KernelBackend.name: KernelBackend, TorchBackend.name: TorchBackend}
"""Name -> backend, the names `SchNet.backends` and run.json's `backend` hold."""


def choose(device: torch.device) -> str:
    """The backend for `device`: "kernel-openmp" on a CPU where the compiled kernels load
    (`kernels.status()` says why not), "torch" elsewhere."""
    if device.type == "cpu" and kernels.library() is not None:
        return KernelBackend.name
    return TorchBackend.name
