"""Tracking: learning curves also to TensorBoard and to W&B offline, inside the run directory."""

import importlib.util
import os

import pytest

from molstrata.errors import MolstrataError
from molstrata.training import tracking
from molstrata.training.config import TrainConfig
from molstrata.training.run import train


def tiny(cache_dir, **runtime) -> TrainConfig:
    return TrainConfig.from_dict({
        "data": {"cache_dir": str(cache_dir), "max_molecules": 200},
        "model": {"n_atom_basis": 8, "n_interactions": 1, "n_rbf": 8},
        "training": {"epochs": 2, "batch_size": 32, "scheduler": "none"},
        "runtime": {"threads": 1, **runtime},
    }).validate()


def test_curves_go_to_tensorboard_and_wandb_offline(tmp_path, qm9_cache_dir, monkeypatch):
    for name in ("WANDB_MODE", "WANDB_SILENT", "WANDB_ERROR_REPORTING", "WANDB_DISABLE_GIT",
                 "WANDB_DISABLE_CODE", "WANDB_CONSOLE"):
        monkeypatch.delenv(name, raising=False)  # what the tracker sets is undone afterwards
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))  # the run dir wins
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))  # W&B's own logs
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    run = tmp_path / "run"
    summary = train(tiny(qm9_cache_dir, track=["tensorboard", "wandb"]), run, progress=False)
    assert summary["status"] == "finished"
    assert (run / "learning_curve.csv").is_file()  # CSV stays, always

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"curve/train_loss_eV2", "curve/val_loss_eV2", "curve/val_mae_meV", "curve/lr",
            "curve/band_low_eV2", "curve/band_high_eV2", "run/best_val_mae_meV"} <= set(tags)
    assert [e.step for e in events.Scalars("curve/val_mae_meV")] == [1, 2]
    assert events.Scalars("run/best_val_mae_meV")[0].value == pytest.approx(
        summary["best_val_mae_meV"], rel=1e-5)

    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("run-*.wandb"))
    assert not (tmp_path / "elsewhere").exists()
    assert os.environ["WANDB_MODE"] == "offline"


def test_a_missing_tracking_library_is_one_line(tmp_path, qm9_cache_dir, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(MolstrataError, match=r"needs the wandb package.*molstrata\[tracking\]"):
        train(tiny(qm9_cache_dir, track=["wandb"]), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_unknown_trackers_are_refused():
    with pytest.raises(MolstrataError, match="runtime.track"):
        TrainConfig.from_dict({"runtime": {"track": ["mlflow"]}}).validate()
    with pytest.raises(MolstrataError, match="at most once"):
        TrainConfig.from_dict({"runtime": {"track": ["wandb", "wandb"]}}).validate()
    assert set(tracking.TRACKERS) == {"tensorboard", "wandb"}
