"""The study report names runs by their path inside the study folder, whatever path the study
was given, so that a results page reads the same on any machine."""

from __future__ import annotations

from molstrata.report.html import ReportSection, ReportTable
from molstrata.study.report import _relative_run_dirs


def test_run_dirs_become_paths_inside_the_study_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "results" / "standard"
    table = ReportTable("x_overview", "Table 1", "caption", ["label", "run_dir", "mae_meV"], [
        ["baseline", str(study / "runs" / "baseline"), 1.0],       # absolute
        ["cap", "results/standard/runs/cap-2000", 2.0],             # as the study was given
        ["outside", "/elsewhere/run", 3.0],
        ["none", None, 4.0],
    ])
    other = ReportTable("plain", "Table 2", "caption", ["a"], [["/abs/path"]])

    section = _relative_run_dirs(ReportSection("t", ["p"], [], [table, other]),
                                 tmp_path / "results" / "standard")

    assert [row[1] for row in section.tables[0].rows] == [
        "runs/baseline", "runs/cap-2000", "/elsewhere/run", None]
    assert section.tables[1] is other
    assert section.paragraphs == ["p"]
