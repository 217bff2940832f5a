"""`EnergyModel`: the one model molstrata trains and exports (a representation + Atomwise +
scaling).

A molecule's prediction is split in two so that float32 training loses nothing:

    prediction = forward(...).double() + reference(...)        (target unit, e.g. eV)

`forward` is the network's part, the residual, of order eV; `reference` is the sum of
per-element reference energies, of order -1e4 eV for QM9's U0, kept in float64 because float32
would round it by about 1 meV.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from molstrata.models.atomwise import AGGREGATIONS, Atomwise, aggregate
from molstrata.models.messages import MessageSums
from molstrata.models.representations import representation_class, representation_options

_FLOAT64_BUFFERS = ("scale", "shift", "atomrefs")


class EnergyModel(nn.Module):
    """A representation (SchNet or PaiNN, by name), Atomwise head, and the target's
    standardisation.

    For aggregation 'sum' (extensive targets such as U0), forward returns
    sum over atoms a of (scale * o_a + shift); for 'avg' (intensive targets), the mean of that.
    o_a is the head's output for atom a, `scale` the per-atom standard deviation and `shift`
    the per-atom mean of the residual target (target minus `reference`), `atomrefs` (max_z,)
    the per-element reference values. These three buffers stay float64 whatever the model's
    dtype. The state dict mirrors SchNetPack's: `representation.*` has the keys of SchNetPack's
    SchNet or PaiNN, `head.outnet.*` those of its Atomwise `outnet`.

    `representation` names an entry of `REPRESENTATIONS` ('schnet' by default, so that
    hyper-parameters saved before it existed still build SchNet); `options` are that
    representation's own hyper-parameters (its `OPTIONS`): n_filters and activation for
    SchNet, activation, shared_interactions and shared_filters for PaiNN.
    """

    def __init__(
        self,
        n_atom_basis: int = 128,
        n_interactions: int = 3,
        n_rbf: int = 20,
        cutoff: float = 5.0,
        max_z: int = 100,
        aggregation: str = "sum",
        head_activation: str = "silu",
        head_hidden: int | Sequence[int] | None = None,
        head_layers: int = 2,
        representation: str = "schnet",
        **options: Any,
    ):
        super().__init__()
        h = complete_hyperparameters({
            "n_atom_basis": n_atom_basis,
            "n_interactions": n_interactions,
            "n_rbf": n_rbf,
            "cutoff": cutoff,
            "max_z": max_z,
            "aggregation": aggregation,
            "head_activation": head_activation,
            "head_hidden": head_hidden,
            "head_layers": head_layers,
            "representation": representation,
            **options,
        })
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        self._hyperparameters = h
        cls = representation_class(representation)
        self.representation = cls(
            n_atom_basis=n_atom_basis,
            n_interactions=n_interactions,
            n_rbf=n_rbf,
            cutoff=cutoff,
            max_z=max_z,
            **{key: h[key] for key in cls.OPTIONS},
        )
        self.head = Atomwise(
            n_atom_basis, 1, h["head_hidden"], head_layers, head_activation, aggregation
        )
        self.register_buffer("scale", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("shift", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("atomrefs", torch.zeros(max_z, dtype=torch.float64))

    @property
    def hyperparameters(self) -> dict:
        """The constructor's arguments as plain JSON-able values: EnergyModel(**h) rebuilds it."""
        h = dict(self._hyperparameters)
        if isinstance(h["head_hidden"], list):
            h["head_hidden"] = list(h["head_hidden"])
        return h

    @property
    def geometry(self) -> str:
        """The pair geometry `forward` reads: 'distances' (SchNet) or 'vectors' (PaiNN); compute
        it with `pair_geometry(positions, idx_i, idx_j, model.geometry)`."""
        return self.representation.geometry

    @property
    def cutoff(self) -> float:
        """The cosine cutoff in Å; pairs farther apart contribute nothing."""
        return self._hyperparameters["cutoff"]

    @property
    def backend(self) -> str:
        """The name of the backend the representation runs on its device (backends.py:
        'kernel-openmp' or 'torch'), for run.json."""
        return self.representation.backend

    @property
    def aggregation(self) -> str:
        return self.head.aggregation

    def set_standardization(
        self, atomrefs: np.ndarray | Sequence[float] | torch.Tensor, shift: float, scale: float
    ) -> None:
        """Set the per-element references (max_z,), and the per-atom mean and standard
        deviation of the residual target, all in the target's unit."""
        atomrefs = torch.as_tensor(atomrefs, dtype=torch.float64)
        shift, scale = float(shift), float(scale)
        if atomrefs.shape != self.atomrefs.shape:
            expected = tuple(self.atomrefs.shape)
            raise ValueError(f"atomrefs must have shape {expected}, got {tuple(atomrefs.shape)}")
        if not (math.isfinite(scale) and scale > 0 and math.isfinite(shift)):
            raise ValueError(f"scale must be finite and > 0 and shift finite; got {scale}, {shift}")
        self.atomrefs.copy_(atomrefs)
        self.shift.fill_(shift)
        self.scale.fill_(scale)

    def forward(
        self,
        numbers: torch.Tensor,
        geometry: torch.Tensor,
        idx_i: torch.Tensor,
        idx_j: torch.Tensor,
        molecule_index: torch.Tensor,
        n_molecules: int,
        half_pairs: bool = True,
        sums: MessageSums | None = None,
    ) -> torch.Tensor:
        """The residual (n_molecules,) in the target's unit, in the model's dtype.

        numbers: (n_atoms,) long; geometry: the pairs' geometry of kind `self.geometry`, in Å
        and the model's dtype: distances (n_pairs,) or vectors r_j - r_i (n_pairs, 3), from
        `pair_geometry` (SchNet takes either); idx_i, idx_j: (n_pairs,) long atom indices into
        the batch; molecule_index: (n_atoms,) long, the molecule of each atom.
        half_pairs=True (the default) expects each unordered pair within the neighbour cutoff
        once (i < j); half_pairs=False expects directed pairs, both i->j and j->i. sums: the
        batch's `MessageSums` for half pairs (`DeviceDataset` batches carry them on CPUs),
        which let the compiled kernels split the pairs between threads; None runs them
        on one. Add `reference` for the full prediction (see `predict`).
        """
        x = self.representation(numbers, geometry, idx_i, idx_j, half_pairs, sums)
        o = self.head.atom_outputs(x)
        y = o * self.scale.to(o.dtype) + self.shift.to(o.dtype)
        return aggregate(y, molecule_index, n_molecules, self.aggregation)

    def reference(
        self, numbers: torch.Tensor, molecule_index: torch.Tensor, n_molecules: int
    ) -> torch.Tensor:
        """Per-molecule reference (n_molecules,) in float64: the sum of `atomrefs` over the
        molecule's atoms (their mean for aggregation 'avg', as SchNetPack's AddOffsets does for
        intensive targets). Zero while no atomrefs were set."""
        atomrefs = self.atomrefs[numbers.long()]
        return aggregate(atomrefs, molecule_index, n_molecules, self.aggregation)

    def predict(
        self,
        numbers: torch.Tensor,
        geometry: torch.Tensor,
        idx_i: torch.Tensor,
        idx_j: torch.Tensor,
        molecule_index: torch.Tensor,
        n_molecules: int,
        half_pairs: bool = True,
    ) -> torch.Tensor:
        """The full prediction (n_molecules,) in float64: forward(...).double() + reference(...)."""
        residual = self(numbers, geometry, idx_i, idx_j, molecule_index, n_molecules, half_pairs)
        return residual.double() + self.reference(numbers, molecule_index, n_molecules)

    def _apply(self, fn, recurse=True):
        # model.float() / .half() / .to(dtype) would round the references; keep them float64.
        kept = {name: self._buffers[name] for name in _FLOAT64_BUFFERS}
        super()._apply(fn, recurse)
        for name, old in kept.items():
            new = self._buffers[name]
            if new.dtype != torch.float64:
                self._buffers[name] = old.to(device=new.device, dtype=torch.float64)
        return self


def complete_hyperparameters(hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """The hyper-parameters EnergyModel(**hyperparameters) has: every default filled in.

    A dict saved before `representation` existed (a format-1 model file, an old checkpoint)
    completes to SchNet's, so two dicts describe the same architecture exactly when their
    completions are equal. An unknown representation, or an option it does not take, is a
    one-line MolstrataError.
    """
    given = dict(hyperparameters)
    common = {
        name: given.pop(name, parameter.default)
        for name, parameter in inspect.signature(EnergyModel).parameters.items()
        if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    }
    head_hidden = common["head_hidden"]
    if head_hidden is not None and not isinstance(head_hidden, int):
        common["head_hidden"] = [int(width) for width in head_hidden]
    return {**common, **representation_options(common["representation"], given)}
