"""Filters by size and element on `tiny_molecules` (hand counts in tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from molstrata.data.filters import apply_filters, describe_filters, filter_mask
from molstrata.data.molecules import element_symbol
from molstrata.errors import MolstrataError


def symbols_of(molecules, row):
    return {element_symbol(z) for z in molecules.atoms_of(row)[0]}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, 34),
        ({"min_size": 5}, 12 + 8 + 6 + 1),
        ({"max_size": 4}, 4 + 3),
        ({"min_size": 5, "max_size": 9}, 12 + 8),
        ({"min_size": 9, "max_size": 9}, 8),
        ({"contains": ["F"]}, 3),
        ({"contains": "F"}, 3),
        ({"contains": ["f"]}, 3),
        ({"contains": ["N", "O"]}, 1),
        ({"excludes": ["C"]}, 4 + 3),
        ({"contains": ["O"], "excludes": ["C"]}, 4),
        ({"min_size": 9, "contains": ["N"]}, 6 + 1),
        ({"excludes": ["F", "N"]}, 34 - 12),
        ({"min_size": 5, "max_size": 13, "excludes": ["F"]}, 10 + 8 + 6),
        ({"contains": ["S"]}, 0),
        ({"excludes": ["S"]}, 34),
    ],
)
def test_filter_mask_counts(tiny_molecules, options, expected):
    mask = filter_mask(tiny_molecules, **options)
    assert mask.dtype == bool and mask.shape == (34,)
    assert mask.sum() == expected


def test_filter_mask_selects_exactly_the_matching_molecules(tiny_molecules):
    mask = filter_mask(tiny_molecules, min_size=4, max_size=13, contains=["C"], excludes=["O"])
    expected = [
        4 <= tiny_molecules.sizes[i] <= 13
        and "C" in symbols_of(tiny_molecules, i)
        and "O" not in symbols_of(tiny_molecules, i)
        for i in range(34)
    ]
    assert mask.tolist() == expected
    assert mask.sum() == 12 + 6


def test_apply_filters_returns_the_selected_molecules(tiny_molecules):
    kept = apply_filters(tiny_molecules, min_size=13)
    mask = tiny_molecules.sizes >= 13
    assert len(kept) == 7
    assert kept.ids.tolist() == tiny_molecules.ids[mask].tolist()
    assert np.all(kept.sizes >= 13)
    np.testing.assert_array_equal(kept.property("U0"), tiny_molecules.property("U0")[mask])


def test_apply_filters_without_effect_keeps_everything(tiny_molecules):
    kept = apply_filters(tiny_molecules, max_size=29)
    assert kept.ids.tolist() == tiny_molecules.ids.tolist()


def test_apply_filters_names_the_filters_when_nothing_is_left(tiny_molecules):
    with pytest.raises(MolstrataError) as error:
        apply_filters(tiny_molecules, min_size=30, max_size=40, contains=["F"])
    assert str(error.value) == (
        "no molecule left after filters (size 30..40, contains F) out of 34 molecules; "
        "relax the filters"
    )


def test_describe_filters():
    assert describe_filters() == "none"
    assert describe_filters(min_size=18) == "size >= 18"
    assert describe_filters(max_size=12) == "size <= 12"
    assert describe_filters(contains=["o", "N"], excludes="F") == "contains O, N, excludes F"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"contains": ["Xx"]}, "unknown element 'Xx'"),
        ({"excludes": ["Q"]}, "unknown element 'Q'"),
        ({"min_size": 20, "max_size": 10}, "min_size 20 is larger than max_size 10"),
        ({"min_size": 2.5}, "min_size must be a whole number"),
        ({"max_size": "9"}, "max_size must be a whole number"),
        ({"contains": ["F"], "excludes": ["f"]}, "element F is both required"),
    ],
)
def test_bad_filters_are_user_errors(tiny_molecules, options, message):
    with pytest.raises(MolstrataError, match=message):
        filter_mask(tiny_molecules, **options)
    with pytest.raises(MolstrataError, match=message):
        apply_filters(tiny_molecules, **options)
