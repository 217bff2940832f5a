"""A search space over training options: the ranges and choices a hyper-parameter sweep draws
each trial's config from, parsed from a config file's `[sweep.space]` table and validated once.

    [sweep.space]
    "training.lr" = {low = 1e-4, high = 1e-2, log = true}     # a float range, log scale
    "training.epochs" = {low = 5, high = 30, step = 5}         # an integer range with a step
    "data.neighbor_cutoff" = {low = 3.0, high = 6.0}           # Å
    "model.n_atom_basis" = {choices = [32, 64, 128]}           # a finite set

Any option of a run config can be swept except those that change which molecules a trial
trains and is validated on (FIXED_OPTIONS): trials are compared on one validation split.
Every bound and choice is checked by TrainConfig's own validation, so every trial's config
passes TrainConfig.validate().
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from molstrata.errors import MolstrataError
from molstrata.training.config import SECTIONS, TrainConfig

# Options a sweep may not vary, with the reason. Everything in [data] but the neighbour cutoff
# chooses the molecules or the split; [subset] filters restrict the validation split too
# (subset.cap restricts training only, so it may vary); the rest say where a run computes.
FIXED_OPTIONS: dict[str, str] = {
    **{f"data.{f.name}": "it changes the molecules or the split the trials are compared on"
       for f in fields(TrainConfig().data) if f.name != "neighbor_cutoff"},
    **{f"subset.{name}": "it changes the validation molecules the trials are compared on"
       for name in ("min_size", "max_size", "contains", "excludes")},
    **{f"runtime.{name}": "it says where a run computes, not what it learns"
       for name in ("device", "threads", "eval_batch_size", "track")},
}
SPEC_KEYS = ("low", "high", "step", "log", "choices")


@dataclass(frozen=True)
class Dimension:
    """One swept option: a range (int or float, optionally log scale or stepped) or choices."""

    option: str                      # "section.key", e.g. "training.lr"
    kind: str                        # "int", "float" or "categorical"
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def section(self) -> str:
        return self.option.partition(".")[0]

    @property
    def key(self) -> str:
        return self.option.partition(".")[2]

    def suggest(self, trial) -> Any:
        """This dimension's value for an Optuna trial (any object with suggest_* methods)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.option, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.option, self.low, self.high, step=self.step or 1,
                                     log=self.log)
        return trial.suggest_float(self.option, self.low, self.high, step=self.step,
                                   log=self.log)

    def grid(self) -> list[Any] | None:
        """Every value of a finite dimension (choices, or a range with a step); else None."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "float" and (self.step is None or self.log):
            return None
        step = self.step or 1
        n = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        values = [self.low + k * step for k in range(n)]
        return values if self.kind == "int" else [round(v, 12) for v in values]

    def contains(self, value: Any) -> bool:
        """Whether `value` is one this dimension can give (used for enqueued trials)."""
        if self.kind == "categorical":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if not self.low <= value <= self.high:
            return False
        return self.step is None or abs((value - self.low) / self.step
                                        - round((value - self.low) / self.step)) < 1e-9

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"{self.option} in {list(self.choices)}"
        scale = ", log" if self.log else ""
        step = f", step {self.step}" if self.step is not None else ""
        return f"{self.option} in [{self.low}, {self.high}]{step}{scale}"


@dataclass(frozen=True)
class SearchSpace:
    """The swept options, in the order the config file lists them."""

    dimensions: tuple[Dimension, ...]

    @property
    def options(self) -> list[str]:
        return [d.option for d in self.dimensions]

    def suggest(self, trial) -> dict[str, Any]:
        """A trial's values of every dimension, {option: value}."""
        return {d.option: d.suggest(trial) for d in self.dimensions}

    def grid(self) -> dict[str, list[Any]]:
        """{option: every value} for a grid search; a MolstrataError if a dimension is not
        finite."""
        grid = {}
        for d in self.dimensions:
            values = d.grid()
            if values is None:
                raise MolstrataError(
                    f"sweep: the grid sampler needs finite values, but {d.describe()} is a "
                    "continuous range; give it choices = [...] or a step (and no log scale)"
                )
            grid[d.option] = values
        return grid

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())


def apply(base: TrainConfig, params: Mapping[str, Any], source: str = "sweep") -> TrainConfig:
    """A copy of `base` with each "section.key" of `params` set, validated."""
    config = copy.deepcopy(base)
    return config.apply([(*option.partition(".")[::2], value)
                         for option, value in params.items()], source).validate()


def parse_space(raw: Any, base: TrainConfig, source: str = "sweep.space") -> SearchSpace:
    """The search space of a `[sweep.space]` table, refusing (one line) an empty or
    contradictory space, unknown or fixed options, and bounds or choices the config refuses.

    Keys are "section.key" strings, or sub-tables `[sweep.space.training] lr = {...}`."""
    if not isinstance(raw, Mapping) or not raw:
        raise MolstrataError(
            f"{source} is empty: list the options to sweep, e.g. "
            '"training.lr" = {low = 1e-4, high = 1e-2, log = true}'
        )
    dimensions = []
    for option, spec in _flatten(raw, source).items():
        dimensions.append(_dimension(option, spec, base, source))
    _check_effective(dimensions, base, source)
    return SearchSpace(tuple(dimensions))


def _flatten(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, spec in raw.items():
        if "." not in name and name in SECTIONS and isinstance(spec, Mapping) \
                and not set(spec) & set(SPEC_KEYS):
            items = {f"{name}.{key}": value for key, value in spec.items()}
        else:
            items = {name: spec}
        for option, value in items.items():
            if option in flat:
                raise MolstrataError(f"{source}: {option} is listed twice; keep one")
            flat[option] = value
    return flat


def _dimension(option: str, spec: Any, base: TrainConfig, source: str) -> Dimension:
    section, dot, key = option.partition(".")
    where = f"{source} {option}"
    if not dot:
        raise MolstrataError(f"{where}: name options as SECTION.KEY, e.g. \"training.lr\"")
    if section not in SECTIONS:
        raise MolstrataError(f"{where}: unknown section [{section}]; use {', '.join(SECTIONS)}")
    types = {f.name: str(f.type) for f in fields(getattr(base, section))}
    if key not in types:
        raise MolstrataError(
            f"{where}: unknown option {option}; known in [{section}]: {', '.join(sorted(types))}"
        )
    if option in FIXED_OPTIONS:
        raise MolstrataError(f"{where}: {option} cannot be swept: {FIXED_OPTIONS[option]}")
    if not isinstance(spec, Mapping):
        raise MolstrataError(
            f"{where}: give a table, {{low = ..., high = ...}} or {{choices = [...]}}, "
            f"not {spec!r}"
        )
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise MolstrataError(f"{where}: unknown key {unknown[0]!r}; use {', '.join(SPEC_KEYS)}")
    base_type = types[key].replace(" | None", "")
    if "choices" in spec:
        dimension = _categorical(option, spec, where)
        values = list(dimension.choices)
    else:
        dimension = _range(option, spec, base_type, where)
        values = [dimension.low, dimension.high]
    for value in values:  # every bound and choice must make a valid config
        try:
            apply(base, {option: value}, where)
        except MolstrataError as error:
            reason = str(error).removeprefix(f"{where}: ").removeprefix("impossible option: ")
            raise MolstrataError(f"{where} = {value!r}: {reason}") from None
    return dimension


def _categorical(option: str, spec: Mapping[str, Any], where: str) -> Dimension:
    extra = sorted(set(spec) - {"choices"})
    if extra:
        raise MolstrataError(f"{where}: give choices or a range, not both (drop {extra[0]})")
    choices = spec["choices"]
    if not isinstance(choices, list) or not choices:
        raise MolstrataError(f"{where}: choices must be a non-empty list, e.g. [32, 64, 128]")
    if any(isinstance(c, list | dict) for c in choices):
        raise MolstrataError(f"{where}: choices must be numbers, strings or booleans")
    if len({(type(c), c) for c in choices}) != len(choices):
        raise MolstrataError(f"{where}: choices {choices} repeat a value; list each once")
    return Dimension(option, "categorical", choices=tuple(choices))


def _range(option: str, spec: Mapping[str, Any], base_type: str, where: str) -> Dimension:
    if base_type not in ("int", "float"):
        raise MolstrataError(
            f"{where}: {option} takes a {base_type}, so sweep it with choices = [...]"
        )
    if "low" not in spec or "high" not in spec:
        raise MolstrataError(f"{where}: give both low and high (or choices = [...])")
    low, high, step = spec["low"], spec["high"], spec.get("step")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise MolstrataError(f"{where}: log must be true or false")
    number = int if base_type == "int" else int | float
    for name, value in (("low", low), ("high", high), ("step", step)):
        if value is None and name == "step":
            continue
        if isinstance(value, bool) or not isinstance(value, number) \
                or not math.isfinite(value):
            kind = "an integer" if base_type == "int" else "a number"
            raise MolstrataError(f"{where}: {name} must be {kind}, got {value!r}")
    if not low < high:
        raise MolstrataError(f"{where}: low ({low}) must be below high ({high})")
    if step is not None and not 0 < step <= high - low:
        raise MolstrataError(f"{where}: step must be > 0 and at most high - low")
    if log and step is not None:
        raise MolstrataError(f"{where}: a log scale cannot have a step; drop one")
    if log and low <= 0:
        raise MolstrataError(f"{where}: a log scale needs low > 0")
    if base_type == "float":
        low, high = float(low), float(high)
        step = float(step) if step is not None else None
    return Dimension(option, base_type, low=low, high=high, step=step, log=log)


def _check_effective(dimensions: list[Dimension], base: TrainConfig, source: str) -> None:
    """Refuse options swept where no trial can feel them (a contradictory space)."""
    swept = {d.option: d for d in dimensions}

    def values(option: str) -> set:
        if option in swept:
            d = swept[option]
            return set(d.choices) if d.kind == "categorical" else {"<range>"}
        section, _, key = option.partition(".")
        return {getattr(getattr(base, section), key)}

    needs = {
        "training.rate": ("training.loss_weighting", {"size", "size_frequency"}),
        "training.alpha": ("training.loss_weighting", {"inverse_frequency"}),
        "training.plateau_factor": ("training.scheduler", {"plateau"}),
        "training.plateau_patience": ("training.scheduler", {"plateau"}),
    }
    for option, (other, wanted) in needs.items():
        if option in swept and not values(other) & wanted:
            raise MolstrataError(
                f"{source}: {option} is swept but no trial uses it ({other} is "
                f"{' or '.join(sorted(map(str, values(other))))}; it needs "
                f"{' or '.join(sorted(wanted))}); sweep {other} too or drop {option}"
            )
