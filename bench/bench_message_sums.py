"""Benchmark: SchNet's CPU paths, each against the path without it: the compiled convolution
kernel (`--kernel`: kernel or PyTorch's ops), `MessageSums` (with or without), and blocked
convolutions (`--blocking`: blocked or not).

    python bench/bench_message_sums.py --kernel [--configs a b seed] [--rounds 12]
    python bench/bench_message_sums.py [--configs a b] [--rounds 12] [--batches 4]
    python bench/bench_message_sums.py --blocking --configs a seed [--rounds 12]

The peers' 10,000 QM9 training molecules (`peer_split`), configs (a) and (b) of the core
benchmark, 2 threads, float32, molstrata's fused Adam. One model per arm, the same batches
(built beforehand, so only the model's work is timed). The arms alternate every `--batches`
batches for `--rounds` rounds, in alternating order, so that the CPU's drift falls on both;
the figures are medians over the rounds, and the ratio is the median of the per-round ratios.
With --kernel, "kernel" is what `molstrata train`, `evaluate` and `predict` run on a CPU
with a C++ compiler (models/kernels.py) and "ops" the same model with MOLSTRATA_KERNELS=0, as it
runs without one (sums, blocked where it applies). Otherwise the kernel is off in both arms:
"with sums" sums messages with `MessageSums`, "index_add" with scatter-adds (what runs on
GPUs, and under torch.compile or torch.export); with --blocking, the arms are the model
blocked where its (pairs x filters) tensors pass `schnet.BLOCK_ABOVE` and the same model with
blocking off. Config `seed` is the study's default training (38 filters, 3 interactions,
batch 512).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from schnetpack_pipeline import CONFIGS, cpu_model, peer_split  # bench/ is on sys.path

from molstrata.data.qm9 import load_qm9
from molstrata.models import EnergyModel, kernels, schnet
from molstrata.training.batches import DeviceDataset
from molstrata.training.config import OptimConfig
from molstrata.training.loop import make_optimizer
from molstrata.training.targets import fit_standardization

SEED = {"n_atom_basis": 38, "n_filters": 38, "n_interactions": 3, "n_rbf": 20, "cutoff": 5.0,
        "batch_size": 512}
BLOCK_ABOVE = schnet.BLOCK_ABOVE


def run(model: EnergyModel, optimizer, chunk: list, size: int, sums: bool,
        train_steps: bool, blocking: bool = True, kernel: bool = False) -> float:
    """Molecules per second of training steps (or forward passes) over the batches `chunk`."""
    schnet.BLOCK_ABOVE = BLOCK_ABOVE if blocking else 1 << 62
    os.environ[kernels.ENV_VAR] = "1" if kernel else "0"
    start = time.perf_counter()
    for b in chunk:
        inputs = (b.numbers, b.geometry, b.idx_i, b.idx_j, b.molecule_index, b.n_molecules)
        if train_steps:
            error = model(*inputs, sums=b.sums if sums else None) - b.target
            optimizer.zero_grad(set_to_none=True)
            error.square().mean().backward()
            optimizer.step()
        else:
            with torch.inference_mode():
                model(*inputs, sums=b.sums if sums else None)
    return len(chunk) * size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["a", "b"], choices=["a", "b", "seed"])
    parser.add_argument("--blocking", action="store_true",
                        help="blocked convolutions against unblocked ones (with sums both)")
    parser.add_argument("--kernel", action="store_true",
                        help="the compiled convolution against PyTorch's ops")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--batches", type=int, default=4, help="batches per arm and round")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.kernel and kernels.library() is None:
        parser.error(f"the kernel cannot run here: {kernels.status()}")
    train, _, _ = peer_split(load_qm9(progress=False))
    fit = fit_standardization(train, train.property("U0"), extensive=True)
    dataset = DeviceDataset(train, 5.0, torch.device("cpu"), torch.float32,
                            train.property("U0") - fit.reference(train))
    for name in args.configs:
        config = SEED if name == "seed" else CONFIGS[name]
        size = config["batch_size"]
        order = torch.as_tensor(np.random.default_rng(0).permutation(len(dataset)))
        n_batches = min(args.rounds * args.batches, len(dataset) // size)
        batches = [dataset.batch(order[k * size:(k + 1) * size]) for k in range(n_batches)]
        names = (("kernel", "ops") if args.kernel else ("blocked", "unblocked")
                 if args.blocking else ("sums", "index_add"))
        arms = {}
        for arm in names:
            torch.manual_seed(0)
            model = EnergyModel(n_atom_basis=config["n_atom_basis"],
                                n_filters=config["n_filters"],
                                n_interactions=config["n_interactions"], n_rbf=config["n_rbf"],
                                cutoff=config["cutoff"])
            model.set_standardization(fit.atomrefs, fit.shift, fit.scale)
            optimizer, _ = make_optimizer(model, OptimConfig(batch_size=size, lr=5e-4,
                                                             scheduler="none"), 1)
            arms[arm] = (model, optimizer)

        def flags(arm: str) -> tuple[bool, bool, bool]:
            """(sums, blocking, kernel) of an arm."""
            return arm != "index_add", arm != "unblocked", arm == "kernel"

        for arm, (model, optimizer) in arms.items():  # warm-up
            for kind in (True, False):
                run(model, optimizer, batches[:2], size, flags(arm)[0], kind, *flags(arm)[1:])
        figures = {(arm, kind): [] for arm in arms for kind in (True, False)}
        for r in range(args.rounds):
            chunk = batches[(r * args.batches) % n_batches:][:args.batches]
            for arm in (names if r % 2 == 0 else names[::-1]):
                model, optimizer = arms[arm]
                sums, blocking, kernel = flags(arm)
                for kind in (True, False):
                    figures[arm, kind].append(run(model, optimizer, chunk, size, sums, kind,
                                                  blocking, kernel))
        for kind, label in ((True, "training steps"), (False, "forward passes")):
            ours, plain = figures[names[0], kind], figures[names[1], kind]
            ratios = sorted(a / b for a, b in zip(ours, plain))
            print(f"config ({name}) {label}: {names[0]} {statistics.median(ours):,.0f} mol/s, "
                  f"{names[1]} {statistics.median(plain):,.0f} mol/s; paired ratio "
                  f"{statistics.median(ratios):.3f}x [{ratios[0]:.3f}, {ratios[-1]:.3f}] over "
                  f"{args.rounds} rounds", flush=True)


if __name__ == "__main__":
    main()
