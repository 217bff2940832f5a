"""The model as a torch.export program: energies from atoms, with no molstrata installed.

    import torch
    program = torch.export.load("model.pt2").module()
    energies = program(numbers, positions, sizes)     # (n_molecules,) float64, target unit

numbers: (n_atoms,) int64 atomic numbers; positions: (n_atoms, 3) float64 in Å; sizes:
(n_molecules,) int64 atoms per molecule, the molecules' atoms consecutive in `numbers`. The
program finds the neighbour pairs itself, adds the per-element reference energies in float64,
and differentiates: forces are -d(energies.sum())/d(positions). What the model was trained on
(target, unit, elements, sizes) is in the archive's extra file `molstrata.json`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn
from torch.export import Dim

from molstrata._files import atomic_open
from molstrata.deploy.modelfile import ModelFile
from molstrata.models import EnergyModel
from molstrata.models.geometry import pair_geometry

METADATA = "molstrata.json"


def molecule_pairs(sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pair a < b of atoms of the same molecule, as global atom indices (n_pairs,).

    sizes: (n_molecules,) long. Closed form, no table and no Python loop, so that
    torch.export can trace it for any number and size of molecules: pair k of a molecule is
    (k - b (b - 1) / 2, b) with b = floor((1 + sqrt(1 + 8 k)) / 2), the order of
    `molstrata.models.neighbors`.
    """
    counts = sizes * (sizes - 1) // 2
    starts = torch.cumsum(counts, 0) - counts
    first_atom = torch.cumsum(sizes, 0) - sizes
    molecule = torch.repeat_interleave(torch.arange(sizes.shape[0], device=sizes.device), counts)
    k = torch.arange(molecule.shape[0], device=sizes.device) - starts[molecule]
    b = torch.floor((1 + torch.sqrt(1 + 8 * k.double())) / 2).long()
    b = b - (b * (b - 1) // 2 > k).long() + ((b + 1) * b // 2 <= k).long()  # rounding guard
    a = k - b * (b - 1) // 2
    base = first_atom[molecule]
    return a + base, b + base


class DeployedEnergy(nn.Module):
    """An EnergyModel with its neighbour search: (numbers, positions, sizes) -> energies."""

    def __init__(self, model: EnergyModel, pair_cutoff: float):
        super().__init__()
        self.model = model
        self.pair_cutoff = float(pair_cutoff)
        self.dtype = next(model.parameters()).dtype

    def forward(self, numbers: torch.Tensor, positions: torch.Tensor,
                sizes: torch.Tensor) -> torch.Tensor:
        """numbers: (n_atoms,) long; positions: (n_atoms, 3) Å; sizes: (n_molecules,) long ->
        (n_molecules,) float64 energies in the target unit, reference energies included."""
        n_molecules = sizes.shape[0]
        positions = positions.double()
        idx_i, idx_j = molecule_pairs(sizes)
        distances = pair_geometry(positions, idx_i, idx_j, "distances")
        keep = torch.nonzero(distances < self.pair_cutoff).squeeze(1)
        idx_i, idx_j = idx_i[keep], idx_j[keep]
        geometry = pair_geometry(positions, idx_i, idx_j, self.model.geometry)
        molecule_index = torch.repeat_interleave(
            torch.arange(n_molecules, device=sizes.device), sizes, output_size=numbers.shape[0])
        return self.model.predict(numbers, geometry.to(self.dtype), idx_i, idx_j,
                                  molecule_index, n_molecules)


def export_program(model_file: ModelFile) -> torch.export.ExportedProgram:
    """The model file's model as a torch.export program (CPU), for any numbers of molecules
    and atoms."""
    model = model_file.model.to("cpu")
    module = DeployedEnergy(model, model_file.pair_cutoff).eval()
    # an example of 3 molecules of 2, 3 and 4 atoms: no size equal to another to specialise on
    sizes = torch.tensor([2, 3, 4])
    numbers = torch.tensor([1, 1, 6, 1, 1, 6, 1, 1, 8])
    positions = torch.arange(27, dtype=torch.float64).reshape(9, 3) * 0.1
    atoms, molecules = Dim("atoms", min=1), Dim("molecules", min=1)
    with torch.no_grad():
        return torch.export.export(
            module, (numbers, positions, sizes),
            dynamic_shapes=({0: atoms}, {0: atoms}, {0: molecules}),
        )


def program_metadata(model_file: ModelFile) -> dict:
    """What a user of the program needs to know, as JSON: inputs, target, training domain."""
    document = model_file.document
    return {
        "format": "molstrata-program",
        "inputs": {"numbers": "(n_atoms,) int64", "positions": "(n_atoms, 3) float64, Angstrom",
                   "sizes": "(n_molecules,) int64, atoms per molecule"},
        "output": f"(n_molecules,) float64, {model_file.target} in {model_file.unit}",
        "target": document["target"],
        "neighbor_cutoff": model_file.neighbor_cutoff,
        "pair_cutoff": model_file.pair_cutoff,
        "training_domain": document["training_domain"],
        "molstrata_version": document["molstrata_version"],
        "provenance": {k: v for k, v in document.get("provenance", {}).items()
                       if isinstance(v, str | int | float)},
    }


def save_program(model_file: ModelFile, path: str | os.PathLike) -> Path:
    """Export the model and write the program atomically to `path` (.pt2)."""
    path = Path(path)
    program = export_program(model_file)
    metadata = json.dumps(program_metadata(model_file), indent=2)
    with atomic_open(path, "wb") as handle:
        torch.export.save(program, handle, extra_files={METADATA: metadata})
    return path
