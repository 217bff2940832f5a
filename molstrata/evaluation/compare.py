"""Comparing runs: their global and stratified errors side by side, and which run wins where.

`compare_runs` sets evaluated runs (`molstrata.evaluation.results`, a run or a group of
replicates each; or other models' prediction files, `molstrata.evaluation.compare_predictions`)
side by side: one row per run of global errors, hypothesis tests and times;
one row per size and element stratum of each run's MAE; and per stratum the winner and whether
its lead is significant (`molstrata.evaluation.wins`). Numbers only; the tables, text and plots
are written by `molstrata.report.compare`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from molstrata.data.molecules import atomic_number
from molstrata.errors import MolstrataError
from molstrata.evaluation.metrics import ci_key
from molstrata.evaluation.results import RunResult, check_labels, same_molecules
from molstrata.evaluation.stratified import ELEMENT, SIZE
from molstrata.evaluation.wins import StratumWin, count_wins, find_wins, lead_test_name
from molstrata.units import error_unit, squared_unit, unit_key


@dataclass(frozen=True)
class Table:
    """Column names (a unit in every name that has one) and rows; missing values are None."""

    header: list[str]
    rows: list[list[Any]]

    def column(self, name: str) -> list[Any]:
        """The values of one column, top to bottom."""
        k = self.header.index(name)
        return [row[k] for row in self.rows]

    def records(self) -> list[dict[str, Any]]:
        """The rows as column name -> value."""
        return [dict(zip(self.header, row)) for row in self.rows]


@dataclass(frozen=True)
class Comparison:
    """Runs side by side: `overview` has one row per run; `per_size` and `per_element` one
    row per stratum with each run's MAE; `wins` one entry per stratum (all molecules first).
    Values in the tables are in report units (meV, eV2 for an eV target), named in the
    columns."""

    runs: tuple[RunResult, ...]
    target: str
    unit: str
    confidence: float
    same_molecules: bool
    overview: Table
    per_size: Table
    per_element: Table
    wins: tuple[StratumWin, ...]
    n_bootstrap: int
    seed: int

    @property
    def labels(self) -> list[str]:
        return [r.label for r in self.runs]

    @property
    def split(self) -> str:
        return self.runs[0].split

    @property
    def of_predictions(self) -> bool:
        """Whether these are other models' prediction files (no config, curve or training
        time), not runs."""
        return all(r.predicted_elsewhere for r in self.runs)

    def strata_won(self, significant: bool = False) -> dict[str, int]:
        """label -> size and element strata it wins (see `count_wins`)."""
        return count_wins(self.wins, self.labels, significant)

    def wins_table(self) -> Table:
        """One row per stratum: winner (empty on a tie), runner-up, their MAE, the lead and
        its interval."""
        factor, unit = error_unit(self.unit)
        e = unit_key(unit)
        ci = ci_key(self.confidence)
        header = ["kind", "stratum", "count", "winner", f"winner_mae_{e}", "runner_up",
                  f"runner_up_mae_{e}", f"lead_{e}", f"lead_{ci}_low_{e}", f"lead_{ci}_high_{e}",
                  "p_value", "p_adjusted", "significant", "test"]
        rows = [[w.kind, w.label, w.count, "" if w.tie else w.winner,
                 factor * w.mae[w.winner], w.runner_up, factor * w.mae[w.runner_up],
                 factor * w.lead, _finite(factor * w.lead_low), _finite(factor * w.lead_high),
                 _finite(w.p_value), _finite(w.p_adjusted), w.significant, lead_test_name(w)]
                for w in self.wins]
        return Table(header, rows)


def compare_runs(
    results: Sequence[RunResult], *, n_bootstrap: int = 1000, seed: int = 0
) -> Comparison:
    """Set evaluated runs side by side: global metrics, per-stratum MAE, and who wins where.

    The runs must be of the same target and unit with unique labels. Leads are tested with
    `n_bootstrap` seeded resamples at the reports' confidence level (95 % as evaluated).
    """
    runs = tuple(results)
    check_labels([r.label for r in runs])
    if n_bootstrap < 1:
        raise MolstrataError(f"n_bootstrap must be at least 1, got {n_bootstrap}; 1000 is usual")
    first = runs[0].report
    for run in runs[1:]:
        if (run.report.target, run.report.unit) != (first.target, first.unit):
            raise MolstrataError(
                f"{run.label} predicts {run.report.target} [{run.report.unit}] but "
                f"{runs[0].label} predicts {first.target} [{first.unit}]; compare runs of the "
                "same target"
            )
        if run.report.confidence != first.confidence:
            raise MolstrataError(
                f"{run.label} was evaluated at {run.report.confidence:g} confidence and "
                f"{runs[0].label} at {first.confidence:g}; evaluate them alike"
            )
    same = same_molecules(runs)
    wins = find_wins(runs, same, n_bootstrap, seed, first.confidence)
    return Comparison(
        runs=runs,
        target=first.target,
        unit=first.unit,
        confidence=first.confidence,
        same_molecules=same,
        overview=_overview(runs, wins, first.confidence),
        per_size=_stratum_mae_table(runs, SIZE, same),
        per_element=_stratum_mae_table(runs, ELEMENT, same),
        wins=wins,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )


def _overview(runs: Sequence[RunResult], wins: Sequence[StratumWin], confidence: float) -> Table:
    """The global table: one row per run."""
    target_unit = runs[0].report.unit
    factor, unit = error_unit(target_unit)
    e, sq = unit_key(unit), unit_key(squared_unit(target_unit))
    ci = ci_key(confidence)
    header = [
        "label", "run_dir", "status", "seeds", "n_train", "n_evaluated",
        f"mae_{e}", f"mae_{ci}_low_{e}", f"mae_{ci}_high_{e}", f"mae_seed_sd_{e}",
        f"rmse_{e}", f"rmse_{ci}_low_{e}", f"rmse_{ci}_high_{e}",
        f"mse_{sq}", f"mse_{ci}_low_{sq}", f"mse_{ci}_high_{sq}",
        f"macro_size_mae_{e}", f"macro_element_mae_{e}",
        "worst_size_n_atoms", f"worst_size_mae_{e}", "worst_element", f"worst_element_mae_{e}",
        "size_rho", "size_p_value", "size_hypothesis_holds",
        "element_rho", "element_p_value", "element_hypothesis_holds",
        "train_seconds", "evaluation_seconds", "epochs_done", "best_epoch",
        "strata_won", "strata_won_significant",
    ]
    labels = [r.label for r in runs]
    won, won_significant = count_wins(wins, labels), count_wins(wins, labels, significant=True)
    rows = []
    for run in runs:
        report, s = run.report, run.report.overall.summary
        macro, worst, corr = report.macro, report.worst, report.correlations
        row = [
            run.label, str(run.run_dir), run.summary.get("status"), run.k, run.n_train,
            report.n_molecules,
            factor * s.mae, factor * s.mae_ci_low, factor * s.mae_ci_high,
            None if s.mae_seed_sd is None else factor * s.mae_seed_sd,
            factor * s.rmse, factor * s.rmse_ci_low, factor * s.rmse_ci_high,
            s.mse, s.mse_ci_low, s.mse_ci_high,
            factor * macro[SIZE].mae if SIZE in macro else None,
            factor * macro[ELEMENT].mae if ELEMENT in macro else None,
            worst[SIZE].key if SIZE in worst else None,
            factor * worst[SIZE].summary.mae if SIZE in worst else None,
            worst[ELEMENT].key if ELEMENT in worst else None,
            factor * worst[ELEMENT].summary.mae if ELEMENT in worst else None,
        ]
        for kind in (SIZE, ELEMENT):
            c = corr.get(kind)
            row += [None, None, None] if c is None else \
                [_finite(c.rho), _finite(c.p_value), c.holds]
        row += [run.train_seconds, run.evaluation_seconds, run.summary.get("epochs_done"),
                run.summary.get("best_epoch"), won[run.label], won_significant[run.label]]
        rows.append(row)
    return Table(header, rows)


def _stratum_mae_table(runs: Sequence[RunResult], kind: str, same: bool) -> Table:
    """One row per stratum of `kind` any run reports: its count and every run's MAE."""
    factor, unit = error_unit(runs[0].report.unit)
    e = unit_key(unit)
    by_run = [{s.key: s for s in r.report.strata(kind)} for r in runs]
    keys = sorted({k for strata in by_run for k in strata},
                  key=lambda k: atomic_number(k) if kind == ELEMENT else k)
    key_column = "n_atoms" if kind == SIZE else "element"
    counts = ["count"] if same else [f"count_{r.label}" for r in runs]
    header = ["stratum", key_column, *counts, *(f"mae_{e}_{r.label}" for r in runs)]
    rows = []
    for key in keys:
        present = [strata.get(key) for strata in by_run]
        label = next(s.label for s in present if s is not None)
        if same:
            count_cells = [next(s.count for s in present if s is not None)]
        else:
            count_cells = [None if s is None else s.count for s in present]
        mae = [None if s is None else factor * s.summary.mae for s in present]
        rows.append([label, key, *count_cells, *mae])
    return Table(header, rows)


def _finite(value: float) -> float | None:
    """None for NaN (an empty cell), the value otherwise."""
    return None if value is None or math.isnan(value) else value

