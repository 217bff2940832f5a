"""The two-level interval (training seeds, then test molecules): a difference consistent across
seeds is found, one that flips sign between seeds is not called a win, one seed per arm is the
molecule-level bootstrap, the draws keep molecules paired across arms and seeds, and the seed
level is the t interval of a jackknife over seeds (coverage: test_coverage.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from molstrata.errors import MolstrataError
from molstrata.evaluation import bootstrap
from molstrata.evaluation.bootstrap import (
    SeedSpread,
    mae_difference,
    mean_mae,
    per_seed_mae,
    percentile_bootstrap,
    resampled_seeds_bootstrap,
    seed_means,
    seed_spread,
    two_level_bootstrap,
    two_level_interval,
)

N_MOLECULES = 2000


def _arms(shifts: list[float], noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Absolute errors in meV of arms A and B, (k, n) each, k = len(shifts): B's errors are A's
    shifted by shifts[s] in seed s, plus molecule noise of sd `noise`. Every seed's A shares
    the molecules' difficulty (a molecule hard for one seed is hard for all)."""
    rng = np.random.default_rng(seed)
    difficulty = rng.exponential(20.0, size=N_MOLECULES) + 10.0
    a = np.abs(difficulty + rng.normal(0.0, 3.0, size=(len(shifts), N_MOLECULES)))
    b = np.abs(a + np.asarray(shifts)[:, None] + rng.normal(0.0, noise, size=a.shape))
    return a, b


def _mae_lead(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return b.mean(axis=1) - a.mean(axis=1)


def test_a_small_difference_of_one_sign_in_every_seed_excludes_zero():
    a, b = _arms([2.0, 1.6, 2.4], noise=3.0, seed=0)
    low, high = two_level_bootstrap([b, a], mae_difference, np.random.default_rng(1),
                                    n_bootstrap=1000)
    assert 0.0 < low < 2.0 < high < 3.0


def test_a_difference_that_flips_sign_between_seeds_includes_zero():
    a, b = _arms([5.0, 5.0, -5.0], noise=3.0, seed=2)
    for seed in range(3):  # each seed alone: a clear molecule-level interval of its own sign
        low, high = percentile_bootstrap([a[seed], b[seed]], _mae_lead,
                                         np.random.default_rng(seed), n_bootstrap=1000)
        assert (low > 0) if seed < 2 else (high < 0)
    # the molecules alone, on the seed-averaged errors, would call B worse: the trap
    low, high = percentile_bootstrap([a.mean(axis=0), b.mean(axis=0)], _mae_lead,
                                     np.random.default_rng(3), n_bootstrap=1000)
    assert low > 0
    low, high = two_level_bootstrap([b, a], mae_difference, np.random.default_rng(4),
                                    n_bootstrap=1000)
    assert low < 0 < high  # 7 replicates in 27 draw two or three -5 seeds: low <= -5/3
    assert high > 4  # 8 in 27 draw three +5 seeds


def test_one_seed_per_arm_is_the_molecule_level_paired_bootstrap():
    a, b = _arms([1.0], noise=3.0, seed=5)
    molecules = percentile_bootstrap([a[0], b[0]], _mae_lead, np.random.default_rng(6),
                                     n_bootstrap=2000)
    same_rng = two_level_bootstrap([b[0], a[0]], mae_difference, np.random.default_rng(6),
                                   n_bootstrap=2000)
    np.testing.assert_allclose(same_rng, molecules)
    other_rng = two_level_bootstrap([b, a], mae_difference, np.random.default_rng(7),
                                    n_bootstrap=2000)
    width = molecules[1] - molecules[0]
    assert abs(other_rng[0] - molecules[0]) < 0.1 * width
    assert abs(other_rng[1] - molecules[1]) < 0.1 * width


def test_the_resampled_seeds_bootstrap_draws_seeds_per_arm_and_shares_molecules():
    n = 50
    ks = [3, 1, 2]
    # value = 1000 * seed + molecule: a resampled value says which seed and molecule it is
    arms = [1000.0 * np.arange(k)[:, None] + np.arange(n)[None, :] for k in ks]
    shapes, rows_seen, differ = [], 0, False

    def check(*resampled: np.ndarray) -> np.ndarray:
        nonlocal rows_seen, differ
        shapes.append([r.shape[1:] for r in resampled])
        molecule = resampled[0][:, :1, :] % 1000
        for r, k in zip(resampled, ks):
            assert r.shape == (len(resampled[0]), k, n)
            assert (r % 1000 == molecule).all()  # one draw of molecules for every arm and seed
            seed = r[:, :, :1] // 1000
            assert ((0 <= seed) & (seed < k)).all()
            assert (r // 1000 == seed).all()  # a drawn seed is a whole row of that seed
        differ |= bool((resampled[0][:, :2, 0] // 1000 != resampled[2][:, :, 0] // 1000).any())
        rows_seen += len(resampled[0])
        return resampled[0].mean(axis=(1, 2))

    low, high = resampled_seeds_bootstrap(arms, check, np.random.default_rng(0),
                                          n_bootstrap=300)
    assert shapes[0] == [(3, n), (1, n), (2, n)] and rows_seen == 300
    assert differ  # each arm draws its own seeds
    assert low.shape == high.shape == ()


def test_strata_keep_their_counts_and_their_columns():
    labels = np.repeat([5, 9, 12], [3, 40, 17])
    np.random.default_rng(8).shuffle(labels)
    n = len(labels)
    arm = np.arange(n)[None, :] + 1000.0 * np.arange(2)[:, None]
    seen = []

    def check(resampled: np.ndarray) -> np.ndarray:
        molecule = (resampled % 1000).astype(int)
        seen.append(bool((labels[molecule] == labels).all()))
        return resampled.mean(axis=(1, 2))

    two_level_bootstrap([arm], check, np.random.default_rng(0), n_bootstrap=200, strata=labels)
    assert seen and all(seen)
    with pytest.raises(ValueError, match="strata"):
        two_level_bootstrap([arm], check, np.random.default_rng(0), strata=labels[:-1])


def test_chunks_stay_under_chunk_values_and_add_up(monkeypatch):
    arms = [np.ones((3, 100)), np.ones((2, 100))]
    sizes = []

    def recording(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        sizes.append((a.size, b.size, len(a)))
        return mean_mae(a) - mean_mae(b)

    monkeypatch.setattr(bootstrap, "CHUNK", 3 * 100 * 16)  # 16 replicates at a time
    two_level_bootstrap(arms, recording, np.random.default_rng(0), n_bootstrap=100)
    assert max(s[0] for s in sizes) <= 3 * 100 * 16 and max(s[2] for s in sizes) == 16
    # 100 bootstrap replicates, the estimate, and one jackknife value per seed of each arm
    assert sum(s[2] for s in sizes) == 100 + 1 + 3 + 2


def test_a_statistic_of_several_values_gets_an_interval_for_each():
    a, b = _arms([2.0, 2.0], noise=1.0, seed=9)
    low, high = two_level_bootstrap(
        [a, b], lambda x, y: np.stack([mean_mae(x), mean_mae(y)], axis=1),
        np.random.default_rng(0), n_bootstrap=500)
    assert low.shape == high.shape == (2,)
    assert (low < [a.mean(), b.mean()]).all() and (high > [a.mean(), b.mean()]).all()


def test_the_helpers_on_seeds():
    errors = np.array([[1.0, 3.0], [2.0, 4.0], [6.0, 8.0]])  # 3 seeds, 2 molecules
    np.testing.assert_allclose(per_seed_mae(errors), [2.0, 3.0, 7.0])
    assert mean_mae(errors) == pytest.approx(4.0)
    assert mean_mae(errors[None]).shape == (1,)
    assert mae_difference(errors[None], errors[None, :1] + 1.0) == pytest.approx([1.0])
    np.testing.assert_allclose(seed_means(np.array([[1.0, 2.0], [3.0, 6.0]])), [2.0, 4.0])
    spread = seed_spread(per_seed_mae(errors))
    assert spread == SeedSpread(mean=4.0, sd=pytest.approx(math.sqrt(7.0)), k=3)
    one = seed_spread(np.array([2.5]))
    assert one.mean == 2.5 and one.k == 1 and math.isnan(one.sd)
    with pytest.raises(ValueError, match="one figure per seed"):
        seed_spread(np.array([]))
    with pytest.raises(ValueError, match="at least one seed"):
        seed_means(np.empty((0, 3)))


def test_bad_input_is_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="same test molecules"):
        two_level_bootstrap([np.ones((2, 10)), np.ones((2, 11))], mae_difference, rng)
    for empty in (np.ones((0, 10)), np.ones((3, 0)), np.ones(0)):
        with pytest.raises(ValueError, match="at least one arm"):
            two_level_bootstrap([np.ones((2, 10)), empty], mae_difference, rng)
    with pytest.raises(ValueError, match="at least one arm"):
        two_level_bootstrap([], mae_difference, rng)
    with pytest.raises(ValueError, match="k_seeds, n_molecules"):
        two_level_bootstrap([np.ones((2, 3, 4))], mean_mae, rng)
    with pytest.raises(MolstrataError, match="n_bootstrap must be at least 1"):
        two_level_bootstrap([np.ones((2, 3))], mean_mae, rng, n_bootstrap=0)
    with pytest.raises(MolstrataError, match="confidence must be between 0 and 1"):
        two_level_bootstrap([np.ones((2, 3))], mean_mae, rng, confidence=95)


def test_the_molecule_level_keeps_every_seed_and_the_seed_level_is_the_t_interval():
    n = 40
    arms = [1000.0 * np.arange(k)[:, None] + np.arange(n)[None, :] for k in (3, 2)]

    def check(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if len(a) > 1:  # a bootstrap chunk: seeds in order, one draw of molecules for both
            assert (a // 1000 == np.arange(3)[None, :, None]).all()
            assert (a[:, :2] % 1000 == b % 1000).all()
        return mean_mae(a) - mean_mae(b)

    two_level_interval(arms, check, np.random.default_rng(0), n_bootstrap=50)
    # a per-seed figure without molecule noise: the interval is Welch's t interval
    a = np.array([10.0, 12.0, 11.0])[:, None] + np.zeros((3, 30))
    b = np.array([14.0, 15.0, 16.0])[:, None] + np.zeros((3, 30))
    interval = two_level_interval([b, a], mae_difference, np.random.default_rng(1))
    va, vb = a[:, 0].var(ddof=1) / 3, b[:, 0].var(ddof=1) / 3
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    half = float(bootstrap.stats.t.ppf(0.975, df)) * math.sqrt(va + vb)
    assert interval.estimate == pytest.approx(4.0)
    assert float(interval.df) == pytest.approx(df)
    assert (interval.low, interval.high) == (pytest.approx(4.0 - half), pytest.approx(4.0 + half))
    assert interval.seeds_measured and float(interval.se_molecules) == 0.0
    assert interval.p_value(0.0) < 0.05 < interval.p_value(4.0 - half + 0.1)
    # paired seeds: seed r of both arms deleted together; here the arms move together, so
    # the paired interval is the t interval of the per-seed differences (k - 1 df)
    b_paired = a + np.array([4.0, 4.2, 3.8])[:, None]
    paired = two_level_interval([b_paired, a], mae_difference, np.random.default_rng(1),
                                paired_seeds=True)
    unpaired = two_level_interval([b_paired, a], mae_difference, np.random.default_rng(1))
    assert float(paired.df) == pytest.approx(2.0)
    assert paired.high - paired.low < unpaired.high - unpaired.low


def test_p_values_agree_with_the_interval():
    a, b = _arms([2.0, 1.6, 2.4], noise=3.0, seed=0)
    interval = two_level_interval([b, a], mae_difference, np.random.default_rng(1))
    assert interval.p_value(float(interval.low)) == pytest.approx(0.05, abs=1e-6)
    assert interval.p_value(0.0) < 0.05
    assert interval.p_below(float(interval.high)) == pytest.approx(0.025, abs=1e-6)
    # more seeds shrink the seed level: a threshold just inside the interval is resolved by
    # a few more seeds; one closer to the estimate than the molecules' noise allows, by none
    inside = float(interval.low) + 0.3 * float(interval.estimate - interval.low)
    needed = interval.seeds_to_resolve(inside, k=3)
    assert needed is not None and 3 < needed <= 50
    too_close = float(interval.estimate) - 0.5 * float(interval.se_molecules)
    assert interval.seeds_to_resolve(too_close, k=3) is None
