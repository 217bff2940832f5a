import numpy as np
import pytest

from molstrata.errors import MolstrataError
from molstrata.units import HARTREE_TO_EV, canonical_unit, conversion_factor, convert, internal_unit


def test_hartree_to_ev_is_the_codata_factor():
    assert convert(-40.47893, "Hartree", "eV") == pytest.approx(-40.47893 * 27.211386245988)
    assert HARTREE_TO_EV == 27.211386245988


def test_conversions_between_energy_units():
    assert conversion_factor("eV", "meV") == pytest.approx(1000.0)
    assert conversion_factor("kcal/mol", "eV") == pytest.approx(0.0433641, rel=1e-5)
    assert conversion_factor("Bohr**3", "Angstrom**3") == pytest.approx(0.529177210903**3)
    np.testing.assert_allclose(convert([1.0, 2.0], "Ha", "Hartree"), [1.0, 2.0])


def test_aliases_from_other_tools():
    assert canonical_unit("a0 a0 a0") == "Bohr**3"
    assert canonical_unit("hartree") == "Hartree"
    assert internal_unit("kcal/mol") == "eV"
    assert internal_unit("Bohr") == "Angstrom"


def test_unknown_unit_names_the_known_ones():
    with pytest.raises(MolstrataError, match=r"unknown unit 'furlong'.*eV"):
        canonical_unit("furlong")


def test_units_of_other_dimensions_do_not_convert():
    with pytest.raises(MolstrataError, match=r"cannot convert 'GHz' \(frequency\) to 'eV'"):
        convert(1.0, "GHz", "eV")
