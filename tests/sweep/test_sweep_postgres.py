"""A sweep shared by two workers through a live PostgreSQL server (tests/pgserver.py), one
killed mid-trial: its trial is retried from its checkpoint, none is lost, and the URL's password
is in no file and no message."""

import csv
import json
import signal
import subprocess
import sys
import time

from pgserver import PASSWORD

SWEEP = """
[sweep]
n_trials = 2
pruner = "none"
sampler = "random"
heartbeat_s = 1
grace_s = 2
[sweep.space]
"training.lr" = {low = 1e-3, high = 1e-2, log = true}
"""


def test_two_workers_on_postgresql_one_killed_lose_no_trial(postgres_url, sweep_file,
                                                            tmp_path):
    path = sweep_file(SWEEP, epochs=12)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "molstrata", "sweep", "--config", path, "-o", str(out),
               "--storage", postgres_url, "--study-name", "shared", "-q"]
    victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = out / "trials" / "trial-0000"
    try:
        deadline = time.monotonic() + 120
        while not ((first / "checkpoints" / "last.pt").is_file()
                   and (first / "run.json").is_file()):
            assert victim.poll() is None, victim.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        other = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    stdout, stderr = other.communicate(timeout=240)
    assert other.returncode == 0, stderr[-2000:]
    with open(out / "trials.csv") as handle:
        rows = {int(r["trial"]): r for r in csv.DictReader(handle)}
    assert rows[0]["state"] == "FAIL" and "retried as trial" in rows[0]["note"]
    done = [r for r in rows.values() if r["state"] == "COMPLETE"]
    assert len(done) == 2 and len({r["run_dir"] for r in done}) == 2  # none lost
    retry = next(r for r in done if r["run_dir"] == "trials/trial-0000")
    assert retry["training.lr"] == rows[0]["training.lr"]
    curve = (first / "learning_curve.csv").read_text().splitlines()[1:]
    assert [int(line.split(",")[0]) for line in curve] == list(range(1, 13))
    assert json.loads((first / "run.json").read_text())["status"] == "finished"
    assert "molstrata:***@127.0.0.1" in stdout
    assert PASSWORD not in stdout + stderr
    for path in out.rglob("*"):
        assert path.is_dir() or PASSWORD.encode() not in path.read_bytes(), path
