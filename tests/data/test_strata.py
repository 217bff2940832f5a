"""Strata by size, element and both, checked against hand counts of `tiny_molecules`."""

from __future__ import annotations

import numpy as np
import pytest

from molstrata.data.molecules import Molecules, element_symbol
from molstrata.data.strata import (
    StratumCount,
    count_strata,
    element_frequency,
    element_strata,
    reportable_sizes,
    size_element_share,
    size_element_strata,
    size_histogram,
    size_strata,
    stratum_label,
)
from molstrata.errors import MolstrataError

# Hand counts of tiny_molecules (tests/conftest.py): 34 molecules.
SIZE_COUNTS = {3: 4, 4: 3, 5: 12, 9: 8, 13: 6, 20: 1}
ELEMENT_COUNTS = {"H": 34, "C": 27, "N": 10, "O": 13, "F": 3}
SIZE_ELEMENT_COUNTS = {
    (3, "H"): 4, (3, "O"): 4,
    (4, "H"): 3, (4, "N"): 3,
    (5, "H"): 12, (5, "C"): 12, (5, "F"): 2,
    (9, "H"): 8, (9, "C"): 8, (9, "O"): 8,
    (13, "H"): 6, (13, "C"): 6, (13, "N"): 6,
    (20, "H"): 1, (20, "C"): 1, (20, "N"): 1, (20, "O"): 1, (20, "F"): 1,
}  # fmt: skip
# share of molecules of each size holding H, C, N, O, F
SHARE = np.array(
    [
        [1, 0, 0, 1, 0],
        [1, 0, 1, 0, 0],
        [1, 1, 0, 0, 2 / 12],
        [1, 1, 0, 1, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1],
    ]
)


def elements_of(molecules: Molecules, row: int) -> set[str]:
    """The element symbols of one molecule, the slow obvious way."""
    numbers, _ = molecules.atoms_of(row)
    return {element_symbol(z) for z in numbers}


def test_size_strata_partition_the_molecules_by_size(tiny_molecules):
    strata = size_strata(tiny_molecules)
    assert list(strata) == [3, 4, 5, 9, 13, 20]
    assert {s: len(rows) for s, rows in strata.items()} == SIZE_COUNTS
    for size, rows in strata.items():
        assert np.all(np.diff(rows) > 0)
        assert np.all(tiny_molecules.sizes[rows] == size)
    assert np.array_equal(np.sort(np.concatenate(list(strata.values()))), np.arange(34))


def test_element_strata_hold_exactly_the_molecules_with_that_element(tiny_molecules):
    strata = element_strata(tiny_molecules)
    assert list(strata) == ["H", "C", "N", "O", "F"]
    assert {e: len(rows) for e, rows in strata.items()} == ELEMENT_COUNTS
    for symbol, rows in strata.items():
        expected = [i for i in range(34) if symbol in elements_of(tiny_molecules, i)]
        assert rows.tolist() == expected


def test_size_element_strata_are_the_non_empty_intersections(tiny_molecules):
    strata = size_element_strata(tiny_molecules)
    assert list(strata) == list(SIZE_ELEMENT_COUNTS)
    assert {k: len(rows) for k, rows in strata.items()} == SIZE_ELEMENT_COUNTS
    sizes, elements = size_strata(tiny_molecules), element_strata(tiny_molecules)
    for (size, symbol), rows in strata.items():
        assert rows.tolist() == np.intersect1d(sizes[size], elements[symbol]).tolist()


def test_count_strata_gives_counts_shares_and_labels(tiny_molecules):
    counts = count_strata(size_strata(tiny_molecules), len(tiny_molecules))
    assert [c.key for c in counts] == [3, 4, 5, 9, 13, 20]
    assert [c.count for c in counts] == [4, 3, 12, 8, 6, 1]
    assert [c.share for c in counts] == pytest.approx(
        [4 / 34, 3 / 34, 12 / 34, 8 / 34, 6 / 34, 1 / 34]
    )
    assert counts[2] == StratumCount(5, "5 atoms", 12, 12 / 34)
    pair = count_strata({(5, "F"): np.array([1, 2])}, 12)
    assert pair == [StratumCount((5, "F"), "5 atoms with F", 2, 2 / 12)]


def test_count_strata_refuses_a_stratum_larger_than_the_total():
    with pytest.raises(ValueError, match="more than 2"):
        count_strata({5: np.arange(3)}, 2)


def test_stratum_labels():
    assert stratum_label(1) == "1 atom"
    assert stratum_label(np.int64(18)) == "18 atoms"
    assert stratum_label("F") == "with F"
    assert stratum_label((18, "F")) == "18 atoms with F"


def test_size_histogram(tiny_molecules):
    sizes, counts = size_histogram(tiny_molecules)
    assert sizes.tolist() == list(SIZE_COUNTS)
    assert counts.tolist() == list(SIZE_COUNTS.values())


def test_element_frequency_is_the_share_of_molecules_holding_each_element(tiny_molecules):
    frequency = element_frequency(tiny_molecules)
    assert [(f.key, f.label, f.count) for f in frequency] == [
        ("H", "with H", 34),
        ("C", "with C", 27),
        ("N", "with N", 10),
        ("O", "with O", 13),
        ("F", "with F", 3),
    ]
    assert [f.share for f in frequency] == pytest.approx([1, 27 / 34, 10 / 34, 13 / 34, 3 / 34])


def test_size_element_share_matches_the_hand_computed_heatmap(tiny_molecules):
    sizes, symbols, share = size_element_share(tiny_molecules)
    assert sizes.tolist() == [3, 4, 5, 9, 13, 20]
    assert symbols == ["H", "C", "N", "O", "F"]
    assert share.shape == (6, 5)
    np.testing.assert_allclose(share, SHARE)


def test_reportable_sizes_keep_sizes_with_at_least_the_share(tiny_molecules):
    assert reportable_sizes(tiny_molecules).tolist() == [3, 4, 5, 9, 13, 20]
    assert reportable_sizes(tiny_molecules, 0.1).tolist() == [3, 5, 9, 13]
    # the threshold is inclusive: size 4 holds exactly 3 / 34
    assert reportable_sizes(tiny_molecules, 3 / 34).tolist() == [3, 4, 5, 9, 13]
    assert reportable_sizes(tiny_molecules, 0.5).tolist() == []


def test_reportable_sizes_is_exact_at_a_decimal_threshold():
    # 7 of 100 molecules is 7 %; 0.07 * 100 is 7.000000000000001 in floating point
    molecules = Molecules.from_lists(
        [[1] * 2] * 7 + [[1] * 3] * 93, [np.zeros((2, 3))] * 7 + [np.zeros((3, 3))] * 93
    )
    assert reportable_sizes(molecules, 0.07).tolist() == [2, 3]


def test_reportable_sizes_rejects_a_share_outside_0_1(tiny_molecules):
    with pytest.raises(MolstrataError, match="min_share must be between 0 and 1"):
        reportable_sizes(tiny_molecules, 1.5)


def test_an_empty_collection_has_no_strata():
    empty = Molecules.from_lists([], [])
    assert size_strata(empty) == {}
    assert element_strata(empty) == {}
    assert size_element_strata(empty) == {}
    assert element_frequency(empty) == []
    assert reportable_sizes(empty).tolist() == []
    sizes, symbols, share = size_element_share(empty)
    assert (len(sizes), symbols, share.shape) == (0, [], (0, 0))
