"""Random splits, restriction to a subset, and saving / loading splits by molecule id."""

from __future__ import annotations

import json

import numpy as np
import pytest

from molstrata.data.splits import Split, load_split, random_split, restrict, save_split
from molstrata.errors import MolstrataError


def assert_disjoint_and_sorted(split: Split) -> None:
    for rows in split:
        assert np.all(np.diff(rows) > 0)
    everything = np.concatenate(list(split))
    assert len(np.unique(everything)) == len(everything)


# ---- random_split -----------------------------------------------------------------------


def test_fractions_give_disjoint_covering_parts():
    split = random_split(100, fractions=(0.8, 0.1, 0.1), seed=0)
    assert split.counts() == {"train": 80, "val": 10, "test": 10}
    assert_disjoint_and_sorted(split)
    assert split.rows().tolist() == list(range(100))


def test_the_last_part_takes_the_remainder():
    split = random_split(15, fractions=(0.8, 0.1, 0.1))
    assert split.counts() == {"train": 12, "val": 1, "test": 2}
    assert split.rows().tolist() == list(range(15))


def test_fractions_are_not_lost_to_floating_point():
    # 0.29 * 100 is 28.999999999999996 and 0.7 * 10 is 7.000000000000001
    assert random_split(100, fractions=(0.29, 0.71)).counts()["train"] == 29
    assert random_split(10, fractions=(0.7, 0.2, 0.1)).counts() == {
        "train": 7,
        "val": 2,
        "test": 1,
    }


@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.7, 0.2, 0.1), (1 / 3,) * 3, (0.8, 0.2)])
def test_fractions_summing_to_one_always_cover(fractions):
    for n in range(0, 120):
        split = random_split(n, fractions=fractions, seed=n)
        assert split.rows().tolist() == list(range(n)), n
        counts = list(split.counts().values())[: len(fractions) - 1]
        for count, fraction in zip(counts, fractions):
            assert abs(count - fraction * n) < 1


def test_fractions_below_one_leave_molecules_out():
    split = random_split(10, fractions=(0.5, 0.2), seed=2)
    assert split.counts() == {"train": 5, "val": 2, "test": 0}
    assert_disjoint_and_sorted(split)


def test_two_fractions_leave_the_test_part_empty():
    split = random_split(50, fractions=(0.8, 0.2), seed=0)
    assert split.counts() == {"train": 40, "val": 10, "test": 0}
    assert split.rows().tolist() == list(range(50))


def test_counts_are_respected():
    split = random_split(20, counts=(5, 3, 2), seed=4)
    assert split.counts() == {"train": 5, "val": 3, "test": 2}
    assert_disjoint_and_sorted(split)
    assert split.rows().max() < 20


def test_same_seed_same_split_other_seed_other_split():
    first = random_split(200, fractions=(0.8, 0.1, 0.1), seed=0)
    assert first == random_split(200, fractions=(0.8, 0.1, 0.1), seed=0)
    other = random_split(200, fractions=(0.8, 0.1, 0.1), seed=1)
    assert other != first
    assert not np.array_equal(first.test, other.test)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "either as fractions .* or as counts, not both or neither"),
        ({"fractions": (0.5, 0.5), "counts": (5, 5)}, "not both or neither"),
        ({"fractions": (0.9, -0.1, 0.2)}, "fractions must each be between 0 and 1"),
        ({"fractions": (0.8, 0.2, 0.1)}, "fractions sum to 1.1, more than 1"),
        ({"fractions": (0.8,)}, "fractions must be 2 or 3 numbers"),
        ({"fractions": (0.5, 0.2, 0.2, 0.1)}, "fractions must be 2 or 3 numbers"),
        ({"fractions": (0.5, float("nan"))}, "fractions must each be between 0 and 1"),
        ({"counts": (8, 2, 1)}, "counts sum to 11, more than the 10 molecules"),
        ({"counts": (8, -1)}, "counts must each be 0 or more"),
        ({"counts": (5.0, 5.0)}, "counts must be 2 or 3 numbers"),
    ],
)
def test_impossible_splits_are_user_errors(options, message):
    with pytest.raises(MolstrataError, match=message):
        random_split(10, **options)


def test_negative_number_of_molecules_is_an_error():
    with pytest.raises(MolstrataError, match="n_molecules must be a whole number"):
        random_split(-1, fractions=(0.8, 0.2))


# ---- Split ------------------------------------------------------------------------------


def test_split_helpers():
    split = Split([4, 1], np.array([2]), [])
    assert Split.names() == ("train", "val", "test")
    train, val, test = split
    assert train.dtype == np.int64 and train.tolist() == [4, 1]
    assert [name for name, _ in split.items()] == ["train", "val", "test"]
    assert split.counts() == {"train": 2, "val": 1, "test": 0}
    assert split.rows().tolist() == [1, 2, 4]
    assert repr(split) == "Split(train=2, val=1, test=0)"
    assert split == Split([4, 1], [2], [])
    assert split != Split([4, 1], [], [2])
    with pytest.raises(ValueError):
        split.train[0] = 7


# ---- restrict ---------------------------------------------------------------------------


def test_restrict_keeps_only_selected_rows_in_every_part():
    split = random_split(100, fractions=(0.6, 0.2, 0.2), seed=0)
    even = np.arange(100) % 2 == 0
    restricted = restrict(split, even)
    for before, after in zip(split, restricted):
        assert after.tolist() == [r for r in before.tolist() if r % 2 == 0]
    assert restrict(split, np.flatnonzero(even)) == restricted


def test_restrict_can_leave_the_test_set_untouched():
    split = random_split(100, fractions=(0.6, 0.2, 0.2), seed=0)
    selection = np.arange(0, 100, 3)
    restricted = restrict(split, selection, parts=("train", "val"))
    assert np.array_equal(restricted.test, split.test)
    assert set(restricted.train.tolist()) == set(split.train.tolist()) & set(selection.tolist())
    assert set(restricted.val.tolist()) <= set(selection.tolist())
    assert len(restricted.train) < len(split.train)


def test_restrict_to_an_undersampled_set(tiny_molecules):
    from molstrata.data.sampling import undersample_per_size

    split = random_split(len(tiny_molecules), fractions=(0.7, 0.3), seed=1)
    kept = undersample_per_size(tiny_molecules.sizes, cap=2, seed=0)
    restricted = restrict(split, kept, parts=("train",))
    assert set(restricted.train.tolist()) <= set(kept.tolist())
    assert np.all(np.unique(tiny_molecules.sizes[restricted.train], return_counts=True)[1] <= 2)
    assert restricted.val.tolist() == split.val.tolist()


def test_restrict_rejects_unknown_parts_and_short_masks():
    split = random_split(10, fractions=(0.5, 0.5))
    with pytest.raises(MolstrataError, match="unknown split part 'validation'"):
        restrict(split, [1, 2], parts=("validation",))
    with pytest.raises(ValueError, match="mask covers 5 rows"):
        restrict(split, np.ones(5, dtype=bool))


# ---- save_split / load_split ------------------------------------------------------------


@pytest.fixture
def saved(tmp_path, tiny_molecules):
    """A split of tiny_molecules saved to a file: (split, path)."""
    split = random_split(len(tiny_molecules), fractions=(0.6, 0.2, 0.2), seed=3)
    path = tmp_path / "splits" / "split.json"
    save_split(split, path, tiny_molecules, seed=3, fractions=(0.6, 0.2, 0.2))
    return split, path


def test_save_writes_ids_fingerprint_and_metadata(saved, tiny_molecules):
    split, path = saved
    document = json.loads(path.read_text())
    assert document["format"] == "molstrata-split"
    assert document["version"] == 1
    assert document["fingerprint"] == tiny_molecules.fingerprint()
    assert document["n_molecules"] == 34
    assert document["metadata"] == {"seed": 3, "fractions": [0.6, 0.2, 0.2]}
    for name, rows in split.items():
        assert document["parts"][name] == tiny_molecules.ids[rows].tolist()
    assert sorted(p.name for p in path.parent.iterdir()) == ["split.json"]


def test_save_load_round_trip(saved, tiny_molecules):
    split, path = saved
    assert load_split(path, tiny_molecules) == split


def test_save_accepts_numpy_metadata(tmp_path, tiny_molecules):
    split = random_split(34, fractions=(0.5, 0.5))
    path = tmp_path / "split.json"
    save_split(split, path, tiny_molecules, seed=np.int64(2), fractions=np.array([0.5, 0.5]))
    assert json.loads(path.read_text())["metadata"] == {"seed": 2, "fractions": [0.5, 0.5]}


def test_a_failed_save_leaves_the_old_file(saved, tiny_molecules):
    split, path = saved
    before = path.read_text()
    with pytest.raises(TypeError, match="cannot store object"):
        save_split(split, path, tiny_molecules, note=object())
    assert path.read_text() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["split.json"]


def test_a_split_follows_its_molecules_through_reordering(saved, tiny_molecules):
    split, path = saved
    permutation = np.random.default_rng(0).permutation(34)
    reordered = tiny_molecules.subset(permutation)
    with pytest.raises(MolstrataError, match="made for another dataset.*allow_other_dataset=True"):
        load_split(path, reordered)
    loaded = load_split(path, reordered, allow_other_dataset=True)
    assert_disjoint_and_sorted(loaded)
    for before, after in zip(split, loaded):
        assert sorted(reordered.ids[after].tolist()) == sorted(tiny_molecules.ids[before].tolist())


def test_loading_into_data_without_the_ids_fails(saved, tiny_molecules):
    _, path = saved
    fewer = tiny_molecules.subset(slice(0, 10))
    with pytest.raises(MolstrataError, match=r"split file .*split\.json: molecule ids .* not in"):
        load_split(path, fewer, allow_other_dataset=True)


def rewrite(path, change):
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="something-else"), "is not a molstrata split file"),
        (lambda d: d.update(version=2), r"has format version 2, newer than molstrata .* reads"),
        (lambda d: d["parts"].pop("val"), "is damaged"),
        (lambda d: d["parts"].update(test=["a"]), "is damaged"),
        (lambda d: d.pop("fingerprint"), "is damaged"),
        (
            lambda d: d["parts"]["test"].append(d["parts"]["train"][0]),
            "in more than one part",
        ),
    ],
)
def test_bad_split_files_are_user_errors(saved, tiny_molecules, change, message):
    _, path = saved
    rewrite(path, change)
    with pytest.raises(MolstrataError, match=message):
        load_split(path, tiny_molecules)


def test_missing_and_non_json_files_are_user_errors(tmp_path, tiny_molecules):
    with pytest.raises(MolstrataError, match="nothing.json does not exist"):
        load_split(tmp_path / "nothing.json", tiny_molecules)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("train: 1, 2, 3")
    with pytest.raises(MolstrataError, match="garbage.json is not valid JSON"):
        load_split(garbage, tiny_molecules)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2, 3]")
    with pytest.raises(MolstrataError, match="is not a molstrata split file"):
        load_split(listing, tiny_molecules)
