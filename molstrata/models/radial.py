"""Distance features of SchNet: a Gaussian radial basis and a cosine cutoff (distances in Å)."""

from __future__ import annotations

import math

import torch
from torch import nn

FLUSH_BELOW = 1e-30
"""Gaussian values under this are set to exactly 0.

Far from its centre a Gaussian underflows to subnormal floats, on which matrix multiplies stall
on some Intel CPUs (tens of times slower). Zeroing them changes the basis by less than 1e-30.
"""


class GaussianRBF(nn.Module):
    """exp(-(d - mu_k)^2 / (2 sigma^2)) for n_rbf centres mu_k = linspace(start, cutoff, n_rbf).

    The width sigma is the spacing of the centres. Centres and widths are float32 buffers
    (`offsets`, `widths`) built exactly as SchNetPack 2.1.1 builds them, so that a model cast to
    float64 holds the same values as a SchNetPack model cast to float64.
    """

    def __init__(
        self, n_rbf: int, cutoff: float, start: float = 0.0, flush_below: float = FLUSH_BELOW
    ):
        super().__init__()
        if n_rbf < 2:
            raise ValueError(f"a Gaussian basis needs n_rbf >= 2, got {n_rbf}")
        self.n_rbf = n_rbf
        self.flush_below = flush_below
        offsets = torch.linspace(start, cutoff, n_rbf, dtype=torch.float32)
        widths = torch.abs(offsets[1] - offsets[0]) * torch.ones_like(offsets)
        self.register_buffer("offsets", offsets)
        self.register_buffer("widths", widths)

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        """distances: (n_pairs,) in Å -> (n_pairs, n_rbf)."""
        coeff = -0.5 / torch.pow(self.widths, 2)
        diff = distances[..., None] - self.offsets
        if _in_place(diff):  # the same values, in place: one (n_pairs, n_rbf) tensor
            y = diff.square_().mul_(coeff).exp_()
            return y.masked_fill_(y < self.flush_below, 0.0) if self.flush_below > 0 else y
        y = torch.exp(coeff * torch.pow(diff, 2))
        if self.flush_below > 0:
            y = torch.where(y < self.flush_below, 0.0, y)
        return y


class CosineCutoff(nn.Module):
    """0.5 (cos(pi d / cutoff) + 1) for d < cutoff, else 0: smooth decay of pair messages.

    The cutoff (Å) is a float32 buffer `cutoff` of shape (1,), as in SchNetPack 2.1.1.
    """

    def __init__(self, cutoff: float):
        super().__init__()
        self.register_buffer("cutoff", torch.tensor([cutoff], dtype=torch.float32))

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        """distances: (n_pairs,) in Å -> (n_pairs,)."""
        inside = distances < self.cutoff
        if _in_place(distances):  # the same values, in place
            value = (distances * math.pi).div_(self.cutoff).cos_().add_(1.0).mul_(0.5)
            return value.masked_fill_(~inside, 0.0)
        value = 0.5 * (torch.cos(distances * math.pi / self.cutoff) + 1.0)
        return torch.where(inside, value, 0.0)


def _in_place(tensor: torch.Tensor) -> bool:
    """Whether a basis may be computed in place: no gradient wanted, and not being traced
    (a program traced without gradients may be run with them, for forces)."""
    return not tensor.requires_grad and not torch.compiler.is_compiling()
