"""A run's length is one choice, epochs or a time budget, whatever spelling sets it: a command
line's shortcut or --set, a config file, a plan's vary, a sweep's trial, Python. Each spelling
of `epochs` on a preset with a budget gives that many epochs, or a one-line refusal; never both
fields set. The shortcut table and the resume-safe list come from the fields' own metadata."""

import dataclasses

import pytest

from molstrata.cli import build_parser, main
from molstrata.cli.train import _train_config
from molstrata.errors import MolstrataError
from molstrata.study.plan import parse_plan
from molstrata.sweep.config import sweep_from_dict
from molstrata.sweep.space import apply
from molstrata.training.config import (
    PRESETS,
    RESULT_NEUTRAL,
    SHORTCUTS,
    OptimConfig,
    TrainConfig,
    preset,
)

BUDGET = "accurate"
assert PRESETS[BUDGET]["training"]["time_budget"] > 0  # the preset these tests rely on


def train_config(*argv: str) -> TrainConfig:
    return _train_config(build_parser().parse_args(["train", "--preset", BUDGET, *argv]))


def assert_epochs(config: TrainConfig, epochs: int) -> None:
    assert (config.training.epochs, config.training.time_budget) == (epochs, None)


@pytest.mark.parametrize("argv", [["--epochs", "2"], ["--set", "training.epochs=2"]])
def test_command_line_epochs_replace_the_presets_budget(argv):
    assert_epochs(train_config(*argv), 2)


def test_command_line_budget_replaces_the_presets_epochs():
    config = _train_config(build_parser().parse_args(
        ["train", "--preset", "quick", "--set", "training.time_budget=90s"]))
    assert (config.training.epochs, config.training.time_budget) == (None, 90.0)


@pytest.mark.parametrize("argv", [
    ["--epochs", "2", "--time-budget", "1m"],
    ["--epochs", "2", "--set", "training.time_budget=60"],
    ["--set", "training.epochs=2", "--set", "training.time_budget=1m"],
])
def test_both_lengths_on_one_command_line_are_refused_in_one_line(argv, capsys, tmp_path):
    with pytest.raises(MolstrataError, match="epochs or training.time_budget, not both"):
        train_config(*argv)
    code = main(["train", "--preset", BUDGET, "--out", str(tmp_path / "run"), *argv])
    err = capsys.readouterr().err
    assert code != 0 and len(err.strip().splitlines()) == 1 and "not both" in err
    assert not (tmp_path / "run").exists()


def test_a_config_file_gives_one_length_or_is_refused(tmp_path):
    one = tmp_path / "one.toml"
    one.write_text("[training]\ntime_budget = 120\nscheduler = \"cosine\"\n")
    assert TrainConfig.from_toml(one).validate().training.epochs is None
    both = tmp_path / "both.toml"
    both.write_text("[training]\nepochs = 3\ntime_budget = 120\n")
    with pytest.raises(MolstrataError, match=f"{both}: give training.epochs or"):
        TrainConfig.from_toml(both)


def test_a_saved_config_of_an_older_version_with_both_trains_for_its_budget(tmp_path):
    """molstrata before this rule wrote `epochs = 30` beside a budget in every run's
    config.toml; the budget is what that run trained for, and its config still loads."""
    old = tmp_path / "config.toml"
    old.write_text(preset(BUDGET).to_toml().replace("[training]\n",
                                                    "[training]\nepochs = 30\n"))
    assert "epochs = 30" in old.read_text() and "time_budget = 1800.0" in old.read_text()
    config = TrainConfig.from_toml(old, saved=True).validate()
    assert (config.training.epochs, config.training.time_budget) == (None, 1800.0)


def test_a_written_config_holds_one_length_and_reads_back_equal(tmp_path):
    for name in PRESETS:
        config = preset(name)
        text = config.to_toml()
        assert ("epochs = " in text) != ("time_budget = " in text), name
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        assert TrainConfig.from_toml(path) == config


def test_a_plan_varying_epochs_on_a_budget_preset_trains_each_length():
    raw = {"study": {"title": "lengths"},
           "experiments": {"e": {"preset": BUDGET,
                                 "vary": {"option": "training.epochs", "values": [1, 3]}}}}
    plan = parse_plan(raw, "lengths", "plan")
    assert [(e.config.training.epochs, e.config.training.time_budget)
            for e in plan.experiments] == [(1, None), (3, None)]
    refused = {**raw, "experiments": {"e": {"preset": BUDGET,
                                            "training": {"epochs": 2, "time_budget": 60}}}}
    with pytest.raises(MolstrataError, match="not both"):
        parse_plan(refused, "lengths", "plan")


def test_a_sweep_over_epochs_on_a_budget_base_trains_each_length():
    sweep = sweep_from_dict({"sweep": {"preset": BUDGET, "objective": "global_mae",
                                       "space": {"training.epochs": {"choices": [2, 4]}}}})
    assert sweep.base.training.time_budget == 1800.0
    assert_epochs(apply(sweep.base, {"training.epochs": 4}), 4)


def test_a_python_call_with_both_lengths_is_refused_before_anything_is_written(tmp_path):
    import molstrata

    with pytest.raises(MolstrataError, match="not both"):
        molstrata.train(BUDGET, out=tmp_path / "run", epochs=2, time_budget=60)
    assert not (tmp_path / "run").exists()


def test_validate_refuses_a_config_built_with_both_lengths_or_none():
    for training in (OptimConfig(time_budget=60.0), OptimConfig(epochs=None)):
        with pytest.raises(MolstrataError, match="set exactly one"):
            TrainConfig(training=training).validate()


def test_shortcuts_and_the_resume_safe_list_come_from_the_fields_metadata():
    """Each shortcut is the train parser's `--name` and sets the field whose metadata names
    it (test_cli checks that no other argument sets a field); the resume-safe fields are
    exactly the neutral ones."""
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {a.dest: a.option_strings for a in train._actions}
    for name in SHORTCUTS:
        assert "--" + name.replace("_", "-") in flags[name]
    for name, (section, key) in SHORTCUTS.items():
        meta = {f.name: f.metadata
                for f in dataclasses.fields(getattr(TrainConfig(), section))}[key]
        assert meta["shortcut"] in (True, name)
    neutral = {(section, f.name) for section in ("data", "subset", "model", "training",
                                                  "runtime")
               for f in dataclasses.fields(getattr(TrainConfig(), section))
               if f.metadata.get("neutral")}
    assert set(RESULT_NEUTRAL) == neutral == {("runtime", "device"), ("runtime", "threads"),
                                              ("data", "cache_dir")}
