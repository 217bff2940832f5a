"""Activation functions by name, so that a model's hyper-parameters stay plain JSON."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from molstrata.errors import MolstrataError

LOG2 = math.log(2.0)
"""The shifted softplus's shift: softplus(0)."""


def shifted_softplus(x: torch.Tensor) -> torch.Tensor:
    """softplus(x) - log 2: SchNet's activation, zero at x = 0."""
    return F.softplus(x) - LOG2


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "shifted_softplus": shifted_softplus,
    "silu": F.silu,
}
"""Name -> activation function; the names a model's `activation` arguments accept."""


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation function called `name`, or a MolstrataError listing the known names."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise MolstrataError(
            f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}"
        ) from None
