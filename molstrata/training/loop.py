"""The training loop: Adam, a learning-rate schedule, early stopping, a checkpoint per epoch.

Deterministic on the CPU under a seed: the order of each epoch's batches is drawn from
(seed, epoch) alone, so a run resumed from the checkpoint of epoch k continues exactly as an
uninterrupted run would, on any number of processes: with several (DistributedDataParallel),
every global batch of that order is cut into one piece per rank, and each rank's loss is
scaled so that DDP's averaged gradient is the gradient of the global batch's weighted mean.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from molstrata.training.band import loss_band
from molstrata.training.batches import DeviceDataset
from molstrata.training.config import OptimConfig
from molstrata.training.distributed import Ranks, batch_pieces

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


def make_optimizer(model: torch.nn.Module, config: OptimConfig, steps_per_epoch: int):
    """Adam and its scheduler (plateau: on validation loss; cosine: per step; none)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    if config.scheduler == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=config.plateau_factor, patience=config.plateau_patience,
            min_lr=config.min_lr)
    elif config.scheduler == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=config.epochs * steps_per_epoch, eta_min=config.min_lr)
    else:
        scheduler = None
    return optimizer, scheduler


@torch.no_grad()
def predict_residuals(model: torch.nn.Module, dataset: DeviceDataset, batch_size: int,
                      ranks: Ranks | None = None) -> torch.Tensor:
    """(n,) model outputs (residual, target unit) for every molecule of `dataset`, in order;
    with several ranks each predicts its piece and all receive the whole."""
    ranks = ranks or Ranks()
    model = getattr(model, "module", model)  # the DDP-wrapped model's own module
    was_training = model.training
    model.eval()
    rows = torch.arange(len(dataset), device=dataset.device)[ranks.piece(len(dataset))]
    out = [_forward(model, batch) for batch in dataset.batches(rows, batch_size)]
    model.train(was_training)
    local = torch.cat(out) if out else dataset.target.new_zeros(0)
    return ranks.gather(local, len(dataset))


def _forward(model: torch.nn.Module, batch) -> torch.Tensor:
    return model(batch.numbers, batch.distances, batch.idx_i, batch.idx_j,
                 batch.molecule_index, batch.n_molecules)


def train_epoch(
    model: torch.nn.Module,
    train: DeviceDataset,
    order: torch.Tensor,
    config: OptimConfig,
    optimizer: torch.optim.Optimizer,
    scheduler=None,
    progress: str | None = None,
    ranks: Ranks | None = None,
) -> torch.Tensor:
    """One pass over `order` (rows of `train`) in global batches of `config.batch_size`;
    returns each batch's loss: the weighted MSE in the target unit squared. The optimiser sees
    it divided by scale², the per-atom variance of the target, so learning rates mean the same
    for every target. With several ranks (`model` wrapped in DDP) each takes its piece of
    every batch, and the returned losses are the global batches' (summed over ranks)."""
    ranks = ranks or Ranks()
    scale2 = float(getattr(model, "module", model).scale) ** 2
    pieces = batch_pieces(order, config.batch_size, ranks.rank, ranks.world)
    losses = torch.zeros(len(pieces), device=train.device, dtype=torch.float64)
    model.train()
    bar = tqdm(pieces, leave=False, desc=progress, unit="batch", disable=progress is None)
    for step, rows in enumerate(bar):
        batch = train.batch(rows)
        error = _forward(model, batch) - batch.target
        # this rank's share of the global batch's weighted mean; DDP averages over ranks
        global_size = min(config.batch_size, len(order) - step * config.batch_size)
        mse = (batch.weight * error.square()).sum() / global_size
        optimizer.zero_grad(set_to_none=True)
        (mse * (ranks.world / scale2)).backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        if config.scheduler == "cosine" and scheduler is not None:
            scheduler.step()
        losses[step] = mse.detach()
        if progress is not None and step % 25 == 0:
            bar.set_postfix(loss=f"{float(losses[step]) * ranks.world:.3g}")
    bar.close()
    return ranks.sum_(losses)


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
) -> LoopState:
    """Train from `state.epoch` to `config.epochs` (or early stop), calling `on_epoch_end`
    (state, improved) after every epoch so the caller can write checkpoints and curves. Every
    rank computes the same validation metrics, so schedulers and early stopping agree."""
    device = train.device
    for epoch in range(state.epoch, config.epochs):
        start = time.perf_counter()
        order = np.random.default_rng([seed, epoch]).permutation(len(train))
        losses = train_epoch(model, train, torch.as_tensor(order, device=device), config,
                             optimizer, scheduler,
                             f"epoch {epoch + 1}/{config.epochs}" if progress else None, ranks)
        train_seconds = time.perf_counter() - start
        val_error = predict_residuals(model, val, eval_batch_size, ranks) - val.target
        val_loss = float(val_error.double().square().mean())
        val_mae = float(val_error.double().abs().mean())
        lr = optimizer.param_groups[0]["lr"]
        if config.scheduler == "plateau":
            scheduler.step(val_loss)
        batch_losses = losses.cpu().numpy()
        low, high = loss_band(batch_losses)
        state.train_seconds += train_seconds
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
        if state.stopped_early:
            break
    return state
