"""The registry of representations and EnergyModel's hyper-parameters, old and new."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch
from model_physics import ARCHITECTURES, assert_close, energies, random_model
from torch.export import Dim

from molstrata.errors import MolstrataError
from molstrata.models import (
    REPRESENTATIONS,
    EnergyModel,
    complete_hyperparameters,
    pair_geometry,
)

FORMAT_1 = {
    "n_atom_basis": 8, "n_interactions": 1, "n_rbf": 6, "cutoff": 4.5, "n_filters": None,
    "max_z": 10, "aggregation": "sum", "activation": "shifted_softplus",
    "head_activation": "silu", "head_hidden": None, "head_layers": 2,
}
"""EnergyModel.hyperparameters as model files of format 1 and old checkpoints hold them."""

SCHNET_KEYS = {
    "representation.embedding.weight", "representation.radial_basis.offsets",
    "representation.radial_basis.widths", "representation.cutoff_fn.cutoff",
    *(f"representation.interactions.0.{key}" for key in (
        "in2f.weight", "filter_network.0.weight", "filter_network.0.bias",
        "filter_network.1.weight", "filter_network.1.bias", "f2out.0.weight", "f2out.0.bias",
        "f2out.1.weight", "f2out.1.bias",
    )),
    "head.outnet.0.weight", "head.outnet.0.bias", "head.outnet.1.weight", "head.outnet.1.bias",
    "scale", "shift", "atomrefs",
}
"""The state-dict keys of FORMAT_1's model, which saved weights were written under."""


def test_registry_names_schnet_and_painn():
    assert list(REPRESENTATIONS) == ["schnet", "painn"]
    assert EnergyModel().hyperparameters["representation"] == "schnet"


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_options_are_the_constructors_own_defaults(name):
    """Each class's OPTIONS and its constructor agree, beside the common arguments."""
    cls = REPRESENTATIONS[name]
    parameters = inspect.signature(cls).parameters
    common = {"n_atom_basis", "n_interactions", "n_rbf", "cutoff", "max_z"}
    assert common <= set(parameters)
    for key, default in cls.OPTIONS.items():
        assert parameters[key].default == default, key
    assert json.loads(json.dumps(cls.OPTIONS)) == cls.OPTIONS


def test_format_1_hyperparameters_build_the_same_schnet():
    model = EnergyModel(**FORMAT_1)
    assert isinstance(model.representation, REPRESENTATIONS["schnet"])
    assert model.hyperparameters == {**FORMAT_1, "representation": "schnet"}
    assert set(model.state_dict()) == SCHNET_KEYS
    assert complete_hyperparameters(FORMAT_1) == model.hyperparameters


def test_complete_hyperparameters_fill_in_the_representations_defaults():
    painn = complete_hyperparameters({"representation": "painn", "n_atom_basis": 64})
    assert painn == EnergyModel(representation="painn", n_atom_basis=64).hyperparameters
    assert painn["activation"] == "silu" and painn["n_atom_basis"] == 64
    assert painn["shared_interactions"] is False and painn["shared_filters"] is False
    assert "n_filters" not in painn
    assert complete_hyperparameters({})["activation"] == "shifted_softplus"


@pytest.mark.parametrize("architecture, options", [
    ("schnet", {"n_filters": 12, "activation": "silu"}),
    ("painn", {"shared_interactions": True, "activation": "shifted_softplus"}),
    ("painn", {"shared_filters": True}),
])
def test_hyperparameters_rebuild_the_same_model(tiny_molecules, make_batch, architecture,
                                                options):
    model = random_model(architecture, n_atom_basis=11, n_interactions=2, n_rbf=9, cutoff=4.5,
                         max_z=10, aggregation="avg", head_hidden=[7], head_layers=2,
                         **options)
    model.set_standardization(np.linspace(-5.0, 5.0, 10), shift=0.1, scale=0.9)
    hyperparameters = json.loads(json.dumps(model.hyperparameters))
    assert hyperparameters["representation"] == architecture
    rebuilt = EnergyModel(**hyperparameters).double()
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.hyperparameters == model.hyperparameters
    batch = make_batch(tiny_molecules, cutoff=4.5)
    assert_close(energies(rebuilt, batch), energies(model, batch))


def test_painn_activation_is_a_hyperparameter(tiny_molecules, make_batch):
    silu = random_model("painn")
    softplus = random_model("painn", activation="shifted_softplus")
    softplus.load_state_dict(silu.state_dict())
    batch = make_batch(tiny_molecules)
    assert (energies(silu, batch) - energies(softplus, batch)).abs().max() > 1e-3


@pytest.mark.parametrize("hyperparameters, message", [
    ({"representation": "nequip"}, r"unknown representation 'nequip'; choose one of: schnet, "
                                   r"painn"),
    ({"representation": "painn", "n_filters": 64},
     r"'painn' has no hyper-parameter n_filters; its own are: activation, shared_interactions"),
    ({"shared_filters": True}, r"'schnet' has no hyper-parameter shared_filters"),
    ({"representation": "painn", "shared_filters": "yes"}, r"shared_filters must be true or "
                                                           r"false, got 'yes'"),
    ({"representation": "painn", "activation": "relu"}, r"unknown activation 'relu'"),
])
def test_bad_hyperparameters_are_one_line_errors(hyperparameters, message):
    with pytest.raises(MolstrataError, match=message) as error:
        EnergyModel(**hyperparameters)
    assert "\n" not in str(error.value)
    if "activation" not in hyperparameters:
        with pytest.raises(MolstrataError, match=message):
            complete_hyperparameters(hyperparameters)


def test_dtype_casts_keep_painn_standardization_float64():
    model = EnergyModel(representation="painn", n_atom_basis=8, n_interactions=1)
    model.set_standardization(np.full(100, -1029.8631), shift=0.1, scale=0.3)
    model.float()
    assert model.representation.filter_net.weight.dtype == torch.float32
    assert model.atomrefs.dtype == torch.float64 and model.atomrefs[0].item() == -1029.8631


class _Deployed(torch.nn.Module):
    """Energies from positions and pairs, as deploy/program.py wraps a model for torch.export."""

    def __init__(self, model: EnergyModel):
        super().__init__()
        self.model = model

    def forward(self, numbers, positions, idx_i, idx_j, sizes):
        molecule_index = torch.repeat_interleave(
            torch.arange(sizes.shape[0]), sizes, output_size=numbers.shape[0]
        )
        geometry = pair_geometry(positions, idx_i, idx_j, self.model.geometry)
        return self.model.predict(numbers, geometry, idx_i, idx_j, molecule_index,
                                  sizes.shape[0])


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_representation_exports_for_any_batch(architecture, qm9_sample, make_batch):
    """torch.export traces it with symbolic numbers of atoms, pairs and molecules: no size of
    the example batch is baked in (a Python len() on a tensor would be)."""
    module = _Deployed(random_model(architecture, n_atom_basis=8, n_interactions=2)).eval()

    def inputs(molecules):
        batch = make_batch(molecules)
        sizes = torch.as_tensor(np.diff(molecules.offsets))
        return batch.numbers, batch.positions, batch.idx_i, batch.idx_j, sizes

    atoms, pairs, molecules = Dim("atoms", min=2), Dim("pairs", min=1), Dim("molecules", min=1)
    with torch.no_grad():
        program = torch.export.export(
            module, inputs(qm9_sample.subset([1, 2, 3])),
            dynamic_shapes=({0: atoms}, {0: atoms}, {0: pairs}, {0: pairs}, {0: molecules}),
        )
    other = inputs(qm9_sample.subset(slice(4, 12)))
    assert_close(program.module()(*other), module(*other))
