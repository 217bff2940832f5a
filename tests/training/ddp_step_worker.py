"""One optimiser step of molstrata's training loop on synthetic molecules, float64.

    torchrun --nproc-per-node 2 tests/training/ddp_step_worker.py OUT   (one rank each)
    python tests/training/ddp_step_worker.py OUT                        (one process)

Each process writes OUT/rank{R}.npz: every parameter's gradient and value after the step, and
the step's loss. test_distributed.py compares the ranks of a DDP step with one process taking
the same global batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from molstrata.data.molecules import Molecules
from molstrata.models import EnergyModel
from molstrata.training.batches import DeviceDataset
from molstrata.training.config import OptimConfig
from molstrata.training.distributed import process_group
from molstrata.training.loop import make_optimizer, train_epoch
from molstrata.training.run import wrap
from molstrata.training.weights import weight_factors

BATCH = 13  # one global batch of 13 molecules, cut 7 + 6 over two ranks


def molecules() -> Molecules:
    """13 molecules of 3 to 12 atoms (H, C, N, O), random positions, energies in eV."""
    rng = np.random.default_rng(3)
    sizes = rng.integers(3, 13, size=BATCH)
    numbers = [rng.choice([1, 6, 7, 8], size=n) for n in sizes]
    positions = [rng.normal(scale=1.2, size=(n, 3)) for n in sizes]
    return Molecules.from_lists(numbers, positions, properties={"U0": rng.normal(size=BATCH)},
                                units={"U0": "eV"})


def main(out: Path, representation: str) -> None:
    torch.set_num_threads(1)
    data = molecules()
    # size-weighted loss (r = 5), normalised to mean 1 over the whole set, as train() does
    weights = weight_factors(data.sizes, data.sizes, "size", 5.0, 1.0)
    config = OptimConfig(batch_size=BATCH, lr=1e-2, scheduler="none", grad_clip=None)
    with process_group("cpu") as ranks:
        torch.manual_seed(0)
        model = EnergyModel(n_atom_basis=8, n_interactions=2, n_rbf=6, cutoff=4.0,
                            representation=representation)
        model.set_standardization(np.zeros(100), 0.1, 0.7)
        model.to(dtype=torch.float64)
        dataset = DeviceDataset(data, 4.0, torch.device("cpu"), torch.float64,
                                data.properties["U0"], weights, geometry=model.geometry)
        optimizer, scheduler = make_optimizer(model, config, 1)
        order = torch.as_tensor(np.random.default_rng(1).permutation(BATCH))
        losses = train_epoch(wrap(model, ranks), dataset, order, config, optimizer, scheduler,
                             None, ranks)
        arrays = {f"grad:{name}": p.grad.numpy() for name, p in model.named_parameters()}
        arrays |= {f"value:{name}": p.detach().numpy() for name, p in model.named_parameters()}
        np.savez(out / f"rank{ranks.rank}.npz", loss=losses.numpy(), **arrays)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
