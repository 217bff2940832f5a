"""What a sweep minimises, by name: stratified metrics of a trial's VALIDATION split.

The objective is computed on the validation molecules, never on the test split: choosing
hyper-parameters on the test set would leak it into the model choice, and its error would no
longer be an honest estimate. Optimising for the strata (the macro average over sizes, the
worst size) and not only for the global figure is the point: a global MAE rewards doing well
on the frequent sizes only.

The registry imports neither numpy nor ase (units are imported where they are used), so that
`molstrata --help` lists the objectives quickly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from molstrata.errors import MolstrataError

if TYPE_CHECKING:
    from molstrata.evaluation.stratified import StratifiedReport


@dataclass(frozen=True)
class Objective:
    """A quantity to minimise: `value(report, run_summary)` in the target's unit (errors) or
    in seconds (`unit` = "s")."""

    name: str
    description: str
    unit: str  # "error": the target's error unit (meV for eV targets); "s": seconds
    value: Callable[[StratifiedReport, dict], float | None]


def _macro(kind: str, metric: str):
    return lambda r, s: getattr(r.macro[kind], metric) if kind in r.macro else None


def _worst(kind: str):
    return lambda r, s: r.worst[kind].summary.mae if kind in r.worst else None


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("global_mae", "MAE over all validation molecules", "error",
              lambda r, s: r.overall.summary.mae),
    Objective("global_rmse", "RMSE over all validation molecules", "error",
              lambda r, s: r.overall.summary.rmse),
    Objective("macro_size_mae", "mean of the per-size MAEs (each size counts once)", "error",
              _macro("size", "mae")),
    Objective("worst_size_mae", "MAE of the worst-predicted size", "error", _worst("size")),
    Objective("macro_element_mae", "mean of the per-element MAEs", "error",
              _macro("element", "mae")),
    Objective("worst_element_mae", "MAE of the worst-predicted element", "error",
              _worst("element")),
    Objective("train_seconds", "training time (the study's error-versus-time trade-off)", "s",
              lambda r, s: s["train_seconds"]),
)}


def check_objectives(names: Sequence[str]) -> tuple[str, ...]:
    """The objective names, refusing unknown, repeated or no names with one line."""
    names = tuple(names)
    if not names:
        raise MolstrataError(f"sweep: give an objective, one of {', '.join(OBJECTIVES)}")
    for name in names:
        if name not in OBJECTIVES:
            raise MolstrataError(
                f"sweep: unknown objective {name!r}; use one of {', '.join(OBJECTIVES)}"
            )
    if len(set(names)) != len(names):
        raise MolstrataError(f"sweep: objective {list(names)} repeats a name; list each once")
    return names


def unit_of(name: str, target_unit: str) -> str:
    """The unit an objective is reported in: meV for errors of an eV target, s for times."""
    from molstrata.units import error_unit

    return "s" if OBJECTIVES[name].unit == "s" else error_unit(target_unit)[1]


def column(name: str, target_unit: str) -> str:
    """The CSV column of an objective, unit in the name: `macro_size_mae_meV`, `train_seconds`."""
    if OBJECTIVES[name].unit == "s":
        return name
    from molstrata.units import unit_key

    return f"{name}_{unit_key(unit_of(name, target_unit))}"


def compute(report: StratifiedReport, summary: dict) -> dict[str, float]:
    """Every objective of a trial, in its reported unit (meV, s): {name: value}. Refuses a
    report that lacks a stratum an objective needs."""
    from molstrata.units import error_unit

    factor, _ = error_unit(report.unit)
    values = {}
    for name, objective in OBJECTIVES.items():
        value = objective.value(report, summary)
        if value is None:
            continue
        values[name] = float(value) * (factor if objective.unit == "error" else 1.0)
    return values


def select(values: dict[str, float], names: Sequence[str]) -> list[float]:
    """The chosen objectives' values, in order; a MolstrataError if one could not be computed."""
    missing = [name for name in names if name not in values]
    if missing:
        raise MolstrataError(
            f"objective {missing[0]} could not be computed: the validation split has no "
            "reported stratum of that kind; use more molecules (data.max_molecules) or a larger "
            "validation fraction"
        )
    return [values[name] for name in names]
