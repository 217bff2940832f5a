import numpy as np
import pytest

from molstrata.training.band import loss_band
from molstrata.training.weights import weight_factors


def test_size_weights_by_hand():
    train = np.array([10, 10, 15, 20])  # s_min 10, s_max 20
    raw = np.array([1, 1, 1 + 2 * 0.5, 1 + 2 * 1.0])  # r = 2
    v = weight_factors(train, train, "size", rate=2.0)
    np.testing.assert_allclose(v, raw / raw.mean())
    assert v.mean() == pytest.approx(1.0)
    # sizes outside the training set follow the same line, with the training normalisation
    expected = (1 + 2 * 1.5) / raw.mean()
    np.testing.assert_allclose(weight_factors([25], train, "size", 2.0), [expected])


def test_size_frequency_weights_by_hand():
    train = np.array([10, 10, 10, 15, 20, 20])  # f: 10 -> 1/2, 15 -> 1/6, 20 -> 1/3; f_max 1/2
    r = 10.0
    raw = {10: 1.0, 15: 1 + r * 0.5 * (1 - (1 / 6) / 0.5), 20: 1 + r * 1.0 * (1 - (1 / 3) / 0.5)}
    expected = np.array([raw[s] for s in train])
    v = weight_factors(train, train, "size_frequency", rate=r)
    np.testing.assert_allclose(v, expected / expected.mean())


def test_inverse_frequency_and_plain_loss():
    train = np.array([5, 5, 5, 9])
    v = weight_factors(train, train, "inverse_frequency", alpha=1.0)
    raw = np.array([4 / 3, 4 / 3, 4 / 3, 4.0])
    np.testing.assert_allclose(v, raw / raw.mean())
    np.testing.assert_allclose(weight_factors(train, train, "inverse_frequency", alpha=0.0), 1.0)
    np.testing.assert_allclose(weight_factors(train, train, "size", rate=0.0), 1.0)
    np.testing.assert_allclose(weight_factors(train, train, "none", rate=5.0), 1.0)


def test_loss_band_on_a_known_sequence():
    losses = np.arange(1.0, 21.0)[::-1]  # 20 batches with losses 20 .. 1
    assert loss_band(losses) == (3.0, 18.0)  # mean(1..5), mean(16..20)
    assert loss_band([4.0, 2.0]) == (3.0, 3.0)
    with pytest.raises(ValueError):
        loss_band([])
