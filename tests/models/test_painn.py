"""PaiNN's own structure: SchNetPack's keys, shared filters and blocks, the mixing epsilon.

Its physics and batching are checked with every representation's in test_physics.py, and its
values against SchNetPack itself in test_painn_parity.py.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from model_physics import assert_close, energies, random_model

from molstrata.data.molecules import Molecules
from molstrata.models import EnergyModel, PaiNNMixing

FLAGS = list(itertools.product([False, True], repeat=2))
"""(shared_interactions, shared_filters): every combination."""


def _expected_shapes(f: int, n_rbf: int, n_interactions: int, max_z: int, filter_rows: int):
    """SchNetPack 2.1.1's PaiNN state dict, written out from its source."""
    shapes = {
        "embedding.weight": (max_z, f),
        "radial_basis.offsets": (n_rbf,),
        "radial_basis.widths": (n_rbf,),
        "cutoff_fn.cutoff": (1,),
        "filter_net.weight": (filter_rows, n_rbf),
        "filter_net.bias": (filter_rows,),
    }
    for k in range(n_interactions):
        shapes |= {
            f"interactions.{k}.interatomic_context_net.0.weight": (f, f),
            f"interactions.{k}.interatomic_context_net.0.bias": (f,),
            f"interactions.{k}.interatomic_context_net.1.weight": (3 * f, f),
            f"interactions.{k}.interatomic_context_net.1.bias": (3 * f,),
            f"mixing.{k}.intraatomic_context_net.0.weight": (f, 2 * f),
            f"mixing.{k}.intraatomic_context_net.0.bias": (f,),
            f"mixing.{k}.intraatomic_context_net.1.weight": (3 * f, f),
            f"mixing.{k}.intraatomic_context_net.1.bias": (3 * f,),
            f"mixing.{k}.mu_channel_mix.weight": (2 * f, f),
        }
    return {"representation." + key: shape for key, shape in shapes.items()}


@pytest.mark.parametrize("shared_filters, filter_rows", [(False, 3 * 7 * 3), (True, 3 * 7)])
def test_state_dict_mirrors_schnetpack(shared_filters, filter_rows):
    model = EnergyModel(representation="painn", n_atom_basis=7, n_interactions=3, n_rbf=6,
                        max_z=10, shared_filters=shared_filters)
    shapes = {
        key: tuple(value.shape)
        for key, value in model.state_dict().items()
        if key.startswith("representation.")
    }
    assert shapes == _expected_shapes(7, 6, 3, 10, filter_rows)


def test_shared_interactions_are_one_block_listed_under_every_index():
    """As SchNetPack's replicate_module: one module, its keys repeated per index."""
    shared = EnergyModel(representation="painn", n_atom_basis=8, n_interactions=3,
                         shared_interactions=True)
    separate = EnergyModel(representation="painn", n_atom_basis=8, n_interactions=3)
    assert set(shared.state_dict()) == set(separate.state_dict())
    interactions, mixing = shared.representation.interactions, shared.representation.mixing
    assert interactions[0] is interactions[2] and mixing[0] is mixing[1]
    per_block = sum(
        p.numel()
        for module in (separate.representation.interactions[0], separate.representation.mixing[0])
        for p in module.parameters()
    )
    n_shared = sum(p.numel() for p in shared.parameters())
    assert n_shared == sum(p.numel() for p in separate.parameters()) - 2 * per_block


@pytest.mark.parametrize("flag", ["shared_filters", "shared_interactions"])
def test_sharing_equals_copying_the_shared_weights(qm9_sample, make_batch, flag):
    """A shared model computes what an unshared one does whose blocks (or filter blocks) are
    copies of the shared ones."""
    shared = random_model("painn", **{flag: True})
    separate = random_model("painn", seed=1)
    state = dict(shared.state_dict())
    if flag == "shared_filters":  # each block's 3F filters, stacked as the unshared layout is
        for name in ("weight", "bias"):
            key = f"representation.filter_net.{name}"
            state[key] = torch.cat([state[key]] * 3)
    separate.load_state_dict(state)
    assert not torch.equal(  # the copies differ from the unshared model's own initial weights
        separate.representation.interactions[2].interatomic_context_net[0].weight,
        random_model("painn", seed=1).representation.interactions[2]
        .interatomic_context_net[0].weight,
    )
    batch = make_batch(qm9_sample)
    assert_close(energies(shared, batch), energies(separate, batch))


@pytest.mark.parametrize("shared_interactions, shared_filters", FLAGS)
def test_half_pairs_equal_directed_pairs_with_sharing(qm9_sample, make_batch,
                                                      shared_interactions, shared_filters):
    model = random_model("painn", n_atom_basis=13, shared_interactions=shared_interactions,
                         shared_filters=shared_filters)
    half, directed = make_batch(qm9_sample, half=True), make_batch(qm9_sample, half=False)
    assert_close(energies(model, half, half_pairs=True),
                 energies(model, directed, half_pairs=False))


def test_mixing_puts_epsilon_under_the_vector_norm():
    """With mu = 0 the norm is sqrt(1e-8) = 1e-4, not 0 (SchNetPack 2.1.1's epsilon)."""
    torch.manual_seed(0)
    mixing = PaiNNMixing(5).double()
    with torch.no_grad():
        for parameter in mixing.parameters():
            parameter.normal_()
    q = torch.randn(4, 5, dtype=torch.float64)
    mu = torch.zeros(4, 3, 5, dtype=torch.float64)
    context = torch.cat([q, torch.full_like(q, math.sqrt(1e-8))], dim=1)
    dq = mixing.intraatomic_context_net(context)[:, :5]
    new_q, new_mu = mixing(q, mu)
    torch.testing.assert_close(new_q, q + dq, rtol=1e-14, atol=1e-14)
    assert not new_mu.any()
    without = torch.cat([q, torch.zeros_like(q)], dim=1)
    assert (mixing.intraatomic_context_net(without)[:, :5] - dq).abs().max() > 1e-6


def test_an_atom_without_neighbours_has_finite_gradients(make_batch):
    """Its vector features stay zero; the epsilon keeps the norm's gradient finite there."""
    lone = Molecules.from_lists(
        [np.array([6, 1, 8])], [np.array([[0.0, 0.0, 0.0], [1.1, 0.0, 0.0], [20.0, 0.0, 0.0]])]
    )
    model = random_model("painn")
    energy = energies(model, make_batch(lone)).sum()
    energy.backward()
    assert torch.isfinite(energy)
    for name, parameter in model.named_parameters():
        assert torch.isfinite(parameter.grad).all(), name


def test_painn_refuses_distances(tiny_molecules, make_batch):
    model, batch = random_model("painn"), make_batch(tiny_molecules)
    with pytest.raises(ValueError, match=r"needs pair vectors .*pair_geometry"):
        model(*batch.args(kind="distances"))
