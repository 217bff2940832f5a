"""Error metrics, bootstrap intervals, units and Spearman correlation, against hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from molstrata.errors import MolstrataError
from molstrata.evaluation import bootstrap, metrics
from molstrata.evaluation.metrics import (
    MIN_INTERVAL_COUNT,
    ci_key,
    rankdata,
    spearman,
    spearman_method,
    summarize,
)
from molstrata.units import error_unit, squared_unit, unit_key

# ---- units -------------------------------------------------------------------------------


def test_eV_errors_are_reported_in_meV_and_other_units_as_they_are():
    assert error_unit("eV") == (1000.0, "meV")
    assert error_unit("ev") == (1000.0, "meV")
    assert error_unit("Debye") == (1.0, "Debye")
    assert error_unit("meV") == (1.0, "meV")
    assert error_unit("Ha") == (1.0, "Hartree")
    with pytest.raises(MolstrataError, match="unknown unit"):
        error_unit("furlong")


@pytest.mark.parametrize(
    ("unit", "squared", "key"),
    [
        ("eV", "eV2", "eV2"),
        ("Debye", "Debye2", "Debye2"),
        ("Angstrom**3", "Angstrom6", "Angstrom6"),
        ("kcal/mol", "(kcal/mol)2", "kcal_per_mol_squared"),
        ("1", "1", "unitless"),
    ],
)
def test_squared_units_and_their_key_spelling(unit, squared, key):
    assert squared_unit(unit) == squared
    assert unit_key(squared) == key


def test_unit_keys_and_interval_keys():
    assert unit_key("meV") == "meV"
    assert unit_key("kcal/mol") == "kcal_per_mol"
    assert unit_key("e*Angstrom") == "e_Angstrom"
    assert ci_key(0.95) == "ci95"
    assert ci_key(0.9) == "ci90"
    assert ci_key(0.975) == "ci97_5"


# ---- summaries ---------------------------------------------------------------------------


def test_summary_of_three_errors_matches_hand_values():
    # errors 1, -2, 3 eV: MAE 2 eV, MSE (1 + 4 + 9) / 3 = 14/3 eV2, RMSE sqrt(14/3) eV
    s = summarize(np.array([1.0, -2.0, 3.0]), np.random.default_rng(0), n_bootstrap=200,
                  min_count=1)
    assert s.count == 3
    assert s.mae == pytest.approx(2.0)
    assert s.mse == pytest.approx(14 / 3)
    assert s.rmse == pytest.approx(math.sqrt(14 / 3))
    row = s.report_row("eV")
    assert row["mae_meV"] == pytest.approx(2000.0)
    assert row["rmse_meV"] == pytest.approx(1000 * math.sqrt(14 / 3))
    assert row["mse_eV2"] == pytest.approx(14 / 3)
    assert list(row) == [
        "mae_meV", "mae_ci95_low_meV", "mae_ci95_high_meV",
        "rmse_meV", "rmse_ci95_low_meV", "rmse_ci95_high_meV",
        "mse_eV2", "mse_ci95_low_eV2", "mse_ci95_high_eV2",
    ]  # fmt: skip
    assert row["mae_ci95_low_meV"] == pytest.approx(1000 * s.mae_ci_low)


def test_report_row_keeps_a_non_energy_unit():
    s = summarize(np.array([0.5, -0.5]), np.random.default_rng(0), n_bootstrap=10)
    row = s.report_row("Debye")
    assert row["mae_Debye"] == pytest.approx(0.5)
    assert row["mse_Debye2"] == pytest.approx(0.25)


def test_bootstrap_interval_contains_the_estimate_and_resamples_the_data():
    errors = np.random.default_rng(1).normal(0.0, 0.05, size=300)
    s = summarize(errors, np.random.default_rng(0))
    for low, value, high in [
        (s.mae_ci_low, s.mae, s.mae_ci_high),
        (s.rmse_ci_low, s.rmse, s.rmse_ci_high),
        (s.mse_ci_low, s.mse, s.mse_ci_high),
    ]:
        assert low < value < high
    # every resample lies within the data's extremes
    assert np.abs(errors).min() <= s.mae_ci_low and s.mae_ci_high <= np.abs(errors).max()
    assert s.rmse_ci_low == pytest.approx(math.sqrt(s.mse_ci_low))


def test_interval_width_matches_the_standard_error_of_the_mean():
    # |e| of standard normal errors has sd sqrt(1 - 2/pi); a 95 % interval of the MAE over
    # n molecules is about 2 * 1.96 * sd / sqrt(n) wide
    n = 2000
    errors = np.random.default_rng(2).normal(size=n)
    s = summarize(errors, np.random.default_rng(0), n_bootstrap=2000)
    expected = 2 * 1.96 * math.sqrt(1 - 2 / math.pi) / math.sqrt(n)
    assert s.mae_ci_high - s.mae_ci_low == pytest.approx(expected, rel=0.12)


def test_interval_shrinks_with_more_data_and_widens_with_confidence():
    rng = np.random.default_rng(3)
    small = summarize(rng.normal(size=50), np.random.default_rng(0))
    large = summarize(rng.normal(size=5000), np.random.default_rng(0))
    assert (large.mae_ci_high - large.mae_ci_low) < 0.2 * (small.mae_ci_high - small.mae_ci_low)
    errors = rng.normal(size=400)
    narrow = summarize(errors, np.random.default_rng(0), confidence=0.5)
    wide = summarize(errors, np.random.default_rng(0), confidence=0.99)
    assert (narrow.mae_ci_high - narrow.mae_ci_low) < (wide.mae_ci_high - wide.mae_ci_low)
    assert narrow.confidence == 0.5


def test_bootstrap_is_deterministic_under_the_seed():
    errors = np.random.default_rng(4).normal(size=100)
    a = summarize(errors, np.random.default_rng(11))
    b = summarize(errors, np.random.default_rng(11))
    c = summarize(errors, np.random.default_rng(12))
    assert a == b
    assert (a.mae_ci_low, a.mae_ci_high) != (c.mae_ci_low, c.mae_ci_high)


def test_bootstrap_in_small_chunks_gives_the_same_interval(monkeypatch):
    errors = np.random.default_rng(5).normal(size=1000)
    whole = summarize(errors, np.random.default_rng(0), n_bootstrap=3000)
    monkeypatch.setattr(bootstrap, "CHUNK", 7 * 1000)  # 7 replicates per draw
    draws = []
    real = np.random.Generator.integers

    class Spy:
        def integers(self, *args, **kwargs):
            out = real(rng, *args, **kwargs)
            draws.append(out.shape)
            return out

    rng = np.random.default_rng(1)
    chunked = summarize(errors, Spy(), n_bootstrap=3000)
    assert max(shape[0] for shape in draws) == 7
    assert sum(shape[0] for shape in draws) == 3000
    assert chunked.mae_ci_low == pytest.approx(whole.mae_ci_low, rel=0.02)
    assert chunked.mae_ci_high == pytest.approx(whole.mae_ci_high, rel=0.02)


def test_too_few_molecules_give_their_figures_and_no_interval():
    """One molecule's bootstrap interval was "250 - 250": a precision nothing measured."""
    s = summarize(np.array([-0.25]), np.random.default_rng(0))
    assert (s.count, s.mae, s.mse, s.rmse) == (1, 0.25, 0.0625, 0.25)
    bounds = [s.mae_ci_low, s.mae_ci_high, s.rmse_ci_low, s.rmse_ci_high, s.mse_ci_low,
              s.mse_ci_high]
    assert np.isnan(bounds).all()
    errors = np.random.default_rng(6).normal(size=MIN_INTERVAL_COUNT)
    s = summarize(errors, np.random.default_rng(0))
    assert s.mae_ci_low < s.mae < s.mae_ci_high
    assert np.isnan(summarize(errors[1:], np.random.default_rng(0)).mae_ci_low)


def test_empty_or_broken_input_is_a_user_error_naming_the_stratum():
    with pytest.raises(MolstrataError, match="27 atoms"):
        summarize(np.array([]), np.random.default_rng(0), name="27 atoms")
    with pytest.raises(MolstrataError, match="with F.*non-finite"):
        summarize(np.array([0.1, np.nan]), np.random.default_rng(0), name="with F")
    with pytest.raises(MolstrataError, match="n_bootstrap"):
        summarize(np.array([0.1, 0.2]), np.random.default_rng(0), n_bootstrap=0)
    with pytest.raises(MolstrataError, match="confidence"):
        summarize(np.array([0.1, 0.2]), np.random.default_rng(0), confidence=95)


# ---- ranks and Spearman ------------------------------------------------------------------


def test_ranks_average_ties():
    assert rankdata([3.0, 1.0, 2.0]).tolist() == [3.0, 1.0, 2.0]
    assert rankdata([10, 20, 20, 30]).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert rankdata([5, 5, 5]).tolist() == [2.0, 2.0, 2.0]
    assert rankdata([0.3, 0.1, 0.3, 0.1, 0.2]).tolist() == [4.5, 1.5, 4.5, 1.5, 3.0]
    assert rankdata([]).tolist() == []


def test_spearman_without_ties_matches_the_textbook_formula():
    # d = rank differences -1, 1, -1, 1, -1, 1: rho = 1 - 6 * 6 / (6 * 35) = 29/35
    rho, p = spearman([1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5])
    assert rho == pytest.approx(29 / 35)
    assert 0 < p <= 1


def test_spearman_with_ties_is_the_pearson_correlation_of_average_ranks():
    # y's ranks 1, 2, 3.5, 5, 3.5; centred x ranks -2..2 and y ranks -2, -1, .5, 2, .5:
    # rho = 8 / sqrt(10 * 9.5)
    rho, _ = spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])
    assert rho == pytest.approx(8 / math.sqrt(95))


def test_exact_p_values_count_orderings():
    # of the 4! orderings exactly 2 reach |rho| = 1
    rho, p = spearman([1, 2, 3, 4], [10, 20, 30, 40])
    assert rho == pytest.approx(1.0)
    assert p == pytest.approx(2 / 24)
    rho, p = spearman([1, 2, 3, 4, 5], [9, 7, 5, 3, 1])
    assert rho == pytest.approx(-1.0)
    assert p == pytest.approx(2 / 120)
    assert spearman_method(5).startswith("exact")


def test_permutation_p_value_agrees_with_exact_enumeration(monkeypatch):
    x = np.arange(8)
    y = np.array([2, 0, 1, 4, 3, 7, 5, 6])
    rho, exact = spearman(x, y)
    monkeypatch.setattr(metrics, "EXACT_MAX_N", 7)
    rho_mc, sampled = spearman(x, y, n_permutations=40_000, seed=3)
    assert rho_mc == rho
    assert sampled == pytest.approx(exact, abs=0.005)


def test_perfect_monotone_order_of_ten_is_significant_and_random_order_is_not():
    rho, p = spearman(np.arange(10), np.arange(10) ** 2)
    assert rho == pytest.approx(1.0)
    assert 1 / 20_001 <= p < 0.01
    x = np.arange(20)
    y = np.array([7, 15, 3, 11, 19, 0, 8, 13, 5, 17, 2, 10, 18, 6, 14, 1, 9, 16, 4, 12])
    rho, p = spearman(x, y)
    assert abs(rho) < 0.2
    assert p > 0.3
    assert spearman_method(20).startswith("Monte Carlo")


def test_spearman_is_deterministic_under_the_seed():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=15), rng.normal(size=15)
    assert spearman(x, y, seed=1) == spearman(x, y, seed=1)
    assert spearman(x, y, seed=1)[1] != spearman(x, y, seed=2)[1]


def test_spearman_without_a_ranking_is_nan():
    assert all(math.isnan(v) for v in spearman([1, 2], [2, 1]))
    assert all(math.isnan(v) for v in spearman([1, 2, 3], [4, 4, 4]))
    with pytest.raises(ValueError, match="same length"):
        spearman([1, 2, 3], [1, 2])
