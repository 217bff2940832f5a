"""Whether a run had stopped learning: judged by the fitted trend of its validation MAE over
the end of training, and by an experiment's worst seed, not by two epochs or the mean."""

from __future__ import annotations

import math

import pytest

from molstrata.training.convergence import FLAT, run_convergence, still_learning


def _curve(tmp_path, name: str, mae: list[float], lr: list[float] | None = None):
    lr = lr or [1e-3] * len(mae)
    path = tmp_path / f"{name}.csv"
    path.write_text("epoch,val_mae_meV,lr\n" + "".join(
        f"{i + 1},{m},{r}\n" for i, (m, r) in enumerate(zip(mae, lr))))
    return path


def test_a_steady_fall_at_the_end_is_still_learning_and_a_plateau_is_not(tmp_path):
    falling = [100 * 0.97**i for i in range(10)]  # 3 % per epoch to the end
    flat = [100 * 0.7**min(i, 4) for i in range(10)]  # no change over the last 5 epochs
    c = run_convergence(_curve(tmp_path, "falling", falling))
    assert c.slope == pytest.approx(math.log(0.97)) and not c.flat
    assert c.projected_fall == pytest.approx(1 - 0.97**3)  # the last 4 epochs: 3 steps
    assert run_convergence(_curve(tmp_path, "flat", flat)).flat
    assert still_learning([_curve(tmp_path, "falling", falling)]) is not None
    assert still_learning([_curve(tmp_path, "flat", flat)]) is None


def test_an_experiment_is_judged_by_its_worst_seed(tmp_path):
    """Two seeds flat and one still falling 4 % an epoch: their mean fall is under 2 % over
    the tail, but the seed still learning makes the experiment still learning."""
    flat = [50.0] * 10
    falling = [100 * 0.96**i for i in range(10)]
    curves = [_curve(tmp_path, f"seed{i}", flat) for i in range(2)] + \
        [_curve(tmp_path, "seed2", falling)]
    falls = [run_convergence(c).projected_fall for c in curves]
    assert sum(falls) / 3 < FLAT + 0.03 and max(falls) > FLAT
    why = still_learning(curves)
    assert why is not None and "worst of 3 seeds" in why


def test_one_noisy_last_epoch_does_not_decide_it(tmp_path):
    """A plateau whose last epoch dips by 3 % (noise): two epochs' values would call it still
    learning; the trend over the tail does not."""
    mae = [100, 80, 70, 65, 60, 60.5, 59.5, 60.4, 59.8, 60.2, 58.3]
    c = run_convergence(_curve(tmp_path, "noisy", mae))
    assert c.fall > FLAT  # the old two-point criterion
    assert c.flat


def test_a_decayed_learning_rate_is_named_as_what_flattens_the_curve(tmp_path):
    lr = [1e-3 * 0.5 * (1 + math.cos(math.pi * i / 9)) for i in range(10)]
    assert run_convergence(_curve(tmp_path, "cosine", [50.0] * 10, lr)).scheduled
    assert not run_convergence(_curve(tmp_path, "constant", [50.0] * 10)).scheduled
