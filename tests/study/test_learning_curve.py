"""`molstrata learning-curve` end to end on a tiny QM9 slice: nested subsets with two seeds,
per-stratum fits, data advice and the held-out check in the report, and a second call that
reuses every run."""

from __future__ import annotations

import csv

import pytest

from molstrata.cli import main
from molstrata.errors import MolstrataError
from molstrata.study.learning_curve import default_sizes, plan_text

TINY = ["--max-molecules", "600", "--sizes", "60", "120", "240", "480", "--epochs", "2",
        "--min-steps", "0", "--replicates", "2", "--threads", "1",
        "--set", "model.n_atom_basis=8", "--set", "model.n_interactions=1",
        "--set", "model.n_rbf=8", "--set", 'data.excludes=["F"]']


def test_learning_curve_runs_end_to_end_and_resumes(tmp_path, qm9_cache_dir, capsys):
    out = tmp_path / "lc"
    argv = ["learning-curve", *TINY, "--cache-dir", str(qm9_cache_dir), "-o", str(out), "-q"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "8 runs" in text and "Rare sizes learn more slowly" in text
    assert "More training molecules lower the global error" in text
    for n in (60, 120, 240, 480):
        for seed in (0, 1):
            assert (out / "runs" / f"n-{n}" / f"seed-{seed}" / "eval-test" /
                    "predictions.csv").is_file()
    tables = out / "report" / "tables"
    with open(tables / "learning_curve_advice_sizes.csv", newline="") as handle:
        advice = list(csv.DictReader(handle))
    # the advice is proportional growth: total molecules needed, no per-stratum gain ranking
    assert advice and {"stratum", "total_training_molecules_now", "total_molecules_needed",
                       "far_extrapolation"} <= set(advice[0])
    assert not any(column.startswith("macro_mae_gain") for column in advice[0])
    assert {row["total_training_molecules_now"] for row in advice} == {"480"}
    unfit = [row for row in advice if not row["form"]]
    assert all("too few points to fit" in row["note"] for row in unfit)
    assert (tables / "learning_curve_held_out.csv").is_file()
    for plot in ("learning_curve_sizes.png", "learning_curve_elements.png"):
        assert (out / "plots" / plot).is_file()

    assert main(argv) == 0  # again: nothing is trained twice
    assert "reusing 8 finished runs of 8" in capsys.readouterr().out


def test_plans_need_three_sizes_and_keep_their_options(tmp_path, capsys):
    with pytest.raises(MolstrataError, match="at least 3 different positive subset sizes"):
        plan_text(sizes=[100, 200], epochs=1, min_steps=0, replicates=1, target_mae=43,
                  max_molecules=1000, preset=None)
    assert main(["learning-curve", "--sizes", "100", "--dry-run"]) == 2  # a user error
    assert "at least 3 different" in capsys.readouterr().err
    assert default_sizes(24_000) == [750, 1500, 3000, 6000, 12000, 24000]
    # small subsets train at least min_steps optimizer steps
    text = plan_text(sizes=[640, 6400, 64000], epochs=5, min_steps=1000, replicates=1,
                     target_mae=43, max_molecules=None, preset=None)
    assert "[experiments.n-640.training]\nepochs = 100" in text
    assert "[experiments.n-64000.training]\nepochs = 5" in text
