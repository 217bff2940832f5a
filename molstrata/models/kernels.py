"""SchNet's and PaiNN's CPU hot spots as compiled kernels (kernels.cpp): SchNet's convolution
over a batch's pairs, a linear layer's bias with the softplus after it, and PaiNN's interaction
messages; the "kernel-openmp" backend of backends.py.

PyTorch's ops run the convolution as a gather of (2 n_pairs, width) sender features, a product
with the filters and a sum per receiver, each a pass over tensors too big for the caches, and
as many again in the backward. The kernel reads each pair's filter once, in order, and adds
its messages straight into the atoms' rows, which stay in the cache; the backward gives the
features' and the filters' gradients in one more pass. It also applies the cosine cutoff on
the fly, so the filters are never multiplied by it in memory. `bias_softplus` adds a layer's
bias and takes the softplus in one pass (float32 within 3 ulp of PyTorch's), and its backward
reads only the result, so the pre-activation is never kept. `painn_messages` does for PaiNN
what the convolution does for SchNet, with its three parts of each message (scalar, along the
direction, along the sender's vector features) summed into dq and dmu in the same pass; where
PyTorch's ops write half a dozen (2 n_pairs, 3F) tensors per block and more in the backward,
it writes none forward and only the filters' gradient backward.

The kernels are C++ with OpenMP and no PyTorch headers: on first use they are compiled (about
a second; torch.utils.cpp_extension, whose PyTorch headers take about 26 s to compile on a
2-core Xeon, was measured and not taken) with the machine's C++ compiler ($CXX, else c++, g++
or clang++) into molstrata's cache folder (`data.cache.cache_dir()`, under kernels/), keyed by
the source, the compiler and the CPU, and loaded with ctypes; the library links the OpenMP
runtime PyTorch has loaded, so it shares PyTorch's threads. Without a compiler, or with
MOLSTRATA_KERNELS=0, the models run the "torch" backend and computes the same function, more
slowly; `status()` says which and why.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch.autograd.function import once_differentiable

ENV_VAR = "MOLSTRATA_KERNELS"
"""Set to 0 (or off, false, no) to use PyTorch's ops instead of the compiled kernels."""

SOURCE = Path(__file__).with_name("kernels.cpp")
VERSION = 4
"""What `molstrata_kernels_version` of a built library must return."""

_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_state: dict = {}


class KernelBuildError(RuntimeError):
    """The kernel could not be compiled or loaded; the message says why."""


def enabled() -> bool:
    """False when $MOLSTRATA_KERNELS turns the kernel off."""
    return os.environ.get(ENV_VAR, "1").strip().lower() not in {"0", "off", "false", "no"}


def library() -> ctypes.CDLL | None:
    """The loaded kernel library, built on first use; None when it is turned off or cannot be
    built here (`status()` says why). Built at most once per process."""
    if not enabled():
        return None
    if "library" not in _state:
        try:
            path = build()
            try:
                _state["library"] = _load(path)
            except KernelBuildError:  # a damaged file in the cache: build it once more
                path.unlink(missing_ok=True)
                _state["library"] = _load(build())
        except KernelBuildError as error:
            _state["library"], _state["reason"] = None, str(error)
    return _state["library"]


def _loaded() -> ctypes.CDLL:
    """The library a model that chose the kernels runs, whatever $MOLSTRATA_KERNELS says
    since."""
    lib = _state.get("library") or library()
    if lib is None:
        raise KernelBuildError(f"the compiled kernels cannot run here: {status()}")
    return lib


def status() -> str:
    """A few words: whether the models run the compiled kernels on a CPU, and if not why
    (building them if need be)."""
    if not enabled():
        return f"PyTorch ops ({ENV_VAR}={os.environ[ENV_VAR]})"
    if library() is None:
        return f"PyTorch ops (no compiled kernel: {_state['reason']})"
    return "compiled kernel"


def built() -> Path | None:
    """The compiled library this process loaded, if any."""
    return _state.get("path") if library() is not None else None


def build(directory: Path | None = None) -> Path:
    """The compiled library's path, compiling it if no library of this source, compiler and
    CPU is in `directory` (default: the cache folder's kernels/). Raises KernelBuildError."""
    compiler = os.environ.get("CXX") or next(
        (found for name in ("c++", "g++", "clang++") if (found := shutil.which(name))), None)
    if compiler is None:
        raise KernelBuildError("no C++ compiler found; install g++ or set $CXX")
    if directory is None:
        from molstrata.data.cache import cache_dir

        directory = cache_dir() / "kernels"
    source = SOURCE.read_bytes()
    openmp = _openmp_runtime()
    attempts = [["-march=native", "-fopenmp"], ["-fopenmp"], []]
    key = hashlib.sha256(b"\0".join([
        source, compiler.encode(), _compiler_version(compiler), _cpu().encode(),
        str(openmp).encode(), repr(attempts).encode()])).hexdigest()[:16]
    path = Path(directory) / f"schnet_kernels-{key}.so"
    if path.is_file():
        _state["path"] = path
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise KernelBuildError(f"cannot write {path.parent} ({error.strerror})") from None
    errors = []
    for flags in attempts:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
        command = [compiler, "-O3", "-shared", "-fPIC", *flags, "-o", name, str(SOURCE)]
        if "-fopenmp" in flags and openmp is not None:
            # resolve OpenMP against PyTorch's runtime, so both use one pool of threads
            command[-1:-1] = ["-Wl,--as-needed", str(openmp)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as error:
            done = None
            errors.append(str(error))
        if done is not None and done.returncode == 0:
            os.replace(name, path)
            _state["path"] = path
            return path
        Path(name).unlink(missing_ok=True)
        if done is not None:
            errors.append((done.stderr.strip().splitlines() or ["no output"])[-1])
    raise KernelBuildError(f"{Path(compiler).name} failed: {errors[-1]}")


def _load(path: Path) -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(str(path))
        if lib.molstrata_kernels_version() != VERSION:
            raise KernelBuildError(f"{path} is another version; delete it")
    except (OSError, AttributeError) as error:
        raise KernelBuildError(f"cannot load {path} ({error})") from None
    p, i64, n = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for suffix in _SUFFIX.values():
        for name, argtypes in (
                ("pair_conv", [p, p, p, p, p, p, i64, i64, i64, n, n, p]),
                ("pair_conv_backward", [p, p, p, p, p, p, p, i64, i64, i64, n, n, p, p]),
                ("painn_messages", [p, p, p, p, p, i64, p, p, p, p, p, i64, i64, i64, n, n, p,
                                    p]),
                ("painn_messages_backward", [p, p, p, p, p, p, p, i64, p, p, p, p, p, i64, i64,
                                             i64, n, n, p, p, p, p, p, p, p]),
                ("bias_softplus", [p, p, p, i64, i64, n]),
                ("bias_softplus_backward", [p, p, p, p, i64, i64, n])):
            function = getattr(lib, f"{name}_{suffix}")
            function.argtypes, function.restype = argtypes, None
    return lib


def _compiler_version(compiler: str) -> bytes:
    try:
        return subprocess.run([compiler, "--version"], capture_output=True,
                              timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return b""


def _cpu() -> str:
    """What -march=native compiles for: the CPU's model and instruction sets."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({line for line in lines
                                 if line.startswith(("model name", "flags"))}))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def _openmp_runtime() -> Path | None:
    """The OpenMP library PyTorch loaded (Linux), to link the kernel against."""
    if not sys.platform.startswith("linux"):
        return None
    torch_dir = Path(torch.__file__).resolve().parent
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    for line in maps:
        name = line.split()[-1] if line.split() else ""
        if ("libgomp" in name or "libiomp" in name) and Path(name).resolve().is_relative_to(
                torch_dir):
            return Path(name)
    return None


def _pointer(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


class _PairConvolution(torch.autograd.Function):
    """out_i = sum over pairs (i, j) of h_j * filters_p * cutoff_p, and with both_ways the same
    over (j, i); the backward gives the gradients of h and of filters (not of cutoff)."""

    @staticmethod
    def forward(ctx, h, filters, cutoff, idx_i, idx_j, pair_offsets, both_ways):
        out = torch.zeros_like(h)
        molecules = 0 if pair_offsets is None else len(pair_offsets) - 1
        getattr(_loaded(), f"pair_conv_{_SUFFIX[h.dtype]}")(
            h.data_ptr(), filters.data_ptr(), _pointer(cutoff), idx_i.data_ptr(),
            idx_j.data_ptr(), _pointer(pair_offsets), molecules, len(idx_i), h.shape[1],
            both_ways, torch.get_num_threads(), out.data_ptr())
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(h, filters, cutoff, idx_i, idx_j, pair_offsets)
            ctx.molecules, ctx.both_ways = molecules, both_ways
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        h, filters, cutoff, idx_i, idx_j, pair_offsets = ctx.saved_tensors
        grad = grad.contiguous()
        grad_h = torch.zeros_like(h) if ctx.needs_input_grad[0] else None
        grad_filters = torch.empty_like(filters) if ctx.needs_input_grad[1] else None
        getattr(_loaded(), f"pair_conv_backward_{_SUFFIX[h.dtype]}")(
            grad.data_ptr(), h.data_ptr(), filters.data_ptr(), _pointer(cutoff),
            idx_i.data_ptr(), idx_j.data_ptr(), _pointer(pair_offsets), ctx.molecules,
            len(idx_i), h.shape[1], ctx.both_ways, torch.get_num_threads(), _pointer(grad_h),
            _pointer(grad_filters))
        return grad_h, grad_filters, None, None, None, None, None


class _PaiNNMessages(torch.autograd.Function):
    """PaiNN's messages summed per receiving atom, (dq, dmu), the filters computed from the
    radial basis on the fly; the backward gives the gradients of x, mu, the filter network's
    weight and bias, and where forces need them of the radial basis, cutoff and directions,
    in one pass over the pairs."""

    @staticmethod
    def forward(ctx, x, mu, rbf, weight, bias, cutoff, directions, idx_i, idx_j, pair_offsets,
                both_ways):
        n_atoms, width = x.shape[0], x.shape[1] // 3
        weight_t = weight.t().contiguous()
        dq = x.new_zeros(n_atoms, width)
        dmu = x.new_zeros(n_atoms, 3, width)
        molecules = 0 if pair_offsets is None else len(pair_offsets) - 1
        getattr(_loaded(), f"painn_messages_{_SUFFIX[x.dtype]}")(
            x.data_ptr(), _pointer(mu), rbf.data_ptr(), weight_t.data_ptr(), bias.data_ptr(),
            rbf.shape[1], _pointer(cutoff), directions.data_ptr(), idx_i.data_ptr(),
            idx_j.data_ptr(), _pointer(pair_offsets), molecules, len(idx_i), width, both_ways,
            torch.get_num_threads(), dq.data_ptr(), dmu.data_ptr())
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x, mu, rbf, weight_t, bias, cutoff, directions, idx_i, idx_j,
                                  pair_offsets)
            ctx.molecules, ctx.both_ways = molecules, both_ways
        return dq, dmu

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_dq, grad_dmu):
        x, mu, rbf, weight_t, bias, cutoff, directions, idx_i, idx_j, pair_offsets = \
            ctx.saved_tensors
        grad_dq, grad_dmu = grad_dq.contiguous(), grad_dmu.contiguous()
        grad_x = torch.zeros_like(x)
        grad_mu = None if mu is None else torch.zeros_like(mu)
        grad_weight_t, grad_bias = torch.empty_like(weight_t), torch.empty_like(bias)
        geometry = any(ctx.needs_input_grad[i] for i in (2, 5, 6))  # rbf, cutoff, directions
        grad_rbf = torch.empty_like(rbf) if geometry else None
        grad_cutoff = torch.empty_like(cutoff) if geometry and cutoff is not None else None
        grad_directions = torch.empty_like(directions) if geometry else None
        getattr(_loaded(), f"painn_messages_backward_{_SUFFIX[x.dtype]}")(
            grad_dq.data_ptr(), grad_dmu.data_ptr(), x.data_ptr(), _pointer(mu),
            rbf.data_ptr(), weight_t.data_ptr(), bias.data_ptr(), rbf.shape[1],
            _pointer(cutoff), directions.data_ptr(), idx_i.data_ptr(), idx_j.data_ptr(),
            _pointer(pair_offsets), ctx.molecules, len(idx_i), x.shape[1] // 3, ctx.both_ways,
            torch.get_num_threads(), grad_x.data_ptr(), _pointer(grad_mu),
            grad_weight_t.data_ptr(), grad_bias.data_ptr(), _pointer(grad_rbf),
            _pointer(grad_cutoff), _pointer(grad_directions))
        return (grad_x, grad_mu, grad_rbf, grad_weight_t.t(), grad_bias, grad_cutoff,
                grad_directions, None, None, None, None)


class _BiasSoftplus(torch.autograd.Function):
    """softplus(z + bias) in one pass; the backward reads only the result."""

    @staticmethod
    def forward(ctx, z, bias):
        z, bias = z.contiguous(), bias.contiguous()
        out = torch.empty_like(z)
        getattr(_loaded(), f"bias_softplus_{_SUFFIX[z.dtype]}")(
            z.data_ptr(), bias.data_ptr(), out.data_ptr(), z.shape[0], z.shape[1],
            torch.get_num_threads())
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        grad = grad.contiguous()
        threads = torch.get_num_threads()
        grad_z = torch.empty_like(out)
        grad_bias = out.new_zeros(threads, out.shape[1])  # a row per thread, summed here
        getattr(_loaded(), f"bias_softplus_backward_{_SUFFIX[out.dtype]}")(
            grad.data_ptr(), out.data_ptr(), grad_z.data_ptr(), grad_bias.data_ptr(),
            out.shape[0], out.shape[1], threads)
        return grad_z, grad_bias.sum(0) if ctx.needs_input_grad[1] else None


def _check(*tensors: torch.Tensor) -> None:
    """The kernels read raw float32 or float64 memory on the CPU: refuse anything else."""
    dtype = tensors[0].dtype
    if dtype not in _SUFFIX or any(t.dtype != dtype or t.device.type != "cpu" for t in tensors):
        raise ValueError(f"the compiled kernels take float32 or float64 CPU tensors of one "
                         f"dtype, got {[(str(t.dtype), t.device.type) for t in tensors]}")


def bias_softplus(z: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """softplus(z + bias) for z (rows, width) and bias (width,): a linear layer's bias and
    activation in one pass, and a backward that needs only the result (its slope is
    1 - exp(-softplus)). float32 within 3 ulp of PyTorch's; float64 from libm."""
    _check(z, bias)
    if z.dim() != 2 or bias.shape != (z.shape[1],):
        raise ValueError(f"z {tuple(z.shape)} and bias {tuple(bias.shape)} do not fit")
    return _BiasSoftplus.apply(z, bias)


def pair_convolution(h: torch.Tensor, filters: torch.Tensor, cutoff: torch.Tensor | None,
                     pairs, both_ways: bool = True) -> torch.Tensor:
    """(n_atoms, width): for each atom i the sum over its pairs (i, j) of h_j * filter * cutoff,
    and with both_ways (half pairs) the messages along (j, i) too.

    h: (n_atoms, width); filters: (n_pairs, width); cutoff: (n_pairs,) or None (filters already
    cut off); pairs: a `MessageSums`, which checked the indices against its n_atoms and that
    each molecule's pairs join only its own atoms, so that its molecule offsets can split the
    pairs between threads (without them one thread runs). Differentiable in h and filters;
    cutoff must not need a gradient."""
    _check(h, filters, *([] if cutoff is None else [cutoff]))
    if h.shape != (pairs.n_atoms, filters.shape[1]) or len(filters) != pairs.n_pairs:
        raise ValueError(f"features {tuple(h.shape)} and filters {tuple(filters.shape)} do not "
                         f"fit the batch's {pairs.n_atoms} atoms and {pairs.n_pairs} pairs")
    if cutoff is not None and (cutoff.requires_grad or cutoff.shape != (pairs.n_pairs,)):
        raise ValueError("cutoff must be (n_pairs,) and need no gradient")
    return _PairConvolution.apply(
        h.contiguous(), filters.contiguous(), None if cutoff is None else cutoff.contiguous(),
        pairs.idx_i, pairs.idx_j, pairs.pair_offsets, int(both_ways))


def painn_messages(x: torch.Tensor, mu: torch.Tensor | None, rbf: torch.Tensor,
                   weight: torch.Tensor, bias: torch.Tensor, cutoff: torch.Tensor | None,
                   directions: torch.Tensor, pairs,
                   both_ways: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """PaiNN's interaction messages summed per receiving atom: (dq (n_atoms, F), dmu
    (n_atoms, 3, F)), with dq_i = sum_j x_q,j w_q and dmu_i = sum_j x_R,j w_R r̂_ij +
    x_mu,j w_mu mu_j over i's pairs (i, j), and with both_ways (half pairs) the messages along
    (j, i) too, with the same filter and -r̂_ij. Each pair's filter w = (weight rbf + bias)
    cutoff, split in (w_q, w_R, w_mu), is computed as the pair is read and never stored.

    x: (n_atoms, 3F), the context (x_q, x_R, x_mu); mu: (n_atoms, 3, F), or None for zeros
    (the first block: its term is skipped); rbf: (n_pairs, n_rbf), the radial basis;
    weight: (3F, n_rbf) and bias: (3F,), the block's rows of the filter network; cutoff:
    (n_pairs,) or None (no cutoff); directions: (n_pairs, 3) unit vectors r̂_ij; pairs: a
    `MessageSums` (see `pair_convolution`). Differentiable in every tensor."""
    _check(x, rbf, weight, bias, directions, *(t for t in (mu, cutoff) if t is not None))
    n_atoms, n_pairs, width = pairs.n_atoms, pairs.n_pairs, bias.shape[0] // 3
    if (x.shape != (n_atoms, 3 * width) or bias.shape != (3 * width,)
            or rbf.shape[0] != n_pairs or weight.shape != (3 * width, rbf.shape[1])
            or directions.shape != (n_pairs, 3)
            or (mu is not None and mu.shape != (n_atoms, 3, width))
            or (cutoff is not None and cutoff.shape != (n_pairs,))):
        raise ValueError(f"context {tuple(x.shape)}, radial basis {tuple(rbf.shape)}, filter "
                         f"weight {tuple(weight.shape)} and directions "
                         f"{tuple(directions.shape)} do not fit the batch's {n_atoms} atoms "
                         f"and {n_pairs} pairs")
    return _PaiNNMessages.apply(
        x.contiguous(), None if mu is None else mu.contiguous(), rbf.contiguous(), weight,
        bias.contiguous(), None if cutoff is None else cutoff.contiguous(),
        directions.contiguous(), pairs.idx_i, pairs.idx_j, pairs.pair_offsets, int(both_ways))
