"""`Dense`: a linear layer with an optional activation, initialised as SchNetPack's Dense."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class Dense(nn.Linear):
    """y = activation(x W^T + b) with Xavier-uniform W and zero b (SchNetPack 2's `Dense`).

    Its state dict holds `weight` (out_features, in_features) and, with bias, `bias`
    (out_features,): the same keys and shapes as SchNetPack's layer.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        super().__init__(in_features, out_features, bias)
        self.activation = activation

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        return y if self.activation is None else self.activation(y)
