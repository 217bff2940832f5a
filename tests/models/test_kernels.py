"""SchNet's compiled CPU kernels (models/kernels.py): built here with the machine's C++
compiler, they must compute what a loop over pairs computes, with gradients that pass
gradcheck in float64, with any number of threads, and fall back cleanly when they cannot be
built."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

from molstrata.models import EnergyModel, backends, kernels
from molstrata.models.kernels import bias_softplus, pair_convolution
from molstrata.models.messages import MessageSums
from molstrata.training.batches import DeviceDataset

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _kernels_on(monkeypatch):
    monkeypatch.delenv(kernels.ENV_VAR, raising=False)


def _needs_kernel():
    if kernels.library() is None:
        pytest.skip(f"no kernel here: {kernels.status()}")


def _batch(molecules, rows, dtype=torch.float64):
    dataset = DeviceDataset(molecules, 5.0, CPU, dtype)
    return dataset.batch(torch.as_tensor(rows))


def _loop(h, filters, idx_i, idx_j, both_ways=True):
    expected = torch.zeros_like(h)
    for p, (i, j) in enumerate(zip(idx_i.tolist(), idx_j.tolist())):
        expected[i] += h[j] * filters[p]
        if both_ways:
            expected[j] += h[i] * filters[p]
    return expected


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


def test_the_kernel_is_built_where_a_compiler_is():
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler on this machine")
    assert kernels.library() is not None, kernels.status()
    assert kernels.status() == "compiled kernel"
    assert kernels.built().is_file()
    assert backends.choose(CPU) == "kernel-openmp"


@pytest.mark.parametrize("both_ways", [True, False])
def test_the_convolution_matches_a_loop_over_pairs(tiny_molecules, both_ways):
    _needs_kernel()
    batch = _batch(tiny_molecules, [3, 9, 0])
    h = torch.randn(len(batch.numbers), 5, dtype=torch.float64)
    filters = torch.randn(len(batch.idx_i), 5, dtype=torch.float64)
    cutoff = torch.rand(len(batch.idx_i), dtype=torch.float64)
    expected = _loop(h, filters * cutoff[:, None], batch.idx_i, batch.idx_j, both_ways)
    one_thread = MessageSums(batch.idx_i, batch.idx_j, len(batch.numbers))
    for pairs in (batch.sums, one_thread):
        out = pair_convolution(h, filters, cutoff, pairs, both_ways)
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    out = pair_convolution(h, filters * cutoff[:, None], None, batch.sums, both_ways)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("offsets", [True, False])
@pytest.mark.parametrize("both_ways", [True, False])
def test_the_convolution_passes_gradcheck(offsets, both_ways):
    """Random features over three molecules' pairs, with and without the molecule offsets
    that split the pairs between threads, half pairs and directed."""
    _needs_kernel()
    generator = torch.Generator().manual_seed(0)
    pairs = _three_molecules(offsets)
    h = torch.randn(12, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    filters = torch.randn(pairs.n_pairs, 3, dtype=torch.float64, generator=generator,
                          requires_grad=True)
    cutoff = torch.rand(pairs.n_pairs, dtype=torch.float64, generator=generator)
    assert torch.autograd.gradcheck(
        lambda h, f: pair_convolution(h, f, cutoff, pairs, both_ways), (h, filters))


@pytest.mark.parametrize("rows", [5, 3000])  # one thread, and rows shared between threads
def test_bias_softplus_passes_gradcheck(rows):
    _needs_kernel()
    generator = torch.Generator().manual_seed(rows)
    z = (torch.randn(rows, 24, dtype=torch.float64, generator=generator) * 8).requires_grad_()
    bias = torch.randn(24, dtype=torch.float64, generator=generator, requires_grad=True)
    torch.testing.assert_close(bias_softplus(z, bias),
                               torch.nn.functional.softplus(z + bias), rtol=1e-15, atol=0)
    assert torch.autograd.gradcheck(bias_softplus, (z, bias), fast_mode=rows > 100)


def test_any_number_of_threads_gives_the_same_bits(qm9_sample):
    """Threads take whole molecules, so each atom's sum runs in one order whatever their
    number: 1, 2 and 3 threads agree bit for bit, in float32, forward and backward."""
    _needs_kernel()
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
            out = pair_convolution(h, filters, cutoff, batch.sums)
            results.append((out.detach(), *torch.autograd.grad(out, (h, filters), grad)))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)
    expected = _loop(h.detach().double(), (filters * cutoff[:, None]).detach().double(),
                     batch.idx_i, batch.idx_j)
    torch.testing.assert_close(results[0][0].double(), expected, rtol=1e-5, atol=1e-4)


def test_the_backward_runs_the_forward_s_library(tiny_molecules, monkeypatch):
    """Turning the kernel off between a forward and its backward changes nothing."""
    _needs_kernel()
    batch = _batch(tiny_molecules, [1, 2])
    h = torch.randn(len(batch.numbers), 4, dtype=torch.float64, requires_grad=True)
    filters = torch.randn(len(batch.idx_i), 4, dtype=torch.float64, requires_grad=True)
    out = pair_convolution(h, filters, None, batch.sums)
    monkeypatch.setenv(kernels.ENV_VAR, "0")
    grad_h, grad_filters = torch.autograd.grad(out.square().sum(), (h, filters))
    expected = torch.autograd.grad(_loop(h, filters, batch.idx_i, batch.idx_j).square().sum(),
                                   (h, filters))
    torch.testing.assert_close(grad_h, expected[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_filters, expected[1], rtol=1e-12, atol=1e-12)


def test_inputs_the_kernel_cannot_read_are_refused():
    """The kernels read raw memory: every input that does not fit is refused before."""
    pairs = _three_molecules()
    h = torch.randn(12, 4, dtype=torch.float64)
    filters = torch.randn(pairs.n_pairs, 4, dtype=torch.float64)
    for wrong_h, wrong_filters in ((h[:, :-1], filters), (h[:-1], filters), (h, filters[:-1])):
        with pytest.raises(ValueError, match="do not fit"):
            pair_convolution(wrong_h, wrong_filters, None, pairs)
    with pytest.raises(ValueError, match="one dtype"):
        pair_convolution(h, filters.float(), None, pairs)
    with pytest.raises(ValueError, match="float32 or float64"):
        pair_convolution(h.half(), filters.half(), None, pairs)
    with pytest.raises(ValueError, match="no gradient"):
        pair_convolution(h, filters, torch.rand(pairs.n_pairs, dtype=torch.float64,
                                                requires_grad=True), pairs)
    with pytest.raises(ValueError, match="do not fit"):
        bias_softplus(h, torch.zeros(3, dtype=torch.float64))


def test_without_a_compiler_models_fall_back_to_torch(qm9_sample, monkeypatch, tmp_path):
    """No compiler: a new model chooses the torch backend, says why, and computes what the
    kernels compute; nothing is left half-written."""
    torch.manual_seed(9)
    model = EnergyModel(n_atom_basis=8, n_interactions=2, n_rbf=5).double()
    batch = _batch(qm9_sample, [1, 4])
    args = (batch.numbers, batch.geometry, batch.idx_i, batch.idx_j, batch.molecule_index,
            batch.n_molecules)
    expected = model(*args, sums=batch.sums).detach()
    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("MOLSTRATA_CACHE_DIR", str(tmp_path / "cache"))
    assert kernels.library() is None and kernels.built() is None
    assert "no compiled kernel" in kernels.status() and "PyTorch ops" in kernels.status()
    assert not list((tmp_path / "cache").rglob("*.so"))
    fresh = EnergyModel(n_atom_basis=8, n_interactions=2, n_rbf=5).double()
    fresh.load_state_dict(model.state_dict())
    assert fresh.backend == "torch"
    torch.testing.assert_close(fresh(*args, sums=batch.sums), expected, rtol=1e-12,
                               atol=1e-12)


def test_a_broken_compiler_is_reported(monkeypatch, tmp_path):
    compiler = tmp_path / "c++"
    compiler.write_text("#!/bin/sh\necho 'fatal error: out of cheese' >&2\nexit 1\n")
    compiler.chmod(0o755)
    monkeypatch.setenv("CXX", str(compiler))
    with pytest.raises(kernels.KernelBuildError, match="out of cheese"):
        kernels.build(tmp_path / "kernels")
    assert not [p for p in (tmp_path / "kernels").iterdir()]


def test_a_built_library_is_reused(tmp_path):
    _needs_kernel()
    first = kernels.build(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert kernels.build(tmp_path) == first and first.stat().st_mtime_ns == stamp


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setenv(kernels.ENV_VAR, "off")
    assert kernels.library() is None and backends.choose(CPU) == "torch"
    assert kernels.status() == "PyTorch ops (MOLSTRATA_KERNELS=off)"
    assert EnergyModel(n_atom_basis=4, n_interactions=1, n_rbf=3).backend == "torch"


def test_a_damaged_library_in_the_cache_is_rebuilt(monkeypatch, tmp_path):
    """A new process that finds a damaged library under the kernel's name builds it again."""
    _needs_kernel()
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
    _needs_kernel()
    generator = torch.Generator().manual_seed(rows)
    z = torch.randn(rows, width, generator=generator) * 30
    z.view(-1)[:12] = torch.tensor([0.0, 20.0, 20.001, 19.999, -20.0, -87.0, -88.0, -104.0,
                                    88.0, 1e-8, -1e-8, -0.5])[:z.numel()][:12]
    bias = torch.randn(width, generator=generator)
    z.requires_grad_(), bias.requires_grad_()
    out = bias_softplus(z, bias)
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
