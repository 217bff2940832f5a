"""The training loop: Adam or AdamW, a learning-rate schedule, a moving average of the weights,
early stopping or a wall-clock budget, a checkpoint per epoch.

Deterministic on the CPU under a seed: the order of each epoch's batches is drawn from
(seed, epoch) alone, so a run resumed from the checkpoint of epoch k continues exactly as an
uninterrupted run would, on any number of processes: with several (DistributedDataParallel),
every global batch of that order is cut into one piece per rank, and each rank's loss is
scaled so that DDP's averaged gradient is the gradient of the global batch's weighted mean.
A time-budget run is the exception by nature: the clock decides its learning rate and where it
stops (the same clock readings give the same run, resumed or not).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from molstrata.progress import progress_bar
from molstrata.training.band import loss_band
from molstrata.training.batches import DeviceDataset
from molstrata.training.config import OptimConfig
from molstrata.training.distributed import Ranks, batch_pieces

clock = time.perf_counter
"""The training loop's clock (seconds); a test may replace it with a simulated one."""

CURVE_COLUMNS = ("epoch", "train_loss", "val_loss", "val_mae", "lr", "wall_time_s",
                 "band_low", "band_high")


@dataclass
class LoopState:
    """What a checkpoint must hold besides the weights to resume exactly."""

    epoch: int = 0
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    train_seconds: float = 0.0
    curve: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    steps: int = 0
    molecules: int = 0
    out_of_time: bool = False


def finished(state: LoopState, config: OptimConfig) -> bool:
    """Whether the run is over: its budget spent, its epochs done, or stopped early."""
    if state.stopped_early:
        return True
    if config.time_budget is not None:
        return state.out_of_time or state.train_seconds >= config.time_budget
    return state.epoch >= config.epochs


class Schedule:
    """The learning rate as a function of the run's progress p in [0, 1]: a linear warm-up
    from `min_lr` over the first `warmup` of the run, then cosine or linear decay to `min_lr`
    at p = 1 (or constant: 'none'). p is the steps done over all the epochs' steps, or for a
    budget run the training seconds over the budget, so that the decay ends with the budget
    whatever the throughput turns out to be."""

    def __init__(self, config: OptimConfig, steps_per_epoch: int) -> None:
        self.config, self.steps_per_epoch = config, steps_per_epoch

    def progress(self, steps: int, seconds: float) -> float:
        if self.config.time_budget is not None:
            return min(1.0, seconds / self.config.time_budget)
        return min(1.0, steps / (self.config.epochs * self.steps_per_epoch))

    def lr(self, progress: float) -> float:
        c = self.config
        if progress < c.warmup:
            return c.min_lr + (c.lr - c.min_lr) * progress / c.warmup
        decayed = (progress - c.warmup) / (1.0 - c.warmup)
        if c.scheduler == "cosine":
            return c.min_lr + (c.lr - c.min_lr) * 0.5 * (1.0 + math.cos(math.pi * decayed))
        if c.scheduler == "linear":
            return c.lr - (c.lr - c.min_lr) * decayed
        return c.lr

    def state_dict(self) -> dict:
        return {}  # a function of the loop state alone: nothing of its own to save

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore (see state_dict)."""


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def make_optimizer(model: torch.nn.Module, config: OptimConfig, steps_per_epoch: int):
    """The optimiser and its schedule: ReduceLROnPlateau (on the validation loss, per epoch)
    for 'plateau', else a `Schedule` applied before every step. On CPUs and CUDA devices the
    optimiser runs fused (one kernel for all parameters, not a dozen per parameter)."""
    parameters = list(model.parameters())
    fused = bool(parameters) and all(p.device.type in ("cpu", "cuda") for p in parameters)
    optimizer = OPTIMIZERS[config.optimizer](parameters, lr=config.lr,
                                             weight_decay=config.weight_decay,
                                             fused=fused or None)
    if config.scheduler == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=config.plateau_factor, patience=config.plateau_patience,
            min_lr=config.min_lr)
    else:
        scheduler = Schedule(config, steps_per_epoch)
    return optimizer, scheduler


def make_ema(model: torch.nn.Module, config: OptimConfig):
    """An exponential moving average of `model`'s weights (torch's AveragedModel, updated after
    every step with decay `config.ema`), or None when the config has none."""
    if config.ema is None:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema))


def _loss_terms(error: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-molecule L1 or smooth-L1 loss of the standardised error (error / per-atom standard
    deviation); the MSE is computed in the loop, whose curve records it for every loss."""
    if loss == "l1":
        return error.abs()
    return torch.nn.functional.smooth_l1_loss(error, torch.zeros_like(error), reduction="none")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model itself, out of torch.compile's and DistributedDataParallel's wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


@torch.inference_mode()
def predict_residuals(model: torch.nn.Module, dataset: DeviceDataset, batch_size: int,
                      ranks: Ranks | None = None) -> torch.Tensor:
    """(n,) model outputs (residual, target unit) for every molecule of `dataset`, in order;
    with several ranks each predicts its piece and all receive the whole."""
    ranks = ranks or Ranks()
    model = unwrap(model)
    was_training = model.training
    model.eval()
    rows = torch.arange(len(dataset), device=dataset.device)[ranks.piece(len(dataset))]
    out = [_forward(model, batch) for batch in dataset.batches(rows, batch_size)]
    model.train(was_training)
    local = torch.cat(out) if out else dataset.target.new_zeros(0)
    return ranks.gather(local, len(dataset))


def _forward(model: torch.nn.Module, batch) -> torch.Tensor:
    """The model's residuals for `batch`; a compiled model sums its messages with index_add
    (the batch's sparse `MessageSums` are for eager CPU runs)."""
    sums = None if hasattr(model, "_orig_mod") else batch.sums
    return model(batch.numbers, batch.geometry, batch.idx_i, batch.idx_j,
                 batch.molecule_index, batch.n_molecules, sums=sums)


def train_epoch(
    model: torch.nn.Module,
    train: DeviceDataset,
    order: torch.Tensor,
    config: OptimConfig,
    optimizer: torch.optim.Optimizer,
    scheduler=None,
    progress: str | None = None,
    ranks: Ranks | None = None,
    state: LoopState | None = None,
    ema=None,
) -> torch.Tensor:
    """One pass over `order` (rows of `train`) in global batches of `config.batch_size`, or
    until `config.time_budget` seconds of training are spent (`state.out_of_time`); returns
    each batch's weighted MSE in the target unit squared.

    The optimiser sees `config.loss` of the error divided by scale, the per-atom standard
    deviation of the target, so learning rates mean the same for every target. A `Schedule`
    sets the learning rate before every step; `ema` is updated after every step; `state`
    counts steps and training seconds. With several ranks (`model` wrapped in DDP) each takes
    its piece of every batch, the returned losses are the global batches' (summed over
    ranks), and all ranks stop at the same step: the slowest rank's clock decides."""
    ranks = ranks or Ranks()
    state = state if state is not None else LoopState()
    inner = unwrap(model)
    scale = float(inner.scale)
    pieces = batch_pieces(order, config.batch_size, ranks.rank, ranks.world)
    losses = torch.zeros(len(pieces), device=train.device, dtype=torch.float64)
    schedule = scheduler if isinstance(scheduler, Schedule) else None
    model.train()
    bar = progress_bar(pieces, show=progress is not None, leave=False, desc=progress,
                       unit="batch")
    start, seconds, done = clock(), state.train_seconds, 0
    for step, rows in enumerate(bar):
        elapsed = seconds + clock() - start
        if config.time_budget is not None:
            elapsed = ranks.max_(elapsed)
            if elapsed >= config.time_budget:
                state.out_of_time = True
                break
        if schedule is not None:
            lr = schedule.lr(schedule.progress(state.steps, elapsed))
            for group in optimizer.param_groups:
                group["lr"] = lr
        batch = train.batch(rows)
        error = _forward(model, batch) - batch.target
        # this rank's share of the global batch's weighted mean; DDP averages over ranks
        global_size = min(config.batch_size, len(order) - step * config.batch_size)
        mse = (batch.weight * error.square()).sum() / global_size
        if config.loss == "mse":
            objective = mse * (ranks.world / scale**2)
        else:
            terms = _loss_terms(error / scale, config.loss)
            objective = (batch.weight * terms).sum() * (ranks.world / global_size)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        state.steps += 1
        state.molecules += global_size
        if ema is not None:
            ema.update_parameters(inner)
        losses[step] = mse.detach()
        done = step + 1
        if progress is not None and step % 25 == 0:
            bar.set_postfix(loss=f"{float(losses[step]) * ranks.world:.3g}")
    bar.close()
    state.train_seconds = seconds + clock() - start
    return ranks.sum_(losses[:done])


def run_epochs(
    model: torch.nn.Module,
    train: DeviceDataset,
    val: DeviceDataset,
    config: OptimConfig,
    seed: int,
    state: LoopState,
    optimizer: torch.optim.Optimizer,
    scheduler,
    eval_batch_size: int,
    on_epoch_end: Callable[[LoopState, bool], None],
    progress: bool = True,
    ranks: Ranks | None = None,
    ema=None,
) -> LoopState:
    """Train from `state.epoch` until `finished` (the epochs done, the budget spent or an early
    stop), calling `on_epoch_end` (state, improved) after every epoch, the budget's last
    partial one included, so the caller can write checkpoints and curves. The averaged
    weights are validated when there is an `ema`. Every rank computes the same validation
    metrics, so schedulers and early stopping agree."""
    device = train.device
    validated = ema.module if ema is not None else model
    while not finished(state, config):
        epoch = state.epoch
        order = np.random.default_rng([seed, epoch]).permutation(len(train))
        losses = train_epoch(model, train, torch.as_tensor(order, device=device), config,
                             optimizer, scheduler,
                             _epoch_label(epoch, state, config) if progress else None, ranks,
                             state, ema)
        if len(losses) == 0:  # the budget ran out exactly at the end of the last epoch
            break
        val_error = predict_residuals(validated, val, eval_batch_size, ranks) - val.target
        val_loss = float(val_error.double().square().mean())
        val_mae = float(val_error.double().abs().mean())
        lr = optimizer.param_groups[0]["lr"]
        if config.scheduler == "plateau":
            scheduler.step(val_loss)
        batch_losses = losses.cpu().numpy()
        low, high = loss_band(batch_losses)
        state.curve.append({
            "epoch": epoch + 1, "train_loss": float(batch_losses.mean()), "val_loss": val_loss,
            "val_mae": val_mae, "lr": lr, "wall_time_s": state.train_seconds,
            "band_low": low, "band_high": high,
        })
        improved = val_loss < state.best_val
        if improved:
            state.best_val, state.best_epoch, state.bad_epochs = val_loss, epoch + 1, 0
        else:
            state.bad_epochs += 1
        state.epoch = epoch + 1
        state.stopped_early = (config.early_stopping is not None
                               and state.bad_epochs >= config.early_stopping)
        on_epoch_end(state, improved)
    return state


def _epoch_label(epoch: int, state: LoopState, config: OptimConfig) -> str:
    """The progress bar's label: the epoch, and for a budget run the time spent of the budget."""
    if config.time_budget is None:
        return f"epoch {epoch + 1}/{config.epochs}"
    return (f"epoch {epoch + 1} ({state.train_seconds / 60:.1f} of "
            f"{config.time_budget / 60:.1f} min)")
