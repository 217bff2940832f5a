"""The documentation: every relative link resolves to a file git tracks, the command-line
reference equals what the parsers produce, and the site builds in strict mode (where the
`docs` extra is installed)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from doclinks import ROOT, bad_links, links

from molstrata.cli import reference

CLI_PAGE = ROOT / "docs" / "cli.md"


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def _is_git_checkout(root: Path) -> bool:
    if shutil.which("git") is None:
        return False
    probe = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"],
                           capture_output=True, text=True)
    return probe.returncode == 0 and Path(probe.stdout.strip()).resolve() == root.resolve()


def test_links_are_found_in_text_but_not_in_code():
    text = ("See [a](a.md), ![b](img/b.png \"title\") and [c](<c.md>).\n"
            "[ref]: docs/e.md\n"
            "<img src=\"f.svg\"> `[not](code.md)`\n"
            "```\n[not](fenced.md)\n```\n")
    assert links(text) == ["a.md", "img/b.png", "c.md", "docs/e.md", "f.svg"]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_untracked_and_missing_targets_are_flagged(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "tracked.md").write_text("# tracked\n")
    (tmp_path / "docs" / "results" / "table.csv").write_text("a\n1\n")
    (tmp_path / "docs" / "untracked.md").write_text("# not added\n")
    (tmp_path / "README.md").write_text(
        "[tracked](docs/tracked.md) [folder](docs/results/) [anchor](docs/tracked.md#x)\n"
        "[untracked](docs/untracked.md) [missing](docs/missing.md)\n"
        "[web](https://example.org/x.md) [mail](mailto:a@b.c) [here](#top)\n"
        "[outside](../elsewhere.md)\n")
    (tmp_path / "docs" / "index.md").write_text("[up](../README.md) [table](results/table.csv)\n"
                                                "[gone](results/gone.png)\n")
    _git(tmp_path, "add", "README.md", "docs/tracked.md", "docs/index.md",
         "docs/results/table.csv")

    found = {(bad.page, bad.target): bad.reason for bad in bad_links(tmp_path)}

    assert found == {
        ("README.md", "docs/untracked.md"): "exists but git does not track it",
        ("README.md", "docs/missing.md"): "does not exist",
        ("README.md", "../elsewhere.md"): "points outside the repository",
        ("docs/index.md", "results/gone.png"): "does not exist",
    }
    working_tree = {(bad.page, bad.target) for bad in bad_links(tmp_path, working_tree=True)}
    assert ("README.md", "docs/untracked.md") not in working_tree


@pytest.mark.skipif(not _is_git_checkout(ROOT), reason="not a git checkout of molstrata")
def test_every_relative_link_of_the_readme_and_docs_is_tracked():
    bad = bad_links(ROOT)
    assert not bad, "links to files git does not track (add them, or fix the link):\n" + \
        "\n".join(map(str, bad))


def test_the_cli_reference_is_what_the_parsers_produce():
    assert CLI_PAGE.read_text(encoding="utf-8") == reference.render(), (
        "docs/cli.md is out of date: regenerate it with "
        "`python -m molstrata.cli.reference > docs/cli.md`")


def test_the_cli_reference_names_every_command():
    page = CLI_PAGE.read_text(encoding="utf-8")
    for name, _ in reference.commands(reference.build_parser()):
        assert f"`{name}`" in page


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="the docs extra is not installed (pip install -e '.[docs]')")
def test_the_documentation_builds_in_strict_mode(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert (tmp_path / "site" / "cli" / "index.html").is_file()
