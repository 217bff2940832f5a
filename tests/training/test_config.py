import pytest

from molstrata.errors import MolstrataError
from molstrata.training.config import PRESETS, TrainConfig, preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_valid_and_round_trip_through_toml(tmp_path, name):
    config = preset(name).validate()
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml())
    assert TrainConfig.from_toml(path).to_dict() == config.to_dict()


def test_seed_presets_follow_the_study():
    default, custom = preset("seed-default"), preset("seed-custom")
    assert (default.training.epochs, default.training.batch_size, default.training.lr) == (
        22, 512, 1e-3)
    assert (default.data.neighbor_cutoff, default.model.cutoff, default.model.n_atom_basis) == (
        4.0, 5.0, 38)
    assert custom.subset.min_size == 18 and custom.training.loss_weighting == "size"
    assert (custom.training.epochs, custom.training.batch_size, custom.training.lr,
            custom.training.rate) == (30, 128, 1e-4, 10.0)


def test_unknown_options_and_types_are_refused(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[training]\nepoch = 3\n")
    with pytest.raises(MolstrataError, match=r"unknown option training.epoch; known: .*epochs"):
        TrainConfig.from_toml(path)
    path.write_text("[trainig]\nepochs = 3\n")
    with pytest.raises(MolstrataError, match=r"unknown section \[trainig\]"):
        TrainConfig.from_toml(path)
    path.write_text('[training]\nepochs = "ten"\n')
    with pytest.raises(MolstrataError, match="training.epochs must be int, got 'ten'"):
        TrainConfig.from_toml(path)
    path.write_text("[training\nepochs = 3\n")
    with pytest.raises(MolstrataError, match="not valid TOML"):
        TrainConfig.from_toml(path)
    with pytest.raises(MolstrataError, match="does not exist"):
        TrainConfig.from_toml(tmp_path / "none.toml")


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("training", "epochs", 0, "training.epochs must be >= 1"),
        ("training", "scheduler", "step", "training.scheduler must be one of"),
        ("training", "loss_weighting", "sizes", "training.loss_weighting 'sizes'"),
        ("data", "split", [0.8, 0.3, 0.1], "data.split"),
        ("model", "cutoff", -1.0, "model.cutoff must be > 0"),
        ("runtime", "device", "tpu", "runtime.device"),
    ],
)
def test_impossible_options(section, key, value, message):
    config = TrainConfig()
    config.override(section, key, value)
    with pytest.raises(MolstrataError, match=message):
        config.validate()
