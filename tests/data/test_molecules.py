import numpy as np
import pytest

from molstrata.data.molecules import Molecules, atomic_number
from molstrata.errors import MolstrataError


def _per_molecule(molecules):
    return [molecules.atoms_of(i) for i in range(len(molecules))]


def test_packed_layout(tiny_molecules):
    m = tiny_molecules
    assert m.offsets[0] == 0 and m.offsets[-1] == m.n_atoms_total == len(m.numbers)
    np.testing.assert_array_equal(m.sizes, np.diff(m.offsets))
    np.testing.assert_array_equal(np.bincount(m.atom_molecule), m.sizes)
    assert m.composition.sum() == m.n_atoms_total
    np.testing.assert_array_equal(m.composition.sum(axis=1), m.sizes)


@pytest.mark.parametrize("select", ["index", "mask", "reversed"])
def test_subset_gathers_the_same_atoms_as_a_loop(tiny_molecules, select):
    m = tiny_molecules
    rng = np.random.default_rng(1)
    if select == "index":
        index = rng.choice(len(m), size=12, replace=False)
    elif select == "mask":
        index = np.flatnonzero(rng.random(len(m)) < 0.5)
    else:
        index = np.arange(len(m))[::-1]
    chosen = m.subset(index if select != "mask" else np.isin(np.arange(len(m)), index))
    assert len(chosen) == len(index)
    for k, i in enumerate(index):
        z, r = chosen.atoms_of(k)
        z0, r0 = m.atoms_of(i)
        np.testing.assert_array_equal(z, z0)
        np.testing.assert_array_equal(r, r0)
    np.testing.assert_array_equal(chosen.ids, m.ids[index])
    np.testing.assert_array_equal(chosen.property("U0"), m.property("U0")[index])


def test_contiguous_slice_is_a_view(tiny_molecules):
    part = tiny_molecules.subset(slice(5, 9))
    assert np.shares_memory(part.positions, tiny_molecules.positions)
    assert len(part) == 4 and part.offsets[0] == 0
    np.testing.assert_array_equal(part.atoms_of(0)[1], tiny_molecules.atoms_of(5)[1])


def test_subset_rejects_out_of_range(tiny_molecules):
    with pytest.raises(IndexError):
        tiny_molecules.subset([len(tiny_molecules)])


def test_concatenate_undoes_a_partition(tiny_molecules):
    m = tiny_molecules
    joined = Molecules.concatenate([m.subset(slice(0, 10)), m.subset(np.arange(10, len(m)))])
    np.testing.assert_array_equal(joined.numbers, m.numbers)
    np.testing.assert_array_equal(joined.positions, m.positions)
    np.testing.assert_array_equal(joined.offsets, m.offsets)
    assert joined.fingerprint() == m.fingerprint()


def test_composition_contains_and_formulas():
    m = Molecules.from_lists(
        [[6, 1, 1, 1, 1], [8, 1, 1], [7, 1, 1, 1], [6, 6, 8, 1, 1, 1, 1]],
        [np.zeros((5, 3)), np.zeros((3, 3)), np.zeros((4, 3)), np.zeros((7, 3))],
    )
    np.testing.assert_array_equal(m.elements, [1, 6, 7, 8])
    np.testing.assert_array_equal(m.composition[3], [4, 2, 0, 1])
    np.testing.assert_array_equal(m.contains("O"), [False, True, False, True])
    np.testing.assert_array_equal(m.contains("F"), [False] * 4)
    assert m.formulas().tolist() == ["CH4", "H2O", "H3N", "C2H4O"]


def test_property_units_and_errors(tiny_molecules):
    ev = tiny_molecules.property("U0")
    np.testing.assert_allclose(tiny_molecules.property("U0", "meV"), 1000 * ev)
    with pytest.raises(MolstrataError, match="unknown property 'gap'; this dataset has: U0"):
        tiny_molecules.property("gap")
    extra = tiny_molecules.with_property("gap", np.ones(len(tiny_molecules)), "Hartree")
    assert extra.units["gap"] == "Hartree" and "gap" not in tiny_molecules.properties


def test_rows_of_ids(tiny_molecules):
    rows = np.array([3, 0, 17])
    np.testing.assert_array_equal(tiny_molecules.rows_of_ids(tiny_molecules.ids[rows]), rows)
    with pytest.raises(MolstrataError, match="not in this dataset"):
        tiny_molecules.rows_of_ids([-5])


def test_fingerprint_sees_a_moved_atom(tiny_molecules):
    before = tiny_molecules.fingerprint()
    moved = tiny_molecules.positions.copy()
    moved[4, 2] += 1e-9
    other = Molecules(tiny_molecules.numbers, moved, tiny_molecules.offsets, tiny_molecules.ids,
                      tiny_molecules.properties, tiny_molecules.units)
    assert other.fingerprint() != before


def test_inconsistent_arrays_are_rejected():
    with pytest.raises(ValueError, match="offsets"):
        Molecules(np.ones(3, np.uint8), np.zeros((3, 3)), np.array([0, 2]), np.arange(1))
    with pytest.raises(ValueError, match="without a unit"):
        Molecules(np.ones(3, np.uint8), np.zeros((3, 3)), np.array([0, 3]), np.arange(1),
                  {"U0": np.zeros(1)})


def test_unknown_element_symbol():
    with pytest.raises(MolstrataError, match="unknown element 'Xx'"):
        atomic_number("Xx")
