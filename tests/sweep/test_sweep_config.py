"""Sweep files and storage URLs: everything refused before any trial, with one line."""

import pytest

from molstrata.cli import main
from molstrata.errors import MolstrataError
from molstrata.sweep.config import sweep_from_dict

GOOD = """
[sweep]
objective = "macro_size_mae"
[sweep.space]
"training.lr" = {low = 1e-4, high = 1e-2, log = true}
"""


def cli(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def write(tmp_path, sweep_base):
    def write(sweep: str) -> str:
        path = tmp_path / "s.toml"
        path.write_text(sweep_base.format(cache=tmp_path / "cache", epochs=2) + sweep)
        return str(path)

    return write


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ("", "has no [sweep] table"),
        ("[sweep]\nobjective = 'macro_size_mae'\n", "[sweep.space] is empty"),
        (GOOD.replace("training.lr", "training.learning_rate"),
         "unknown option training.learning_rate"),
        (GOOD.replace("macro_size_mae", "median_mae"), "unknown objective 'median_mae'"),
        (GOOD.replace('"macro_size_mae"', '["global_mae", "global_mae"]'), "repeats a name"),
        (GOOD.replace('"macro_size_mae"', "[]"), "give an objective"),
        (GOOD.replace('"macro_size_mae"', '["global_mae", "worst_size_mae"]\npruner = "median"'),
         "Optuna prunes single-objective sweeps only"),
        (GOOD + "[sweep.extra]\n", "unknown [sweep] option 'extra'"),
        (GOOD.replace("[sweep]\n", "[sweep]\nsampler = 'cmaes'\n"), "sampler 'cmaes'"),
        (GOOD.replace("[sweep]\n", "[sweep]\nsampler = 'grid'\n"),
         "grid sampler needs finite values"),
        (GOOD.replace("[sweep]\n", "[sweep]\npruner = 'hyperband'\n"), "pruner 'hyperband'"),
        (GOOD.replace("[sweep]\n", "[sweep]\nn_trials = 0\n"), "n_trials must be at least 1"),
        (GOOD.replace("[sweep]\n", "[sweep]\nn_trials = 'many'\n"), "has the wrong type"),
        (GOOD.replace("[sweep]\n", "[sweep]\nheartbeat_s = 10\ngrace_s = 5\n"),
         "grace_s must be longer"),
        (GOOD.replace("[sweep]\n", "[sweep]\nenqueue = [{'training.lr' = 1.0}]\n"),
         "outside training.lr in [0.0001, 0.01], log"),
        (GOOD.replace("[sweep]\n", "[sweep]\nenqueue = [{'model.cutoff' = 4.0}]\n"),
         "not in [sweep.space]"),
        (GOOD.replace("[sweep]\n", "[sweep]\npreset = 'fast'\n"), "unknown preset 'fast'"),
        (GOOD + '"data.split" = {choices = [0.5]}\n', "data.split cannot be swept"),
        ("[sweep\n", "is not valid TOML"),
    ],
)
def test_bad_sweep_files_are_one_line(tmp_path, capsys, write, sweep, message):
    code, out, err = cli(capsys, "sweep", "--config", write(sweep),
                         "-o", tmp_path / "out")
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///{tmp}/no/such/folder/sweep.db", "cannot open the sweep storage"),
        ("mysql+pymysql://molstrata:s3cret@127.0.0.1:9/sweeps", "driver for this URL is not"),
        ("postgresql+psycopg://molstrata:s3cret@127.0.0.1:9/sweeps",
         "cannot open the sweep storage postgresql+psycopg://molstrata:***@127.0.0.1:9/sweeps"),
        ("nosuchdb://host/db", "cannot open the sweep storage nosuchdb://host/db"),
        ("not a url", "cannot open the sweep storage"),
    ],
)
def test_unusable_storage_is_one_line(tmp_path, capsys, write, url, message):
    code, out, err = cli(capsys, "sweep", "--config", write(GOOD), "-o",
                         tmp_path / "out", "--storage", url.format(tmp=tmp_path))
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and "s3cret" not in err
    assert not (tmp_path / "out").exists()


def test_the_sweep_file_sets_the_base_config(tmp_path):
    sweep = sweep_from_dict({
        "data": {"max_molecules": 500}, "training": {"loss_weighting": "size"},
        "sweep": {"preset": "seed-default", "objective": ["global_mae", "worst_size_mae"],
                  "sampler": "random", "n_trials": 4,
                  "enqueue": [{"training.rate": 10.0}],
                  "space": {"training.rate": {"low": 0.0, "high": 20.0},
                            "model": {"n_atom_basis": {"choices": [16, 38]}}}},
    }, name="weights")
    assert sweep.name == "weights" and sweep.settings.pruning == "none"
    assert sweep.base.model.n_atom_basis == 38 and sweep.base.data.neighbor_cutoff == 4.0
    assert sweep.base.data.max_molecules == 500
    config = sweep.trial_config({"training.rate": 10.0, "model.n_atom_basis": 16})
    assert config.training.rate == 10.0 and config.model.n_atom_basis == 16
    # runtime-only options may differ between workers; what the trials learn may not
    other = sweep_from_dict({"data": {"max_molecules": 500, "cache_dir": "/elsewhere"},
                             "training": {"loss_weighting": "size"},
                             "runtime": {"threads": 3, "track": ["tensorboard"]},
                             "sweep": {"preset": "seed-default",
                                       "objective": ["global_mae", "worst_size_mae"],
                                       "space": {"training.rate": {"low": 0.0, "high": 20.0},
                                                 "model.n_atom_basis": {"choices": [16, 38]}}}})
    assert other.spec() == sweep.spec()
    with pytest.raises(MolstrataError, match="n_trials must be at least 1"):
        sweep.with_settings(n_trials=0)


def test_sweep_help_says_validation_not_test(capsys):
    code, out, err = cli(capsys, "sweep", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "VALIDATION split, never on the test split" in text and "macro_size_mae" in text
