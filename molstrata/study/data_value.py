"""`molstrata data-value`: what each stratum's own training molecules are worth, as a study plan.

The design changes one stratum at a time: a `full` experiment trains on every training
molecule, and for each chosen stratum (a size, or the molecules that contain an element) and
each fraction, an experiment keeps that fraction of the stratum's training molecules and every
other one (subset.thin, subset.thin_fraction). Validation and test molecules stay the split's;
every replicate draws its own training molecules (subset.draw = "seed"), so each seed thins
other molecules. The analysis `data_value` (study/value.py) sets each stratum's error against
its own count with the rest fixed. Building it as a plan gives it what a study has: replicates,
several workers, the work queue, resuming, the report.

An element is never thinned to 0: a model cannot predict an element that no training molecule
holds (it has no reference energy and an untrained embedding), so element strata run
ELEMENT_FLOOR in place of 0, and their error at zero own molecules is not measured.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from molstrata.errors import OptionError
from molstrata.study.learning_curve import RECIPE, plan_header, write_plan
from molstrata.training.config import toml_value
from molstrata.wording import counted

QUICK_MOLECULES = 20_000
"""The quick form's QM9 slice: 16,000 training and 2,000 test molecules."""
QUICK_FRACTIONS = (0.0, 0.5)
FULL_FRACTIONS = (0.0, 0.25, 0.5)
ELEMENT_FLOOR = 0.1
"""The fraction an element stratum runs in place of 0."""
N_SIZES = 3
"""Default strata: the rarest N_SIZES sizes, and the rarest element, with enough molecules."""
MIN_TRAIN = 100
MIN_TEST = 20
"""A default stratum holds at least MIN_TRAIN training and MIN_TEST test molecules, so that
thinning it is measurable and its MAE is not one molecule's luck."""
MOLECULES_PER_SECOND = 3500.0
"""Training throughput of one worker (one thread) with the default recipe on a 2-core CPU,
molecules per second, as the quick form measured it with --workers 2 (a 2-core Xeon):
what the dry run's estimate of the cost assumes."""
OVERHEAD_SECONDS = 10.0
"""Per run: loading, validation, evaluation on the test split (the quick form's)."""


def default_strata(max_molecules: int | None, cache_dir: str | None = None,
                   n_sizes: int = N_SIZES) -> list[str]:
    """The rarest n_sizes sizes and the rarest element of the slice's training split that hold
    at least MIN_TRAIN training and MIN_TEST test molecules, as subset.thin names."""
    from molstrata.data.molecules import element_symbol
    from molstrata.data.splits import random_split
    from molstrata.training.config import preset
    from molstrata.training.data import load_molecules

    config = preset("seed-default")
    config.data.max_molecules = max_molecules
    config.data.cache_dir = cache_dir
    molecules = load_molecules(config, progress=False)
    split = random_split(len(molecules), fractions=config.data.split,
                         seed=config.data.split_seed)
    train, test = molecules.subset(split.train), molecules.subset(split.test)
    sizes = [(int((train.sizes == s).sum()), f"size:{s}") for s in np.unique(train.sizes)
             if (train.sizes == s).sum() >= MIN_TRAIN and (test.sizes == s).sum() >= MIN_TEST]
    elements = [(int(train.contains(int(z)).sum()), f"element:{element_symbol(int(z))}")
                for z in train.elements
                if train.contains(int(z)).sum() >= MIN_TRAIN
                and test.contains(int(z)).sum() >= MIN_TEST]
    return [name for _, name in sorted(sizes)[:n_sizes]] + \
        [name for _, name in sorted(elements)[:1]]


def experiment_fractions(stratum: str, fractions: Sequence[float]) -> list[float]:
    """The fractions a stratum runs: those given below 1, ELEMENT_FLOOR for 0 of an element."""
    element = stratum.startswith("element:")
    return sorted({ELEMENT_FLOOR if element and f == 0 else float(f) for f in fractions
                   if f < 1})


def plan_text(*, strata: Sequence[str], fractions: Sequence[float], epochs: int,
              replicates: int, max_molecules: int | None, preset: str | None) -> str:
    """The TOML plan of a data-value study (see the module's docstring)."""
    from molstrata.training.config import TrainConfig

    if not strata:
        raise OptionError("strata", "names no stratum; give some, e.g. size:12 element:F")
    if not fractions or any(not 0 <= f < 1 for f in fractions):
        raise OptionError("fractions", f"{list(fractions)}: give fractions in [0, 1) of each "
                          "stratum's training molecules to keep, e.g. 0 0.25 0.5 (1, every "
                          "molecule, is the full experiment)")
    for option, value in (("epochs", epochs), ("replicates", replicates)):
        if value < 1:
            raise OptionError(option, f"must be >= 1, got {value}")
    for stratum in strata:  # each name refused here, before any work, if misspelt
        check = TrainConfig()
        check.subset.thin = stratum
        check.validate()
    recipe = {} if preset else RECIPE
    total = sum(len(experiment_fractions(s, fractions)) for s in strata) + 1
    thinned_to = ", ".join(f"{f:g}" for f in sorted(set(fractions)))
    lines = plan_header(
        "A data-value study: one stratum's training molecules thinned at a time.",
        f"Data value: {counted(len(strata), 'stratum', 'strata')} thinned to {thinned_to}, "
        f"{total} experiments",
        preset, replicates, max_molecules) + [
        "",
        "[defaults.subset]",
        'draw = "seed"    # each replicate draws its own training (and thinned) molecules',
        "",
        "[defaults.training]",
        f"epochs = {epochs}",
    ]
    for key, value in recipe.get("training", {}).items():
        lines.append(f"{key} = {toml_value(value)}")
    for section, values in recipe.items():
        if section != "training":
            lines += ["", f"[defaults.{section}]"] + [f"{k} = {toml_value(v)}"
                                                      for k, v in values.items()]
    lines += ["", "[experiments.full]", 'title = "every training molecule"']
    for stratum in strata:
        kind, _, key = stratum.partition(":")
        if kind == "element" and 0 in fractions:
            lines += ["", f"# {key}: {ELEMENT_FLOOR:g} in place of 0: a model cannot predict an "
                      "element no training molecule holds"]
        for f in experiment_fractions(stratum, fractions):
            name = f"thin-{kind}{key}-{f:g}" if kind == "size" else f"thin-{key}-{f:g}"
            what = f"{key} atoms" if kind == "size" else f"molecules with {key}"
            lines += ["", f'[experiments."{name}"]',
                      f'title = "{what}: {100 * f:g} % of their training molecules kept"',
                      f'[experiments."{name}".subset]', f'thin = "{stratum}"',
                      f"thin_fraction = {f!r}"]
    lines += ["", "[[analyses]]", 'kind = "data_value"', 'name = "data_value"',
              'title = "What each stratum\'s own training molecules are worth"',
              'reference = "full"', 'runs = ["thin-*"]', ""]
    return "\n".join(lines)


def cost_text(text: str, overrides: Sequence[tuple[str, str, Any]] = (),
              workers: int = 2) -> str:
    """What the plan costs: its runs, the molecules they train, and the wall time it would
    take on a 2-core CPU at MOLECULES_PER_SECOND per worker."""
    from molstrata.study.plan import parse_plan
    from molstrata.training.config import parse_toml

    plan = parse_plan(parse_toml(text, "data-value plan"), "data-value", "data-value plan",
                      text, overrides)
    config = plan.experiments[0].config
    n = config.data.max_molecules or 130_831
    n_train = config.data.split[0] * n
    seconds = sum(OVERHEAD_SECONDS + (e.config.training.time_budget
                                      or e.config.training.epochs * n_train / MOLECULES_PER_SECOND)
                  for e in plan.experiments) * plan.replicates
    minutes = seconds / max(1, workers) / 60
    return (f"cost: {counted(len(plan.experiments), 'experiment')} x "
            f"{counted(plan.replicates, 'seed')} = {counted(len(plan.runs), 'run')}, each about "
            f"{n_train:,.0f} training molecules x "
            f"{config.training.length}; about {_duration(minutes)} with --workers "
            f"{workers} on a 2-core CPU (at {MOLECULES_PER_SECOND:,.0f} molecules/s per worker "
            f"for the default recipe, plus {OVERHEAD_SECONDS:g} s per run)")


def run_data_value(out_dir: str | os.PathLike, *, strata: Sequence[str] | None = None,
                   fractions: Sequence[float] = QUICK_FRACTIONS,
                   max_molecules: int | None = QUICK_MOLECULES, epochs: int = 12,
                   replicates: int = 3, preset: str | None = None,
                   overrides: Sequence[tuple[str, str, Any]] = (), workers: int = 1,
                   storage: str | None = None, cache_dir: str | None = None,
                   device: str = "auto",
                   threads: int | None = None, progress: bool = True, log=print):
    """Write the data-value plan into OUT/data-value.toml and run it as a study (resumably);
    the StudyResult. strata: None for `default_strata` of the slice. storage: the work queue's
    database URL, as for run_study."""
    from molstrata.study.runner import run_study

    strata = list(strata) if strata else default_strata(max_molecules, cache_dir)
    text = plan_text(strata=strata, fractions=fractions, epochs=epochs,
                     replicates=replicates, max_molecules=max_molecules, preset=preset)
    plan = write_plan(out_dir, text, "data-value.toml")
    return run_study(plan, out_dir, cache_dir=cache_dir, device=device, threads=threads,
                     overrides=overrides, workers=workers, storage=storage,
                     progress=progress, log=log)


def _duration(minutes: float) -> str:
    if minutes < 90:
        return f"{math.ceil(minutes)} min"
    return f"{minutes / 60:.1f} h"


