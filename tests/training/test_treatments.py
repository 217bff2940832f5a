"""The imbalance treatments compose with the split: the test molecules are the same for every
treatment and never reach training; caps, subsets and weights act on training only."""

from __future__ import annotations

import numpy as np
import pytest

from molstrata.errors import MolstrataError
from molstrata.training.config import TrainConfig
from molstrata.training.data import prepare
from molstrata.training.weights import weight_factors


def _config(cache_dir, **subset) -> TrainConfig:
    config = TrainConfig()
    config.data.cache_dir = str(cache_dir)
    config.data.max_molecules = 3000
    for key, value in subset.items():
        config.override("subset", key, value)
    return config.validate()


@pytest.mark.parametrize("subset", [{"cap": 40}, {"min_size": 18}, {"min_size": 13, "max_size": 23},
                                    {"min_size": 13, "max_size": 23, "cap": 60},
                                    {"excludes": ["F"]}, {"max_train": 300}])
def test_treatments_keep_the_test_split_and_never_train_on_it(qm9_cache_dir, subset):
    base = prepare(_config(qm9_cache_dir), progress=False)
    treated = prepare(_config(qm9_cache_dir, **subset), progress=False)
    ids = lambda data, part: set(data.molecules.ids[getattr(data.split, part)].tolist())  # noqa: E731
    assert ids(treated, "test") == ids(base, "test")
    assert not ids(treated, "test") & (ids(treated, "train") | ids(treated, "val"))
    # training and validation only shrink, within the base split's parts
    assert ids(treated, "train") <= ids(base, "train")
    assert ids(treated, "val") <= ids(base, "val")
    sizes = treated.molecules.sizes[treated.split.train]
    if "min_size" in subset:
        assert sizes.min() >= subset["min_size"]
        assert treated.molecules.sizes[treated.split.val].min() >= subset["min_size"]
    if "max_size" in subset:
        assert sizes.max() <= subset["max_size"]
    if "cap" in subset:
        counts = np.bincount(sizes)
        assert counts.max() <= subset["cap"]
        # a size below the cap keeps all its allowed training molecules
        base_sizes = base.molecules.sizes[base.split.train]
        allowed = (base_sizes >= subset.get("min_size", 0)) & \
            (base_sizes <= subset.get("max_size", 99))
        full = np.bincount(base_sizes[allowed], minlength=len(counts))
        small = full[: len(counts)] <= subset["cap"]
        assert (counts[small] == full[: len(counts)][small]).all()


@pytest.mark.parametrize("scheme", ["size", "size_frequency", "inverse_frequency"])
def test_loss_weights_come_from_the_treated_training_split(qm9_cache_dir, scheme):
    data = prepare(_config(qm9_cache_dir, min_size=13, max_size=23, cap=80), progress=False)
    sizes = data.molecules.sizes[data.split.train]
    v = weight_factors(sizes, sizes, scheme, rate=10.0, alpha=0.5)
    assert v.mean() == pytest.approx(1.0)
    if scheme == "size":  # v grows linearly from s_min = 13 to s_max = 23 before normalising
        raw = 1 + 10 * (sizes - 13) / 10
        assert np.allclose(v, raw / raw.mean())


def test_max_train_subsets_are_nested_and_keep_validation_and_test(qm9_cache_dir):
    """Learning curves train on growing subsets: each holds the smaller ones, and the
    validation and test molecules are the full split's whatever the size."""
    base = prepare(_config(qm9_cache_dir), progress=False)
    subsets = [prepare(_config(qm9_cache_dir, max_train=n), progress=False)
               for n in (100, 400, 1600)]
    ids = lambda data, part: set(data.molecules.ids[getattr(data.split, part)].tolist())  # noqa: E731
    trains = [ids(data, "train") for data in subsets]
    assert [len(t) for t in trains] == [100, 400, 1600]
    assert trains[0] < trains[1] < trains[2] < ids(base, "train")
    for data in subsets:
        assert ids(data, "val") == ids(base, "val") and ids(data, "test") == ids(base, "test")
    # not simply the split's first molecules: the subset is its own seeded draw
    assert trains[0] != set(base.molecules.ids[base.split.train[:100]].tolist())
    with pytest.raises(Exception, match="max_train must be at least 1"):
        _config(qm9_cache_dir, max_train=0)


def test_a_draw_per_seed_changes_training_molecules_and_keeps_the_test_set(qm9_cache_dir):
    def prepared(seed, **subset):
        config = _config(qm9_cache_dir, **subset)
        config.runtime.seed = seed
        return prepare(config, progress=False)

    ids = lambda data, part: set(data.molecules.ids[getattr(data.split, part)].tolist())  # noqa: E731
    fixed = [prepared(seed, cap=40) for seed in (0, 1)]
    drawn = [prepared(seed, cap=40, draw="seed") for seed in (0, 1, 0)]
    # the default draw: every training seed trains on the same molecules
    assert ids(fixed[0], "train") == ids(fixed[1], "train")
    # a draw per seed: other training (and validation) molecules, the same test molecules,
    # and the same draw again for the same seed
    assert ids(drawn[0], "train") != ids(drawn[1], "train")
    assert ids(drawn[0], "val") != ids(drawn[1], "val")
    assert ids(drawn[0], "train") == ids(drawn[2], "train")
    for data in drawn:
        assert ids(data, "test") == ids(fixed[0], "test")
        assert not ids(data, "test") & (ids(data, "train") | ids(data, "val"))
        assert np.bincount(data.molecules.sizes[data.split.train]).max() <= 40
    # train and val keep their sizes before the cap (only the draw changes)
    plain = [prepared(seed, draw="seed") for seed in (0, 1)]
    base = prepare(_config(qm9_cache_dir), progress=False)
    assert len(plain[0].split.train) == len(plain[1].split.train) == len(base.split.train)
    assert ids(plain[0], "train") | ids(plain[0], "val") == ids(plain[1], "train") | \
        ids(plain[1], "val")


def test_an_unknown_draw_is_refused_with_the_choices():
    config = TrainConfig()
    config.subset.draw = "replicate"
    with pytest.raises(MolstrataError, match="subset.draw must be one of split, seed"):
        config.validate()
