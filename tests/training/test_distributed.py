"""Data-parallel training on two Gloo processes (CPU): the same step, the same epochs, the same
metrics and files as one process, and a run that survives losing a rank."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed

from molstrata.cli import main
from molstrata.errors import MolstrataError
from molstrata.evaluation.evaluate import evaluate_run
from molstrata.training import launch
from molstrata.training.checkpoints import load_checkpoint
from molstrata.training.config import TrainConfig, preset
from molstrata.training.data import prepare
from molstrata.training.distributed import (
    Ranks,
    batch_pieces,
    environment,
    first_line,
    peer_error,
    process_group,
)
from molstrata.training.launch import launch_devices
from molstrata.training.run import train
from molstrata.training.rundir import RunPaths
from molstrata.training.weights import weight_factors

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="this torch build has no torch.distributed with Gloo",
)
HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def _env(**extra: str) -> dict[str, str]:
    """The test's environment for child processes: molstrata importable, one thread each."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env | extra


def _molstrata(*args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "molstrata", *args], env=_env(**extra),
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


# ---- sharding: pure functions ---------------------------------------------------------------


@pytest.mark.parametrize("world", [2, 3, 5])
def test_batch_pieces_are_disjoint_and_rebuild_every_global_batch(world):
    order = np.random.default_rng(0).permutation(103)
    per_rank = [batch_pieces(order, 10, rank, world) for rank in range(world)]
    assert all(len(pieces) == 11 for pieces in per_rank)  # every rank takes every step
    for step in range(11):
        rebuilt = np.concatenate([per_rank[rank][step] for rank in range(world)])
        np.testing.assert_array_equal(rebuilt, order[10 * step : 10 * step + 10])
        sizes = [len(per_rank[rank][step]) for rank in range(world)]
        assert max(sizes) - min(sizes) <= 1
    everything = np.concatenate([p for pieces in per_rank for p in pieces])
    assert len(everything) == len(set(everything.tolist())) == 103


def test_treated_epochs_shard_exactly_with_caps_and_size_weights(qm9_cache_dir):
    """Undersampled (cap) and size-weighted training on a QM9 slice: two ranks' pieces of an
    epoch are disjoint, together they are the one-process epoch, and the weights they apply are
    the one-process weights (normalised to mean 1 over the whole treated split)."""
    config = preset("quick")
    config.data.cache_dir, config.data.max_molecules = str(qm9_cache_dir), 3000
    config.subset.cap = 60
    config.training.loss_weighting, config.training.rate = "size_frequency", 5.0
    config.training.batch_size = 64
    data = prepare(config, progress=False)
    sizes = data.molecules.sizes[data.split.train]
    assert np.bincount(sizes).max() == 60  # the cap did bind
    weights = weight_factors(sizes, sizes, "size_frequency", 5.0, 1.0)
    order = np.random.default_rng([0, 4]).permutation(len(sizes))  # epoch 4's order
    pieces = [batch_pieces(order, 64, rank, 2) for rank in range(2)]
    rows = [np.concatenate(p) for p in pieces]
    assert not set(rows[0].tolist()) & set(rows[1].tolist())
    assert sorted(np.concatenate(rows).tolist()) == list(range(len(sizes)))
    # each step's loss weights: the two pieces' sums make the one-process batch's sum
    for step in range(len(pieces[0])):
        alone = weights[order[64 * step : 64 * step + 64]].sum()
        assert weights[pieces[0][step]].sum() + weights[pieces[1][step]].sum() == \
            pytest.approx(alone, rel=1e-12)
    assert weights.mean() == pytest.approx(1.0)


def test_a_world_of_one_is_the_plain_process():
    ranks = Ranks()
    assert ranks.main and not ranks.distributed and ranks.piece(7) == slice(0, 7)
    values = torch.arange(5.0)
    assert ranks.gather(values, 5) is values and ranks.sum_(values) is values
    assert ranks.any(True) and not ranks.any(False)


# ---- one optimiser step -----------------------------------------------------------------------


def _torchrun(nproc: int, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc-per-node={nproc}", *args],
        env=_env(**extra), capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.parametrize("representation", ["schnet", "painn"])
def test_one_ddp_step_equals_one_process_step_on_the_same_global_batch(tmp_path, representation):
    """Global batch of 13 molecules with size weights, float64: the gradients after DDP's
    averaging and the weights after one Adam step equal one process's to 1e-8."""
    alone, pair = tmp_path / "alone", tmp_path / "pair"
    alone.mkdir(), pair.mkdir()
    worker = str(HERE / "ddp_step_worker.py")
    subprocess.run([sys.executable, worker, str(alone), representation], env=_env(), check=True,
                   timeout=120)
    result = _torchrun(2, worker, str(pair), representation)
    assert result.returncode == 0, result.stderr[-2000:]
    reference = np.load(alone / "rank0.npz")
    ranks = [np.load(pair / f"rank{r}.npz") for r in range(2)]
    assert len(reference.files) > 10
    for name in reference.files:
        for got in ranks:
            np.testing.assert_allclose(got[name], reference[name], rtol=1e-8, atol=1e-12,
                                       err_msg=name)
    grads = [n for n in reference.files if n.startswith("grad:")]
    assert any(np.abs(reference[n]).max() > 1e-3 for n in grads)  # a step that moved


# ---- whole runs ------------------------------------------------------------------------------


RUN_OPTIONS = ("--preset", "quick", "--max-molecules", "1000", "--epochs", "10",
               "--batch-size", "50", "--cap", "40", "--loss-weighting", "size", "--rate", "2",
               "--device", "cpu", "-q", "--set", "runtime.dtype=float64",
               "--set", "model.n_atom_basis=16", "--set", "model.n_interactions=2",
               "--set", "training.scheduler=plateau", "--set", "training.plateau_patience=1")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, qm9_cache_dir):
    """The same treated, float64 config trained in this process and on two Gloo processes."""
    folder = tmp_path_factory.mktemp("ddp")
    options = (*RUN_OPTIONS, "--cache-dir", str(qm9_cache_dir))
    assert main(["train", *options, "-o", str(folder / "alone")]) == 0
    started = time.perf_counter()
    result = _molstrata("train", *options, "--devices", "2", "-o", str(folder / "pair"))
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, options, result, time.perf_counter() - started


def _curve(run: Path) -> np.ndarray:
    lines = (run / "learning_curve.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name not in ("wall_time_s",)]
    return np.array([[float(line.split(",")[i]) for i in keep] for line in lines[1:]])


def test_two_processes_train_what_one_process_trains(runs):
    folder, _, result, _ = runs
    assert "× 2 processes" in result.stdout + result.stderr
    assert (result.stdout + result.stderr).count("finished: 10 epochs") == 1  # rank 0 prints
    np.testing.assert_allclose(_curve(folder / "pair"), _curve(folder / "alone"), rtol=1e-8)
    for name in ("best", "last"):
        ours = load_checkpoint(folder / "pair" / "checkpoints" / f"{name}.pt")["model"]
        theirs = load_checkpoint(folder / "alone" / "checkpoints" / f"{name}.pt")["model"]
        for key, value in theirs.items():
            torch.testing.assert_close(ours[key], value, rtol=1e-8, atol=1e-12)
    summary = json.loads((folder / "pair" / "run.json").read_text())
    assert summary["status"] == "finished" and summary["processes"] == 2


def test_rank_zero_alone_writes_one_run_directory(runs):
    folder, _, _, _ = runs
    files = sorted(p.relative_to(folder / "pair").as_posix()
                   for p in (folder / "pair").rglob("*") if p.is_file())
    assert files == ["checkpoints/best.pt", "checkpoints/last.pt", "config.toml",
                     "learning_curve.csv", "run.json", "split.json"]
    assert sorted(p.name for p in folder.iterdir()) == ["alone", "pair"]
    assert (folder / "pair" / "split.json").read_text() == \
        (folder / "alone" / "split.json").read_text()


def test_distributed_evaluation_equals_one_process(runs):
    """Two processes each predict half of the test molecules; rank 0's stratified metrics
    equal those of evaluating the saved model in one process, and the last validation MAE of
    the two-process learning curve is the one-process evaluation of its last checkpoint."""
    folder, _, _, _ = runs
    run = folder / "pair"
    result = _molstrata("evaluate", str(run), "--devices", "2", "--device", "cpu",
                        "--bootstrap", "50", "-o", str(folder / "eval-two"))
    assert result.returncode == 0, result.stderr[-3000:]
    alone = evaluate_run(run, device="cpu", n_bootstrap=50, out_dir=folder / "eval-one",
                         progress=False)
    assert json.loads((folder / "eval-two" / "evaluation.json").read_text())["processes"] == 2
    for name in ("metrics_by_size.csv", "metrics_by_element.csv", "predictions.csv"):
        two = (folder / "eval-two" / name).read_text().splitlines()
        one = (folder / "eval-one" / name).read_text().splitlines()
        assert len(two) == len(one) > 2
        for a, b in zip(two, one):
            cells = zip(a.split(","), b.split(","))
            for x, y in cells:
                try:
                    assert float(x) == pytest.approx(float(y), rel=1e-9, abs=1e-12), name
                except ValueError:
                    assert x == y
    assert len(alone.predictions.true) == len(prepare(
        TrainConfig.from_toml(run / "config.toml"), run / "split.json", False).split.test)
    last_val = evaluate_run(run, split="val", checkpoint="last", device="cpu", n_bootstrap=10,
                            out_dir=folder / "eval-val", progress=False)
    curve_mae = float((run / "learning_curve.csv").read_text().splitlines()[-1].split(",")[3])
    # the curve subtracts reference energies from the targets, the evaluation adds them to the
    # predictions: the same numbers by two float64 paths through values of ~1e4 eV
    assert last_val.report.overall.summary.mae * 1000 == pytest.approx(curve_mae, rel=1e-7)


def _pid_of_rank(tag: str, rank: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"MOLSTRATA_TEST_TAG={tag}".encode() in env and f"RANK={rank}".encode() in env:
            return int(entry.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_a_killed_rank_stops_the_run_which_resumes_on_one_process(runs):
    """SIGKILL rank 1 after the first epoch: the launcher stops rank 0 within seconds with one
    line naming the dead process, run.json says interrupted, and the run resumes on a single
    process to the same weights as the uninterrupted runs (the epoch's order is global)."""
    folder, options, _, _ = runs
    run, tag = folder / "killed", uuid.uuid4().hex
    launcher = subprocess.Popen(
        [sys.executable, "-m", "molstrata", "train", *options, "--devices", "2", "-o",
         str(run)], env=_env(MOLSTRATA_TEST_TAG=tag), cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "learning_curve.csv").exists():
            assert launcher.poll() is None and time.monotonic() < deadline, "no first epoch"
            time.sleep(0.02)
        victim = _pid_of_rank(tag, 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        _, stderr = launcher.communicate(timeout=60)
        stopped_after = time.monotonic() - killed
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 2
    assert stopped_after < 30, f"rank 0 took {stopped_after:.0f} s to stop"
    assert "process 1" in stderr and "killed by SIGKILL" in stderr
    assert f"--resume {run}" in stderr
    assert "Traceback" not in stderr
    summary = json.loads((run / "run.json").read_text())
    assert summary["status"] == "interrupted" and 1 <= summary["epochs_done"] < 10
    assert not list(run.rglob("*.part"))  # no half-written file

    assert main(["train", "--resume", str(run), "-q"]) == 0
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    np.testing.assert_allclose(_curve(run), _curve(folder / "alone"), rtol=1e-8)
    ours = load_checkpoint(RunPaths(run).last)["model"]
    theirs = load_checkpoint(RunPaths(folder / "pair").last)["model"]
    for key, value in theirs.items():
        torch.testing.assert_close(ours[key], value, rtol=1e-8, atol=1e-12)


# ---- what users get wrong ----------------------------------------------------------------------


def test_devices_mismatch_and_bad_environments_are_one_line_errors(monkeypatch, tmp_path):
    with pytest.raises(MolstrataError, match="at least 1"):
        launch_devices([], 0, "cpu")
    assert launch_devices([], 1, "cpu") is False  # one device: this process trains
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    with pytest.raises(MolstrataError, match="torchrun started 4 processes"):
        launch_devices([], 2, "cpu")
    assert launch_devices([], 4, "cpu") is False
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(MolstrataError, match="MASTER_ADDR"):
        environment()
    with pytest.raises(MolstrataError, match="MASTER_ADDR"), process_group("cpu"):
        pass


def test_under_torchrun_a_run_needs_an_explicit_directory(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert main(["train", "--epochs", "1"]) == 2
    assert "--out" in capsys.readouterr().err


def test_too_many_gpus_is_refused_before_launching():
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(MolstrataError, match="no CUDA GPU|more GPUs"):
        launch_devices([], 2, "cuda")


def test_peer_errors_are_recognised_and_shortened():
    gloo = RuntimeError("[/__w/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read "
                        "error [127.0.0.1]:37508: Connection reset by peer. This is typically "
                        "caused by a remote worker hanging")
    assert peer_error(gloo)
    assert first_line(gloo) == "Read error [127.0.0.1]:37508: Connection reset by peer"
    assert not peer_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


def test_train_in_process_reports_processes_one(tmp_path, qm9_cache_dir):
    config = preset("quick")
    config.data.cache_dir, config.data.max_molecules = str(qm9_cache_dir), 200
    config.training.epochs, config.model.n_atom_basis, config.runtime.device = 1, 8, "cpu"
    summary = train(config, tmp_path / "run", progress=False, log=lambda m: None)
    assert summary["processes"] == 1


def test_a_study_refuses_to_run_as_several_processes(monkeypatch, tmp_path):
    from molstrata.study.runner import run_study

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(MolstrataError, match="molstrata study runs in one process"):
        run_study("quick", tmp_path / "study", progress=False, log=lambda m: None)
    assert not (tmp_path / "study").exists()


def test_a_bad_file_under_devices_is_said_once_with_no_run_left(tmp_path):
    """Rank 0 names the missing file, the launcher adds which process stopped; rank 1 (which
    only saw rank 0 go) says nothing, and no --resume is offered for a run never created."""
    result = _molstrata("train", "--dataset", str(tmp_path / "missing.extxyz"), "--epochs", "1",
                        "--device", "cpu", "--devices", "2", "-q", "-o", str(tmp_path / "run"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"molstrata: error: file not found: {tmp_path / 'missing.extxyz'}; check "
                     "the path",
                     "molstrata: error: process 0 stopped with the error printed above; the "
                     "other processes were stopped"]
    assert not (tmp_path / "run").exists()


def test_an_existing_run_under_devices_is_refused_once_and_kept(runs):
    folder, options, _, _ = runs
    run = folder / "pair"
    before = (run / "checkpoints" / "last.pt").read_bytes()
    result = _molstrata("train", *options, "--devices", "2", "-o", str(run))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "already holds a finished run" in lines[0]
    assert "(rank 1)" not in result.stderr
    assert lines[0].endswith(f"train it further as a new run with --init-from {run}, or choose "
                             "another --out")
    assert lines[1].endswith("the other processes were stopped")  # no --resume: it is finished
    assert (run / "checkpoints" / "last.pt").read_bytes() == before


def _failure(exitcode: int, timestamp: int = 0) -> SimpleNamespace:
    return SimpleNamespace(exitcode=exitcode, timestamp=timestamp, pid=100, signal_name=str)


@pytest.mark.parametrize(("failures", "named", "on_error"), [
    # rank 1 saw rank 0 go and exited first; the agent's SIGTERM then ended rank 0
    ({0: _failure(-signal.SIGTERM), 1: _failure(2)}, 0, True),
    ({0: _failure(2, 5), 1: _failure(2, 4)}, 0, True),
    ({1: _failure(2)}, 1, True),
    # a crash is named before any error, whoever stopped first
    ({0: _failure(2, 1), 1: _failure(1, 9)}, 1, False),
    ({0: _failure(-signal.SIGTERM, 3), 1: _failure(-signal.SIGKILL, 4)}, 1, False),
])
def test_the_process_that_stopped_the_others_is_named(failures, named, on_error):
    rank, failure, error = launch._root_failure(failures)
    assert (rank, error) == (named, on_error) and failure is failures[rank]
