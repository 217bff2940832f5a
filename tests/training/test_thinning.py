"""Thinning one stratum (subset.thin, subset.thin_fraction) keeps every other training
molecule, the validation and the test molecules; fractions are nested; each training seed
draws its own thinned molecules; impossible settings are refused with the fix."""

from __future__ import annotations

import numpy as np
import pytest

from molstrata.errors import MolstrataError
from molstrata.training.config import TrainConfig
from molstrata.training.data import prepare


def _prepared(cache_dir, seed=0, **subset):
    config = TrainConfig()
    config.data.cache_dir = str(cache_dir)
    config.data.max_molecules = 4000
    config.runtime.seed = seed
    config.subset.draw = "seed"
    for key, value in subset.items():
        config.override("subset", key, value)
    return prepare(config.validate(), progress=False)


def _ids(data, part, where=None):
    rows = getattr(data.split, part)
    if where is not None:
        rows = rows[where(data.molecules, rows)]
    return set(data.molecules.ids[rows].tolist())


def _size(n):
    return lambda molecules, rows: molecules.sizes[rows] == n


def _has(symbol):
    return lambda molecules, rows: molecules.contains(symbol)[rows]


def _outside(inside):
    return lambda molecules, rows: ~inside(molecules, rows)


@pytest.mark.parametrize("stratum, inside", [("size:12", _size(12)), ("element:F", _has("F"))])
def test_thinning_keeps_everything_but_the_stratums_training_molecules(qm9_cache_dir, stratum,
                                                                       inside):
    for seed in (0, 1):
        full = _prepared(qm9_cache_dir, seed)
        arms = {f: _prepared(qm9_cache_dir, seed, thin=stratum, thin_fraction=f)
                for f in ((0.1, 0.5) if stratum.startswith("element") else (0.0, 0.25, 0.5))}
        own = _ids(full, "train", inside)
        assert len(own) >= 20
        for fraction, data in arms.items():
            assert _ids(data, "val") == _ids(full, "val")
            assert _ids(data, "test") == _ids(full, "test")
            assert _ids(data, "train", _outside(inside)) == _ids(full, "train", _outside(inside))
            kept = _ids(data, "train", inside)
            assert kept <= own and len(kept) == max(round(fraction * len(own)),
                                                    1 if fraction else 0)
        kept = [_ids(arms[f], "train", inside) for f in sorted(arms)]
        assert all(a <= b for a, b in zip(kept, kept[1:]))  # nested across fractions
    # each training seed thins other molecules (and splits train / val anew)
    half = [_ids(_prepared(qm9_cache_dir, s, thin=stratum, thin_fraction=0.5), "train", inside)
            for s in (0, 1)]
    assert half[0] != half[1]


def test_impossible_thinning_is_refused_with_the_fix():
    def refused(thin, fraction, match):
        config = TrainConfig()
        config.subset.thin, config.subset.thin_fraction = thin, fraction
        with pytest.raises(MolstrataError, match=match):
            config.validate()

    refused("element:F", 0.0, "thin it to a fraction > 0")
    refused(None, 0.5, "thin_fraction needs subset.thin")
    refused("size:12", 1.5, r"in \[0, 1\]")
    refused("atoms:12", 0.5, "size:N or element:X")
    refused("element:Xx", 0.5, "size:N or element:X")
    config = TrainConfig()
    config.subset.thin, config.subset.thin_fraction = "size:12", 0.0
    assert config.validate().subset.thinned == ("size", 12)
    assert np.isclose(TrainConfig().subset.thin_fraction, 1.0)
