"""`molstrata learning-curve`: one recipe trained on nested training subsets, as a study plan.

A learning curve is a study whose experiments differ in one option, subset.max_train (the
first N of a seeded permutation of the training split, so each subset holds the smaller ones;
validation and test molecules stay the same), with the analysis `learning_curve` over them.
Building it as a plan gives it everything a study has: replicates, several workers, resuming,
evaluation on the shared test split and the report.

The recipe's length grows with the subset where it must: every subset trains for `epochs`
epochs, and at least `min_steps` optimizer steps (a subset of 750 molecules at batch 64 would
otherwise take 12 steps an epoch and end far from converged, which would make small subsets
look worse than their data allows and steepen every curve).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from molstrata._files import atomic_write_text
from molstrata.errors import MolstrataError, OptionError
from molstrata.training.config import toml_value

QUICK_MOLECULES = 30_000
"""The quick form's QM9 slice: 24,000 training and 3,000 test molecules."""
N_SIZES = 6
"""Default subsets: the training split and its halves down to 1/32."""
DEFAULT_TARGET_MEV = 43.0
"""Chemical accuracy: the default target of the data advice."""

RECIPE: dict[str, dict[str, Any]] = {
    "model": {"n_atom_basis": 32, "n_interactions": 3},
    "training": {"batch_size": 64, "lr": 1e-3, "scheduler": "cosine", "warmup": 0.02,
                 "ema": 0.995, "loss": "l1"},
}
"""The default recipe, over the study's model (preset seed-default: cutoffs 4 / 5 Å): the
time-to-accuracy training (batch 64, warm-up and cosine decay, EMA, L1) on a 32-feature
SchNet, cheap enough for 18 trainings on a 2-core CPU."""


def default_sizes(n_train: int, count: int = N_SIZES) -> list[int]:
    """n_train and its halves: [n/32, n/16, ..., n] for count 6."""
    return sorted({max(1, n_train // 2**i) for i in range(count)})


def plan_text(*, sizes: Sequence[int], epochs: int, min_steps: int, replicates: int,
              target_mae: float, max_molecules: int | None, preset: str | None,
              overrides: Sequence[tuple[str, str, Any]] = ()) -> str:
    """The TOML plan of a learning curve (see the module's docstring); `overrides` are the
    --set options the study will apply (a batch size among them sets the steps per epoch)."""
    sizes = sorted(set(int(n) for n in sizes))
    if len(sizes) < 3 or sizes[0] < 1:
        raise OptionError("sizes", f"needs at least 3 different positive subset sizes to fit a "
                                   f"curve, got {sizes}; e.g. 1000 2000 4000 8000")
    for option, value, bound in (("epochs", epochs, 1), ("replicates", replicates, 1),
                                 ("min_steps", min_steps, 0)):
        if value < bound:
            raise OptionError(option, f"must be >= {bound}, got {value}")
    if target_mae <= 0:
        raise OptionError("target_mae", f"must be above 0, got {target_mae}")
    recipe = {} if preset else RECIPE
    batch = next((v for s, k, v in overrides if (s, k) == ("training", "batch_size")), None)
    batch = batch or recipe.get("training", {}).get("batch_size")
    if batch is None:
        from molstrata.training.config import preset as load_preset

        batch = load_preset(preset).training.batch_size
    lines = plan_header(
        "A learning curve: one recipe on nested training subsets (subset.max_train).",
        f"Learning curves: {len(sizes)} nested training subsets, {sizes[0]:,} to "
        f"{sizes[-1]:,} molecules", preset, replicates, max_molecules)
    for section, values in recipe.items():
        lines += ["", f"[defaults.{section}]"] + [f"{k} = {toml_value(v)}"
                                                  for k, v in values.items()]
    for n in sizes:
        steps_per_epoch = math.ceil(n / batch)
        n_epochs = max(epochs, math.ceil(min_steps / steps_per_epoch))
        lines += ["", f"[experiments.n-{n}]",
                  f'title = "{n:,} training molecules, {n_epochs} epochs"',
                  f"[experiments.n-{n}.subset]", f"max_train = {n}",
                  f"[experiments.n-{n}.training]", f"epochs = {n_epochs}"]
    lines += ["", "[[analyses]]", 'kind = "learning_curve"', 'name = "learning_curve"',
              'title = "How much data each stratum needs: per-stratum learning curves"',
              'runs = ["n-*"]', f"target_mae = {target_mae:g}", ""]
    return "\n".join(lines)


def plan_header(comment: str, title: str, preset: str | None, replicates: int,
                max_molecules: int | None) -> list[str]:
    """The first lines of a written plan: its [study] table and the data every experiment
    shares (the slice, the 0.8 / 0.1 / 0.1 split)."""
    return [
        f"# {comment}",
        "[study]",
        f'title = "{title}"',
        f'preset = "{preset or "seed-default"}"',
        f"replicates = {replicates}",
        "",
        "[defaults.data]",
        f"max_molecules = {max_molecules}" if max_molecules else "# all of the dataset",
        "split = [0.8, 0.1, 0.1]",
    ]


def run_learning_curve(out_dir: str | os.PathLike, *, sizes: Sequence[int] | None = None,
                       max_molecules: int | None = QUICK_MOLECULES, epochs: int = 20,
                       min_steps: int = 1500, replicates: int = 3,
                       target_mae: float = DEFAULT_TARGET_MEV, preset: str | None = None,
                       overrides: Sequence[tuple[str, str, Any]] = (), workers: int = 1,
                       storage: str | None = None, cache_dir: str | None = None,
                       device: str = "auto",
                       threads: int | None = None, progress: bool = True, log=print):
    """Write the learning curve's plan into `out_dir` and run it as a study (resumably); the
    StudyResult. sizes: None for the training split and its halves down to 1/32. storage: the
    work queue's database URL, as for run_study."""
    from molstrata.study.runner import run_study

    text = plan_text(sizes=resolve_sizes(sizes, max_molecules, cache_dir), epochs=epochs,
                     min_steps=min_steps, replicates=replicates, target_mae=target_mae,
                     max_molecules=max_molecules, preset=preset, overrides=overrides)
    plan = write_plan(out_dir, text)
    return run_study(plan, out_dir, cache_dir=cache_dir, device=device, threads=threads,
                     overrides=overrides, workers=workers, storage=storage,
                     progress=progress, log=log)


def resolve_sizes(sizes: Sequence[int] | None, max_molecules: int | None,
                  cache_dir: str | None = None) -> list[int]:
    """The subset sizes given, or default_sizes of the training split (80 % of the slice, or
    of all of QM9 when max_molecules is None)."""
    if sizes is not None:
        return list(sizes)
    if max_molecules is None:
        from molstrata.data.qm9 import load_qm9

        max_molecules = len(load_qm9(cache_dir, progress=False))
    return default_sizes(int(0.8 * max_molecules))


def write_plan(out_dir: str | os.PathLike, text: str,
               file: str = "learning-curve.toml") -> Path:
    """Write the plan into OUT/file (so that the same command resumes the same study)."""
    path = Path(out_dir) / file
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.read_text(encoding="utf-8") != text:
        raise MolstrataError(
            f"{path} holds a plan with other options; write this one to another folder, or "
            "delete the folder to start again"
        )
    atomic_write_text(path, text)
    return path


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
