"""Typed run configuration: one readable TOML file per run, validated once, saved with the run.

Sections: [data] what to train on, [subset] a targeted training subset (test set untouched),
[model] SchNet's hyper-parameters, [training] optimisation, [runtime] device, threads, seed.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from molstrata.errors import MolstrataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def option(default: Any, *, shortcut: bool | str = False, neutral: bool = False) -> Any:
    """A config field with its metadata, the one source of what refers to it by name:
    `shortcut` gives it a command-line shortcut (True: `--key`, a name: `--name`), `neutral`
    marks it RESULT_NEUTRAL (a resumed run may change it). `default` may be a factory (list)."""
    metadata = {"shortcut": shortcut, "neutral": neutral}
    if callable(default):
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class DataConfig:
    """The dataset, the target, the split and the neighbour list (the study's dataCutoff);
    skip_periodic leaves a file's periodic structures out instead of refusing the file."""

    dataset: str = option("qm9", shortcut=True)
    target: str = option("U0", shortcut=True)
    unit: str | None = option(None, shortcut=True)
    cache_dir: str | None = option(None, shortcut=True, neutral=True)
    min_size: int | None = None
    max_size: int | None = None
    contains: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    max_molecules: int | None = option(None, shortcut=True)
    skip_periodic: bool = option(False, shortcut=True)
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    split_seed: int = 0
    split_file: str | None = None
    neighbor_cutoff: float = 5.0


@dataclass
class SubsetConfig:
    """A targeted training subset: restricts train and validation, never the test set.
    max_train keeps at most that many training molecules (after the filters and the cap): the
    first of a permutation of the training split seeded by data.split_seed, so that a smaller
    max_train's molecules are among a larger one's (nested subsets, for learning curves).

    draw says what seeds the training data's draw: "split" (data.split_seed: every training
    seed trains on the same molecules) or "seed" (runtime.seed: the molecules outside the test
    set are split into train and val anew, and the cap and max_train drawn anew, per training
    seed, so replicates measure data-sampling noise too; the test molecules stay the same).

    thin names one stratum ("size:12", or "element:F": the molecules that contain F) whose
    training molecules are thinned, last, to thin_fraction of them (a seeded draw, nested
    across fractions); every other training molecule, and val and test, stay. An element
    cannot be thinned to 0: a model has no reference energy or trained embedding for an
    element no training molecule holds (the per-stratum data value, study/data_value.py)."""

    min_size: int | None = option(None, shortcut="train_min_size")
    max_size: int | None = option(None, shortcut="train_max_size")
    contains: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    cap: int | None = option(None, shortcut=True)
    max_train: int | None = None
    draw: str = option("split", shortcut=True)
    thin: str | None = None
    thin_fraction: float = 1.0

    @property
    def thinned(self) -> tuple[str, int | str] | None:
        """The thinned stratum as ("size", N) or ("element", symbol); None when none is named.
        A name of neither spelling is a MolstrataError naming the fix."""
        if self.thin is None:
            return None
        from molstrata.data.molecules import atomic_number, element_symbol

        kind, _, key = self.thin.partition(":")
        if kind == "size" and key.isdigit() and int(key) >= 1:
            return "size", int(key)
        if kind == "element" and key == key.strip().capitalize():
            try:
                return "element", element_symbol(atomic_number(key))
            except MolstrataError:
                pass
        raise MolstrataError(f"impossible option: subset.thin {self.thin!r} must name one "
                             'stratum as size:N or element:X, e.g. "size:12" or "element:F"')


@dataclass
class ModelConfig:
    """The representation (`schnet` or `painn`, molstrata.models.REPRESENTATIONS) + Atomwise;
    `cutoff` is the cosine cutoff (the study's trainingCutoff). n_filters is SchNet's own;
    shared_interactions and shared_filters PaiNN's; activation (None: the representation's
    default, shifted_softplus for SchNet, silu for PaiNN) either's."""

    representation: str = option("schnet", shortcut=True)
    n_atom_basis: int = 128
    n_filters: int | None = None
    n_interactions: int = 3
    n_rbf: int = 20
    cutoff: float = 5.0
    aggregation: str | None = None
    activation: str | None = None
    shared_interactions: bool = False
    shared_filters: bool = False

    def hyperparameters(self, extensive: bool) -> dict[str, Any]:
        """The keyword arguments of `EnergyModel` for this config (a target that sums over
        atoms gets the sum head). An option of another representation set away from its
        default is a one-line MolstrataError."""
        from molstrata.models.representations import REPRESENTATIONS, representation_class

        own = representation_class(self.representation).OPTIONS
        defaults = ModelConfig()
        for name in sorted({key for cls in REPRESENTATIONS.values() for key in cls.OPTIONS}):
            if name not in own and getattr(self, name) != getattr(defaults, name):
                users = [n for n, cls in REPRESENTATIONS.items() if name in cls.OPTIONS]
                raise MolstrataError(
                    f"model.{name} is an option of {' and '.join(users)}, not of "
                    f"{self.representation}; drop it or set model.representation"
                )
        options = {name: getattr(self, name) for name in own if getattr(self, name) is not None}
        return {"representation": self.representation, "n_atom_basis": self.n_atom_basis,
                "n_interactions": self.n_interactions, "n_rbf": self.n_rbf,
                "cutoff": self.cutoff, "aggregation": "sum" if extensive else "avg", **options}


@dataclass
class OptimConfig:
    """The optimiser, the length of the run (epochs, or a wall-clock `time_budget` in seconds
    of training), the learning-rate schedule, the loss, an exponential moving average of the
    weights, early stopping and optional gradient clipping.

    A run's length is one choice (RUN_LENGTH): exactly one of `epochs` and `time_budget` is
    set. Setting one clears the other (`TrainConfig.override`), so a budget preset asked for
    epochs trains that many epochs; one layer of options giving both is refused (`apply`).

    A budget run trains until `time_budget` seconds of training have passed (validation and
    checkpoints not counted) and fits its schedule to the budget: `warmup` and the decay are
    fractions of the budget, so it ends with a decayed learning rate; `epochs` is not used.
    With `ema` (a decay per step, e.g. 0.995) the averaged weights are validated, checkpointed
    and exported. `init_from`, a run directory, starts the weights from that run's best
    checkpoint (to train a finished run further, or fine-tune it) and reuses its split, so that
    its test molecules stay unseen; the optimiser and the schedule start afresh.
    """

    epochs: int | None = option(30, shortcut=True)
    time_budget: float | None = option(None, shortcut=True)
    batch_size: int = option(100, shortcut=True)
    lr: float = option(5e-4, shortcut=True)
    optimizer: str = "adam"
    scheduler: str = "plateau"
    warmup: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    min_lr: float = 1e-6
    early_stopping: int | None = None
    grad_clip: float | None = None
    weight_decay: float = 0.0
    loss: str = "mse"
    ema: float | None = None
    loss_weighting: str = option("none", shortcut=True)
    rate: float = option(0.0, shortcut=True)
    alpha: float = option(1.0, shortcut=True)
    init_from: str | None = option(None, shortcut=True)

    @property
    def length(self) -> str:
        """The run's length as a reader says it: "1 epoch", "22 epochs", "30 min"."""
        if self.time_budget is not None:
            return f"{self.time_budget / 60:.4g} min"
        return f"{self.epochs} epoch{'' if self.epochs == 1 else 's'}"


@dataclass
class RuntimeConfig:
    """Where and how: device (auto = CUDA when present), CPU threads, seed, float precision,
    where learning curves also go besides learning_curve.csv (`track`: tensorboard, wandb), and
    `compile`: the training steps under torch.compile (dynamic shapes; it pays a compilation
    of tens of seconds first and needs a C++ compiler on a CPU; it halved PaiNN's step time on
    a 2-core CPU, and gave SchNet about 5 %)."""

    device: str = option("auto", shortcut=True, neutral=True)
    threads: int | None = option(None, shortcut=True, neutral=True)
    seed: int = option(0, shortcut=True)
    dtype: str = "float32"
    eval_batch_size: int = 2048
    track: list[str] = option(list, shortcut=True)
    compile: bool = option(False, shortcut=True)


def pair_cutoff_of(neighbor_cutoff: float, model_cutoff: float) -> float:
    """Å: the pairs a model is given are those closer than the smaller of the neighbour
    search's cutoff and the model's cosine cutoff (beyond the latter a pair adds nothing).
    The one owner of this rule: runs, evaluations and model files all read it from here."""
    return min(float(neighbor_cutoff), float(model_cutoff))


@dataclass
class TrainConfig:
    """Everything a run needs; saved as config.toml in its run directory."""

    data: DataConfig = field(default_factory=DataConfig)
    subset: SubsetConfig = field(default_factory=SubsetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: OptimConfig = field(default_factory=OptimConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    @property
    def pair_cutoff(self) -> float:
        """Å: neighbour pairs closer than this enter the model (`pair_cutoff_of`)."""
        return pair_cutoff_of(self.data.neighbor_cutoff, self.model.cutoff)

    def validate(self) -> TrainConfig:
        """Raise a MolstrataError naming the first impossible option; return self."""
        d, m, t, r = self.data, self.model, self.training, self.runtime
        checks = [
            (len(d.split) in (2, 3) and all(f >= 0 for f in d.split) and sum(d.split) <= 1 + 1e-9
             and d.split[0] > 0 and d.split[1] > 0,
             f"data.split {d.split} must be 2 or 3 fractions >= 0 (train and val > 0) summing "
             "to at most 1, e.g. [0.8, 0.1, 0.1]"),
            (d.neighbor_cutoff > 0, "data.neighbor_cutoff must be > 0 Å, e.g. 5.0"),
            (d.max_molecules is None or d.max_molecules >= 10,
             "data.max_molecules must be at least 10"),
            (self.subset.max_train is None or self.subset.max_train >= 1,
             "subset.max_train must be at least 1 training molecule"),
            (m.cutoff > 0, "model.cutoff must be > 0 Å, e.g. 5.0"),
            (m.n_atom_basis >= 1 and m.n_interactions >= 1 and m.n_rbf >= 1,
             "model.n_atom_basis, n_interactions and n_rbf must be >= 1"),
            (m.aggregation in (None, "sum", "avg"), "model.aggregation must be sum or avg"),
            ((t.epochs is None) != (t.time_budget is None),
             "a run's length is training.epochs or training.time_budget; set exactly one "
             f"(now epochs = {t.epochs}, time_budget = {t.time_budget})"),
            (t.epochs is None or t.epochs >= 1, "training.epochs must be >= 1"),
            (t.time_budget is None or (t.time_budget > 0 and math.isfinite(t.time_budget)),
             "training.time_budget must be a positive duration, e.g. 30m, 1.5h or 600 (s)"),
            (t.time_budget is None or t.scheduler in BUDGET_SCHEDULERS,
             f"training.scheduler {t.scheduler!r} needs epochs; a time budget decays with "
             f"one of {', '.join(BUDGET_SCHEDULERS)}"),
            (t.time_budget is None or t.early_stopping is None,
             "training.early_stopping needs epochs; a time-budget run ends at its budget "
             "(drop one of the two)"),
            (0 <= t.warmup < 1, "training.warmup must be a fraction of the run in [0, 1), "
             "e.g. 0.02"),
            (t.warmup == 0 or t.scheduler != "plateau",
             "training.warmup needs a scheduler of the run's progress (cosine, linear or "
             "none), not plateau"),
            (t.optimizer in OPTIMIZERS,
             f"training.optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (t.loss in LOSSES, f"training.loss must be one of {', '.join(LOSSES)}"),
            (t.ema is None or 0 < t.ema < 1,
             "training.ema must be a decay per step in (0, 1), e.g. 0.995"),
            (t.batch_size >= 1, "training.batch_size must be >= 1"),
            (t.lr > 0 and math.isfinite(t.lr), "training.lr must be a positive number"),
            (t.scheduler in SCHEDULERS,
             f"training.scheduler must be one of {', '.join(SCHEDULERS)}"),
            (t.grad_clip is None or t.grad_clip > 0, "training.grad_clip must be > 0"),
            (t.early_stopping is None or t.early_stopping >= 1,
             "training.early_stopping must be >= 1 epochs"),
            (t.rate >= 0, "training.rate must be >= 0"),
            (0 <= t.alpha <= 1, "training.alpha must be between 0 and 1"),
            (self.subset.cap is None or self.subset.cap >= 1,
             "subset.cap must be at least 1 molecule per size"),
            (self.subset.draw in DRAWS,
             f"subset.draw must be one of {', '.join(DRAWS)} (what seeds the training "
             "molecules' draw)"),
            (0 <= self.subset.thin_fraction <= 1,
             "subset.thin_fraction must be a fraction of the stratum's training molecules in "
             "[0, 1], e.g. 0.5"),
            (self.subset.thin is not None or self.subset.thin_fraction == 1,
             'subset.thin_fraction needs subset.thin, the stratum to thin, e.g. thin = '
             '"size:12"'),
            (r.dtype in ("float32", "float64"), "runtime.dtype must be float32 or float64"),
            (r.threads is None or r.threads >= 1, "runtime.threads must be >= 1"),
            (r.device == "auto" or r.device == "cpu" or r.device.startswith("cuda"),
             "runtime.device must be auto, cpu or cuda[:N]"),
        ]
        for ok, message in checks:
            if not ok:
                raise MolstrataError(f"impossible option: {message}")
        thinned = self.subset.thinned
        if thinned is not None and thinned[0] == "element" and self.subset.thin_fraction == 0:
            raise MolstrataError(
                f"impossible option: subset.thin_fraction 0 of element {thinned[1]} leaves no "
                f"training molecule with {thinned[1]}, which a model cannot then predict (no "
                "reference energy, no trained embedding); thin it to a fraction > 0, e.g. 0.1"
            )

        from molstrata.training.tracking import TRACKERS

        unknown = [name for name in r.track if name not in TRACKERS]
        if unknown or len(set(r.track)) != len(r.track):
            raise MolstrataError(
                f"impossible option: runtime.track {r.track!r}; list each of "
                f"{', '.join(TRACKERS)} at most once"
            )
        from molstrata.training.weights import LOSS_WEIGHTS

        if t.loss_weighting not in LOSS_WEIGHTS:
            raise MolstrataError(
                f"impossible option: training.loss_weighting {t.loss_weighting!r}; "
                f"use one of {', '.join(LOSS_WEIGHTS)}"
            )
        from molstrata.models.activations import ACTIVATIONS

        if m.activation is not None and m.activation not in ACTIVATIONS:
            raise MolstrataError(f"impossible option: model.activation {m.activation!r}; use one "
                                 f"of {', '.join(ACTIVATIONS)}")
        m.hyperparameters(extensive=True)  # the representation and its own options
        return self

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        """The config as TOML (options left at None are omitted, TOML has no null)."""
        lines = []
        for section, values in self.to_dict().items():
            lines.append(f"[{section}]")
            for key, value in values.items():
                if value is not None:
                    lines.append(f"{key} = {toml_value(value)}")
            lines.append("")
        return "\n".join(lines)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config",
                  saved: bool = False) -> TrainConfig:
        """Build from nested dicts, refusing unknown sections and keys with a clear error.
        `saved`: the dicts are a run's own config.toml, where molstrata before 0.9 wrote
        `epochs` beside a `time_budget`, which is the length that run trained for."""
        config = cls()
        training = raw.get("training")
        if saved and isinstance(training, dict) and training.get("time_budget") is not None:
            raw = {**raw, "training": {k: v for k, v in training.items() if k != "epochs"}}
        for section, values in raw.items():
            if not isinstance(values, dict):
                raise MolstrataError(f"{source}: [{section}] must be a table of options")
        return config.apply([(section, key, value) for section, values in raw.items()
                             for key, value in values.items()], source)

    @classmethod
    def from_toml(cls, path: str | Path, saved: bool = False) -> TrainConfig:
        """A config file's config; `saved`: a run's own config.toml (see from_dict)."""
        return cls.from_dict(read_toml(path, "config file"), str(path), saved)

    def apply(self, options: Iterable[tuple[str, str, Any]], source: str = "option"
              ) -> TrainConfig:
        """Set (section, key, value) options given together: one layer of a config file, a
        command line (shortcuts and --set), a plan's table, a sweep's trial or a Python call.
        Every spelling of an option goes through here; a later layer replaces what an earlier
        one set. A layer that gives both lengths of RUN_LENGTH is refused. Returns self."""
        options = list(options)
        lengths = {key for section, key, value in options
                   if section == "training" and key in RUN_LENGTH and value is not None}
        if len(lengths) > 1:
            raise MolstrataError(f"{source}: give training.epochs or training.time_budget, not "
                                 "both: a run is as long as one of them")
        for section, key, value in options:
            self.override(section, key, value, source)
        return self

    def override(self, section: str, key: str, value: Any, source: str = "option") -> None:
        """Set one option, refusing unknown names and values of the wrong type. Setting one
        length of RUN_LENGTH clears the other: a run's length is one choice."""
        if section not in SECTIONS:
            raise MolstrataError(
                f"{source}: unknown section [{section}]; use {', '.join(SECTIONS)}"
            )
        target = getattr(self, section)
        types = {f.name: str(f.type) for f in fields(target)}
        if key not in types:
            raise MolstrataError(
                f"{source}: unknown option {section}.{key}; known: {', '.join(sorted(types))}"
            )
        if (section, key) == ("training", "time_budget") and isinstance(value, str):
            value = parse_duration(value, f"{source}: training.time_budget")
        setattr(target, key, _coerce(value, types[key], f"{section}.{key}", source))
        if section == "training" and key in RUN_LENGTH and value is not None:
            other, = (name for name in RUN_LENGTH if name != key)
            setattr(target, other, None)


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """A TOML file's tables; `what` names the file in errors ("config file", "sweep file")."""
    path = Path(path)
    return parse_toml(read_text(path, what), f"{what} {path}")


def read_text(path: Path, what: str) -> str:
    """A text file's content, or a MolstrataError that names the file and the fix."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MolstrataError(f"{what} {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise MolstrataError(f"{what} {path} is a folder; give the file") from None
    except UnicodeDecodeError as error:
        raise MolstrataError(f"{what} {path} is not valid TOML ({error}); fix it") from None


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """TOML text's tables, or a MolstrataError naming `source` and the syntax error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MolstrataError(f"{source} is not valid TOML ({error}); fix it") from None


def _coerce(value: Any, type_name: str, name: str, source: str) -> Any:
    """The value as the option's declared type, or a MolstrataError saying what was expected."""
    if value is None and "None" in type_name:
        return None
    base = type_name.replace(" | None", "")
    ok = {
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "list[str]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "list[float]": lambda v: isinstance(v, list)
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v),
    }[base]
    if not ok(value):
        raise MolstrataError(f"{source}: option {name} must be {base}, got {value!r}")
    if base == "float":
        return float(value)
    if base == "list[float]":
        return [float(x) for x in value]
    return list(value) if isinstance(value, list) else value


SECTIONS = ("data", "subset", "model", "training", "runtime")
RUN_LENGTH = ("epochs", "time_budget")
"""The two ways to say how long a run trains ([training]): exactly one of them is set."""


def _marked(what: str) -> list[tuple[str, str, Any]]:
    """(section, key, metadata value) of each config field whose `option` metadata sets what."""
    return [(section, f.name, f.metadata[what]) for section in SECTIONS
            for f in fields(TrainConfig.__dataclass_fields__[section].default_factory())
            if f.metadata.get(what)]


RESULT_NEUTRAL = tuple((section, key) for section, key, _ in _marked("neutral"))
"""The options that leave a run's result unchanged on the CPU (where it runs, on how many
threads, where the QM9 cache lies): a resumed run may take new values of these, and only these.
Marked `neutral` on their fields."""
SHORTCUTS = {key if name is True else name: (section, key)
             for section, key, name in _marked("shortcut")}
"""The command-line shortcuts (`--name`, with `_` as `-`) and the field each sets; marked
`shortcut` on their fields."""
SCHEDULERS = ("plateau", "cosine", "linear", "none")
BUDGET_SCHEDULERS = ("cosine", "linear", "none")
"""The schedules that are a function of the run's progress (a budget run has no epochs)."""
OPTIMIZERS = ("adam", "adamw")
LOSSES = ("mse", "l1", "smooth_l1")
"""Per-molecule losses on the standardised error (error / per-atom standard deviation);
smooth_l1 is Huber's, quadratic within one standard deviation."""
DRAWS = ("split", "seed")
"""What seeds the draw of the training molecules: data.split_seed, or each run's runtime.seed."""

_DURATION_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str, name: str = "duration") -> float:
    """Seconds in '30m', '1.5h', '90s', '45min' or a bare number of seconds ('600')."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(s|m|min|h)?\s*", text)
    if match is None:
        raise MolstrataError(f"{name} {text!r} is not a duration; write e.g. 30m, 1.5h, 90s "
                             "or a number of seconds")
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
    if not seconds > 0:
        raise MolstrataError(f"{name} {text!r} must be longer than zero")
    return seconds


def toml_value(value: Any) -> str:
    """One value as TOML text (a config file's, a written plan's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def parse_assignment(text: str) -> tuple[str, str, Any]:
    """'section.key=value' (a command line's --set) as (section, key, value); the value is
    read as TOML (1e-3, true, [18, 23], "text"), a bare word as a string."""
    name, sep, raw = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot:
        raise MolstrataError(f"--set {text!r}: write SECTION.KEY=VALUE, e.g. training.lr=1e-3")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key.strip(), value


def preset(name: str) -> TrainConfig:
    """A named configuration: see PRESETS."""
    if name not in PRESETS:
        raise MolstrataError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")
    return TrainConfig.from_dict(PRESETS[name], f"preset {name}")


DEFAULT_PRESET = "accurate"
"""What `molstrata train` trains when given no preset or config."""

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # The time-to-accuracy recipe (README, "Time to accuracy"): all of QM9, a 30-minute
    # budget with the schedule fitted to it; each choice measured at a fixed budget.
    "accurate": {
        "model": {"n_atom_basis": 64, "n_interactions": 3},
        "training": {"time_budget": 1800.0, "batch_size": 64, "lr": 1e-3,
                     "scheduler": "cosine", "warmup": 0.02, "ema": 0.995, "loss": "l1"},
    },
    # A baseline a 2-core CPU trains in a few minutes: 12,000 QM9 molecules.
    "quick": {
        "data": {"max_molecules": 12_000, "split": [0.8, 0.1, 0.1]},
        "model": {"n_atom_basis": 64, "n_interactions": 3},
        "training": {"epochs": 40, "batch_size": 32, "lr": 1e-3, "scheduler": "cosine"},
    },
    # The study's default model: all of QM9, 22 epochs, batch 512, lr 1e-3,
    # dataCutoff 4 Å, trainingCutoff 5 Å, 38 atom features (STUDY.md section 3, item 7).
    "seed-default": {
        "data": {"neighbor_cutoff": 4.0},
        "model": {"n_atom_basis": 38, "n_interactions": 3, "cutoff": 5.0},
        "training": {"epochs": 22, "batch_size": 512, "lr": 1e-3, "scheduler": "none"},
    },
    # The study's custom model: trained on molecules of more than 17 atoms, batch 128,
    # 30 epochs, lr 1e-4, size-based loss with r = 10; tested on all sizes.
    "seed-custom": {
        "data": {"neighbor_cutoff": 4.0},
        "subset": {"min_size": 18},
        "model": {"n_atom_basis": 38, "n_interactions": 3, "cutoff": 5.0},
        "training": {"epochs": 30, "batch_size": 128, "lr": 1e-4, "scheduler": "none",
                     "loss_weighting": "size", "rate": 10.0},
    },
}
