"""The study's experiments as plans over the stages: describe, train, evaluate, compare, report.

A plan (plan.py) is a TOML file of named experiments and the analyses drawn from them; the
thesis' study ships as the presets `seed` (all of QM9) and `quick` (the same in miniature).
runner.py runs a plan resumably, with several workers sharing a work queue (queue.py);
findings.py tests the study's claims on the run's numbers, with each experiment's training
seeds (two-level intervals) and its convergence (training/convergence.py); curves.py is the
learning_curve analysis, and learning_curve.py builds the plan of `molstrata learning-curve`;
report.py writes the HTML report, results.py holds what a study computed.
"""

import sys
from importlib import import_module
from types import ModuleType

from molstrata.study.plan import StudyPlan, load_plan, plan_presets

_LAZY = {"AnalysisResult": "results", "StudyResult": "results", "run_study": "runner",
         "study_text": "runner"}
"""Names imported when first used: the plans alone (and `molstrata --help`) need no torch."""


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"molstrata.study.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'molstrata.study' has no attribute {name!r}")


__all__ = ["AnalysisResult", "StudyPlan", "StudyResult", "load_plan", "plan_presets", "run_study",
           "study_text"]


class _CallableStudy(ModuleType):
    """This package, callable: `molstrata.study("quick", out=...)` runs a study with
    `molstrata.api.study` (the package and the function share the name `molstrata.study`)."""

    def __call__(self, plan, **options):
        from molstrata.api import study

        return study(plan, **options)


sys.modules[__name__].__class__ = _CallableStudy
