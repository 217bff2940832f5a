"""What a study computed: the results the runner builds and the report draws.

Their own module so that runner.py (which makes them) and report.py (which reads them) each
import this one and not each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from molstrata.data.molecules import Molecules
from molstrata.evaluation.compare import Comparison
from molstrata.evaluation.results import RunResult
from molstrata.study.findings import Finding
from molstrata.study.plan import StudyPlan


@dataclass(frozen=True)
class AnalysisResult:
    """One analysis of the plan: its comparison (None for a single run) and its findings."""

    name: str
    kind: str
    title: str
    experiments: tuple[str, ...]
    comparison: Comparison | None
    findings: list[Finding]
    out_dir: Path | None


@dataclass(frozen=True)
class StudyResult:
    """Everything a study computed and where it wrote it."""

    plan: StudyPlan
    out_dir: Path
    results: dict[str, RunResult]
    analyses: list[AnalysisResult]
    report_files: list[Path]
    seconds: float
    trained_seconds: float
    molecules: Molecules  # the dataset every experiment was tested on (a slice of it)
    still_learning: dict[str, str] = field(default_factory=dict)
    """experiment -> why its models were still learning at the end (training.convergence)."""
