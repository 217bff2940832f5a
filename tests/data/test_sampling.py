"""Per-size undersampling: caps respected, small sizes whole, seeded, unbiased."""

from __future__ import annotations

import numpy as np
import pytest

from molstrata.data.sampling import undersample, undersample_per_size
from molstrata.errors import MolstrataError

COUNTS = {3: 2, 5: 50, 9: 10, 13: 200}


@pytest.fixture
def sizes() -> np.ndarray:
    """262 molecule sizes (COUNTS) in shuffled order."""
    values = np.repeat(list(COUNTS), list(COUNTS.values()))
    return np.random.default_rng(1).permutation(values)


def test_every_size_is_capped_and_small_sizes_stay_whole(sizes):
    kept = undersample_per_size(sizes, cap=10, seed=0)
    assert np.all(np.diff(kept) > 0)
    assert dict(zip(*np.unique(sizes[kept], return_counts=True))) == {3: 2, 5: 10, 9: 10, 13: 10}
    for small in (3, 9):
        assert set(np.flatnonzero(sizes == small)) <= set(kept.tolist())


def test_a_cap_above_every_size_keeps_everything(sizes):
    assert undersample_per_size(sizes, cap=200).tolist() == list(range(len(sizes)))


def test_cap_of_one_keeps_one_molecule_per_size(sizes):
    kept = undersample_per_size(sizes, cap=1, seed=3)
    assert sorted(sizes[kept].tolist()) == [3, 5, 9, 13]


def test_same_seed_same_rows_other_seed_other_rows(sizes):
    first = undersample_per_size(sizes, cap=10, seed=0)
    assert np.array_equal(first, undersample_per_size(sizes, cap=10, seed=0))
    other = undersample_per_size(sizes, cap=10, seed=1)
    assert len(other) == len(first)
    assert not np.array_equal(first, other)


def test_result_ignores_numpy_global_random_state(sizes):
    np.random.seed(0)
    first = undersample_per_size(sizes, cap=10, seed=5)
    np.random.seed(123)
    np.random.random(17)
    assert np.array_equal(first, undersample_per_size(sizes, cap=10, seed=5))


def test_every_molecule_of_a_capped_size_is_equally_likely(sizes):
    # 50 molecules of size 5, cap 10: each should be kept in about 20 % of the seeds
    rows = np.flatnonzero(sizes == 5)
    kept = np.zeros(len(sizes))
    n_seeds = 400
    for seed in range(n_seeds):
        kept[undersample_per_size(sizes, cap=10, seed=seed)] += 1
    rate = kept[rows] / n_seeds
    assert np.all(np.abs(rate - 0.2) < 0.1)  # binomial sd is 0.02
    assert np.all(kept[sizes == 3] == n_seeds)


def test_empty_sizes_give_no_rows():
    assert undersample_per_size(np.zeros(0, dtype=np.int64), cap=5).tolist() == []


@pytest.mark.parametrize("cap", [0, -3, 2.5, True, "10"])
def test_cap_must_be_a_positive_whole_number(sizes, cap):
    with pytest.raises(MolstrataError, match="cap must be at least 1"):
        undersample_per_size(sizes, cap=cap)


def test_undersample_molecules(tiny_molecules):
    kept = undersample(tiny_molecules, cap=5, seed=0)
    sizes, counts = np.unique(kept.sizes, return_counts=True)
    # tiny_molecules: sizes 3, 4, 5, 9, 13, 20 hold 4, 3, 12, 8, 6, 1
    assert dict(zip(sizes.tolist(), counts.tolist())) == {3: 4, 4: 3, 5: 5, 9: 5, 13: 5, 20: 1}
    rows = undersample_per_size(tiny_molecules.sizes, cap=5, seed=0)
    assert kept.ids.tolist() == tiny_molecules.ids[rows].tolist()
