"""A study shared by three workers through a live PostgreSQL server (tests/pgserver.py), each
in its own process and working directory, one killed mid-run: its run is taken over and
resumed, nothing is trained twice, the report is written once, and the URL's password is in
no file and no message."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

from pgserver import PASSWORD

PLAN = """
[study]
title = "Tiny shared study"
preset = "quick"

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
[experiments.mid]
[experiments.mid.subset]
min_size = 13
[experiments.big]
[experiments.big.subset]
min_size = 18

[[analyses]]
kind = "directed"
reference = "base"
runs = ["big"]
"""

KEYS = ["base/seed-0", "mid/seed-0", "big/seed-0"]

# A worker of the study, as `molstrata study PLAN --storage URL` runs it (with a 1 s
# heartbeat). As the victim, it trains one epoch of its first run, checkpoints, says so and
# hangs, as a machine that dies mid-run.
WORKER = """
import sys, time
victim = sys.argv[5] == "victim"
if victim:
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
run_study(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3], storage=sys.argv[4],
          progress=False, heartbeat_s=1, log=lambda text: print(text, flush=True))
"""


def test_three_workers_one_killed_share_a_study_on_postgresql(postgres_url, tmp_path,
                                                              qm9_cache_dir):
    plan, out = tmp_path / "shared.toml", tmp_path / "shared" / "out"
    plan.write_text(PLAN)

    def worker(name: str) -> subprocess.Popen:
        home = tmp_path / name  # a working directory of its own, as on another machine
        home.mkdir()
        return subprocess.Popen([sys.executable, "-c", WORKER, str(plan), str(out),
                                 str(qm9_cache_dir), postgres_url, name], cwd=home,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    victim = worker("victim")
    try:
        deadline = time.monotonic() + 120
        for line in victim.stdout:
            if "CHECKPOINTED" in line or time.monotonic() > deadline:
                break
        assert victim.poll() is None, victim.stderr.read()
        held = [key for key in KEYS if (out / "runs" / key / "checkpoints" / "last.pt").is_file()]
        assert len(held) == 1
        others = [worker("one"), worker("two")]
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    outputs = [w.communicate(timeout=240) for w in others]
    assert [w.returncode for w in others] == [0, 0], [err[-2000:] for _, err in outputs]
    logs = [stdout for stdout, _ in outputs]
    text = "\n".join(logs)
    started = re.findall(r"== \[\d/3\] (\S+): ", text)
    assert sorted(started) == sorted(KEYS)  # each once here: the killed run resumed, no other
    assert text.count("(taken over from a worker that stopped)") == 1
    assert f"resuming {out / 'runs' / held[0]}" in text
    for key in KEYS:
        curve = (out / "runs" / key / "learning_curve.csv").read_text().strip().splitlines()
        assert [line.split(",")[0] for line in curve[1:]] == ["1", "2"], key
        assert json.loads((out / "runs" / key / "run.json").read_text())["status"] == "finished"
    writers = [log for log in logs if "writing the report" in log]
    assert len(writers) == 1 and (out / "report" / "report.html").is_file()
    assert sum("written by another worker" in log for log in logs) == 1
    for _, err in outputs:
        assert PASSWORD not in err
    assert PASSWORD not in text
    for path in out.rglob("*"):
        assert path.is_dir() or PASSWORD.encode() not in path.read_bytes(), path
