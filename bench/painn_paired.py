"""Benchmark: PaiNN's training epochs and forward passes, for before/after comparisons.

    python bench/painn_paired.py [--rounds 3]
    PYTHONPATH=OTHER_TREE python bench/painn_paired.py     # the same on another checkout

PaiNN with SchNetPack's defaults (128 features, 3 interactions, 20 Gaussians, 5 Å), batch 100,
random weights, float32, 2 threads; 2,000 QM9 training molecules and 2,000 others to predict
(`default_rng(0).permutation`). After one warm-up epoch and pass, each round times one epoch of
training steps and one prediction pass; the medians and every round are printed. Run two trees
in alternation (before, after, before, after) so that the CPU's drift falls on both.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from molstrata.data.qm9 import load_qm9
from molstrata.evaluation.predict import predict
from molstrata.models import EnergyModel
from molstrata.training.batches import DeviceDataset
from molstrata.training.config import OptimConfig
from molstrata.training.loop import make_optimizer, train_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    molecules = load_qm9()
    order = np.random.default_rng(0).permutation(len(molecules))
    train, infer = molecules.subset(order[:2000]), molecules.subset(order[2000:4000])
    torch.manual_seed(0)
    model = EnergyModel(representation="painn", n_atom_basis=128, n_interactions=3, n_rbf=20,
                        cutoff=5.0)
    target = train.property("U0") - train.property("U0").mean()
    dataset = DeviceDataset(train, 5.0, torch.device("cpu"), torch.float32, target,
                            geometry=model.geometry)
    optim = OptimConfig(batch_size=100, lr=5e-4, scheduler="none")
    optimizer, _ = make_optimizer(model, optim, 20)
    steps = torch.arange(len(dataset))
    train_epoch(model, dataset, steps, optim, optimizer)  # warm-up
    model.eval()
    predict(model, infer, 5.0, 100)
    trained, predicted = [], []
    for _ in range(args.rounds):
        model.train()
        start = time.perf_counter()
        train_epoch(model, dataset, steps, optim, optimizer)
        trained.append(len(dataset) / (time.perf_counter() - start))
        model.eval()
        start = time.perf_counter()
        predict(model, infer, 5.0, 100)
        predicted.append(len(infer) / (time.perf_counter() - start))
    print(f"train {statistics.median(trained):.0f} mol/s {[round(x) for x in trained]}; "
          f"inference {statistics.median(predicted):.0f} mol/s "
          f"{[round(x) for x in predicted]}")


if __name__ == "__main__":
    main()
