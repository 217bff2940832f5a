"""The HTML report: self-contained, holding every section, figure and table, and rendering in a
real browser; its Markdown twin and CSV tables hold the same content."""

from __future__ import annotations

import base64
import csv
import html
import re
import struct

import chromium
import numpy as np
import pytest
from chromium import rendered_images

from molstrata.report.html import (
    ReportFigure,
    ReportSection,
    ReportTable,
    format_cell,
    write_report,
)
from molstrata.report.plots import plt, save_figure

FIGURE_SIZES = [(4, 3), (6, 2.5), (3, 3)]  # inches: three PNGs of different pixel sizes


def png_size(data: bytes) -> tuple[int, int]:
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def figures(tmp_path):
    """Three small PNGs drawn with matplotlib, with labels and captions."""
    made = []
    for k, size in enumerate(FIGURE_SIZES, start=1):
        fig, ax = plt.subplots(figsize=size)
        ax.plot(np.arange(10), np.arange(10) ** (k / 2), marker="o")
        ax.set_xlabel("molecule size (number of atoms)")
        path = tmp_path / "plots" / f"plot{k}.png"
        path.parent.mkdir(exist_ok=True)
        save_figure(fig, path)
        made.append(ReportFigure(path, f"Figure {k}", f"MAE per size in meV, run {k}."))
    return made


@pytest.fixture
def sections(figures):
    per_size = ReportTable(
        name="table1_sizes",
        label="Table 1",
        caption="MAE per molecule size (meV), with 95 % confidence intervals.",
        header=["size", "count", "mae_meV", "mae_ci95_low_meV", "note"],
        rows=[[9, 1234, 12.345678, 11.0, None], [18, 130831, 0.000123456, None, "rare <F>"]],
    )
    final = ReportTable(
        name="table2_final",
        label="Table 2",
        caption="Default against custom model: total MSE (eV²) and wall time (s).",
        header=["model", "mse_eV2", "wall_time_s"],
        rows=[["default", 0.0643, 6360.0], ["custom", 0.0925, 5280.5]],
    )
    return [
        ReportSection(
            "Data and strata",
            paragraphs=["QM9 holds **130,831** molecules.", "a <b>bold</b> claim & more"],
            figures=figures[:2],
            tables=[per_size],
        ),
        ReportSection(
            "Final experiment",
            paragraphs=["Trained on molecules over 17 atoms."],
            figures=figures[2:],
            tables=[final],
        ),
    ]


@pytest.fixture
def report(tmp_path, sections):
    out = tmp_path / "report"
    written = write_report(
        out, "molstrata study <test>", sections, intro=["What the study found."],
        facts=[("molstrata version", "0.1.0"), ("device", "cpu"), ("wall time", "3 min")],
    )
    return out, written


def test_write_report_writes_every_file_and_returns_their_paths(report):
    out, written = report
    expected = {out / "report.html", out / "report.md", out / "tables" / "table1_sizes.csv",
                out / "tables" / "table2_final.csv", out / "figures" / "01-plot1.png",
                out / "figures" / "02-plot2.png", out / "figures" / "03-plot3.png"}
    assert set(written) == expected and len(written) == len(expected)
    assert all(path.is_file() for path in written)
    assert not list(out.rglob("*.part"))


def test_html_holds_every_section_caption_table_and_fact(report, sections):
    out, _ = report
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "<title>molstrata study &lt;test&gt;</title>" in text
    for section in sections:
        assert f"<h2>{section.title}</h2>" in text
        for figure in section.figures:
            assert f"<figcaption><b>{figure.label}.</b> {figure.caption}</figcaption>" in text
        for table in section.tables:
            assert f"<caption><b>{table.label}.</b> {html.escape(table.caption)}" in text
            for column in table.header:
                assert f">{column}</th>" in text
    assert text.count("<figure") == 3 and text.count("<table>") == 2
    assert "<dt>device</dt><dd>cpu</dd>" in text
    assert "<p>What the study found.</p>" in text
    # numbers: 4 significant digits, None as an em dash, text escaped
    for cell in ("12.35", "130831", "1.235e-04", "6360", "5280", "—", "rare &lt;F&gt;"):
        assert f">{cell}</td>" in text
    # every contents link has its target
    anchors = set(re.findall(r'id="([^"]+)"', text))
    links = re.findall(r'href="#([^"]+)"', text)
    assert len(links) == 2 + 3 + 2 and set(links) <= anchors


def test_html_is_self_contained_with_the_pngs_embedded(report, figures):
    out, _ = report
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text
    assert 'src="file' not in text and "<script" not in text and "<link" not in text
    sources = re.findall(r'<img src="([^"]*)" width="(\d+)" height="(\d+)" alt="[^"]+"', text)
    assert len(sources) == len(figures) == text.count("<img")
    for (uri, width, height), figure in zip(sources, figures):
        prefix = "data:image/png;base64,"
        assert uri.startswith(prefix)
        data = base64.b64decode(uri[len(prefix):], validate=True)
        assert data == figure.path.read_bytes()
        assert (int(width), int(height)) == png_size(data)


def test_text_is_escaped_and_bold_marks_are_kept(report):
    out, _ = report
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "<p>a &lt;b&gt;bold&lt;/b&gt; claim &amp; more</p>" in text
    assert "<p>QM9 holds <b>130,831</b> molecules.</p>" in text
    assert "<b>bold</b>" not in text
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert r"a \<b\>bold\</b\> claim & more" in markdown
    assert "QM9 holds **130,831** molecules." in markdown


def test_markdown_has_the_tables_and_links_to_the_figures(report, sections, figures):
    out, _ = report
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert markdown.startswith("# molstrata study \\<test\\>\n")
    assert "- **device:** cpu" in markdown
    for section in sections:
        assert f"\n## {section.title}\n" in markdown
    assert "| size | count | mae_meV | mae_ci95_low_meV | note |" in markdown
    assert "|---:|---:|---:|---:|---|" in markdown
    assert "| 18 | 130831 | 1.235e-04 | — | rare \\<F\\> |" in markdown
    assert "| default | 0.06430 | 6360 |" in markdown
    assert "**Table 2.** Default against custom model" in markdown
    assert "(tables/table2_final.csv)" in markdown
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(links) == len(figures)
    for link, figure in zip(links, figures):
        assert (out / link).read_bytes() == figure.path.read_bytes()
    assert "**Figure 3.** MAE per size in meV, run 3." in markdown


def test_csv_tables_hold_the_rows(report, sections):
    out, _ = report
    for table in (t for s in sections for t in s.tables):
        with open(out / "tables" / f"{table.name}.csv", newline="") as handle:
            header, *rows = list(csv.reader(handle))
        assert header == table.header
        assert rows == [["" if c is None else str(c) for c in row] for row in table.rows]


def test_a_missing_figure_is_refused_before_anything_is_written(tmp_path, sections):
    missing = ReportFigure(tmp_path / "nowhere.png", "Figure 9", "not drawn")
    broken = sections + [ReportSection("Extra", figures=[missing])]
    with pytest.raises(ValueError, match="nowhere.png"):
        write_report(tmp_path / "out", "title", broken)
    assert not (tmp_path / "out").exists()
    (tmp_path / "text.png").write_text("not a png")
    fake = ReportFigure(tmp_path / "text.png", "Figure 9", "text")
    with pytest.raises(ValueError, match="not a PNG"):
        write_report(tmp_path / "out", "title", [ReportSection("Extra", figures=[fake])])
    assert not (tmp_path / "out").exists()


def test_bad_tables_are_refused(tmp_path, sections):
    table = sections[0].tables[0]
    twice = sections + [ReportSection("Again", tables=[
        ReportTable(table.name, "Table 9", "same name", ["a"], [[1]])])]
    with pytest.raises(ValueError, match="table name 'table1_sizes'"):
        write_report(tmp_path / "out", "title", twice)
    short_row = ReportTable("t", "Table 9", "c", ["a", "b"], [[1]])
    with pytest.raises(ValueError, match="row 0 has 1 cells for 2 columns"):
        write_report(tmp_path / "out", "title", [ReportSection("S", tables=[short_row])])
    odd_cell = ReportTable("t", "Table 9", "c", ["a"], [[[1, 2]]])
    with pytest.raises(ValueError, match="cells are str, int, float or None"):
        write_report(tmp_path / "out", "title", [ReportSection("S", tables=[odd_cell])])
    path_name = ReportTable("../t", "Table 9", "c", ["a"], [[1]])
    with pytest.raises(ValueError, match="plain file stem"):
        write_report(tmp_path / "out", "title", [ReportSection("S", tables=[path_name])])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "value, text",
    [(None, "—"), (float("nan"), "—"), (0.0, "0"), (12.345678, "12.35"), (9.99996, "10.00"),
     (0.0643, "0.06430"), (130831.0, "130831"), (2.5e7, "2.500e+07"), (-1.23456e-5, "-1.235e-05"),
     (np.float32(0.5), "0.5000"), (np.int64(42), "42"), (7, "7"), ("C<H", "C<H"), (True, "True")],
)
def test_format_cell(value, text):
    assert format_cell(value) == text


def test_every_figure_renders_in_headless_chromium(report, figures):
    out, _ = report
    images = rendered_images(out / "report.html")
    assert len(images) == len(figures)
    for image, figure in zip(images, figures):
        assert image["scheme"] == "data"
        assert image["rendered"], image
        width, height = png_size(figure.path.read_bytes())
        assert (image["naturalWidth"], image["naturalHeight"]) == (width, height)
        assert image["width"] > 0 and image["height"] > 0
        assert image["alt"].startswith(f"{figure.label}. ")


def test_the_chromium_check_skips_with_a_reason_where_chromium_is_absent(
    report, monkeypatch
):
    out, _ = report
    monkeypatch.setattr(chromium, "find_chromium", lambda: None)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        rendered_images(out / "report.html")
