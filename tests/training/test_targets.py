import numpy as np
import pytest

from molstrata.errors import MolstrataError
from molstrata.training.targets import check_finite, fit_standardization


def test_reference_energies_are_recovered(qm9):
    """On real QM9 compositions, y = Σ n_Z e_Z + small noise gives back e_Z."""
    train = qm9.subset(slice(0, 3000))
    e = {1: -13.6, 6: -1030.0, 7: -1485.0, 8: -2043.0, 9: -2715.0}
    rng = np.random.default_rng(0)
    exact = np.array([sum(e[z] for z in train.atoms_of(m)[0]) for m in range(len(train))])
    values = exact + rng.normal(scale=0.01, size=len(train)) * train.sizes
    fit = fit_standardization(train, values, extensive=True)
    for z, ref in e.items():
        assert fit.atomrefs[z] == pytest.approx(ref, abs=0.02)
    residual_per_atom = (values - fit.reference(train)) / train.sizes
    assert fit.shift == pytest.approx(residual_per_atom.mean())
    assert fit.scale == pytest.approx(residual_per_atom.std())
    assert fit.scale < 0.02


def test_real_u0_linear_baseline_is_under_1_ev(qm9):
    rows = np.random.default_rng(0).permutation(len(qm9))
    train, test = qm9.subset(rows[:20000]), qm9.subset(rows[20000:25000])
    fit = fit_standardization(train, train.property("U0"), extensive=True)
    mae = np.abs(test.property("U0") - fit.reference(test)).mean()
    assert 0.6 < mae < 1.1  # the per-element linear baseline: PEERS.md measured 866 meV


def test_intensive_target_has_no_reference(tiny_molecules):
    values = np.linspace(1.0, 2.0, len(tiny_molecules))
    fit = fit_standardization(tiny_molecules, values, extensive=False)
    assert not fit.atomrefs.any()
    assert fit.shift == pytest.approx(values.mean()) and fit.scale == pytest.approx(values.std())


def test_nan_target_is_named(tiny_molecules):
    values = tiny_molecules.property("U0").copy()
    values[[2, 5]] = np.nan
    broken = tiny_molecules.with_property("U0", values, "eV")
    with pytest.raises(MolstrataError, match=r"NaN or infinite for 2 molecules \(ids \["):
        check_finite(broken, "U0")
