"""`molstrata data-value` end to end on a small QM9 slice: interrupted in its third run, then
resumed with two workers; the thinned arms keep every other training molecule and the test
set; the report holds the own-data curves, the cross effects, the advice and the verdicts."""

from __future__ import annotations

import csv
import json

import pytest

import molstrata.training.run as run_module
from molstrata.cli import main
from molstrata.errors import MolstrataError
from molstrata.study.data_value import experiment_fractions, plan_text

TINY = ["--max-molecules", "1500", "--strata", "size:19", "element:N", "--fractions", "0",
        "0.5", "--epochs", "2", "--replicates", "2", "--threads", "1",
        "--set", "model.n_atom_basis=8", "--set", "model.n_interactions=1",
        "--set", "model.n_rbf=8", "--set", 'data.excludes=["F"]']
EXPERIMENTS = ["full", "thin-size19-0", "thin-size19-0.5", "thin-N-0.1", "thin-N-0.5"]


def _interrupt_third_run():
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

    return real, interrupted_third


def test_data_value_runs_resumes_with_two_workers_and_reports(tmp_path, qm9_cache_dir, qm9,
                                                              capsys):
    out = tmp_path / "dv"
    argv = ["data-value", *TINY, "--cache-dir", str(qm9_cache_dir), "-o", str(out), "-q"]
    real, interrupted = _interrupt_third_run()
    run_module.run_epochs = interrupted
    try:
        assert main(argv) != 0
    finally:
        run_module.run_epochs = real
    assert "interrupted after epoch 1" in capsys.readouterr().err
    assert main([*argv, "--workers", "2"]) == 0
    text = capsys.readouterr().out
    assert "reusing 2 finished runs of 10" in text
    for name in EXPERIMENTS:
        for seed in (0, 1):
            summary = json.loads((out / "runs" / name / f"seed-{seed}" / "run.json").read_text())
            assert summary["status"] == "finished" and summary["epochs_done"] == 2, name

    # thinning 19 atoms to 0 keeps every other training molecule, val and test (per seed)
    def parts(name, seed):
        path = out / "runs" / name / f"seed-{seed}" / "split.json"
        return {k: set(v) for k, v in json.loads(path.read_text())["parts"].items()}

    for seed in (0, 1):
        full, thinned = parts("full", seed), parts("thin-size19-0", seed)
        assert thinned["val"] == full["val"] and thinned["test"] == full["test"]
        removed = full["train"] - thinned["train"]
        assert thinned["train"] <= full["train"] and removed
        assert set(qm9.sizes[qm9.rows_of_ids(sorted(removed))].tolist()) == {19}
        assert 19 not in qm9.sizes[qm9.rows_of_ids(sorted(thinned["train"]))]

    assert "its error depends on its own training molecules" in text
    assert "Thinning a stratum changes only its own error" in text
    tables = out / "report" / "tables"
    with open(tables / "data_value_own_value.csv", newline="") as handle:
        advice = {row["stratum"]: row for row in csv.DictReader(handle)}
    assert set(advice) == {"19 atoms", "with N"}
    assert advice["19 atoms"]["measured_range"].startswith("0-")
    assert advice["19 atoms"]["mae_at_zero_own_meV"] and not advice["with N"][
        "mae_at_zero_own_meV"]  # an element is never thinned to 0
    with open(tables / "data_value_cross_effects.csv", newline="") as handle:
        cross = list(csv.DictReader(handle))
    assert {row["thinned"] for row in cross} == {"19 atoms", "with N"}
    assert (tables / "data_value_held_out.csv").is_file()
    for plot in ("data_value_own_curves.png", "data_value_cross_effects.png"):
        assert (out / "plots" / plot).is_file()
    html = (out / "report" / "report.html").read_text()
    assert "Two kinds of advice, kept apart" in html


def test_plans_refuse_bad_fractions_and_never_thin_an_element_to_zero(capsys):
    with pytest.raises(MolstrataError, match="fractions in \\[0, 1\\)"):
        plan_text(strata=["size:12"], fractions=[0.5, 1.0], epochs=1, replicates=1,
                  max_molecules=1000, preset=None)
    assert experiment_fractions("element:F", [0.0, 0.5]) == [0.1, 0.5]
    assert experiment_fractions("size:12", [0.5, 0.0]) == [0.0, 0.5]
    text = plan_text(strata=["size:12", "element:F"], fractions=[0.0], epochs=3,
                     replicates=2, max_molecules=2000, preset=None)
    assert 'thin = "element:F"\nthin_fraction = 0.1' in text and 'draw = "seed"' in text
    assert main(["data-value", "--strata", "size:x", "--dry-run"]) == 2
    assert "size:N or element:X" in capsys.readouterr().err
    assert main(["data-value", "--strata", "size:12", "--max-molecules", "2000",
                 "--dry-run"]) == 0
    assert "cost: 3 experiments x 3 seeds = 9 runs" in capsys.readouterr().out
