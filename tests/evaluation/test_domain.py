"""Domain-of-applicability flags against a hand-made training domain."""

from __future__ import annotations

import numpy as np
import pytest

from molstrata.data.molecules import Molecules, atomic_number
from molstrata.errors import MolstrataError
from molstrata.evaluation.domain import (
    applicability,
    domain_document,
    domain_from_document,
    size_range,
    summary_text,
)
from molstrata.evaluation.stratified import TrainingCounts

# 1,000 training molecules of 5-9 atoms; size 6 is rare (40), F is rare (30, all of size 9),
# and size 8 holds only 7 molecules with N.
DOMAIN = TrainingCounts(
    n_molecules=1000,
    sizes={5: 300, 6: 40, 7: 260, 8: 200, 9: 200},
    elements={"H": 1000, "C": 1000, "N": 300, "O": 500, "F": 30},
    size_elements={(5, "H"): 300, (5, "C"): 300, (5, "N"): 150, (5, "O"): 150,
                   (6, "H"): 40, (6, "C"): 40, (6, "N"): 10,
                   (7, "H"): 260, (7, "C"): 260, (7, "N"): 120, (7, "O"): 200,
                   (8, "H"): 200, (8, "C"): 200, (8, "N"): 7, (8, "O"): 150,
                   (9, "H"): 200, (9, "C"): 200, (9, "N"): 13, (9, "O"): 150, (9, "F"): 30},
)


def molecules(*formulas: str) -> Molecules:
    """Molecules of the given element lists ('CHHHH'), atoms 1.1 Å apart on a line."""
    numbers = [[atomic_number(s) for s in _symbols(f)] for f in formulas]
    positions = [np.arange(len(z))[:, None] * np.array([1.1, 0.0, 0.0]) for z in numbers]
    return Molecules.from_lists(numbers, positions)


def _symbols(formula: str) -> list[str]:
    out = []
    for char in formula:
        if char.islower():
            out[-1] += char
        else:
            out.append(char)
    return out


def test_each_way_out_of_the_domain_has_its_flag():
    result = applicability(molecules(
        "CHHHH",            # 5 atoms, common: inside
        "CHHHHH",           # 6 atoms: rare size (40)
        "CCHHHHHHHHH",      # 11 atoms: larger than any training molecule
        "CHHH",             # 4 atoms: smaller than any
        "CCHHHHHNF",        # 9 atoms with F: rare element, and N at size 9 is a rare cell
        "CHHHCl",           # Cl never seen: not predicted
        "CHHHHHNO",         # 8 atoms with N: rare cell 8xN (7); O at size 8 is common
        "CHHHOg",           # element 118, beyond any model's table: not predicted
    ), DOMAIN, min_stratum=100)
    assert result.flags == [
        (),
        ("rare_size:6(40)",),
        ("size_outside_training:11",),
        ("size_outside_training:4",),
        ("rare_element:F(30)", "rare_size_element:9xN(13)", "rare_size_element:9xF(30)"),
        ("unseen_element:Cl",),
        ("rare_size_element:8xN(7)",),
        ("unseen_element:Og",),
    ]
    assert result.predictable.tolist() == [True] * 5 + [False, True, False]
    assert result.counts() == {"unseen_element": 2, "size_outside_training": 2, "rare_size": 1,
                               "rare_element": 1, "rare_size_element": 2}
    line = summary_text(result, (5, 9), 100)
    assert line.startswith("domain of applicability: 7 of 8 structures flagged: 2 element never "
                           "seen in training (not predicted), 2 size outside the training "
                           "range 5-9, 1 rare size")
    assert "\n" not in line


def test_the_threshold_decides_what_is_rare():
    batch = molecules("CHHHHH", "CCHHHHHNF", "CHHHHHNO", "CHHHCl", "CHHH")
    result = applicability(batch, DOMAIN, min_stratum=0)
    assert result.flags == [(), (), (), ("unseen_element:Cl",), ("size_outside_training:4",)]
    strict = applicability(batch, DOMAIN, min_stratum=301)
    assert strict.flags[3] == ("unseen_element:Cl", "rare_size:5(300)")
    with pytest.raises(MolstrataError, match="^min_stratum must be"):
        applicability(batch, DOMAIN, min_stratum=-1)


def test_an_ensemble_carries_the_flags_of_every_member():
    other = TrainingCounts(n_molecules=500, sizes={6: 500}, elements={"H": 500, "C": 500,
                           "Cl": 500}, size_elements={(6, "H"): 500, (6, "C"): 500,
                                                      (6, "Cl"): 500})
    result = applicability(molecules("CHHHHH", "CHHHHCl"), [DOMAIN, other], min_stratum=100)
    assert result.flags[0] == ("rare_size:6(40)",)
    assert result.flags[1] == ("unseen_element:Cl", "rare_size:6(40)")
    assert result.predictable.tolist() == [True, False]


def test_the_domain_document_round_trips():
    assert domain_from_document(domain_document(DOMAIN)) == DOMAIN


def test_an_ensembles_training_range_is_the_union_of_its_members():
    # one member saw 5-9 atoms, the other 4-7: together they cover 4-9
    small = TrainingCounts(n_molecules=600, sizes={4: 300, 7: 300},
                           elements={"H": 600, "C": 600},
                           size_elements={(4, "H"): 300, (4, "C"): 300, (7, "H"): 300,
                                          (7, "C"): 300})
    assert size_range([DOMAIN, small]) == (4, 9) and size_range(DOMAIN) == (5, 9)
    result = applicability(molecules("CHHH", "CCCHHHHHHHH"), [DOMAIN, small], min_stratum=100)
    # 4 atoms: inside the ensemble's range, but the first member never saw it (0 molecules)
    assert result.flags[0] == ("rare_size:4(0)",)
    assert result.flags[1] == ("size_outside_training:11",)
    line = summary_text(result, size_range([DOMAIN, small]), 100)
    assert "1 size outside the training range 4-9" in line


def test_periodic_structures_are_flagged_where_they_stand():
    result = applicability(molecules("CHHHH", "CHHHCl"), DOMAIN, min_stratum=100)
    spread = result.with_periodic(np.array([True, False, True, False]))
    assert spread.flags == [("periodic",), (), ("periodic",), ("unseen_element:Cl",)]
    assert spread.predictable.tolist() == [False, True, False, False]
    assert spread.counts() == {"periodic": 2, "unseen_element": 1}
    assert summary_text(spread, (5, 9), 100).startswith(
        "domain of applicability: 3 of 4 structures flagged: 2 periodic (not predicted), 1 "
        "element never seen in training")
