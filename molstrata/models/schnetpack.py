"""Load a SchNetPack 2 model's weights into an `EnergyModel`, without SchNetPack installed.

Accepted state dicts:
- a `NeuralNetworkPotential`'s, with representation SchNet or PaiNN (`GaussianRBF`,
  `CosineCutoff`), one `Atomwise` output module and, optionally, an `AddOffsets` postprocessor
  (keys `representation.*`, `output_modules.0.outnet.*`, `postprocessors.<k>.atomref/mean`);
- the merged state dicts of standalone modules: `{**representation.state_dict(),
  **atomwise.state_dict(), **add_offsets.state_dict()}` (keys `embedding.weight`,
  `interactions.*`, ..., `outnet.*`, and optionally `atomref`, `mean`).
Which representation a state dict holds is read off its keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from molstrata.errors import MolstrataError
from molstrata.models.atomwise import layer_sizes
from molstrata.models.model import EnergyModel

_REPRESENTATION = "representation."
_COMMON_KEYS = (
    "embedding.weight",
    "radial_basis.offsets",
    "radial_basis.widths",
    "cutoff_fn.cutoff",
)
_OFFSETS_KEYS = ("atomref", "mean")


@dataclass(frozen=True)
class _Layout:
    """The keys of one SchNetPack representation: fixed ones, and those repeated per block
    (`group.<k>.key` for each group), and how its hyper-parameters are read off the tensors."""

    fixed: tuple[str, ...]
    blocks: dict[str, tuple[str, ...]]
    read: Callable[[dict[str, torch.Tensor], int], dict]

    def required(self, n_blocks: int) -> list[str]:
        return list(self.fixed) + [
            f"{group}.{k}.{key}"
            for k in range(n_blocks)
            for group, keys in self.blocks.items()
            for key in keys
        ]

    def owns(self, key: str) -> bool:
        """Whether `key` (without `representation.`) is one of this layout's own keys."""
        if key in self.fixed and key not in _COMMON_KEYS:
            return True
        match = re.fullmatch(r"(\w+)\.\d+\.(.+)", key)
        return bool(match) and match[2] in self.blocks.get(match[1], ())


def _schnet_hyperparameters(rep: dict[str, torch.Tensor], n_blocks: int) -> dict:
    n_atom_basis = rep["embedding.weight"].shape[1]
    n_filters, n_rbf = rep["interactions.0.filter_network.0.weight"].shape
    return {
        "n_rbf": int(n_rbf),
        "n_filters": None if n_filters == n_atom_basis else int(n_filters),
    }


def _painn_hyperparameters(rep: dict[str, torch.Tensor], n_blocks: int) -> dict:
    """shared_filters when filter_net makes 3F filters for several blocks; shared_interactions
    when every block's tensors equal block 0's (SchNetPack lists a shared block under every
    index; independently initialised blocks never coincide)."""
    n_atom_basis = rep["embedding.weight"].shape[1]
    n_rows, n_rbf = rep["filter_net.weight"].shape

    def block(k: int) -> list[torch.Tensor]:
        return [rep[f"{group}.{k}.{key}"] for group, keys in _PAINN.blocks.items() for key in keys]

    first = block(0)
    shared_interactions = n_blocks > 1 and all(
        torch.equal(tensor, first_tensor)
        for k in range(1, n_blocks)
        for tensor, first_tensor in zip(block(k), first)
    )
    return {
        "n_rbf": int(n_rbf),
        "shared_interactions": shared_interactions,
        "shared_filters": n_blocks > 1 and n_rows == 3 * n_atom_basis,
    }


_SCHNET = _Layout(
    fixed=_COMMON_KEYS,
    blocks={
        "interactions": (
            "in2f.weight",
            "filter_network.0.weight",
            "filter_network.0.bias",
            "filter_network.1.weight",
            "filter_network.1.bias",
            "f2out.0.weight",
            "f2out.0.bias",
            "f2out.1.weight",
            "f2out.1.bias",
        )
    },
    read=_schnet_hyperparameters,
)
_PAINN = _Layout(
    fixed=(*_COMMON_KEYS, "filter_net.weight", "filter_net.bias"),
    blocks={
        "interactions": (
            "interatomic_context_net.0.weight",
            "interatomic_context_net.0.bias",
            "interatomic_context_net.1.weight",
            "interatomic_context_net.1.bias",
        ),
        "mixing": (
            "intraatomic_context_net.0.weight",
            "intraatomic_context_net.0.bias",
            "intraatomic_context_net.1.weight",
            "intraatomic_context_net.1.bias",
            "mu_channel_mix.weight",
        ),
    },
    read=_painn_hyperparameters,
)
_LAYOUTS = {"schnet": _SCHNET, "painn": _PAINN}
"""EnergyModel representation name -> its SchNetPack state-dict layout."""


def load_schnetpack_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    *,
    aggregation: str = "sum",
    activation: str | None = None,
    head_activation: str = "silu",
) -> EnergyModel:
    """An EnergyModel (float32) computing what the SchNetPack 2.1.1 model did.

    The representation, SchNet or PaiNN, is recognised by its keys. Hyper-parameters come from
    the tensors: n_atom_basis and max_z from the embedding, n_rbf and n_interactions from the
    blocks (and SchNet's n_filters, PaiNN's shared_filters and shared_interactions), the
    cutoff from `cutoff_fn.cutoff`, the head's layer sizes from `outnet`; Gaussian centres and
    widths are copied. What a state dict does not hold must be passed: the Atomwise
    `aggregation` ('sum' or 'avg') and the activations, if not SchNetPack's defaults
    (`activation` None: the representation's own default, shifted_softplus for SchNet and
    silu for PaiNN).

    AddOffsets adds mean * n_atoms (extensive) or mean (intensive) and the sum of `atomref`
    over the atoms (divided by n_atoms when intensive): that is scale 1, shift = mean and
    atomrefs = atomref here, taking the target as extensive for aggregation 'sum' and
    intensive for 'avg'. Its add_mean / add_atomrefs flags are not in the state dict: both are
    taken as on (a buffer left at its zero default adds nothing either way).

    Raises MolstrataError naming the missing, unexpected or misshapen keys when the state
    dict is not of such a model.
    """
    tensors = _normalise_keys({key: torch.as_tensor(value) for key, value in state_dict.items()})
    representation, head, offsets, unexpected = _split(tensors)
    kind = _recognise(representation)
    layout = _LAYOUTS[kind]
    n_blocks = _count_blocks(representation, layout)
    _check_keys(kind, n_blocks, representation, head, unexpected)
    sizes = _head_sizes(head)
    rep = {key[len(_REPRESENTATION) :]: value for key, value in representation.items()}
    max_z, n_atom_basis = rep["embedding.weight"].shape
    n_layers = len(sizes) - 1
    model = EnergyModel(
        representation=kind,
        n_atom_basis=int(n_atom_basis),
        n_interactions=n_blocks,
        cutoff=_cutoff(rep["cutoff_fn.cutoff"]),
        max_z=int(max_z),
        head_hidden=None if sizes == layer_sizes(sizes[0], 1, None, n_layers) else sizes[1:-1],
        head_layers=n_layers,
        aggregation=aggregation,
        head_activation=head_activation,
        **layout.read(rep, n_blocks),
        **({} if activation is None else {"activation": activation}),
    )
    target = {**representation, **{f"head.{key}": value for key, value in head.items()}}
    ours = model.state_dict()
    bad_shapes = [
        f"{key} {tuple(value.shape)} (expected {tuple(ours[key].shape)})"
        for key, value in target.items()
        if value.shape != ours[key].shape
    ]
    if sizes[0] != model.hyperparameters["n_atom_basis"] or sizes[-1] != 1:
        bad_shapes.append(f"Atomwise layer sizes {sizes} (expected n_atom_basis -> ... -> 1)")
    if offsets and offsets["mean"].numel() != 1:
        bad_shapes.append(f"AddOffsets mean {tuple(offsets['mean'].shape)} (expected (1,))")
    if bad_shapes:
        raise MolstrataError(
            "this SchNetPack state dict has inconsistent shapes: " + "; ".join(bad_shapes)
        )
    with torch.no_grad():
        for key, value in target.items():
            ours[key].copy_(value)
    if offsets:
        model.set_standardization(
            _atomrefs(offsets["atomref"], int(max_z)), float(offsets["mean"].reshape(())), 1.0
        )
    return model


def _recognise(representation: dict[str, torch.Tensor]) -> str:
    """The representation whose own keys the state dict holds most of: 'schnet' or 'painn'."""
    counts = {
        kind: sum(layout.owns(key[len(_REPRESENTATION) :]) for key in representation)
        for kind, layout in _LAYOUTS.items()
    }
    kind = max(counts, key=counts.get)
    if counts[kind] == 0:
        raise MolstrataError(
            "this state dict holds neither a SchNetPack 2 SchNet nor a PaiNN representation (no "
            "representation.interactions.0.in2f.weight, no representation.filter_net.weight); "
            "give the state dict of a NeuralNetworkPotential built on one of them"
        )
    return kind


def _check_keys(
    kind: str,
    n_blocks: int,
    representation: dict[str, torch.Tensor],
    head: dict[str, torch.Tensor],
    unexpected: list[str],
) -> None:
    """Refuse a state dict lacking the representation's or Atomwise's keys, or holding others."""
    required = [_REPRESENTATION + key for key in _LAYOUTS[kind].required(n_blocks)]
    missing = [key for key in required if key not in representation]
    unexpected = unexpected + sorted(set(representation) - set(required))
    if not head:
        missing.append("output_modules.0.outnet.0.weight")
    if missing or unexpected:
        name = {"schnet": "SchNet", "painn": "PaiNN"}[kind]
        raise MolstrataError(
            f"this state dict is not a SchNetPack 2 {name} with one Atomwise output: "
            + _listing("missing keys", missing)
            + ("; " if missing and unexpected else "")
            + _listing("unexpected keys", unexpected)
        )
    wrong_rank = [
        f"{key} {tuple(value.shape)}"
        for key, value in representation.items()
        if value.dim() != (2 if key.endswith("weight") else 1)
    ]
    if wrong_rank:
        raise MolstrataError(
            "this SchNetPack state dict has tensors of the wrong rank: " + "; ".join(wrong_rank)
        )


def _cutoff(buffer: torch.Tensor) -> float:
    # The float32 buffer holds 4.1 as 4.0999999; its shortest float32 spelling is 4.1 again.
    return float(str(np.float32(buffer.reshape(-1)[0].item())))


def _normalise_keys(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Standalone modules' keys -> a NeuralNetworkPotential's keys."""
    if any(key.startswith((_REPRESENTATION, "output_modules.")) for key in tensors):
        return tensors
    renamed = {}
    for key, value in tensors.items():
        if key.startswith("outnet."):
            renamed["output_modules.0." + key] = value
        elif key in _OFFSETS_KEYS:
            renamed["postprocessors.0." + key] = value
        else:
            renamed[_REPRESENTATION + key] = value
    return renamed


def _split(tensors: dict[str, torch.Tensor]):
    """(representation, head `outnet.*`, AddOffsets buffers, unexpected keys)."""
    representation, head, unexpected = {}, {}, []
    heads: set[str] = set()
    offsets_by_index: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(_REPRESENTATION):
            representation[key] = value
        elif match := re.fullmatch(r"output_modules\.(\d+)\.(outnet\.\d+\.(?:weight|bias))", key):
            heads.add(match[1])
            head[match[2]] = value
        elif match := re.fullmatch(r"postprocessors\.(\d+)\.(atomref|mean)", key):
            offsets_by_index.setdefault(match[1], {})[match[2]] = value
        else:
            unexpected.append(key)
    if len(heads) > 1:
        raise MolstrataError(
            f"this state dict has {len(heads)} Atomwise output modules ({sorted(heads)}); "
            "keep one: drop the keys of the others (and of their AddOffsets) before loading"
        )
    if len(offsets_by_index) > 1:
        raise MolstrataError(
            f"this state dict has {len(offsets_by_index)} AddOffsets postprocessors "
            f"({sorted(offsets_by_index)}); "
            "keep the one of the output you load: drop the others' keys before loading"
        )
    offsets = next(iter(offsets_by_index.values()), {})
    if offsets and set(offsets) != set(_OFFSETS_KEYS):
        index = next(iter(offsets_by_index))
        unexpected += [f"postprocessors.{index}.{name}" for name in offsets]
        offsets = {}
    return representation, head, offsets, unexpected


def _count_blocks(representation: dict[str, torch.Tensor], layout: _Layout) -> int:
    """1 + the highest block index among the layout's groups (1 when there is none)."""
    groups = "|".join(layout.blocks)
    found = {
        int(match[1])
        for key in representation
        if (match := re.match(re.escape(_REPRESENTATION) + rf"(?:{groups})\.(\d+)\.", key))
    }
    return max(found) + 1 if found else 1


def _head_sizes(head: dict[str, torch.Tensor]) -> list[int]:
    """Neurons per layer of `outnet`, from its weights' shapes (input and output included)."""
    n_layers = 1 + max(int(key.split(".")[1]) for key in head)
    expected = [f"outnet.{k}.{name}" for k in range(n_layers) for name in ("weight", "bias")]
    missing = [f"output_modules.<k>.{key}" for key in expected if key not in head]
    if missing:
        raise MolstrataError(
            "this state dict's Atomwise head is incomplete: " + _listing("missing keys", missing)
        )
    weights = [head[f"outnet.{k}.weight"] for k in range(n_layers)]
    shapes = [tuple(w.shape) for w in weights]
    if any(len(shape) != 2 for shape in shapes):
        raise MolstrataError(f"this state dict's Atomwise weights are not matrices: {shapes}")
    sizes = [int(weights[0].shape[1])] + [int(w.shape[0]) for w in weights]
    if not all(w.shape[1] == sizes[k] for k, w in enumerate(weights)):
        raise MolstrataError(f"this state dict's Atomwise layers do not chain: shapes {shapes}")
    return sizes


def _atomrefs(atomref: torch.Tensor, max_z: int) -> np.ndarray:
    values = atomref.detach().double().reshape(-1).numpy()
    if len(values) > max_z and np.any(values[max_z:] != 0):
        raise MolstrataError(
            f"AddOffsets has reference values for atomic numbers >= {max_z}, which this "
            "model's embedding cannot take"
        )
    out = np.zeros(max_z)
    out[: min(max_z, len(values))] = values[:max_z]
    return out


def _listing(what: str, keys: list[str], limit: int = 12) -> str:
    if not keys:
        return ""
    shown = ", ".join(keys[:limit])
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"{what} {shown}{more}"
