"""PaiNN's compiled interaction messages (kernels.painn_messages, the "kernel-openmp" backend):
the function PyTorch's ops compute, gradients that pass gradcheck in float64, the same bits
on any number of threads, and through a whole model the same energies, forces and parameter
gradients as the "torch" backend, in training, in the ASE calculator and against the
torch.export program."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from ase import Atoms

from molstrata.deploy.calculator import Calculator
from molstrata.deploy.modelfile import ModelFile
from molstrata.deploy.program import export_program
from molstrata.evaluation.stratified import TrainingCounts
from molstrata.models import EnergyModel, kernels
from molstrata.models.backends import KernelBackend, TorchBackend
from molstrata.models.kernels import painn_messages
from molstrata.models.messages import MessageSums

CPU = torch.device("cpu")
FLAGS = list(itertools.product([False, True], repeat=2))
"""(shared_interactions, shared_filters): every combination."""


@pytest.fixture(autouse=True)
def _kernels_on(monkeypatch):
    monkeypatch.delenv(kernels.ENV_VAR, raising=False)


def _needs_kernel():
    if kernels.library() is None:
        pytest.skip(f"no kernel here: {kernels.status()}")


def _sums(batch) -> MessageSums:
    """The batch's pairs molecule by molecule, as a DeviceDataset batch carries them."""
    counts = torch.bincount(batch.molecule_index[batch.idx_i], minlength=batch.n_molecules)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    return MessageSums(batch.idx_i, batch.idx_j, len(batch.numbers), offsets,
                       batch.molecule_index)


def _three_molecules(offsets: bool = True) -> MessageSums:
    """Every pair of three 'molecules' (atoms 0-3, 4-8, 9-11), with their offsets or not."""
    pieces = [torch.triu_indices(n, n, 1) + first for first, n in ((0, 4), (4, 5), (9, 3))]
    counts = torch.tensor([piece.shape[1] for piece in pieces])
    pairs = torch.cat(pieces, dim=1)
    if not offsets:
        return MessageSums(pairs[0], pairs[1], 12)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    return MessageSums(pairs[0], pairs[1], 12, offsets,
                       torch.repeat_interleave(torch.arange(3), torch.tensor([4, 5, 3])))


def _inputs(pairs: MessageSums, width: int, dtype=torch.float64, seed: int = 0,
            n_rbf: int = 4) -> dict:
    """Random context, vector features, radial basis, filter network (weight and bias),
    cutoff and unit directions: the arguments of `painn_messages` before the pairs."""
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, dtype=dtype, generator=generator)

    directions = rand(pairs.n_pairs, 3)
    return {"x": rand(pairs.n_atoms, 3 * width), "mu": rand(pairs.n_atoms, 3, width),
            "rbf": torch.rand(pairs.n_pairs, n_rbf, dtype=dtype, generator=generator),
            "weight": rand(3 * width, n_rbf), "bias": rand(3 * width),
            "cutoff": torch.rand(pairs.n_pairs, dtype=dtype, generator=generator),
            "directions": directions / directions.norm(dim=1, keepdim=True)}


@pytest.mark.parametrize("half", [True, False])
@pytest.mark.parametrize("with_mu", [True, False])
@pytest.mark.parametrize("width", [1, 5, 16])
def test_the_kernel_computes_what_the_torch_backend_computes(half, with_mu, width):
    """Both ways (half pairs) or one (directed), with vector features or without (the first
    block); with and without the molecule offsets (threads)."""
    _needs_kernel()
    for offsets in (True, False):
        pairs = _three_molecules(offsets)
        inputs = _inputs(pairs, width)
        if not with_mu:
            inputs["mu"] = None
        routes = TorchBackend.pairs(pairs.idx_i, pairs.idx_j, 12, half, None)
        expected = TorchBackend.painn_messages(*inputs.values(), routes)
        ours = KernelBackend.painn_messages(*inputs.values(), (pairs, half))
        for a, b in zip(ours, expected, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("offsets", [True, False])
@pytest.mark.parametrize("half", [True, False])
@pytest.mark.parametrize("with_mu", [True, False])
@pytest.mark.parametrize("forces", [True, False])
def test_the_kernel_passes_gradcheck(offsets, half, with_mu, forces):
    """The hand-written backward in float64: the gradients of x, mu and the filter network's
    weight and bias (training), and with forces those of the radial basis, cutoff and
    directions too, over three molecules' pairs split between threads or not, half pairs and
    directed."""
    _needs_kernel()
    pairs = _three_molecules(offsets)
    inputs = _inputs(pairs, 3, seed=1)
    if not with_mu:
        del inputs["mu"]
    geometry = ("rbf", "cutoff", "directions")
    names = [name for name in inputs if forces or name not in geometry]
    leaves = [inputs[name].clone().requires_grad_() for name in names]

    def messages(*tensors):
        given = {**inputs, **dict(zip(names, tensors))}
        return painn_messages(given["x"], given.get("mu"), given["rbf"], given["weight"],
                              given["bias"], given["cutoff"], given["directions"], pairs, half)

    assert torch.autograd.gradcheck(messages, leaves)


def test_any_number_of_threads_gives_the_same_bits(qm9_sample, make_batch):
    """Threads take whole molecules, and the filter network's gradients are summed in fixed
    chunks of molecules, so 1, 2 and 3 threads agree bit for bit in float32, forward and
    every gradient."""
    _needs_kernel()
    batch = make_batch(qm9_sample)
    pairs = _sums(batch)
    inputs = _inputs(pairs, 38, torch.float32, seed=5, n_rbf=20)
    leaves = {name: tensor.clone().requires_grad_() for name, tensor in inputs.items()}
    generator = torch.Generator().manual_seed(6)
    grads = (torch.randn(pairs.n_atoms, 38, generator=generator),
             torch.randn(pairs.n_atoms, 3, 38, generator=generator))
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            out = painn_messages(*leaves.values(), pairs)
            gradients = torch.autograd.grad(out, list(leaves.values()), grads)
            results.append([tensor.detach() for tensor in out] + list(gradients))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert torch.equal(a, b)


def _results(model, name, batch, dtype, sums):
    """Energies, forces and every parameter's gradient of `model` on backend `name`."""
    model.representation.backends["cpu"] = name
    positions = batch.positions.clone().requires_grad_()
    energy = model(*batch.args(positions, dtype, model.geometry), half_pairs=batch.half,
                   sums=sums)
    forces = -torch.autograd.grad(energy.sum(), positions, retain_graph=True)[0]
    gradients = torch.autograd.grad(energy.square().sum(), list(model.parameters()))
    assert model.backend == name
    return energy.detach(), forces, gradients


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("pairs", ["half with sums", "half", "directed"])
@pytest.mark.parametrize("width", [5, 16])
@pytest.mark.parametrize("shared_interactions, shared_filters", FLAGS)
def test_the_model_gives_the_torch_backend_s_numbers(qm9_sample, make_batch, dtype, pairs,
                                                     width, shared_interactions,
                                                     shared_filters):
    """Energies, forces and every parameter's gradient of PaiNN on the kernels against
    PyTorch's ops: in float64 to 1e-10, in float32 to its rounding."""
    _needs_kernel()
    torch.manual_seed(width)
    model = EnergyModel(representation="painn", n_atom_basis=width, n_interactions=3,
                        shared_interactions=shared_interactions,
                        shared_filters=shared_filters).to(dtype)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(0.0, 0.2)
    batch = make_batch(qm9_sample.subset(range(12)), half=pairs != "directed")
    sums = _sums(batch) if pairs == "half with sums" else None
    energy, forces, gradients = _results(model, "torch", batch, dtype, sums)
    ours, our_forces, our_gradients = _results(model, "kernel-openmp", batch, dtype, sums)
    rtol, atol = (1e-10, 1e-12) if dtype == torch.float64 else (1e-4, 1e-4)
    assert forces.abs().max() > 1e-3
    torch.testing.assert_close(ours, energy, rtol=rtol, atol=atol)
    torch.testing.assert_close(our_forces, forces, rtol=rtol, atol=atol * forces.abs().max())
    for mine, theirs in zip(our_gradients, gradients, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=rtol, atol=atol * theirs.abs().max())


def _model_file(qm9_sample, dtype) -> ModelFile:
    torch.manual_seed(11)
    model = EnergyModel(representation="painn", n_atom_basis=16, n_interactions=3).to(dtype)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(0.0, 0.2)
    return ModelFile(path=None, model=model.eval(), target="U0", unit="eV",
                     neighbor_cutoff=5.0, training=TrainingCounts.from_molecules(qm9_sample),
                     document={})


def test_calculator_and_exported_forces_equal_the_torch_path_s(qm9_sample):
    """The ASE calculator's energies and forces through the kernels equal those through
    PyTorch's ops, and those of the torch.export program (which always traces PyTorch's
    ops), in float32 to its rounding."""
    _needs_kernel()
    model_file = _model_file(qm9_sample, torch.float32)
    program = export_program(model_file).module()
    for k in (1, 3):  # the largest molecule of QM9, and one at random
        numbers = qm9_sample.numbers[qm9_sample.offsets[k]:qm9_sample.offsets[k + 1]]
        positions = qm9_sample.positions[qm9_sample.offsets[k]:qm9_sample.offsets[k + 1]]
        results = {}
        for name in ("torch", "kernel-openmp"):
            model_file.model.representation.backends["cpu"] = name
            atoms = Atoms(numbers=numbers, positions=positions)
            atoms.calc = Calculator(model_file, min_stratum=1)
            results[name] = (atoms.get_potential_energy(), atoms.get_forces())
        assert model_file.model.backend == "kernel-openmp"
        r = torch.as_tensor(positions, dtype=torch.float64).requires_grad_()
        energy = program(torch.as_tensor(numbers).long(), r, torch.tensor([len(numbers)]))
        exported = (float(energy.detach()), -torch.autograd.grad(energy.sum(), r)[0].numpy())
        kernel_energy, kernel_forces = results["kernel-openmp"]
        assert np.abs(kernel_forces).max() > 1e-3
        for energy, forces in (results["torch"], exported):
            np.testing.assert_allclose(kernel_energy, energy, rtol=1e-6)
            np.testing.assert_allclose(kernel_forces, forces, rtol=1e-4,
                                       atol=1e-4 * np.abs(forces).max())


def test_without_a_compiler_painn_falls_back_to_torch(qm9_sample, make_batch, monkeypatch,
                                                      tmp_path):
    """No compiler: a new PaiNN chooses the torch backend and computes what the kernel
    computes."""
    torch.manual_seed(9)
    model = EnergyModel(representation="painn", n_atom_basis=8, n_interactions=2).double()
    batch = make_batch(qm9_sample.subset([1, 4]))
    args = batch.args(kind=model.geometry)
    expected = model(*args, sums=_sums(batch)).detach()
    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("MOLSTRATA_CACHE_DIR", str(tmp_path / "cache"))
    assert kernels.library() is None and "no compiled kernel" in kernels.status()
    fresh = EnergyModel(representation="painn", n_atom_basis=8, n_interactions=2).double()
    fresh.load_state_dict(model.state_dict())
    assert fresh.backend == "torch" and fresh.representation.backends == {"cpu": "torch"}
    torch.testing.assert_close(fresh(*args, sums=_sums(batch)), expected, rtol=1e-12,
                               atol=1e-12)


def test_inputs_the_kernel_cannot_read_are_refused():
    """The kernel reads raw memory: every input that does not fit is refused before."""
    pairs = _three_molecules()
    inputs = _inputs(pairs, 4)
    x, mu, rbf, weight, bias, cutoff, directions = inputs.values()
    for wrong in ({"x": x[:, :-1]}, {"x": x[:-1]}, {"mu": mu[:, :2]}, {"rbf": rbf[:-1]},
                  {"rbf": rbf[:, :-1]}, {"weight": weight[:-1]}, {"cutoff": cutoff[:-1]},
                  {"directions": directions[:, :2]}):
        given = {**inputs, **wrong}
        with pytest.raises(ValueError, match="do not fit"):
            painn_messages(*given.values(), pairs)
    with pytest.raises(ValueError, match="one dtype"):
        painn_messages(x, mu.float(), rbf, weight, bias, cutoff, directions, pairs)
