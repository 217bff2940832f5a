"""`molstrata data describe`: how the dataset is spread over sizes and elements.

Writes the study's Table 1 (element frequencies), Figure 1 (size histogram), Figure A5 (size ×
element heatmap) and, with a cap, Figure 5 (histogram after undersampling), as CSV and PNG.
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
from molstrata.report import plots
from molstrata.tables import format_table, write_csv


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
) -> Description:
    """Count molecules per size, element and size × element; write CSVs, PNGs and a summary.

    Everything is computed before the first file is written, so bad input writes nothing.
    """
    out = Path(out_dir)
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
    }
    atomic_write_text(path("summary.json"), json.dumps(summary, indent=2) + "\n")
    return Description(_text(name, molecules, element_rows, size_rows, size_header), files)


def _text(name: str, molecules: Molecules, element_rows, size_rows, size_header) -> str:
    head = (f"{name}: {len(molecules):,} molecules, {molecules.n_atoms_total:,} atoms "
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
