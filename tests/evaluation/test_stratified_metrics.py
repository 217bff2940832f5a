"""Stratified metrics on synthetic predictions whose per-stratum errors are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from molstrata.errors import MolstrataError
from molstrata.evaluation.stratified import (
    ELEMENT,
    SIZE,
    SIZE_ELEMENT,
    Predictions,
    TrainingCounts,
    stratified_metrics,
)

ELEMENTS = ("H", "C", "N", "O", "F")


def predictions(sizes, errors, presence=None, unit="eV", target="U0") -> Predictions:
    """Predictions with the given sizes and errors (predicted - true), H and C in every molecule
    unless `presence` (n, 5) over H, C, N, O, F says otherwise."""
    sizes = np.asarray(sizes)
    n = len(sizes)
    if presence is None:
        presence = np.zeros((n, 5), bool)
        presence[:, :2] = True
    true = np.linspace(-400.0, -100.0, n)
    return Predictions(np.arange(100, 100 + n), sizes, presence, ELEMENTS, true,
                       true + np.asarray(errors, float), unit, target)


def training(sizes: dict[int, int], elements: dict[str, int] | None = None, n=None):
    n = sum(sizes.values()) if n is None else n
    return TrainingCounts(n, sizes, elements if elements is not None else {"H": n, "C": n})


def alternating(n: int, magnitude: float) -> np.ndarray:
    """n errors of +-magnitude: their MAE and RMSE are `magnitude` exactly."""
    return magnitude * np.where(np.arange(n) % 2 == 0, 1.0, -1.0)


@pytest.fixture
def one_bad_size():
    """Sizes 10 and 12 predicted to 10 and 20 meV, size 14 (the rarest) to 200 meV.
    Molecules 0-19 (size 10) hold F, the size-14 molecules hold N."""
    sizes = np.repeat([10, 12, 14], [100, 100, 50])
    errors = np.concatenate([alternating(100, 0.010), alternating(100, 0.020),
                             alternating(50, 0.200)])
    presence = np.zeros((250, 5), bool)
    presence[:, :2] = True
    presence[:20, 4] = True
    presence[200:, 2] = True
    return predictions(sizes, errors, presence)


ONE_BAD_TRAINING = TrainingCounts(
    2000, {10: 900, 12: 800, 14: 300}, {"H": 2000, "C": 2000, "N": 300, "F": 150},
    {(10, "F"): 150, (14, "N"): 300},
)


# ---- predictions -------------------------------------------------------------------------


def test_predictions_from_molecules_carry_sizes_elements_and_errors(tiny_molecules):
    true = tiny_molecules.property("U0")
    p = Predictions.from_molecules(tiny_molecules, true, true + 0.5, "eV", "U0")
    assert p.elements == ELEMENTS
    assert np.array_equal(p.sizes, tiny_molecules.sizes)
    assert np.array_equal(p.ids, tiny_molecules.ids)
    assert np.array_equal(p.presence, tiny_molecules.composition > 0)
    assert np.allclose(p.errors, 0.5)
    labels = {(int(s), lab) for s, lab in zip(p.sizes, p.element_labels())}
    assert labels == {(5, "CH"), (5, "CHF"), (9, "CHO"), (13, "CHN"), (3, "HO"), (4, "HN"),
                      (20, "CHFNO")}


def test_nan_predictions_are_a_user_error_naming_the_molecules():
    predicted = np.array([1.0, np.nan, 3.0])
    with pytest.raises(MolstrataError, match=r"1 predicted values of U0 are NaN.*\[101\]"):
        predictions([5, 5, 5], predicted)
    with pytest.raises(MolstrataError, match="true values"):
        Predictions([1, 2], [3, 3], np.ones((2, 5), bool), ELEMENTS, [np.inf, 0.0], [0.0, 0.0],
                    "eV", "U0")
    with pytest.raises(ValueError, match="presence"):
        Predictions([1, 2], [3, 3], np.ones((2, 4), bool), ELEMENTS, [0, 0], [0, 0], "eV", "U0")


# ---- strata ------------------------------------------------------------------------------


def test_per_size_errors_match_hand_values_and_the_bad_size_is_worst(one_bad_size):
    report = stratified_metrics(one_bad_size, ONE_BAD_TRAINING, n_bootstrap=200)
    per_size = {s.key: s for s in report.sizes}
    assert list(per_size) == [10, 12, 14]
    assert [s.count for s in report.sizes] == [100, 100, 50]
    assert per_size[10].summary.mae == pytest.approx(0.010)
    assert per_size[12].summary.mae == pytest.approx(0.020)
    assert per_size[14].summary.mae == pytest.approx(0.200)
    assert per_size[14].summary.rmse == pytest.approx(0.200)
    assert per_size[14].summary.mse == pytest.approx(0.04)
    assert per_size[14].label == "14 atoms"
    # global MAE (100 * 10 + 100 * 20 + 50 * 200) / 250 = 52 meV hides the 200 meV of size 14
    assert report.overall.summary.mae == pytest.approx(0.052)
    assert report.overall.count == 250
    assert report.worst[SIZE].key == 14
    assert report.macro[SIZE].mae == pytest.approx((0.010 + 0.020 + 0.200) / 3)
    assert report.macro[SIZE].n_strata == 3
    assert report.macro[SIZE].mse == pytest.approx((0.010**2 + 0.020**2 + 0.200**2) / 3)


def test_element_and_size_element_strata(one_bad_size):
    report = stratified_metrics(one_bad_size, ONE_BAD_TRAINING, n_bootstrap=200)
    per_element = {s.key: s for s in report.elements}
    assert list(per_element) == ["H", "C", "N", "F"]  # O is in no molecule: no stratum
    assert per_element["F"].count == 20
    assert per_element["F"].summary.mae == pytest.approx(0.010)
    assert per_element["N"].summary.mae == pytest.approx(0.200)
    assert per_element["H"].summary.mae == pytest.approx(0.052)
    assert per_element["F"].label == "with F"
    assert report.worst[ELEMENT].key == "N"
    assert report.macro[ELEMENT].mae == pytest.approx((0.052 * 2 + 0.200 + 0.010) / 4)
    cells = {s.key: s.count for s in report.size_elements}
    assert cells == {(10, "H"): 100, (10, "C"): 100, (10, "F"): 20, (12, "H"): 100,
                     (12, "C"): 100, (14, "H"): 50, (14, "C"): 50, (14, "N"): 50}
    cell = next(s for s in report.size_elements if s.key == (10, "F"))
    assert cell.kind == SIZE_ELEMENT
    assert cell.train_count == 150 and cell.train_share == pytest.approx(150 / 2000)
    assert cell.label == "10 atoms with F"


def test_training_counts_and_shares_are_attached_to_each_stratum(one_bad_size):
    report = stratified_metrics(one_bad_size, ONE_BAD_TRAINING, n_bootstrap=50)
    assert [(s.train_count, s.train_share) for s in report.sizes] == [
        (900, 0.45), (800, 0.40), (300, 0.15)]
    per_element = {s.key: s for s in report.elements}
    assert per_element["F"].train_share == pytest.approx(0.075)
    assert report.overall.train_count == 2000
    cell = next(s for s in report.size_elements if s.key == (12, "H"))
    assert cell.train_count == 0 and cell.train_share == 0  # absent from the training counts


def test_training_counts_from_molecules(tiny_molecules):
    counts = TrainingCounts.from_molecules(tiny_molecules)
    assert counts.n_molecules == 34
    assert counts.sizes == {3: 4, 4: 3, 5: 12, 9: 8, 13: 6, 20: 1}
    assert counts.elements == {"H": 34, "C": 27, "N": 10, "O": 13, "F": 3}
    assert counts.size_elements[(5, "F")] == 2
    assert counts.size_elements[(20, "F")] == 1
    assert (9, "F") not in counts.size_elements
    assert list(counts.size_elements)[:2] == [(3, "H"), (3, "O")]
    # an evaluated size the training set never showed gets share 0
    evaluated = predictions([5, 5, 7, 7], [0.1, -0.1, 0.3, -0.3])
    report = stratified_metrics(evaluated, tiny_molecules, n_bootstrap=20)
    assert [(s.key, s.train_count) for s in report.sizes] == [(5, 12), (7, 0)]
    assert report.sizes[0].train_share == pytest.approx(12 / 34)
    assert report.sizes[1].train_share == 0.0


def test_sizes_under_one_percent_are_not_reported_unless_asked():
    sizes = np.repeat([5, 6, 7], [9, 10, 981])  # 0.9 %, exactly 1 %, 98.1 %
    p = predictions(sizes, np.full(1000, 0.01))
    train = training({5: 10, 6: 10, 7: 980})
    report = stratified_metrics(p, train, n_bootstrap=20)
    assert [s.key for s in report.sizes] == [6, 7]
    assert report.omitted_sizes == {5: 9}
    assert {s.key[0] for s in report.size_elements} == {6, 7}
    everything = stratified_metrics(p, train, n_bootstrap=20, all_sizes=True)
    assert [s.key for s in everything.sizes] == [5, 6, 7]
    assert everything.omitted_sizes == {}
    assert {s.key[0] for s in everything.size_elements} == {5, 6, 7}
    strict = stratified_metrics(p, train, n_bootstrap=20, min_share=0.05)
    assert [s.key for s in strict.sizes] == [7]
    # the global figure always counts every molecule
    assert report.overall.count == 1000


# ---- hypotheses 1 and 2 ------------------------------------------------------------------


def ten_sizes(error_of_rank) -> tuple[Predictions, TrainingCounts]:
    """Sizes 10..19, 20 molecules each; in training size 10 is the most frequent, 19 the
    rarest; every molecule of the k-th size has error error_of_rank(k)."""
    sizes = np.repeat(np.arange(10, 20), 20)
    errors = np.array([error_of_rank(s - 10) for s in sizes])
    train = training({s: 1000 - 90 * (s - 10) for s in range(10, 20)})
    return predictions(sizes, errors), train


def test_hypothesis_1_holds_when_rarer_sizes_have_larger_errors():
    p, train = ten_sizes(lambda k: 0.01 * (k + 1))
    c = stratified_metrics(p, train, n_bootstrap=20).correlations[SIZE]
    assert c.rho == pytest.approx(-1.0)
    assert c.p_value < 0.001
    assert c.n_strata == 10
    assert c.holds
    assert "Monte Carlo" in c.method
    assert "hypothesis 1" in c.hypothesis


def test_hypothesis_1_fails_when_rarer_sizes_have_smaller_or_unrelated_errors():
    p, train = ten_sizes(lambda k: 0.01 * (10 - k))
    c = stratified_metrics(p, train, n_bootstrap=20).correlations[SIZE]
    assert c.rho == pytest.approx(1.0)
    assert not c.holds
    order = [3, 9, 0, 6, 2, 8, 5, 1, 7, 4]  # rank correlation with k near 0
    p, train = ten_sizes(lambda k: 0.01 * (order[k] + 1))
    c = stratified_metrics(p, train, n_bootstrap=20).correlations[SIZE]
    assert abs(c.rho) < 0.3
    assert c.p_value > 0.2
    assert not c.holds


def five_elements(error_order) -> tuple[Predictions, TrainingCounts]:
    """Each molecule holds one element; training shares fall from H to F; molecules with the
    k-th element have error 0.01 * (error_order[k] + 1)."""
    presence = np.repeat(np.eye(5, dtype=bool), 10, axis=0)
    errors = 0.01 * (np.repeat(error_order, 10) + 1.0)
    train = TrainingCounts(1500, {6: 1500}, dict(zip(ELEMENTS, [500, 400, 300, 200, 100])))
    return predictions(np.full(50, 6), errors, presence), train


def test_hypothesis_2_holds_only_for_a_perfect_inverse_order_of_five_elements():
    c = stratified_metrics(*five_elements([0, 1, 2, 3, 4]), n_bootstrap=20).correlations[ELEMENT]
    assert c.rho == pytest.approx(-1.0)
    assert c.p_value == pytest.approx(2 / 120)  # exact test over 5! orderings
    assert c.holds
    assert c.n_strata == 5
    assert "exact" in c.method
    assert "only 5 strata" in c.note
    # one adjacent swap: rho = -0.9, yet 10 of the 120 orderings reach |rho| >= 0.9
    c = stratified_metrics(*five_elements([0, 1, 2, 4, 3]), n_bootstrap=20).correlations[ELEMENT]
    assert c.rho == pytest.approx(-0.9)
    assert c.p_value == pytest.approx(10 / 120)
    assert not c.holds


def test_too_few_strata_give_no_test():
    p = predictions([6, 6, 7, 7], [0.1, 0.2, 0.3, 0.4])
    c = stratified_metrics(p, training({6: 5, 7: 1}), n_bootstrap=20).correlations[SIZE]
    assert c.n_strata == 2
    assert math.isnan(c.rho) and math.isnan(c.p_value)
    assert not c.holds
    assert "no test" in c.note


# ---- determinism and errors --------------------------------------------------------------


def test_reports_are_deterministic_under_the_seed(one_bad_size):
    a = stratified_metrics(one_bad_size, ONE_BAD_TRAINING, seed=3, n_bootstrap=100)
    b = stratified_metrics(one_bad_size, ONE_BAD_TRAINING, seed=3, n_bootstrap=100)
    c = stratified_metrics(one_bad_size, ONE_BAD_TRAINING, seed=4, n_bootstrap=100)
    assert a == b
    assert a.overall.summary != c.overall.summary


def test_each_stratum_draws_its_own_bootstrap():
    rng = np.random.default_rng(0)
    errors = rng.normal(0, 0.05, size=300)
    sizes = np.repeat([5, 6, 7], [5, 300, 300])
    p = predictions(sizes, np.concatenate([errors[:5], errors, errors]))
    train = training({5: 10, 6: 10, 7: 10})
    filtered = stratified_metrics(p, train, n_bootstrap=100)
    every = stratified_metrics(p, train, n_bootstrap=100, all_sizes=True)
    # reporting size 5 or not leaves the intervals of sizes 6 and 7 as they were
    assert filtered.sizes == every.sizes[1:]
    # sizes 6 and 7 hold the same errors, yet their resamples are independent
    six, seven = (s.summary for s in filtered.sizes)
    assert six.mae == pytest.approx(seven.mae, rel=1e-9)
    assert six.mae_ci_low != pytest.approx(seven.mae_ci_low, rel=1e-6)


def test_bad_arguments_are_user_errors(one_bad_size):
    empty = predictions([], [])
    with pytest.raises(MolstrataError, match="no predictions"):
        stratified_metrics(empty, ONE_BAD_TRAINING)
    with pytest.raises(MolstrataError, match="min_share"):
        stratified_metrics(one_bad_size, ONE_BAD_TRAINING, min_share=1.5)
    with pytest.raises(MolstrataError, match="training set is empty"):
        stratified_metrics(one_bad_size, TrainingCounts(0, {}, {}))
