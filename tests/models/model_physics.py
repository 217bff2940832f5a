"""Physics checks written once for every registered representation (e3nn's assert_equivariant).

Tests import it as `from model_physics import ...` (pytest puts this folder on sys.path). A new
representation added to `molstrata.models.REPRESENTATIONS` gets every check of test_physics.py
without a line of its own.
"""

from __future__ import annotations

import numpy as np
import torch

from molstrata.data.molecules import Molecules
from molstrata.models import REPRESENTATIONS, EnergyModel

ARCHITECTURES = tuple(REPRESENTATIONS)
"""Every registered representation name: what the property tests are parametrised over."""


def random_model(representation: str, seed: int = 0, **hyperparameters) -> EnergyModel:
    """A small float64 model with random biases too, so that no term is trivially zero."""
    torch.manual_seed(seed)
    model = EnergyModel(
        **{"n_atom_basis": 16, "n_interactions": 3, "representation": representation,
           **hyperparameters}
    )
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(0.0, 0.2)
    return model.double()


def energies(model: EnergyModel, batch, positions=None, half_pairs=None,
             dtype=torch.float64) -> torch.Tensor:
    """The model's residuals (n_molecules,), fed the pair geometry it asks for."""
    half_pairs = batch.half if half_pairs is None else half_pairs
    return model(*batch.args(positions, dtype, model.geometry), half_pairs=half_pairs)


def forces(model: EnergyModel, batch, positions=None) -> torch.Tensor:
    """-dE/dR (n_atoms, 3) in eV/Å: each atom belongs to one molecule, so the gradient of the
    sum of the energies holds every molecule's own forces."""
    r = (batch.positions if positions is None else positions).detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(energies(model, batch, r).sum(), r)
    return -gradient


def rotation(seed: int, proper: bool = True) -> torch.Tensor:
    """A random orthogonal (3, 3) matrix: a rotation, or with proper=False a rotoreflection."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if (np.linalg.det(q) > 0) != proper:
        q[:, 0] = -q[:, 0]
    return torch.as_tensor(q)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-10) -> None:
    """Equal to `tol` relative to the largest expected value (some entries lie near zero)."""
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale)


def assert_equivariant(model: EnergyModel, batch, matrix: torch.Tensor,
                       translation: torch.Tensor, tol: float = 1e-10) -> None:
    """Under R -> R Q^T + t energies stay and forces turn with the molecule: F -> F Q^T.

    Also checks that the transformation moved the atoms, so that the check can fail.
    """
    moved = batch.positions @ matrix.T + translation
    assert (moved - batch.positions).abs().max() > 0.1
    assert_close(energies(model, batch, moved), energies(model, batch), tol)
    assert_close(forces(model, batch, moved), forces(model, batch) @ matrix.T, tol)


def shuffled(molecules: Molecules, seed: int) -> tuple[Molecules, np.ndarray]:
    """The molecules in another order, each with its atoms in another order, and that order."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(molecules))
    reordered = molecules.subset(order)
    numbers, positions = [], []
    for m in range(len(reordered)):
        z, r = reordered.atoms_of(m)
        atoms = rng.permutation(len(z))
        numbers.append(z[atoms])
        positions.append(r[atoms])
    result = Molecules.from_lists(numbers, positions, ids=reordered.ids)
    assert not np.array_equal(result.numbers, molecules.numbers)
    return result, order


def assert_permutation_invariant(model: EnergyModel, molecules: Molecules, make_batch,
                                 seed: int = 5, tol: float = 1e-10) -> None:
    """Shuffling atoms within molecules and the molecules themselves permutes nothing else."""
    other, order = shuffled(molecules, seed)
    expected = energies(model, make_batch(molecules))[torch.as_tensor(order)]
    assert_close(energies(model, make_batch(other)), expected, tol)


def assert_forces_are_gradients(model: EnergyModel, batch) -> None:
    """Autograd's -dE/dR equals central finite differences (float64, torch's gradcheck)."""
    positions = batch.positions.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda r: energies(model, batch, r), (positions,))
