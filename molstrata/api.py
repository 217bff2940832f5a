"""molstrata from Python: what the commands do, with objects back instead of printed text.

    run = molstrata.train("quick", epochs=3, max_molecules=500, n_atom_basis=32)
    metrics = run.evaluate()                 # metrics.mae_meV, metrics.per_size, ...
    table = molstrata.compare({"base": run, "other": molstrata.Run.open("runs/other")})
    model = molstrata.load_model(run.export("model.pt"))
    model.predict(list_of_atoms).values      # eV, model.unit says so

Each function calls the stage function its command calls (`training.run.train`,
`evaluation.evaluate.evaluate_run`, `evaluation.compare` and `report.compare`, `deploy`,
`study.runner.run_study`) and writes the same files. Numbers come back with their unit in their
name, as in those files: `mae_meV`, `mse_eV2`, `predicted_U0_eV`.

Options of `train` and `run_study` are named as in config.toml: a key that belongs to one section
alone goes by itself (`lr=1e-3`, `n_atom_basis=32`, `cap=2000`), any key as `section__key`
(`subset__min_size=18`) or, through a dict, `**{"training.lr": 1e-3}`. Keys of two sections
(`min_size`, `max_size`, `contains`, `excludes`: [data] filters every split, [subset] only
training) must name their section.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from molstrata.errors import MolstrataError
from molstrata.training.config import (
    DEFAULT_PRESET,
    PRESETS,
    SECTIONS,
    TrainConfig,
    preset,
)
from molstrata.training.rundir import (
    RunPaths,
    default_run_dir,
    read_learning_curve,
    read_run_config,
    read_run_summary,
)

if TYPE_CHECKING:
    from ase import Atoms

    from molstrata.data.molecules import Molecules
    from molstrata.deploy.modelfile import ModelFile
    from molstrata.evaluation.compare import Comparison
    from molstrata.evaluation.evaluate import Evaluation
    from molstrata.evaluation.stratified import StratifiedReport
    from molstrata.study import StudyResult

PathLike = str | os.PathLike


# ---- tables --------------------------------------------------------------------------------


class Records(list):
    """The rows of a table as dicts, column name -> value, a unit in every name that has one
    (the columns of the CSV file the command writes). A plain list of dicts, plus `column` and
    `to_dataframe`."""

    def column(self, name: str) -> list[Any]:
        """One column's values, top to bottom."""
        if self and name not in self[0]:
            raise KeyError(f"no column {name!r}; the columns are {', '.join(self[0])}")
        return [row[name] for row in self]

    def to_dataframe(self):
        """The rows as a pandas DataFrame (pandas is not a dependency of molstrata)."""
        try:
            import pandas
        except ImportError:
            raise MolstrataError("to_dataframe needs pandas, which molstrata does not install; "
                                 "`pip install pandas`, or use the rows as dicts") from None
        return pandas.DataFrame(list(self))


def _records(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Records:
    return Records(dict(zip(header, row)) for row in rows)


# ---- options -------------------------------------------------------------------------------


def option_names() -> dict[str, tuple[str, ...]]:
    """key -> the config sections that have an option of that name."""
    config = TrainConfig()
    owners: dict[str, tuple[str, ...]] = {}
    for section in SECTIONS:
        for f in dataclasses.fields(getattr(config, section)):
            owners[f.name] = owners.get(f.name, ()) + (section,)
    return owners


def resolve_option(name: str, source: str = "molstrata.train") -> tuple[str, str]:
    """(section, key) of an option given as `key`, `section__key` or `section.key`; a key of
    no section, or of several, is a MolstrataError that says how to name it."""
    for separator in (".", "__"):
        section, found, key = name.partition(separator)
        if found and section in SECTIONS:
            return section, key
    owners = option_names()
    sections = owners.get(name, ())
    if len(sections) == 1:
        return sections[0], name
    if len(sections) > 1:
        forms = " or ".join(f"{s}__{name}=..." for s in sections)
        raise MolstrataError(f"{source}: option {name!r} is in {' and '.join(sections)}; "
                             f"name its section: {forms}")
    close = difflib.get_close_matches(name, list(owners), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise MolstrataError(f"{source}: unknown option {name!r}; {hint}name options as in "
                         "config.toml (lr, epochs, n_atom_basis, cap, ...), or section__key, "
                         f"with a section of {', '.join(SECTIONS)}")


def resolve_options(options: Mapping[str, Any],
                    source: str = "molstrata.train") -> list[tuple[str, str, Any]]:
    """(section, key, value) of every option, for `TrainConfig.apply` (which owns the rules
    every spelling shares, such as `epochs` replacing a preset's time budget)."""
    return [(*resolve_option(name, source), value) for name, value in options.items()]


def _config(source: PathLike | TrainConfig | Mapping | None) -> tuple[TrainConfig, str]:
    """(a copy of the config, a name for its run directory) of a preset name, a TrainConfig,
    nested dicts as in config.toml, or a TOML file."""
    if source is None:
        return preset(DEFAULT_PRESET), DEFAULT_PRESET
    if isinstance(source, TrainConfig):
        return copy.deepcopy(source), "config"
    if isinstance(source, Mapping):
        return TrainConfig.from_dict(dict(source), "molstrata.train"), "config"
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        if text in PRESETS:
            return preset(text), text
        path = Path(text)
        if path.suffix == ".toml" or path.exists():
            return TrainConfig.from_toml(path), path.stem
    raise MolstrataError(f"molstrata.train: {source!r} is neither a preset "
                         f"({', '.join(PRESETS)}) nor a .toml config file; give one of them "
                         "or a TrainConfig")


def _log(progress: bool):
    return print if progress else _quiet


def _quiet(message: str) -> None:
    """The log of a call with progress=False."""


# ---- train and runs ------------------------------------------------------------------------


def train(preset_or_config: PathLike | TrainConfig | Mapping | None = None, *,
          out: PathLike | None = None, progress: bool = True, **options: Any) -> Run:
    """Train a model as `molstrata train` does and return its run.

    preset_or_config: a preset name (default: `accurate`), a TOML config file, a TrainConfig
    (copied, never changed) or nested dicts as in config.toml. options: config options (see
    the module's docstring), e.g. `epochs=3, max_molecules=500, n_atom_basis=32`.
    out: the run directory (default: runs/NAME-DATE-TIME). progress: progress bars and log.
    Started by torchrun, every process calls it with the same `out` and trains its share of
    each batch, as `molstrata train --devices` does.
    """
    config, name = _config(preset_or_config)
    config.apply(resolve_options(options), "molstrata.train").validate()
    from molstrata.training.launch import worker_devices
    from molstrata.training.run import train as train_run

    if out is None and worker_devices() is not None:
        raise MolstrataError("molstrata.train under torchrun needs out=RUN_DIR: every process "
                             "must agree on the run directory")
    run_dir = Path(out) if out is not None else default_run_dir(name)
    train_run(config, run_dir, progress=progress, log=_log(progress))
    return Run(run_dir)


def resume(run: PathLike | Run, *, progress: bool = True, **changes: Any) -> Run:
    """Continue an interrupted run from its last checkpoint as its config.toml says, as
    `molstrata train --resume` does, and return it. changes: only options that leave the result
    as it would have been (`device`, `threads`, `cache_dir`); anything else is refused, and so
    is a finished run (train it further with `train(init_from=run, out=...)`)."""
    from molstrata.training.run import train as train_run

    run_dir = Path(os.fspath(run))
    resolved = {(section, key): value for section, key, value
                in resolve_options(changes, "molstrata.resume")}
    train_run(None, run_dir, resume=True, changes=resolved, progress=progress,
              log=_log(progress))
    return Run(run_dir)


@dataclass(frozen=True)
class Run:
    """A run directory written by `molstrata train` (or `molstrata.train`). Usable wherever a
    path is (`os.fspath(run)`); its files are read when asked for, so a run still training
    shows its progress."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def open(cls, path: PathLike) -> Run:
        """The run in `path`, or a MolstrataError when the folder is not a run."""
        return cls(RunPaths(path).require().root)

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> TrainConfig:
        """The resolved configuration (config.toml)."""
        return read_run_config(self.path)

    @property
    def summary(self) -> dict[str, Any]:
        """run.json: status, epochs, best epoch and MAE (`best_val_mae_meV`), times, reference
        energies; empty until the first epoch ends."""
        return read_run_summary(RunPaths(self.path).require().root)

    @property
    def learning_curve(self) -> Records:
        """learning_curve.csv, one row per epoch: `epoch`, `train_loss_eV2`, `val_loss_eV2`,
        `val_mae_meV`, `lr`, `wall_time_s`, `band_low_eV2`, `band_high_eV2` (an eV target)."""
        return Records(read_learning_curve(self.path))

    def evaluate(self, split: str = "test", *, dataset: PathLike | None = None,
                 property: str | None = None, unit: str | None = None,
                 checkpoint: str = "best", out: PathLike | None = None,
                 all_sizes: bool = False, n_bootstrap: int = 1000, seed: int = 0,
                 min_stratum: int | None = None, skip_periodic: bool = False,
                 skip_unseen: bool = False, device: str = "auto", progress: bool = False,
                 plots: bool = False, property_name: str | None = None,
                 **unknown: Any) -> Metrics | None:
        """Evaluate as `molstrata evaluate` does, its options named as the command's: predict
        a split of the run's data (or another `dataset` file, its target `property` in
        `unit`), write metrics.json, the CSVs, predictions.csv and evaluation.json to `out`
        (default RUN/eval-SPLIT), and return the numbers; `plots` draws the evaluation's
        figures there too, as the command does. min_stratum, skip_periodic, skip_unseen: as
        `molstrata.evaluation.evaluate.evaluate_run`'s; property_name: the former spelling
        of property. Started by torchrun, every process predicts a share and rank 0 gets the
        numbers (the others None)."""
        _refuse_unknown("Run.evaluate", unknown, Run.evaluate, former=["property_name"])
        if property is not None and property_name is not None:
            raise MolstrataError("Run.evaluate: give property or property_name (its former "
                                 "spelling), not both")
        from molstrata.evaluation.evaluate import evaluate_run

        more = {} if min_stratum is None else {"min_stratum": min_stratum}
        evaluation = evaluate_run(
            self.path, split=split, dataset=None if dataset is None else os.fspath(dataset),
            property_name=property if property is not None else property_name, unit=unit,
            checkpoint=checkpoint, out_dir=out, all_sizes=all_sizes, n_bootstrap=n_bootstrap,
            seed=seed, device=device, progress=progress, skip_periodic=skip_periodic,
            skip_unseen=skip_unseen, **more)
        if evaluation is None:  # another rank of a torchrun launch: rank 0 has the numbers
            return None
        figures: list[Path] = []
        if plots:
            from molstrata.report.evaluation_plots import draw_evaluation

            figures = draw_evaluation(evaluation, evaluation.out_dir)
        return Metrics.of(evaluation, split if dataset is None else Path(dataset).stem,
                          figures)

    def export(self, out: PathLike, checkpoint: str = "best") -> Path:
        """Write the run's model file (out ending in .pt) or torch.export program (.pt2), as
        `molstrata export` does; the path written, for `load_model`."""
        from molstrata.deploy.export import export

        return export(self.path, out, checkpoint).path


def _refuse_unknown(name: str, unknown: Mapping[str, Any], function,
                    former: Sequence[str] = ()) -> None:
    """A MolstrataError naming the first keyword `function` does not take, and those it does
    (but the `former` spellings it still takes)."""
    if not unknown:
        return
    accepted = [p.name for p in inspect.signature(function).parameters.values()
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                and p.name != "self" and p.name not in former]
    keyword = next(iter(unknown))
    close = difflib.get_close_matches(keyword, accepted, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise MolstrataError(f"{name}: unknown keyword {keyword!r}; {hint}it takes "
                         f"{', '.join(accepted)}")


# ---- evaluate ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Metrics:
    """A stratified evaluation's numbers, a unit in every name (meV and eV² for an eV target).

    numbers: the one-number results, also attributes: `mae_meV`, `mae_ci95_low_meV`, ...,
    `rmse_meV`, `mse_eV2`, `n_molecules`, `macro_size_mae_meV`, `macro_element_mae_meV`,
    `worst_size_n_atoms`, `worst_size_mae_meV`, `worst_element`, `worst_element_mae_meV`.
    per_size, per_element, per_size_element: the rows of metrics_by_*.csv. hypotheses: the
    Spearman tests of hypotheses 1 (sizes) and 2 (elements). predictions: predictions.csv's
    rows (`true_eV`, `predicted_eV`, `error_meV`), in the order of `molecules`.
    report: the full StratifiedReport (values in the target's unit, eV). forces: the force
    errors of a predictions file that carries forces (evaluation.json's `forces`: global MAE
    and RMSE in meV/Å with intervals, the worst element and size), else None.
    """

    target: str
    unit: str
    error_unit: str
    evaluated: str
    numbers: dict[str, Any]
    per_size: Records
    per_element: Records
    per_size_element: Records
    hypotheses: Records
    predictions: Records
    molecules: Molecules
    report: StratifiedReport
    out_dir: Path
    files: tuple[Path, ...] = field(default=())
    forces: dict[str, Any] | None = None

    @classmethod
    def of(cls, evaluation: Evaluation, evaluated: str,
           figures: Sequence[Path] = ()) -> Metrics:
        """The Metrics of an `evaluate_run` result (and the figures drawn of it)."""
        from molstrata.data.molecules import LABEL
        from molstrata.evaluation.files import predictions_table, stratum_table
        from molstrata.evaluation.stratified import ELEMENT, SIZE, SIZE_ELEMENT
        from molstrata.units import error_unit, unit_key

        report = evaluation.report
        factor, e_unit = error_unit(report.unit)
        e = unit_key(e_unit)
        numbers: dict[str, Any] = {"n_molecules": report.n_molecules,
                                   **report.overall.summary.report_row(report.unit)}
        for kind in (SIZE, ELEMENT):
            if kind in report.macro:
                numbers[f"macro_{kind}_mae_{e}"] = factor * report.macro[kind].mae
        for kind, key in ((SIZE, "worst_size_n_atoms"), (ELEMENT, "worst_element")):
            if kind in report.worst:
                numbers[key] = report.worst[kind].key
                numbers[f"worst_{kind}_mae_{e}"] = factor * report.worst[kind].summary.mae
        hypotheses = Records(
            {"strata": kind, "hypothesis": c.hypothesis, "n_strata": c.n_strata,
             "rho": c.rho, "p_value": c.p_value, "holds": c.holds, "note": c.note}
            for kind, c in report.correlations.items())
        return cls(
            target=report.target, unit=report.unit, error_unit=e_unit, evaluated=evaluated,
            numbers=numbers,
            per_size=_records(*stratum_table(report, SIZE)),
            per_element=_records(*stratum_table(report, ELEMENT)),
            per_size_element=_records(*stratum_table(report, SIZE_ELEMENT)),
            hypotheses=hypotheses,
            predictions=_records(*predictions_table(
                evaluation.predictions, evaluation.molecules.annotations.get(LABEL))),
            molecules=evaluation.molecules, report=report, out_dir=evaluation.out_dir,
            files=(*evaluation.files, *figures),
            forces=None if evaluation.forces is None else evaluation.forces.document())

    def __getattr__(self, name: str) -> Any:
        """A number by its name, e.g. `metrics.mae_meV` for `metrics.numbers["mae_meV"]`."""
        numbers = self.__dict__.get("numbers")
        if numbers is None or name.startswith("__") or name not in numbers:
            raise AttributeError(f"Metrics has no attribute {name!r}; its numbers are "
                                 f"{', '.join(numbers or ())}")
        return numbers[name]

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self.__dict__.get("numbers", {})})

    def text(self) -> str:
        """The terminal summary `molstrata evaluate` prints."""
        from molstrata.evaluation.files import format_summary

        return format_summary(self.report)

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.numbers.items()
                 if k.startswith(("mae_", "rmse_", "macro_")) and "_ci" not in k}
        numbers = ", ".join(f"{k}={v:.4g}" for k, v in shown.items())
        return (f"Metrics({self.target} on {self.evaluated}: {self.numbers['n_molecules']:,} "
                f"molecules, {numbers}; files in {self.out_dir})")


def evaluate_predictions(file_or_atoms: PathLike | Sequence[Atoms],
                         predicted: str | None = None, reference: str | None = None,
                         unit: str = "eV", out: PathLike | None = None, *,
                         structures: PathLike | Sequence[Atoms] | None = None,
                         predicted_forces: str | None = None,
                         reference_forces: str | None = None,
                         all_sizes: bool = False, n_bootstrap: int = 1000, seed: int = 0,
                         skip_periodic: bool = False,
                         train: PathLike | Sequence[Atoms] | None = None,
                         min_stratum: int | None = None, plots: bool = False,
                         progress: bool = False) -> Metrics:
    """Evaluate another model's energies as `molstrata evaluate --predictions FILE` does:
    the `predicted` per-structure energies of an ASE-readable file (or a list of Atoms)
    against the `reference` ones, both in `unit` (default eV). The keys default to the peers'
    writers: MACE's mace_eval_configs (MACE_energy beside REF_energy or energy), else NequIP's
    TestTimeXYZFileWriter (energy beside original_dataset_energy). Forces are evaluated too
    where the file carries them (`predicted_forces`, `reference_forces`: by default the same
    writers' MACE_forces / REF_forces or forces, NequIP's forces / original_dataset_forces),
    in `unit` per Å, per atom, by the atom's element and the molecule's size. With
    `structures` (the file the model predicted, holding the references), `file_or_atoms` is a
    table joined to it: a CSV with an `id` column and one of predicted values, or SchNetPack's
    spkpredict output (predictions.pt). The files go to `out` (default: FILE's stem + "-eval"
    next to FILE; needed for a list of Atoms); `plots` draws the figures there too. `train`:
    the structures the model was trained on (a file or a list of Atoms, atoms only), which
    give each stratum its training share, the tests in `hypotheses` and the domain flags (rare
    below `min_stratum`); without it the numbers have no training shares and `hypotheses` is
    empty."""
    from molstrata.evaluation.predictions_file import evaluate_predictions as evaluate

    evaluation = evaluate(
        file_or_atoms if isinstance(file_or_atoms, str | os.PathLike) else list(file_or_atoms),
        predicted=predicted, reference=reference, unit=unit, out_dir=out, all_sizes=all_sizes,
        structures=(structures if structures is None or isinstance(structures, str | os.PathLike)
                    else list(structures)),
        predicted_forces=predicted_forces, reference_forces=reference_forces,
        n_bootstrap=n_bootstrap, seed=seed, skip_periodic=skip_periodic,
        train=train if train is None or isinstance(train, str | os.PathLike) else list(train),
        log=_log(progress), **({} if min_stratum is None else {"min_stratum": min_stratum}))
    figures: list[Path] = []
    if plots:
        from molstrata.report.evaluation_plots import draw_evaluation

        figures = draw_evaluation(evaluation, evaluation.out_dir)
    evaluated = (Path(file_or_atoms).stem if isinstance(file_or_atoms, str | os.PathLike)
                 else "atoms")
    return Metrics.of(evaluation, evaluated, figures)


# ---- compare -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RunComparison:
    """Runs side by side, as `molstrata compare` gives them; numbers in report units, named
    in the columns (`mae_meV`, `macro_size_mae_meV`, `lead_meV`, ...).

    runs: one row per run (comparison.csv). per_size, per_element: each run's MAE per stratum.
    wins: per stratum, the winner, the runner-up and whether the lead is significant.
    validation: label -> the molecules its learning curve was validated on.
    comparison: the full `molstrata.evaluation.compare.Comparison`.
    """

    labels: tuple[str, ...]
    same_molecules: bool
    runs: Records
    per_size: Records
    per_element: Records
    wins: Records
    validation: dict[str, str]
    comparison: Comparison
    out_dir: Path | None
    files: tuple[Path, ...] = field(default=())

    def run(self, label: str) -> dict[str, Any]:
        """The row of one run."""
        for row in self.runs:
            if row["label"] == label:
                return row
        raise KeyError(f"no run labelled {label!r}; the labels are {', '.join(self.labels)}")

    def text(self) -> str:
        """The terminal summary `molstrata compare` prints."""
        from molstrata.report.compare import comparison_text

        return comparison_text(self.comparison)

    def __repr__(self) -> str:
        key = next(k for k in self.runs[0] if k.startswith("mae_") and "_ci" not in k)
        maes = ", ".join(f"{r['label']} {r[key]:.4g}" for r in self.runs)
        return (f"RunComparison({key}: {maes}; "
                f"{'the same' if self.same_molecules else 'DIFFERENT'} molecules)")


def compare(runs: Sequence[Run | PathLike] | Mapping[str, Run | PathLike], *,
            split: str = "test", out: PathLike | None = None, evaluate_missing: bool = True,
            device: str = "auto", progress: bool = False, n_bootstrap: int = 1000,
            seed: int = 0) -> RunComparison:
    """Compare runs as `molstrata compare` does: a sequence of runs (labelled by their
    folders' names) or a dict label -> run. Runs whose evaluation is missing or older than
    their best checkpoint are evaluated first (unless `evaluate_missing` is False). With
    `out`, everything the command writes is written: the tables and plots there, and the
    figures of the evaluations made now in their runs; without it, only those evaluations'
    numbers."""
    from molstrata.evaluation.compare import compare_runs
    from molstrata.evaluation.results import load_runs
    from molstrata.report import compare as report

    labels = list(runs) if isinstance(runs, Mapping) else None
    folders = [os.fspath(r) for r in (runs.values() if isinstance(runs, Mapping) else runs)]
    if out is None:
        results = load_runs(folders, labels, split, evaluate_missing, device, progress)
        comparison, files = compare_runs(results, n_bootstrap=n_bootstrap, seed=seed), []
    else:
        written = report.compare(folders, out, labels=labels, split=split,
                                 evaluate_missing=evaluate_missing, device=device,
                                 progress=progress, n_bootstrap=n_bootstrap, seed=seed)
        comparison, files = written.comparison, written.files
    return _run_comparison(comparison, out, files)


def compare_predictions(sources: PathLike | Sequence[PathLike | Sequence[Atoms]],
                        labels: Sequence[str] | None = None,
                        predicted: str | Sequence[str] | None = None,
                        reference: str | None = None, unit: str = "eV",
                        out: PathLike | None = None, *,
                        structures: PathLike | Sequence[Atoms] | None = None,
                        train: PathLike | Sequence[Atoms] | None = None,
                        skip_periodic: bool = False, n_bootstrap: int = 1000, seed: int = 0,
                        progress: bool = False) -> RunComparison:
    """Compare other models' energies on the same structures as `molstrata compare
    --predictions` does: two or more prediction files (or lists of Atoms), or one file with
    several `predicted` keys, paired structure by structure (matched by id, else by
    identical atoms; files that differ are refused at their first difference). `predicted`:
    one key for every file, one per file, or several keys of one file. Files sharing a label
    are one model's replicates (one per training seed): its intervals then cover the
    replicates and the structures. `train`: the models' training structures, for the
    training shares and the hypotheses' tests. With `out`, the tables and plots are written
    there. Lines about what was read (periodic structures left out) go through print when
    `progress`."""
    from molstrata.evaluation.compare import compare_runs
    from molstrata.evaluation.compare_predictions import prediction_results
    from molstrata.report import compare as report

    options = dict(labels=labels, predicted=predicted, reference=reference, unit=unit,
                   structures=structures, train=train, skip_periodic=skip_periodic,
                   n_bootstrap=n_bootstrap, seed=seed, log=_log(progress))
    if out is None:
        comparison = compare_runs(prediction_results(sources, **options),
                                  n_bootstrap=n_bootstrap, seed=seed)
        return _run_comparison(comparison, None, [])
    written = report.compare_predictions(sources, out, **options)
    return _run_comparison(written.comparison, out, written.files)


def _run_comparison(comparison: Comparison, out: PathLike | None,
                    files: Sequence[Path]) -> RunComparison:
    """A comparison's tables as records, and where it was written."""
    from molstrata.report.compare import validation_sets

    wins = comparison.wins_table()
    return RunComparison(
        labels=tuple(comparison.labels), same_molecules=comparison.same_molecules,
        runs=_records(comparison.overview.header, comparison.overview.rows),
        per_size=_records(comparison.per_size.header, comparison.per_size.rows),
        per_element=_records(comparison.per_element.header, comparison.per_element.rows),
        wins=_records(wins.header, wins.rows),
        validation={label: v.text for label, v in validation_sets(comparison).items()},
        comparison=comparison, out_dir=None if out is None else Path(out), files=tuple(files))


# ---- models --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Prediction:
    """A model's predictions of n structures, in the model's unit (eV for energies).

    values: (n,) float64, reference energies included; NaN for a structure not predicted (a
    periodic one, or one holding an element the model never saw), as `molstrata predict`
    does. Also by their column name, e.g. `prediction.predicted_U0_eV`. flags: per
    structure, its domain-of-applicability flags (empty inside the training domain).
    lines: what `molstrata predict` prints about these structures (`text`).
    """

    target: str
    unit: str
    values: np.ndarray
    flags: tuple[tuple[str, ...], ...]
    lines: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The values' name with their unit, as `molstrata predict` names its column."""
        from molstrata.units import unit_key

        return f"predicted_{self.target}_{unit_key(self.unit)}"

    @property
    def in_domain(self) -> np.ndarray:
        """(n,) bool: structures with no flag."""
        return np.array([not codes for codes in self.flags], dtype=bool)

    def __getattr__(self, name: str) -> Any:
        if "target" in self.__dict__ and not name.startswith("_") and name == self.name:
            return self.values
        raise AttributeError(f"Prediction has no attribute {name!r}; its values are `values`"
                             + (f" or `{self.name}`" if "target" in self.__dict__ else ""))

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {self.name})

    def __len__(self) -> int:
        return len(self.values)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.values if dtype is None else self.values.astype(dtype)

    def records(self) -> Records:
        """One row per structure: index, the prediction (named with its unit), flags, and
        why it was not predicted (`note`, as in predict's CSV; '' when it was)."""
        from molstrata.deploy.predict import not_predicted_note

        return Records({"index": i, self.name: float(v), "flags": " ".join(codes),
                        "note": not_predicted_note(codes)}
                       for i, (v, codes) in enumerate(zip(self.values, self.flags)))

    def text(self) -> str:
        """What `molstrata predict` prints about these structures: the domain flags, and
        which were not predicted and why."""
        return "\n".join(self.lines)

    def __repr__(self) -> str:
        flagged = int((~self.in_domain).sum())
        missing = int(np.isnan(self.values).sum())
        return (f"Prediction({len(self)} structures of {self.target} in {self.unit}, "
                f"{flagged} flagged outside the training domain, {missing} not predicted)")


@dataclass(frozen=True, eq=False)
class Model:
    """A trained model from a model file (or a run directory): `predict` structures, or use
    it as an ASE calculator (`calculator`). target, unit: what it predicts and in what."""

    model_file: ModelFile

    @property
    def target(self) -> str:
        return self.model_file.target

    @property
    def unit(self) -> str:
        return self.model_file.unit

    def predict(self, structures, *, batch_size: int | None = None,
                min_stratum: int | None = None) -> Prediction:
        """Predict ASE Atoms (one, or a list) or Molecules, in `unit` (eV for energies), with
        each structure's domain-of-applicability flags (`min_stratum`: training molecules a
        size or element needs not to be rare; default as `molstrata predict`). As the
        command, it predicts no periodic structure and none holding an element the model
        never saw: they get NaN, their flags and a note; `Prediction.text()` says which."""
        from molstrata.data.molecules import Molecules
        from molstrata.deploy.inference import predict_molecules
        from molstrata.deploy.predict import not_predicted_lines
        from molstrata.evaluation.domain import DEFAULT_MIN_STRATUM, applicability, size_range
        from molstrata.evaluation.domain import summary_text as domain_summary

        if isinstance(structures, Molecules):
            molecules, periodic = structures, np.zeros(len(structures), dtype=bool)
        else:
            molecules, periodic = _molecules(structures)
        min_stratum = DEFAULT_MIN_STRATUM if min_stratum is None else min_stratum
        training = self.model_file.training
        domain = applicability(molecules, training, min_stratum).with_periodic(periodic)
        values = np.full(len(periodic), np.nan)
        rows = np.flatnonzero(domain.predictable)
        if len(rows):
            chosen = domain.predictable[~periodic]  # over the molecules
            subset = molecules if chosen.all() else molecules.subset(chosen)
            values[rows] = predict_molecules(self.model_file, subset, batch_size=batch_size)
        lines = [domain_summary(domain, size_range(training), min_stratum),
                 *not_predicted_lines([("", domain.flags)])]
        return Prediction(self.target, self.unit, values, tuple(domain.flags), tuple(lines))

    def calculator(self, **options: Any):
        """An ASE calculator of this model (`molstrata.ase.Calculator`): energies in eV,
        forces in eV/Å."""
        from molstrata.deploy.calculator import Calculator

        return Calculator(self.model_file, **options)

    def __repr__(self) -> str:
        return f"Model({self.model_file.describe()})"


def load_model(path: PathLike | Run, *, device: str = "auto", dtype: str | None = None,
               checkpoint: str = "best") -> Model:
    """A model file written by `molstrata export` (or a run directory: its `checkpoint`),
    on `device` (auto: CUDA when present), in its training dtype unless `dtype` is given."""
    from molstrata.deploy.modelfile import load_model_file, model_from_document
    from molstrata.training.distributed import resolve_device

    where = resolve_device(device)
    path = Path(os.fspath(path))
    if path.is_dir():
        from molstrata.deploy.export import run_document

        return Model(model_from_document(run_document(path, checkpoint), where, dtype, path))
    return Model(load_model_file(path, where, dtype))


def _molecules(structures) -> tuple[Molecules, np.ndarray]:
    """(Molecules, periodic: (n,) bool) of one ASE Atoms or a list of them: the periodic
    structures left out of the molecules, as `molstrata predict` leaves them out (their
    properties are not read)."""
    from ase import Atoms

    from molstrata.data.ase_io import from_atoms_list, periodic_kind
    from molstrata.data.molecules import Molecules

    atoms = [structures] if isinstance(structures, Atoms) else list(structures)
    if not atoms:
        raise MolstrataError("no structures to predict; give ASE Atoms or a list of them")
    periodic = np.array([periodic_kind(a.pbc) is not None for a in atoms], dtype=bool)
    if periodic.all():
        return Molecules.from_lists([], []), periodic
    return from_atoms_list(atoms, {}, skip_periodic=True), periodic


# ---- studies -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Study:
    """A study's outcome: its runs, each claim with its verdict, and where the report is.

    runs: experiment -> its runs, one per training seed. findings: one row per claim tested
    (analysis, claim, verdict, holds, thesis, agreement, evidence, caveats). result: the full
    `molstrata.study.StudyResult`.
    """

    out_dir: Path
    report: Path | None
    runs: dict[str, tuple[Run, ...]]
    findings: Records
    result: StudyResult

    def text(self) -> str:
        """The closing summary `molstrata study` prints."""
        from molstrata.study import study_text

        return study_text(self.result)

    def __repr__(self) -> str:
        held = sum(1 for f in self.findings if f["verdict"] == "holds")
        n = sum(len(runs) for runs in self.runs.values())
        return (f"Study({len(self.runs)} experiments, {n} runs, {held} of "
                f"{len(self.findings)} claims hold; report {self.report})")


def learning_curve(*, out: PathLike = "results/learning-curve", sizes=None,
                   max_molecules: int | None = 30_000, epochs: int = 20, min_steps: int = 1500,
                   replicates: int = 3, target_mae: float = 43.0, preset: str | None = None,
                   workers: int = 1, storage: str | None = None, progress: bool = True,
                   device: str = "auto", threads: int | None = None,
                   cache_dir: str | None = None, **options: Any) -> Study:
    """Per-stratum learning curves as `molstrata learning-curve` makes them (resumably, into
    `out`): the same recipe on nested training subsets `sizes` (None: the training split and
    its halves down to 1/32) of a QM9 slice of `max_molecules` (None: all). options: config
    options of every subset, e.g. `n_atom_basis=64`. storage: the work queue's database URL,
    as for run_study. The Study's result holds the analysis; its report the curves, fits and
    data advice."""
    from molstrata.study.learning_curve import run_learning_curve

    result = run_learning_curve(
        out, sizes=sizes, max_molecules=max_molecules, epochs=epochs, min_steps=min_steps,
        replicates=replicates, target_mae=target_mae, preset=preset,
        overrides=resolve_options(options, "molstrata.learning_curve"), workers=workers,
        storage=storage, cache_dir=cache_dir, device=device, threads=threads, progress=progress,
        log=_log(progress))
    return _study_of(Path(out), result)


def run_study(plan: PathLike, *, out: PathLike = "results/study", progress: bool = True,
              device: str = "auto", threads: int | None = None, cache_dir: str | None = None,
              replicates: int | None = None, workers: int = 1, storage: str | None = None,
              **options: Any) -> Study:
    """Run a study plan (a preset, e.g. "quick", or a plan file) as `molstrata study` does,
    resumably, into `out`. replicates: training seeds per experiment (default: the plan's);
    workers: runs trained at once; storage: the work queue's database URL, the same for every
    worker on every machine sharing `out` (e.g. "postgresql+psycopg://user:pw@host/db"; default
    OUT/queue.db). options: config options set in every experiment (see the module's
    docstring), e.g. `epochs=2`."""
    from molstrata.study import runner

    result = runner.run_study(
        os.fspath(plan), out, cache_dir=cache_dir, device=device, threads=threads,
        overrides=resolve_options(options, "molstrata.run_study"), replicates=replicates,
        workers=workers, storage=storage, progress=progress, log=_log(progress))
    return _study_of(Path(out), result)


def _study_of(out: Path, result: StudyResult) -> Study:
    findings = Records(
        {"analysis": analysis.name, "claim": f.claim, "verdict": f.verdict,
         "holds": f.holds, "primary": f.primary, "family": f.family, "thesis": f.thesis,
         "agreement": f.agreement,
         "evidence": f.evidence, "caveats": "; ".join(f.caveats)}
        for analysis in result.analyses for f in analysis.findings)
    report = next((p for p in result.report_files if p.suffix == ".html"), None)
    runs = {name: tuple(Run(m.run_dir) for m in r.replicates or (r,))
            for name, r in result.results.items()}
    return Study(out, report, runs, findings, result)
