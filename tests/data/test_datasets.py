"""Loading a dataset for a command: periodic structures left out on request, and errors that
name the option to give on the command line, in a train config and in Python."""

from __future__ import annotations

import json
from pathlib import Path

import ase.build
import ase.io
import numpy as np
import pytest

from molstrata.cli import build_parser, main
from molstrata.cli.train import _train_config
from molstrata.data.datasets import described_property, is_extensive, load_dataset
from molstrata.errors import MolstrataError
from molstrata.training.config import TrainConfig
from molstrata.training.data import load_molecules


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_load_dataset_leaves_periodic_structures_out_and_says_so(mixed_periodic_extxyz):
    said = []
    molecules = load_dataset(mixed_periodic_extxyz, "energy", "eV", skip_periodic=True,
                             log=said.append)
    np.testing.assert_array_equal(molecules.ids, [0, 1, 2, 3, 4, 6, 8, 10, 11])
    assert len(said) == 1 and said[0].startswith("left out 3 periodic structures of 12 in ")
    with pytest.raises(MolstrataError, match="3 periodic structures"):
        load_dataset(mixed_periodic_extxyz, "energy", "eV", log=said.append)


def test_the_property_describe_checks_and_whether_it_sums_over_atoms():
    assert described_property("qm9", None) == "U0"
    assert described_property("qm9", "gap") == "gap"
    assert described_property("mine.extxyz", None) is None
    assert is_extensive("qm9", "U0") and not is_extensive(None, "gap")
    assert is_extensive("mine.extxyz", "gap")  # a user's property: an energy, as in training


@pytest.mark.parametrize("command", ["describe", "split", "export"])
def test_data_commands_refuse_periodic_structures_naming_the_option(
    tmp_path, capsys, mixed_periodic_extxyz, command
):
    out = tmp_path / ("out.extxyz" if command == "export" else "out")
    code, _, err = run(capsys, "data", command, "--dataset", mixed_periodic_extxyz,
                       "--property", "energy", "--unit", "eV", "-o", out)
    assert code == 2
    assert err.count("\n") == 1 and "holds 3 periodic structures (of 12; first: structure 5, " \
        "a bulk cell)" in err and "--skip-periodic" in err
    assert not out.exists()


def test_describe_with_skip_periodic(tmp_path, capsys, mixed_periodic_extxyz):
    code, out, err = run(capsys, "data", "describe", "--dataset", mixed_periodic_extxyz,
                         "--property", "energy", "--unit", "eV", "--skip-periodic",
                         "-o", tmp_path / "d")
    assert code == 0, err
    assert "left out 3 periodic structures of 12 in" in out and "(structures 5, 7, 9)" in out
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["n_molecules"] == 9 and summary["elements"] == ["H", "C", "N", "O"]
    assert summary["values"]["n_nonfinite"] == 0


def test_split_and_export_with_skip_periodic(tmp_path, capsys, mixed_periodic_extxyz):
    code, out, err = run(capsys, "data", "split", "--dataset", mixed_periodic_extxyz,
                         "--skip-periodic", "--counts", "5", "2", "2", "-o", tmp_path / "s.json")
    assert code == 0, err
    parts = json.loads((tmp_path / "s.json").read_text())["parts"]
    assert sorted(parts["train"] + parts["val"] + parts["test"]) == [0, 1, 2, 3, 4, 6, 8, 10, 11]
    code, out, err = run(capsys, "data", "export", "--dataset", mixed_periodic_extxyz,
                         "--property", "energy", "--unit", "eV", "--skip-periodic",
                         "-o", tmp_path / "e.extxyz")
    assert code == 0, err
    assert "wrote 9 molecules" in out
    assert not any(atoms.pbc.any() for atoms in ase.io.read(tmp_path / "e.extxyz", ":"))


def test_train_config_skip_periodic(tmp_path, mixed_periodic_extxyz):
    config_file = tmp_path / "run.toml"
    config_file.write_text(f'[data]\ndataset = "{mixed_periodic_extxyz}"\ntarget = "energy"\n'
                           'unit = "eV"\nskip_periodic = true\n')
    config = TrainConfig.from_toml(config_file).validate()
    assert config.data.skip_periodic and "skip_periodic = true" in config.to_toml()
    assert len(load_molecules(config, progress=False)) == 9
    config.data.skip_periodic = False
    with pytest.raises(MolstrataError, match="skip_periodic = true"):
        load_molecules(config, progress=False)
    with pytest.raises(MolstrataError, match="data.skip_periodic must be bool"):
        TrainConfig.from_dict({"data": {"skip_periodic": "yes"}})


def test_train_shortcut_skip_periodic(tmp_path, mixed_periodic_extxyz):
    argv = ["train", "--dataset", str(mixed_periodic_extxyz), "--target", "energy", "--unit",
            "eV"]
    assert not _train_config(build_parser().parse_args(argv)).data.skip_periodic
    config = _train_config(build_parser().parse_args([*argv, "--skip-periodic"]))
    assert config.data.skip_periodic


def test_train_refuses_periodic_structures_naming_the_option(tmp_path, capsys,
                                                            mixed_periodic_extxyz):
    code, _, err = run(capsys, "train", "--dataset", mixed_periodic_extxyz, "--target", "energy",
                       "--unit", "eV", "--epochs", "1", "--device", "cpu", "-q",
                       "-o", tmp_path / "run")
    assert code == 2 and "3 periodic structures" in err and "--skip-periodic" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", [["data", "describe"], ["train", "--epochs", "1", "-q"]])
def test_a_property_without_unit_names_the_unit_option(tmp_path, capsys, command):
    path = tmp_path / "kcal.extxyz"
    frames = [ase.build.molecule(name) for name in ("H2O", "CH4", "NH3")]
    for atoms in frames:
        atoms.info["U0_kcal_mol"] = -1000.0 * len(atoms)
    ase.io.write(path, frames, format="extxyz")
    option = "--property" if command[0] == "data" else "--target"
    code, out, err = run(capsys, *command, "--dataset", path, option, "U0_kcal_mol",
                         "-o", tmp_path / "out")
    assert code == 2
    line = err.strip()
    assert "\n" not in line and line.startswith("molstrata: error: no unit for property "
                                                "'U0_kcal_mol'")
    assert "give its unit with --unit (command line; [data] unit in a train config)" in line
    assert "properties={'U0_kcal_mol': 'eV'} (Python)" in line
    assert not Path(tmp_path / "out").exists()


def test_quiet_loading_still_says_which_periodic_structures_were_left_out(
        mixed_periodic_extxyz, capsys):
    """`train -q` (progress=False) hides progress bars, not what happened to the data."""
    config = TrainConfig.from_dict({"data": {"dataset": str(mixed_periodic_extxyz),
                                             "target": "energy", "unit": "eV",
                                             "skip_periodic": True}}).validate()
    assert len(load_molecules(config, progress=False)) == 9
    assert "left out 3 periodic structures of 12 in" in capsys.readouterr().out
