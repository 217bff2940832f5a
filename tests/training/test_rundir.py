"""The run directory's owner: what state a folder is in, and the one-line refusals of a
command that would misuse it (resuming a finished run, training into a folder of other files)."""

from __future__ import annotations

import json

import pytest

from molstrata.cli import main
from molstrata.errors import MolstrataError
from molstrata.training.config import TrainConfig
from molstrata.training.run import train
from molstrata.training.rundir import RunPaths, read_learning_curve, read_run_config

TINY = ["--set", "data.max_molecules=300", "--set", "model.n_atom_basis=16",
        "--set", "model.n_interactions=2", "--set", "training.batch_size=16",
        "--epochs", "1", "--threads", "1", "-q"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, qm9_cache_dir):
    """A tiny run trained to its end (one epoch)."""
    run = tmp_path_factory.mktemp("runs") / "finished"
    assert main(["train", "--cache-dir", str(qm9_cache_dir), "-o", str(run), *TINY]) == 0
    return run


def test_resuming_a_finished_run_is_refused_in_one_line_with_the_way_on(finished, capsys):
    before = (finished / "run.json").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", str(finished)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{finished} is finished (finished after 1 epoch)" in err
    assert f"molstrata train --init-from {finished} -o NEW_RUN" in err
    with pytest.raises(MolstrataError, match="is finished") as python:
        train(None, finished, resume=True, progress=False)
    assert f"molstrata.train(init_from='{finished}', out='NEW_RUN')" in str(python.value)
    assert (finished / "run.json").read_text() == before


def test_training_into_a_folder_of_other_files_is_refused_in_one_line(tmp_path, qm9_cache_dir,
                                                                      capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("keep me")
    code = main(["train", "--cache-dir", str(qm9_cache_dir), "-o", str(folder), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert (f"{folder} is not empty and holds no molstrata run; give an empty folder or a new "
            "path with --out") in err
    assert sorted(p.name for p in folder.iterdir()) == ["todo.txt"]


def test_a_finished_run_named_as_a_new_runs_folder_says_how_to_train_it_further(finished):
    problem = RunPaths(finished).new_run_problem()
    assert problem.cli == (f"{finished} already holds a finished run; train it further as a "
                           f"new run with --init-from {finished}, or choose another --out")
    assert str(problem) == (f"{finished} already holds a finished run; train it further as a "
                            f"new run with init_from='{finished}' and another out=")


def test_an_interrupted_run_says_how_to_go_on_in_the_callers_terms_and_resumes(
        tmp_path, qm9_cache_dir, capsys):
    """Python callers are told molstrata.resume(RUN), the command line `--resume RUN`; a
    resumed run ends where an uninterrupted one would, and is then finished."""
    import molstrata
    from molstrata.errors import Interrupted
    from molstrata.training.config import preset

    config = preset("quick")
    config.apply([("data", "cache_dir", str(qm9_cache_dir)), ("data", "max_molecules", 300),
                  ("model", "n_atom_basis", 16), ("model", "n_interactions", 2),
                  ("training", "epochs", 2), ("runtime", "threads", 1)], "test").validate()
    run = tmp_path / "run"

    def stop_after_first_epoch(row):
        raise KeyboardInterrupt

    with pytest.raises(Interrupted) as stopped:
        train(config, run, progress=False, on_epoch=[stop_after_first_epoch])
    assert str(stopped.value) == (f"interrupted after epoch 1; continue with: "
                                  f"molstrata.resume('{run}')")
    assert stopped.value.cli == (f"interrupted after epoch 1; continue with: "
                                 f"molstrata train --resume {run}")
    with pytest.raises(MolstrataError, match=r"molstrata\.resume\(") as again:
        molstrata.train(config, out=run, progress=False)
    assert "--resume" not in str(again.value) and "--resume" in again.value.cli
    code = main(["train", "--config", str(run / "config.toml"), "-o", str(run)])
    assert code == 2 and f"continue it with --resume {run}" in capsys.readouterr().err
    with pytest.raises(MolstrataError, match="may change only"):
        molstrata.resume(run, progress=False, lr=1e-2)
    resumed = molstrata.resume(run, progress=False, threads=1)
    assert resumed.summary["status"] == "finished" and resumed.summary["epochs_done"] == 2


def test_an_error_keeps_its_command_line_spelling_between_processes():
    import pickle

    error = MolstrataError("call resume()", cli="run --resume")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.cli) == (MolstrataError, "call resume()",
                                                  "run --resume")


def test_resume_refuses_an_option_named_as_the_user_typed_it(finished, capsys):
    capsys.readouterr()
    assert main(["train", "--resume", str(finished), "--property", "gap"]) == 2
    assert "drop --property" in capsys.readouterr().err
    assert main(["train", "--resume", str(finished), "--target", "gap"]) == 2
    assert "drop --target" in capsys.readouterr().err


def test_which_folders_a_new_run_may_be_written_to(tmp_path):
    assert RunPaths(tmp_path / "new").new_run_problem() is None
    assert RunPaths(tmp_path).new_run_problem() is None  # empty
    (tmp_path / "tensorboard").mkdir()  # a tracker opened before training (a sweep's trial)
    assert RunPaths(tmp_path).new_run_problem() is None
    (tmp_path / "file").write_text("x")
    assert "is a file" in str(RunPaths(tmp_path / "file").new_run_problem())
    assert "is not empty" in str(RunPaths(tmp_path).new_run_problem())
    (tmp_path / "config.toml").write_text(TrainConfig().to_toml())
    assert "already holds a run; continue it with --resume" in \
        RunPaths(tmp_path).new_run_problem().cli


def test_the_readers_read_what_training_wrote(finished):
    config = read_run_config(finished)
    assert config.training.epochs == 1 and config.model.n_atom_basis == 16
    (row,) = read_learning_curve(finished)
    assert row["epoch"] == 1 and isinstance(row["epoch"], int)
    assert row["val_mae_meV"] > 0
    paths = RunPaths(finished)
    assert paths.evaluation_problem("test", ["metrics.json"]) == "is missing"
    with pytest.raises(MolstrataError, match="is not a molstrata run directory"):
        read_run_config(finished.parent)
    assert json.loads(paths.summary.read_text())["status"] == "finished"
