"""A tiny study with every kind of analysis, end to end on a QM9 slice: it trains, evaluates,
compares, judges the claims, writes a report whose every figure renders, and resumes."""

from __future__ import annotations

import json
import re

import pytest

import molstrata.training.run as run_module
from molstrata.errors import MolstrataError
from molstrata.study import run_study, study_text

TINY_PLAN = """
[study]
title = "Tiny study"
description = "Every analysis on 300 molecules."
preset = "quick"

[defaults.data]
max_molecules = 300
excludes = ["F"]
[defaults.model]
n_atom_basis = 8
n_interactions = 1
n_rbf = 8
[defaults.training]
epochs = 2
batch_size = 32
[defaults.runtime]
threads = 1

[experiments.base]
title = "all sizes"
[experiments.cap]
vary = { option = "subset.cap", values = [8], name = "cap-{value}" }
[experiments.mid]
[experiments.mid.subset]
min_size = 13
max_size = 23
[experiments.w]
title = "weighted r = {value}"
vary = { option = "training.rate", values = [10.0], name = "w-r{value}" }
[experiments.w.subset]
min_size = 13
max_size = 23
[experiments.w.training]
loss_weighting = "size"
[experiments.big]
[experiments.big.subset]
min_size = 18

[[analyses]]
kind = "baseline"
reference = "base"
[[analyses]]
kind = "undersampling"
reference = "base"
runs = ["cap-*"]
[[analyses]]
kind = "rate_sweep"
reference = "mid"
runs = ["w-*"]
sizes = [18, 23]
[[analyses]]
kind = "directed"
reference = "base"
runs = ["big"]
[[analyses]]
kind = "final"
reference = "base"
runs = ["big"]
labels = { base = "default" }
[[analyses]]
kind = "compare"
name = "two"
runs = ["cap-8", "w-r10"]
"""

EXPERIMENTS = ["base", "cap-8", "mid", "w-r10", "big"]


@pytest.fixture(scope="module")
def study(tmp_path_factory, qm9_cache_dir):
    """The tiny study, run once interrupted in its third experiment and once to the end."""
    folder = tmp_path_factory.mktemp("study")
    plan = folder / "tiny.toml"
    plan.write_text(TINY_PLAN)
    out = folder / "out"
    real = run_module.run_epochs
    calls = []

    def interrupted_third(*args, **kwargs):
        calls.append(1)
        if len(calls) != 3:
            return real(*args, **kwargs)
        args = list(args)
        callback = args[9]

        def stop_after_first_epoch(state, improved):
            callback(state, improved)
            raise KeyboardInterrupt

        args[9] = stop_after_first_epoch
        return real(*args, **kwargs)

    run_module.run_epochs = interrupted_third
    try:
        with pytest.raises(MolstrataError, match="interrupted after epoch 1"):
            run_study(plan, out, cache_dir=str(qm9_cache_dir), progress=False, log=lambda m: None)
    finally:
        run_module.run_epochs = real
    log: list[str] = []
    result = run_study(plan, out, cache_dir=str(qm9_cache_dir), progress=False, log=log.append)
    return plan, out, result, log


def test_interrupted_experiment_resumes_and_finished_ones_are_reused(study):
    _, out, result, log = study
    text = "\n".join(log)
    assert "reusing 2 finished runs of 5" in text
    started = re.findall(r"== \[\d/5\] (\S+): ", text)
    assert started == ["mid/seed-0", "w-r10/seed-0", "big/seed-0"]  # base, cap-8 not again
    assert f"resuming {out / 'runs' / 'mid' / 'seed-0'}" in text
    for name in EXPERIMENTS:
        summary = json.loads((out / "runs" / name / "seed-0" / "run.json").read_text())
        assert summary["status"] == "finished" and summary["epochs_done"] == 2, name
    curve = (out / "runs" / "mid" / "seed-0" / "learning_curve.csv").read_text()
    assert [line.split(",")[0] for line in curve.strip().splitlines()[1:]] == ["1", "2"]
    assert "training noise not measured" in " ".join(
        c for a in result.analyses for f in a.findings for c in f.caveats)


def test_every_experiment_is_tested_on_the_same_molecules(study):
    _, _, result, _ = study
    ids = [tuple(r.predictions.ids) for r in result.results.values()]
    assert len(set(ids)) == 1 and len(ids[0]) == 30
    # targeted and capped training never touch the test split
    splits = {name: json.loads((result.out_dir / "runs" / name / "seed-0" / "split.json")
                               .read_text())["parts"] for name in EXPERIMENTS}
    test = set(splits["base"]["test"])
    for name, split in splits.items():
        assert set(split["test"]) == test
        assert not test & set(split["train"]) and not test & set(split["val"]), name
    sizes = result.results["big"].report.training.sizes
    assert min(sizes) >= 18
    assert max(result.results["cap-8"].report.training.sizes.values()) <= 8


def test_findings_are_computed_for_every_analysis(study):
    _, _, result, _ = study
    kinds = {a.kind: a for a in result.analyses}
    assert set(kinds) == {"baseline", "undersampling", "rate_sweep", "directed", "final",
                          "compare"}
    assert kinds["baseline"].findings[0].claim.startswith("Hypothesis 1")
    assert "rarity elasticity b1" in kinds["baseline"].findings[0].evidence
    primary = [f for a in result.analyses for f in a.findings if f.primary]
    assert [f.claim.split(":")[0] for f in primary][:4] == [
        "Hypothesis 1", "Hypothesis 2", "Hypothesis 3", "Hypothesis 4"]
    assert len(primary) == 5 and all(f.family.startswith("primary: one of 5 claims")
                                     for f in primary)
    for kind in ("undersampling", "rate_sweep", "directed", "final"):
        assert kinds[kind].findings, kind
        for finding in kinds[kind].findings:
            assert finding.holds in (True, False, None) and finding.evidence
    final = kinds["final"]
    mse = [r.report.overall.summary.mse for r in final.comparison.runs]
    assert final.findings[0].holds in (None, mse[0] < mse[1])
    assert [r.label for r in final.comparison.runs] == ["default", "big"]
    text = study_text(result)
    assert "Hypothesis 1" in text and "report.html" in text


def test_report_holds_every_table_and_figure(study):
    _, out, result, _ = study
    html = (out / "report" / "report.html").read_text()
    for label in ["Table 1", "Table 2", "Figure 1", "Figure 3", "Figure 4", "Figure 5",
                  "Figure 6", "Figure 7", "Figure 9", "Figure 10", "Figure A2", "Figure A3",
                  "Figure A4", "Figure A5"]:
        assert f"<b>{label}.</b>" in html, label
    assert "which of the study&#x27;s claims held" in html or "claims held" in html
    assert "http://" not in html and "https://" not in html
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', html)) == \
        html.count("<img ")
    markdown = (out / "report" / "report.md").read_text()
    assert "Table 2" in markdown and "Figure 10" in markdown
    tables = {p.name for p in (out / "report" / "tables").iterdir()}
    assert {"table1_elements.csv", "final_table2.csv", "findings.csv"} <= tables
    for analysis in ("undersampling", "rate_sweep", "directed", "final", "two"):
        assert (out / "comparisons" / analysis / "comparison.csv").is_file(), analysis


def test_report_renders_in_headless_chromium(study):
    from chromium import rendered_images

    _, out, _, _ = study
    html = out / "report" / "report.html"
    images = rendered_images(html)
    assert len(images) == html.read_text().count("<img ") >= 15
    assert all(image["rendered"] for image in images), [i["alt"] for i in images
                                                         if not i["rendered"]]


def test_changed_plan_is_refused_before_any_work(study, qm9_cache_dir):
    plan, out, _, _ = study
    before = sorted(p.stat().st_mtime for p in out.rglob("*.pt"))
    with pytest.raises(MolstrataError, match="was trained with training.lr"):
        run_study(plan, out, cache_dir=str(qm9_cache_dir), overrides=[("training", "lr", 0.1)],
                  progress=False, log=lambda m: None)
    assert sorted(p.stat().st_mtime for p in out.rglob("*.pt")) == before
