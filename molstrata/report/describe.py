"""`molstrata data describe`: how the dataset is spread over sizes and elements, and what
its target's values look like.

Writes the study's Table 1 (element frequencies), Figure 1 (size histogram), Figure A5 (size ×
element heatmap) and, with a cap, Figure 5 (histogram after undersampling), as CSV and PNG;
with a target, its values per size and the molecules whose value is not finite or an outlier
(`molstrata.data.values`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molstrata._files import atomic_write_text
from molstrata.data import sampling, strata
from molstrata.data.molecules import Molecules, atomic_number, element_symbol
from molstrata.data.values import SizeValues, ValueReport, check_values
from molstrata.report import plots
from molstrata.tables import format_table, write_csv
from molstrata.units import unit_key
from molstrata.wording import counted

SHOWN_IDS = 10
"""How many molecule ids describe's text names in a line (summary.json holds them all)."""


@dataclass(frozen=True)
class Description:
    """What `describe` printed and wrote."""

    text: str
    files: list[Path]


def describe(
    molecules: Molecules,
    out_dir: str | os.PathLike,
    *,
    name: str = "QM9",
    cap: int | None = None,
    seed: int = 0,
    target: str | None = None,
    extensive: bool = True,
) -> Description:
    """Count molecules per size, element and size × element; write CSVs, PNGs and a summary.

    With a target (a property of the molecules), also check its values: how many are NaN or
    infinite, their spread per size, and outliers (`check_values`; `extensive` says whether
    the target sums over atoms, as energies do). Everything is computed before the first file
    is written, so bad input writes nothing.
    """
    out = Path(out_dir)
    values = None if target is None else check_values(molecules, target, extensive)
    sizes, counts = strata.size_histogram(molecules)
    elements = strata.element_frequency(molecules)
    heat_sizes, heat_symbols, heat_share = strata.size_element_share(molecules)
    capped = None
    if cap is not None:
        kept = sampling.undersample_per_size(molecules.sizes, cap, seed)
        capped = np.bincount(molecules.sizes[kept], minlength=sizes.max() + 1)[sizes]
    n = len(molecules)
    files: list[Path] = []

    def path(filename: str) -> Path:
        files.append(out / filename)
        return files[-1]

    element_rows = [(e.key, atomic_number(e.key), e.count, 100 * e.share) for e in elements]
    write_csv(path("element_frequency.csv"),
              ["element", "atomic_number", "molecules", "share_percent"], element_rows)
    size_header = ["n_atoms", "molecules", "share_percent"]
    size_rows = [(int(s), int(c), 100 * c / n) for s, c in zip(sizes, counts)]
    if capped is not None:
        size_header += [f"molecules_cap_{cap}"]
        size_rows = [row + (int(k),) for row, k in zip(size_rows, capped)]
    write_csv(path("size_histogram.csv"), size_header, size_rows)
    heat_counts = counts[np.searchsorted(sizes, heat_sizes)]
    write_csv(
        path("size_element.csv"),
        ["n_atoms", "element", "molecules_of_size", "molecules_with_element", "share_percent"],
        [
            (int(s), sym, int(c), int(round(heat_share[i, j] * c)), 100 * heat_share[i, j])
            for i, (s, c) in enumerate(zip(heat_sizes, heat_counts))
            for j, sym in enumerate(heat_symbols)
        ],
    )
    plots.size_histogram(sizes, counts, path("size_histogram.png"),
                         f"{name}: molecules per size (Figure 1)")
    plots.element_frequency([e.key for e in elements], np.array([e.share for e in elements]),
                            np.array([e.count for e in elements]),
                            path("element_frequency.png"),
                            f"{name}: molecules containing each element (Table 1)")
    plots.size_element_heatmap(heat_sizes, heat_symbols, heat_share, heat_counts,
                               path("size_element_heatmap.png"),
                               f"{name}: share of each size containing each element (Figure A5)")
    if capped is not None:
        plots.size_histogram(sizes, counts, path("size_histogram_capped.png"),
                             f"{name}: undersampled to at most {cap:,} per size (Figure 5)",
                             capped=capped, cap=cap)
    if values is not None:
        u = unit_key(values.unit)
        write_csv(path("values_per_size.csv"), _size_header(u),
                  [_size_row(s) for s in values.per_size])
        header, rows = _flag_rows(molecules, values, u)
        write_csv(path("value_flags.csv"), header, rows)
    summary = {
        "dataset": name,
        "n_molecules": n,
        "n_atoms": molecules.n_atoms_total,
        "mean_atoms_per_molecule": molecules.n_atoms_total / n,
        "size_range": [int(sizes.min()), int(sizes.max())],
        "elements": [element_symbol(z) for z in molecules.elements],
        "properties": dict(molecules.units),
        "reportable_sizes": strata.reportable_sizes(molecules).tolist(),
        "cap": cap,
        "n_molecules_after_cap": None if capped is None else int(capped.sum()),
        "seed": seed,
        "values": None if values is None else _values_summary(molecules, values),
    }
    atomic_write_text(path("summary.json"),
                      json.dumps(summary, indent=2, allow_nan=False) + "\n")
    text = _text(name, molecules, element_rows, size_rows, size_header)
    if values is not None:
        text += "\n\n" + _values_text(molecules, values)
    return Description(text, files)


# ---- the target's values ----------------------------------------------------------------


def _size_header(u: str) -> list[str]:
    return ["n_atoms", "molecules", "nonfinite", f"min_{u}", f"max_{u}", f"mean_{u}",
            f"std_{u}"]


def _size_row(s: SizeValues) -> tuple:
    return (s.n_atoms, s.molecules, s.nonfinite, s.min, s.max, s.mean, s.std)


def _residual_key(values: ValueReport, u: str) -> str:
    return f"residual_per_atom_{u}" if values.extensive else f"value_{u}"


def _flag_rows(molecules: Molecules, values: ValueReport, u: str) -> tuple[list[str], list]:
    """value_flags.csv: one row per molecule whose value is not finite or an outlier."""
    o = values.outliers
    rows = np.concatenate([values.nonfinite_rows, o.rows])
    problems = ["nonfinite"] * len(values.nonfinite_rows) + ["outlier"] * len(o.rows)
    residuals = np.concatenate([np.full(len(values.nonfinite_rows), np.nan), o.residuals])
    scores = np.concatenate([np.full(len(values.nonfinite_rows), np.nan), o.scores])
    flagged = molecules.subset(rows)
    header = ["id", "n_atoms", "formula", "problem", f"{values.name}_{u}",
              _residual_key(values, u), "score_robust_sd"]
    target = flagged.property(values.name)
    return header, [
        (int(flagged.ids[k]), int(flagged.sizes[k]), formula, problems[k], float(target[k]),
         _blank(residuals[k]), _blank(scores[k]))
        for k, formula in enumerate(flagged.formulas())
    ]


def _blank(value: float) -> float | str:
    return "" if np.isnan(value) else float(value)


def _finite(value: float) -> float | None:
    """JSON has no NaN: statistics of no finite value are null."""
    return float(value) if np.isfinite(value) else None


def _values_summary(molecules: Molecules, values: ValueReport) -> dict:
    """The value check as summary.json holds it, units in the keys."""
    u = unit_key(values.unit)
    o = values.outliers
    per_size = [dict(zip(_size_header(u), _size_row(s))) for s in values.per_size]
    overall = values.overall
    return {
        "property": values.name,
        "unit": values.unit,
        "extensive": values.extensive,
        "n_molecules": values.n_molecules,
        "n_nonfinite": len(values.nonfinite_rows),
        "nonfinite_ids": molecules.ids[values.nonfinite_rows].tolist(),
        f"min_{u}": _finite(overall.min),
        f"max_{u}": _finite(overall.max),
        f"mean_{u}": _finite(overall.mean),
        f"std_{u}": _finite(overall.std),
        "per_size": [{k: _finite(v) if isinstance(v, float) else v for k, v in row.items()}
                     for row in per_size],
        "outliers": {
            "judged_on": o.residual,
            "threshold_robust_sd": o.threshold,
            f"median_{_residual_key(values, u)}": _finite(o.median),
            f"robust_sd_{_residual_key(values, u)}": _finite(o.robust_sd),
            f"reference_energies_{u}": o.reference_energies,
            "n_outliers": len(o.rows),
            "ids": molecules.ids[o.rows].tolist(),
            _residual_key(values, u): o.residuals.tolist(),
            "scores_robust_sd": o.scores.tolist(),
        },
    }


def _ids(molecules: Molecules, rows: np.ndarray) -> str:
    shown = ", ".join(str(i) for i in molecules.ids[rows[:SHOWN_IDS]])
    return shown + (", ..." if len(rows) > SHOWN_IDS else "")


def _values_text(molecules: Molecules, values: ValueReport) -> str:
    unit, o, overall = values.unit, values.outliers, values.overall
    bad = len(values.nonfinite_rows)
    lines = [f"Values of {values.name} ({unit}) in {counted(values.n_molecules, 'molecule')}: "
             + (f"{bad:,} NaN or infinite (ids {_ids(molecules, values.nonfinite_rows)})"
                if bad else "all finite")]
    if bad < values.n_molecules:
        lines.append(f"  range {overall.min:.6g} .. {overall.max:.6g} {unit}, mean "
                     f"{overall.mean:.6g} {unit}, std {overall.std:.6g} {unit}")
    judged = f"{o.threshold:g} robust standard deviations of the {o.residual}"
    if np.isnan(o.robust_sd):
        lines.append("  outliers: not judged, too few finite values")
    elif len(o.rows):
        lines.append(f"  {len(o.rows):,} outliers beyond {judged} (ids "
                     f"{_ids(molecules, o.rows)}); see value_flags.csv")
    else:
        lines.append(f"  no outliers beyond {judged}")
    table = format_table(
        ["atoms", "molecules", "non-finite", f"min {unit}", f"max {unit}", f"mean {unit}",
         f"std {unit}"],
        [(s.n_atoms, s.molecules, s.nonfinite,
          *(f"{v:.6g}" for v in (s.min, s.max, s.mean, s.std))) for s in values.per_size],
        title=f"Values of {values.name} per size",
    )
    return "\n".join(lines) + "\n\n" + table


def _text(name: str, molecules: Molecules, element_rows, size_rows, size_header) -> str:
    head = (f"{name}: {counted(len(molecules), 'molecule')}, {molecules.n_atoms_total:,} atoms "
            f"({molecules.n_atoms_total / len(molecules):.1f} per molecule)")
    elements = format_table(
        ["element", "Z", "molecules", "share %"],
        [(sym, z, count, f"{share:.3f}") for sym, z, count, share in element_rows],
        title="Molecules containing each element (Table 1)",
    )
    peak = max(row[1] for row in size_rows)
    header = ["atoms", "molecules", "share %"] + (["after cap"] if len(size_header) > 3 else [])
    histogram = format_table(
        header + [""],
        [(*row[:2], f"{row[2]:.3f}", *row[3:], "#" * max(1, round(40 * row[1] / peak)))
         for row in size_rows],
        title="Molecules per size (Figure 1)",
    )
    return "\n\n".join([head, elements, histogram])
