"""A run is a directory; this module owns its layout, reads its files and checks its state.

    RUN/config.toml           the resolved configuration (enough to reproduce the run)
    RUN/split.json            molecule ids of train / val / test
    RUN/checkpoints/last.pt   written atomically after every epoch (resume from here)
    RUN/checkpoints/best.pt   the epoch with the lowest validation loss
    RUN/learning_curve.csv    per epoch: losses, validation MAE, lr, time, the loss band
    RUN/run.json              status, best epoch, times, sizes, device
    RUN/eval-SPLIT/           the evaluation of one split (`molstrata evaluate`)
    RUN/tensorboard/, wandb/  a tracker's logs (runtime.track)

Training writes a run through it (`training.run`); evaluation, deploy, compare, the study, the
sweeps and the API read runs through it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

from molstrata._files import atomic_write_text, read_versioned_json
from molstrata.errors import MolstrataError
from molstrata.tables import read_csv_rows
from molstrata.training.config import TrainConfig
from molstrata.wording import counted

RUN_FORMAT = "molstrata-run"
RUN_VERSION = 1

DONE = ("finished", "stopped early")
"""run.json statuses of a run that trained to its end: resuming it has nothing left to do."""

TRACKER_FOLDERS = ("tensorboard", "wandb")
"""What a tracker may write in a run directory before training writes its first file."""


class RunPaths:
    """The files of a run directory, and the checks of what state it is in."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.config = self.root / "config.toml"
        self.split = self.root / "split.json"
        self.last = self.root / "checkpoints" / "last.pt"
        self.best = self.root / "checkpoints" / "best.pt"
        self.curve = self.root / "learning_curve.csv"
        self.summary = self.root / "run.json"

    def evaluation(self, split: str) -> Path:
        """RUN/eval-SPLIT: where `molstrata evaluate` writes the evaluation of a split."""
        return self.root / f"eval-{split}"

    def is_run(self) -> bool:
        """Whether the folder holds a run (its config.toml and split.json)."""
        return self.config.is_file() and self.split.is_file()

    def require(self) -> RunPaths:
        """Self, or a MolstrataError when the folder is not a molstrata run."""
        if not self.is_run():
            raise MolstrataError(
                f"{self.root} is not a molstrata run directory (no config.toml and split.json); "
                "give a folder written by `molstrata train`"
            )
        return self

    def require_trained(self) -> RunPaths:
        """Self when the run has a best checkpoint, or a MolstrataError naming the folder and
        the fix (cheap: reads no file, so every run can be checked before any work)."""
        if not self.root.exists():
            raise MolstrataError(f"{self.root} does not exist; give a run directory written by "
                                 "`molstrata train`")
        self.require()
        if not self.best.is_file():
            problem = (f"{self.root} has no checkpoints/best.pt: it was never trained through "
                       "an epoch; finish it with")
            raise MolstrataError(f"{problem} molstrata.resume({str(self.root)!r})",
                                 cli=f"{problem} `molstrata train --resume {self.root}`")
        return self

    def require_unfinished(self) -> RunPaths:
        """Self when the run can be resumed, or a MolstrataError when it is not a run or has
        trained to its end (a run's length cannot change on resume)."""
        self.require()
        summary = read_run_summary(self.root)
        if summary.get("status") in DONE:
            problem = (f"{self.root} is finished ({summary['status']} after "
                       f"{counted(summary.get('epochs_done') or 0, 'epoch')}), so there is "
                       "nothing to resume; to train it further, start a new run from its "
                       "weights:")
            raise MolstrataError(
                f"{problem} molstrata.train(init_from={str(self.root)!r}, out='NEW_RUN')",
                cli=f"{problem} molstrata train --init-from {self.root} -o NEW_RUN")
        return self

    def new_run_problem(self) -> MolstrataError | None:
        """Why a new run cannot be written here (a file, a run, or a folder holding other
        files), or None for a new path or an empty folder."""
        root, quoted = self.root, repr(str(self.root))
        if root.exists() and not root.is_dir():
            return MolstrataError(f"{root} is a file; give a new folder for the run as out=",
                                  cli=f"{root} is a file; give a new folder for the run with "
                                      "--out")
        if self.config.exists():
            if is_finished(root):
                problem = f"{root} already holds a finished run; train it further as a new run"
                return MolstrataError(
                    f"{problem} with init_from={quoted} and another out=",
                    cli=f"{problem} with --init-from {root}, or choose another --out")
            return MolstrataError(
                f"{root} already holds a run; continue it with molstrata.resume({quoted}) or "
                "choose another out=",
                cli=f"{root} already holds a run; continue it with --resume {root} or choose "
                    "another --out")
        if root.is_dir() and any(p.name not in TRACKER_FOLDERS for p in root.iterdir()):
            problem = f"{root} is not empty and holds no molstrata run; give an empty folder"
            return MolstrataError(f"{problem} or a new path as out=",
                                  cli=f"{problem} or a new path with --out")
        return None

    def evaluation_problem(self, split: str, names: Sequence[str]) -> str | None:
        """Why the evaluation of `split` (its files `names`) cannot be used as it is: missing,
        incomplete or older than checkpoints/best.pt; None when it is fresh."""
        files = [self.evaluation(split) / name for name in names]
        absent = [f.name for f in files if not f.is_file()]
        if len(absent) == len(files):
            return "is missing"
        if absent:
            return f"is incomplete (no {', '.join(absent)})"
        if min(f.stat().st_mtime for f in files) < self.best.stat().st_mtime:
            return "is older than its best checkpoint"
        return None


def default_run_dir(name: str) -> Path:
    """runs/NAME-YYYYmmdd-HHMMSS: where a run given no directory goes (`molstrata train`
    without -o, `molstrata.train` without out=)."""
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def read_run_summary(run_dir: str | os.PathLike) -> dict:
    """A run's run.json; {} before its first epoch wrote one, a one-line MolstrataError when
    it is damaged or not a run summary."""
    paths = RunPaths(run_dir)
    if not paths.summary.is_file():
        return {}
    return read_versioned_json(paths.summary, RUN_FORMAT, {RUN_VERSION}, what="run summary",
                               fix="delete it and resume the run to write it again")


def write_run_summary(run_dir: str | os.PathLike, summary: dict) -> None:
    """Write run.json (atomically: a reader never sees half of it)."""
    atomic_write_text(RunPaths(run_dir).summary, json.dumps(summary, indent=2) + "\n")


def is_finished(run_dir: str | os.PathLike) -> bool:
    """Whether the run trained to its end (run.json's status is one of DONE)."""
    return read_run_summary(run_dir).get("status") in DONE


def read_run_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The resolved configuration of a run (its config.toml, as a run's own: an older
    molstrata's `epochs` beside a budget reads as the budget run it was)."""
    return TrainConfig.from_toml(RunPaths(run_dir).require().config, saved=True)


def read_learning_curve(run_dir: str | os.PathLike) -> list[dict[str, float]]:
    """learning_curve.csv's rows, column -> number (epoch an int, an empty cell NaN); empty
    before the first epoch ends."""
    path = RunPaths(run_dir).require().curve
    if not path.is_file():
        return []
    try:
        return [{k: int(v) if k == "epoch" else _number(v) for k, v in row.items()}
                for row in read_csv_rows(path, "train the run again")]
    except ValueError as error:
        raise MolstrataError(f"{path} holds a value that is not a number ({error}); train the "
                             "run again") from None


def read_split_ids(run_dir: str | os.PathLike, part: str) -> tuple[str, tuple[int, ...]] | None:
    """(dataset fingerprint, sorted molecule ids) of one part of a run's split.json (train,
    val or test); None when the file is missing or damaged."""
    try:
        document = json.loads(RunPaths(run_dir).split.read_text(encoding="utf-8"))
        return str(document["fingerprint"]), tuple(sorted(document["parts"][part]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _number(text: str | None) -> float:
    return math.nan if text is None or not text.strip() else float(text)
