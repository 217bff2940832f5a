"""The representations `EnergyModel` can be built on, by name: one registry, one line each.

A representation is an `nn.Module` class with
- `geometry`: the pair geometry it reads, 'distances' or 'vectors' (see `geometry.py`);
- `OPTIONS`: its own hyper-parameters and their defaults, plain JSON values;
- `backend`: the name of what it runs on its device, for run.json (backends.py);
- a constructor taking n_atom_basis, n_interactions, n_rbf, cutoff, max_z and `OPTIONS` as
  keywords;
- forward(numbers, geometry, idx_i, idx_j, half_pairs, sums=None) -> scalar atom features
  (n_atoms, n_atom_basis), for directed pairs or, with half_pairs, each unordered pair once;
  `sums`, when given, are the batch's `MessageSums` (see `messages.py`).
A third architecture is one new module and one line in `REPRESENTATIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from molstrata.errors import MolstrataError
from molstrata.models.painn import PaiNN
from molstrata.models.schnet import SchNet

REPRESENTATIONS: dict[str, type[nn.Module]] = {
    "schnet": SchNet,
    "painn": PaiNN,
}
"""Name -> representation class; the names EnergyModel's `representation` accepts."""


def representation_class(name: str) -> type[nn.Module]:
    """The class registered as `name`, or a MolstrataError listing the known names."""
    try:
        return REPRESENTATIONS[name]
    except (KeyError, TypeError):
        raise MolstrataError(
            f"unknown representation {name!r}; choose one of: {', '.join(REPRESENTATIONS)}"
        ) from None


def representation_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of representation `name`: its `OPTIONS` defaults updated by `options`.

    A key the representation does not take, or a non-boolean where it takes a flag, is a
    one-line MolstrataError naming the keys it takes.
    """
    defaults = representation_class(name).OPTIONS
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise MolstrataError(
            f"representation {name!r} has no hyper-parameter {', '.join(unknown)}; its own are: "
            f"{', '.join(defaults) or 'none'} (drop the others or choose another representation)"
        )
    resolved = {**defaults, **options}
    for key, default in defaults.items():
        if isinstance(default, bool) and not isinstance(resolved[key], bool):
            raise MolstrataError(
                f"representation {name!r}: {key} must be true or false, got {resolved[key]!r}"
            )
    return resolved
