"""The machine a run trains on: its CPU's name, and whether other processes keep it busy."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

OWN_WORKERS_ENV = "MOLSTRATA_WORKERS_OF"
"""Set by a command for the processes it starts to train beside it (a study's workers) to
its own pid: that process and its descendants are this command's own load, not a busy CPU."""


def _machine_busy_s() -> float:
    """Seconds of CPU time the whole machine has spent busy (not idle, not waiting on I/O)."""
    with open("/proc/stat") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _workers_busy_s() -> float:
    """Seconds of CPU time this command's other processes have spent: the process that
    OWN_WORKERS_ENV names (else this one) and its descendants, this process left out."""
    root = int(os.environ.get(OWN_WORKERS_ENV) or os.getpid())
    children: dict[int, list[int]] = {}
    seconds: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        seconds[pid] = (int(fields[11]) + int(fields[12])) / tick
    tree, busy = [root], 0.0
    while tree:
        pid = tree.pop()
        busy += seconds.get(pid, 0.0) if pid != os.getpid() else 0.0
        tree += children.get(pid, [])
    return busy


def others_busy_cores(window_s: float = 0.25, wait: Callable[[float], None] = time.sleep
                      ) -> float | None:
    """Cores that other processes keep busy, measured over `window_s` seconds: the machine's
    busy CPU time (/proc/stat) minus this process's own and that of this command's other
    workers (`_workers_busy_s`: a study's sibling workers are its plan, not a busy CPU). Not
    the load average, which still counts this process's previous work (a study's previous
    experiment) for a minute. None where /proc/stat does not exist."""
    try:
        machine, workers = _machine_busy_s(), _workers_busy_s()
        own, wall = time.process_time(), time.perf_counter()
        wait(window_s)
        machine, workers = _machine_busy_s() - machine, _workers_busy_s() - workers
    except (OSError, ValueError):
        return None
    own, wall = time.process_time() - own, time.perf_counter() - wall
    return max(0.0, (machine - own - workers) / wall)


def busy_cpu(threads: int, others: float | None = None, cores: int | None = None) -> str | None:
    """A warning when other processes already keep this machine's cores busy, else None.
    Two trainings sharing 2 cores with 2 threads each ran 7 times slower than one alone.
    None for a run of one thread, which has no fewer to give. others: busy cores of other
    processes (default: measured by `others_busy_cores`)."""
    if threads <= 1:
        return None
    others = others_busy_cores() if others is None else others
    cores = len(os.sched_getaffinity(0)) if cores is None else cores
    if others is None or others + threads <= cores + 0.5:
        return None
    return (f"the CPU is busy (other processes keep {others:.1f} of {cores} cores busy) and "
            f"this run uses {threads} threads: processes that share cores can run several "
            f"times slower than alone; give each fewer threads (--threads "
            f"{max(1, cores // 2)}) or run one at a time")


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), for the figures a run reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
