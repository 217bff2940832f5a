"""Parity with SchNetPack 2.1.1's PaiNN: the same weights give the same energies, forces and
parameter gradients, in float64 on real QM9 molecules, with half or directed pairs.

Runs only where SchNetPack imports (see schnetpack_shim.py); loading PaiNN state dicts
without it is tested in test_schnetpack_load.py.
"""

from __future__ import annotations

import pytest
import torch
from schnetpack_shim import (
    assert_gradients_match,
    import_schnetpack,
    network_state,
    schnetpack_potential,
)

from molstrata.models import load_schnetpack_state_dict

spk = import_schnetpack()

# (n_atom_basis, n_interactions, n_rbf, cutoff, shared_interactions, shared_filters,
#  Atomwise n_hidden, n_layers, aggregation)
HYPERPARAMETERS = {
    "defaults": (128, 3, 20, 5.0, False, False, None, 2, "sum"),
    "shared": (48, 3, 20, 5.0, True, True, None, 2, "sum"),
    "shared-interactions": (24, 4, 20, 5.0, True, False, None, 2, "sum"),
    "odd": (37, 2, 13, 4.3, False, True, [30, 11], 3, "avg"),
}


def _schnetpack_model(n_atom_basis, n_interactions, n_rbf, cutoff, shared_interactions,
                      shared_filters, n_hidden, n_layers, aggregation, seed=0):
    """SchNetPack's NeuralNetworkPotential with PaiNN, in float64, biases and offsets random."""
    torch.manual_seed(seed)
    representation = spk.representation.PaiNN(
        n_atom_basis=n_atom_basis,
        n_interactions=n_interactions,
        radial_basis=spk.nn.GaussianRBF(n_rbf=n_rbf, cutoff=cutoff),
        cutoff_fn=spk.nn.CosineCutoff(cutoff),
        shared_interactions=shared_interactions,
        shared_filters=shared_filters,
    )
    return schnetpack_potential(spk, representation, n_atom_basis, n_hidden, n_layers,
                                aggregation)


def _inputs(batch, positions):
    return {
        spk.properties.Z: batch.numbers,
        spk.properties.R: positions,
        spk.properties.idx_i: batch.idx_i,
        spk.properties.idx_j: batch.idx_j,
        spk.properties.idx_m: batch.molecule_index,
        spk.properties.n_atoms: torch.bincount(batch.molecule_index),
        spk.properties.offsets: torch.zeros(len(batch.idx_i), 3, dtype=torch.float64),
    }


def _assert_agree(ours, theirs, tol=1e-9):
    """`tol` relative, with an absolute floor: some entries lie near zero."""
    assert ours.dtype == theirs.dtype == torch.float64
    torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol * theirs.abs().max().item())


def _models(name):
    hyperparameters = HYPERPARAMETERS[name]
    theirs = _schnetpack_model(*hyperparameters)
    ours = load_schnetpack_state_dict(theirs.state_dict(), aggregation=hyperparameters[-1])
    h = ours.hyperparameters
    assert h["representation"] == "painn" and h["activation"] == "silu"
    assert (h["shared_interactions"], h["shared_filters"]) == hyperparameters[4:6]
    return theirs, ours.double()


@pytest.mark.parametrize("half_pairs", [True, False])
@pytest.mark.parametrize("name", list(HYPERPARAMETERS))
def test_energies_and_forces_match_schnetpack(qm9_sample, make_batch, name, half_pairs):
    theirs_model, ours_model = _models(name)
    cutoff = HYPERPARAMETERS[name][3]
    directed = make_batch(qm9_sample, cutoff, half=False)
    batch = make_batch(qm9_sample, cutoff, half=half_pairs)

    r_theirs = directed.positions.clone().requires_grad_(True)
    theirs = theirs_model(_inputs(directed, r_theirs))["energy"]
    (theirs_gradient,) = torch.autograd.grad(theirs.sum(), r_theirs)
    r_ours = batch.positions.clone().requires_grad_(True)
    ours = ours_model.predict(*batch.args(r_ours, kind="vectors"), half_pairs=half_pairs)
    (ours_gradient,) = torch.autograd.grad(ours.sum(), r_ours)
    _assert_agree(ours, theirs)
    _assert_agree(ours_gradient, theirs_gradient)
    assert theirs_gradient.abs().max() > 1e-3  # forces that vanish would agree trivially

    # The network alone: ours includes AddOffsets' mean (shift) and leaves out the atomrefs.
    theirs_model.do_postprocessing = False
    network = theirs_model(_inputs(directed, directed.positions))["energy"]
    mean = theirs_model.postprocessors[1].mean
    n_atoms = torch.bincount(batch.molecule_index)
    shift = mean * n_atoms if HYPERPARAMETERS[name][-1] == "sum" else mean.expand_as(network)
    _assert_agree(ours_model(*batch.args(kind="vectors"), half_pairs=half_pairs), network + shift)
    assert network.abs().min() > 1e-3  # a dead network would agree trivially


@pytest.mark.parametrize("name", ["shared-interactions", "odd"])
def test_gradients_match_schnetpack_weight_for_weight(qm9_sample, make_batch, name):
    """The same loss gives the same gradient on every parameter, key for key."""
    theirs_model, ours_model = _models(name)
    directed = make_batch(qm9_sample, 4.0, half=False)
    batch = make_batch(qm9_sample, 4.0, half=True)
    target = torch.linspace(-1e3, 1e3, batch.n_molecules, dtype=torch.float64)

    theirs = theirs_model(_inputs(directed, directed.positions))["energy"]
    (theirs - target).pow(2).sum().backward()
    ours = ours_model.predict(*batch.args(kind="vectors"), half_pairs=True)
    (ours - target).pow(2).sum().backward()

    assert_gradients_match(theirs_model, ours_model)


def test_float32_energies_match_schnetpack(qm9_sample, make_batch):
    theirs_model = _schnetpack_model(*HYPERPARAMETERS["defaults"]).float()
    theirs_model.do_postprocessing = False
    ours_model = load_schnetpack_state_dict(network_state(theirs_model))
    directed = make_batch(qm9_sample, 5.0, half=False)
    inputs = _inputs(directed, directed.positions.float())
    inputs[spk.properties.offsets] = inputs[spk.properties.offsets].float()
    theirs = theirs_model(inputs)["energy"]
    batch = make_batch(qm9_sample, 5.0, half=True)
    ours = ours_model(*batch.args(dtype=torch.float32, kind="vectors"), half_pairs=True)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max().item())
