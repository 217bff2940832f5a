"""Learning curves per stratum: the fits recover known curves, AICc finds a real floor and only
a real one, the bootstrap interval of the slope covers the truth, n_for inverts predict, the
held-out check tells a straight curve from a bent one, and the advice ranks, flags and
refuses as it says."""

from __future__ import annotations

import numpy as np
import pytest

from molstrata.errors import MolstrataError
from molstrata.evaluation import scaling
from molstrata.evaluation.scaling import (
    FACTOR,
    POWER,
    SATURATING,
    Fit,
    StratumErrors,
    bootstrap_curve,
    data_advice,
    fit_curve,
    fit_power_law,
    fit_saturating,
    global_curve,
    held_out_check,
)

SIZES = 500 * 2.0 ** np.arange(7)
"""Training molecules per subset: 500 .. 32000, doubling (7 points)."""


def _errors(rng: np.random.Generator, n_train: np.ndarray, mae: np.ndarray, *, k: int = 3,
            n_test: int = 300, noise: str = "exponential") -> list[np.ndarray]:
    """Absolute errors (k, n_test) per subset whose expected MAE is mae[j], times a seed-level
    factor (3 % log-normal) per seed. noise: the per-molecule factor (mean 1), drawn anew for
    every model ("exponential", "half-normal"), or "difficulty": an exponential difficulty
    per molecule shared by every model, times a 5 % jitter, so the curve's points are tight."""
    difficulty = rng.exponential(1.0, size=n_test)
    errors = []
    for value in np.asarray(mae, dtype=float):
        seed = np.exp(rng.normal(0.0, 0.03, size=(k, 1)))
        if noise == "exponential":
            molecule = rng.exponential(1.0, size=(k, n_test))
        elif noise == "half-normal":
            molecule = np.abs(rng.normal(0.0, np.sqrt(np.pi / 2), size=(k, n_test)))
        else:
            molecule = difficulty * np.exp(rng.normal(0.0, 0.05, size=(k, n_test)))
        errors.append(value * seed * molecule)
    assert len(errors) == len(n_train)
    return errors


def _noisy(rng: np.random.Generator, clean: np.ndarray, sd: float, rows: int) -> np.ndarray:
    return clean * np.exp(rng.normal(0.0, sd, size=(rows, len(clean))))


# ---- the fits ------------------------------------------------------------------------------


def test_the_power_law_fit_is_unbiased_with_the_spread_least_squares_predicts():
    # 2000 curves a = 3, b = 0.4 with 3 % multiplicative noise, fitted at once. Least squares
    # on log n gives sd(b) = 0.03 / sqrt(Sxx): 0.0082 here, so one curve's b lies within
    # 0.033 (4 sd) of 0.4 and its log a within 4 sd of log 3.
    rng = np.random.default_rng(0)
    x = np.log(SIZES)
    sxx = ((x - x.mean()) ** 2).sum()
    sd_b = 0.03 / np.sqrt(sxx)
    sd_log_a = 0.03 * np.sqrt(1 / len(x) + x.mean() ** 2 / sxx)
    a, b, rss = fit_power_law(SIZES, _noisy(rng, 3.0 * SIZES ** -0.4, 0.03, 2000))
    assert a.shape == b.shape == rss.shape == (2000,)
    assert abs(b.mean() - 0.4) < 0.002  # 10 standard errors of the mean of 2000
    assert b.std() == pytest.approx(sd_b, rel=0.1)
    assert np.log(a).std() == pytest.approx(sd_log_a, rel=0.1)
    one = fit_curve(SIZES, _noisy(rng, 3.0 * SIZES ** -0.4, 0.03, 1)[0])
    assert one.form == POWER and one.c == 0.0
    assert abs(one.b - 0.4) < 4 * sd_b and abs(np.log(one.a / 3.0)) < 4 * sd_log_a


def test_the_saturating_fit_recovers_floors_for_many_curves_at_once_in_bounded_chunks(
        monkeypatch):
    truth = np.array([[3.0, 0.5, 0.01], [1.0, 0.3, 0.0], [3.0, 0.8, 0.003], [0.5, 0.6, 0.002]])
    mae = truth[:, :1] * SIZES ** -truth[:, 1:2] + truth[:, 2:]
    a, b, c, _ = fit_saturating(SIZES, mae.reshape(2, 2, -1))  # strata x rows x m
    assert c.shape == (2, 2)
    assert (np.abs(c.ravel() - truth[:, 2]) < 1e-3 * mae.min(axis=1)).all()  # the fine grid
    np.testing.assert_allclose(b.ravel(), truth[:, 1], atol=0.01)
    np.testing.assert_allclose(a.ravel(), truth[:, 0], rtol=0.05)
    monkeypatch.setattr(scaling, "CHUNK", 1)  # one curve per chunk: the same answer
    for whole, chunked in zip((a, b, c), fit_saturating(SIZES, mae.reshape(2, 2, -1))):
        np.testing.assert_array_equal(whole, chunked)


def test_aicc_chooses_the_floor_where_there_is_one_and_the_power_law_where_there_is_none():
    # 200 curves of each, 3 % noise over 7 points. The floor (a=3, b=0.8, c=0.003) holds the
    # last MAEs up to 80 %; the power law (a=3, b=0.4) has none. Each is found in nearly
    # every curve (about 90 % and 98 % at this noise; the bounds are > 4 binomial sd away).
    rng = np.random.default_rng(1)
    floor = [fit_curve(SIZES, row) for row in _noisy(rng, 3 * SIZES ** -0.8 + 0.003, 0.03, 200)]
    plain = [fit_curve(SIZES, row) for row in _noisy(rng, 3 * SIZES ** -0.4, 0.03, 200)]
    assert np.mean([f.form == SATURATING for f in floor]) > 0.8
    assert np.mean([f.form == POWER for f in plain]) > 0.9
    found = [f.c for f in floor if f.form == SATURATING]
    assert np.median(found) == pytest.approx(0.003, rel=0.1)
    for fit in floor + plain:  # the chosen form is the one with the lower AICc, both reported
        assert fit.aicc == min(fit.aicc_power, fit.aicc_saturating)


def test_fewer_than_four_points_never_try_the_floor_and_two_cannot_be_fitted():
    n, mae = SIZES[:3], 3 * SIZES[:3] ** -0.8 + 0.01
    three = fit_curve(n, mae)
    assert three.form == POWER and np.isnan(three.aicc_saturating)
    assert fit_curve(SIZES[:4], 3 * SIZES[:4] ** -0.8 + 0.01).aicc_saturating == np.inf
    with pytest.raises(MolstrataError, match="too few points to fit.*give more subset sizes"):
        fit_curve(np.array([500.0, 500.0, 1000.0]), mae)


def test_n_for_inverts_predict_and_unreachable_targets_need_infinitely_many():
    for fit in (Fit(POWER, 3.0, 0.4, 0.0, 0, 0, np.nan), Fit(SATURATING, 3.0, 0.8, 0.003, 0, 0, 0)):
        for n in (10.0, 1234.0, 1e6):
            assert fit.n_for(float(fit.predict(n))) == pytest.approx(n, rel=1e-9)
        np.testing.assert_allclose(fit.predict(SIZES), 3.0 * SIZES ** -fit.b + fit.c)
    floor = Fit(SATURATING, 3.0, 0.8, 0.003, 0, 0, 0)
    assert floor.n_for(0.003) == np.inf and floor.n_for(0.001) == np.inf
    assert Fit(POWER, 3.0, -0.1, 0.0, 0, 0, np.nan).n_for(0.01) == np.inf  # MAE rising with n


# ---- intervals -------------------------------------------------------------------------------


@pytest.mark.parametrize("noise, k", [("exponential", 3), ("half-normal", 2)])
def test_the_bootstrap_interval_of_b_contains_the_true_b(noise, k):
    # a = 3, b = 0.4; 300 test molecules whose errors are MAE(n) times per-molecule noise,
    # k seeds with 3 % seed noise. Over 200 such data sets the 95 % interval covered 0.4 in
    # 100 % and 95.5 % of them: 85 % of 40 is more than 4 binomial sd below the second. (Where
    # the seeds dominate the noise, 3 seeds cover less, about 86 %: bootstrap.py's caveat.)
    covered, widths = 0, []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        errors = _errors(rng, SIZES, 3.0 * SIZES ** -0.4, k=k, noise=noise)
        low, high = bootstrap_curve(errors, SIZES, rng, n_bootstrap=200).b_interval
        covered += bool(low < 0.4 < high)
        widths.append(high - low)
    assert covered / 40 >= 0.85 and np.mean(widths) < 0.1  # about 0.06 and 0.05


def test_one_bootstrap_curve_gives_every_interval_around_its_estimate():
    rng = np.random.default_rng(2)
    errors = _errors(rng, SIZES, 3.0 * SIZES ** -0.4, k=3)
    curve = bootstrap_curve(errors, SIZES, rng, label="C", at_n=[64000.0, 1e6],
                            target_mae=0.03, n_bootstrap=500)
    assert curve.fit.form == POWER and curve.c_interval == (0.0, 0.0)
    assert curve.b_interval[0] < 0.4 < curve.b_interval[1]
    assert curve.a_interval[0] < curve.fit.a < curve.a_interval[1]
    assert curve.slope_interval[0] < curve.slope < curve.slope_interval[1]
    truth = 3.0 * curve.at_n ** -0.4
    assert (curve.predicted_low < truth).all() and (truth < curve.predicted_high).all()
    np.testing.assert_allclose(curve.predicted, curve.fit.predict(curve.at_n))
    assert curve.n_needed_interval[0] < (3.0 / 0.03) ** (1 / 0.4) < curve.n_needed_interval[1]
    assert curve.n_needed == pytest.approx(curve.fit.n_for(0.03))
    assert curve.k_seeds == (3,) * len(SIZES) and curve.n_test == 300 and curve.label == "C"


def test_the_global_curve_is_the_overall_mae_against_the_subset_size():
    rng = np.random.default_rng(3)
    curve = global_curve(_errors(rng, SIZES, 2.0 * SIZES ** -0.3, noise="half-normal"),
                         SIZES, rng, n_bootstrap=300)
    assert curve.label == "all" and curve.b_interval[0] < 0.3 < curve.b_interval[1]
    assert np.isnan(curve.n_needed) and curve.at_n.shape == (0,)


def test_a_stratum_with_too_few_points_is_refused_in_one_line():
    rng = np.random.default_rng(4)
    n_train = np.array([0, 0, 1, 1, 2, 2, 2], dtype=float)  # two distinct counts of >= 1
    errors = _errors(rng, n_train, np.full(7, 0.1))
    with pytest.raises(MolstrataError) as raised:
        bootstrap_curve(errors, n_train, rng, label="F")
    message = str(raised.value)
    assert "\n" not in message and message.startswith("F: too few points to fit")
    assert "give more subset sizes or a larger slice" in message and "--" not in message
    few_tested = _errors(rng, SIZES, 3 * SIZES ** -0.4, n_test=9)
    with pytest.raises(MolstrataError, match="9 test molecules"):
        bootstrap_curve(few_tested, SIZES, rng)


# ---- across strata -------------------------------------------------------------------------


def _strata(rng: np.random.Generator) -> list[StratumErrors]:
    """Five strata with known curves (tight points), one of them too thin to fit."""
    rare = np.array([5, 10, 20, 40, 80, 160, 320], dtype=float)
    curves = {
        "C": (SIZES, 3.0 * SIZES ** -0.4),  # common and slow: little gain per molecule
        "F": (rare, 0.5 * rare ** -0.3),  # rare: steep gain per molecule, far from target
        "N": (SIZES / 4, 2.0 * (SIZES / 4) ** -0.5),
        "Cl": (rare, 1.0 * rare ** -0.8 + 0.03),  # a floor above the target
        "S": (np.array([0, 0, 0, 1, 1, 2, 2], dtype=float), np.full(7, 0.2)),
    }
    return [StratumErrors(label, n, _errors(rng, n, mae, noise="difficulty"))
            for label, (n, mae) in curves.items()]


def test_the_advice_ranks_by_gain_and_says_what_is_unreachable_or_extrapolated():
    rng = np.random.default_rng(5)
    advice = data_advice(_strata(rng), 0.02, rng, n_bootstrap=300)
    assert [row.label for row in advice] == ["F", "Cl", "N", "C", "S"]
    gains = [row.gain_per_1000 for row in advice[:4]]
    assert gains == sorted(gains, reverse=True)
    by_label = {row.label: row for row in advice}
    # F: 0.5 n^-0.3 at n = 320 falls by 0.5 * 0.3 * 320^-1.3 per molecule, shared by 5 strata
    assert by_label["F"].gain_per_1000 == pytest.approx(0.5 * 0.3 * 320 ** -1.3 * 200, rel=0.2)
    lo, hi = by_label["F"].gain_interval
    assert lo < by_label["F"].gain_per_1000 < hi
    # F reaches 0.02 at (0.5 / 0.02)^(1/0.3), about 45,000: over FACTOR x 320
    assert by_label["F"].extrapolated and "extrapolation" in by_label["F"].note
    assert by_label["F"].n_needed > FACTOR * 320 and np.isfinite(by_label["F"].n_needed)
    cl = by_label["Cl"]
    assert cl.form == SATURATING and cl.n_needed == np.inf and not cl.extrapolated
    assert cl.note.startswith("unreachable")
    n = by_label["N"]  # 2 (n/4)^-0.5 reaches 0.02 at n_s = 10,000: within the data
    # the test molecules' mean difficulty (sd 6 % over 300) moves a, and n_needed twice as much
    assert n.n_needed == pytest.approx(10000, rel=0.35) and not n.extrapolated
    assert n.n_needed_interval[0] < n.n_needed < n.n_needed_interval[1]
    s = by_label["S"]
    assert s.form is None and np.isnan(s.gain_per_1000) and s.n_train == 2
    assert s.note.startswith("S: too few points to fit") and "\n" not in s.note


def test_the_advice_can_be_told_to_stop_at_a_stratum_it_cannot_fit():
    rng = np.random.default_rng(6)
    with pytest.raises(MolstrataError, match="^S: too few points to fit"):
        data_advice(_strata(rng), 0.02, rng, n_bootstrap=50, skip_unfit=False)
    with pytest.raises(MolstrataError, match="target MAE"):
        data_advice(_strata(rng), 0.0, rng)


def test_the_held_out_check_tells_a_straight_curve_from_a_bent_one():
    rng = np.random.default_rng(7)
    straight = 3.0 * SIZES ** -0.4
    bent = straight.copy()
    bent[-1] *= 1.5  # the last doubling stops helping: a curve that bends past the fit
    strata = [StratumErrors("C", SIZES, _errors(rng, SIZES, straight, noise="difficulty")),
              StratumErrors("N", SIZES / 4, _errors(rng, SIZES, 0.7 * straight,
                                                    noise="difficulty")),
              StratumErrors("O", SIZES, _errors(rng, SIZES, bent, noise="difficulty")),
              StratumErrors("S", np.array([0, 0, 0, 0, 1, 2, 3.0]),
                            _errors(rng, SIZES, straight, noise="difficulty"))]
    check = held_out_check(strata)
    rows = {row.label: row for row in check.rows}
    assert set(rows) == {"C", "N", "O"} and len(check.skipped) == 1
    assert check.skipped[0].startswith("S: too few points to fit")
    for label in ("C", "N"):
        assert abs(rows[label].relative_error) < 0.06
        assert rows[label].relative_error == pytest.approx(
            rows[label].predicted / rows[label].measured - 1)
    assert rows["O"].relative_error < -0.25  # predicted 1/1.5 of what was measured
    assert check.median_abs_relative_error == pytest.approx(
        np.median([abs(row.relative_error) for row in check.rows]))
