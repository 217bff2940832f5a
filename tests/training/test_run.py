"""Training end to end on a slice of the real QM9: runs are directories, resumable, exact."""

import json

import numpy as np
import pytest
import torch

from molstrata.errors import MolstrataError
from molstrata.training import loop
from molstrata.training.checkpoints import load_checkpoint
from molstrata.training.config import TrainConfig
from molstrata.training.run import train


def tiny_config(cache_dir, representation="schnet", **training) -> TrainConfig:
    config = TrainConfig.from_dict({
        "data": {"cache_dir": str(cache_dir), "max_molecules": 400, "split_seed": 1},
        "model": {"representation": representation, "n_atom_basis": 16, "n_interactions": 2,
                  "n_rbf": 10},
        "training": {"epochs": 4, "batch_size": 16, "lr": 3e-3, **training},
        "runtime": {"threads": 1, "seed": 3},
    })
    return config.validate()


def test_training_writes_a_run_and_drives_the_loss_down(tmp_path, qm9_cache_dir):
    config = tiny_config(qm9_cache_dir, epochs=8, lr=5e-3, batch_size=8)
    summary = train(config, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"config.toml", "split.json", "checkpoints",
                                               "learning_curve.csv", "run.json"}
    assert summary["status"] == "finished" and summary["epochs_done"] == 8
    curve = np.genfromtxt(run / "learning_curve.csv", delimiter=",", names=True)
    assert curve.dtype.names == ("epoch", "train_loss_eV2", "val_loss_eV2", "val_mae_meV", "lr",
                                 "wall_time_s", "band_low_eV2", "band_high_eV2")
    assert curve["train_loss_eV2"][-1] < 0.6 * curve["train_loss_eV2"][0]
    assert (curve["band_low_eV2"] <= curve["train_loss_eV2"]).all()
    assert (curve["train_loss_eV2"] <= curve["band_high_eV2"]).all()
    best = int(np.argmin(curve["val_loss_eV2"]))  # the best epoch has the lowest val loss
    assert summary["best_epoch"] == best + 1
    assert summary["best_val_mae_meV"] == pytest.approx(curve["val_mae_meV"][best])
    assert set(summary["reference_energies"]) <= {"H", "C", "N", "O", "F"}
    checkpoint = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert checkpoint["loop"]["best_epoch"] == summary["best_epoch"]


def test_run_json_records_the_backend_the_model_chose_and_why(tmp_path, qm9_cache_dir,
                                                              monkeypatch):
    from molstrata.models import backends, kernels

    chosen = train(tiny_config(qm9_cache_dir, epochs=1), tmp_path / "own", progress=False)
    expected = backends.choose(torch.device("cpu"))
    assert chosen["backend"] == expected
    assert (chosen["backend_note"] is None) == (expected == "kernel-openmp")
    monkeypatch.setenv(kernels.ENV_VAR, "0")
    off = train(tiny_config(qm9_cache_dir, epochs=1), tmp_path / "off", progress=False)
    assert off["backend"] == "torch" and "MOLSTRATA_KERNELS=0" in off["backend_note"]
    painn_off = train(tiny_config(qm9_cache_dir, "painn", epochs=1), tmp_path / "painn-off",
                      progress=False)
    assert painn_off["backend"] == "torch" and "MOLSTRATA_KERNELS=0" in painn_off["backend_note"]
    assert json.loads((tmp_path / "off" / "run.json").read_text())["backend"] == "torch"
    monkeypatch.delenv(kernels.ENV_VAR)
    painn = train(tiny_config(qm9_cache_dir, "painn", epochs=1), tmp_path / "painn",
                  progress=False)
    assert (painn["backend"], painn["backend_note"] is None) == (expected,
                                                                 expected == "kernel-openmp")
    assert json.loads((tmp_path / "painn" / "run.json").read_text())["backend"] == expected


@pytest.mark.parametrize("representation", ["schnet", "painn"])
def test_resume_equals_an_uninterrupted_run(tmp_path, qm9_cache_dir, monkeypatch,
                                            representation):
    config = tiny_config(qm9_cache_dir, representation)
    train(config, tmp_path / "whole", progress=False)

    calls = []
    real_band = loop.loss_band

    def interrupt_in_epoch_three(losses):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_band(losses)

    monkeypatch.setattr(loop, "loss_band", interrupt_in_epoch_three)
    with pytest.raises(MolstrataError, match="interrupted after epoch 2; continue with"):
        train(tiny_config(qm9_cache_dir, representation), tmp_path / "cut", progress=False)
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(loop, "loss_band", real_band)
    train(TrainConfig(), tmp_path / "cut", resume=True, progress=False)

    whole = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.pt")
    cut = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, cut["model"][name]), name
    curve_whole = (tmp_path / "whole" / "learning_curve.csv").read_text().splitlines()
    curve_cut = (tmp_path / "cut" / "learning_curve.csv").read_text().splitlines()
    column = lambda lines, k: [line.split(",")[k] for line in lines]  # noqa: E731
    assert column(curve_whole, 3) == column(curve_cut, 3)  # validation MAE, epoch by epoch


def test_a_second_run_in_the_same_folder_is_refused(tmp_path, qm9_cache_dir):
    train(tiny_config(qm9_cache_dir, epochs=1), tmp_path / "run", progress=False)
    with pytest.raises(MolstrataError, match="already holds a finished run; train it further "
                                             "as a new run with init_from="):
        train(tiny_config(qm9_cache_dir, epochs=1), tmp_path / "run", progress=False)


def test_not_a_run_and_corrupted_checkpoints(tmp_path, qm9_cache_dir):
    with pytest.raises(MolstrataError, match="is not a molstrata run directory"):
        train(TrainConfig(), tmp_path, resume=True)
    train(tiny_config(qm9_cache_dir, epochs=1), tmp_path / "run", progress=False)
    summary = json.loads((tmp_path / "run" / "run.json").read_text())  # as if interrupted
    (tmp_path / "run" / "run.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:500])
    with pytest.raises(MolstrataError, match="is damaged or not a molstrata checkpoint"):
        train(TrainConfig(), tmp_path / "run", resume=True, progress=False)


def test_checkpoints_refuse_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "molstrata-checkpoint", "version": 1, "x": Evil()}, path)
    with pytest.raises(MolstrataError, match="damaged or not a molstrata checkpoint"):
        load_checkpoint(path)


def test_targeted_subset_keeps_the_test_set_whole(tmp_path, qm9_cache_dir):
    config = tiny_config(qm9_cache_dir, epochs=1)
    config.subset.min_size = 18
    train(config, tmp_path / "big", progress=False)
    whole = tiny_config(qm9_cache_dir, epochs=1)
    train(whole, tmp_path / "all", progress=False)
    big = json.loads((tmp_path / "big" / "split.json").read_text())["parts"]
    full = json.loads((tmp_path / "all" / "split.json").read_text())["parts"]
    assert big["test"] == full["test"]
    assert set(big["train"]) < set(full["train"]) and set(big["val"]) <= set(full["val"])


def test_an_element_training_never_saw_is_named(tiny_molecules):
    from molstrata.training.data import check_elements

    no_fluorine = tiny_molecules.subset(~tiny_molecules.contains("F"))
    fluorine_ids = sorted(tiny_molecules.ids[tiny_molecules.contains("F")].tolist())
    with pytest.raises(MolstrataError, match=r"contain F, which no training molecule has") as err:
        check_elements(no_fluorine, tiny_molecules, "test")
    named = [int(x) for x in str(err.value).split("ids [")[1].split("]")[0].split(",")]
    assert set(named) <= set(fluorine_ids) and named
    check_elements(tiny_molecules, no_fluorine, "test")  # the other way round is fine


@pytest.mark.parametrize(("model", "message"), [
    ({"representation": "nequip"}, "unknown representation 'nequip'"),
    ({"representation": "painn", "n_filters": 32},
     "model.n_filters is an option of schnet, not of painn; drop it or set "
     "model.representation"),
    ({"shared_filters": True}, "model.shared_filters is an option of painn, not of schnet"),
    ({"activation": "relu"}, "model.activation 'relu'; use one of"),
])
def test_an_impossible_architecture_is_one_line(qm9_cache_dir, model, message):
    config = tiny_config(qm9_cache_dir)
    for key, value in model.items():
        config.override("model", key, value)
    with pytest.raises(MolstrataError, match=message) as raised:
        config.validate()
    assert "\n" not in str(raised.value)


def test_a_painn_run_records_its_architecture_everywhere(tmp_path, qm9_cache_dir):
    train(tiny_config(qm9_cache_dir, "painn", epochs=1), tmp_path / "run", progress=False)
    saved = TrainConfig.from_toml(tmp_path / "run" / "config.toml")
    assert saved.model.representation == "painn"
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert checkpoint["hyperparameters"]["representation"] == "painn"
    assert any(".mixing." in key for key in checkpoint["model"])  # PaiNN's own blocks


def test_a_compiled_run_learns_what_the_plain_run_learns(tmp_path, qm9_cache_dir):
    """runtime.compile runs the training steps under torch.compile: the same steps, up to
    float32 rounding in fused kernels."""
    plain = train(tiny_config(qm9_cache_dir, epochs=2), tmp_path / "plain", progress=False)
    config = tiny_config(qm9_cache_dir, epochs=2)
    config.override("runtime", "compile", True)
    compiled = train(config, tmp_path / "compiled", progress=False)
    assert compiled["optimizer_steps"] == plain["optimizer_steps"]
    assert compiled["best_val_mae_meV"] == pytest.approx(plain["best_val_mae_meV"], rel=1e-3)
    assert 'compile = true' in (tmp_path / "compiled" / "config.toml").read_text()
    assert (compiled["backend"], compiled["backend_note"]) == ("torch", "torch.compile")
