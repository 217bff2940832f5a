"""Bookkeeping of EnergyModel with SchNet: head, standardisation, hyper-parameters, blocks.

Physics and batching, for every representation, are in test_physics.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from molstrata.data.molecules import Molecules
from molstrata.errors import MolstrataError
from molstrata.models import (
    ACTIVATIONS,
    Atomwise,
    CosineCutoff,
    Dense,
    EnergyModel,
    GaussianRBF,
    SchNet,
    shifted_softplus,
)
from molstrata.models.activations import activation
from molstrata.models.atomwise import layer_sizes


def _model(seed=0, **hyperparameters) -> EnergyModel:
    """A float64 model with random biases too, so that no term is trivially zero."""
    torch.manual_seed(seed)
    model = EnergyModel(**{"n_atom_basis": 32, "n_interactions": 3, **hyperparameters})
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(0.0, 0.2)
    return model.double()


def _energies(model, batch, positions=None, half_pairs=None):
    half_pairs = batch.half if half_pairs is None else half_pairs
    return model(*batch.args(positions), half_pairs=half_pairs)


def _close(a, b, tol=1e-10):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol * max(1.0, b.abs().max().item()))


@pytest.fixture
def molecules(tiny_molecules) -> Molecules:
    return tiny_molecules


# ---- head, standardisation, reference -----------------------------------------------


def test_avg_is_the_mean_of_the_per_atom_outputs(molecules, make_batch):
    summed, averaged = _model(), _model(aggregation="avg")
    averaged.load_state_dict(summed.state_dict())
    for model in (summed, averaged):
        model.set_standardization(np.zeros(100), shift=-0.2, scale=2.5)
    batch = make_batch(molecules)
    n_atoms = torch.bincount(batch.molecule_index).double()
    _close(_energies(averaged, batch), _energies(summed, batch) / n_atoms)


def test_atomwise_per_atom_outputs_sum_to_the_molecule(molecules, make_batch):
    batch = make_batch(molecules)
    torch.manual_seed(0)
    head = Atomwise(16).double()
    x = torch.randn(len(batch.numbers), 16, dtype=torch.float64)
    per_atom = head.atom_outputs(x)
    assert per_atom.shape == (len(batch.numbers),)
    expected = [per_atom[batch.molecule_index == m].sum() for m in range(batch.n_molecules)]
    _close(head(x, batch.molecule_index, batch.n_molecules), torch.stack(expected))


def test_standardization_scales_and_shifts_every_atom(molecules, make_batch):
    model, batch = _model(), make_batch(molecules)
    raw = _energies(model, batch)
    model.set_standardization(np.zeros(100), shift=-0.25, scale=3.0)
    n_atoms = torch.bincount(batch.molecule_index).double()
    _close(_energies(model, batch), 3.0 * raw - 0.25 * n_atoms)


def test_reference_is_float64_and_exact(molecules, make_batch):
    model = _model().float()
    atomrefs = np.zeros(100)
    atomrefs[[1, 6, 7, 8, 9]] = [-13.6131, -1029.8631, -1485.3025, -2042.6112, -2713.4848]
    model.set_standardization(atomrefs, shift=0.0, scale=1.0)
    model.float()  # the references must survive a dtype cast
    batch = make_batch(molecules)
    reference = model.reference(batch.numbers, batch.molecule_index, batch.n_molecules)
    assert reference.dtype == torch.float64
    expected = [atomrefs[z].sum() for z in np.split(molecules.numbers, molecules.offsets[1:-1])]
    np.testing.assert_allclose(reference.numpy(), expected, rtol=1e-15)
    args = batch.args(dtype=torch.float32)
    prediction = model.predict(*args)
    assert prediction.dtype == torch.float64
    torch.testing.assert_close(prediction, model(*args).double() + reference, rtol=0, atol=0)


def test_reference_is_zero_until_set(molecules, make_batch):
    batch = make_batch(molecules)
    reference = _model().reference(batch.numbers, batch.molecule_index, batch.n_molecules)
    assert reference.shape == (len(molecules),) and not reference.any()


def test_set_standardization_rejects_bad_values():
    model = EnergyModel(n_atom_basis=8, n_interactions=1)
    with pytest.raises(ValueError, match="shape"):
        model.set_standardization(np.zeros(10), shift=0.0, scale=1.0)
    with pytest.raises(ValueError, match="scale"):
        model.set_standardization(np.zeros(100), shift=0.0, scale=0.0)


# ---- hyper-parameters and state -----------------------------------------------------


def test_hyperparameters_rebuild_the_same_model(molecules, make_batch):
    model = _model(
        n_atom_basis=24, n_interactions=2, n_rbf=12, cutoff=4.5, n_filters=16, max_z=10,
        aggregation="avg", head_hidden=[20, 7], head_layers=3,
    )
    model.set_standardization(np.linspace(-5.0, 5.0, 10), shift=0.1, scale=0.9)
    hyperparameters = json.loads(json.dumps(model.hyperparameters))
    rebuilt = EnergyModel(**hyperparameters).double()
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.hyperparameters == model.hyperparameters
    batch = make_batch(molecules, cutoff=4.5)
    torch.testing.assert_close(rebuilt.predict(*batch.args()), model.predict(*batch.args()))
    other = EnergyModel(**{**hyperparameters, "head_hidden": None, "head_layers": 2})
    with pytest.raises(RuntimeError):
        other.load_state_dict(model.state_dict())


def test_state_dict_keys_mirror_schnetpack():
    keys = set(EnergyModel(n_atom_basis=8, n_interactions=2).state_dict())
    assert {
        "representation.embedding.weight",
        "representation.radial_basis.offsets",
        "representation.radial_basis.widths",
        "representation.cutoff_fn.cutoff",
        "representation.interactions.1.in2f.weight",
        "representation.interactions.1.filter_network.0.weight",
        "representation.interactions.1.filter_network.1.bias",
        "representation.interactions.1.f2out.1.bias",
        "head.outnet.0.weight",
        "head.outnet.1.bias",
        "scale",
        "shift",
        "atomrefs",
    } <= keys
    assert "representation.interactions.1.in2f.bias" not in keys


def test_dtype_casts_keep_standardization_float64():
    model = EnergyModel(n_atom_basis=8, n_interactions=1)
    model.set_standardization(np.full(100, -1029.8631), shift=0.1, scale=0.3)
    for dtype in (torch.float64, torch.float32, torch.float16):
        model.to(dtype)
        assert model.representation.embedding.weight.dtype == dtype
        assert {model.scale.dtype, model.shift.dtype, model.atomrefs.dtype} == {torch.float64}
    assert model.atomrefs[0].item() == -1029.8631 and model.scale.item() == 0.3


# ---- building blocks ----------------------------------------------------------------


def test_shifted_softplus_and_registry():
    x = torch.tensor([-30.0, -1.0, 0.0, 2.0, 40.0], dtype=torch.float64)
    expected = torch.log(0.5 * torch.exp(x) + 0.5)
    torch.testing.assert_close(shifted_softplus(x), expected)
    assert shifted_softplus(torch.zeros(1)).item() == 0.0
    assert set(ACTIVATIONS) == {"shifted_softplus", "silu"}
    with pytest.raises(MolstrataError, match="shifted_softplus"):
        activation("relu6")
    with pytest.raises(MolstrataError):
        EnergyModel(head_activation="tanh")


def test_gaussian_basis_matches_its_definition():
    rbf = GaussianRBF(n_rbf=20, cutoff=5.0)
    assert rbf.offsets.dtype == rbf.widths.dtype == torch.float32
    torch.testing.assert_close(rbf.offsets, torch.linspace(0.0, 5.0, 20), rtol=0, atol=0)
    assert torch.all(rbf.widths == rbf.offsets[1] - rbf.offsets[0])
    d = torch.tensor([0.0, 1.3, 4.9, 7.0], dtype=torch.float64)
    mu, sigma = rbf.offsets.double(), rbf.widths.double()
    expected = torch.exp(-((d[:, None] - mu) ** 2) / (2 * sigma**2))
    got = rbf.double()(d)
    torch.testing.assert_close(got, torch.where(expected < 1e-30, 0.0, expected))
    assert (got == 0).any() and (expected > 0).all()  # subnormal-prone values were flushed


def test_cosine_cutoff_values():
    cutoff = CosineCutoff(4.0).double()
    d = torch.tensor([0.0, 2.0, 3.0, 4.0, 6.0], dtype=torch.float64)
    expected = torch.tensor([1.0, 0.5, 0.5 * (math.cos(0.75 * math.pi) + 1), 0.0, 0.0])
    torch.testing.assert_close(cutoff(d), expected.double())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_basis_and_cutoff_are_the_same_bits_with_and_without_gradients(dtype):
    """Without gradients (training on energies, prediction) both are computed in place: the
    values must be exactly those of the differentiable path (forces)."""
    torch.manual_seed(7)
    d = torch.cat([torch.rand(5000, dtype=dtype) * 7,
                   torch.tensor([0.0, 4.0, 5.0, 9.0], dtype=dtype)])
    rbf, cutoff = GaussianRBF(n_rbf=20, cutoff=5.0).to(dtype), CosineCutoff(5.0).to(dtype)
    plain = d.clone().requires_grad_()
    assert torch.equal(rbf(d), rbf(plain).detach())
    assert torch.equal(cutoff(d), cutoff(plain).detach())
    assert (rbf(d) == 0).any() and (cutoff(d) == 0).any()


def test_dense_initialisation_is_xavier_uniform_with_zero_bias():
    torch.manual_seed(0)
    layer = Dense(200, 300)
    bound = math.sqrt(6.0 / (200 + 300))
    assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.95 * bound
    assert layer.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert not layer.bias.any()
    model = SchNet(n_atom_basis=16, n_interactions=1)
    assert not model.interactions[0].f2out[0].bias.any()


@pytest.mark.parametrize(
    "n_in, n_hidden, n_layers, expected",
    [(128, None, 2, [128, 64, 1]), (38, None, 3, [38, 19, 9, 1]), (3, None, 4, [3, 1, 1, 1, 1]),
     (38, 10, 3, [38, 10, 10, 1]), (38, [7, 5], 3, [38, 7, 5, 1])],
)
def test_head_layer_sizes_follow_build_mlp(n_in, n_hidden, n_layers, expected):
    assert layer_sizes(n_in, 1, n_hidden, n_layers) == expected
    head = Atomwise(n_in, n_hidden=n_hidden, n_layers=n_layers)
    assert [layer.in_features for layer in head.outnet] + [1] == expected
    assert head.outnet[-1].activation is None and head.outnet[0].activation is not None


def test_embedding_size_and_filters_default():
    model = EnergyModel(n_atom_basis=12, n_interactions=2, max_z=10)
    assert model.representation.embedding.weight.shape == (10, 12)
    assert model.representation.interactions[0].in2f.weight.shape == (12, 12)
    model = EnergyModel(n_atom_basis=12, n_interactions=2, n_filters=5)
    assert model.representation.interactions[1].filter_network[1].weight.shape == (5, 5)
