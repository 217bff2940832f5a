"""A replicated study on a QM9 slice: training seeds give different models on one split, the
replicates are grouped with two-level intervals, several workers share the study and a
killed worker's run is taken over and resumed."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from molstrata.errors import MolstrataError
from molstrata.evaluation.compare import compare_runs
from molstrata.evaluation.results import load_run_result
from molstrata.study import run_study, runner
from molstrata.study.plan import load_plan
from molstrata.study.queue import WorkQueue

PLAN = """
[study]
title = "Replicated tiny study"
preset = "quick"
replicates = 2

[defaults.data]
max_molecules = 300
excludes = ["F"]
[defaults.model]
n_atom_basis = 8
n_interactions = 1
n_rbf = 8
[defaults.training]
epochs = 2
batch_size = 32
[defaults.runtime]
threads = 1

[experiments.base]
[experiments.big]
[experiments.big.subset]
min_size = 18

[[analyses]]
kind = "directed"
reference = "base"
runs = ["big"]
"""

KEYS = ["base/seed-0", "big/seed-0", "base/seed-1", "big/seed-1"]

# A worker that trains one epoch of its first run, checkpoints it, says so, and hangs: the
# test kills it there, as a machine that dies mid-run.
VICTIM = """
import sys, time
import molstrata.training.run as run_module
real = run_module.run_epochs
def one_epoch_then_hang(*args, **kwargs):
    args = list(args)
    callback = args[9]
    def hang(state, improved):
        callback(state, improved)
        print("CHECKPOINTED", flush=True)
        time.sleep(600)
    args[9] = hang
    return real(*args, **kwargs)
run_module.run_epochs = one_epoch_then_hang
from molstrata.study import run_study
run_study(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3], progress=False, heartbeat_s=1)
"""


@pytest.fixture
def plan_file(tmp_path):
    path = tmp_path / "replicated.toml"
    path.write_text(PLAN)
    return path


def test_plan_replicates_are_runs_with_their_own_seed(plan_file):
    plan = load_plan(plan_file)
    assert [r.key for r in plan.runs] == KEYS
    assert [r.config.runtime.seed for r in plan.runs] == [0, 0, 1, 1]
    assert load_plan(plan_file, replicates=3).runs[-1].key == "big/seed-2"
    with pytest.raises(MolstrataError, match="replicates must be a whole number"):
        load_plan(plan_file, replicates=0)


def test_two_workers_train_each_run_once_and_seeds_differ(plan_file, tmp_path, qm9_cache_dir,
                                                          capfd, monkeypatch):
    out = tmp_path / "out"
    log: list[str] = []
    real_train = runner._train

    def train_once_the_helper_holds_a_run(replicate, run_dir, progress, log_):
        """The helper imports torch before it claims anything: this worker's first run waits
        until the helper holds one, so that the two train at the same time."""
        deadline = time.monotonic() + 120
        queue = WorkQueue.for_folder(out)
        while len(queue.status().running) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        monkeypatch.setattr(runner, "_train", real_train)
        return real_train(replicate, run_dir, progress, log_)

    monkeypatch.setattr(runner, "_train", train_once_the_helper_holds_a_run)
    result = run_study(plan_file, out, cache_dir=str(qm9_cache_dir), workers=2, progress=False,
                       log=log.append)
    helper = capfd.readouterr().out
    started = re.findall(r"== \[\d/4\] (\S+): ", "\n".join(log) + "\n" + helper)
    assert sorted(started) == sorted(KEYS)  # every run trained, none twice
    assert re.search(r"\[worker 2\] == \[\d/4\] ", helper)  # the helper did take a share
    for key in KEYS:
        assert json.loads((out / "runs" / key / "run.json").read_text())["status"] == "finished"

    # the same split, other models
    parts = [json.loads((out / "runs" / key / "split.json").read_text())["parts"]
             for key in ("base/seed-0", "base/seed-1")]
    assert parts[0] == parts[1]
    base = result.results["base"]
    assert base.k == 2 and base.seeds == (0, 1)
    errors = base.seed_errors
    assert errors.shape == (2, base.report.n_molecules)
    assert not np.allclose(errors[0], errors[1])
    summary = base.report.overall.summary
    assert summary.seeds == 2 and summary.mae_seed_sd > 0
    assert summary.mae == pytest.approx(errors.mean(axis=1).mean())
    assert summary.mae_ci_low < summary.mae < summary.mae_ci_high

    # a group folder compares as one run, with two-level leads
    group = load_run_result(out / "runs" / "base", evaluate_missing=False)
    assert group.k == 2 and group.label == "base"
    single = load_run_result(out / "runs" / "big" / "seed-0", evaluate_missing=False)
    comparison = compare_runs([group, single])
    assert comparison.wins[0].seeds == 2
    assert "two-level" in comparison.wins_table().rows[0][-1]
    h4 = result.analyses[0].findings[0]
    assert "2 and 2 training seeds (t interval" in h4.evidence
    assert (out / "experiments" / "base" / "error_by_size.png").is_file()

    # and so does the command line's compare, given the folders
    from molstrata.cli import main

    capfd.readouterr()
    assert main(["compare", str(out / "runs" / "base"), str(out / "runs" / "big"), "-o",
                 str(tmp_path / "cmp")]) == 0
    printed = capfd.readouterr().out
    assert "intervals cover the training seeds (base 2, big 2) and the test molecules" in printed
    assert "still learning at the end" in printed or "had flattened" in printed
    overview = (tmp_path / "cmp" / "comparison.csv").read_text().splitlines()
    assert overview[0].split(",")[3] == "seeds" and overview[1].split(",")[3] == "2"


def test_a_killed_workers_run_is_taken_over_and_resumed(plan_file, tmp_path, qm9_cache_dir):
    out = tmp_path / "out"
    victim = subprocess.Popen(
        [sys.executable, "-c", VICTIM, str(plan_file), str(out), str(qm9_cache_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        for line in victim.stdout:
            if "CHECKPOINTED" in line or time.monotonic() > deadline:
                break
        assert victim.poll() is None, "the victim worker stopped before its first checkpoint"
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    held = [key for key in KEYS if (out / "runs" / key / "checkpoints" / "last.pt").is_file()]
    assert held == ["base/seed-0"]

    log: list[str] = []
    run_study(plan_file, out, cache_dir=str(qm9_cache_dir), progress=False, heartbeat_s=1,
              log=log.append)
    text = "\n".join(log)
    assert "base/seed-0: " in text and "(taken over from a worker that stopped)" in text
    assert f"resuming {out / 'runs' / 'base' / 'seed-0'}" in text
    started = re.findall(r"== \[\d/4\] (\S+): ", text)
    assert sorted(started) == sorted(KEYS)
    curve = (out / "runs" / "base" / "seed-0" / "learning_curve.csv").read_text()
    assert [line.split(",")[0] for line in curve.strip().splitlines()[1:]] == ["1", "2"]
