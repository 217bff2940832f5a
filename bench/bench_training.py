"""Benchmark: molstrata vs SchNetPack 2.1.1's own pipeline, side by side, same data and models.

    python bench/bench_training.py [--configs a b painn] [--epochs 2] [--repeats 3]
                                   [--no-schnetpack] [--seed-budget] [--pyg-path DIR]

Data (as in ../shared/PEERS.md, beside the repository): 12,000 QM9 molecules, 10,000 train /
1,000 val / 1,000 test; target U0 minus per-element reference energies fitted on the training
molecules.
Configs: (a) 128 features, 6 interactions, 20 Gaussians, cutoff 5 Å, batch 100 (SchNetPack's
QM9 default); (b) 38 / 3 / 20 / 5 Å, batch 128 (the study's model); (painn) SchNetPack 2.1.1's
PaiNN with its defaults, 128 features, 3 interactions, 20 Gaussians, 5 Å, batch 100 (PyG has no
PaiNN: --pyg-path skips it). 2 threads, float32.

Training: molecules per second over `--epochs` full epochs after one warm-up epoch, Adam 5e-4,
MSE (molstrata's Adam is its training runs' own, `make_optimizer`: fused on CPUs; PyG's is
torch's default Adam, as a PyG user gets it); molstrata's time includes nothing but the
epochs, batches and their `MessageSums` included (its neighbour pairs are computed once,
before: that set-up time is printed separately). Inference: molecules per second over the
2,000 val + test molecules, eval and no grad, from `Molecules` to energies (molstrata's time
includes computing the neighbour pairs; SchNetPack's includes its loader and neighbour-list
transform), after one warm-up pass. Each molstrata figure is the median of `--repeats` runs, each
SchNetPack one of `--schnetpack-repeats` (its script waits for a quiet CPU before each). Both
report the validation MAE after the timed epochs (same epochs, same learning rate), so speed
is not bought with accuracy.

molstrata zeroes Gaussian radial-basis values below 1e-30 (no subnormal floats, see PEERS.md);
the CPU model is printed: compare figures from one run only.

`--pyg-path DIR` measures PyTorch Geometric 2.8.1's SchNet in the same run, each repeat right
after molstrata's (same data, hyper-parameters, targets, optimiser; PyG is never a dependency of
molstrata, DIR is a folder holding it).

`--seed-budget` also projects the study's default training (22 epochs, batch 512, lr 1e-3,
38 features, neighbour cutoff 4 Å, model cutoff 5 Å, 80 % of QM9) as CPU time on this
machine, from one measured epoch on 10,000 molecules.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from schnetpack_pipeline import CONFIGS, PEERS, cpu_model, peer_split  # bench/ is on sys.path

from molstrata.data.molecules import Molecules
from molstrata.data.qm9 import load_qm9
from molstrata.evaluation.predict import predict
from molstrata.models import EnergyModel
from molstrata.training.batches import DeviceDataset
from molstrata.training.config import OptimConfig, pair_cutoff_of
from molstrata.training.loop import make_optimizer, train_epoch
from molstrata.training.targets import fit_standardization

PYG_REFERENCE = {"a": 238, "b": 1370}
"""PyTorch Geometric's SchNet training molecules/s on these machines (PEERS.md, Intel Xeon)."""


def measure_molstrata(train: Molecules, val: Molecules, infer: Molecules, config: dict,
                      epochs: int, lr: float = 5e-4, neighbor_cutoff: float | None = None,
                      seed: int = 0, compile_steps: bool = False) -> dict:
    """Training and inference molecules/s of molstrata's pipeline for one config; with
    compile_steps, the training steps run under torch.compile (its compilation falls in the
    warm-up epoch, not timed: it is printed as the warm-up's time)."""
    torch.manual_seed(seed)
    cutoff = config["cutoff"]
    pair_cutoff = pair_cutoff_of(neighbor_cutoff or cutoff, cutoff)
    fit = fit_standardization(train, train.property("U0"), extensive=True)
    own = {"n_filters": config["n_filters"]} if "n_filters" in config else {}
    model = EnergyModel(representation=config.get("representation", "schnet"),
                        n_atom_basis=config["n_atom_basis"],
                        n_interactions=config["n_interactions"], n_rbf=config["n_rbf"],
                        cutoff=cutoff, **own)
    model.set_standardization(fit.atomrefs, fit.shift, fit.scale)
    start = time.perf_counter()
    dataset = DeviceDataset(train, pair_cutoff, torch.device("cpu"),
                            torch.float32, train.property("U0") - fit.reference(train),
                            geometry=model.geometry)
    setup = time.perf_counter() - start
    optim = OptimConfig(batch_size=config["batch_size"], lr=lr, scheduler="none")
    optimizer, _ = make_optimizer(model, optim, -(-len(dataset) // config["batch_size"]))
    rng = np.random.default_rng(seed)
    orders = [torch.as_tensor(rng.permutation(len(dataset))) for _ in range(epochs + 1)]
    stepped = torch.compile(model, dynamic=True) if compile_steps else model
    start = time.perf_counter()
    train_epoch(stepped, dataset, orders[0], optim, optimizer)  # warm-up epoch
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    for order in orders[1:]:
        train_epoch(stepped, dataset, order, optim, optimizer)
    train_seconds = time.perf_counter() - start
    model.eval()
    val_mae = float(np.abs(predict(model, val, pair_cutoff) - val.property("U0")).mean())
    predict(model, infer, pair_cutoff, config["batch_size"])  # warm-up
    start = time.perf_counter()
    predict(model, infer, pair_cutoff, config["batch_size"])
    infer_seconds = time.perf_counter() - start
    return {"train_mol_per_s": epochs * len(train) / train_seconds,
            "infer_mol_per_s": len(infer) / infer_seconds,
            "val_mae_meV": 1000 * val_mae, "setup_s": setup, "warmup_s": warmup}


def measure_pyg(train: Molecules, val: Molecules, infer: Molecules, config: dict,
                epochs: int, lr: float = 5e-4, seed: int = 0) -> dict:
    """The same figures for PyTorch Geometric 2.8.1's SchNet with the same hyper-parameters,
    targets (U0 minus the same fitted references, standardised the same way), optimiser and
    batches sliced from packed arrays (no loader); its interaction graph is molstrata's
    vectorised neighbour search, inside every step as PyG computes its graph."""
    from time_to_accuracy import Packed, pyg_mae_meV, pyg_model

    fit = fit_standardization(train, train.property("U0"), extensive=True)
    data = {name: Packed.of(m, m.property("U0") - fit.reference(m))
            for name, m in (("train", train), ("val", val), ("infer", infer))}
    model = pyg_model(fit.shift, fit.scale, {
        "hidden_channels": config["n_atom_basis"], "num_filters": config["n_filters"],
        "num_interactions": config["n_interactions"], "num_gaussians": config["n_rbf"],
        "cutoff": config["cutoff"], "seed": seed}).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)

    def epoch() -> None:
        order = torch.as_tensor(rng.permutation(len(train)))
        for rows in torch.split(order, config["batch_size"]):
            numbers, positions, molecule, target = data["train"].batch(rows)
            error = model(numbers, positions, molecule).squeeze(-1) - target
            optimizer.zero_grad(set_to_none=True)
            (error / fit.scale).square().mean().backward()
            optimizer.step()

    epoch()  # warm-up epoch
    start = time.perf_counter()
    for _ in range(epochs):
        epoch()
    train_seconds = time.perf_counter() - start
    val_mae = pyg_mae_meV(model, data["val"])

    @torch.no_grad()
    def infer_all() -> None:
        model.eval()
        for rows in torch.split(torch.arange(len(infer)), config["batch_size"]):
            numbers, positions, molecule, _ = data["infer"].batch(rows)
            model(numbers, positions, molecule)

    infer_all()  # warm-up
    start = time.perf_counter()
    infer_all()
    infer_seconds = time.perf_counter() - start
    return {"train_mol_per_s": epochs * len(train) / train_seconds,
            "infer_mol_per_s": len(infer) / infer_seconds, "val_mae_meV": val_mae}


def median_of(runs: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]
            if isinstance(runs[0][key], int | float)}


def paired(ours: list[dict], theirs: list[dict], key: str) -> str:
    """The median and range of the per-repeat ratios ours / theirs: each repeat measures both
    within a minute or two, so the CPU's drift between repeats cancels in its ratio."""
    ratios = sorted(a[key] / b[key] for a, b in zip(ours, theirs))
    return f"{statistics.median(ratios):.2f}x [{ratios[0]:.2f}, {ratios[-1]:.2f}]"


def seed_budget(qm9: Molecules, train: Molecules) -> None:
    """Project the study's default training (22 epochs, batch 512) on 80 % of QM9."""
    config = {"n_atom_basis": 38, "n_filters": 38, "n_interactions": 3, "n_rbf": 20,
              "cutoff": 5.0, "batch_size": 512}
    result = measure_molstrata(train, train.subset(slice(0, 500)), train.subset(slice(0, 500)),
                               config, epochs=1, lr=1e-3, neighbor_cutoff=4.0)
    n_train = int(0.8 * len(qm9))
    hours = 22 * n_train / result["train_mol_per_s"] / 3600
    print(f"seed budget (22 epochs x {n_train:,} molecules, batch 512, 38/3/20, cutoffs 4/5 Å): "
          f"{result['train_mol_per_s']:,.0f} molecules/s -> projected {hours * 60:.0f} min of "
          f"CPU training here (the study: 1 h 46 min on a GPU, training plus validation)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["a", "b"], choices=list(CONFIGS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="molstrata runs (median)")
    parser.add_argument("--schnetpack-repeats", type=int, default=1,
                        help="SchNetPack runs (median; each takes minutes)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-schnetpack", action="store_true", help="molstrata only")
    parser.add_argument("--seed-budget", action="store_true")
    parser.add_argument("--compile", action="store_true",
                        help="also measure molstrata with its training steps under "
                             "torch.compile (runtime.compile), interleaved with the plain runs")
    parser.add_argument("--pyg-path", type=Path, metavar="DIR",
                        help="a folder holding torch_geometric 2.8.1: measure PyG's SchNet in "
                             "the same run, interleaved with molstrata (e.g. made with pip "
                             "install --no-deps --target DIR torch_geometric==2.8.1 psutil)")
    args = parser.parse_args()
    if args.pyg_path:
        sys.path.insert(0, str(args.pyg_path.resolve()))
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    qm9 = load_qm9(progress=False)
    train, val, test = peer_split(qm9)
    infer = Molecules.concatenate([val, test])
    for name in args.configs:
        config = CONFIGS[name]
        runs, pyg_runs, compiled_runs = [], [], []
        for k in range(args.repeats):  # interleaved: the CPU's speed drifts
            runs.append(measure_molstrata(train, val, infer, config, args.epochs, seed=k))
            if args.compile:
                compiled_runs.append(measure_molstrata(train, val, infer, config, args.epochs,
                                                       seed=k, compile_steps=True))
            if args.pyg_path and name in PYG_REFERENCE:  # PyG's SchNet: no PaiNN
                pyg_runs.append(measure_pyg(train, val, infer, config, args.epochs, seed=k))
        ours = median_of(runs)
        line = (f"config ({name}) molstrata: train {ours['train_mol_per_s']:,.0f} mol/s, "
                f"inference {ours['infer_mol_per_s']:,.0f} mol/s, val MAE "
                f"{ours['val_mae_meV']:.0f} meV after {args.epochs + 1} epochs "
                f"(neighbour pairs once: {ours['setup_s']:.1f} s)")
        print(line, flush=True)
        if compiled_runs:
            fast = median_of(compiled_runs)
            gain = fast["train_mol_per_s"] / ours["train_mol_per_s"]
            print(f"config ({name}) molstrata, runtime.compile: train "
                  f"{fast['train_mol_per_s']:,.0f} mol/s ({gain:.2f}x plain), val MAE "
                  f"{fast['val_mae_meV']:.0f} meV; compilation in the warm-up epoch: "
                  f"{fast['warmup_s']:.0f} s (plain warm-up {ours['warmup_s']:.0f} s)",
                  flush=True)
        if pyg_runs:
            theirs = median_of(pyg_runs)
            print(f"config ({name}) PyG 2.8.1 SchNet: train {theirs['train_mol_per_s']:,.0f} "
                  f"mol/s, inference {theirs['infer_mol_per_s']:,.0f} mol/s, val MAE "
                  f"{theirs['val_mae_meV']:.0f} meV after {args.epochs + 1} epochs")
            print(f"config ({name}) ratio molstrata / PyG (same run, interleaved): training "
                  f"{ours['train_mol_per_s'] / theirs['train_mol_per_s']:.2f}x, inference "
                  f"{ours['infer_mol_per_s'] / theirs['infer_mol_per_s']:.2f}x", flush=True)
            print(f"config ({name}) ratio paired by repeat (median [min, max] over "
                  f"{len(runs)}): training {paired(runs, pyg_runs, 'train_mol_per_s')}, "
                  f"inference {paired(runs, pyg_runs, 'infer_mol_per_s')}", flush=True)
        if not args.no_schnetpack:
            from schnetpack_pipeline import measure_schnetpack

            theirs = median_of([measure_schnetpack(name, epochs=args.epochs, qm9=qm9)
                                for _ in range(args.schnetpack_repeats)])
            print(f"config ({name}) SchNetPack 2.1.1: train {theirs['train_mol_per_s']:,.0f} "
                  f"mol/s, inference {theirs['infer_mol_per_s']:,.0f} mol/s, val MAE "
                  f"{theirs['val_mae_meV']:.0f} meV after {args.epochs + 1} epochs")
            print(f"config ({name}) ratio molstrata / SchNetPack: training "
                  f"{ours['train_mol_per_s'] / theirs['train_mol_per_s']:.2f}x, inference "
                  f"{ours['infer_mol_per_s'] / theirs['infer_mol_per_s']:.2f}x", flush=True)
            if compiled_runs:
                print(f"config ({name}) ratio molstrata with runtime.compile / SchNetPack: "
                      f"training {fast['train_mol_per_s'] / theirs['train_mol_per_s']:.2f}x",
                      flush=True)
        if not pyg_runs and name in PYG_REFERENCE:
            print(f"config ({name}) vs PyTorch Geometric's SchNet as measured in {PEERS.resolve()} "
                  f"({PYG_REFERENCE[name]:,} mol/s, Intel Xeon): "
                  f"{ours['train_mol_per_s'] / PYG_REFERENCE[name]:.2f}x (other CPU: "
                  "indicative only; --pyg-path measures it here)")
    if args.seed_budget:
        seed_budget(qm9, train)


if __name__ == "__main__":
    main()
