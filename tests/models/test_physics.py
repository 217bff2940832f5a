"""Physics and batching of every registered representation, on synthetic and real molecules.

Each test runs once per name in `molstrata.models.REPRESENTATIONS` (see model_physics.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_physics import (
    ARCHITECTURES,
    assert_close,
    assert_equivariant,
    assert_forces_are_gradients,
    assert_permutation_invariant,
    energies,
    forces,
    random_model,
    rotation,
)

from molstrata.data.molecules import Molecules

pytestmark = pytest.mark.parametrize("architecture", ARCHITECTURES)

SHIFT = torch.tensor([3.0, -7.5, 12.25], dtype=torch.float64)


# ---- invariance and equivariance -----------------------------------------------------


@pytest.mark.parametrize(
    "matrix, translation",
    [
        (rotation(3), torch.zeros(3, dtype=torch.float64)),
        (torch.eye(3, dtype=torch.float64), SHIFT),
        (rotation(4), SHIFT),
        (rotation(5, proper=False), SHIFT),
    ],
    ids=["rotation", "translation", "both", "rotoreflection"],
)
def test_energies_are_invariant_and_forces_equivariant(
    architecture, tiny_molecules, qm9_sample, make_batch, matrix, translation
):
    model = random_model(architecture)
    for molecules in (tiny_molecules, qm9_sample):
        assert_equivariant(model, make_batch(molecules), matrix, translation)


def test_energies_are_permutation_invariant(architecture, tiny_molecules, qm9_sample,
                                           make_batch):
    model = random_model(architecture)
    for molecules in (tiny_molecules, qm9_sample):
        assert_permutation_invariant(model, molecules, make_batch)


def test_energies_depend_on_geometry_and_elements(architecture, tiny_molecules, make_batch):
    """The invariance tests above would pass for a constant model: rule that out."""
    model, batch = random_model(architecture), make_batch(tiny_molecules)
    reference = energies(model, batch)
    stretched = energies(model, batch, 1.1 * batch.positions)
    assert (reference - stretched).abs().min() > 1e-6
    batch.numbers = torch.where(batch.numbers == 1, 9, batch.numbers)
    assert (energies(model, batch) - reference).abs().min() > 1e-6


# ---- forces ----------------------------------------------------------------------------


def test_forces_equal_minus_the_gradient(architecture, tiny_molecules, make_batch):
    """Autograd's gradient of the energy against finite differences (float64)."""
    model = random_model(architecture, n_atom_basis=8, n_interactions=2)
    assert_forces_are_gradients(model, make_batch(tiny_molecules.subset([0, 1, 2])))


def test_forces_are_finite_and_balanced(architecture, qm9_sample, make_batch):
    model, batch = random_model(architecture), make_batch(qm9_sample)
    f = forces(model, batch)
    assert torch.isfinite(f).all() and f.abs().max() > 1e-3
    net_force = torch.zeros(batch.n_molecules, 3, dtype=torch.float64)
    net_force.index_add_(0, batch.molecule_index, f)
    assert net_force.abs().max() < 1e-10
    torque = torch.zeros_like(net_force).index_add_(
        0, batch.molecule_index, torch.cross(batch.positions, f, dim=1)
    )
    assert torque.abs().max() < 1e-9


# ---- batching, pairs, cutoff --------------------------------------------------------


def test_a_batch_gives_each_molecule_its_own_energy(architecture, tiny_molecules, make_batch):
    model = random_model(architecture)
    together = energies(model, make_batch(tiny_molecules))
    alone = torch.cat(
        [energies(model, make_batch(tiny_molecules.subset([m]))) for m in range(10)]
    )
    assert_close(together[:10], alone)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_half_pairs_equal_directed_pairs(architecture, tiny_molecules, qm9_sample, make_batch,
                                         dtype, tol):
    model = random_model(architecture).to(dtype)
    for sample in (tiny_molecules, qm9_sample):
        half, directed = make_batch(sample, half=True), make_batch(sample, half=False)
        assert len(directed.idx_i) == 2 * len(half.idx_i) > 0
        assert bool((half.idx_i < half.idx_j).all())
        ours = energies(model, half, half_pairs=True, dtype=dtype)
        theirs = energies(model, directed, half_pairs=False, dtype=dtype)
        assert ours.dtype == dtype
        assert_close(ours, theirs, tol)


def test_half_pairs_send_messages_both_ways(architecture, tiny_molecules, make_batch):
    """Treating half pairs as directed (one way only) must change the energies."""
    model, batch = random_model(architecture), make_batch(tiny_molecules, half=True)
    both = energies(model, batch, half_pairs=True)
    one_way = energies(model, batch, half_pairs=False)
    assert (both - one_way).abs().max() > 1e-3


def test_pairs_beyond_the_cutoff_contribute_nothing(architecture, tiny_molecules, make_batch):
    model = random_model(architecture, cutoff=3.0)
    within = make_batch(tiny_molecules, cutoff=3.0)
    everything = make_batch(tiny_molecules, cutoff=100.0)
    assert len(everything.idx_i) > len(within.idx_i)
    assert_close(energies(model, everything), energies(model, within))


@pytest.mark.parametrize("aggregation, factor", [("sum", 2.0), ("avg", 1.0)])
def test_two_distant_copies(architecture, qm9_sample, make_batch, aggregation, factor):
    """Two copies farther apart than the cutoff: twice the energy (sum), the same (avg)."""
    model = random_model(architecture, aggregation=aggregation)
    model.set_standardization(np.zeros(100), shift=0.3, scale=1.7)
    pairs = []
    for m in range(5):
        z, r = qm9_sample.atoms_of(m)
        pairs.append((np.concatenate([z, z]), np.concatenate([r, r + [0.0, 0.0, 50.0]])))
    doubled = Molecules.from_lists(*zip(*pairs))
    single = energies(model, make_batch(qm9_sample.subset(slice(0, 5)), cutoff=100.0))
    assert_close(energies(model, make_batch(doubled, cutoff=100.0)), factor * single)
