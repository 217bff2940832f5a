"""Learning curves and metrics sent, by option, to TensorBoard and to Weights & Biases.

learning_curve.csv and run.json are always written (run.py); these are extra sinks chosen with
`[runtime] track = ["tensorboard", "wandb"]`, each through its own library (the optional extra
`molstrata[tracking]`). Both write inside the run directory and reach no network:

    RUN/tensorboard/          TensorBoard event files (`tensorboard --logdir RUN/tensorboard`)
    RUN/wandb/offline-run-*/  a Weights & Biases run in offline mode: no account, no network;
                              `wandb sync RUN/wandb/offline-run-*` uploads it later

Scalars are named with their units, as in learning_curve.csv: per epoch `curve/train_loss_eV2`,
`curve/val_loss_eV2`, `curve/val_mae_meV`, `curve/lr`, `curve/band_low_eV2`, ...; at the end
`run/...` (best validation MAE, times) and whatever metrics the caller adds (a sweep adds the
trial's stratified validation metrics as `val/...`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from molstrata.errors import MolstrataError

INSTALL_HINT = "pip install 'molstrata[tracking]'"
# The library each tracker needs (its import name and its package).
TRACKERS: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
}


def check_available(names: Sequence[str]) -> None:
    """Refuse, before any work, trackers whose library is not installed."""
    import importlib.util

    for name in names:
        module, package = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise MolstrataError(
                f"tracking to {name} needs the {package} package, which is not installed; "
                f"install it with: {INSTALL_HINT}"
            )


class _TensorBoard:
    """Scalars as TensorBoard event files in RUN/tensorboard."""

    def __init__(self, run_dir: Path, name: str, config: Mapping[str, Any], toml: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.writer.add_text("config", "```toml\n" + toml + "\n```")

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _Wandb:
    """A Weights & Biases run in offline mode inside RUN/wandb (synced later, if ever)."""

    def __init__(self, run_dir: Path, name: str, config: Mapping[str, Any], toml: str,
                 group: str | None = None) -> None:
        # Offline whatever the environment says; no console capture, no system statistics,
        # no git or code snapshot, no error reports.
        os.environ.update({"WANDB_MODE": "offline", "WANDB_SILENT": "true",
                           "WANDB_ERROR_REPORTING": "false", "WANDB_DISABLE_GIT": "true",
                           "WANDB_DISABLE_CODE": "true", "WANDB_CONSOLE": "off"})
        import wandb

        settings = wandb.Settings(
            mode="offline", silent=True, console="off", disable_git=True, disable_code=True,
            save_code=False, disable_job_creation=True, x_disable_stats=True,
            x_disable_meta=True, x_disable_machine_info=True, x_save_requirements=False)
        # One id per run directory, so a resumed run continues the same W&B run when synced.
        run_id = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16]
        self.run = wandb.init(project="molstrata", dir=str(run_dir), id=run_id, name=name,
                              group=group, config=dict(config), mode="offline",
                              resume="allow", reinit="create_new", settings=settings)

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        self.run.log(dict(scalars), step=step)

    def close(self) -> None:
        self.run.finish()


class Tracker:
    """The trackers a run logs to; `log` sends scalars to all of them."""

    def __init__(self, sinks: list) -> None:
        self._sinks = sinks

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        """Log named scalars (units in the names) at `step` (the epoch)."""
        finite = {k: float(v) for k, v in scalars.items() if v is not None}
        for sink in self._sinks:
            sink.log(finite, step)

    def close(self) -> None:
        for sink in self._sinks:
            sink.close()
        self._sinks = []


def open_tracker(names: Sequence[str], run_dir: str | os.PathLike, config: Mapping[str, Any],
                 toml: str = "", group: str | None = None) -> Tracker | None:
    """The trackers `names` for the run in `run_dir` (None when there are none); `config` (as
    nested dicts) and its `toml` text are recorded with the run."""
    if not names:
        return None
    check_available(names)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    sinks = []
    try:
        for name in names:
            if name == "tensorboard":
                sinks.append(_TensorBoard(run_dir, run_dir.name, config, toml))
            else:
                sinks.append(_Wandb(run_dir, run_dir.name, config, toml, group))
    except BaseException:
        Tracker(sinks).close()
        raise
    return Tracker(sinks)
