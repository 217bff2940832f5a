"""A model file as an ASE calculator: the energy in eV, forces in eV/Å as its negative gradient.

The model takes pair distances; here they are computed from the positions inside autograd
(pairs within the model file's pair cutoff from molstrata's neighbour search, each unordered
pair once, as in training), so the forces are the exact negative gradient of the energy the
model predicts, reference energies included. One model call gives both: ASE asks for the
energy and then the forces (or the other way round) of the same positions, and the second
comes from the calculator's results, as ASE's own calculators do.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.calculator import all_changes

from molstrata.data.molecules import Molecules
from molstrata.deploy.modelfile import ModelFile, load_model_file
from molstrata.errors import MolstrataError
from molstrata.evaluation.domain import DEFAULT_MIN_STRATUM, UNSEEN, applicability, flags_text
from molstrata.models.geometry import pair_geometry
from molstrata.models.neighbors import neighbor_pairs
from molstrata.training.distributed import resolve_device
from molstrata.units import dimension


class Calculator(AseCalculator):
    """ASE calculator of a molstrata model file (a model of an energy, e.g. QM9's U0).

    model_file: a path to a file written by `molstrata export`, or a loaded ModelFile.
    device: 'cpu' (the default: one molecule is too small to gain from a GPU), 'cuda', 'auto'.
    dtype: 'float64' computes energies and forces in double precision; default: the model's.
    min_stratum: training molecules below which a size or element stratum counts as rare.

    Every calculation gives the energy and the forces in one model call; ASE keeps them until
    the atoms change. After each calculation `domain_flags` holds the structure's
    domain-of-applicability flags (see `molstrata.evaluation.domain`); a flagged structure
    gives one warning (not one per step of a dynamics: the flags depend only on its atoms'
    elements), and one with an element the model never saw raises a MolstrataError.
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, model_file: str | os.PathLike | ModelFile, *, device: str = "cpu",
                 dtype: str | None = None, min_stratum: int = DEFAULT_MIN_STRATUM,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(model_file, ModelFile):
            self.model_file = model_file
        else:
            self.model_file = load_model_file(model_file, resolve_device(device), dtype)
        m = self.model_file
        if m.aggregation != "sum" or dimension(m.unit) != "energy":
            raise MolstrataError(
                f"{m.name} predicts {m.target} in {m.unit} ({m.aggregation} over atoms); the "
                "ASE calculator needs a model of an energy (summed over atoms), e.g. U0"
            )
        self.min_stratum = min_stratum
        self.domain_flags: tuple[str, ...] = ()
        self._checked: tuple[int, ...] | None = None  # the atomic numbers last checked

    def calculate(self, atoms: Atoms | None = None, properties=("energy",),
                  system_changes=all_changes) -> None:
        """Energy, free energy and forces of the atoms, all from one model call, whichever of
        them `properties` asks for."""
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if atoms.pbc.any():
            raise MolstrataError("periodic structures are not supported: the model was trained "
                                 "on molecules; set atoms.pbc = False")
        self._check_domain(atoms)
        energy, forces = energy_and_forces(self.model_file, atoms.numbers, atoms.positions)
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}

    def _check_domain(self, atoms: Atoms) -> None:
        """Flag the atoms (once per set of atomic numbers: moving them changes no flag)."""
        numbers = tuple(atoms.numbers.tolist())
        if numbers == self._checked:
            return
        molecule = Molecules.from_lists([atoms.numbers], [atoms.positions])
        result = applicability(molecule, self.model_file.training, self.min_stratum)
        self.domain_flags = result.flags[0]
        if not result.predictable[0]:
            unseen = [c.split(":", 1)[1] for c in self.domain_flags if c.startswith(UNSEEN)]
            raise MolstrataError(
                f"{atoms.get_chemical_formula()} holds {', '.join(unseen)}, which "
                f"{self.model_file.name} never saw in training: no energy can be predicted"
            )
        self._checked = numbers
        if self.domain_flags:
            warnings.warn(
                f"{atoms.get_chemical_formula()} lies outside the training domain of "
                f"{self.model_file.name} ({flags_text(self.domain_flags)}): expect larger errors",
                stacklevel=3,
            )


def energy_and_forces(model_file: ModelFile, numbers: np.ndarray, positions: np.ndarray,
                      forces: bool = True) -> tuple[float, np.ndarray | None]:
    """(energy, forces (n_atoms, 3) or None) of one molecule in the model's unit (eV) and
    that unit per Å. numbers: (n_atoms,); positions: (n_atoms, 3) in Å."""
    model = model_file.model
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype
    z = torch.as_tensor(np.asarray(numbers), device=device).long()
    r = torch.as_tensor(np.asarray(positions, dtype=np.float64), device=device)
    r = r.clone().requires_grad_(forces)
    offsets = torch.tensor([0, len(z)], device=device)
    with torch.no_grad():
        idx_i, idx_j, _ = neighbor_pairs(r.detach(), offsets, model_file.pair_cutoff, half=True)
    molecule_index = torch.zeros(len(z), dtype=torch.long, device=device)
    with torch.set_grad_enabled(forces):
        # float64 geometry cast to the model's dtype: exactly what training and evaluate feed
        geometry = pair_geometry(r, idx_i, idx_j, model.geometry).to(dtype)
        energy = model.predict(z, geometry, idx_i, idx_j, molecule_index, 1, half_pairs=True)
    if not forces:
        return float(energy.detach()), None
    (gradient,) = torch.autograd.grad(energy.sum(), r, allow_unused=True)
    if gradient is None:
        return float(energy.detach()), np.zeros((len(z), 3))
    return float(energy.detach()), -gradient.detach().cpu().numpy()
