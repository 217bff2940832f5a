"""A sweep file: a run config (the base every trial starts from) plus a `[sweep]` table.

    [data]                                  # the usual sections: every trial's fixed options
    max_molecules = 12000
    [training]
    scheduler = "cosine"

    [sweep]
    objective = "macro_size_mae"            # or a list: multi-objective, Pareto front
    sampler = "tpe"                         # tpe | random | grid
    pruner = "median"                       # median | halving | none
    n_trials = 30                           # finished trials (complete or pruned), all workers
    seed = 0
    enqueue = [{"training.lr" = 1e-3}]      # trials to run first (e.g. a known-good config)

    [sweep.space]                           # see molstrata/sweep/space.py
    "training.lr" = {low = 1e-4, high = 1e-2, log = true}
    "model.n_atom_basis" = {choices = [32, 64, 128]}

Validated once, here: a bad option, objective, sampler or space is refused with one line
before any trial runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from molstrata.errors import MolstrataError
from molstrata.sweep.objectives import check_objectives
from molstrata.sweep.space import SearchSpace, apply, parse_space
from molstrata.training.config import SECTIONS, TrainConfig, preset, read_toml

SAMPLERS = {
    "tpe": "Tree-structured Parzen Estimator (Optuna's default; random for the first "
           "startup_trials)",
    "random": "independent uniform draws",
    "grid": "every combination of finite values, each once",
}
PRUNERS = {
    "median": "stop a trial whose validation MAE is worse than the median of earlier trials "
              "at the same epoch",
    "halving": "successive halving: keep the best fraction of trials at each rung of epochs",
    "none": "no pruning",
}
# Options that say where a trial computes, not what it computes: workers on different machines
# may differ in them and still share one sweep.
RUNTIME_ONLY = ("data.cache_dir", "runtime.device", "runtime.threads", "runtime.eval_batch_size",
                "runtime.track")


@dataclass(frozen=True)
class SweepSettings:
    """How the sweep searches: the `[sweep]` table less its space."""

    objective: tuple[str, ...] = ("macro_size_mae",)
    sampler: str = "tpe"
    pruner: str | None = None           # None: median for one objective, none for several
    n_trials: int = 20
    timeout: float | None = None        # seconds after which no new trial starts
    seed: int = 0
    startup_trials: int = 10            # TPE's random trials before it models
    pruner_startup_trials: int = 5      # trials finished before the median pruner judges
    pruner_warmup_epochs: int = 1       # epochs a trial runs before it can be pruned
    heartbeat_s: int = 60               # a running trial's sign of life in the storage
    grace_s: int | None = None          # no heartbeat for this long: failed and retried
    max_retries: int = 3                # retries of a trial whose worker died
    bootstrap: int = 200                # resamples of the trials' confidence intervals
    trial_plots: bool = False           # evaluation plots in every trial's eval-val/
    clean_pruned: bool = False          # remove pruned trials' run directories
    study_name: str | None = None
    storage: str | None = None
    enqueue: tuple[dict, ...] = field(default_factory=tuple)

    @property
    def grace(self) -> int:
        return self.grace_s if self.grace_s is not None else 2 * self.heartbeat_s

    @property
    def pruning(self) -> str:
        return self.pruner or ("median" if len(self.objective) == 1 else "none")


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: the base config, the space, the settings and a default name."""

    name: str
    base: TrainConfig
    space: SearchSpace
    settings: SweepSettings

    def trial_config(self, params: Mapping[str, Any]) -> TrainConfig:
        """The base config with a trial's values, validated."""
        return apply(self.base, params, "sweep trial")

    def spec(self) -> str:
        """What every worker and every resume of one sweep must share, as JSON: the base
        options (less where a trial computes), the space and the objectives."""
        base = self.base.to_dict()
        for option in RUNTIME_ONLY:
            section, _, key = option.partition(".")
            base[section].pop(key)
        return json.dumps({"base": base, "space": [asdict(d) for d in self.space.dimensions],
                           "objective": list(self.settings.objective)}, sort_keys=True)

    def with_settings(self, **changes: Any) -> Sweep:
        """The sweep with some settings changed (None leaves one as it is), re-validated."""
        changes = {k: v for k, v in changes.items() if v is not None}
        settings = _validated(replace(self.settings, **changes), self.space, self.base)
        return replace(self, settings=settings)


def load_sweep(path: str | Path, overrides: Sequence[tuple[str, str, Any]] = ()) -> Sweep:
    """Read and validate a sweep file; `overrides` (section, key, value) change the base config
    (e.g. the command line's --cache-dir, --device, --track)."""
    path = Path(path)
    return sweep_from_dict(read_toml(path, "sweep file"), path.stem, str(path), overrides)


def sweep_from_dict(raw: Mapping[str, Any], name: str = "sweep", source: str = "sweep",
                    overrides: Sequence[tuple[str, str, Any]] = ()) -> Sweep:
    """A validated Sweep from a parsed sweep file."""
    raw = dict(raw)
    table = raw.pop("sweep", None)
    if not isinstance(table, Mapping):
        raise MolstrataError(
            f"{source} has no [sweep] table; add one with an objective and a [sweep.space] of "
            "options to search (see `molstrata sweep --help`)"
        )
    table = dict(table)
    base_preset = table.pop("preset", None)
    space_raw = table.pop("space", None)
    base = preset(base_preset) if base_preset is not None else TrainConfig()
    for section, values in raw.items():
        if section not in SECTIONS or not isinstance(values, Mapping):
            raise MolstrataError(
                f"{source}: unknown section [{section}]; use {', '.join(SECTIONS)} and [sweep]"
            )
    base.apply([(section, key, value) for section, values in raw.items()
                for key, value in values.items()], source)
    base.apply(overrides, "command line").validate()
    space = parse_space(space_raw, base, f"{source}: [sweep.space]")
    settings = _settings(table, source)
    return Sweep(table.get("study_name") or name, base, space,
                 _validated(settings, space, base))


def _settings(table: Mapping[str, Any], source: str) -> SweepSettings:
    known = {f.name: f for f in fields(SweepSettings)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise MolstrataError(
                f"{source}: unknown [sweep] option {key!r}; known: "
                f"{', '.join(['preset', 'space', *sorted(known)])}"
            )
        values[key] = value
    if "objective" in values:
        objective = values["objective"]
        values["objective"] = (objective,) if isinstance(objective, str) else objective
    _check_types(values, source)
    if "enqueue" in values:
        values["enqueue"] = tuple(dict(e) for e in values["enqueue"])
    values["objective"] = tuple(values.get("objective", SweepSettings.objective))
    return SweepSettings(**values)


_TYPES = {
    "objective": (list, tuple), "sampler": str, "pruner": str, "n_trials": int,
    "timeout": (int, float), "seed": int, "startup_trials": int, "pruner_startup_trials": int,
    "pruner_warmup_epochs": int, "heartbeat_s": int, "grace_s": int, "max_retries": int,
    "bootstrap": int, "trial_plots": bool, "clean_pruned": bool, "study_name": str,
    "storage": str, "enqueue": list,
}


def _check_types(values: Mapping[str, Any], source: str) -> None:
    for key, value in values.items():
        wanted = _TYPES[key]
        numeric = wanted in (int, (int, float))
        if not isinstance(value, wanted) or (numeric and isinstance(value, bool)):
            raise MolstrataError(f"{source}: [sweep] {key} = {value!r} has the wrong type")
    if any(not isinstance(name, str) for name in values.get("objective", ())):
        raise MolstrataError(f"{source}: [sweep] objective must be a name or a list of names")
    if any(not isinstance(e, Mapping) for e in values.get("enqueue", ())):
        raise MolstrataError(
            f'{source}: [sweep] enqueue must be a list of tables, e.g. [{{"training.lr" = 1e-3}}]'
        )


def _validated(settings: SweepSettings, space: SearchSpace, base: TrainConfig) -> SweepSettings:
    """The settings, or a one-line MolstrataError naming the first impossible one."""
    s = settings
    check_objectives(s.objective)
    checks = [
        (s.sampler in SAMPLERS, f"sampler {s.sampler!r}; use one of {', '.join(SAMPLERS)}"),
        (s.pruner is None or s.pruner in PRUNERS,
         f"pruner {s.pruner!r}; use one of {', '.join(PRUNERS)}"),
        (len(s.objective) == 1 or s.pruning == "none",
         f"pruner {s.pruner!r} with {len(s.objective)} objectives: Optuna prunes single-"
         "objective sweeps only; set pruner = \"none\" or keep one objective"),
        (s.n_trials >= 1, f"n_trials must be at least 1, got {s.n_trials}"),
        (s.timeout is None or s.timeout > 0, "timeout must be > 0 seconds"),
        (s.startup_trials >= 0 and s.pruner_startup_trials >= 0 and s.pruner_warmup_epochs >= 0,
         "startup_trials, pruner_startup_trials and pruner_warmup_epochs must be >= 0"),
        (s.heartbeat_s >= 1, "heartbeat_s must be at least 1 second"),
        (s.grace > s.heartbeat_s, "grace_s must be longer than heartbeat_s"),
        (s.max_retries >= 0, "max_retries must be >= 0"),
        (s.bootstrap >= 10, "bootstrap must be at least 10 resamples"),
        (len(s.enqueue) <= s.n_trials, f"enqueue lists {len(s.enqueue)} trials, more than "
                                      f"n_trials = {s.n_trials}"),
    ]
    for ok, message in checks:
        if not ok:
            raise MolstrataError(f"sweep: impossible option: {message}")
    if s.sampler == "grid":
        space.grid()  # refuses a continuous dimension
    dimensions = {d.option: d for d in space.dimensions}
    for k, params in enumerate(s.enqueue, 1):
        if s.sampler == "grid" and set(params) != set(dimensions):
            raise MolstrataError(
                f"sweep: enqueued trial {k} must set every swept option with the grid sampler "
                f"({', '.join(dimensions)})"
            )
        for option, value in params.items():
            if option not in dimensions:
                raise MolstrataError(
                    f"sweep: enqueued trial {k} sets {option}, which is not in [sweep.space]; "
                    f"swept: {', '.join(dimensions)}"
                )
            if not dimensions[option].contains(value):
                raise MolstrataError(
                    f"sweep: enqueued trial {k} sets {option} = {value!r}, outside "
                    f"{dimensions[option].describe()}"
                )
        apply(base, params, f"sweep: enqueued trial {k}")
    return settings
