"""A results page from a finished study: its report's Markdown, figures and CSV tables, and a
front page with the machine, the wall time, the commit and the verdicts.

    python bench/results_page.py STUDY_DIR DEST --command "molstrata study ..." \
        --wall-minutes 95 [--commit REV] [--note "one paragraph"]

STUDY_DIR is the study's --out folder (its report/ is copied, its runs are not: checkpoints
and predictions stay with whoever ran it); DEST becomes e.g. docs/results/standard/.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import subprocess
from pathlib import Path

import torch
from schnetpack_pipeline import cpu_model  # bench/ is on sys.path

from molstrata._files import atomic_write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--command", required=True, help="the command that ran the study")
    parser.add_argument("--wall-minutes", type=float, required=True,
                        help="wall time of the whole study, as measured")
    parser.add_argument("--commit", default=None, help="default: this checkout's HEAD")
    parser.add_argument("--note", default="", help="a paragraph for the front page")
    args = parser.parse_args()
    report = args.study / "report"
    if not (report / "report.md").is_file():
        raise SystemExit(f"{report / 'report.md'} is missing: run the study to the end first")
    commit = args.commit or subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                                           capture_output=True, text=True).stdout.strip()
    args.dest.mkdir(parents=True, exist_ok=True)
    for folder in ("figures", "tables"):
        shutil.rmtree(args.dest / folder, ignore_errors=True)
        shutil.copytree(report / folder, args.dest / folder)
    shutil.copy2(report / "report.md", args.dest / "report.md")
    with open(report / "tables" / "findings.csv", newline="", encoding="utf-8") as handle:
        findings = list(csv.DictReader(handle))
    lines = [
        f"# Results: `{args.command}`", "",
        f"- **machine:** {cpu_model()}, {len(os.sched_getaffinity(0))} cores, "
        f"{platform.system()} {platform.machine()}; torch {torch.__version__}",
        f"- **wall time:** {args.wall_minutes:.0f} min for the whole study (training, "
        "evaluation, report)",
        f"- **code:** commit {commit}",
        "- **the full report:** [report.md](report.md) (figures in figures/, every table as "
        "CSV in tables/)", "",
    ]
    if args.note:
        lines += [args.note, ""]
    lines += ["## The claims", "",
              "| analysis | claim | here | thesis | agreement | evidence |",
              "|---|---|---|---|---|---|"]
    for row in findings:
        cells = [row["analysis"], row["claim"], f"**{row['verdict']}**", row["thesis"],
                 row["agreement"], row["evidence"]]
        lines.append("| " + " | ".join(c.replace("|", "/").replace("\n", " ")
                                          for c in cells) + " |")
    atomic_write_text(args.dest / "README.md", "\n".join(lines) + "\n")
    print(f"wrote {args.dest}")


if __name__ == "__main__":
    main()
