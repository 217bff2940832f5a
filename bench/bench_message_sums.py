"""Benchmark: SchNet's backends on a CPU (models/backends.py), each against the others: the
compiled kernels ("kernel-openmp", what a CPU with a C++ compiler runs) and PyTorch's ops
("torch", the fallback: GPUs, no compiler, torch.compile and torch.export).

    python bench/bench_message_sums.py [--configs a b seed] [--rounds 12] [--batches 4]

The peers' 10,000 QM9 training molecules (`peer_split`), configs (a) and (b) of the core
benchmark and the study's default (`seed`: 38 filters, 3 interactions, batch 512), 2 threads,
float32, molstrata's fused Adam. One model per backend, the same weights and batches (built
beforehand, with their `MessageSums`, so only the model's work is timed). The backends take
turns every `--batches` batches for `--rounds` rounds, in alternating order, so that the CPU's
drift falls on all; the figures are medians over the rounds, and each ratio is the median of
the per-round ratios to the first backend, with its range.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from schnetpack_pipeline import CONFIGS, cpu_model, peer_split  # bench/ is on sys.path

from molstrata.data.qm9 import load_qm9
from molstrata.models import EnergyModel, kernels
from molstrata.models.backends import BACKENDS
from molstrata.training.batches import DeviceDataset
from molstrata.training.config import OptimConfig
from molstrata.training.loop import make_optimizer
from molstrata.training.targets import fit_standardization

SEED = {"n_atom_basis": 38, "n_filters": 38, "n_interactions": 3, "n_rbf": 20, "cutoff": 5.0,
        "batch_size": 512}


def run(model: EnergyModel, optimizer, chunk: list, size: int, train_steps: bool) -> float:
    """Molecules per second of training steps (or forward passes) over the batches `chunk`."""
    start = time.perf_counter()
    for b in chunk:
        inputs = (b.numbers, b.geometry, b.idx_i, b.idx_j, b.molecule_index, b.n_molecules)
        if train_steps:
            error = model(*inputs, sums=b.sums) - b.target
            optimizer.zero_grad(set_to_none=True)
            error.square().mean().backward()
            optimizer.step()
        else:
            with torch.inference_mode():
                model(*inputs, sums=b.sums)
    return len(chunk) * size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["a", "b", "seed"],
                        choices=["a", "b", "seed"])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--batches", type=int, default=4, help="batches per backend and round")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    if kernels.library() is None:
        parser.error(f"the kernels cannot run here: {kernels.status()}")
    train, _, _ = peer_split(load_qm9(progress=False))
    fit = fit_standardization(train, train.property("U0"), extensive=True)
    dataset = DeviceDataset(train, 5.0, torch.device("cpu"), torch.float32,
                            train.property("U0") - fit.reference(train))
    names = list(BACKENDS)
    for name in args.configs:
        config = SEED if name == "seed" else CONFIGS[name]
        size = config["batch_size"]
        order = torch.as_tensor(np.random.default_rng(0).permutation(len(dataset)))
        n_batches = min(args.rounds * args.batches, len(dataset) // size)
        batches = [dataset.batch(order[k * size:(k + 1) * size]) for k in range(n_batches)]
        arms = {}
        for backend in names:
            torch.manual_seed(0)
            model = EnergyModel(n_atom_basis=config["n_atom_basis"],
                                n_filters=config["n_filters"],
                                n_interactions=config["n_interactions"], n_rbf=config["n_rbf"],
                                cutoff=config["cutoff"])
            model.set_standardization(fit.atomrefs, fit.shift, fit.scale)
            model.representation.backends["cpu"] = backend
            optimizer, _ = make_optimizer(model, OptimConfig(batch_size=size, lr=5e-4,
                                                             scheduler="none"), 1)
            arms[backend] = (model, optimizer)
        for model, optimizer in arms.values():  # warm-up
            for kind in (True, False):
                run(model, optimizer, batches[:2], size, kind)
        figures = {(arm, kind): [] for arm in arms for kind in (True, False)}
        for r in range(args.rounds):
            chunk = batches[(r * args.batches) % n_batches:][:args.batches]
            for arm in (names if r % 2 == 0 else names[::-1]):
                for kind in (True, False):
                    figures[arm, kind].append(run(*arms[arm], chunk, size, kind))
        for kind, label in ((True, "training steps"), (False, "forward passes")):
            first = figures[names[0], kind]
            parts = [f"{names[0]} {statistics.median(first):,.0f} mol/s"]
            for arm in names[1:]:
                ratios = sorted(a / b for a, b in zip(first, figures[arm, kind]))
                parts.append(f"{arm} {statistics.median(figures[arm, kind]):,.0f} mol/s "
                             f"(paired ratio {statistics.median(ratios):.3f}x "
                             f"[{ratios[0]:.3f}, {ratios[-1]:.3f}])")
            print(f"config ({name}) {label}: {'; '.join(parts)} over {args.rounds} rounds",
                  flush=True)


if __name__ == "__main__":
    main()
