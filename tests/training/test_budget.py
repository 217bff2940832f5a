"""Time-budget runs, the learning-rate schedule, the moving average of the weights and the
recipe's options (losses, AdamW), on slices of the real QM9 and small synthetic data."""

import json

import numpy as np
import pytest
import torch

from molstrata.cli import main
from molstrata.deploy.export import export
from molstrata.deploy.modelfile import load_model_file
from molstrata.errors import MolstrataError
from molstrata.evaluation.evaluate import evaluate_run
from molstrata.models import EnergyModel
from molstrata.training import loop
from molstrata.training.batches import DeviceDataset
from molstrata.training.checkpoints import load_checkpoint
from molstrata.training.config import OptimConfig, TrainConfig, parse_duration, preset
from molstrata.training.loop import LoopState, Schedule, make_ema, make_optimizer, train_epoch
from molstrata.training.run import train


def tiny_config(cache_dir, **training) -> TrainConfig:
    config = TrainConfig.from_dict({
        "data": {"cache_dir": str(cache_dir), "max_molecules": 400, "split_seed": 1},
        "model": {"n_atom_basis": 16, "n_interactions": 2, "n_rbf": 10},
        "training": {"batch_size": 16, "lr": 3e-3, "scheduler": "cosine", **training},
        "runtime": {"threads": 1, "seed": 3},
    })
    return config.validate()


class SimulatedClock:
    """A clock that advances by `tick` seconds at every reading, so a budget run depends on
    how often the loop looks at the time, not on the machine. The tick is a power of two:
    every reading and difference is exact in floating point."""

    def __init__(self, tick: float = 2.0**-6) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def curve(run) -> np.ndarray:
    return np.genfromtxt(run / "learning_curve.csv", delimiter=",", names=True)


def test_schedule_warms_up_then_decays_to_min_lr_at_the_end_of_the_run():
    config = OptimConfig(lr=1e-3, min_lr=1e-5, warmup=0.1, scheduler="cosine", epochs=2)
    schedule = Schedule(config, steps_per_epoch=50)
    assert schedule.progress(50, seconds=999.0) == 0.5  # epochs: steps over all steps
    middle = (1e-3 + 1e-5) / 2
    assert schedule.lr(0.0) == pytest.approx(1e-5)
    assert schedule.lr(0.05) == pytest.approx(middle)  # half-way up the warm-up
    assert schedule.lr(0.1) == pytest.approx(1e-3)
    assert schedule.lr(0.55) == pytest.approx(middle)  # half-way down the cosine
    assert schedule.lr(1.0) == pytest.approx(1e-5)
    config.scheduler = "linear"
    assert schedule.lr(0.325) == pytest.approx(1e-3 - 0.25 * (1e-3 - 1e-5))
    assert schedule.lr(1.0) == pytest.approx(1e-5)
    config.scheduler = "none"
    assert schedule.lr(0.7) == 1e-3
    config.time_budget = 60.0  # a budget run: progress is time, steps do not matter
    assert schedule.progress(10**6, seconds=15.0) == 0.25
    assert schedule.progress(0, seconds=90.0) == 1.0


def test_cosine_over_epochs_is_the_closed_form_of_torchs_cosine_annealing():
    """Epoch-based cosine runs keep the schedule they had with CosineAnnealingLR."""
    config = OptimConfig(lr=2e-3, min_lr=1e-6, scheduler="cosine", epochs=3)
    schedule = Schedule(config, steps_per_epoch=7)
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=2e-3)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=21, eta_min=1e-6)
    for step in range(21):
        assert schedule.lr(schedule.progress(step, 0.0)) == pytest.approx(
            optimizer.param_groups[0]["lr"], rel=1e-9)
        optimizer.step()
        reference.step()


def test_durations_parse_and_bad_ones_are_named():
    assert parse_duration("30m") == 1800.0
    assert parse_duration("1.5h") == 5400.0
    assert parse_duration("90s") == parse_duration("90") == 90.0
    assert parse_duration("45min") == 2700.0
    for bad in ("soon", "5 days", "-3m", ""):
        with pytest.raises(MolstrataError, match="is not a duration"):
            parse_duration(bad)
    with pytest.raises(MolstrataError, match="longer than zero"):
        parse_duration("0m")


def test_a_budget_run_stops_at_its_budget_with_the_learning_rate_decayed(
        tmp_path, qm9_cache_dir, monkeypatch):
    monkeypatch.setattr(loop, "clock", SimulatedClock())
    config = tiny_config(qm9_cache_dir, time_budget=3.0, warmup=0.1)
    summary = train(config, tmp_path / "run", progress=False)
    # a step costs one reading (1/64 s) and an epoch's end one more: the run stops at the first
    # step that would start at or after the budget, and then validates once
    assert summary["status"] == "finished" and summary["epochs"] is None
    assert 3.0 <= summary["train_seconds"] <= 3.0 + 2 * 2.0**-6
    rows = curve(tmp_path / "run")
    steps_per_epoch = 20  # 320 training molecules in batches of 16
    assert summary["optimizer_steps"] < len(rows) * steps_per_epoch  # the last epoch was cut
    assert summary["molecules_seen"] < len(rows) * 320
    assert rows["wall_time_s"][-1] == summary["train_seconds"]
    assert rows["lr"][-1] < 1e-6 + 1e-3 * (3e-3 - 1e-6)  # the cosine's very end
    assert rows["lr"][0] > rows["lr"][len(rows) // 2] > rows["lr"][-1]
    with pytest.raises(MolstrataError, match="is finished .* nothing to resume"):
        train(config, tmp_path / "run", resume=True, progress=False)  # nothing left to do


def test_a_budget_run_on_the_real_clock_ends_within_its_budget(tmp_path, qm9_cache_dir,
                                                               capsys):
    run = tmp_path / "run"
    code = main(["train", "--cache-dir", str(qm9_cache_dir), "--time-budget", "3s", "-q",
                 "--threads", "1", "-o", str(run), "--set", "data.max_molecules=300",
                 "--set", "model.n_atom_basis=16", "--set", "training.batch_size=16"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((run / "run.json").read_text())
    assert summary["time_budget_s"] == 3.0 and summary["status"] == "finished"
    assert 3.0 <= summary["train_seconds"] < 3.0 + 2.0  # the budget plus at most one step
    assert curve(run)["lr"][-1] < 0.05 * 1e-3  # the preset's lr, decayed


def test_a_resumed_budget_run_is_the_run_an_uninterrupted_one_is(tmp_path, qm9_cache_dir,
                                                                 monkeypatch):
    options = {"time_budget": 2.5, "warmup": 0.1, "ema": 0.9, "loss": "l1"}
    monkeypatch.setattr(loop, "clock", SimulatedClock())
    train(tiny_config(qm9_cache_dir, **options), tmp_path / "whole", progress=False)

    calls, real_band = [], loop.loss_band

    def interrupt_in_epoch_three(losses):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_band(losses)

    monkeypatch.setattr(loop, "clock", SimulatedClock())
    monkeypatch.setattr(loop, "loss_band", interrupt_in_epoch_three)
    with pytest.raises(MolstrataError, match="interrupted after epoch 2; continue with"):
        train(tiny_config(qm9_cache_dir, **options), tmp_path / "cut", progress=False)
    monkeypatch.setattr(loop, "loss_band", real_band)
    monkeypatch.setattr(loop, "clock", SimulatedClock())  # a new process: a new clock
    train(TrainConfig(), tmp_path / "cut", resume=True, progress=False)

    whole = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.pt")
    cut = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert whole["loop"]["steps"] == cut["loop"]["steps"] > 0
    for key in ("model", "training_model"):
        for name, tensor in whole[key].items():
            assert torch.equal(tensor, cut[key][name]), (key, name)
    for column in ("val_mae_meV", "lr", "wall_time_s"):
        assert np.array_equal(curve(tmp_path / "whole")[column], curve(tmp_path / "cut")[column])


def test_the_moving_average_follows_the_steps_exactly(tiny_molecules):
    torch.manual_seed(0)
    model = EnergyModel(n_atom_basis=8, n_interactions=1, n_rbf=6).double()
    targets = np.linspace(-1.0, 1.0, len(tiny_molecules))
    data = DeviceDataset(tiny_molecules, 5.0, torch.device("cpu"), torch.float64, targets)
    config = OptimConfig(batch_size=8, lr=1e-2, scheduler="none", ema=0.8)
    optimizer, scheduler = make_optimizer(model, config, 5)
    ema = make_ema(model, config)
    seen = []
    optimizer.register_step_post_hook(
        lambda *_: seen.append([p.detach().clone() for p in model.parameters()]))
    state = LoopState()
    train_epoch(model, data, torch.arange(len(data)), config, optimizer, scheduler,
                state=state, ema=ema)
    assert state.steps == len(seen) == 5 and state.molecules == len(data)
    average = seen[0]  # the first update copies, later ones move by 1 - decay
    for weights in seen[1:]:
        average = [0.8 * a + 0.2 * w for a, w in zip(average, weights)]
    for expected, got in zip(average, ema.module.parameters()):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert not torch.equal(average[-1], seen[-1][-1])


def test_checkpoints_validation_and_export_hold_the_averaged_weights(tmp_path, qm9_cache_dir):
    run = tmp_path / "run"
    train(tiny_config(qm9_cache_dir, epochs=3, ema=0.9), run, progress=False)
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert any(not torch.equal(last["model"][k], last["training_model"][k])
               for k in last["model"])
    # the learning curve's validation MAE is the averaged weights' (evaluated afresh)
    evaluation = evaluate_run(run, split="val", checkpoint="last",
                              progress=False, n_bootstrap=10, device="cpu")
    assert 1000 * evaluation.report.overall.summary.mae == pytest.approx(
        curve(run)["val_mae_meV"][-1], rel=1e-5)
    exported = export(run, tmp_path / "model.pt", checkpoint="last")
    state = load_model_file(exported.path).model.state_dict()
    for name, tensor in last["model"].items():
        assert torch.equal(state[name].to(tensor.dtype), tensor), name


@pytest.mark.parametrize(("loss", "optimizer"),
                         [("mse", "adam"), ("l1", "adamw"), ("smooth_l1", "adam")])
def test_every_loss_and_optimizer_learns(tmp_path, qm9_cache_dir, loss, optimizer):
    config = tiny_config(qm9_cache_dir, epochs=8, lr=5e-3, batch_size=8, loss=loss,
                         optimizer=optimizer, weight_decay=1e-4 if optimizer == "adamw" else 0.0)
    train(config, tmp_path / "run", progress=False)
    rows = curve(tmp_path / "run")
    assert rows["train_loss_eV2"][-1] < 0.75 * rows["train_loss_eV2"][0]
    assert rows["val_mae_meV"][-1] < rows["val_mae_meV"][0]
    saved = TrainConfig.from_toml(tmp_path / "run" / "config.toml").training
    assert (saved.loss, saved.optimizer) == (loss, optimizer)


def test_the_default_recipe_is_a_budget_and_epochs_replace_it():
    config = preset("accurate").validate()
    assert config.training.time_budget == 1800.0 and config.data.max_molecules is None
    from molstrata.cli import build_parser
    from molstrata.cli.train import _train_config

    args = build_parser().parse_args(["train", "--epochs", "3"])
    config = _train_config(args)
    assert config.training.time_budget is None and config.training.epochs == 3
    args = build_parser().parse_args(["train", "--preset", "quick", "--time-budget", "1.5h"])
    assert _train_config(args).training.time_budget == 5400.0


@pytest.mark.parametrize(("argv", "message"), [
    (["--time-budget", "soon"], "'soon' is not a duration"),
    (["--time-budget", "0"], "must be longer than zero"),
    (["--epochs", "2", "--time-budget", "5m"],
     "give training.epochs or training.time_budget, not both"),
    (["--time-budget", "5m", "--set", "training.scheduler=plateau"],
     "training.scheduler 'plateau' needs epochs"),
    (["--time-budget", "5m", "--set", "training.early_stopping=3"],
     "training.early_stopping needs epochs"),
    (["--set", "training.ema=1.5"], "training.ema must be a decay per step in (0, 1)"),
    (["--set", "training.loss=huber"], "training.loss must be one of mse, l1, smooth_l1"),
    (["--set", "training.optimizer=sgd"], "training.optimizer must be one of adam, adamw"),
    (["--set", "training.warmup=1"], "training.warmup must be a fraction"),
    (["--epochs", "3", "--set", "training.scheduler=plateau", "--set", "training.warmup=0.1"],
     "training.warmup needs a scheduler of the run's progress"),
    (["--set", "training.time_budget=-5"], "training.time_budget must be a positive duration"),
])
def test_new_options_are_refused_in_one_line_before_any_work(tmp_path, capsys, argv, message):
    code = main(["train", *argv, "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
