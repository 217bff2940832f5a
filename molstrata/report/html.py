"""The study's report as one self-contained HTML file, the same in Markdown, and its tables as CSV.

report.html opens anywhere without a network: every figure is embedded as a base64 data: URI,
the style sheet is inline, and no script is needed. report.md holds the same text with the
figures as links to copies in figures/; tables/<name>.csv holds each table with full precision.
"""

from __future__ import annotations

import base64
import html
import math
import numbers
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from molstrata import __version__
from molstrata._files import atomic_open, atomic_write_text
from molstrata.tables import write_csv

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TABLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class ReportFigure:
    """A PNG on disk, its label ('Figure 3') and a plain-text caption saying what it shows,
    with units."""

    path: Path
    label: str
    caption: str


@dataclass(frozen=True)
class ReportTable:
    """A table: `name` is the CSV's file stem ('table2_final'), `header` the column names with
    units ('mae_meV'), `rows` cells of str, int, float or None."""

    name: str
    label: str
    caption: str
    header: list[str]
    rows: list[list]


@dataclass(frozen=True)
class ReportSection:
    """A titled part of the report: plain-text paragraphs (**bold** allowed), then its figures,
    then its tables."""

    title: str
    paragraphs: list[str] = ()
    figures: list[ReportFigure] = ()
    tables: list[ReportTable] = ()


def write_report(
    out_dir: str | os.PathLike,
    title: str,
    sections: list[ReportSection],
    *,
    intro: list[str] = (),
    facts: list[tuple[str, str]] = (),
) -> list[Path]:
    """Write out_dir/report.html, out_dir/report.md, out_dir/tables/<name>.csv for every table
    and out_dir/figures/<nn>-<stem>.png for every figure; return the paths written.

    Everything is checked before anything is written: a figure that is not a PNG file, a table
    whose rows do not match its header, or two tables (or figures) with the same name or label
    are programming errors and raise ValueError. Each file is written atomically.
    """
    out_dir = Path(out_dir)
    images = _check(sections)
    copies = {id(f): f"figures/{n:02d}-{_UNSAFE.sub('_', Path(f.path).stem)}.png"
              for n, f in enumerate((f for s in sections for f in s.figures), start=1)}
    written = []
    atomic_write_text(out_dir / "report.html",
                      _html(title, sections, intro, facts, images))
    written.append(out_dir / "report.html")
    atomic_write_text(out_dir / "report.md", _markdown(title, sections, intro, facts, copies))
    written.append(out_dir / "report.md")
    for section in sections:
        for table in section.tables:
            path = out_dir / "tables" / f"{table.name}.csv"
            write_csv(path, table.header, table.rows)
            written.append(path)
        for figure in section.figures:
            path = out_dir / copies[id(figure)]
            with atomic_open(path, "wb") as handle:
                handle.write(images[id(figure)])
            written.append(path)
    return written


def format_cell(value: object) -> str:
    """A table cell as text: floats to 4 significant digits but every digit before the point
    (whole ones without decimals, scientific outside 1e-3..1e6), None and NaN as an em dash,
    everything else as str()."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        magnitude = math.floor(math.log10(abs(float(f"{value:.3e}"))))
        if magnitude < -3 or magnitude >= 6:
            return f"{value:.3e}"
        return f"{value:.{max(0, 3 - magnitude)}f}"  # 4 significant digits, all integer ones
    return str(value)


# ---- checks ------------------------------------------------------------------------------


def _check(sections: Sequence[ReportSection]) -> dict[int, bytes]:
    """Validate every section; return the bytes of each figure's PNG, by id(figure)."""
    images: dict[int, bytes] = {}
    table_names: set[str] = set()
    labels: set[str] = set()
    for section in sections:
        if not isinstance(section, ReportSection):
            raise ValueError(f"sections must be ReportSection objects, got {type(section)}")
        for figure in section.figures:
            _unique(figure.label, labels, "figure label")
            images[id(figure)] = _read_png(Path(figure.path))
        for table in section.tables:
            if not _TABLE_NAME.fullmatch(table.name):
                raise ValueError(f"table name {table.name!r} is not a plain file stem")
            _unique(table.name, table_names, "table name")
            _unique(table.label, labels, "table label")
            for k, row in enumerate(table.rows):
                if len(row) != len(table.header):
                    raise ValueError(
                        f"{table.name}: row {k} has {len(row)} cells for "
                        f"{len(table.header)} columns"
                    )
                for cell in row:
                    if cell is not None and not isinstance(cell, str | numbers.Real):
                        raise ValueError(
                            f"{table.name}: row {k} holds a {type(cell).__name__} ({cell!r}); "
                            "cells are str, int, float or None"
                        )
    return images


def _unique(name: str, seen: set[str], what: str) -> None:
    if name and name in seen:
        raise ValueError(f"two items of the report share the {what} {name!r}")
    seen.add(name)


def _read_png(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"figure {path} cannot be read ({error.strerror})") from None
    if not data.startswith(PNG_SIGNATURE) or len(data) < 24:
        raise ValueError(f"figure {path} is not a PNG file")
    return data


def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG's IHDR chunk."""
    return struct.unpack(">II", data[16:24])


# ---- HTML --------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; color: #1d232a; background: #fff; max-width: 62rem; margin: 0 auto;
       padding: 1.5rem 1.25rem 4rem; }
h1 { font-size: 1.8rem; margin: 0 0 1rem; line-height: 1.25; }
h2 { font-size: 1.35rem; margin: 2.5rem 0 0.75rem; padding-bottom: 0.25rem;
     border-bottom: 1px solid #d5dde6; }
a { color: #1f5a96; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1.25rem;
           background: #f4f7fa; border: 1px solid #d5dde6; border-radius: 6px;
           padding: 0.75rem 1rem; margin: 0 0 1.5rem; font-size: 0.92rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; font-variant-numeric: tabular-nums; }
nav.toc { margin: 1.5rem 0; }
nav.toc ol { margin: 0.25rem 0; }
nav.toc li li { font-size: 0.9rem; }
figure { margin: 1.75rem 0; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption, caption { font-size: 0.92rem; color: #39424c; text-align: left; }
figcaption { margin-top: 0.5rem; }
.table-wrap { overflow-x: auto; margin: 1.75rem 0; }
table { border-collapse: collapse; font-size: 0.88rem; font-variant-numeric: tabular-nums; }
caption { caption-side: top; padding-bottom: 0.4rem; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #e3e8ee; white-space: nowrap; }
th { text-align: left; border-bottom: 2px solid #9bb7d4; background: #f4f7fa; }
td.num, th.num { text-align: right; }
td.prose { white-space: normal; min-width: 16rem; max-width: 34rem; }
tbody tr:nth-child(even) { background: #fafbfc; }
.csv { font-size: 0.8rem; }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  nav.toc { break-after: page; }
  h2 { break-after: avoid; }
  figure, .table-wrap { break-inside: avoid; }
  .table-wrap { overflow: visible; }
  a { color: inherit; text-decoration: none; }
  .csv { display: none; }
}
"""


def _html(
    title: str,
    sections: Sequence[ReportSection],
    intro: Sequence[str],
    facts: Sequence[tuple[str, str]],
    images: dict[int, bytes],
) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="molstrata {_e(__version__)}">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
    ]
    if facts:
        out.append('<dl class="facts">')
        out += [f"<dt>{_e(key)}</dt><dd>{_e(value)}</dd>" for key, value in facts]
        out.append("</dl>")
    out += [f"<p>{_text(p)}</p>" for p in intro]
    out.append(_toc(sections))
    for i, section in enumerate(sections, start=1):
        out.append(f'<section id="section-{i}">')
        out.append(f"<h2>{_e(section.title)}</h2>")
        out += [f"<p>{_text(p)}</p>" for p in section.paragraphs]
        for j, figure in enumerate(section.figures, start=1):
            out.append(_figure(figure, images[id(figure)], f"section-{i}-figure-{j}"))
        for j, table in enumerate(section.tables, start=1):
            out.append(_table(table, f"section-{i}-table-{j}"))
        out.append("</section>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def _toc(sections: Sequence[ReportSection]) -> str:
    items = []
    for i, section in enumerate(sections, start=1):
        sub = [
            f'<li><a href="#section-{i}-figure-{j}">{_e(_title(f.label, f.caption))}</a></li>'
            for j, f in enumerate(section.figures, start=1)
        ] + [
            f'<li><a href="#section-{i}-table-{j}">{_e(_title(t.label, t.caption))}</a></li>'
            for j, t in enumerate(section.tables, start=1)
        ]
        nested = f"<ol>{''.join(sub)}</ol>" if sub else ""
        items.append(f'<li><a href="#section-{i}">{_e(section.title)}</a>{nested}</li>')
    return f'<nav class="toc"><h2>Contents</h2><ol>{"".join(items)}</ol></nav>'


def _figure(figure: ReportFigure, data: bytes, anchor: str) -> str:
    width, height = _png_size(data)
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    alt = _title(figure.label, figure.caption, short=False)
    return (
        f'<figure id="{anchor}">'
        f'<img src="{uri}" width="{width}" height="{height}" alt="{_e(alt)}">'
        f"<figcaption>{_label(figure.label)}{_text(figure.caption)}</figcaption>"
        "</figure>"
    )


def _table(table: ReportTable, anchor: str) -> str:
    numeric = _numeric_columns(table)
    head = "".join(
        f'<th scope="col"{_num_class(n)}>{_e(str(h))}</th>' for h, n in zip(table.header, numeric)
    )
    body = "".join(
        "<tr>" + "".join(f"<td{_cell_class(cell, n)}>{_e(format_cell(cell))}</td>"
                         for cell, n in zip(row, numeric)) + "</tr>"
        for row in table.rows
    )
    csv_link = f'<a class="csv" href="tables/{_e(table.name)}.csv">CSV</a>'
    return (
        f'<div class="table-wrap" id="{anchor}"><table>'
        f"<caption>{_label(table.label)}{_text(table.caption)} {csv_link}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _numeric_columns(table: ReportTable) -> list[bool]:
    """Whether each column holds numbers only (and blanks), to right-align it."""
    return [
        all(cell is None or _is_number(cell) for cell in column)
        and any(_is_number(cell) for cell in column)
        for column in zip(*table.rows)
    ] if table.rows else [False] * len(table.header)


def _is_number(cell: object) -> bool:
    return isinstance(cell, numbers.Real) and not isinstance(cell, bool)


def _num_class(numeric: bool) -> str:
    return ' class="num"' if numeric else ""


def _cell_class(cell: object, numeric: bool) -> str:
    """Numbers align right and never wrap; long text (a sentence) wraps."""
    if numeric:
        return _num_class(True)
    return ' class="prose"' if isinstance(cell, str) and len(cell) > 40 else ""


def _label(label: str) -> str:
    return f"<b>{_e(label)}.</b> " if label else ""


def _title(label: str, caption: str, short: bool = True) -> str:
    """'Figure 3. MAE per size ...' for a contents entry (first sentence only) or an alt text."""
    if short:
        caption = re.split(r"(?<=[.;:])\s+(?=[A-Z(])", caption, maxsplit=1)[0].rstrip(".;:")
    caption = _BOLD.sub(r"\1", caption)
    return f"{label}. {caption}" if label else caption


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


def _text(text: str) -> str:
    """Plain text escaped for HTML, with **bold** spans as <b>."""
    return _BOLD.sub(r"<b>\1</b>", _e(text))


# ---- Markdown ----------------------------------------------------------------------------


def _markdown(
    title: str,
    sections: Sequence[ReportSection],
    intro: Sequence[str],
    facts: Sequence[tuple[str, str]],
    copies: dict[int, str],
) -> str:
    out = [f"# {_md(title)}", ""]
    if facts:
        out += [f"- **{_md(key)}:** {_md(value)}" for key, value in facts] + [""]
    for paragraph in intro:
        out += [_md(paragraph), ""]
    for section in sections:
        out += [f"## {_md(section.title)}", ""]
        for paragraph in section.paragraphs:
            out += [_md(paragraph), ""]
        for figure in section.figures:
            alt = _md(_title(figure.label, figure.caption))
            out += [f"![{alt}]({copies[id(figure)]})", "",
                    f"{_md_label(figure.label)}{_md(figure.caption)}", ""]
        for table in section.tables:
            out += [f"{_md_label(table.label)}{_md(table.caption)} "
                    f"([CSV](tables/{table.name}.csv))", ""]
            out += _pipe_table(table) + [""]
    return "\n".join(out)


def _pipe_table(table: ReportTable) -> list[str]:
    numeric = _numeric_columns(table)
    lines = ["| " + " | ".join(_md_cell(str(h)) for h in table.header) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(_md_cell(format_cell(c)) for c in row) + " |"
              for row in table.rows]
    return lines


def _md_label(label: str) -> str:
    return f"**{_md(label)}.** " if label else ""


def _md(text: str) -> str:
    """Plain text for Markdown: characters that would start HTML, code or a link are escaped;
    **bold** keeps its Markdown meaning."""
    return re.sub(r"([\\`<>\[\]])", r"\\\1", str(text)).replace("\n", " ")


def _md_cell(text: str) -> str:
    return _md(text).replace("|", r"\|")
