"""The analysis kinds: plan.ANALYSES is the one list; the claims and the report sections of
each kind are keyed by the same names, so a kind added to one registry only is caught here
rather than as a KeyError at the end of a study's training."""

from molstrata.study import findings, plan, report


def test_every_analysis_kind_has_its_claims_and_its_report_section():
    kinds = set(plan.ANALYSES)
    assert set(findings.FINDINGS) == kinds, "findings.FINDINGS and plan.ANALYSES disagree"
    assert set(report.SECTIONS) == kinds, "report.SECTIONS and plan.ANALYSES disagree"


def test_every_kind_a_plan_accepts_is_analysed_and_reported():
    """Each kind parses in a plan with the experiments it asks for, and its title is the
    registry's description."""
    experiments = {"a": {"training": {"epochs": 1}}, "b": {"training": {"epochs": 2}}}
    for kind, spec in plan.ANALYSES.items():
        analysis = {"kind": kind, "runs": ["b"]}
        if spec.needs_reference or spec.min_experiments > 1:
            analysis["reference"] = "a"
        parsed = plan.parse_plan({"experiments": experiments, "analyses": [analysis]},
                                 "registries", "test")
        assert parsed.analyses[0].title == spec.description
