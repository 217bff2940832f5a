"""A study plan: named experiments (training configs) and the analyses drawn from them.

A plan is one TOML file (the shipped ones are in molstrata/study/plans/):

    [study]
    title = "..."
    preset = "seed-default"           # training preset every experiment starts from
    replicates = 3                    # training seeds per experiment (default 1)
    margin = 0.05                     # equivalence margin: a fraction of the reference's figure
    rarity_margin = 0.1               # margin of the rarity elasticity (hypotheses 1 and 2)
    alpha = 0.05                      # family-wise error rate of the primary claims
    paired_seeds = false              # judge arms trained with the same seeds seed by seed

    [defaults.training]               # options for every experiment (any config section)
    epochs = 22

    [experiments.cap]                 # one experiment, or one per value with `vary`
    title = "Undersampled to {subset.cap} molecules per size, {training.length}"
    vary = { option = "subset.cap", values = [2000, 4000, 6000], name = "cap-{value}" }
    [experiments.cap.training]        # the experiment's own options
    lr = 1e-3

    [[analyses]]                      # what to compare, and which of the study's claims to test
    kind = "undersampling"            # see ANALYSES
    reference = "baseline"
    runs = ["cap-*"]                  # experiment names; shell-style patterns allowed

Every experiment is tested on the same molecules: the options that choose the dataset and its
split ([data] filters, max_molecules, split, split_seed, split_file) must be equal across the
plan; targeted training goes in [subset], which never touches the test set.

With `replicates = k` every experiment is trained k times, with training seeds runtime.seed,
runtime.seed + 1, ..., on the same split: only the initialisation and the batch order change
(a cap's draw of molecules is seeded by data.split_seed and stays), unless subset.draw = "seed"
gives each training seed its own draw of training molecules (train / val and the caps; the test
set stays). Each replicate is a run directory OUT/runs/NAME/seed-S.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molstrata.errors import MolstrataError
from molstrata.study.presets import plan_presets, preset_file
from molstrata.study.verdicts import Settings
from molstrata.training.config import SECTIONS, TrainConfig, parse_toml, preset, read_text


@dataclass(frozen=True)
class AnalysisKind:
    """What an analysis kind shows (its default title) and which experiments it needs."""

    description: str
    min_experiments: int = 2
    needs_reference: bool = True


# The analyses a plan can ask for: the one list of kinds. Each kind also has the claims it
# tests (findings.FINDINGS) and its report section (report.SECTIONS), keyed by these names;
# tests/study/test_registries.py holds the three to the same kinds.
ANALYSES: dict[str, AnalysisKind] = {
    "baseline": AnalysisKind("errors per size and per element of one model; hypotheses 1 "
                             "and 2", min_experiments=1, needs_reference=False),
    "undersampling": AnalysisKind("per-size caps against the reference; hypothesis 3"),
    "rate_sweep": AnalysisKind("loss-weight rates of one weighting against r = 0"),
    "directed": AnalysisKind("training on a targeted subset against the reference; "
                             "hypothesis 4"),
    "final": AnalysisKind("the default against the custom model: total error, per size, "
                          "curves, time"),
    "compare": AnalysisKind("any runs side by side, with no claim tested",
                            needs_reference=False),
    "learning_curve": AnalysisKind("per-stratum learning curves over nested training subsets "
                                   "(subset.max_train), fits and data advice",
                                   needs_reference=False),
    "data_value": AnalysisKind("per-stratum data value: each stratum's training molecules "
                               "thinned in turn (subset.thin) against the full training set; "
                               "own-data curves, cross effects, advice"),
}

# Options that fix which molecules exist and how they are split: equal across a plan.
SPLIT_OPTIONS = ("dataset", "target", "unit", "min_size", "max_size", "contains", "excludes",
                 "max_molecules", "split", "split_seed", "split_file")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class Experiment:
    """One training run of a plan: its directory name, a title and its resolved config."""

    name: str
    title: str
    config: TrainConfig
    group: str


@dataclass(frozen=True)
class Replicate:
    """One training of an experiment: its config with the replicate's training seed."""

    experiment: Experiment
    seed: int

    @property
    def key(self) -> str:
        """NAME/seed-S: the run directory under OUT/runs, and its key in the work queue."""
        return f"{self.experiment.name}/seed-{self.seed}"

    @property
    def config(self) -> TrainConfig:
        config = self.experiment.config
        return dataclasses.replace(config, runtime=dataclasses.replace(config.runtime,
                                                                       seed=self.seed))


@dataclass(frozen=True)
class Analysis:
    """A comparison of experiments: `reference` first, then `runs` (patterns expanded)."""

    kind: str
    name: str
    title: str
    reference: str | None
    runs: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)
    sizes: tuple[int, int] | None = None
    target_mae: float | None = None
    """learning_curve: the MAE the data advice aims at, in the error unit (meV for energies)."""

    @property
    def experiments(self) -> tuple[str, ...]:
        return ((self.reference,) if self.reference else ()) + self.runs

    def label(self, experiment: str) -> str:
        return self.labels.get(experiment, experiment)


@dataclass(frozen=True)
class StudyPlan:
    """A parsed, validated plan."""

    name: str
    title: str
    description: str
    experiments: tuple[Experiment, ...]
    analyses: tuple[Analysis, ...]
    source: str
    replicates: int = 1
    verdicts: Settings = field(default_factory=Settings)
    """How verdicts are made: margins, family-wise level, paired seeds ([study] keys)."""

    def experiment(self, name: str) -> Experiment:
        return next(e for e in self.experiments if e.name == name)

    def replicates_of(self, experiment: Experiment) -> tuple[Replicate, ...]:
        """The experiment's trainings: seeds runtime.seed, runtime.seed + 1, ..."""
        first = experiment.config.runtime.seed
        return tuple(Replicate(experiment, first + i) for i in range(self.replicates))

    @property
    def runs(self) -> tuple[Replicate, ...]:
        """Every training of the plan, replicate by replicate (seed 1 of every experiment
        before seed 2 of any), so that a study cut short holds whole replicates."""
        per_experiment = [self.replicates_of(e) for e in self.experiments]
        return tuple(r for i in range(self.replicates) for r in (rs[i] for rs in per_experiment))


def load_plan(name_or_path: str | Path,
              overrides: list[tuple[str, str, Any]] | tuple = (), *,
              replicates: int | None = None) -> StudyPlan:
    """A shipped plan by name, or a plan file; `overrides` (section, key, value) apply to
    every experiment last (a command line's --set); `replicates` replaces the plan's."""
    path = Path(name_or_path)
    if str(name_or_path) in plan_presets():
        text = preset_file(str(name_or_path)).read_text(encoding="utf-8")
        source, name = f"study preset {name_or_path}", str(name_or_path)
    elif path.suffix == ".toml" or path.exists():
        text = read_text(path, "study plan")
        source, name = f"study plan {path}", path.stem
    else:
        raise MolstrataError(
            f"unknown study {str(name_or_path)!r}; use a preset ({', '.join(plan_presets())}) "
            "or a plan file ending in .toml"
        )
    plan = parse_plan(parse_toml(text, source), name, source, text, overrides)
    if replicates is not None:
        plan = dataclasses.replace(plan, replicates=_replicates(replicates, "--replicates"))
    return plan


def parse_plan(raw: dict[str, Any], name: str, source: str, text: str = "",
               overrides: list[tuple[str, str, Any]] | tuple = ()) -> StudyPlan:
    """Validate a plan's tables and resolve every experiment's config."""
    _known(raw, {"study", "defaults", "experiments", "analyses"}, source, "top level")
    study = _table(raw.get("study", {}), f"{source}: [study]")
    _known(study, {"title", "description", "preset", "replicates", *VERDICT_KEYS}, source,
           "[study]")
    replicates = _replicates(study.get("replicates", 1), f"{source}: [study] replicates")
    verdicts = _verdict_settings(study, source)
    base = study.get("preset", "quick")
    defaults = _table(raw.get("defaults", {}), f"{source}: [defaults]")
    _known(defaults, set(SECTIONS), source, "[defaults]")
    experiments_raw = _table(raw.get("experiments", {}), f"{source}: [experiments]")
    if not experiments_raw:
        raise MolstrataError(f"{source} lists no experiments; add an [experiments.NAME] table")

    experiments: list[Experiment] = []
    for group, table in experiments_raw.items():
        experiments += _expand(group, _table(table, f"{source}: [experiments.{group}]"), base,
                               defaults, overrides, source)
    names = [e.name for e in experiments]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise MolstrataError(f"{source}: two experiments are named {duplicate!r}; rename one")
    _check_same_test_set(experiments, source)

    analyses_raw = raw.get("analyses", [])
    if not isinstance(analyses_raw, list):
        raise MolstrataError(f"{source}: write analyses as [[analyses]] tables")
    analyses = [_analysis(_table(a, f"{source}: [[analyses]] #{i + 1}"), names, source, i)
                for i, a in enumerate(analyses_raw)]
    analysis_names = [a.name for a in analyses]
    duplicate = next((n for n in analysis_names if analysis_names.count(n) > 1), None)
    if duplicate:
        raise MolstrataError(f"{source}: two analyses are named {duplicate!r}; give each a name")
    title = _title(str(study.get("title", name)), experiments[0].config, f"{source}: [study]")
    return StudyPlan(name, title, study.get("description", ""),
                     tuple(experiments), tuple(analyses), text, replicates, verdicts)


VERDICT_KEYS = ("margin", "rarity_margin", "alpha", "paired_seeds")
"""[study] keys declaring how verdicts are made (study.verdicts.Settings), before any run."""


def _verdict_settings(study: dict[str, Any], source: str) -> Settings:
    """The plan's verdict settings: each in its range, or a one-line error naming the fix."""
    settings = Settings(**{key: study[key] for key in VERDICT_KEYS if key in study})
    checks = [
        (isinstance(settings.margin, (int, float)) and 0 < settings.margin < 1,
         "margin must be a fraction of the reference's figure in (0, 1), e.g. 0.05"),
        (isinstance(settings.rarity_margin, (int, float)) and 0 < settings.rarity_margin < 1,
         "rarity_margin must be an elasticity in (0, 1), e.g. 0.1"),
        (isinstance(settings.alpha, float) and 0 < settings.alpha < 0.5,
         "alpha must be a family-wise error rate in (0, 0.5), e.g. 0.05"),
        (isinstance(settings.paired_seeds, bool), "paired_seeds must be true or false"),
    ]
    for ok, message in checks:
        if not ok:
            raise MolstrataError(f"{source}: [study] {message}")
    return settings


def _replicates(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MolstrataError(f"{where} must be a whole number of training seeds >= 1, e.g. 3; "
                             f"got {value!r}")
    return value


def _expand(group: str, table: dict[str, Any], base: str, defaults: dict[str, Any],
            overrides, source: str) -> list[Experiment]:
    where = f"[experiments.{group}]"
    _known(table, {"title", "preset", "vary", *SECTIONS}, source, where)
    vary = table.get("vary")
    if vary is None:
        cases: list[tuple[str, Any]] = [(group, None)]
        option = None
    else:
        vary = _table(vary, f"{source}: {where} vary")
        _known(vary, {"option", "values", "name"}, source, f"{where} vary")
        option, values = vary.get("option"), vary.get("values")
        if not isinstance(option, str) or option.count(".") != 1:
            raise MolstrataError(
                f"{source}: {where} vary.option must name one option as SECTION.KEY, "
                "e.g. \"training.rate\""
            )
        if not isinstance(values, list) or not values:
            raise MolstrataError(f"{source}: {where} vary.values must be a non-empty list")
        pattern = vary.get("name", group + "-{value}")
        cases = [(pattern.format(value=_short(v)), v) for v in values]
    experiments = []
    for name, value in cases:
        if not _NAME.match(name):
            raise MolstrataError(
                f"{source}: experiment name {name!r} must be letters, digits and . _ + - "
                "(it names a folder)"
            )
        context = f"{source}: experiment {name}"
        config = preset(table.get("preset", base))
        for sections in (defaults, {k: v for k, v in table.items() if k in SECTIONS}):
            config.apply([(section, key, v) for section, values in sections.items()
                          for key, v in _table(values, f"{context} [{section}]").items()],
                         context)
        if option is not None:
            config.apply([(*option.split("."), value)], context)
        config.apply(overrides, "--set")
        try:
            config.validate()
        except MolstrataError as error:
            raise MolstrataError(f"{context}: {error}") from None
        title = _title(str(table.get("title", name)), config, context, _short(value))
        experiments.append(Experiment(name, title, config, group))
    return experiments


def _title(template: str, config: TrainConfig, where: str, value: Any = None) -> str:
    """A title from the final config (after the plan's tables and --set), so that it cannot
    state a value the run does not have: {training.length}, {subset.cap}, any {SECTION.KEY},
    {dataset} (`dataset_name`) and an experiment's {value} of `vary`."""
    fields = {section: getattr(config, section) for section in SECTIONS}
    try:
        return template.format(dataset=dataset_name(config), value=value, **fields)
    except (KeyError, AttributeError, IndexError, TypeError, ValueError) as error:
        raise MolstrataError(
            f"{where}: title {template!r} cannot be filled in ({type(error).__name__}: "
            f"{error}); name options as {{SECTION.KEY}}, e.g. {{training.epochs}}, or "
            f"{{dataset}}, or {{value}} in an experiment with vary"
        ) from None


def dataset_name(config: TrainConfig) -> str:
    """The data a config trains on, as a title names it: "QM9 (8,000-molecule slice)",
    "mine.extxyz"."""
    d = config.data
    name = "QM9" if d.dataset.lower() == "qm9" else Path(d.dataset).name
    return f"{name} ({d.max_molecules:,}-molecule slice)" if d.max_molecules else name


def _analysis(table: dict[str, Any], names: list[str], source: str, i: int) -> Analysis:
    where = f"[[analyses]] #{i + 1}"
    _known(table, {"kind", "name", "title", "reference", "runs", "labels", "sizes",
                   "target_mae"}, source, where)
    kind = table.get("kind")
    if kind not in ANALYSES:
        raise MolstrataError(
            f"{source}: {where} kind {kind!r} is unknown; use one of {', '.join(ANALYSES)}"
        )
    reference = table.get("reference")
    if reference is not None and reference not in names:
        raise MolstrataError(f"{source}: {where} reference {reference!r} is not an experiment")
    runs: list[str] = []
    for pattern in table.get("runs", []):
        matched = [n for n in names if fnmatch.fnmatchcase(n, pattern) and n != reference]
        if not matched:
            raise MolstrataError(
                f"{source}: {where} runs pattern {pattern!r} matches no experiment; "
                f"experiments: {', '.join(names)}"
            )
        runs += [n for n in matched if n not in runs]
    needed = ANALYSES[kind].min_experiments
    if len(runs) + (reference is not None) < needed:
        raise MolstrataError(f"{source}: {where} ({kind}) needs at least {needed} experiments")
    if ANALYSES[kind].needs_reference and reference is None:
        raise MolstrataError(f"{source}: {where} ({kind}) needs a reference experiment")
    sizes = table.get("sizes")
    if sizes is not None and not (isinstance(sizes, list) and len(sizes) == 2
                                  and all(isinstance(s, int) for s in sizes)
                                  and 1 <= sizes[0] <= sizes[1]):
        raise MolstrataError(f"{source}: {where} sizes must be [min, max] atoms, e.g. [18, 23]")
    labels = _table(table.get("labels", {}), f"{source}: {where} labels")
    title = table.get("title", ANALYSES[kind].description)
    target = table.get("target_mae")
    if target is not None and (isinstance(target, bool) or not isinstance(target, int | float)
                               or target <= 0):
        raise MolstrataError(f"{source}: {where} target_mae must be a positive error (meV for "
                             f"energies), e.g. 43; got {target!r}")
    return Analysis(kind, str(table.get("name", kind)), str(title),
                    reference, tuple(runs), {str(k): str(v) for k, v in labels.items()},
                    None if sizes is None else (sizes[0], sizes[1]),
                    None if target is None else float(target))


def _check_same_test_set(experiments: list[Experiment], source: str) -> None:
    first = experiments[0]
    for experiment in experiments[1:]:
        for key in SPLIT_OPTIONS:
            if getattr(experiment.config.data, key) != getattr(first.config.data, key):
                raise MolstrataError(
                    f"{source}: experiment {experiment.name} sets data.{key} differently from "
                    f"{first.name}; every experiment of a study is tested on the same molecules, "
                    "so restrict training with [subset] instead"
                )


def _known(table: dict[str, Any], allowed: set[str], source: str, where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise MolstrataError(
            f"{source}: unknown key {unknown[0]!r} in {where}; known: {', '.join(sorted(allowed))}"
        )


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MolstrataError(f"{where} must be a table")
    return value


def _short(value: Any) -> str:
    """A value as it reads in a name: 10.0 -> "10", 0.5 -> "0.5"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
