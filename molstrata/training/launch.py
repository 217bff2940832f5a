"""`--devices N`: start the same command as N processes on this machine with torchrun's own
launcher (PyTorch's elastic agent, standalone rendezvous), exactly as

    torchrun --standalone --nproc-per-node N -m molstrata ARGS...

would, and turn a failed process into one line that names it."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Sequence

import torch

from molstrata.errors import Interrupted, MolstrataError
from molstrata.training.rundir import RunPaths, is_finished

MONITOR_INTERVAL_S = 0.5
"""How often the launcher checks its processes: a dead one stops the others this soon."""


def worker_devices() -> int | None:
    """The number of processes torchrun started on this machine, when this is one of them."""
    if "LOCAL_WORLD_SIZE" in os.environ and "RANK" in os.environ:
        return int(os.environ["LOCAL_WORLD_SIZE"])
    return None


def launch_devices(argv: Sequence[str], devices: int | None, device: str,
                   run_dir: str | None = None) -> bool:
    """Start `python -m molstrata argv` on `devices` processes and wait for them: True once
    they finished (the caller has nothing left to do), False when this process should do the
    work itself (one device, or it already is one of torchrun's processes). `run_dir`: the
    training run they write, named in the `--resume` advice when they fail after creating it."""
    if devices is None:
        return False
    if devices < 1:
        raise MolstrataError(f"--devices must be at least 1, not {devices}")
    started = worker_devices()
    if started is not None:
        if started != devices:
            raise MolstrataError(
                f"--devices {devices} given, but torchrun started {started} processes on this "
                "machine; drop --devices under torchrun (its --nproc-per-node decides)"
            )
        return False
    if devices == 1:
        return False
    gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if gpu and devices > torch.cuda.device_count():
        raise MolstrataError(
            f"--devices {devices} asks for more GPUs than the {torch.cuda.device_count()} "
            "visible; give at most that many, or --device cpu for CPU processes"
        )
    _run(list(argv), devices, gpu, run_dir)
    return True


def _run(argv: list[str], devices: int, gpu: bool, run_dir: str | None) -> None:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run  # (imported before its loggers are quieted)

    if not gpu and "OMP_NUM_THREADS" not in os.environ:
        # the machine's cores shared out, instead of torchrun's default of one thread each
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // devices))
    args = parse_args(["--standalone", f"--nproc-per-node={devices}", "--max-restarts=0",
                       f"--monitor-interval={MONITOR_INTERVAL_S}", "-m", "molstrata", *argv])
    quiet = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
             if name.startswith("torch.distributed")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:  # the agent's own failure report: replaced by one line below
        logger.setLevel(logging.CRITICAL)
    try:
        run(args)
    except ChildFailedError as error:
        rank, failure, on_error = _root_failure(error.failures)
        if on_error:
            what = f"process {rank} stopped with the error printed above"
        elif failure.exitcode < 0:
            what = f"process {rank} (pid {failure.pid}) was killed by {failure.signal_name()}"
        else:
            what = f"process {rank} (pid {failure.pid}) exited with code {failure.exitcode}"
        raise MolstrataError(
            f"{what}; the other processes were stopped{_resume_hint(run_dir, devices)}"
        ) from None
    except (SignalException, KeyboardInterrupt):  # Ctrl-C or a kill: the agent stopped them
        raise Interrupted(
            f"interrupted; the processes were stopped{_resume_hint(run_dir, devices)}"
        ) from None
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)


def _root_failure(failures: dict) -> tuple:
    """(rank, failure, stopped on an error) of the process that made the others stop: one
    killed or crashed (not stopped by the agent's SIGTERM, not exit code 2) if any, the
    earliest; else, when some stopped on an error (code 2), the one that printed it. Rank 0
    says the run's errors and the others stop with code 2 when it goes, sometimes before it
    has exited, and then the agent's SIGTERM ends rank 0: rank 0 is named whenever it stopped
    either way. The agent's own first failure is a tie whenever both stop in the same second,
    so it decides nothing."""
    caused = [(f.timestamp, rank, f) for rank, f in failures.items()
              if f.exitcode not in (2, -signal.SIGTERM)]
    if caused:
        _, rank, failure = min(caused, key=lambda item: item[:2])
        return rank, failure, False
    errors = sorted(rank for rank, f in failures.items() if f.exitcode == 2)
    if errors:
        rank = 0 if 0 in failures else errors[0]
        return rank, failures[rank], True
    rank, failure = min(failures.items(), key=lambda item: item[1].timestamp)
    return rank, failure, False


def _resume_hint(run_dir: str | None, devices: int) -> str:
    """How to go on, for a run the processes created and did not finish (only such a run
    can resume)."""
    if run_dir is None or not RunPaths(run_dir).is_run() or is_finished(run_dir):
        return ""
    return f"; continue with: molstrata train --resume {run_dir} --devices {devices}"
