"""Data-parallel processes on torch.distributed: who this process is, and the few collectives
training and evaluation need.

A process started by `torchrun` (or `molstrata train --devices N`, which starts torchrun's own
launcher) finds RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in its environment;
it joins the group with NCCL on GPUs and Gloo on the CPU. A lone process gets `Ranks` of world
size 1, whose collectives do nothing, so the training code has one path.

Work is split by rows, never by molecules' content: a global batch (or a validation set) is
cut into `world` contiguous pieces in rank order, and gathering the pieces in rank order
restores it, so metrics computed from the gathered predictions equal one process's.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from molstrata.errors import MolstrataError, ReportedElsewhere

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
DEFAULT_TIMEOUT_S = 600.0
"""How long a collective waits for a silent (hung, not dead) peer before failing. A peer that
dies closes its connections and the others fail at their next collective, at once."""


class PeerFailure(MolstrataError):
    """Another process of the group died or stopped answering, or the launcher stopped this one."""


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel group: rank in 0..world-1, its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """Rank 0: the only process that writes files, logs and draws progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def piece(self, n: int) -> slice:
        """This rank's contiguous piece of n rows (sizes differ by at most one, rank order)."""
        return _piece(n, self.rank, self.world)

    def gather(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """(n,) the pieces of every rank (each `local` is this rank's `piece(n)`), in order."""
        if not self.distributed:
            return local
        longest = -(-n // self.world)
        padded = torch.zeros(longest, dtype=local.dtype, device=local.device)
        padded[: len(local)] = local
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        _collective(dist.all_gather, parts, padded)
        return torch.cat([part[: _size(n, r, self.world)] for r, part in enumerate(parts)])

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum `tensor` over ranks, in place; returns it."""
        if self.distributed:
            _collective(dist.all_reduce, tensor, op=dist.ReduceOp.SUM)
        return tensor

    def max_(self, value: float) -> float:
        """The largest of every rank's `value` (the slowest clock, made everyone's)."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        _collective(dist.all_reduce, tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true on any rank (one rank's decision, made everyone's)."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        _collective(dist.all_reduce, value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def barrier(self) -> None:
        if self.distributed:
            value = torch.zeros(1, device=self.device)
            _collective(dist.all_reduce, value)


def _size(n: int, rank: int, world: int) -> int:
    return n // world + (1 if rank < n % world else 0)


def _piece(n: int, rank: int, world: int) -> slice:
    start = rank * (n // world) + min(rank, n % world)
    return slice(start, start + _size(n, rank, world))


def batch_pieces(order: np.ndarray | torch.Tensor, batch_size: int, rank: int,
                 world: int) -> list:
    """This rank's rows of every global batch of `order`: batch k is order[kB:(k+1)B], cut
    into `world` contiguous pieces. The pieces of all ranks are disjoint and their union, in
    rank order, is exactly the one-process epoch, batch by batch."""
    pieces = []
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        pieces.append(batch[_piece(len(batch), rank, world)])
    return pieces


def _collective(function, *args, **kwargs) -> None:
    try:
        function(*args, **kwargs)
    except RuntimeError as error:
        if not peer_error(error):
            raise
        raise PeerFailure(f"another process of this distributed run failed "
                          f"({first_line(error)})") from None


def peer_error(error: BaseException) -> bool:
    """Whether `error` is a collective failing because a peer is gone or silent (Gloo raises
    plain RuntimeErrors naming its transport; NCCL and the store raise DistErrors)."""
    if isinstance(error, dist.DistError):
        return True
    text = str(error)
    return any(mark in text for mark in ("gloo", "Gloo", "NCCL", "Connection reset",
                                         "Connection closed", "Broken pipe", "Timed out"))


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first sentence of an error, without Gloo's "[source.cc:line] " prefix."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(error).strip())
    text = text.splitlines()[0].split(". ")[0] if text else type(error).__name__
    return text[:limit]


def is_main_process() -> bool:
    """Whether this process is rank 0 of its group (or alone): the one that prints results."""
    return int(os.environ.get("RANK", "0")) == 0


def _world_size() -> int:
    """How many processes torchrun started for this job (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def one_process(what: str) -> None:
    """Refuse to run `what` (a whole study, a sweep) as several torchrun processes: they would
    each repeat it. Its training runs go data-parallel one by one instead."""
    if _world_size() > 1:
        raise MolstrataError(
            f"{what} runs in one process, not under torchrun; train its runs data-parallel "
            "with molstrata train --devices N (or torchrun ... -m molstrata train)"
        )


def environment() -> dict[str, str] | None:
    """torchrun's variables when this process was started as one of several, else None."""
    if _world_size() <= 1:
        return None
    missing = [name for name in ENV if name not in os.environ]
    if missing:
        raise MolstrataError(
            f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but {', '.join(missing)} is not set; start "
            "several processes with torchrun or molstrata train --devices N"
        )
    return {name: os.environ[name] for name in ENV}


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when a GPU is visible, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MolstrataError(f"device {name!r} asked for, but no CUDA GPU is visible; use cpu")
    return torch.device(name)


def _device(name: str, local_rank: int, world: int) -> torch.device:
    """The device of the process with `local_rank`: the CPU, or the GPU of its LOCAL_RANK."""
    where = resolve_device(name)
    if where.type == "cpu":
        return where
    if where.index is not None and world > 1:
        raise MolstrataError(
            f"device {name!r} names one GPU, but this run has {world} processes; use device "
            "cuda (each process takes the GPU of its LOCAL_RANK)"
        )
    if local_rank >= torch.cuda.device_count():
        raise MolstrataError(
            f"process LOCAL_RANK {local_rank} has no GPU ({torch.cuda.device_count()} visible); "
            "start at most one process per GPU on each machine"
        )
    return where if where.index is not None else torch.device(f"cuda:{local_rank}")


class Terminated(BaseException):
    """SIGTERM from the launcher (it stops every process when one fails)."""


def _on_sigterm(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def process_group(device: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[Ranks]:
    """Join torchrun's group when this process is one of several, else a world of one; left
    on exit. Under a group SIGTERM (sent by the launcher when a peer dies) becomes a
    PeerFailure, so the caller can record where the run stopped; on ranks other than 0 a
    PeerFailure leaves as ReportedElsewhere (the failed process, rank 0 or the launcher
    says what happened, once)."""
    env = environment()
    if env is None:
        yield Ranks(device=resolve_device(device))
        return
    rank, world, local_rank = int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"])
    where = _device(device, local_rank, world)
    if where.type == "cuda":
        torch.cuda.set_device(where)
    backend = "nccl" if where.type == "cuda" else "gloo"
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        try:
            dist.init_process_group(backend, rank=rank, world_size=world,
                                    timeout=datetime.timedelta(seconds=timeout_s))
        except (RuntimeError, OSError, ValueError) as error:
            raise MolstrataError(
                f"cannot join the distributed group at {env['MASTER_ADDR']}:{env['MASTER_PORT']} "
                f"({first_line(error)}); check torchrun's --rdzv-endpoint "
                "and that every machine can reach it"
            ) from None
        try:
            yield Ranks(rank, world, local_rank, where)
        except (Terminated, PeerFailure) as error:
            if rank != 0:  # a consequence of another process's failure, which that one reports
                raise ReportedElsewhere(str(error)) from None
            if isinstance(error, PeerFailure):
                raise
            raise PeerFailure("stopped by the launcher: another process of this run failed") \
                from None
        finally:
            with contextlib.suppress(Exception):
                dist.destroy_process_group()
    finally:
        signal.signal(signal.SIGTERM, previous)
