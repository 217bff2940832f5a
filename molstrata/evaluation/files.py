"""The metrics report format: `metrics.json`, its CSVs, `predictions.csv`, and the summary table.

metrics.json (schema "molstrata-metrics", schema_version 1)
-----------------------------------------------------------
Units are spelled in every key. For an eV target, MAE and RMSE are in meV and MSE in eV²
(keys `mae_meV`, `rmse_meV`, `mse_eV2`); a target in another unit keeps it (MAE in Debye,
MSE in Debye2; compound units as `kcal_per_mol`, `kcal_per_mol_squared`). `ci95` pairs are
[low, high] of a 95 % percentile-bootstrap interval over molecules (the level is in the key:
`ci90` at 0.90); [null, null] for a stratum of fewer than settings.min_interval_count
molecules, too few for an interval to mean its level. Shares are percent of the TRAINING
molecules.

    {
      "schema": "molstrata-metrics", "schema_version": 1, "molstrata_version": "0.1.0",
      "target": "U0", "target_unit": "eV",
      "units": {"mae": "meV", "rmse": "meV", "mse": "eV2", "train_share": "percent"},
      "n_molecules": 26166,                     # molecules evaluated
      "settings": {"seed": 0, "n_bootstrap": 1000, "confidence": 0.95,
                   "ci_method": "...", "min_share_percent": 1.0, "all_sizes": false,
                   "min_interval_count": 10},
      "global": STRATUM,
      "per_size": [STRATUM + {"size": 18}, ...],               # sizes ascending
      "per_element": [STRATUM + {"element": "F"}, ...],         # atomic-number order
      "per_size_element": [STRATUM + {"size": 18, "element": "F"}, ...],
      "omitted_sizes": [{"size": 3, "count": 2}, ...],          # under min_share, not reported
      "macro": {"size": MACRO, "element": MACRO},
      "worst": {"size": STRATUM + {"size": 27}, "element": STRATUM + {"element": "F"}},
      "correlation": {"size": CORRELATION, "element": CORRELATION},
      "training": {"n_molecules": 104665,
                   "size_counts": [{"size": 18, "count": 14000}, ...],
                   "element_counts": [{"element": "F", "count": 1540}, ...],
                   "size_element_counts": [{"size": 18, "element": "F", "count": 120}, ...]}
    }
    STRATUM = {"label": "18 atoms", "count": 3000,            # molecules evaluated in it
               "train_count": 14000, "train_share_percent": 13.4,
               "mae_meV": 12.1, "mae_ci95_meV": [11.7, 12.6],
               "rmse_meV": 17.0, "rmse_ci95_meV": [16.1, 18.0],
               "mse_eV2": 0.00029, "mse_ci95_eV2": [0.00026, 0.00032]}
    MACRO = {"n_strata": 13, "mae_meV": ..., "rmse_meV": ..., "mse_eV2": ...}
        # unweighted means over the strata of that kind (RMSE: mean of per-stratum RMSEs)
    CORRELATION = {"hypothesis": "...", "x": "train_share", "y": "mae", "n_strata": 13,
                   "rho": -0.8, "p_value": 0.0004, "significance": 0.05,
                   "holds": true,                # rho < 0 and p_value < significance
                   "method": "exact permutation test (...)" | "Monte Carlo permutation ...",
                   "note": "..."}                # e.g. the low power of 5 element strata
    rho and p_value are null where no test is possible (fewer than 3 strata).

Another model's predictions evaluated without its training file (`molstrata evaluate
--predictions`) have "training": null, null train_count and train_share_percent in every
stratum (empty cells in the CSVs) and no "correlation" entries: the shares and the tests need
the training set.

The size × element cells are those of the reported sizes. CSVs: `metrics_by_size.csv`,
`metrics_by_element.csv`, `metrics_by_size_element.csv` hold one row per stratum with the
columns stratum, n_atoms and/or element, count, train_count, train_share_percent, mae_meV,
mae_ci95_low_meV, mae_ci95_high_meV, rmse_meV, ..., mse_eV2, ... (interval cells empty below
min_interval_count molecules); `predictions.csv` one row per
molecule: id, n_atoms, elements (Hill order, e.g. CHNO), true_eV, predicted_eV, error_meV
(error = predicted - true); molecules whose file named them with strings ('mol88169') have
these names in a column molstrata_id after id, which is then their position in the file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from molstrata._files import atomic_write_text, read_versioned_json
from molstrata.data.molecules import LABEL
from molstrata.errors import MolstrataError
from molstrata.evaluation.metrics import (
    ErrorSummary,
    ci_key,
)
from molstrata.evaluation.stratified import (
    ELEMENT,
    SIGNIFICANCE,
    SIZE,
    SIZE_ELEMENT,
    Correlation,
    MacroAverage,
    Predictions,
    StratifiedReport,
    StratumMetrics,
    TrainingCounts,
)
from molstrata.tables import format_table, write_csv
from molstrata.units import error_unit, squared_unit, unit_key
from molstrata.wording import counted

SCHEMA = __doc__
"""The metrics.json and CSV format, as documented above (the README points here)."""

SCHEMA_NAME = "molstrata-metrics"
SCHEMA_VERSION = 1
CI_METHOD = ("bootstrap-t (studentized) over the molecules of each stratum; with several "
             "training seeds, t over the seeds plus a bootstrap over the molecules")

METRICS_JSON = "metrics.json"
CSV_FILES = {
    SIZE: "metrics_by_size.csv",
    ELEMENT: "metrics_by_element.csv",
    SIZE_ELEMENT: "metrics_by_size_element.csv",
}
PREDICTIONS_CSV = "predictions.csv"


# ---- writing -----------------------------------------------------------------------------


def write_metrics(
    report: StratifiedReport, predictions: Predictions, out_dir: str | os.PathLike,
    labels: Sequence[str] | None = None,
) -> list[Path]:
    """Write metrics.json, the three stratum CSVs and predictions.csv into `out_dir`, each
    atomically; return their paths. Everything is built before the first file is written.
    labels: the molecules' own string identifiers, in the order of `predictions`, for
    predictions.csv (`molstrata.data.molecules.LABEL`)."""
    if predictions.unit != report.unit or predictions.target != report.target:
        raise ValueError(
            f"predictions of {predictions.target} [{predictions.unit}] do not belong to a report "
            f"on {report.target} [{report.unit}]"
        )
    out = Path(out_dir)
    text = json.dumps(_nulls(metrics_json(report)), indent=2, allow_nan=False) + "\n"
    tables = {kind: stratum_table(report, kind) for kind in CSV_FILES}
    rows = predictions_table(predictions, labels)
    files = [out / METRICS_JSON]
    atomic_write_text(files[0], text)
    for kind, (header, body) in tables.items():
        files.append(out / CSV_FILES[kind])
        write_csv(files[-1], header, body)
    files.append(out / PREDICTIONS_CSV)
    write_csv(files[-1], *rows)
    return files


def metrics_json(report: StratifiedReport) -> dict[str, Any]:
    """The metrics.json document of a report (see SCHEMA); NaN where no test was possible."""
    factor, unit = error_unit(report.unit)
    sq = squared_unit(report.unit)
    e_key, sq_key = unit_key(unit), unit_key(sq)

    def macro(m: MacroAverage) -> dict[str, Any]:
        return {
            "n_strata": m.n_strata,
            f"mae_{e_key}": m.mae * factor,
            f"rmse_{e_key}": m.rmse * factor,
            f"mse_{sq_key}": m.mse,
        }

    def stratum(s: StratumMetrics) -> dict[str, Any]:
        return _stratum_json(s, report.unit, report.training.known)

    training = report.training
    return {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "molstrata_version": _version(),
        "target": report.target,
        "target_unit": report.unit,
        "units": {"mae": unit, "rmse": unit, "mse": sq, "train_share": "percent"},
        "n_molecules": report.n_molecules,
        "settings": {
            "seed": report.seed,
            "n_bootstrap": report.n_bootstrap,
            "confidence": report.confidence,
            "ci_method": CI_METHOD,
            "min_share_percent": 100 * report.min_share,
            "all_sizes": report.all_sizes,
            "min_interval_count": report.min_interval_count,
        },
        "global": stratum(report.overall),
        "per_size": [stratum(s) for s in report.sizes],
        "per_element": [stratum(s) for s in report.elements],
        "per_size_element": [stratum(s) for s in report.size_elements],
        "omitted_sizes": [{"size": k, "count": c} for k, c in report.omitted_sizes.items()],
        "macro": {kind: macro(m) for kind, m in report.macro.items()},
        "worst": {kind: stratum(s) for kind, s in report.worst.items()},
        "correlation": {
            kind: {
                "hypothesis": c.hypothesis,
                "x": "train_share",
                "y": "mae",
                "n_strata": c.n_strata,
                "rho": c.rho,
                "p_value": c.p_value,
                "significance": SIGNIFICANCE,
                "holds": c.holds,
                "method": c.method,
                "note": c.note,
            }
            for kind, c in report.correlations.items()
        },
        "training": None if not training.known else {
            "n_molecules": training.n_molecules,
            "size_counts": [{"size": k, "count": c} for k, c in training.sizes.items()],
            "element_counts": [{"element": k, "count": c} for k, c in training.elements.items()],
            "size_element_counts": [
                {"size": s, "element": e, "count": c}
                for (s, e), c in training.size_elements.items()
            ],
        },
    }


def stratum_table(report: StratifiedReport, kind: str) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of the CSV of one kind of strata, a unit in every column name."""
    keys = {SIZE: ["n_atoms"], ELEMENT: ["element"], SIZE_ELEMENT: ["n_atoms", "element"]}[kind]
    strata = report.strata(kind)
    metric_names = list(report.overall.summary.report_row(report.unit))
    header = ["stratum", *keys, "count", "train_count", "train_share_percent", *metric_names]
    rows = []
    for s in strata:
        key = list(s.key) if isinstance(s.key, tuple) else [s.key]
        values = [None if math.isnan(v) else v for v in s.summary.report_row(report.unit).values()]
        train = [s.train_count, 100 * s.train_share] if report.training.known else [None, None]
        rows.append([s.label, *key, s.count, *train, *values])
    return header, rows


def predictions_table(predictions: Predictions, labels: Sequence[str] | None = None,
                      ) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of predictions.csv: one molecule a row, units in the column names, the
    molecules' own string identifiers (`labels`) as a column molstrata_id where given."""
    factor, unit = error_unit(predictions.unit)
    target = unit_key(predictions.unit)
    named = labels is not None
    header = ["id", *[LABEL] * named, "n_atoms", "elements", f"true_{target}",
              f"predicted_{target}", f"error_{unit_key(unit)}"]
    if named and len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels for {len(predictions)} predictions")
    columns = (
        predictions.ids.tolist(),
        *([[str(label) for label in labels]] if named else []),
        predictions.sizes.tolist(),
        predictions.element_labels().tolist(),
        predictions.true.tolist(),
        predictions.predicted.tolist(),
        (predictions.errors * factor).tolist(),
    )
    return header, [list(row) for row in zip(*columns)]


# ---- reading -----------------------------------------------------------------------------


def load_metrics(path: str | os.PathLike) -> StratifiedReport:
    """A report read back from a metrics.json (to compare runs without re-evaluating)."""
    document = read_versioned_json(path, SCHEMA_NAME, {SCHEMA_VERSION}, what="metrics file",
                                   fix="evaluate the run again (molstrata evaluate RUN)",
                                   kind_key="schema", version_key="schema_version")
    try:
        return _report_from_json(document)
    except (KeyError, TypeError, ValueError) as error:
        raise MolstrataError(
            f"{path} is damaged or incomplete ({type(error).__name__}: {error}); write it again"
        ) from None


def _report_from_json(doc: dict[str, Any]) -> StratifiedReport:
    unit = doc["target_unit"]
    settings = doc["settings"]
    confidence = float(settings["confidence"])
    training_doc = doc["training"]
    training = TrainingCounts.unknown() if training_doc is None else TrainingCounts(
        n_molecules=int(training_doc["n_molecules"]),
        sizes={int(d["size"]): int(d["count"]) for d in training_doc["size_counts"]},
        elements={d["element"]: int(d["count"]) for d in training_doc["element_counts"]},
        size_elements={
            (int(d["size"]), d["element"]): int(d["count"])
            for d in training_doc["size_element_counts"]
        },
    )

    def stratum(kind: str, d: dict[str, Any]) -> StratumMetrics:
        return _stratum_from_json(kind, d, unit, confidence)

    factor, e_unit = error_unit(unit)
    e_key, sq_key = unit_key(e_unit), unit_key(squared_unit(unit))
    return StratifiedReport(
        target=doc["target"],
        unit=unit,
        n_molecules=int(doc["n_molecules"]),
        overall=stratum("all", doc["global"]),
        sizes=[stratum(SIZE, d) for d in doc["per_size"]],
        elements=[stratum(ELEMENT, d) for d in doc["per_element"]],
        size_elements=[stratum(SIZE_ELEMENT, d) for d in doc["per_size_element"]],
        omitted_sizes={int(d["size"]): int(d["count"]) for d in doc["omitted_sizes"]},
        macro={
            kind: MacroAverage(
                kind,
                int(m["n_strata"]),
                m[f"mae_{e_key}"] / factor,
                m[f"rmse_{e_key}"] / factor,
                m[f"mse_{sq_key}"],
            )
            for kind, m in doc["macro"].items()
        },
        worst={kind: stratum(kind, d) for kind, d in doc["worst"].items()},
        correlations={
            kind: Correlation(
                kind=kind,
                hypothesis=c["hypothesis"],
                n_strata=int(c["n_strata"]),
                rho=math.nan if c["rho"] is None else float(c["rho"]),
                p_value=math.nan if c["p_value"] is None else float(c["p_value"]),
                holds=bool(c["holds"]),
                method=c["method"],
                note=c["note"],
            )
            for kind, c in doc["correlation"].items()
        },
        training=training,
        seed=int(settings["seed"]),
        n_bootstrap=int(settings["n_bootstrap"]),
        confidence=confidence,
        min_share=float(settings["min_share_percent"]) / 100,
        all_sizes=bool(settings["all_sizes"]),
        # a file written before the minimum gave every stratum its interval
        min_interval_count=int(settings.get("min_interval_count", 1)),
    )


# ---- the terminal summary ----------------------------------------------------------------


def format_summary(report: StratifiedReport) -> str:
    """Global, per-size and per-element errors, macro averages, worst strata and the hypothesis
    tests as aligned text tables (the size × element cells are in their CSV only)."""
    _, unit = error_unit(report.unit)
    sq = squared_unit(report.unit)
    level = f"{100 * report.confidence:g}% CI"
    header = ["stratum", "count", "train %", f"MAE {unit}", level, f"RMSE {unit}", level,
              f"MSE {sq}"]

    def row(s: StratumMetrics) -> list[Any]:
        values = list(s.summary.report_row(report.unit).values())
        share = f"{100 * s.train_share:.2f}" if report.training.known else "-"
        return [s.label, s.count, share, *_metric_cells(values)]

    n_train = report.training.n_molecules
    trained = (f"model trained on {n_train:,}" if report.training.known
               else "training set not given")
    shown = [report.overall, *report.sizes, *report.elements]
    too_few = any(s.count < report.min_interval_count for s in shown)
    parts = [
        f"{report.target} [{report.unit}]: {counted(report.n_molecules, 'molecule')} "
        f"evaluated, {trained}; {level}s from {report.n_bootstrap:,} "
        "bootstrap resamples of these molecules (one model: the noise of its test molecules, "
        "not of its training seed)"
        + (f"; no CI (-) where a stratum holds fewer than {report.min_interval_count} "
           "molecules, too few for one" if too_few else ""),
        format_table(header, [row(report.overall)], title="Overall"),
    ]
    if report.sizes:
        size_title = "Per size" + (
            "" if report.all_sizes else
            f" (sizes with at least {100 * report.min_share:g} % of the molecules)"
        )
        parts.append(format_table(header, [row(s) for s in report.sizes], title=size_title))
    if report.omitted_sizes:
        n_left = sum(report.omitted_sizes.values())
        parts.append(
            f"Not reported per size: {counted(len(report.omitted_sizes), 'size')} "
            f"({', '.join(str(s) for s in report.omitted_sizes)} atoms) holding "
            f"{counted(n_left, 'molecule')}; evaluate --all-sizes (all_sizes=True in Python) "
            "reports them"
        )
    if report.elements:
        parts.append(format_table(header, [row(s) for s in report.elements], title="Per element"))
    factor, _ = error_unit(report.unit)
    if report.macro:
        parts.append(format_table(
            ["strata", "n", f"MAE {unit}", f"RMSE {unit}", f"MSE {sq}"],
            [[kind, m.n_strata, _num(m.mae * factor), _num(m.rmse * factor), _num(m.mse)]
             for kind, m in report.macro.items()],
            title="Macro average (each stratum counts once)",
        ))
    if report.worst:
        parts.append(format_table(
            ["strata", "worst", "count", f"MAE {unit}", level, "vs overall"],
            [[kind, s.label, s.count, _num(s.summary.mae * factor),
              _interval(s.summary.mae_ci_low * factor, s.summary.mae_ci_high * factor),
              f"x{s.summary.mae / report.overall.summary.mae:.2f}"
              if report.overall.summary.mae else "-"]
             for kind, s in report.worst.items()],
            title="Worst stratum (highest MAE)",
        ))
    if report.correlations:
        parts.append(format_table(
            ["strata", "n", "Spearman rho", "p", "holds", "note"],
            [[kind, c.n_strata, _num(c.rho), _num(c.p_value), "yes" if c.holds else "no",
              c.note or "-"]
             for kind, c in report.correlations.items()],
            title="Training share vs MAE (hypotheses 1: sizes, 2: elements; holds if rho < 0 "
            f"and p < {SIGNIFICANCE})",
        ))
    return "\n\n".join(parts)


# ---- helpers -----------------------------------------------------------------------------


def _stratum_json(s: StratumMetrics, target_unit: str, trained: bool = True) -> dict[str, Any]:
    factor, unit = error_unit(target_unit)
    e_key, sq_key = unit_key(unit), unit_key(squared_unit(target_unit))
    ci = ci_key(s.summary.confidence)
    summary = s.summary
    out: dict[str, Any] = {}
    if s.kind in (SIZE, SIZE_ELEMENT):
        out["size"] = s.key if s.kind == SIZE else s.key[0]
    if s.kind in (ELEMENT, SIZE_ELEMENT):
        out["element"] = s.key if s.kind == ELEMENT else s.key[1]
    out.update({
        "label": s.label,
        "count": s.count,
        "train_count": s.train_count if trained else None,
        "train_share_percent": 100 * s.train_share,
        f"mae_{e_key}": summary.mae * factor,
        f"mae_{ci}_{e_key}": [summary.mae_ci_low * factor, summary.mae_ci_high * factor],
        f"rmse_{e_key}": summary.rmse * factor,
        f"rmse_{ci}_{e_key}": [summary.rmse_ci_low * factor, summary.rmse_ci_high * factor],
        f"mse_{sq_key}": summary.mse,
        f"mse_{ci}_{sq_key}": [summary.mse_ci_low, summary.mse_ci_high],
    })
    return out


def _stratum_from_json(
    kind: str, d: dict[str, Any], target_unit: str, confidence: float
) -> StratumMetrics:
    factor, unit = error_unit(target_unit)
    e_key, sq_key = unit_key(unit), unit_key(squared_unit(target_unit))
    ci = ci_key(confidence)
    key = {"all": None, SIZE: d.get("size"), ELEMENT: d.get("element"),
           SIZE_ELEMENT: (d.get("size"), d.get("element"))}[kind]
    mae_ci, rmse_ci = d[f"mae_{ci}_{e_key}"], d[f"rmse_{ci}_{e_key}"]
    mse_ci = d[f"mse_{ci}_{sq_key}"]
    summary = ErrorSummary(
        count=int(d["count"]),
        mse=float(d[f"mse_{sq_key}"]),
        mae=d[f"mae_{e_key}"] / factor,
        rmse=d[f"rmse_{e_key}"] / factor,
        mae_ci_low=_bound(mae_ci[0]) / factor,
        mae_ci_high=_bound(mae_ci[1]) / factor,
        rmse_ci_low=_bound(rmse_ci[0]) / factor,
        rmse_ci_high=_bound(rmse_ci[1]) / factor,
        mse_ci_low=_bound(mse_ci[0]),
        mse_ci_high=_bound(mse_ci[1]),
        confidence=confidence,
    )
    share = _bound(d["train_share_percent"]) / 100
    count = 0 if d["train_count"] is None else int(d["train_count"])
    return StratumMetrics(kind, key, d["label"], count, share, summary)


def _bound(value: float | None) -> float:
    """An interval's end as metrics.json holds it: null (no interval) is NaN."""
    return math.nan if value is None else float(value)


def _metric_cells(values: list[float]) -> list[object]:
    """report_row's nine values as MAE, its CI, RMSE, its CI, MSE for the terminal."""
    mae, mae_lo, mae_hi, rmse, rmse_lo, rmse_hi, mse = values[:7]
    return [_num(mae), _interval(mae_lo, mae_hi), _num(rmse), _interval(rmse_lo, rmse_hi),
            _num(mse)]


def _interval(low: float, high: float) -> tuple[float, float]:
    """An interval cell: format_table writes it "low - high" in its column's precision."""
    return float(low), float(high)


def _num(value: float | None) -> float | None:
    """A number cell: format_table writes a column's numbers with one precision ("-" for
    None and NaN)."""
    return None if value is None else float(value)


def _nulls(value: Any) -> Any:
    """NaN -> None (JSON null), through nested dicts and lists."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nulls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulls(v) for v in value]
    return value


def _version() -> str:
    try:
        return metadata.version("molstrata")
    except metadata.PackageNotFoundError:
        return "unknown"
