"""The models' backends (models/backends.py): chosen once per device and recorded, and the same
model gives the same energies, forces and parameter gradients on every one (PaiNN's in detail:
test_painn_kernels.py)."""

from __future__ import annotations

import pytest
import torch

from molstrata.models import EnergyModel, backends, kernels
from molstrata.models.messages import MessageSums

CPU = torch.device("cpu")
NAMES = list(backends.BACKENDS)
ARCHITECTURES = ["schnet", "painn"]


@pytest.fixture(autouse=True)
def _kernels_on(monkeypatch):
    monkeypatch.delenv(kernels.ENV_VAR, raising=False)
    if kernels.library() is None:
        pytest.skip(f"only the torch backend can run here: {kernels.status()}")


def _sums(batch) -> MessageSums:
    """The batch's pairs molecule by molecule, as a DeviceDataset batch carries them."""
    counts = torch.bincount(batch.molecule_index[batch.idx_i], minlength=batch.n_molecules)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    return MessageSums(batch.idx_i, batch.idx_j, len(batch.numbers), offsets,
                       batch.molecule_index)


def _results(model, name, batch, dtype, sums):
    """Energies, forces and every parameter's gradient of `model` on backend `name`."""
    model.representation.backends["cpu"] = name
    positions = batch.positions.clone().requires_grad_()
    energy = model(*batch.args(positions, dtype, model.geometry), half_pairs=batch.half,
                   sums=sums)
    forces = -torch.autograd.grad(energy.sum(), positions, retain_graph=True)[0]
    gradients = torch.autograd.grad(energy.square().sum(), list(model.parameters()))
    assert model.backend == name
    return energy.detach(), forces, gradients


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("pairs", ["half with sums", "half", "directed"])
@pytest.mark.parametrize("representation, activation", [
    ("schnet", "shifted_softplus"), ("schnet", "silu"), ("painn", "silu")])
def test_every_backend_gives_the_same_numbers(qm9_sample, make_batch, dtype, pairs,
                                              representation, activation):
    """Energies, forces and parameter gradients on each backend against the first, in float64
    to 1e-10 and in float32 to float32's rounding; half pairs with the batch's molecule
    offsets (threads) or without (one thread), and SchNetPack's directed pairs."""
    torch.manual_seed(4)
    model = EnergyModel(n_atom_basis=38, n_interactions=3, n_rbf=20,
                        representation=representation, activation=activation).to(dtype)
    batch = make_batch(qm9_sample.subset(range(12)), half=pairs != "directed")
    sums = _sums(batch) if pairs == "half with sums" else None
    (energy, forces, gradients), *others = [_results(model, name, batch, dtype, sums)
                                            for name in NAMES]
    rtol, atol = (1e-10, 1e-12) if dtype == torch.float64 else (1e-4, 1e-4)
    assert forces.abs().max() > 1e-3
    for other_energy, other_forces, other_gradients in others:
        torch.testing.assert_close(other_energy, energy, rtol=rtol, atol=atol)
        torch.testing.assert_close(other_forces, forces, rtol=rtol, atol=atol)
        for ours, theirs in zip(other_gradients, gradients):
            torch.testing.assert_close(ours, theirs, rtol=rtol, atol=atol * theirs.abs().max())


@pytest.mark.parametrize("representation", ARCHITECTURES)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_prediction_without_autograd_is_the_trained_function(qm9_sample, make_batch, name,
                                                             dtype, representation):
    """Prediction and validation (inference mode) give the training forward's bits."""
    torch.manual_seed(2)
    model = EnergyModel(n_atom_basis=16, n_interactions=3, n_rbf=10,
                        representation=representation).to(dtype)
    model.representation.backends["cpu"] = name
    batch = make_batch(qm9_sample)
    args = batch.args(dtype=dtype, kind=model.geometry)
    expected = model(*args, sums=_sums(batch)).detach()
    with torch.inference_mode():
        assert torch.equal(model(*args, sums=_sums(batch)), expected)


@pytest.mark.parametrize("representation", ARCHITECTURES)
def test_the_backend_is_chosen_once_per_device_and_kept(tiny_molecules, make_batch,
                                                        monkeypatch, representation):
    """The first call on a device chooses; turning the kernels off afterwards changes no
    model that has chosen, and a new model chooses the fallback."""
    model = EnergyModel(n_atom_basis=8, n_interactions=2, n_rbf=5,
                        representation=representation).double()
    assert model.representation.backends == {}
    batch = make_batch(tiny_molecules)
    args = batch.args(kind=model.geometry)
    expected = model(*args)
    assert model.representation.backends == {"cpu": "kernel-openmp"}
    monkeypatch.setenv(kernels.ENV_VAR, "0")
    assert model.backend == "kernel-openmp"
    assert torch.equal(model(*args), expected)
    fresh = EnergyModel(n_atom_basis=8, n_interactions=2, n_rbf=5,
                        representation=representation).double()
    assert fresh.backend == "torch" and fresh.representation.backends == {"cpu": "torch"}


@pytest.mark.parametrize("representation", ARCHITECTURES)
def test_a_traced_graph_runs_torch_whatever_the_model_chose(tiny_molecules, make_batch,
                                                            representation):
    """torch.export (and torch.compile) cannot call the compiled library: a model that chose
    the kernels exports through PyTorch's ops, to the same energies."""
    torch.manual_seed(3)
    model = EnergyModel(n_atom_basis=8, n_interactions=2, n_rbf=5,
                        representation=representation).double()
    batch = make_batch(tiny_molecules.subset(range(4)))
    args = batch.args(kind=model.geometry)
    expected = model(*args)
    assert model.backend == "kernel-openmp"
    with torch.no_grad():
        program = torch.export.export(model, args)
    torch.testing.assert_close(program.module()(*args), expected, rtol=1e-12, atol=1e-12)
    assert model.representation.backends == {"cpu": "kernel-openmp"}
