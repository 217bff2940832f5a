"""Parity with SchNetPack 2.1.1 itself: the same weights give the same energies and gradients.

Runs only where SchNetPack imports (see schnetpack_shim.py for how to install it); loading
without it is tested in test_schnetpack_load.py. PaiNN's parity is in test_painn_parity.py.
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

# (n_atom_basis, n_interactions, n_rbf, cutoff, n_filters, Atomwise n_hidden, n_layers, aggregation)
HYPERPARAMETERS = {
    "qm9-default": (128, 6, 20, 5.0, None, None, 2, "sum"),
    "study": (38, 3, 20, 5.0, None, None, 2, "sum"),
    "odd": (40, 2, 25, 4.7, 24, [30, 11], 3, "avg"),
}


def _schnetpack_model(n_atom_basis, n_interactions, n_rbf, cutoff, n_filters, n_hidden,
                      n_layers, aggregation, seed=0):
    """SchNetPack's NeuralNetworkPotential in float64, every weight and offset random."""
    torch.manual_seed(seed)
    representation = spk.representation.SchNet(
        n_atom_basis=n_atom_basis,
        n_interactions=n_interactions,
        radial_basis=spk.nn.GaussianRBF(n_rbf=n_rbf, cutoff=cutoff),
        cutoff_fn=spk.nn.CosineCutoff(cutoff),
        n_filters=n_filters,
    )
    return schnetpack_potential(spk, representation, n_atom_basis, n_hidden, n_layers,
                                aggregation)


def _schnetpack_inputs(batch, directed):
    return {
        spk.properties.Z: batch.numbers,
        spk.properties.R: batch.positions,
        spk.properties.idx_i: directed.idx_i,
        spk.properties.idx_j: directed.idx_j,
        spk.properties.idx_m: batch.molecule_index,
        spk.properties.n_atoms: torch.bincount(batch.molecule_index),
        spk.properties.offsets: torch.zeros(len(directed.idx_i), 3, dtype=torch.float64),
    }


def _assert_agree(ours, theirs):
    """1e-9 relative, with an absolute floor: some residuals lie near zero."""
    assert ours.dtype == theirs.dtype == torch.float64
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9 * theirs.abs().max().item())


@pytest.mark.parametrize("neighbor_cutoff", [5.0, 4.0])
@pytest.mark.parametrize("half_pairs", [True, False])
@pytest.mark.parametrize("name", list(HYPERPARAMETERS))
def test_energies_match_schnetpack(qm9_sample, make_batch, name, half_pairs, neighbor_cutoff):
    hyperparameters = HYPERPARAMETERS[name]
    cutoff = hyperparameters[3]
    theirs_model = _schnetpack_model(*hyperparameters)
    ours_model = load_schnetpack_state_dict(
        theirs_model.state_dict(), aggregation=hyperparameters[-1]
    ).double()

    directed = make_batch(qm9_sample, min(neighbor_cutoff, cutoff), half=False)
    batch = make_batch(qm9_sample, min(neighbor_cutoff, cutoff), half=half_pairs)
    theirs = theirs_model(_schnetpack_inputs(directed, directed))["energy"]
    ours = ours_model.predict(*batch.args(), half_pairs=half_pairs)
    _assert_agree(ours, theirs)

    # The network alone: ours includes AddOffsets' mean (shift) and leaves out the atomrefs.
    theirs_model.do_postprocessing = False
    network = theirs_model(_schnetpack_inputs(directed, directed))["energy"]
    mean = theirs_model.postprocessors[1].mean  # float32's -0.37, cast to float64
    n_atoms = torch.bincount(batch.molecule_index)
    shift = mean * n_atoms if hyperparameters[-1] == "sum" else mean.expand_as(network)
    _assert_agree(ours_model(*batch.args(), half_pairs=half_pairs), network + shift)
    assert network.abs().min() > 1e-3  # a dead network would agree trivially


@pytest.mark.parametrize("name", ["study", "odd"])
def test_gradients_match_schnetpack_weight_for_weight(qm9_sample, make_batch, name):
    """The same loss gives the same gradient on every parameter, key for key."""
    hyperparameters = HYPERPARAMETERS[name]
    theirs_model = _schnetpack_model(*hyperparameters)
    ours_model = load_schnetpack_state_dict(
        theirs_model.state_dict(), aggregation=hyperparameters[-1]
    ).double()
    directed = make_batch(qm9_sample, 4.0, half=False)
    batch = make_batch(qm9_sample, 4.0, half=True)
    target = torch.linspace(-1e3, 1e3, batch.n_molecules, dtype=torch.float64)

    theirs = theirs_model(_schnetpack_inputs(directed, directed))["energy"]
    (theirs - target).pow(2).sum().backward()
    (ours_model.predict(*batch.args(), half_pairs=True) - target).pow(2).sum().backward()

    assert_gradients_match(theirs_model, ours_model)


def test_float32_energies_match_schnetpack(qm9_sample, make_batch):
    theirs_model = _schnetpack_model(*HYPERPARAMETERS["study"]).float()
    theirs_model.do_postprocessing = False
    ours_model = load_schnetpack_state_dict(network_state(theirs_model))
    directed = make_batch(qm9_sample, 5.0, half=False)
    inputs = _schnetpack_inputs(directed, directed)
    inputs[spk.properties.R] = inputs[spk.properties.R].float()
    inputs[spk.properties.offsets] = inputs[spk.properties.offsets].float()
    theirs = theirs_model(inputs)["energy"]
    batch = make_batch(qm9_sample, 5.0, half=True)
    ours = ours_model(*batch.args(dtype=torch.float32), half_pairs=True)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max().item())
