"""Study plans: the shipped presets follow the thesis, and bad plans are refused clearly."""

from __future__ import annotations

import pytest

from molstrata.errors import MolstrataError
from molstrata.study.plan import SPLIT_OPTIONS, load_plan, parse_plan, plan_presets
from molstrata.training.config import preset


def test_presets_are_shipped():
    assert {"seed", "quick"} <= set(plan_presets())


def test_seed_plan_is_the_thesis_study():
    plan = load_plan("seed")
    by_name = {e.name: e.config for e in plan.experiments}
    default = preset("seed-default")
    baseline = by_name["baseline"]
    assert baseline.to_dict() == default.to_dict()
    assert baseline.data.max_molecules is None  # all of QM9
    assert [by_name[f"cap-{c}"].subset.cap for c in (2000, 4000, 6000)] == [2000, 4000, 6000]
    for weighting in ("size", "size_frequency"):
        rates = [by_name[f"{weighting}-r{r}"].training.rate for r in (1, 2, 5, 10, 20)]
        assert rates == [1, 2, 5, 10, 20]
        for r in (1, 2, 5, 10, 20):
            config = by_name[f"{weighting}-r{r}"]
            assert config.training.loss_weighting == weighting
            assert (config.subset.min_size, config.subset.max_size) == (13, 23)
    plain = by_name["sizes13-23"]
    assert plain.training.rate == 0 and (plain.subset.min_size, plain.subset.max_size) == (13, 23)
    assert by_name["directed"].subset.min_size == 18  # more than 17 atoms
    assert by_name["custom"].to_dict() == preset("seed-custom").to_dict()
    kinds = [a.kind for a in plan.analyses]
    assert kinds == ["baseline", "undersampling", "rate_sweep", "rate_sweep", "directed", "final"]
    sweep = next(a for a in plan.analyses if a.name == "rate-size")
    assert sweep.reference == "sizes13-23" and len(sweep.runs) == 5
    final = next(a for a in plan.analyses if a.kind == "final")
    assert final.experiments == ("baseline", "custom") and final.label("baseline") == "default"


def test_quick_plan_has_every_analysis_of_seed_on_a_slice():
    quick, seed = load_plan("quick"), load_plan("seed")
    assert [a.kind for a in quick.analyses] == [a.kind for a in seed.analyses]
    assert {e.group for e in quick.experiments} == {e.group for e in seed.experiments}
    assert all(e.config.data.max_molecules == 8000 for e in quick.experiments)


def test_every_experiment_shares_the_split():
    for name in plan_presets():
        configs = [e.config.data for e in load_plan(name).experiments]
        for key in SPLIT_OPTIONS:
            assert len({repr(getattr(c, key)) for c in configs}) == 1, (name, key)


def test_overrides_apply_to_every_experiment_last():
    plan = load_plan("quick", [("training", "epochs", 2), ("runtime", "threads", 1)])
    assert {e.config.training.epochs for e in plan.experiments} == {2}
    assert {e.config.runtime.threads for e in plan.experiments} == {1}


def test_titles_state_the_final_config_not_the_plan_file_s():
    """`custom` said "27 epochs" in a study run with --set training.epochs=3, which trained 3;
    the study's title said "8,000 QM9 molecules" of a study of another file."""
    shipped = load_plan("quick")
    assert "27 epochs" in shipped.experiment("custom").title
    assert "8,000-molecule slice" in shipped.title
    plan = load_plan("quick", [("training", "epochs", 1), ("data", "max_molecules", 500),
                               ("subset", "min_size", 20)])
    custom = plan.experiment("custom").title
    assert "1 epoch," in custom and "27" not in custom and "20 or more atoms" in custom
    assert "500-molecule slice" in plan.title and "8,000" not in plan.title
    assert "500-molecule" in plan.experiment("baseline").title
    assert "Sizes 20-23" in plan.experiment("size-r2").title
    for e in plan.experiments:
        assert "{" not in e.title, e.title


def test_plan_file_with_vary_and_patterns(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("""
[study]
title = "mine"
preset = "quick"
[defaults.training]
epochs = 3
[experiments.base]
[experiments.w]
title = "rate {value}"
vary = { option = "training.rate", values = [0.5, 4.0], name = "w{value}" }
[experiments.w.training]
loss_weighting = "size"
epochs = 5
[[analyses]]
kind = "rate_sweep"
reference = "base"
runs = ["w*"]
""")
    plan = load_plan(path)
    assert [e.name for e in plan.experiments] == ["base", "w0.5", "w4"]
    assert [e.title for e in plan.experiments[1:]] == ["rate 0.5", "rate 4"]
    assert plan.experiment("w4").config.training.rate == 4.0
    assert plan.experiment("w4").config.training.epochs == 5  # experiment beats defaults
    assert plan.experiment("base").config.training.epochs == 3
    assert plan.analyses[0].experiments == ("base", "w0.5", "w4")
    assert plan.name == "mine" and "rate_sweep" in plan.source


def _plan(**tables) -> dict:
    raw = {"study": {"preset": "quick"},
           "experiments": {"a": {}, "b": {"subset": {"cap": 10}}},
           "analyses": [{"kind": "undersampling", "reference": "a", "runs": ["b"]}]}
    raw.update(tables)
    return raw


@pytest.mark.parametrize(("change", "message"), [
    ({"extra": {}}, "unknown key 'extra' in top level"),
    ({"experiments": {}}, "lists no experiments"),
    ({"experiments": {"a": {"modle": {}}}}, "unknown key 'modle' in [experiments.a]"),
    ({"experiments": {"a": {"model": {"n_atom_basis": "big"}}}},
     "option model.n_atom_basis must be int"),
    ({"experiments": {"a": {"training": {"epochs": 0}}}}, "training.epochs must be >= 1"),
    ({"experiments": {"a": {}, "b": {"data": {"max_molecules": 500}}}},
     "sets data.max_molecules differently"),
    ({"experiments": {"a": {"vary": {"option": "rate", "values": [1]}}}},
     "vary.option must name one option as SECTION.KEY"),
    ({"experiments": {"a": {"vary": {"option": "training.rate", "values": []}}}},
     "vary.values must be a non-empty list"),
    ({"experiments": {"a b": {}}}, "must be letters, digits"),
    ({"experiments": {"a": {"vary": {"option": "training.rate", "values": [1],
                                      "name": "b"}}, "b": {}}}, "two experiments are named 'b'"),
    ({"analyses": [{"kind": "magic", "reference": "a"}]}, "kind 'magic' is unknown"),
    ({"analyses": [{"kind": "undersampling", "reference": "z", "runs": ["b"]}]},
     "reference 'z' is not an experiment"),
    ({"analyses": [{"kind": "undersampling", "reference": "a", "runs": ["cap-*"]}]},
     "runs pattern 'cap-*' matches no experiment"),
    ({"analyses": [{"kind": "directed", "runs": ["b"]}]}, "needs at least 2 experiments"),
    ({"analyses": [{"kind": "directed", "runs": ["a", "b"]}]}, "needs a reference experiment"),
    ({"analyses": [{"kind": "directed", "reference": "a", "runs": ["b"], "sizes": [18]}]},
     "sizes must be [min, max] atoms"),
    ({"experiments": {"a": {"title": "{training.nope} epochs"}, "b": {}}},
     "title '{training.nope} epochs' cannot be filled in"),
])
def test_bad_plans_are_refused_with_the_reason(change, message):
    with pytest.raises(MolstrataError) as error:
        parse_plan(_plan(**change), "mine", "plan mine.toml")
    assert message in str(error.value) and "mine.toml" in str(error.value)


def test_bad_plan_files(tmp_path):
    with pytest.raises(MolstrataError, match="does not exist"):
        load_plan(tmp_path / "missing.toml")
    with pytest.raises(MolstrataError, match="unknown study 'nope'"):
        load_plan("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\n")
    with pytest.raises(MolstrataError, match="is not valid TOML"):
        load_plan(bad)
