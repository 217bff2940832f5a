"""The study's experiments as plans over the stages: describe, train, evaluate, compare, report.

A plan (plan.py) is a TOML file of named experiments and the analyses drawn from them; the
thesis' study ships as the presets `seed` (all of QM9) and `quick` (the same in miniature),
listed by presets.py. runner.py runs a plan resumably (`run_study`; from Python with objects
back: `molstrata.run_study`), with several workers sharing a work queue (queue.py);
findings.py tests the study's claims on the run's numbers, with each experiment's training
seeds (two-level intervals) and its convergence (training/convergence.py); curves.py is the
learning_curve analysis, and learning_curve.py builds the plan of `molstrata learning-curve`;
report.py writes the HTML report, results.py holds what a study computed.
"""

from importlib import import_module

_LAZY = {"AnalysisResult": "results", "StudyResult": "results", "StudyPlan": "plan",
         "load_plan": "plan", "plan_presets": "presets", "run_study": "runner",
         "study_text": "runner"}
"""Name -> its module, imported when first used: the package itself imports nothing, so that
`molstrata --help` (which lists the shipped plans) needs neither numpy nor torch."""

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"molstrata.study.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'molstrata.study' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
