"""A user error names its fix in the caller's terms: Python and config names from the library,
the command line's own flags from the command line."""

import pickle

import pytest

from molstrata.cli import main
from molstrata.errors import MolstrataError, OptionError


def test_an_option_error_names_the_option_as_python_does():
    error = OptionError("min_stratum", "must be 0 or more, got -1")
    assert str(error) == "min_stratum must be 0 or more, got -1"
    assert isinstance(error, MolstrataError)
    again = pickle.loads(pickle.dumps(error))
    assert (again.option, again.problem) == (error.option, error.problem)


def _python_error(call) -> str:
    with pytest.raises(MolstrataError) as raised:
        call()
    return str(raised.value)


def test_library_errors_name_no_command_line_flag(tmp_path, tiny_molecules):
    """They named --workers, --min-stratum, --unit ... to Python callers, who have none."""
    from molstrata.data.datasets import load_dataset
    from molstrata.deploy.predict import predict_files
    from molstrata.evaluation.domain import applicability
    from molstrata.evaluation.stratified import TrainingCounts
    from molstrata.study.data_value import plan_text as data_value_plan
    from molstrata.study.learning_curve import plan_text as curve_plan
    from molstrata.study.runner import run_study

    curve = {"sizes": [10, 20, 40], "epochs": 1, "min_steps": 0, "replicates": 1,
             "target_mae": 43.0, "max_molecules": None, "preset": None}
    value = {"strata": ["size:9"], "fractions": [0.0], "epochs": 1, "replicates": 1,
             "max_molecules": None, "preset": None}
    training = TrainingCounts.from_molecules(tiny_molecules)
    messages = {
        "workers must be": lambda: run_study("quick", tmp_path / "s", workers=0),
        "min_stratum must be": lambda: applicability(tiny_molecules, training, min_stratum=-1),
        "batch_size must be": lambda: predict_files(["m.pt"], ["x.xyz"], batch_size=0),
        "unit applies to a property read from a file": lambda: load_dataset("qm9", unit="eV"),
        "unit needs the property": lambda: load_dataset(tmp_path / "x.xyz", unit="eV"),
        "sizes needs at least 3": lambda: curve_plan(**{**curve, "sizes": [1, 2]}),
        "target_mae must be above 0": lambda: curve_plan(**{**curve, "target_mae": 0.0}),
        "replicates must be >= 1": lambda: data_value_plan(**{**value, "replicates": 0}),
        "strata names no stratum": lambda: data_value_plan(**{**value, "strata": []}),
    }
    for expected, call in messages.items():
        message = _python_error(call)
        assert message.startswith(expected) and "--" not in message, message


@pytest.mark.parametrize(("argv", "expected"), [
    (["learning-curve", "--dry-run", "--sizes", "1", "2"], "--sizes needs at least 3"),
    (["learning-curve", "--dry-run", "--sizes", "10", "20", "40", "--target-mae", "0"],
     "--target-mae must be above 0"),
    (["data-value", "--dry-run", "--strata", "size:9", "--replicates", "0"],
     "--replicates must be >= 1"),
])
def test_the_command_line_names_its_own_flag(argv, expected, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"molstrata: error: {expected}" + err.split(expected, 1)[1]
    assert err.count("\n") == 1


def test_unknown_options_point_at_the_help_of_their_command(capsys):
    for argv, command in ((["evaluate", "run", "--bogus"], "molstrata evaluate"),
                          (["data", "describe", "--bogus"], "molstrata data describe"),
                          (["train", "--bogus"], "molstrata train")):
        with pytest.raises(SystemExit) as raised:
            main(argv)
        err = capsys.readouterr().err
        assert raised.value.code == 2 and err.startswith(f"{command}: error: unrecognized")
        assert err.endswith(f"(see: {command} --help)\n")
