"""The sweep's search space: parsed once, refused with one line, every trial config valid."""

import optuna
import pytest

from molstrata.errors import MolstrataError
from molstrata.sweep.space import FIXED_OPTIONS, apply, parse_space
from molstrata.training.config import TrainConfig

SPACE = {
    "training.lr": {"low": 1e-4, "high": 1e-2, "log": True},
    "training.epochs": {"low": 5, "high": 30, "step": 5},
    "data.neighbor_cutoff": {"low": 3.0, "high": 6.0},
    "model.cutoff": {"low": 4, "high": 6, "step": 0.5},
    "model.n_atom_basis": {"choices": [32, 64, 128]},
    "training": {"batch_size": {"choices": [32, 128, 512]},
                 "loss_weighting": {"choices": ["none", "size"]},
                 "rate": {"low": 0.0, "high": 20.0}},
    "model.n_interactions": {"low": 1, "high": 6},
}


def test_a_space_parses_and_every_trial_config_is_valid():
    space = parse_space(SPACE, TrainConfig())
    assert space.options == ["training.lr", "training.epochs", "data.neighbor_cutoff",
                             "model.cutoff", "model.n_atom_basis", "training.batch_size",
                             "training.loss_weighting", "training.rate", "model.n_interactions"]
    kinds = {d.option: d.kind for d in space.dimensions}
    assert kinds["training.epochs"] == "int" and kinds["model.cutoff"] == "float"
    assert kinds["model.n_atom_basis"] == "categorical"
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        params = space.suggest(trial)
        config = apply(TrainConfig(), params)  # validated
        assert config.training.epochs in range(5, 31, 5)
        assert 1e-4 <= config.training.lr <= 1e-2 and config.model.n_atom_basis in (32, 64, 128)
        assert isinstance(config.model.n_interactions, int)
        study.tell(trial, 0.0)


def test_grid_values():
    space = parse_space({"training.epochs": {"low": 5, "high": 20, "step": 5},
                         "model.cutoff": {"low": 4.0, "high": 5.0, "step": 0.5},
                         "model.n_interactions": {"low": 1, "high": 3},
                         "training.scheduler": {"choices": ["none", "cosine"]}}, TrainConfig())
    assert space.grid() == {"training.epochs": [5, 10, 15, 20], "model.cutoff": [4.0, 4.5, 5.0],
                            "model.n_interactions": [1, 2, 3],
                            "training.scheduler": ["none", "cosine"]}
    assert space.grid_size() == 72
    continuous = parse_space({"training.lr": {"low": 1e-4, "high": 1e-2}}, TrainConfig())
    with pytest.raises(MolstrataError, match="grid sampler needs finite values"):
        continuous.grid()


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({}, "is empty"),
        ({"training.lrr": {"low": 1, "high": 2}}, "unknown option training.lrr"),
        ({"optim.lr": {"low": 1, "high": 2}}, "unknown section [optim]"),
        ({"data.max_molecules": {"choices": [100, 200]}}, "cannot be swept: it changes"),
        ({"data.split_seed": {"choices": [0, 1]}}, "cannot be swept"),
        ({"subset.min_size": {"choices": [10, 18]}}, "validation molecules"),
        ({"runtime.threads": {"choices": [1, 2]}}, "cannot be swept"),
        ({"training.lr": {"low": 1e-2, "high": 1e-4}}, "low (0.01) must be below high"),
        ({"training.lr": {"low": 1e-3, "high": 1e-3}}, "must be below high"),
        ({"training.lr": {"low": 0.0, "high": 1e-2, "log": True}}, "log scale needs low > 0"),
        ({"training.lr": {"low": 1e-4, "high": 1e-2, "log": True, "step": 1e-4}},
         "log scale cannot have a step"),
        ({"training.epochs": {"low": 5.0, "high": 10}}, "low must be an integer"),
        ({"training.epochs": {"low": 0, "high": 10}}, "training.epochs must be >= 1"),
        ({"training.lr": {"low": 1e-4}}, "give both low and high"),
        ({"training.lr": {"lo": 1e-4, "high": 1}}, "unknown key 'lo'"),
        ({"model.n_atom_basis": {"choices": []}}, "choices must be a non-empty list"),
        ({"model.n_atom_basis": {"choices": [32, 32]}}, "repeat a value"),
        ({"model.n_atom_basis": {"choices": [32, "big"]}}, "must be int"),
        ({"training.scheduler": {"choices": ["cosine", "step"]}}, "training.scheduler must"),
        ({"training.scheduler": {"low": 1, "high": 2}}, "sweep it with choices"),
        ({"training.lr": {"choices": [1e-3], "low": 1e-4}}, "not both"),
        ({"training.lr": 1e-3}, "give a table"),
        ({"training.rate": {"low": 0.0, "high": 10.0}}, "no trial uses it"),
        ({"training.alpha": {"low": 0.0, "high": 1.0},
          "training.loss_weighting": {"choices": ["size", "none"]}}, "inverse_frequency"),
    ],
)
def test_bad_spaces_are_refused_with_one_line(space, message):
    with pytest.raises(MolstrataError) as error:
        parse_space(space, TrainConfig())
    assert message in str(error.value) and "\n" not in str(error.value)


def test_every_data_option_but_the_neighbour_cutoff_is_fixed():
    data = [name for name in FIXED_OPTIONS if name.startswith("data.")]
    assert "data.neighbor_cutoff" not in FIXED_OPTIONS and "data.split" in data
    assert "subset.cap" not in FIXED_OPTIONS  # restricts training only
