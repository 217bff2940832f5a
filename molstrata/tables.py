"""Plain tables: aligned text for the terminal, CSV files (unit in every column name)."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from molstrata._files import atomic_write_text
from molstrata.errors import MolstrataError

Row = Sequence[object]
"""A table row. In text tables a float is formatted with its column (`column_formatter`), a
(low, high) pair of floats is an interval ("11.70 - 12.60"), None and NaN are "-"."""

SIGNIFICANT = 4
"""Significant digits the largest number of a text-table column is shown with."""
SMALLEST_SIGNIFICANT = 2
"""Significant digits the smallest non-zero number of a column keeps at least."""
MAX_DECIMALS = 6
"""Beyond this many decimals, or for numbers from 1e5 or under 1e-3, a column is scientific."""


def column_formatter(values: Iterable[object]) -> Callable[[float], str]:
    """One format for every number of a column, so that its numbers share their precision:
    fixed decimals, enough for SIGNIFICANT digits of the largest magnitude and
    SMALLEST_SIGNIFICANT of the smallest non-zero one; scientific notation with 3 decimals for
    the whole column when it holds a number from 1e5 or under 1e-3. `values` are the column's
    cells (non-floats are skipped; intervals count with both ends)."""
    magnitudes = [abs(v) for v in _floats(values) if math.isfinite(v) and v != 0]
    if not magnitudes:
        return _fixed(0)
    large, small = max(magnitudes), min(magnitudes)
    if large >= 1e5 or small < 1e-3:
        return _scientific
    decimals = max(SIGNIFICANT - 1 - math.floor(math.log10(large)),
                   SMALLEST_SIGNIFICANT - 1 - math.floor(math.log10(small)), 0)
    return _scientific if decimals > MAX_DECIMALS else _fixed(decimals)


def format_cells(rows: Sequence[Row]) -> list[list[str]]:
    """The rows' cells as text, each column's numbers with one precision (`column_formatter`)."""
    n_columns = max((len(row) for row in rows), default=0)
    formats = [column_formatter(row[k] for row in rows if k < len(row)) for k in range(n_columns)]
    return [[_cell(value, formats[k]) for k, value in enumerate(row)] for row in rows]


def format_table(header: Sequence[str], rows: Sequence[Row], title: str | None = None) -> str:
    """An aligned text table: numbers right-aligned with one precision per column, text
    left-aligned."""
    cells = [[str(h) for h in header]] + format_cells(rows)
    widths = [max(len(r[k]) for r in cells) for k in range(len(header))]
    numeric = [all(_is_numeric(row[k]) for row in rows) for k in range(len(header))]
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


def _floats(values: Iterable[object]) -> Iterator[float]:
    for value in values:
        if _is_interval(value):
            yield from (float(v) for v in value)
        elif isinstance(value, float | np.floating):
            yield float(value)


def _is_interval(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and all(
        isinstance(v, float | np.floating) for v in value)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def _cell(value: object, number: Callable[[float], str]) -> str:
    if _missing(value):
        return "-"
    if _is_interval(value):
        low, high = value
        return "-" if _missing(low) or _missing(high) else f"{number(low)} - {number(high)}"
    if isinstance(value, float | np.floating):
        return number(float(value))
    return str(value)


def _fixed(decimals: int) -> Callable[[float], str]:
    return lambda value: "-" if math.isnan(value) else f"{value:.{decimals}f}"


def _scientific(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3e}"


def _is_numeric(value: object) -> bool:
    """Whether a cell reads as a number (missing cells and intervals count as numbers)."""
    if isinstance(value, bool | np.bool_):
        return False
    if _missing(value) or _is_interval(value) or isinstance(value, int | float | np.number):
        return True
    try:
        float(str(value))
    except ValueError:
        return value == "-"
    return True
