"""SchNet's compiled CPU convolution (models/kernels.py): built here with the machine's C++
compiler, it must compute what PyTorch's ops compute, on real QM9 batches and small synthetic
ones, with any number of threads, and fall back cleanly when it cannot be built."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

from molstrata.models import EnergyModel, kernels
from molstrata.models.kernels import half_pair_convolution
from molstrata.models.messages import MessageSums, message_routes, pass_messages
from molstrata.training.batches import DeviceDataset

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _kernels_on(monkeypatch):
    monkeypatch.delenv(kernels.ENV_VAR, raising=False)


def _batch(molecules, rows, dtype=torch.float64):
    dataset = DeviceDataset(molecules, 5.0, CPU, dtype)
    return dataset.batch(torch.as_tensor(rows))


def _loop(h, filters, idx_i, idx_j):
    expected = torch.zeros_like(h)
    for p, (i, j) in enumerate(zip(idx_i.tolist(), idx_j.tolist())):
        expected[i] += h[j] * filters[p]
        expected[j] += h[i] * filters[p]
    return expected


def test_the_kernel_is_built_where_a_compiler_is():
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler on this machine")
    assert kernels.library() is not None, kernels.status()
    assert kernels.status() == "compiled kernel"
    assert kernels.built().is_file()


def test_the_convolution_matches_a_loop_over_pairs(tiny_molecules):
    batch = _batch(tiny_molecules, [3, 9, 0])
    h = torch.randn(len(batch.numbers), 5, dtype=torch.float64)
    filters = torch.randn(len(batch.idx_i), 5, dtype=torch.float64)
    cutoff = torch.rand(len(batch.idx_i), dtype=torch.float64)
    expected = _loop(h, filters * cutoff[:, None], batch.idx_i, batch.idx_j)
    torch.testing.assert_close(half_pair_convolution(h, filters, cutoff, batch.sums), expected,
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(half_pair_convolution(h, filters * cutoff[:, None], None,
                                                     batch.sums), expected,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("offsets", [True, False])
def test_gradients_pass_gradcheck(offsets):
    """Random pairs over three 'molecules' (atoms 0-3, 4-8, 9-11), with and without the
    molecule offsets that split the pairs between threads."""
    generator = torch.Generator().manual_seed(0)
    pieces, counts = [], []
    for first, n in ((0, 4), (4, 5), (9, 3)):
        i, j = torch.triu_indices(n, n, 1)
        pieces.append((i + first, j + first))
        counts.append(len(i))
    idx_i = torch.cat([p[0] for p in pieces])
    idx_j = torch.cat([p[1] for p in pieces])
    pair_offsets = torch.tensor([0, *torch.tensor(counts).cumsum(0).tolist()])
    sums = MessageSums(idx_i, idx_j, 12, torch.float64, pair_offsets if offsets else None)
    h = torch.randn(12, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    filters = torch.randn(len(idx_i), 3, dtype=torch.float64, generator=generator,
                          requires_grad=True)
    cutoff = torch.rand(len(idx_i), dtype=torch.float64, generator=generator)
    assert torch.autograd.gradcheck(
        lambda h, f: half_pair_convolution(h, f, cutoff, sums), (h, filters))


@pytest.mark.parametrize("width", [12, 38, 128])
def test_schnet_with_the_kernel_is_the_same_function(qm9_sample, monkeypatch, width):
    """Energies and every parameter's gradient against PyTorch's ops (MOLSTRATA_KERNELS=0),
    in float64, for the study's width and SchNetPack's."""
    torch.manual_seed(4)
    model = EnergyModel(n_atom_basis=width, n_interactions=3, n_rbf=9).double()
    batch = _batch(qm9_sample, [5, 0, 19, 3, 1, 11])
    args = (batch.numbers, batch.geometry, batch.idx_i, batch.idx_j, batch.molecule_index,
            batch.n_molecules)
    results = []
    for setting in ("1", "0"):
        monkeypatch.setenv(kernels.ENV_VAR, setting)
        assert kernels.usable(batch.geometry) == (setting == "1")
        energy = model(*args, sums=batch.sums)
        gradients = torch.autograd.grad(energy.square().sum(), list(model.parameters()))
        with torch.inference_mode():
            predicted = model(*args, sums=batch.sums)
        results.append((energy.detach(), gradients, predicted))
    (ours, our_grads, our_pred), (plain, plain_grads, _) = results
    torch.testing.assert_close(ours, plain, rtol=1e-12, atol=1e-12)
    assert torch.equal(our_pred, ours)  # prediction is the trained function, bit for bit
    for a, b in zip(our_grads, plain_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_any_number_of_threads_gives_the_same_bits(qm9_sample):
    """Threads take whole molecules, so each atom's sum runs in one order whatever their
    number: 1, 2 and 3 threads agree bit for bit, in float32, forward and backward."""
    batch = _batch(qm9_sample, list(range(20)), dtype=torch.float32)
    generator = torch.Generator().manual_seed(5)
    h = torch.randn(len(batch.numbers), 38, generator=generator, requires_grad=True)
    filters = torch.randn(len(batch.idx_i), 38, generator=generator, requires_grad=True)
    cutoff = torch.rand(len(batch.idx_i), generator=generator)
    grad = torch.randn(len(batch.numbers), 38, generator=generator)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            out = half_pair_convolution(h, filters, cutoff, batch.sums)
            results.append((out.detach(), *torch.autograd.grad(out, (h, filters), grad)))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)
    expected = _loop(h.detach().double(), (filters * cutoff[:, None]).detach().double(),
                     batch.idx_i, batch.idx_j)
    torch.testing.assert_close(results[0][0].double(), expected, rtol=1e-5, atol=1e-4)


def test_forces_flow_through_the_cutoff(qm9_sample, monkeypatch):
    """With gradients wanted through the distances the cutoff is applied before the kernel
    (which gives no gradient for it): forces equal PyTorch's ops'."""
    torch.manual_seed(6)
    model = EnergyModel(n_atom_basis=10, n_interactions=2, n_rbf=6).double()
    batch = _batch(qm9_sample, [2, 7])
    positions = torch.as_tensor(qm9_sample.subset([2, 7]).positions).requires_grad_()
    distances = torch.linalg.vector_norm(positions[batch.idx_j] - positions[batch.idx_i], dim=1)
    forces = []
    for setting in ("1", "0"):
        monkeypatch.setenv(kernels.ENV_VAR, setting)
        energy = model(batch.numbers, distances, batch.idx_i, batch.idx_j,
                       batch.molecule_index, batch.n_molecules, sums=batch.sums).sum()
        forces.append(-torch.autograd.grad(energy, positions, retain_graph=True)[0])
    assert forces[0].abs().max() > 1e-3
    torch.testing.assert_close(forces[0], forces[1], rtol=1e-10, atol=1e-12)


def test_the_backward_runs_the_forward_s_library(tiny_molecules, monkeypatch):
    """Turning the kernel off between a forward and its backward changes nothing."""
    batch = _batch(tiny_molecules, [1, 2])
    h = torch.randn(len(batch.numbers), 4, dtype=torch.float64, requires_grad=True)
    filters = torch.randn(len(batch.idx_i), 4, dtype=torch.float64, requires_grad=True)
    out = half_pair_convolution(h, filters, None, batch.sums)
    monkeypatch.setenv(kernels.ENV_VAR, "0")
    grad_h, grad_filters = torch.autograd.grad(out.square().sum(), (h, filters))
    senders, receivers = message_routes(batch.idx_i, batch.idx_j, True)
    plain = pass_messages(h, filters, senders, receivers, True, None)
    expected = torch.autograd.grad(plain.square().sum(), (h, filters))
    torch.testing.assert_close(grad_h, expected[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_filters, expected[1], rtol=1e-12, atol=1e-12)


def test_inputs_that_do_not_fit_the_batch_are_refused(tiny_molecules):
    batch = _batch(tiny_molecules, [0, 1])
    n_atoms, n_pairs = len(batch.numbers), len(batch.idx_i)
    h = torch.randn(n_atoms, 4, dtype=torch.float64)
    filters = torch.randn(n_pairs, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="do not fit"):
        half_pair_convolution(h[:-1], filters, None, batch.sums)
    with pytest.raises(ValueError, match="do not fit"):
        half_pair_convolution(h, filters[:-1], None, batch.sums)
    with pytest.raises(ValueError, match="one dtype"):
        half_pair_convolution(h, filters.float(), None, batch.sums)
    with pytest.raises(ValueError, match="no gradient"):
        half_pair_convolution(h, filters, torch.rand(n_pairs, dtype=torch.float64,
                                                     requires_grad=True), batch.sums)


def test_message_sums_check_their_indices():
    idx = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        MessageSums(idx, torch.tensor([1, 2]), 2, torch.float32)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        MessageSums(torch.tensor([-1, 0]), idx, 3, torch.float32)
    with pytest.raises(ValueError, match="pair_offsets"):
        MessageSums(idx, idx + 1, 3, torch.float32, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="pair_offsets"):
        MessageSums(idx, idx + 1, 3, torch.float32, torch.tensor([0, 2, 1, 2]))


def test_a_failed_build_falls_back_to_pytorch_ops(qm9_sample, monkeypatch, tmp_path):
    """No compiler: the model runs PyTorch's ops and says why; nothing is left half-written."""
    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("MOLSTRATA_CACHE_DIR", str(tmp_path / "cache"))
    assert kernels.library() is None
    assert "no compiled kernel" in kernels.status() and "PyTorch ops" in kernels.status()
    assert kernels.built() is None
    assert not list((tmp_path / "cache").rglob("*.so"))
    model = EnergyModel(n_atom_basis=8, n_interactions=2, n_rbf=5).double()
    batch = _batch(qm9_sample, [1, 4])
    assert not kernels.usable(batch.geometry)
    args = (batch.numbers, batch.geometry, batch.idx_i, batch.idx_j, batch.molecule_index,
            batch.n_molecules)
    torch.testing.assert_close(model(*args, sums=batch.sums), model(*args),
                               rtol=1e-12, atol=1e-12)


def test_a_broken_compiler_is_reported(monkeypatch, tmp_path):
    compiler = tmp_path / "c++"
    compiler.write_text("#!/bin/sh\necho 'fatal error: out of cheese' >&2\nexit 1\n")
    compiler.chmod(0o755)
    monkeypatch.setenv("CXX", str(compiler))
    with pytest.raises(kernels.KernelBuildError, match="out of cheese"):
        kernels.build(tmp_path / "kernels")
    assert not [p for p in (tmp_path / "kernels").iterdir()]


def test_a_built_library_is_reused(tmp_path):
    if kernels.library() is None:
        pytest.skip(f"no kernel here: {kernels.status()}")
    first = kernels.build(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert kernels.build(tmp_path) == first and first.stat().st_mtime_ns == stamp


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setenv(kernels.ENV_VAR, "off")
    assert kernels.library() is None and not kernels.usable(torch.zeros(2))
    assert kernels.status() == "PyTorch ops (MOLSTRATA_KERNELS=off)"


def test_a_damaged_library_in_the_cache_is_rebuilt(monkeypatch, tmp_path):
    """A new process that finds a damaged library under the kernel's name builds it again."""
    if kernels.library() is None:
        pytest.skip(f"no kernel here: {kernels.status()}")
    monkeypatch.setenv("MOLSTRATA_CACHE_DIR", str(tmp_path))
    path = kernels.build(tmp_path / "kernels")
    damaged = tmp_path / "damaged"
    damaged.write_bytes(b"not a shared library")
    os.replace(damaged, path)  # a new file: this process's loaded libraries are never touched
    done = subprocess.run(
        [sys.executable, "-c", "from molstrata.models import kernels; print(kernels.status())"],
        capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "compiled kernel", done.stderr
    assert path.read_bytes()[:4] == b"\x7fELF"


def _ulps(ours: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    return (ours.double() - exact).abs() / (torch.finfo(torch.float32).eps * exact.abs())


@pytest.mark.parametrize("rows, width", [(3, 5), (1000, 38), (700, 128), (17, 1)])
def test_bias_softplus_is_softplus_within_3_ulp(rows, width):
    """The kernel's float32 softplus of a linear layer's output plus its bias, forward and
    backward, against float64 PyTorch; shapes whose rows are no multiple of a vector's length,
    and small tensors (one thread) as well as big ones (shared)."""
    if kernels.library() is None:
        pytest.skip(f"no kernel here: {kernels.status()}")
    generator = torch.Generator().manual_seed(rows)
    z = torch.randn(rows, width, generator=generator) * 30
    z.view(-1)[:12] = torch.tensor([0.0, 20.0, 20.001, 19.999, -20.0, -87.0, -88.0, -104.0,
                                    88.0, 1e-8, -1e-8, -0.5])[:z.numel()][:12]
    bias = torch.randn(width, generator=generator)
    z.requires_grad_(), bias.requires_grad_()
    out = kernels.bias_softplus(z, bias)
    exact_in = (z.detach() + bias.detach()).double()  # the sum rounds to float32 first
    exact = torch.nn.functional.softplus(exact_in)
    shown = exact > 1e-30  # below, the kernel gives 0 where float32 would hold a subnormal
    assert _ulps(out.detach(), exact)[shown].max() <= 3
    assert (out.detach()[~shown] < 1e-30).all()
    grad = torch.randn(rows, width, generator=generator)
    grad_z, grad_bias = torch.autograd.grad(out, (z, bias), grad)
    slope = grad.double() * torch.sigmoid(exact_in)
    torch.testing.assert_close(grad_z.double(), slope, rtol=1e-6, atol=1e-30)
    torch.testing.assert_close(grad_bias.double(), slope.sum(0), rtol=1e-5, atol=1e-5)


def test_bias_softplus_falls_back_for_float64_and_without_the_kernel(monkeypatch):
    z, bias = torch.randn(40, 6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    expected = torch.nn.functional.softplus(z + bias)
    assert torch.equal(kernels.bias_softplus(z, bias), expected)
    monkeypatch.setenv(kernels.ENV_VAR, "0")
    z, bias = z.float(), bias.float()
    assert torch.equal(kernels.bias_softplus(z, bias), torch.nn.functional.softplus(z + bias))


def test_float32_prediction_is_the_trained_function(qm9_sample):
    """In float32 the kernel's softplus and convolution serve training and prediction alike:
    prediction without autograd gives the training forward's bits."""
    torch.manual_seed(8)
    model = EnergyModel(n_atom_basis=38, n_interactions=3, n_rbf=20)
    batch = _batch(qm9_sample, list(range(20)), dtype=torch.float32)
    args = (batch.numbers, batch.geometry, batch.idx_i, batch.idx_j, batch.molecule_index,
            batch.n_molecules)
    trained = model(*args, sums=batch.sums)
    with torch.inference_mode():
        assert torch.equal(model(*args, sums=batch.sums), trained.detach())
        torch.testing.assert_close(model(*args), trained.detach(), rtol=1e-5, atol=1e-4)
