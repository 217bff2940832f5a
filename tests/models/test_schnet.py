"""Physics and bookkeeping of SchNet and EnergyModel, on synthetic and real molecules."""

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


def _rotation(seed: int) -> torch.Tensor:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return torch.as_tensor(q)


def _close(a, b, tol=1e-10):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol * max(1.0, b.abs().max().item()))


@pytest.fixture
def molecules(tiny_molecules) -> Molecules:
    return tiny_molecules


# ---- invariances ---------------------------------------------------------------------


def test_energies_are_rotation_invariant(molecules, make_batch):
    model, batch = _model(), make_batch(molecules)
    rotated = batch.positions @ _rotation(3).T
    assert not torch.allclose(rotated, batch.positions)
    _close(_energies(model, batch, rotated), _energies(model, batch))


def test_energies_are_translation_invariant(molecules, make_batch):
    model, batch = _model(), make_batch(molecules)
    moved = batch.positions + torch.tensor([3.0, -7.5, 12.25], dtype=torch.float64)
    _close(_energies(model, batch, moved), _energies(model, batch))


def test_energies_are_permutation_invariant(molecules, make_batch):
    """Shuffling atoms within molecules and the molecules themselves permutes nothing else."""
    rng = np.random.default_rng(5)
    order = rng.permutation(len(molecules))
    shuffled = molecules.subset(order)
    numbers, positions = [], []
    for m in range(len(shuffled)):
        z, r = shuffled.atoms_of(m)
        atoms = rng.permutation(len(z))
        numbers.append(z[atoms])
        positions.append(r[atoms])
    shuffled = Molecules.from_lists(numbers, positions, ids=shuffled.ids)
    assert not np.array_equal(shuffled.numbers, molecules.numbers)
    model = _model()
    expected = _energies(model, make_batch(molecules))[torch.as_tensor(order)]
    _close(_energies(model, make_batch(shuffled)), expected)


def test_energies_depend_on_geometry_and_elements(molecules, make_batch):
    """The invariance tests above would pass for a constant model: rule that out."""
    model, batch = _model(), make_batch(molecules)
    energies = _energies(model, batch)
    stretched = _energies(model, batch, 1.1 * batch.positions)
    assert (energies - stretched).abs().min() > 1e-6
    batch.numbers = torch.where(batch.numbers == 1, 9, batch.numbers)
    assert (_energies(model, batch) - energies).abs().min() > 1e-6


# ---- batching, pairs, cutoff --------------------------------------------------------


def test_a_batch_gives_each_molecule_its_own_energy(molecules, make_batch):
    model = _model()
    together = _energies(model, make_batch(molecules))
    alone = torch.cat([_energies(model, make_batch(molecules.subset([m]))) for m in range(10)])
    _close(together[:10], alone)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_half_pairs_equal_directed_pairs(molecules, qm9_sample, make_batch, dtype, tol):
    model = _model().to(dtype)
    for sample in (molecules, qm9_sample):
        half, directed = make_batch(sample, half=True), make_batch(sample, half=False)
        assert len(directed.idx_i) == 2 * len(half.idx_i) > 0
        assert bool((half.idx_i < half.idx_j).all())
        ours = model(*half.args(dtype=dtype), half_pairs=True)
        theirs = model(*directed.args(dtype=dtype), half_pairs=False)
        assert ours.dtype == dtype
        _close(ours, theirs, tol)


def test_half_pairs_send_messages_both_ways(molecules, make_batch):
    """Treating half pairs as directed (one way only) must change the energies."""
    model, batch = _model(), make_batch(molecules, half=True)
    both = _energies(model, batch, half_pairs=True)
    one_way = _energies(model, batch, half_pairs=False)
    assert (both - one_way).abs().max() > 1e-3


def test_pairs_beyond_the_cutoff_contribute_nothing(molecules, make_batch):
    model = _model(cutoff=3.0)
    within = make_batch(molecules, cutoff=3.0)
    everything = make_batch(molecules, cutoff=100.0)
    assert len(everything.idx_i) > len(within.idx_i)
    _close(_energies(model, everything), _energies(model, within))


@pytest.mark.parametrize("aggregation, factor", [("sum", 2.0), ("avg", 1.0)])
def test_two_distant_copies(qm9_sample, make_batch, aggregation, factor):
    """Two copies farther apart than the cutoff: twice the energy (sum), the same (avg)."""
    model = _model(aggregation=aggregation)
    model.set_standardization(np.zeros(100), shift=0.3, scale=1.7)
    pairs = []
    for m in range(5):
        z, r = qm9_sample.atoms_of(m)
        pairs.append((np.concatenate([z, z]), np.concatenate([r, r + [0.0, 0.0, 50.0]])))
    doubled = Molecules.from_lists(*zip(*pairs))
    single = _energies(model, make_batch(qm9_sample.subset(slice(0, 5)), cutoff=100.0))
    _close(_energies(model, make_batch(doubled, cutoff=100.0)), factor * single)


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


# ---- forces --------------------------------------------------------------------------


def test_forces_are_finite_and_balanced(qm9_sample, make_batch):
    model, batch = _model(), make_batch(qm9_sample)
    positions = batch.positions.clone().requires_grad_(True)
    energy = _energies(model, batch, positions).sum()
    (gradient,) = torch.autograd.grad(energy, positions)
    forces = -gradient
    assert torch.isfinite(forces).all() and forces.abs().max() > 1e-3
    net_force = torch.zeros(batch.n_molecules, 3, dtype=torch.float64)
    net_force.index_add_(0, batch.molecule_index, forces)
    assert net_force.abs().max() < 1e-10
    torque = torch.zeros_like(net_force).index_add_(
        0, batch.molecule_index, torch.cross(positions.detach(), forces, dim=1)
    )
    assert torque.abs().max() < 1e-9


def test_forces_equal_minus_the_gradient(molecules, make_batch):
    """Autograd's gradient of the energy against finite differences (float64)."""
    model, batch = _model(n_atom_basis=8, n_interactions=2), make_batch(molecules.subset([0, 1]))
    positions = batch.positions.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda r: _energies(model, batch, r), (positions,))


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
