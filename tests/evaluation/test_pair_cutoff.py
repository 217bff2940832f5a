"""Predictions from a model: the pair cutoff is taken as given, its rule owned by one property."""

from __future__ import annotations

import pytest

from molstrata.evaluation import predict as predict_module
from molstrata.models import EnergyModel
from molstrata.training.config import TrainConfig


@pytest.mark.parametrize(("neighbor", "model", "pairs"), [(4.0, 5.0, 4.0), (6.0, 5.0, 5.0)])
def test_the_pair_cutoff_is_one_property_of_the_config(neighbor, model, pairs):
    config = TrainConfig.from_dict({"data": {"neighbor_cutoff": neighbor},
                                    "model": {"cutoff": model}})
    assert config.pair_cutoff == pairs


def test_predict_takes_the_pair_cutoff_as_given(monkeypatch, tiny_molecules):
    seen = []
    real = predict_module.DeviceDataset

    def recording(molecules, cutoff, *args, **kwargs):
        seen.append(cutoff)
        return real(molecules, cutoff, *args, **kwargs)

    monkeypatch.setattr(predict_module, "DeviceDataset", recording)
    model = EnergyModel(n_atom_basis=8, n_interactions=1, n_rbf=6, cutoff=5.0).eval()
    values = predict_module.predict(model, tiny_molecules, pair_cutoff=6.0, batch_size=16)
    assert seen == [6.0]  # no minimum taken again: the caller's property owns the rule
    assert values.shape == (len(tiny_molecules),)
