"""The command line on small data: outputs, and one-line errors that write nothing."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from ase import Atoms
from ase.io import write

from molstrata.cli import main


@pytest.fixture
def tiny_extxyz(tmp_path, tiny_molecules):
    """The tiny molecules as a plain-ASE extxyz with energies in kcal/mol in info['energy']."""
    path = tmp_path / "tiny.extxyz"
    frames = []
    for i in range(len(tiny_molecules)):
        numbers, positions = tiny_molecules.atoms_of(i)
        atoms = Atoms(numbers=numbers, positions=positions)
        atoms.info["energy"] = float(tiny_molecules.property("U0", "kcal/mol")[i])
        frames.append(atoms)
    write(path, frames, format="extxyz")
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_describe_a_user_file(tmp_path, tiny_extxyz, tiny_molecules, capsys):
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "data", "describe", "--dataset", tiny_extxyz,
                         "--property", "energy", "--unit", "kcal/mol", "--cap", "5", "-o", out_dir)
    assert code == 0, err
    assert "34 molecules" in out and "Table 1" in out and "Figure 1" in out
    names = {p.name for p in out_dir.iterdir()}
    assert {"element_frequency.csv", "size_histogram.csv", "size_element.csv",
            "size_histogram.png", "element_frequency.png", "size_element_heatmap.png",
            "size_histogram_capped.png", "summary.json", "values_per_size.csv",
            "value_flags.csv"} == names
    with open(out_dir / "size_histogram.csv") as handle:
        rows = {int(r["n_atoms"]): r for r in csv.DictReader(handle)}
    sizes, counts = np.unique(tiny_molecules.sizes, return_counts=True)
    assert sorted(rows) == sizes.tolist()
    for size, count in zip(sizes, counts):
        assert int(rows[size]["molecules"]) == count
        assert int(rows[size]["molecules_cap_5"]) == min(count, 5)
    with open(out_dir / "element_frequency.csv") as handle:
        shares = {r["element"]: float(r["share_percent"]) for r in csv.DictReader(handle)}
    assert shares["F"] == pytest.approx(100 * 3 / 34)
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["properties"] == {"energy": "eV"} and summary["n_molecules_after_cap"] < 34
    for png in out_dir.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_describe_qm9_with_filters(tmp_path, qm9_cache_dir, capsys):
    code, out, err = run(capsys, "data", "describe", "--cache-dir", qm9_cache_dir,
                         "--min-size", "25", "--contains", "O", "-o", tmp_path / "o")
    assert code == 0, err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["size_range"][0] >= 25 and "F" not in summary["elements"]


def test_split_and_export(tmp_path, tiny_extxyz, capsys):
    split = tmp_path / "split.json"
    code, out, err = run(capsys, "data", "split", "--dataset", tiny_extxyz, "--counts", "20",
                         "7", "7", "--seed", "3", "-o", split)
    assert code == 0, err
    parts = json.loads(split.read_text())["parts"]
    assert [len(parts[k]) for k in ("train", "val", "test")] == [20, 7, 7]
    exported = tmp_path / "f.extxyz"
    code, out, err = run(capsys, "data", "export", "--dataset", tiny_extxyz, "--property",
                         "energy", "--unit", "eV", "--contains", "F", "-o", exported)
    assert code == 0, err
    assert "wrote 3 molecules" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "{tmp}/missing.extxyz"], "missing.extxyz"),
        (["--dataset", "{bad}"], "bad.extxyz"),
        (["--dataset", "{xyz}", "--property", "dipole", "--unit", "eV"], "dipole"),
        (["--dataset", "{xyz}", "--property", "energy", "--unit", "parsec"], "unknown unit"),
        (["--property", "U7"], "unknown property 'U7'"),
        (["--min-size", "40"], "no molecule left"),
        (["--contains", "Xx"], "unknown element 'Xx'"),
        (["--cap", "0"], "cap must be at least 1"),
        (["--unit", "eV"], "--unit"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path, tiny_extxyz, qm9_cache_dir, capsys, argv, message
):
    bad = tmp_path / "bad.extxyz"
    bad.write_text("3\nnot an extxyz comment line = = =\nC 0 0 zero\n")
    argv = [a.format(tmp=tmp_path, bad=bad, xyz=tiny_extxyz) for a in argv]
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "data", "describe", "--cache-dir", qm9_cache_dir, *argv,
                         "-o", out_dir)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out_dir.exists()


def test_argument_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["data", "describe", "--cap", "many"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "invalid int value: 'many'" in err and err.count("\n") == 1


def test_every_command_has_help():
    for argv in (["--help"], ["data", "--help"], ["data", "describe", "--help"],
                 ["data", "split", "--help"], ["data", "export", "--help"]):
        result = subprocess.run([sys.executable, "-m", "molstrata", *argv],
                                capture_output=True, text=True)
        assert result.returncode == 0 and "usage: molstrata" in result.stdout


TINY = ["--set", "data.max_molecules=300", "--set", "model.n_atom_basis=16",
        "--set", "model.n_interactions=2", "--set", "training.batch_size=16"]


def test_train_evaluate_end_to_end_on_a_qm9_slice(tmp_path, qm9_cache_dir, capsys):
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "--cache-dir", qm9_cache_dir, "--epochs", "2",
                         "--threads", "1", "-q", "-o", run_dir, *TINY)
    assert code == 0, err
    assert "finished: 2 epochs" in out and str(run_dir) in out
    code, out, err = run(capsys, "evaluate", run_dir, "--bootstrap", "50")
    assert code == 0, err
    assert "Per size" in out and "Per element" in out and "Spearman" in out
    files = {p.name for p in (run_dir / "eval-test").iterdir()}
    assert {"metrics.json", "metrics_by_size.csv", "metrics_by_element.csv",
            "metrics_by_size_element.csv", "predictions.csv", "error_by_size.png",
            "error_by_element.png", "predicted_vs_true.png", "learning_curve.png",
            "evaluation.json"} <= files
    metrics = json.loads((run_dir / "eval-test" / "metrics.json").read_text())
    assert metrics["schema"] == "molstrata-metrics" and metrics["global"]["count"] == 30
    assert "replaced" not in out


def test_evaluate_takes_threads_and_says_which_earlier_files_it_replaced(
        tmp_path, qm9_cache_dir, capsys):
    import torch

    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "--cache-dir", qm9_cache_dir, "--epochs", "1",
                         "--threads", "1", "-q", "-o", run_dir, *TINY)
    assert code == 0, err
    threads = torch.get_num_threads()
    try:
        for _ in range(2):
            code, out, err = run(capsys, "evaluate", run_dir, "--bootstrap", "20",
                                 "--threads", "1")
            assert code == 0, err
    finally:
        torch.set_num_threads(threads)
    assert json.loads((run_dir / "eval-test" / "evaluation.json").read_text())["threads"] == 1
    written = sorted(p.name for p in (run_dir / "eval-test").iterdir())
    line = out.strip().splitlines()[-1]
    assert line.startswith(f"replaced {len(written)} earlier files in {run_dir / 'eval-test'}: ")
    assert sorted(line.split(": ", 1)[1].split(", ")) == written


STUDY_PLAN = """
[study]
title = "two runs"
preset = "quick"
[defaults.data]
max_molecules = 300
excludes = ["F"]
[defaults.model]
n_atom_basis = 8
n_interactions = 1
[defaults.training]
epochs = 1
batch_size = 32
[experiments.base]
[experiments.big.subset]
min_size = 18
[[analyses]]
kind = "directed"
reference = "base"
runs = ["big"]
"""


def test_study_plan_file_runs_and_reuses_its_training(tmp_path, qm9_cache_dir, capsys):
    plan = tmp_path / "plan.toml"
    plan.write_text(STUDY_PLAN)
    code, out, err = run(capsys, "study", plan, "--dry-run")
    assert code == 0, err
    assert "base" in out and "sizes 18-" in out and "analysis directed (directed)" in out
    argv = ["study", plan, "--cache-dir", qm9_cache_dir, "-o", tmp_path / "s", "-q",
            "--threads", "1"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert "Hypothesis 4" in out and "report.html" in out
    assert (tmp_path / "s" / "report" / "report.html").is_file()
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert "reusing 2 finished runs of 2" in out and "== [" not in out  # nothing retrained


def test_train_imbalance_options_reach_the_config(tmp_path, qm9_cache_dir, capsys):
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "--cache-dir", qm9_cache_dir, "--epochs", "1",
                         "--threads", "1", "-q", "-o", run_dir, "--cap", "12",
                         "--loss-weighting", "size_frequency", "--rate", "5",
                         "--train-min-size", "12", "--train-max-size", "22", *TINY)
    assert code == 0, err
    config = (run_dir / "config.toml").read_text()
    for line in ("cap = 12", 'loss_weighting = "size_frequency"', "rate = 5.0",
                 "min_size = 12", "max_size = 22"):
        assert line in config, line
    split = json.loads((run_dir / "split.json").read_text())["parts"]
    assert len(split["test"]) == 30  # the test split is not restricted



@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--preset", "nope"], "invalid choice: 'nope'"),
        (["train", "--set", "training.epochs=0"], "training.epochs must be >= 1"),
        (["train", "--set", "model.size=3"], "unknown option model.size"),
        (["train", "--target", "U9"], "unknown property 'U9'"),
        (["evaluate", "{tmp}"], "is not a molstrata run directory"),
        (["train", "--resume", "{tmp}", "--epochs", "3"], "config.toml says; drop --epochs"),
        (["train", "--resume", "{tmp}", "--cap", "3"], "config.toml says; drop --cap"),
        (["train", "--cap", "0"], "subset.cap must be at least 1"),
        (["train", "--alpha", "2"], "training.alpha must be between 0 and 1"),
        (["study", "--preset", "seed", "{tmp}/plan.toml"], "give a plan file or --preset"),
        (["study", "{tmp}/missing.toml"], "does not exist"),
    ],
)
def test_train_and_evaluate_errors(tmp_path, qm9_cache_dir, capsys, argv, message):
    argv = [a.format(tmp=tmp_path) for a in argv]
    if argv[0] == "train":
        argv += ["--cache-dir", str(qm9_cache_dir), "-o", str(tmp_path / "run")]
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_building_the_parser_imports_no_torch_or_matplotlib():
    probe = ("import sys; from molstrata.cli import build_parser; build_parser(); "
             "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_help_texts_have_no_doubled_percent_and_every_option_says_what_it_does(capsys):
    from molstrata.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse keeps them here only
    parsers = [p for name, p in commands.items() if name != "data"]
    parsers += list(commands["data"]._subparsers._group_actions[0].choices.values())
    for sub in parsers:
        text = sub.format_help()
        assert "%%" not in text, sub.prog
        for action in sub._actions:
            assert action.help, f"{sub.prog} {action.option_strings or action.dest} has no help"


def test_every_train_option_is_either_a_config_field_or_classified_for_resume():
    """What --resume accepts is derived from SHORTCUTS and RESULT_NEUTRAL: an option added to
    the train parser without saying which config field it sets fails here."""
    from molstrata.cli import build_parser
    from molstrata.cli.train import NEW_RUN_ONLY, SHORTCUTS
    from molstrata.training.config import RESULT_NEUTRAL

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    dests = {a.dest for a in train._actions} - {"help"}
    applies_on_resume = {"resume", "set", "devices", "quiet"}
    assert dests == set(SHORTCUTS) | set(NEW_RUN_ONLY) | applies_on_resume
    assert set(RESULT_NEUTRAL) <= set(SHORTCUTS.values())


def mark_interrupted(run_dir) -> None:
    """Make a finished run resumable, as if Ctrl-C had stopped it in its last epoch."""
    summary = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**summary, "status": "interrupted"}))


def test_resume_applies_threads_device_and_cache_dir_and_refuses_the_rest(
        tmp_path, qm9_cache_dir, capsys):
    import torch

    threads = torch.get_num_threads()
    run_dir = tmp_path / "run"
    try:
        code, out, err = run(capsys, "train", "--cache-dir", qm9_cache_dir, "--epochs", "1",
                             "--threads", "2", "-q", "-o", run_dir, *TINY)
        assert code == 0 and ", 2 threads" in out, err
        mark_interrupted(run_dir)
        code, out, err = run(capsys, "train", "--resume", run_dir, "--threads", "1",
                             "--device", "cpu", "--cache-dir", qm9_cache_dir, "-q")
        assert code == 0, err
        assert ", 1 thread" in out and ", 1 threads" not in out and "device cpu" in out
        code, out, err = run(capsys, "train", "--resume", run_dir, "--set", "training.lr=0.1")
        assert code == 2 and "drop --set training.lr=0.1" in err and "--threads" in err
        mark_interrupted(run_dir)
        code, out, err = run(capsys, "train", "--resume", run_dir, "--set", "runtime.threads=1",
                             "-q")
        assert code == 0 and ", 1 thread" in out and ", 1 threads" not in out, err
    finally:
        torch.set_num_threads(threads)
    assert 'threads = 2' in (run_dir / "config.toml").read_text()  # the run's own record


def test_ctrl_c_exits_130_and_an_unsaved_run_says_it_starts_again(
        tmp_path, qm9_cache_dir, capsys, monkeypatch):
    import molstrata.training.run as run_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(run_module, "run_epochs", interrupted)
        code, out, err = run(capsys, "train", "--cache-dir", qm9_cache_dir, "--epochs", "1",
                             "--threads", "1", "-q", "-o", run_dir, *TINY)
    assert code == 130
    assert "before its first epoch ended, so nothing is saved yet" in err
    assert f"molstrata train --resume {run_dir}" in err and err.count("\n") == 1
    code, out, err = run(capsys, "train", "--resume", run_dir, "-q")
    assert code == 0, err
    assert "has no checkpoint yet" in out and "starting it from the beginning" in out


def test_init_from_trains_a_finished_run_further_on_its_split(tmp_path, qm9_cache_dir, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--cache-dir", qm9_cache_dir, "--epochs", "1", "--threads", "1", "-q", *TINY]
    assert run(capsys, "train", "-o", first, *common)[0] == 0
    code, out, err = run(capsys, "train", "-o", second, "--init-from", first,
                         "--set", "training.lr=1e-12", "--set", "training.min_lr=0",
                         "--set", "training.ema=0.5", *common)
    assert code == 0, err
    parts = [json.loads((d / "split.json").read_text())["parts"] for d in (first, second)]
    assert parts[0] == parts[1]
    curves = [list(csv.DictReader((d / "learning_curve.csv").open())) for d in (first, second)]
    # with no learning, the new run validates as its source ended: it started from its weights
    assert float(curves[1][0]["val_mae_meV"]) == pytest.approx(
        float(curves[0][-1]["val_mae_meV"]), rel=1e-4)
    code, out, err = run(capsys, "train", "-o", tmp_path / "third", "--init-from", first,
                         *common, "--set", "model.n_atom_basis=8")
    assert code == 2 and "model has n_atom_basis=16 where this run's has 8" in err
    assert not (tmp_path / "third" / "checkpoints").exists()


def test_a_busy_cpu_is_named_with_the_fix():
    from molstrata.training.machine import busy_cpu

    assert busy_cpu(2, others=0.2, cores=2) is None
    message = busy_cpu(2, others=2.0, cores=2)
    assert "other processes keep 2.0 of 2 cores busy" in message and "--threads 1" in message


def test_this_process_s_own_work_does_not_count_as_a_busy_cpu(monkeypatch):
    """The load average would: a study's next experiment saw its previous one as 'busy'.
    Here the machine's busy time is this process's own plus 0.75 of a core elsewhere."""
    import time

    import molstrata.training.machine as machine

    start = time.perf_counter()
    monkeypatch.setattr(machine, "_machine_busy_s", lambda: time.process_time()
                        + 0.75 * (time.perf_counter() - start))

    def burn(seconds):  # this process keeps a core busy through the window
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    assert machine.others_busy_cores(0.3, wait=burn) == pytest.approx(0.75, abs=0.05)


def test_training_into_a_log_writes_one_line_per_epoch_and_no_bar(tmp_path, qm9_cache_dir,
                                                                   capsys):
    """stderr captured here is no terminal, as a log file is not: no bar redraws itself."""
    code, out, err = run(capsys, "train", "--cache-dir", qm9_cache_dir, "--epochs", "2",
                         "--threads", "1", "-o", tmp_path / "run", *TINY)
    assert code == 0, err
    assert "\r" not in err + out and "batch/s" not in err
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("epoch")] \
        == ["epoch   1", "epoch   2"]


@pytest.mark.parametrize("option", ["--property", "--target"])
def test_train_names_the_files_property_as_every_command_does(option):
    from molstrata.cli import build_parser
    from molstrata.cli.train import _train_config

    args = build_parser().parse_args(["train", option, "gap", "--epochs", "1"])
    assert _train_config(args).data.target == "gap"


def test_study_help_describes_every_shipped_plan(capsys):
    from molstrata.cli.study import PRESETS
    from molstrata.study.presets import plan_presets

    assert set(PRESETS) == set(plan_presets())
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in plan_presets():
        assert f"{name}: {' '.join(PRESETS[name].split())}" in text


def test_a_dry_run_describes_the_data_and_lengths_the_study_will_use(tmp_path, tiny_extxyz,
                                                                    capsys):
    """With --set data.dataset=FILE it still said "8,000 QM9 molecules"."""
    code, out, err = run(capsys, "study", "--dry-run", "--replicates", "1", "--set",
                         f"data.dataset={tiny_extxyz}", "--set", "training.epochs=1")
    assert code == 0, err
    assert "QM9" not in out and "27 epochs" not in out
    assert "data: tiny.extxyz (8,000-molecule slice), property U0" in out
    assert "1 training seed per experiment: 11 runs" in out
    assert "custom " in out and "batch 16, 1 epoch, lr" in out
