"""Plain tables: aligned text for the terminal, CSV files (unit in every column name)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence

import numpy as np

from molstrata._files import atomic_write_text
from molstrata.errors import MolstrataError

Row = Sequence[object]


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    return str(value)


def format_table(header: Sequence[str], rows: Sequence[Row], title: str | None = None) -> str:
    """An aligned text table: numbers right-aligned, text left-aligned."""
    cells = [[str(h) for h in header]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(header))]
    numeric = [
        all(isinstance(row[k], int | float) or _is_number(row[k]) for row in rows)
        for k in range(len(header))
    ]
    lines = [title] if title else []
    for n, row in enumerate(cells):
        parts = [
            c.rjust(w) if numeric[k] else c.ljust(w) for k, (c, w) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Sequence[Row]) -> None:
    """Write a CSV file atomically, floats with full precision."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_csv_value(v) for v in row])
    atomic_write_text(path, buffer.getvalue())


def read_csv_rows(path: str | os.PathLike, fix: str) -> list[dict[str, str]]:
    """The rows of a CSV file with a header, as dicts of text; a file that cannot be read is a
    MolstrataError that ends with `fix` (what the user should do)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except OSError as error:
        raise MolstrataError(f"cannot read {path} ({error.strerror}); {fix}") from None


def _csv_value(value: object) -> object:
    """Floats with all their digits (numpy scalars included), everything else as is."""
    if isinstance(value, float | np.floating):
        return repr(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True
