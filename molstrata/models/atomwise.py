"""`Atomwise`: a per-atom dense network whose outputs are summed (or averaged) per molecule."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from molstrata.models.activations import activation as activation_by_name
from molstrata.models.dense import Dense

AGGREGATIONS = ("sum", "avg")
"""How per-atom outputs combine into a molecule's: `sum` (extensive), `avg` (intensive)."""


def layer_sizes(
    n_in: int, n_out: int = 1, n_hidden: int | Sequence[int] | None = None, n_layers: int = 2
) -> list[int]:
    """Neurons per layer, input and output included, as SchNetPack 2.1.1's `build_mlp`.

    n_hidden None: a pyramid halving n_in at each layer (never below n_out); an int: that
    width for every hidden layer; a sequence: the hidden widths themselves.
    """
    if n_hidden is None:
        sizes, width = [], n_in
        for _ in range(n_layers):
            sizes.append(width)
            width = max(n_out, width // 2)
        return sizes + [n_out]
    if isinstance(n_hidden, int):
        return [n_in] + [n_hidden] * (n_layers - 1) + [n_out]
    return [n_in, *n_hidden, n_out]


def aggregate(
    values: torch.Tensor, molecule_index: torch.Tensor, n_molecules: int, mode: str = "sum"
) -> torch.Tensor:
    """Sum (mode 'sum') or mean (mode 'avg') of per-atom values per molecule.

    values: (n_atoms, ...); molecule_index: (n_atoms,) long -> (n_molecules, ...).
    """
    shape = (n_molecules, *values.shape[1:])
    total = values.new_zeros(shape).index_add_(0, molecule_index, values)
    if mode == "sum":
        return total
    if mode == "avg":
        counts = torch.bincount(molecule_index, minlength=n_molecules).clamp_(min=1)
        return total / counts.view(-1, *([1] * (values.dim() - 1))).to(total.dtype)
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {mode!r}")


class Atomwise(nn.Module):
    """Per-atom outputs o_a = outnet(x_a), combined per molecule (SchNetPack 2.1.1's Atomwise).

    `outnet` is SchNetPack's `build_mlp`: Dense layers with `activation` (silu by default, as
    in SchNetPack 2.1.1) on all but the last; its state-dict keys are `outnet.<k>.weight/bias`.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int = 1,
        n_hidden: int | Sequence[int] | None = None,
        n_layers: int = 2,
        activation: str = "silu",
        aggregation: str = "sum",
    ):
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        act = activation_by_name(activation)
        sizes = layer_sizes(n_in, n_out, n_hidden, n_layers)
        self.n_out = n_out
        self.aggregation = aggregation
        self.outnet = nn.Sequential(
            *(
                Dense(a, b, activation=act if k < len(sizes) - 2 else None)
                for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
            )
        )

    def atom_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n_atoms, n_in) -> per-atom outputs (n_atoms,), or (n_atoms, n_out) if n_out > 1."""
        y = self.outnet(x)
        return y.squeeze(-1) if self.n_out == 1 else y

    def forward(
        self, x: torch.Tensor, molecule_index: torch.Tensor, n_molecules: int
    ) -> torch.Tensor:
        """x: (n_atoms, n_in); molecule_index: (n_atoms,) long -> (n_molecules,) (or
        (n_molecules, n_out)): the per-atom outputs summed, or averaged for aggregation 'avg'."""
        return aggregate(self.atom_outputs(x), molecule_index, n_molecules, self.aggregation)
