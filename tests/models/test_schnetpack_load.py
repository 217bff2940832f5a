"""Loading SchNetPack-format state dicts, without SchNetPack: shapes, keys, offsets, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from molstrata.errors import MolstrataError
from molstrata.models import EnergyModel, load_schnetpack_state_dict


def _random_model(**hyperparameters) -> EnergyModel:
    torch.manual_seed(1)
    model = EnergyModel(**{"n_atom_basis": 16, "n_interactions": 2, **hyperparameters})
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
    return model


def _as_schnetpack(model: EnergyModel, offsets: bool = True) -> dict[str, torch.Tensor]:
    """The state dict SchNetPack's NeuralNetworkPotential would have for this model."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("representation."):
            state[key] = value.clone()
        elif key.startswith("head."):
            state["output_modules.0." + key[len("head.") :]] = value.clone()
    if offsets:  # postprocessors.0 is CastTo64, which has no buffers
        state["postprocessors.1.atomref"] = model.atomrefs.float()
        state["postprocessors.1.mean"] = model.shift.float().reshape(1)
    return state


def _outputs(model, make_batch, molecules):
    batch = make_batch(molecules, cutoff=model.cutoff)
    return model.predict(*batch.args(dtype=torch.float32))


def test_round_trip_recovers_hyperparameters_and_outputs(tiny_molecules, make_batch):
    model = _random_model(n_rbf=12, cutoff=4.1, n_filters=10, max_z=20, head_hidden=[9, 4],
                          head_layers=3)
    atomrefs = np.zeros(20)
    atomrefs[[1, 6, 7, 8, 9]] = [-13.6, -1029.9, -1485.3, -2042.6, -2713.5]
    model.set_standardization(atomrefs, shift=-0.125, scale=1.0)
    loaded = load_schnetpack_state_dict(_as_schnetpack(model))
    assert loaded.hyperparameters == model.hyperparameters  # the cutoff reads 4.1, not 4.0999999
    torch.testing.assert_close(
        _outputs(loaded, make_batch, tiny_molecules), _outputs(model, make_batch, tiny_molecules)
    )
    assert loaded.atomrefs.dtype == torch.float64 and loaded.shift.item() == -0.125


def test_pyramidal_head_loads_as_the_default(tiny_molecules, make_batch):
    model = _random_model(n_atom_basis=38)
    loaded = load_schnetpack_state_dict(_as_schnetpack(model, offsets=False), aggregation="avg")
    assert loaded.hyperparameters == {**model.hyperparameters, "aggregation": "avg"}
    assert loaded.hyperparameters["head_hidden"] is None
    assert not loaded.atomrefs.any() and loaded.shift.item() == 0 and loaded.scale.item() == 1


def test_merged_standalone_state_dicts_load(tiny_molecules, make_batch):
    """{**schnet.state_dict(), **atomwise.state_dict(), **add_offsets.state_dict()}."""
    model = _random_model()
    model.set_standardization(np.linspace(0, 1, 100), shift=0.5, scale=1.0)
    merged = {
        **{k.removeprefix("representation."): v for k, v in model.state_dict().items()
           if k.startswith("representation.")},
        **{k.removeprefix("head."): v for k, v in model.state_dict().items()
           if k.startswith("head.")},
        "atomref": model.atomrefs.float(),
        "mean": model.shift.float().reshape(1),
    }
    loaded = load_schnetpack_state_dict(merged)
    torch.testing.assert_close(
        _outputs(loaded, make_batch, tiny_molecules), _outputs(model, make_batch, tiny_molecules)
    )


def test_float64_state_dicts_load():
    model = _random_model()
    state = {key: value.double() for key, value in _as_schnetpack(model).items()}
    loaded = load_schnetpack_state_dict(state)
    assert loaded.representation.embedding.weight.dtype == torch.float32
    torch.testing.assert_close(
        loaded.representation.radial_basis.offsets, model.representation.radial_basis.offsets
    )


def test_shorter_atomrefs_are_padded_and_longer_ones_checked():
    state = _as_schnetpack(_random_model())
    state["postprocessors.1.atomref"] = torch.arange(10.0)
    loaded = load_schnetpack_state_dict(state)
    assert loaded.atomrefs[:10].tolist() == list(range(10)) and not loaded.atomrefs[10:].any()
    state["postprocessors.1.atomref"] = torch.ones(120)
    with pytest.raises(MolstrataError, match="atomic numbers >= 100"):
        load_schnetpack_state_dict(state)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.pop("representation.interactions.1.f2out.0.bias"),
         "missing keys representation.interactions.1.f2out.0.bias"),
        (lambda s: s.pop("representation.cutoff_fn.cutoff"), "missing keys"),
        (lambda s: s.update({"representation.cutoff_fn.eps": torch.ones(1)}),
         "unexpected keys representation.cutoff_fn.eps"),
        (lambda s: s.update({"representation.radial_basis.freqs": torch.ones(20)}),
         "unexpected keys representation.radial_basis.freqs"),
        (lambda s: s.update({"representation.interactions.3.in2f.weight": torch.ones(16, 16)}),
         "missing keys representation.interactions.2.in2f.weight"),
        (lambda s: s.update({"output_modules.1.outnet.0.weight": torch.ones(8, 16)}),
         "2 Atomwise output modules"),
        (lambda s: s.update({"postprocessors.2.atomref": torch.ones(100),
                             "postprocessors.2.mean": torch.ones(1)}),
         "2 AddOffsets"),
        (lambda s: s.pop("postprocessors.1.mean"), "unexpected keys postprocessors.1.atomref"),
        (lambda s: s.update({"postprocessors.1.scale": torch.ones(1)}), "unexpected keys"),
        (lambda s: [s.pop(k) for k in list(s) if k.startswith("output_modules.")],
         "missing keys output_modules.0.outnet.0.weight"),
        (lambda s: s.pop("output_modules.0.outnet.1.bias"), "outnet.1.bias"),
        (lambda s: s.update({"output_modules.0.outnet.1.weight": torch.ones(2, 8),
                             "output_modules.0.outnet.1.bias": torch.ones(2)}),
         r"layer sizes \[16, 8, 2\]"),
        (lambda s: s.update({"output_modules.0.outnet.1.weight": torch.ones(1, 7)}),
         "do not chain"),
        (lambda s: s.update({"representation.interactions.0.f2out.1.weight": torch.ones(16, 8)}),
         r"interactions.0.f2out.1.weight \(16, 8\) \(expected \(16, 16\)\)"),
        (lambda s: s.update({"representation.embedding.weight": torch.ones(100)}),
         r"wrong rank: representation.embedding.weight \(100,\)"),
        (lambda s: s.update({"model.representation.embedding.weight": torch.ones(3)}),
         "unexpected keys model.representation.embedding.weight"),
    ],
)
def test_state_dicts_that_do_not_fit_are_refused(change, message):
    state = _as_schnetpack(_random_model())
    change(state)
    with pytest.raises(MolstrataError, match=message):
        load_schnetpack_state_dict(state)


def test_the_unmodified_state_dict_loads():
    """The refusals above come from the changes, not from the helper."""
    assert isinstance(load_schnetpack_state_dict(_as_schnetpack(_random_model())), EnergyModel)


# ---- PaiNN ---------------------------------------------------------------------------


def _random_painn(**hyperparameters) -> EnergyModel:
    """Random biases on Xavier weights: random weights everywhere make PaiNN's vector
    features grow without bound."""
    torch.manual_seed(2)
    model = EnergyModel(
        **{"representation": "painn", "n_atom_basis": 12, "n_interactions": 3, **hyperparameters}
    )
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(0.0, 0.3)
    return model


@pytest.mark.parametrize("shared_interactions, shared_filters",
                         [(False, False), (True, False), (False, True), (True, True)])
def test_painn_round_trip_recovers_hyperparameters_and_outputs(
    tiny_molecules, make_batch, shared_interactions, shared_filters
):
    model = _random_painn(n_atom_basis=13, n_rbf=7, cutoff=4.3, max_z=20, head_hidden=[9, 4],
                          head_layers=3, shared_interactions=shared_interactions,
                          shared_filters=shared_filters)
    atomrefs = np.zeros(20)
    atomrefs[[1, 6, 7, 8, 9]] = [-13.6, -1029.9, -1485.3, -2042.6, -2713.5]
    model.set_standardization(atomrefs, shift=-0.125, scale=1.0)
    loaded = load_schnetpack_state_dict(_as_schnetpack(model))
    assert loaded.hyperparameters == model.hyperparameters
    assert loaded.geometry == "vectors"
    batch = make_batch(tiny_molecules, cutoff=4.3)
    args = batch.args(dtype=torch.float32, kind="vectors")
    torch.testing.assert_close(loaded.predict(*args), model.predict(*args))


def test_a_single_painn_block_loads_unshared(tiny_molecules, make_batch):
    """With one block, shared and unshared PaiNN are the same model: it loads as unshared."""
    model = _random_painn(n_interactions=1, shared_filters=True, shared_interactions=True)
    loaded = load_schnetpack_state_dict(_as_schnetpack(model, offsets=False))
    assert not loaded.hyperparameters["shared_filters"]
    assert not loaded.hyperparameters["shared_interactions"]
    args = make_batch(tiny_molecules).args(dtype=torch.float32, kind="vectors")
    torch.testing.assert_close(loaded(*args), model(*args))


def test_merged_standalone_painn_state_dicts_load(tiny_molecules, make_batch):
    model = _random_painn()
    state = model.state_dict()
    merged = {
        **{k.removeprefix("representation."): v for k, v in state.items()
           if k.startswith("representation.")},
        **{k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")},
    }
    loaded = load_schnetpack_state_dict(merged, activation="silu")
    assert loaded.hyperparameters == model.hyperparameters
    args = make_batch(tiny_molecules).args(dtype=torch.float32, kind="vectors")
    torch.testing.assert_close(loaded(*args), model(*args))


def test_activation_is_taken_from_the_caller():
    state = _as_schnetpack(_random_painn())
    loaded = load_schnetpack_state_dict(state, activation="shifted_softplus")
    assert loaded.hyperparameters["activation"] == "shifted_softplus"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.pop("representation.mixing.1.mu_channel_mix.weight"),
         "not a SchNetPack 2 PaiNN with one Atomwise output: missing keys "
         "representation.mixing.1.mu_channel_mix.weight"),
        (lambda s: s.update({"representation.interactions.0.in2f.weight": torch.ones(12, 12)}),
         "unexpected keys representation.interactions.0.in2f.weight"),
        (lambda s: s.update({"representation.filter_net.weight": torch.ones(30, 20),
                             "representation.filter_net.bias": torch.ones(30)}),
         r"inconsistent shapes: representation.filter_net.weight \(30, 20\) "
         r"\(expected \(108, 20\)\)"),
        (lambda s: s.update({"representation.mixing.3.mu_channel_mix.weight": torch.ones(24, 12)}),
         "missing keys representation.interactions.3.interatomic_context_net.0.weight"),
        (lambda s: [s.pop(k) for k in list(s) if k.startswith(("representation.filter_net",
                                                                "representation.interactions",
                                                                "representation.mixing"))],
         "neither a SchNetPack 2 SchNet nor a PaiNN representation"),
    ],
)
def test_painn_state_dicts_that_do_not_fit_are_refused(change, message):
    state = _as_schnetpack(_random_painn())
    change(state)
    with pytest.raises(MolstrataError, match=message) as error:
        load_schnetpack_state_dict(state)
    assert "\n" not in str(error.value)


def test_the_unmodified_painn_state_dict_loads():
    """The refusals above come from the changes, not from the helper."""
    assert load_schnetpack_state_dict(_as_schnetpack(_random_painn())).geometry == "vectors"
