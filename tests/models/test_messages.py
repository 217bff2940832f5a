"""Sums over messages: the sparse MessageSums of a DeviceDataset batch against index_add, and
models run with them against the same models without."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from molstrata.data.molecules import Molecules
from molstrata.models import EnergyModel, kernels
from molstrata.models.messages import message_routes, pass_messages
from molstrata.training.batches import DeviceDataset

CPU = torch.device("cpu")


def _batch(molecules: Molecules, rows, geometry: str = "distances", cutoff: float = 5.0):
    dataset = DeviceDataset(molecules, cutoff, CPU, torch.float64, geometry=geometry)
    return dataset, dataset.batch(torch.as_tensor(rows))


def _index_add(values, index, n_atoms):
    return values.new_zeros(n_atoms, *values.shape[1:]).index_add_(0, index, values)


@pytest.mark.parametrize("rows", [[0, 1, 2, 3], [30, 4, 17, 4, 8, 25, 0]])
def test_sums_equal_index_add_over_receivers_and_senders(tiny_molecules, rows):
    _, batch = _batch(tiny_molecules, rows)
    senders, receivers = message_routes(batch.idx_i, batch.idx_j, half_pairs=True)
    n_atoms = len(batch.numbers)
    messages = torch.randn(len(senders), 6, dtype=torch.float64)
    torch.testing.assert_close(batch.sums.by_receiver @ messages,
                               _index_add(messages, receivers, n_atoms), rtol=0, atol=1e-12)
    torch.testing.assert_close(batch.sums.by_sender @ messages,
                               _index_add(messages, senders, n_atoms), rtol=0, atol=1e-12)


def test_every_atom_receives_from_each_neighbour_once(tiny_molecules):
    _, batch = _batch(tiny_molecules, np.arange(len(tiny_molecules)))
    dense = batch.sums.by_receiver.to_dense()
    assert set(dense.unique().tolist()) <= {0.0, 1.0}
    neighbours = torch.bincount(torch.cat([batch.idx_i, batch.idx_j]),
                                minlength=len(batch.numbers))
    assert torch.equal(dense.sum(1).long(), neighbours)
    assert torch.equal(batch.sums.by_sender.to_dense().sum(1).long(), neighbours)


@pytest.mark.parametrize("kernel", ["1", "0"])
@pytest.mark.parametrize("representation", ["schnet", "painn"])
def test_models_give_the_same_energies_and_gradients_with_sums(qm9_sample, monkeypatch,
                                                               representation, kernel):
    """With the sums (and, for SchNet, with its compiled kernel on or off) against without."""
    monkeypatch.setenv(kernels.ENV_VAR, kernel)
    torch.manual_seed(0)
    model = EnergyModel(n_atom_basis=12, n_interactions=2, n_rbf=8,
                        representation=representation).double()
    _, batch = _batch(qm9_sample, [5, 0, 19, 3, 1, 11], geometry=model.geometry)
    assert batch.sums is not None
    args = (batch.numbers, batch.geometry, batch.idx_i, batch.idx_j, batch.molecule_index,
            batch.n_molecules)
    outputs, gradients = [], []
    for sums in (None, batch.sums):
        energy = model(*args, sums=sums)
        outputs.append(energy.detach())
        gradients.append(torch.autograd.grad(energy.square().sum(), list(model.parameters())))
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-12, atol=1e-12)
    for ours, plain in zip(gradients[1], gradients[0]):
        torch.testing.assert_close(ours, plain, rtol=1e-10, atol=1e-12)
    with torch.no_grad():  # the in-place path
        torch.testing.assert_close(model(*args, sums=batch.sums), outputs[0],
                                   rtol=1e-12, atol=1e-12)


def test_forces_through_the_summed_messages_equal_the_plain_ones(qm9_sample):
    torch.manual_seed(1)
    model = EnergyModel(n_atom_basis=10, n_interactions=2, n_rbf=6).double()
    _, batch = _batch(qm9_sample, [2, 7])
    positions = torch.as_tensor(qm9_sample.subset([2, 7]).positions).requires_grad_()
    senders, receivers = batch.idx_j, batch.idx_i
    distances = torch.linalg.vector_norm(positions[senders] - positions[receivers], dim=1)
    forces = []
    for sums in (None, batch.sums):
        energy = model(batch.numbers, distances, batch.idx_i, batch.idx_j,
                       batch.molecule_index, batch.n_molecules, sums=sums).sum()
        forces.append(-torch.autograd.grad(energy, positions, retain_graph=True)[0])
    assert forces[0].abs().max() > 1e-3
    torch.testing.assert_close(forces[1], forces[0], rtol=1e-10, atol=1e-12)


def test_pass_messages_matches_a_loop_over_pairs(tiny_molecules):
    _, batch = _batch(tiny_molecules, [3, 9])
    h = torch.randn(len(batch.numbers), 4, dtype=torch.float64)
    filters = torch.randn(len(batch.idx_i), 4, dtype=torch.float64)
    expected = torch.zeros_like(h)
    for p, (i, j) in enumerate(zip(batch.idx_i.tolist(), batch.idx_j.tolist())):
        expected[i] += h[j] * filters[p]
        expected[j] += h[i] * filters[p]
    senders, receivers = message_routes(batch.idx_i, batch.idx_j, half_pairs=True)
    for sums in (None, batch.sums):
        torch.testing.assert_close(pass_messages(h, filters, senders, receivers, True, sums),
                                   expected, rtol=1e-12, atol=1e-12)


def test_sums_are_refused_for_directed_pairs(tiny_molecules):
    model = EnergyModel(n_atom_basis=8, n_interactions=1, n_rbf=4).double()
    _, batch = _batch(tiny_molecules, [0])
    with pytest.raises(ValueError, match="half pairs"):
        model(batch.numbers, batch.geometry, batch.idx_i, batch.idx_j, batch.molecule_index,
              batch.n_molecules, half_pairs=False, sums=batch.sums)


def test_datasets_asked_not_to_carry_none(tiny_molecules):
    dataset = DeviceDataset(tiny_molecules, 5.0, CPU, torch.float32, message_sums=False)
    assert dataset.batch(torch.arange(3)).sums is None
    assert DeviceDataset(tiny_molecules, 5.0, CPU, torch.float32).batch(
        torch.arange(3)).sums is not None



@pytest.mark.parametrize("kernel", ["1", "0"])
@pytest.mark.parametrize("activation", ["shifted_softplus", "silu"])
def test_prediction_without_autograd_is_the_trained_function(qm9_sample, monkeypatch,
                                                             activation, kernel):
    """Without autograd (prediction, validation) messages are multiplied in place: the same
    function, bit for bit, for either activation."""
    monkeypatch.setenv(kernels.ENV_VAR, kernel)
    torch.manual_seed(2)
    model = EnergyModel(n_atom_basis=16, n_interactions=3, n_rbf=10,
                        activation=activation).double()
    _, batch = _batch(qm9_sample, [4, 9, 13, 0])
    args = (batch.numbers, batch.geometry, batch.idx_i, batch.idx_j, batch.molecule_index,
            batch.n_molecules)
    expected = model(*args, sums=batch.sums).detach()
    with torch.inference_mode():
        assert torch.equal(model(*args, sums=batch.sums), expected)
        torch.testing.assert_close(model(*args), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("block_bytes", [1, 700, 1 << 20])
def test_blocked_convolutions_are_the_same_function(qm9_sample, monkeypatch, block_bytes):
    """SchNet's convolutions in blocks of pairs (big batches on a CPU, where the compiled
    kernel is off or could not be built) against the unblocked ones: energies, every
    parameter's gradient, and prediction without autograd."""
    from molstrata.models import schnet

    monkeypatch.setenv(kernels.ENV_VAR, "0")
    torch.manual_seed(3)
    model = EnergyModel(n_atom_basis=12, n_interactions=3, n_rbf=7).double()
    _, batch = _batch(qm9_sample, [6, 2, 15, 8, 0])
    args = (batch.numbers, batch.geometry, batch.idx_i, batch.idx_j, batch.molecule_index,
            batch.n_molecules)
    results = []
    monkeypatch.setattr(schnet, "BLOCK_MIN_FILTERS", 1)
    for above, size in ((1 << 40, 1 << 20), (0, block_bytes)):
        monkeypatch.setattr(schnet, "BLOCK_ABOVE", above)
        monkeypatch.setattr(schnet, "BLOCK_BYTES", size)
        rows = model.representation._block_rows(
            batch.geometry, batch.geometry, half_pairs=True)
        energy = model(*args, sums=batch.sums)
        gradients = torch.autograd.grad(energy.square().sum(), list(model.parameters()))
        with torch.inference_mode():
            predicted = model(*args, sums=batch.sums)
        results.append((rows, energy.detach(), gradients, predicted))
    (plain_rows, plain, plain_grads, plain_pred), (rows, ours, grads, pred) = results
    assert plain_rows == 0 and rows == max(256, block_bytes // (12 * 8))
    assert len(batch.idx_i) > 256  # several blocks for the small block sizes
    torch.testing.assert_close(ours, plain, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pred, plain, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads, plain_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_forces_and_narrow_filters_are_never_blocked(qm9_sample, monkeypatch):
    from molstrata.models import schnet

    monkeypatch.setattr(schnet, "BLOCK_ABOVE", 0)
    monkeypatch.setattr(schnet, "BLOCK_MIN_FILTERS", 1)
    model = EnergyModel(n_atom_basis=8, n_interactions=1, n_rbf=4).double()
    distances = torch.rand(300, dtype=torch.float64) + 1
    assert model.representation._block_rows(distances, distances, True) > 0
    assert model.representation._block_rows(distances.requires_grad_(), distances, True) == 0
    assert model.representation._block_rows(distances.detach(), distances.detach(), False) == 0
    monkeypatch.setattr(schnet, "BLOCK_MIN_FILTERS", 9)
    assert model.representation._block_rows(distances.detach(), distances.detach(), True) == 0
