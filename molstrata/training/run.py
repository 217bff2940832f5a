"""Training a run: a model trained as its config says, written into its run directory
(the directory's layout, readers and checks: `training.rundir`), resumable after every epoch.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

import molstrata
from molstrata._files import atomic_write_text
from molstrata.data.molecules import Molecules, element_symbol
from molstrata.data.splits import save_split
from molstrata.errors import Interrupted, MolstrataError, ReportedElsewhere
from molstrata.models import EnergyModel, complete_hyperparameters, kernels
from molstrata.tables import write_csv
from molstrata.training.batches import DeviceDataset
from molstrata.training.checkpoints import load_checkpoint, save_checkpoint
from molstrata.training.config import RESULT_NEUTRAL, TrainConfig
from molstrata.training.data import PreparedData, prepare
from molstrata.training.distributed import (
    PeerFailure,
    Ranks,
    Terminated,
    first_line,
    peer_error,
    process_group,
)
from molstrata.training.loop import LoopState, make_ema, make_optimizer, run_epochs
from molstrata.training.machine import busy_cpu, cpu_name
from molstrata.training.rundir import (
    RUN_FORMAT,
    RUN_VERSION,
    RunPaths,
    read_run_config,
    write_run_summary,
)
from molstrata.training.targets import Standardization, fit_standardization
from molstrata.training.tracking import Tracker, check_available, open_tracker
from molstrata.training.weights import weight_factors
from molstrata.units import error_unit, squared_unit, unit_key
from molstrata.wording import counted

EpochHook = Callable[[dict[str, float]], None]
"""Called after every epoch (its checkpoint written) with the epoch's learning-curve row as
learning_curve.csv names it (`epoch`, `train_loss_eV2`, `val_mae_meV`, ...); it may raise
StopTraining."""


class StopTraining(Exception):
    """Raised by an epoch hook to end a run after the current epoch (a sweep pruning a hopeless
    trial): train() records `status` in run.json and returns normally."""

    def __init__(self, status: str = "stopped") -> None:
        super().__init__(status)
        self.status = status


def build_model(config: TrainConfig, extensive: bool) -> EnergyModel:
    return EnergyModel(**config.model.hyperparameters(extensive))


def train(config: TrainConfig | None, run_dir: str | os.PathLike, *, resume: bool = False,
          changes: Mapping[tuple[str, str], Any] | None = None, progress: bool = True,
          log=print, on_epoch: Sequence[EpochHook] = (), tracker: Tracker | None = None) -> dict:
    """Train a model as `config` says, in `run_dir`; with resume, continue from last.pt.

    A resumed run follows its own config.toml (`config` may be None); `changes` maps (section,
    key) to a new value of an option of RESULT_NEUTRAL, such as the device or the threads.
    Started by torchrun as one of several processes, this is one rank of a data-parallel run
    (see `distributed`): every rank trains, rank 0 alone writes the run directory, logs and
    runs the hooks. on_epoch: hooks called after every epoch (see EpochHook). tracker: an open
    Tracker the caller closes; without one, the trackers of `config.runtime.track` are opened
    and closed here.
    """
    paths = RunPaths(run_dir)
    if resume:
        config = resumed_config(run_dir, changes or {})
    elif config is None or changes:
        raise TypeError("a new run needs a config, and takes no changes")
    config.validate()
    if config.training.init_from is not None and config.data.split_file is None:
        config.data.split_file = str(_init_source(config.training.init_from).split)
    if tracker is None:
        check_available(config.runtime.track)
    with process_group(config.runtime.device) as ranks:
        # rank 0 looks, and every rank learns its answer, before rank 0 writes anything
        problem = paths.new_run_problem() if ranks.main and not resume else None
        if ranks.any(problem is not None):
            raise problem or ReportedElsewhere("rank 0 refused the run directory")
        return _train(config, paths, resume, progress and ranks.main,
                      log if ranks.main else _quiet, on_epoch, tracker, ranks)


def resumed_config(run_dir: str | os.PathLike, changes: Mapping[tuple[str, str], Any]
                   ) -> TrainConfig:
    """The config a run was started with, with `changes` to options of RESULT_NEUTRAL; any
    other change is refused, since a resumed run must reach the result it would have. A run
    that is finished is refused too: its length cannot change on resume."""
    config = read_run_config(RunPaths(run_dir).require_unfinished().root)
    for (section, key), value in changes.items():
        if (section, key) not in RESULT_NEUTRAL:
            allowed = ", ".join(f"{s}.{k}" for s, k in RESULT_NEUTRAL)
            raise MolstrataError(
                f"a resumed run continues exactly as its config.toml says, and {section}.{key} "
                f"would change its result; drop it (a resumed run may change only {allowed})"
            )
        config.override(section, key, value, "resume")
    return config.validate()


def _init_source(run_dir: str) -> RunPaths:
    """The run that training.init_from names, or a one-line error."""
    paths = RunPaths(run_dir)
    try:
        paths.require()
    except MolstrataError as error:
        raise MolstrataError(f"training.init_from: {error}") from None
    if not paths.best.is_file():
        raise MolstrataError(f"training.init_from: {paths.root} has no checkpoints/best.pt yet; "
                             "start from a run that finished at least one epoch")
    return paths


def _init_weights(model: EnergyModel, source: RunPaths) -> None:
    """Load the best weights of another run into `model`, which must have its architecture."""
    payload = load_checkpoint(source.best)
    theirs = complete_hyperparameters(payload["hyperparameters"])
    ours = complete_hyperparameters(model.hyperparameters)
    differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if differ:
        key = differ[0]
        raise MolstrataError(
            f"training.init_from: {source.root}'s model has {key}={theirs.get(key)!r} where this "
            f"run's has {ours.get(key)!r}; give this run the same [model] options"
        )
    model.load_state_dict(payload["model"])


def _quiet(message: str) -> None:
    """The log of ranks other than 0."""


def _train(config: TrainConfig, paths: RunPaths, resume: bool, progress: bool, log,
           on_epoch: Sequence[EpochHook], tracker: Tracker | None, ranks: Ranks) -> dict:
    runtime = config.runtime
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    device = ranks.device
    dtype = torch.float64 if runtime.dtype == "float64" else torch.float32
    started = time.perf_counter()

    if not ranks.main:
        ranks.barrier()  # rank 0 loads first: it may write the dataset cache the others read
    data = prepare(config, paths.split if resume else None, progress=progress)
    if ranks.main:
        ranks.barrier()
    split = data.split
    train_m, val_m = data.molecules.subset(split.train), data.molecules.subset(split.val)
    standard = fit_standardization(train_m, data.values[split.train], data.extensive)
    if not resume and ranks.main:
        atomic_write_text(paths.config, config.to_toml())
        save_split(split, paths.split, data.molecules, seed=config.data.split_seed,
                   fractions=config.data.split, dataset=config.data.dataset)

    torch.manual_seed(runtime.seed)
    model = build_model(config, data.extensive)
    if config.training.init_from is not None:
        _init_weights(model, _init_source(config.training.init_from))
    model.set_standardization(standard.atomrefs, standard.shift, standard.scale)
    model.to(device=device, dtype=dtype)
    pair_cutoff = config.pair_cutoff
    weights = weight_factors(train_m.sizes, train_m.sizes, config.training.loss_weighting,
                             config.training.rate, config.training.alpha)
    train_ds = DeviceDataset(train_m, pair_cutoff, device, dtype,
                             data.values[split.train] - standard.reference(train_m), weights,
                             geometry=model.geometry)
    val_ds = DeviceDataset(val_m, pair_cutoff, device, dtype,
                           data.values[split.val] - standard.reference(val_m),
                           geometry=model.geometry)
    steps = -(-len(train_ds) // config.training.batch_size)
    optimizer, scheduler = make_optimizer(model, config.training, steps)
    ema = make_ema(model, config.training)
    state = LoopState()
    if resume and paths.last.is_file():
        state = _restore(paths.last, model, optimizer, scheduler, ema, device, steps)
        log(f"resuming {paths.root} after epoch {state.epoch}"
            + (f" on {ranks.world} processes" if ranks.distributed else ""))
    elif resume:
        log(f"{paths.root} has no checkpoint yet (it stopped before its first epoch ended): "
            "starting it from the beginning")
    trained = wrap(model, ranks)
    if runtime.compile:  # validation runs the plain module (see loop.predict_residuals)
        trained = torch.compile(trained, dynamic=True)
    facts = _run_facts(config, data, standard, train_m, device, ranks)
    # the backend the model chose once for this device (models/backends.py), and why not the
    # kernel when a CPU runs PyTorch's ops; a compiled graph always runs PyTorch's ops
    facts["backend"] = "torch" if runtime.compile else model.backend
    facts["backend_note"] = ("torch.compile" if runtime.compile else kernels.status()
                             if facts["backend"] == "torch" and device.type == "cpu" else None)
    own_tracker = tracker is None
    if own_tracker and ranks.main:
        tracker = open_tracker(config.runtime.track, paths.root, config.to_dict(),
                               config.to_toml())
    setup_seconds = time.perf_counter() - started
    processes = f" × {ranks.world} processes" if ranks.distributed else ""
    length = config.training.length + (" of time budget (training.epochs N for a run of N "
                                       "epochs)" if config.training.time_budget else "")
    busy = busy_cpu(torch.get_num_threads()) if device.type == "cpu" and ranks.main else None
    if busy is not None:
        log(f"warning: {busy}")
    convolution = f"; backend {facts['backend']}" + (f" ({facts['backend_note']})"
                                                      if facts["backend_note"] else "")
    log(f"training on {len(train_ds):,} molecules ({train_ds.n_pairs:,} pairs), validating on "
        f"{len(val_ds):,}, for {length}; device {device}, "
        f"{counted(torch.get_num_threads(), 'thread')}{processes}{convolution}")

    def on_epoch_end(state: LoopState, improved: bool) -> None:
        stop = None
        if ranks.main:
            stop = record_epoch(state, improved)
        if ranks.any(stop is not None):
            raise stop or StopTraining()

    def record_epoch(state: LoopState, improved: bool) -> StopTraining | None:
        payload = _payload(model, optimizer, scheduler, ema, state, config)
        if improved:
            save_checkpoint(paths.best, payload)
        save_checkpoint(paths.last, payload)
        _write_curve(paths.curve, state, data.unit)
        row = state.curve[-1]
        factor, mae_unit = error_unit(data.unit)
        if progress:
            log(f"epoch {row['epoch']:>3}: val MAE {factor * row['val_mae']:.2f} {mae_unit}, "
                f"lr {row['lr']:.2e}, {row['wall_time_s']:.0f} s")
        _write_summary(paths, facts, state, "running", setup_seconds + state.train_seconds)
        named = curve_row(row, data.unit)
        if tracker is not None:
            tracker.log({f"curve/{k}": v for k, v in named.items() if k != "epoch"},
                        row["epoch"])
        try:
            for hook in on_epoch:
                hook(named)
        except StopTraining as stop:
            return stop
        return None

    write = ranks.main

    def stopped(error: BaseException) -> None:
        """Record where an interrupted run stopped and raise the line that says how to go on
        (rank 0 says it for every rank)."""
        if write:
            _write_summary(paths, facts, state, "interrupted", time.perf_counter() - started)
        peer = isinstance(error, PeerFailure)
        what = f"{error}; stopped" if peer else "interrupted"
        where = (f"after epoch {state.epoch}; continue with" if state.epoch else
                 "before its first epoch ended, so nothing is saved yet; start it again with")
        kind = (MolstrataError if peer else Interrupted) if write else ReportedElsewhere
        processes = " (on any number of processes)" if ranks.distributed else ""
        raise kind(f"{what} {where}: molstrata.resume({str(paths.root)!r}){processes}",
                   cli=f"{what} {where}: molstrata train --resume {paths.root}{processes}"
                   ) from None

    try:
        try:
            state = run_epochs(trained, train_ds, val_ds, config.training, runtime.seed, state,
                               optimizer, scheduler, runtime.eval_batch_size, on_epoch_end,
                               progress, ranks=ranks, ema=ema)
            status = "stopped early" if state.stopped_early else "finished"
        except StopTraining as stop:
            status = stop.status
        except RuntimeError as error:
            if not (ranks.distributed and peer_error(error)):
                raise
            stopped(PeerFailure(f"another process of this distributed run failed "
                                f"({first_line(error)})"))
        except (KeyboardInterrupt, Terminated, PeerFailure) as error:
            stopped(error)
        summary = _write_summary(paths, facts, state, status, time.perf_counter() - started,
                                 write)
        if tracker is not None and write:
            tracker.log({f"run/{k}": v for k, v in summary.items()
                         if k.startswith("best_val_") or k.endswith("_seconds")}, state.epoch)
    finally:
        if own_tracker and tracker is not None:
            tracker.close()
    return summary


def wrap(model: torch.nn.Module, ranks: Ranks) -> torch.nn.Module:
    """`model` itself in one process; under several, DistributedDataParallel around it (it
    starts every rank from rank 0's weights and averages gradients in buckets, overlapped
    with the backward pass)."""
    if not ranks.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ranks.device.index] if ranks.device.type == "cuda" else None
    # the buffers (reference energies, scale) are equal on every rank: no per-step broadcast
    buffers = ("forward_sync_buffers" if "forward_sync_buffers"
               in inspect.signature(DistributedDataParallel).parameters else "broadcast_buffers")
    return DistributedDataParallel(model, device_ids=device_ids, **{buffers: False})


def _payload(model, optimizer, scheduler, ema, state: LoopState, config: TrainConfig) -> dict:
    """A checkpoint's content. "model" holds the weights to evaluate and export: the moving
    average when the run has one (its training weights are then "training_model")."""
    payload = {
        "model": model.state_dict() if ema is None else ema.module.state_dict(),
        "hyperparameters": model.hyperparameters,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "loop": asdict(state),
        "config": config.to_dict(),
    }
    if ema is not None:
        payload["training_model"] = model.state_dict()
        payload["ema_updates"] = int(ema.n_averaged)
    return payload


def _restore(path: Path, model, optimizer, scheduler, ema, device,
             steps_per_epoch: int) -> LoopState:
    payload = load_checkpoint(path, map_location=device)
    model.load_state_dict(payload.get("training_model", payload["model"]))
    if ema is not None:
        ema.module.load_state_dict(payload["model"])
        ema.n_averaged.fill_(int(payload.get("ema_updates", 0)))
    optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(payload["scheduler"])
    loop = dict(payload["loop"])
    # checkpoints of earlier releases count epochs, not steps: every epoch was whole
    loop.setdefault("steps", loop["epoch"] * steps_per_epoch)
    return LoopState(**loop)


def _units(unit: str) -> tuple[float, str, str]:
    """(MAE factor, MAE key unit, MSE key unit): 1000, 'meV', 'eV2' for eV targets."""
    factor, mae_unit = error_unit(unit)
    return factor, unit_key(mae_unit), unit_key(squared_unit(unit))


def curve_row(row: dict[str, float], unit: str) -> dict[str, float]:
    """One epoch of the learning curve as learning_curve.csv names it (units in the names)."""
    factor, mae_unit, mse_unit = _units(unit)
    return {"epoch": row["epoch"], f"train_loss_{mse_unit}": row["train_loss"],
            f"val_loss_{mse_unit}": row["val_loss"], f"val_mae_{mae_unit}": factor * row["val_mae"],
            "lr": row["lr"], "wall_time_s": row["wall_time_s"],
            f"band_low_{mse_unit}": row["band_low"], f"band_high_{mse_unit}": row["band_high"]}


def _write_curve(path: Path, state: LoopState, unit: str) -> None:
    rows = [curve_row(r, unit) for r in state.curve]
    write_csv(path, list(rows[0]), [list(r.values()) for r in rows])


def _run_facts(config: TrainConfig, data: PreparedData, standard: Standardization,
               train_m: Molecules, device: torch.device, ranks: Ranks) -> dict:
    """The parts of run.json that no epoch changes: computed once per run."""
    return {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "target": data.target,
        "unit": data.unit,
        "epochs": None if config.training.time_budget is not None else config.training.epochs,
        "time_budget_s": config.training.time_budget,
        "n_molecules": {"train": len(data.split.train), "val": len(data.split.val),
                        "test": len(data.split.test)},
        "reference_energies": {element_symbol(z): float(standard.atomrefs[z])
                               for z in train_m.elements} if data.extensive else {},
        "per_atom_shift": standard.shift,
        "per_atom_scale": standard.scale,
        "aggregation": "sum" if data.extensive else "avg",
        "device": str(device),
        "threads": torch.get_num_threads(),
        "processes": ranks.world,
        "cpu": cpu_name(),
        "molstrata_version": molstrata.__version__,
        "torch_version": torch.__version__,
    }


def _write_summary(paths: RunPaths, facts: dict, state: LoopState, status: str,
                   total_seconds: float, write: bool = True) -> dict:
    """run.json: the run's fixed facts with its status, progress, best epoch and times
    (computed but not written when `write` is False: ranks other than 0)."""
    factor, mae_unit, mse_unit = _units(facts["unit"])
    best = next((r for r in state.curve if r["epoch"] == state.best_epoch), None)
    summary = {
        **facts,
        "status": status,
        "epochs_done": state.epoch,
        "optimizer_steps": state.steps,
        "molecules_seen": state.molecules,
        "train_molecules_per_s": (state.molecules / state.train_seconds
                                  if state.train_seconds > 0 else None),
        "best_epoch": state.best_epoch,
        f"best_val_loss_{mse_unit}": None if best is None else best["val_loss"],
        f"best_val_mae_{mae_unit}": None if best is None else factor * best["val_mae"],
        "train_seconds": state.train_seconds,
        "total_seconds": total_seconds,
    }
    if write:
        write_run_summary(paths.root, summary)
    return summary


def summary_line(summary: dict) -> str:
    """One line: status, epochs, time and the best validation MAE of a run."""
    key = next(k for k in summary if k.startswith("best_val_mae_"))
    mae = summary[key]
    best = "no epoch finished" if mae is None else (
        f"best validation MAE {mae:.2f} {key.removeprefix('best_val_mae_')} "
        f"(epoch {summary['best_epoch']})")
    return (f"{summary['status']}: {counted(summary['epochs_done'], 'epoch')} in "
            f"{summary['train_seconds']:.0f} s; {best}")
