"""A results page from a finished study: its report's Markdown, figures and CSV tables, and a
front page with the command, the machine, the wall time, the date, the commit and the verdicts.

    python bench/results_page.py STUDY_DIR DEST --command "molstrata study ..." \
        --wall-minutes 95 [--commit REV] [--date YYYY-MM-DD] [--note "one paragraph"]

STUDY_DIR is the study's --out folder (its report/ is copied, its runs are not: checkpoints
and predictions stay with whoever ran it); DEST becomes e.g. docs/results/standard/, tracked by
git. Run it on the machine that ran the study: the page names this machine. Runs are named by
their path inside STUDY_DIR, also where the report was written with the path the study was
given (reports of molstrata before it named runs so).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path, PurePath

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
    parser.add_argument("--date", default=None,
                        help="when the study ran (default: the date its report was written)")
    parser.add_argument("--note", default="", help="a paragraph for the front page")
    args = parser.parse_args()
    report = args.study / "report"
    if not (report / "report.md").is_file():
        raise SystemExit(f"{report / 'report.md'} is missing: run the study to the end first")
    commit = args.commit or head_commit()
    args.dest.mkdir(parents=True, exist_ok=True)
    for folder in ("figures", "tables"):
        shutil.rmtree(args.dest / folder, ignore_errors=True)
        shutil.copytree(report / folder, args.dest / folder)
    shutil.copy2(report / "report.md", args.dest / "report.md")
    relative_run_dirs(args.dest, args.study)
    date = args.date or time.strftime("%Y-%m-%d",
                                      time.localtime((report / "report.md").stat().st_mtime))
    with open(report / "tables" / "findings.csv", newline="", encoding="utf-8") as handle:
        findings = list(csv.DictReader(handle))
    lines = [
        f"# Results: `{args.command}`", "",
        f"- **machine:** {cpu_model()}, {len(os.sched_getaffinity(0))} cores, "
        f"{platform.system()} {platform.machine()}; {gpu_name()}; torch {torch.__version__}",
        f"- **wall time:** {args.wall_minutes:.0f} min for the whole study (training, "
        "evaluation, report)",
        f"- **date:** {date}",
        f"- **code:** commit {commit}",
        "- **the full report:** [report.md](report.md) (figures in figures/, every table as "
        "CSV in tables/)", "",
    ]
    if args.note:
        lines += [args.note, ""]
    lines += ["## The claims", "",
              "| analysis | claim | here | family | thesis | agreement | evidence |",
              "|---|---|---|---|---|---|---|"]
    for row in findings:
        cells = [row["analysis"], row["claim"], f"**{row['verdict']}**", row.get("family", ""),
                 row["thesis"], row["agreement"], row["evidence"]]
        lines.append("| " + " | ".join(c.replace("|", "/").replace("\n", " ")
                                          for c in cells) + " |")
    atomic_write_text(args.dest / "README.md", "\n".join(lines) + "\n")
    print(f"wrote {args.dest}")


def head_commit() -> str:
    """This checkout's HEAD, saying so where molstrata/ has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    if git("status", "--porcelain", "--untracked-files=no", "--", "molstrata"):
        head += " (with uncommitted changes to molstrata/)"
    return head


def gpu_name() -> str:
    """The GPU torch sees, or 'no GPU'."""
    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}"
    return "no GPU"


def relative_run_dirs(dest: Path, study: Path) -> None:
    """Name every run in DEST's tables (their run_dir column) and report.md by its path inside
    the study folder instead of the path on the machine that ran it."""
    renamed: dict[str, str] = {}
    for table in sorted((dest / "tables").glob("*.csv")):
        with open(table, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        if not rows or "run_dir" not in rows[0]:
            continue
        column = rows[0].index("run_dir")
        for row in rows[1:]:
            inside = path_inside(row[column], study)
            if inside != row[column]:
                renamed[row[column]] = row[column] = inside
        with open(table, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle, lineterminator="\n").writerows(rows)
    text = (dest / "report.md").read_text(encoding="utf-8")
    for old in sorted(renamed, key=len, reverse=True):
        text = text.replace(old, renamed[old])
    atomic_write_text(dest / "report.md", text)


def path_inside(path: str, study: Path) -> str:
    """`path` as a path inside `study`: its longest tail that names a folder of the study
    ('/home/me/results/standard/runs/baseline' -> 'runs/baseline'); unchanged if none does."""
    parts = PurePath(path).parts
    if PurePath(path).is_absolute():
        parts = parts[1:]
    for start in range(len(parts)):
        tail = PurePath(*parts[start:])
        if (study / tail).is_dir():
            return tail.as_posix()
    return path


if __name__ == "__main__":
    main()
