"""The study's experiments as plans over the stages: describe, train, evaluate, compare, report.

A plan (plan.py) is a TOML file of named experiments and the analyses drawn from them; the
thesis' study ships as the presets `seed` (all of QM9) and `quick` (the same in miniature).
runner.py runs a plan resumably, findings.py tests the study's claims on the run's numbers,
report.py writes the HTML report.
"""

from molstrata.study.plan import StudyPlan, load_plan, plan_presets
from molstrata.study.runner import StudyResult, run_study, study_text

__all__ = ["StudyPlan", "StudyResult", "load_plan", "plan_presets", "run_study", "study_text"]
