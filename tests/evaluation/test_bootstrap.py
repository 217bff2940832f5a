"""The one percentile bootstrap: right coverage on data whose truth is known, pairs and strata
kept together in every replicate, seeded, bounded memory, bad settings refused."""

from __future__ import annotations

import numpy as np
import pytest

from molstrata.errors import MolstrataError
from molstrata.evaluation import bootstrap
from molstrata.evaluation.bootstrap import percentile_bootstrap


def _mean(values: np.ndarray) -> np.ndarray:
    return values.mean(axis=1)


def test_the_interval_of_a_mean_covers_the_true_mean_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    true_mean, trials, covered = 2.0, 400, 0
    for _ in range(trials):
        sample = rng.normal(true_mean, 1.0, size=60)
        low, high = percentile_bootstrap([sample], _mean, rng, n_bootstrap=500)
        covered += bool(low <= true_mean <= high)
    assert 0.90 <= covered / trials <= 0.98  # 95 % nominal; +-3.5 standard errors of 400 trials


def test_a_lower_confidence_gives_a_narrower_interval_inside_the_wider_one():
    sample = np.random.default_rng(1).exponential(size=200)
    wide = percentile_bootstrap([sample], _mean, np.random.default_rng(2), confidence=0.95)
    narrow = percentile_bootstrap([sample], _mean, np.random.default_rng(2), confidence=0.5)
    assert wide[0] < narrow[0] < sample.mean() < narrow[1] < wide[1]


def test_paired_resampling_keeps_each_molecules_values_together():
    a = np.random.default_rng(3).normal(size=300)
    b = a + 0.25  # the same molecules, each shifted by exactly 0.25
    seen = []

    def difference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        seen.append(np.allclose(y - x, 0.25))
        return y.mean(axis=1) - x.mean(axis=1)

    low, high = percentile_bootstrap([a, b], difference, np.random.default_rng(0))
    assert all(seen) and low == pytest.approx(0.25) and high == pytest.approx(0.25)
    # unpaired, the molecules' own spread (sd 1 over 300) dominates: a wide interval
    low, high = percentile_bootstrap([a, b], _lead, np.random.default_rng(0), paired=False)
    assert low < 0.25 - 0.1 and high > 0.25 + 0.1


def _lead(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return y.mean(axis=1) - x.mean(axis=1)


def test_unpaired_arrays_may_differ_in_length_and_paired_ones_may_not():
    rng = np.random.default_rng(4)
    x, y = rng.normal(0, 1, 50), rng.normal(3, 1, 80)
    low, high = percentile_bootstrap([x, y], _lead, np.random.default_rng(0), paired=False)
    assert low < y.mean() - x.mean() < high and low > 2
    with pytest.raises(ValueError, match="one length"):
        percentile_bootstrap([x, y], _lead, np.random.default_rng(0))


def test_strata_keep_their_counts_and_their_columns():
    labels = np.repeat([5, 9, 12], [3, 40, 17])
    np.random.default_rng(5).shuffle(labels)
    values = np.random.default_rng(6).normal(size=len(labels))
    seen = []

    def check(resampled_labels: np.ndarray, resampled: np.ndarray) -> np.ndarray:
        seen.append(bool((resampled_labels == labels).all()))
        return resampled.mean(axis=1)

    percentile_bootstrap([labels.astype(float), values], check, np.random.default_rng(0),
                         strata=labels)
    assert seen and all(seen)
    with pytest.raises(ValueError, match="strata"):
        percentile_bootstrap([values], _mean, np.random.default_rng(0), strata=labels[:-1])


def test_a_statistic_of_several_values_gets_an_interval_for_each():
    sample = np.random.default_rng(7).normal(10.0, 1.0, size=500)
    low, high = percentile_bootstrap(
        [sample], lambda s: np.stack([s.mean(axis=1), s.std(axis=1)], axis=1),
        np.random.default_rng(0))
    assert low.shape == high.shape == (2,)
    assert low[0] < sample.mean() < high[0] and low[1] < sample.std() < high[1]
    # the mean's interval is the normal one: +-1.96 standard errors
    assert high[0] - low[0] == pytest.approx(2 * 1.96 * sample.std() / np.sqrt(500), rel=0.15)


def test_seeded_and_the_same_in_chunks(monkeypatch):
    sample = np.random.default_rng(8).normal(size=100)
    first = percentile_bootstrap([sample], _mean, np.random.default_rng(9))
    assert first == percentile_bootstrap([sample], _mean, np.random.default_rng(9))
    assert first != percentile_bootstrap([sample], _mean, np.random.default_rng(10))
    sizes = []

    def recording(values: np.ndarray) -> np.ndarray:
        sizes.append(len(values))
        return values.mean(axis=1)

    monkeypatch.setattr(bootstrap, "CHUNK", 100 * 64)  # 64 replicates at a time
    chunked = percentile_bootstrap([sample], recording, np.random.default_rng(9))
    assert max(sizes) == 64 and sum(sizes) == 1000
    assert chunked[0] == pytest.approx(first[0], rel=0.1)
    assert chunked[1] == pytest.approx(first[1], rel=0.1)


def test_bad_settings_are_refused():
    with pytest.raises(MolstrataError, match="n_bootstrap must be at least 1"):
        percentile_bootstrap([np.ones(3)], _mean, np.random.default_rng(0), n_bootstrap=0)
    with pytest.raises(MolstrataError, match="confidence must be between 0 and 1"):
        percentile_bootstrap([np.ones(3)], _mean, np.random.default_rng(0), confidence=95)
    with pytest.raises(ValueError, match="non-empty"):
        percentile_bootstrap([np.ones(0)], _mean, np.random.default_rng(0))
