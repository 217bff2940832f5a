"""Tiny sweeps on a QM9 slice: outputs, best configs that train, pruning, a worker killed
mid-trial and resumed, an interrupted sweep, and two workers sharing one SQLite storage."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from molstrata.cli import main
from molstrata.sweep.config import load_sweep
from molstrata.sweep.runner import run_sweep
from molstrata.training import loop

SPACE = """
[sweep.space]
"training.lr" = {low = 1e-3, high = 1e-2, log = true}
"model.n_atom_basis" = {choices = [8, 16]}
"data.neighbor_cutoff" = {low = 3.0, high = 5.0}
"""


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def trials(out: Path) -> list[dict]:
    with open(out / "trials.csv") as handle:
        return list(csv.DictReader(handle))


def finished(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["state"] in ("COMPLETE", "PRUNED")]


def test_a_tiny_sweep_writes_its_outputs_and_its_best_config_trains(tmp_path, sweep_file,
                                                                     capsys):
    path = sweep_file('[sweep]\nobjective = "macro_size_mae"\nsampler = "random"\n'
                      'n_trials = 3\npruner = "none"\n' + SPACE)
    out = tmp_path / "out"
    code, stdout, err = cli(capsys, "sweep", "--config", path, "-o", out, "--track",
                            "tensorboard")
    assert code == 0, err
    assert "best: trial" in stdout and "VALIDATION split" in stdout
    rows = trials(out)
    assert [r["trial"] for r in rows] == ["0", "1", "2"]
    assert {r["state"] for r in rows} == {"COMPLETE"}
    assert {"training.lr", "model.n_atom_basis", "data.neighbor_cutoff", "macro_size_mae_meV",
            "global_mae_meV", "worst_size_mae_meV", "train_seconds", "run_dir",
            "seconds"} <= set(rows[0])
    assert len({r["run_dir"] for r in rows}) == 3
    for row in rows:  # the objective is the validation split's, never the test split's
        run = out / row["run_dir"]
        metrics = json.loads((run / "eval-val" / "metrics.json").read_text())
        n_val = len(json.loads((run / "split.json").read_text())["parts"]["val"])
        assert metrics["n_molecules"] == n_val and not (run / "eval-test").exists()
        assert float(row["macro_size_mae_meV"]) == pytest.approx(
            metrics["macro"]["size"]["mae_meV"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / rows[0]["run_dir"] / "tensorboard"))
    events.Reload()
    logged = events.Scalars("val/macro_size_mae_meV")
    assert logged[-1].value == pytest.approx(float(rows[0]["macro_size_mae_meV"]), rel=1e-5)
    assert "curve/val_mae_meV" in events.Tags()["scalars"]
    best = min(rows, key=lambda r: float(r["macro_size_mae_meV"]))
    assert f"best: trial {best['trial']}" in stdout
    for name in ("best.toml", "optimization_history.png", "param_importances.png"):
        assert (out / name).is_file(), name
    assert not (out / "pareto_front.png").exists()
    text = (out / "best.toml").read_text()
    assert f"trial {best['trial']}" in text and "VALIDATION" in text

    code, stdout, err = cli(capsys, "sweep", "--config", path, "-o", out)  # already complete
    assert code == 0 and "this worker finished 0" in stdout and len(trials(out)) == 3

    code, stdout, err = cli(capsys, "train", "--config", out / "best.toml", "-o",
                            tmp_path / "best-run", "-q")
    assert code == 0, err
    assert "finished: 2 epochs" in stdout
    trained = (tmp_path / "best-run" / "config.toml").read_text()
    assert f"n_atom_basis = {best['model.n_atom_basis']}" in trained


def test_two_objectives_give_a_pareto_front(tmp_path, sweep_file):
    sweep = load_sweep(sweep_file(
        '[sweep]\nobjective = ["global_mae", "worst_size_mae"]\nsampler = "grid"\n'
        '[sweep.space]\n"model.n_atom_basis" = {choices = [8, 16]}\n'))
    result = run_sweep(sweep, tmp_path / "out", log=lambda *a: None)
    assert "the grid has 2 points: n_trials lowered from 20" in result.notes
    assert len(result.rows) == 2 and {r.state for r in result.rows} == {"COMPLETE"}
    assert {r.params["model.n_atom_basis"] for r in result.rows} == {8, 16}
    pareto = sorted(p.name for p in (tmp_path / "out").glob("pareto-trial-*.toml"))
    assert pareto == [f"pareto-trial-{n:04d}.toml" for n in result.best] and pareto
    assert (tmp_path / "out" / "pareto_front.png").is_file()
    assert not (tmp_path / "out" / "best.toml").exists()


def test_pruning_stops_a_hopeless_trial(tmp_path, sweep_file):
    sweep = load_sweep(sweep_file(
        '[sweep]\nsampler = "random"\nn_trials = 2\npruner = "median"\n'
        'pruner_startup_trials = 1\npruner_warmup_epochs = 0\n'
        'enqueue = [{"training.lr" = 5e-3}, {"training.lr" = 1e-7}]\n'
        '[sweep.space]\n"training.lr" = {low = 1e-7, high = 1e-2, log = true}\n', epochs=4))
    result = run_sweep(sweep, tmp_path / "out", log=lambda *a: None)
    states = {r.number: r.state for r in result.rows}
    assert states == {0: "COMPLETE", 1: "PRUNED"}
    run = tmp_path / "out" / "trials" / "trial-0001"
    summary = json.loads((run / "run.json").read_text())
    assert summary["status"] == "pruned" and summary["epochs_done"] < 4
    assert len((run / "learning_curve.csv").read_text().splitlines()) == 1 + summary[
        "epochs_done"]
    again = run_sweep(sweep, tmp_path / "out", clean_pruned=True, log=lambda *a: None)
    assert again.ran == [] and not run.exists()
    assert (tmp_path / "out" / "trials" / "trial-0000").is_dir()


def test_a_worker_killed_mid_trial_resumes_and_loses_no_trial(tmp_path, sweep_file):
    path = sweep_file('[sweep]\nn_trials = 2\npruner = "none"\nheartbeat_s = 1\n'
                      'grace_s = 2\n' + SPACE, epochs=40)
    out = tmp_path / "out"
    worker = subprocess.Popen([sys.executable, "-m", "molstrata", "sweep", "--config", path,
                               "-o", str(out), "-q"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    first = out / "trials" / "trial-0000"
    deadline = time.monotonic() + 120
    while not ((first / "checkpoints" / "last.pt").is_file() and (first / "run.json").is_file()):
        assert worker.poll() is None, worker.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    killed = json.loads((first / "run.json").read_text())
    assert killed["status"] == "running" and 1 <= killed["epochs_done"] < 40

    lines = []
    result = run_sweep(load_sweep(path), out, log=lines.append)
    rows = {r.number: r for r in result.rows}
    assert rows[0].state == "FAIL" and "retried as trial" in rows[0].note
    done = [r for r in rows.values() if r.state == "COMPLETE"]
    assert len(done) == 2 and len({r.run_dir for r in done}) == 2
    retry = next(r for r in done if r.retry_of == 0)
    assert retry.run_dir == "trials/trial-0000" and retry.params == rows[0].params
    assert any("retry of trial 0, resuming its run after epoch" in line for line in lines)
    curve = (first / "learning_curve.csv").read_text().splitlines()[1:]
    assert [int(line.split(",")[0]) for line in curve] == list(range(1, 41))
    assert json.loads((first / "run.json").read_text())["status"] == "finished"


def test_an_interrupted_sweep_goes_on_from_the_checkpoint(tmp_path, sweep_file, monkeypatch):
    sweep = load_sweep(sweep_file('[sweep]\nn_trials = 1\npruner = "none"\n' + SPACE,
                                  epochs=4))
    real_band, calls = loop.loss_band, []

    def ctrl_c_in_epoch_three(losses):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_band(losses)

    monkeypatch.setattr(loop, "loss_band", ctrl_c_in_epoch_three)
    lines = []
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, tmp_path / "out", log=lines.append)
    assert "run the same command again" in lines[-1]
    monkeypatch.setattr(loop, "loss_band", real_band)
    lines.clear()
    result = run_sweep(sweep, tmp_path / "out", log=lines.append)
    assert [(r.number, r.state, r.retry_of) for r in result.rows] == [
        (0, "FAIL", None), (1, "COMPLETE", 0)]
    assert "resuming its run after epoch 2" in lines[0]
    study = optuna.load_study(study_name=sweep.name,
                              storage=f"sqlite:///{tmp_path / 'out' / 'sweep.db'}")
    assert study.trials[1].user_attrs["resumed_after_epoch"] == 2


def test_two_workers_share_one_sqlite_storage(tmp_path, sweep_file):
    path = sweep_file('[sweep]\nn_trials = 4\npruner = "none"\n' + SPACE, epochs=3)
    out = tmp_path / "out"
    db = tmp_path / "shared.db"
    command = [sys.executable, "-m", "molstrata", "sweep", "--config", path, "-o", str(out),
               "--storage", f"sqlite:///{db}", "--study-name", "shared", "-q"]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "PYTHONHASHSEED": str(k)})
               for k in range(2)]
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr.decode()
    rows = trials(out)
    done = finished(rows)
    assert len(done) == 4  # none lost, none over the budget
    numbers = [r["trial"] for r in rows]
    assert len(numbers) == len(set(numbers))  # no trial number twice
    assert len({r["run_dir"] for r in done}) == 4  # each trial its own run
    for row in done:
        assert json.loads((out / row["run_dir"] / "run.json").read_text())["status"] == \
            "finished"
    assert all("not run" in r["note"] for r in rows if r["state"] == "FAIL")
    assert len({r["worker"] for r in done}) == 2  # both workers took trials
    assert len({(r["training.lr"], r["model.n_atom_basis"]) for r in done}) == 4


def test_the_architecture_is_a_choice_of_a_sweep(tmp_path, sweep_file):
    sweep = load_sweep(sweep_file(
        '[sweep]\nsampler = "grid"\n'
        '[sweep.space]\n"model.representation" = {choices = ["schnet", "painn"]}\n', epochs=1))
    result = run_sweep(sweep, tmp_path / "out", log=lambda *a: None)
    assert {r.state for r in result.rows} == {"COMPLETE"}
    assert {r.params["model.representation"] for r in result.rows} == {"schnet", "painn"}
    for row in result.rows:
        trial = tmp_path / "out" / "trials" / f"trial-{row.number:04d}"
        config = (trial / "config.toml").read_text()
        assert f'representation = "{row.params["model.representation"]}"' in config
