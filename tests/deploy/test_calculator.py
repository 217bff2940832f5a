"""molstrata.ase.Calculator: evaluate's energies, forces that are the gradient, invariances."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from ase import Atoms
from scipy.spatial.transform import Rotation

from molstrata.ase import Calculator
from molstrata.deploy.calculator import energy_and_forces
from molstrata.deploy.modelfile import load_model_file, model_from_document, read_document
from molstrata.errors import MolstrataError
from molstrata.models.geometry import pair_geometry
from molstrata.models.neighbors import neighbor_pairs


def atoms_of(molecules, i: int) -> Atoms:
    numbers, positions = molecules.atoms_of(i)
    return Atoms(numbers=numbers.astype(int), positions=positions)


def test_the_calculator_reproduces_evaluate_on_the_test_split(model_path, evaluation):
    calc = Calculator(model_path)
    molecules = evaluation.molecules
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a 240-molecule model flags most structures as rare
        energies = np.array([calc.get_potential_energy(atoms_of(molecules, i))
                             for i in range(len(molecules))])
    predicted = evaluation.predictions.predicted
    np.testing.assert_allclose(energies, predicted, rtol=0, atol=1e-6)
    true = evaluation.predictions.true
    mae_meV = 1000 * np.abs(energies - true).mean()
    assert mae_meV == pytest.approx(evaluation.report.overall.summary.mae * 1000, abs=1e-3)
    assert abs(energies.mean()) > 1000  # the reference energies are not forgotten


@pytest.fixture(scope="module")
def model64(model_path):
    return load_model_file(model_path, dtype="float64")


def test_forces_are_minus_the_finite_difference_gradient(model64, test_molecules):
    numbers, positions = test_molecules.atoms_of(0)
    _, forces = energy_and_forces(model64, numbers, positions)
    h = 1e-5
    numeric = np.zeros_like(positions)
    for a in range(len(positions)):
        for k in range(3):
            step = np.zeros_like(positions)
            step[a, k] = h
            plus, _ = energy_and_forces(model64, numbers, positions + step, forces=False)
            minus, _ = energy_and_forces(model64, numbers, positions - step, forces=False)
            numeric[a, k] = -(plus - minus) / (2 * h)
    assert np.abs(forces).max() > 1e-3
    np.testing.assert_allclose(forces, numeric, atol=1e-6)


def test_a_rotated_and_shifted_molecule_has_the_same_energy_and_rotated_forces(model64,
                                                                                test_molecules):
    numbers, positions = test_molecules.atoms_of(1)
    rotation = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    energy, forces = energy_and_forces(model64, numbers, positions)
    moved = positions @ rotation.T + np.array([3.0, -7.0, 0.5])
    energy2, forces2 = energy_and_forces(model64, numbers, moved)
    assert energy2 == pytest.approx(energy, abs=1e-9)
    np.testing.assert_allclose(forces2, forces @ rotation.T, atol=1e-9)
    assert np.abs(forces.sum(axis=0)).max() < 1e-9  # no net force on an isolated molecule


def test_half_pairs_give_what_directed_pairs_give(model64, test_molecules):
    numbers, positions = test_molecules.atoms_of(2)
    energy, forces = energy_and_forces(model64, numbers, positions)
    r = torch.tensor(positions, requires_grad=True)
    idx_i, idx_j, _ = neighbor_pairs(r.detach(), torch.tensor([0, len(r)]),
                                     model64.pair_cutoff, half=False)
    geometry = pair_geometry(r, idx_i, idx_j, model64.model.geometry)
    z = torch.as_tensor(numbers).long()
    full = model64.model.predict(z, geometry, idx_i, idx_j, torch.zeros(len(z), dtype=int), 1,
                                 half_pairs=False)
    (gradient,) = torch.autograd.grad(full.sum(), r)
    assert energy == pytest.approx(float(full.detach()), abs=1e-9)
    np.testing.assert_allclose(forces, -gradient.numpy(), atol=1e-9)


def test_the_neighbour_cutoff_is_the_smaller_one(model64):
    # trained with neighbour pairs within 4 Å under a 5 Å cosine cutoff: a pair 4.5 Å apart
    # does not interact, as in training
    assert model64.pair_cutoff == 4.0
    near = energy_and_forces(model64, [6, 6], [[0, 0, 0], [0, 0, 4.5]])
    far = energy_and_forces(model64, [6, 6], [[0, 0, 0], [0, 0, 40.0]])
    assert near[0] == far[0] and not near[1].any()


def test_ase_sees_energy_and_forces_and_the_flags(model_path, test_molecules):
    atoms = atoms_of(test_molecules, 0)
    atoms.calc = Calculator(model_path, dtype="float64", min_stratum=0)
    forces = atoms.get_forces()
    assert forces.shape == (len(atoms), 3) and atoms.calc.domain_flags == ()
    assert atoms.get_potential_energy() == atoms.calc.results["energy"]
    small = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    small.calc = Calculator(model_path)
    with pytest.warns(UserWarning, match="outside the training domain.*size_outside_training:3"):
        small.get_potential_energy()


def test_what_the_calculator_cannot_do_is_one_clear_error(model_path):
    calc = Calculator(model_path)
    with pytest.raises(MolstrataError, match="CH3Cl holds Cl, which .* never saw in training"):
        calc.get_potential_energy(Atoms("CH3Cl", positions=np.eye(5, 3) * 1.1))
    with pytest.raises(MolstrataError, match="periodic structures are not supported"):
        calc.get_potential_energy(Atoms("CH4", positions=np.eye(5, 3), cell=[9, 9, 9],
                                        pbc=True))
    document = read_document(model_path)
    document["target"] = {**document["target"], "name": "mu", "unit": "Debye"}
    with pytest.raises(MolstrataError, match="needs a model of an energy"):
        Calculator(model_from_document(document))


def test_energy_and_forces_come_from_one_model_call_and_warn_once(model_path):
    calc = Calculator(model_path)
    calls = []
    calc.model_file.model.register_forward_hook(lambda *args: calls.append(1))
    water = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    water.calc = calc
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        energy = water.get_potential_energy()
        forces = water.get_forces()
        assert len(calls) == 1
        assert water.get_potential_energy() == energy and len(calls) == 1
        water.positions[0, 0] += 0.05  # a step of a dynamics: computed afresh, no new warning
        moved = water.get_forces()
        assert len(calls) == 2 and not np.allclose(moved, forces)
    flagged = [w for w in caught if "outside the training domain" in str(w.message)]
    assert len(flagged) == 1 and "size_outside_training:3" in str(flagged[0].message)
    assert calc.domain_flags == ("size_outside_training:3",)
