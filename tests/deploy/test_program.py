"""The torch.export program: the eager model's energies, loaded with no molstrata at all."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from molstrata.deploy.calculator import energy_and_forces
from molstrata.deploy.export import export
from molstrata.deploy.inference import predict_molecules
from molstrata.deploy.modelfile import load_model_file
from molstrata.deploy.program import molecule_pairs
from molstrata.models.neighbors import neighbor_pairs

# Runs in a fresh interpreter in which importing molstrata fails.
LOAD_WITHOUT_MOLSTRATA = """
import json, sys
sys.modules["molstrata"] = None  # any `import molstrata...` now raises ImportError
import numpy as np, torch
program = torch.export.load(sys.argv[1]).module()
a = np.load(sys.argv[2])
numbers = torch.as_tensor(a["numbers"]).long()
positions = torch.as_tensor(a["positions"]).requires_grad_(True)
energies = program(numbers, positions, torch.as_tensor(np.diff(a["offsets"])))
forces = -torch.autograd.grad(energies.sum(), positions)[0]
print(json.dumps({"energies": energies.tolist(), "forces": forces.tolist()}))
"""


@pytest.fixture(scope="module")
def program_path(model_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("program") / "model.pt2"
    export(model_path, path)
    return path


def test_the_program_gives_the_eager_energies_without_molstrata(program_path, model_path,
                                                                test_molecules, tmp_path):
    arrays = tmp_path / "molecules.npz"
    np.savez(arrays, numbers=test_molecules.numbers, positions=test_molecules.positions,
             offsets=test_molecules.offsets)
    result = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_MOLSTRATA, str(program_path),
                             str(arrays)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    model = load_model_file(model_path)
    eager = predict_molecules(model, test_molecules)
    np.testing.assert_allclose(output["energies"], eager, rtol=0, atol=1e-6)
    numbers, positions = test_molecules.atoms_of(0)
    _, forces = energy_and_forces(model, numbers, positions)
    n0 = len(numbers)
    np.testing.assert_allclose(np.array(output["forces"])[:n0], forces, rtol=0, atol=1e-5)


def test_the_program_carries_what_the_model_was_trained_on(program_path):
    with zipfile.ZipFile(program_path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("molstrata.json"))
        metadata = json.loads(archive.read(name))
    assert metadata["target"] == {"name": "U0", "unit": "eV", "aggregation": "sum"}
    assert metadata["pair_cutoff"] == 4.0 and metadata["training_domain"]["n_molecules"] == 240


def test_molecule_pairs_are_the_neighbour_search_order():
    sizes = torch.tensor([1, 3, 29, 2, 5])
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(sizes, 0)])
    positions = torch.zeros(int(sizes.sum()), 3, dtype=torch.float64)
    idx_i, idx_j, _ = neighbor_pairs(positions, offsets, cutoff=1.0)
    pairs = molecule_pairs(sizes)
    assert torch.equal(pairs[0], idx_i) and torch.equal(pairs[1], idx_j)
