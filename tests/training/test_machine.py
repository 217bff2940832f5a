"""The busy-CPU warning: other processes' load, not this command's own workers'."""

import subprocess
import sys
import time

import pytest

import molstrata.training.machine as machine


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / machine.os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("how", ["child", "named by the environment"])
def test_this_command_s_own_workers_do_not_count_as_a_busy_cpu(monkeypatch, how):
    """A study's `--workers 2` saw its sibling worker as 'other processes keep 1.0 of 2 cores
    busy'. Here the machine's busy time is this process's, a burning worker's and 0.75 of a
    core elsewhere: the worker is a child of this process (the study's own process), or the
    process the environment names as the command's (a helper worker's view)."""
    worker = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        if how == "child":
            monkeypatch.delenv(machine.OWN_WORKERS_ENV, raising=False)
        else:
            monkeypatch.setenv(machine.OWN_WORKERS_ENV, str(worker.pid))
        start = time.perf_counter()
        monkeypatch.setattr(machine, "_machine_busy_s", lambda: time.process_time()
                            + _cpu_seconds(worker.pid) + 0.75 * (time.perf_counter() - start))
        assert machine.others_busy_cores(0.5) == pytest.approx(0.75, abs=0.15)
    finally:
        worker.kill()
        worker.wait()


def test_a_run_of_one_thread_is_not_told_to_use_fewer():
    assert machine.busy_cpu(1, others=2.0, cores=2) is None
    assert "--threads 1" in machine.busy_cpu(2, others=2.0, cores=2)
