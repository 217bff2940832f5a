"""Benchmark: does this CPU stall on subnormal floats in SchNet's first filter layer?

    python bench/bench_subnormals.py [--n-rbf 20 50] [--repeats 20]

A Gaussian radial basis exp(-(d - mu)^2 / 2 sigma^2) underflows, far from its centre, to
subnormal floats; matrix multiplies on them are tens of times slower on some Intel CPUs and not
at all on others (PEERS.md). molstrata sets basis values under 1e-30 to exactly zero
(`models.radial.FLUSH_BELOW`). This times the weight-gradient product of the first filter layer
(rbf^T @ grad, the product PEERS.md found stalling) on the real basis of 10,000 QM9 molecules'
pairs, with and without that flush, and prints the share of subnormal entries and the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from schnetpack_pipeline import cpu_model  # bench/ is on sys.path

from molstrata.data.qm9 import load_qm9
from molstrata.models.neighbors import neighbor_pairs_chunked
from molstrata.models.radial import GaussianRBF


def median_ms(function, repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-rbf", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=12_800, help="pairs per product (a batch)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    qm9 = load_qm9(progress=False)
    molecules = qm9.subset(np.random.default_rng(0).permutation(len(qm9))[:10_000])
    positions = torch.as_tensor(molecules.positions, dtype=torch.float64)
    offsets = torch.as_tensor(molecules.offsets)
    distances = neighbor_pairs_chunked(positions, offsets, 5.0)[2].float()[: args.pairs]
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {args.threads} threads; "
          f"{len(distances):,} pairs, 128 filters")
    grad = torch.randn(len(distances), 128)
    for n_rbf in args.n_rbf:
        raw = GaussianRBF(n_rbf, 5.0, flush_below=0.0)(distances)
        flushed = GaussianRBF(n_rbf, 5.0)(distances)
        tiny = torch.finfo(torch.float32).tiny
        share = float(((raw > 0) & (raw < tiny)).float().mean())
        slow = median_ms(lambda r=raw: r.T @ grad, args.repeats)
        fast = median_ms(lambda r=flushed: r.T @ grad, args.repeats)
        print(f"{n_rbf} Gaussians: {100 * share:.1f} % subnormal; rbf^T @ grad "
              f"{slow:.2f} ms as computed, {fast:.2f} ms flushed (molstrata): {slow / fast:.1f}x")


if __name__ == "__main__":
    main()
