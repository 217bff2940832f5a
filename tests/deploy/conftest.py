"""A tiny model trained once on a QM9 slice, its model file and its evaluation; energies on
another zero."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units

from molstrata.deploy.export import export
from molstrata.evaluation.evaluate import evaluate_run
from molstrata.training.config import TrainConfig
from molstrata.training.data import prepare
from molstrata.training.run import train
from molstrata.training.rundir import RunPaths


@pytest.fixture(scope="session", params=["schnet", "painn"])
def trained_run(request, tmp_path_factory, qm9_cache_dir):
    """A run of 300 QM9 molecules (240 train / 30 val / 30 test), 16 features, 2 epochs,
    neighbour cutoff 4 Å under a model cutoff of 5 Å, as the study's model; once per
    architecture, so that every test of this folder holds for each."""
    config = TrainConfig.from_dict({
        "data": {"cache_dir": str(qm9_cache_dir), "max_molecules": 300, "split_seed": 1,
                 "neighbor_cutoff": 4.0},
        "model": {"representation": request.param, "n_atom_basis": 16, "n_interactions": 2,
                  "n_rbf": 10, "cutoff": 5.0},
        "training": {"epochs": 2, "batch_size": 32, "lr": 3e-3},
        "runtime": {"seed": 3, "threads": 1},
    }).validate()
    run_dir = tmp_path_factory.mktemp(f"deploy-{request.param}") / "run"
    train(config, run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="session")
def representation(trained_run) -> str:
    """The architecture of this session's `trained_run`."""
    return TrainConfig.from_toml(RunPaths(trained_run).config).model.representation


@pytest.fixture(scope="session")
def run_data(trained_run):
    """The run's PreparedData: molecules, values and split."""
    paths = RunPaths(trained_run)
    return prepare(TrainConfig.from_toml(paths.config), paths.split, progress=False)


@pytest.fixture(scope="session")
def test_molecules(run_data):
    return run_data.molecules.subset(run_data.split.test)


@pytest.fixture(scope="session")
def model_path(trained_run):
    path = trained_run.parent / "model.pt"
    export(trained_run, path)
    return path


@pytest.fixture(scope="session")
def evaluation(trained_run):
    """`evaluate`'s predictions of the run's test split."""
    result = evaluate_run(trained_run, n_bootstrap=10, device="cpu", progress=False,
                          out_dir=trained_run.parent / "eval")
    assert np.all(np.isfinite(result.predictions.predicted))
    return result


# QM9's B3LYP energies of the isolated atoms (Hartree): a file of atomisation energies holds
# U0 minus these, summed over the atoms
ATOM_ENERGIES_HA = {1: -0.500273, 6: -37.846772, 7: -54.583861, 8: -75.064579, 9: -99.718730}


@pytest.fixture(scope="session")
def on_another_zero():
    """A function: Molecules -> the same with U0 replaced by the atomisation energy (eV), real
    U0 shifted by a constant per element."""
    per_atom = np.zeros(10)
    for z, energy in ATOM_ENERGIES_HA.items():
        per_atom[z] = energy * units.Hartree

    def shift(molecules):
        atoms = np.bincount(molecules.atom_molecule, weights=per_atom[molecules.numbers],
                            minlength=len(molecules))
        return molecules.with_property("U0", molecules.property("U0") - atoms, "eV")

    return shift
