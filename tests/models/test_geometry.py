"""The pair geometry a model asks for, and `pair_geometry`, which computes it."""

from __future__ import annotations

import pytest
import torch
from model_physics import ARCHITECTURES, assert_close, random_model

from molstrata.models import GEOMETRIES, REPRESENTATIONS, EnergyModel, pair_geometry


def test_vectors_point_from_i_to_j_and_distances_are_their_norms():
    positions = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0], [-3.0, 0.0, 4.0]],
                             dtype=torch.float64, requires_grad=True)
    idx_i, idx_j = torch.tensor([0, 2, 1]), torch.tensor([1, 0, 2])
    vectors = pair_geometry(positions, idx_i, idx_j, "vectors")
    expected = torch.tensor([[1.0, 2.0, 2.0], [3.0, 0.0, -4.0], [-4.0, -2.0, 2.0]],
                            dtype=torch.float64)
    torch.testing.assert_close(vectors, expected, rtol=0, atol=0)
    distances = pair_geometry(positions, idx_i, idx_j, "distances")
    torch.testing.assert_close(distances, torch.tensor([3.0, 5.0, 24.0**0.5],
                                                       dtype=torch.float64))
    (gradient,) = torch.autograd.grad(distances[0], positions)
    torch.testing.assert_close(gradient[1], expected[0] / 3.0)  # d|r_j - r_i|/dr_j = r̂_ij
    with pytest.raises(ValueError, match="one of"):
        pair_geometry(positions, idx_i, idx_j, "angles")


@pytest.mark.parametrize("architecture, geometry",
                         [("schnet", "distances"), ("painn", "vectors")])
def test_each_model_says_which_geometry_it_reads(architecture, geometry):
    assert EnergyModel(representation=architecture, n_atom_basis=4).geometry == geometry


def test_every_representation_reads_a_known_geometry():
    assert {cls.geometry for cls in REPRESENTATIONS.values()} <= set(GEOMETRIES)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_the_geometry_a_model_asks_for_feeds_it(architecture, qm9_sample, make_batch):
    """pair_geometry(..., model.geometry) gives what the tests' own geometry gives."""
    model, batch = random_model(architecture), make_batch(qm9_sample)
    geometry = pair_geometry(batch.positions, batch.idx_i, batch.idx_j, model.geometry)
    ours = model.predict(batch.numbers, geometry, batch.idx_i, batch.idx_j,
                         batch.molecule_index, batch.n_molecules)
    assert_close(ours, model.predict(*batch.args(kind=model.geometry)))


def test_schnet_takes_vectors_as_well_as_distances(qm9_sample, make_batch):
    model, batch = random_model("schnet"), make_batch(qm9_sample)
    assert_close(model(*batch.args(kind="vectors")), model(*batch.args(kind="distances")))
    numbers, _, idx_i, idx_j, molecule_index, n_molecules = batch.args()
    flat = torch.zeros(len(idx_i), 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"distances \(n_pairs,\) or vectors"):
        model(numbers, flat, idx_i, idx_j, molecule_index, n_molecules)
