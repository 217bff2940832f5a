"""Benchmark: time to accuracy, molstrata vs PyTorch Geometric's SchNet, same data, same budget.

    python bench/time_to_accuracy.py [--budget 30] [--pyg-path DIR] [--out DIR]
                                     [--preset accurate] [--set SECTION.KEY=VALUE ...]
                                     [--max-molecules N] [--threads 2]
                                     [--skip-molstrata RUN_DIR] [--pyg-val-every 60] [--no-pyg]

Method: molstrata trains first, with the preset's recipe and `training.time_budget` set to the
budget, into OUT/molstrata-run; then PyTorch Geometric 2.8.1's SchNet trains with the recipe of
PEERS.md's time-to-accuracy figure (128 features and filters, 6 interactions, 20 Gaussians,
cutoff 5 Å, Adam 5e-4, batch 100, MSE, no schedule, float32, shuffled every epoch) for the
same number of seconds. What is timed, on both sides, is the training steps alone: batching,
forward, backward and the optimiser step; validation (and molstrata's checkpoints) are not
counted. molstrata computes its neighbour pairs once before training (not counted, its set-up
time is reported with the run's total); PyG's interaction graph, molstrata's vectorised
neighbour search (no pyg-lib needed), is computed inside every timed step, as PyG does.

What is the same: the molecules and their train / val / test split (the run's split.json,
read back with `prepare`), the target (U0 in eV minus the per-element reference energies
molstrata fitted, standardised by its per-atom shift and scale: PyG's `mean` and `std`, and
its loss is the MSE of the error divided by that scale), the threads and the CPU. Both are
validated on the whole validation split, molstrata after every epoch and PyG every
`--pyg-val-every` seconds of training, and both are tested once, with the weights at the end of
the budget (molstrata's last checkpoint), on the test split.

PyTorch Geometric is never a dependency of molstrata: `--pyg-path` adds a folder holding it,
made e.g. with `pip install --no-deps --target DIR torch_geometric==2.8.1 psutil`.

Outputs in OUT: curves.csv (validation MAE against training seconds, both), summary.json
(test and final validation MAE, training molecules/s, epochs, sizes, configs, CPU) and
curves.png; a table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from schnetpack_pipeline import cpu_model  # bench/ is on sys.path

from molstrata._files import atomic_path, atomic_write_text
from molstrata.data.molecules import Molecules, atomic_number
from molstrata.errors import MolstrataError
from molstrata.evaluation.evaluate import evaluate_run
from molstrata.models.neighbors import neighbor_pairs
from molstrata.tables import read_csv_rows, write_csv
from molstrata.training.config import TrainConfig, parse_assignment, preset
from molstrata.training.data import prepare
from molstrata.training.run import train
from molstrata.training.rundir import RunPaths, read_run_summary
from molstrata.training.targets import MAX_Z

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "time_to_accuracy"
MARKS_MIN = (5, 10, 20, 30)
"""Training minutes at which the table quotes each validation curve."""
CHEMICAL_ACCURACY_MEV = 43.0
PYG_CONFIG = {"hidden_channels": 128, "num_filters": 128, "num_interactions": 6,
              "num_gaussians": 20, "cutoff": 5.0, "lr": 5e-4, "batch_size": 100,
              "loss": "mse", "scheduler": "none", "dtype": "float32", "seed": 0}
"""PyG's SchNet as PEERS.md's time-to-accuracy figure trains it."""
PYG_EVAL_BATCH = 500


@dataclass
class Result:
    """One implementation's figures; curve: (wall_time_s, val_mae_meV) pairs in time order."""

    curve: list[tuple[float, float]]
    test_mae_meV: float
    train_mol_per_s: float
    epochs: float
    train_seconds: float
    total_seconds: float
    n: dict[str, int]
    config: dict


# ---- molstrata ---------------------------------------------------------------------------


def molstrata_config(args: argparse.Namespace) -> TrainConfig:
    """The preset, the --set overrides, then the budget, threads and size of this benchmark."""
    config = preset(args.preset)
    for assignment in args.set:
        config.override(*parse_assignment(assignment), source="--set")
    config.override("training", "time_budget", args.budget * 60.0, "--budget")
    config.runtime.threads = args.threads
    if args.max_molecules is not None:
        config.data.max_molecules = args.max_molecules
    return config.validate()


def molstrata_result(run_dir: Path) -> Result:
    """The figures of a finished molstrata run: its curve, and its last weights' test MAE."""
    paths = RunPaths(run_dir).require()
    summary = read_run_summary(paths.root)
    rows = read_csv_rows(paths.curve, "train the run first, or give a finished run")
    if not rows:
        raise MolstrataError(f"{paths.curve} holds no epoch; give a finished run")
    curve = [(float(r["wall_time_s"]), float(r["val_mae_meV"])) for r in rows]
    evaluation = evaluate_run(run_dir, split="test", checkpoint="last",
                              progress=False)
    overall = evaluation.report.overall.summary  # target unit: eV
    config = TrainConfig.from_toml(paths.config)
    n = summary["n_molecules"]
    seen = summary["molecules_seen"]  # a budget may cut the last epoch short
    return Result(curve=curve, test_mae_meV=1000 * overall.mae,
                  train_mol_per_s=seen / summary["train_seconds"], epochs=seen / n["train"],
                  train_seconds=summary["train_seconds"], total_seconds=summary["total_seconds"],
                  n=n, config=config.to_dict())


def check_budget(run_dir: Path, budget_s: float) -> None:
    """Say so when a reused run trained under another budget than PyG is given."""
    config = TrainConfig.from_toml(RunPaths(run_dir).require().config)
    if config.training.time_budget != budget_s:
        print(f"note: {run_dir} trained with time_budget {config.training.time_budget} s; "
              f"PyG gets {budget_s:g} s (--budget)", flush=True)


# ---- PyTorch Geometric -------------------------------------------------------------------


@dataclass
class Packed:
    """Molecules as tensors to slice batches from: numbers (n_atoms,), positions
    (n_atoms, 3) float32, offsets (n_molecules + 1,), target (n_molecules,) residual in eV."""

    numbers: torch.Tensor
    positions: torch.Tensor
    offsets: torch.Tensor
    target: torch.Tensor

    @classmethod
    def of(cls, molecules: Molecules, residual: np.ndarray) -> Packed:
        return cls(torch.as_tensor(molecules.numbers).long(),
                   torch.as_tensor(molecules.positions, dtype=torch.float32),
                   torch.as_tensor(molecules.offsets).long(),
                   torch.as_tensor(residual, dtype=torch.float32))

    def __len__(self) -> int:
        return len(self.target)

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(numbers, positions, batch index of each atom, target) of molecules `rows`."""
        starts = self.offsets[rows]
        counts = self.offsets[rows + 1] - starts
        molecule = torch.repeat_interleave(torch.arange(len(rows)), counts)
        first = torch.cumsum(counts, 0) - counts
        atoms = starts[molecule] + torch.arange(len(molecule)) - first[molecule]
        return self.numbers[atoms], self.positions[atoms], molecule, self.target[rows]


def pyg_data(run_dir: Path) -> tuple[Packed, Packed, Packed, dict]:
    """(train, val, test) of the run's own molecules and split, with the target molstrata
    trained on: U0 (eV) minus its reference energies; and run.json."""
    paths = RunPaths(run_dir).require()
    summary = read_run_summary(paths.root)
    config = TrainConfig.from_toml(paths.config)
    data = prepare(config, paths.split, progress=False)
    if summary["aggregation"] != "sum" or data.unit != "eV":
        raise MolstrataError(f"{run_dir} trained {data.target} in {data.unit}; this benchmark "
                             "compares an energy in eV (e.g. U0) summed over atoms")
    atomrefs = np.zeros(MAX_Z)
    for symbol, energy in summary["reference_energies"].items():
        atomrefs[atomic_number(symbol)] = energy
    molecules = data.molecules
    reference = np.bincount(molecules.atom_molecule, weights=atomrefs[molecules.numbers],
                            minlength=len(molecules))
    residual = data.values - reference
    parts = (Packed.of(molecules.subset(rows), residual[rows])
             for rows in (data.split.train, data.split.val, data.split.test))
    return (*parts, summary)


def pyg_model(shift: float, scale: float, config: dict | None = None) -> torch.nn.Module:
    """PyG's SchNet of `config` (default PYG_CONFIG; PyG's names), its atoms' outputs scaled
    by `scale` and shifted by `shift` (eV), summed: a residual energy in eV. Its interaction
    graph is molstrata's neighbour search, directed pairs (j -> i)."""
    from torch_geometric.nn.models import SchNet

    config = PYG_CONFIG if config is None else config
    cutoff = config["cutoff"]

    def graph(pos: torch.Tensor, batch: torch.Tensor):
        offsets = torch.zeros(int(batch[-1]) + 2, dtype=torch.long)
        torch.cumsum(torch.bincount(batch), 0, out=offsets[1:])
        idx_i, idx_j, distances = neighbor_pairs(pos, offsets, cutoff, half=False)
        return torch.stack([idx_j, idx_i]), distances

    torch.manual_seed(config.get("seed", 0))
    return SchNet(hidden_channels=config["hidden_channels"], num_filters=config["num_filters"],
                  num_interactions=config["num_interactions"],
                  num_gaussians=config["num_gaussians"], cutoff=cutoff,
                  interaction_graph=graph, mean=shift, std=scale, atomref=None)


@torch.no_grad()
def pyg_mae_meV(model: torch.nn.Module, data: Packed) -> float:
    """Mean absolute error (meV) of `model` on all of `data`."""
    model.eval()
    total = 0.0
    for start in range(0, len(data), PYG_EVAL_BATCH):
        rows = torch.arange(start, min(start + PYG_EVAL_BATCH, len(data)))
        numbers, positions, molecule, target = data.batch(rows)
        total += float((model(numbers, positions, molecule).squeeze(-1) - target).abs().sum())
    model.train()
    return 1000 * total / len(data)


def train_pyg(run_dir: Path, budget_s: float, val_every_s: float) -> Result:
    """Train PyG's SchNet for `budget_s` seconds of training steps on the run's data,
    validating every `val_every_s` seconds of training and at the end; test at the end."""
    started = time.perf_counter()
    train_set, val_set, test_set, summary = pyg_data(run_dir)
    scale = summary["per_atom_scale"]
    model = pyg_model(summary["per_atom_shift"], scale).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=PYG_CONFIG["lr"])
    rng = np.random.default_rng(PYG_CONFIG["seed"])
    batch_size = PYG_CONFIG["batch_size"]
    curve: list[tuple[float, float]] = []
    seen, train_s, val_s, next_val = 0, 0.0, 0.0, val_every_s

    def validate() -> None:
        nonlocal val_s
        start = time.perf_counter()
        curve.append((train_s, pyg_mae_meV(model, val_set)))
        val_s += time.perf_counter() - start
        print(f"PyG: {train_s / 60:5.1f} min of training, epoch {seen / len(train_set):.2f}, "
              f"val MAE {curve[-1][1]:.1f} meV ({val_s:.0f} s validating so far)", flush=True)

    while train_s < budget_s:
        order = torch.as_tensor(rng.permutation(len(train_set)))
        for rows in torch.split(order, batch_size):
            start = time.perf_counter()
            numbers, positions, molecule, target = train_set.batch(rows)
            error = model(numbers, positions, molecule).squeeze(-1) - target
            loss = (error / scale).square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            train_s += time.perf_counter() - start
            seen += len(rows)
            if train_s >= budget_s:
                break
            if train_s >= next_val:
                validate()
                next_val = (train_s // val_every_s + 1) * val_every_s
    validate()
    test = pyg_mae_meV(model, test_set)
    return Result(curve=curve, test_mae_meV=test, train_mol_per_s=seen / train_s,
                  epochs=seen / len(train_set), train_seconds=train_s,
                  total_seconds=time.perf_counter() - started,
                  n={"train": len(train_set), "val": len(val_set), "test": len(test_set)},
                  config=dict(PYG_CONFIG, eval_batch_size=PYG_EVAL_BATCH))


# ---- outputs -----------------------------------------------------------------------------


def val_at(curve: list[tuple[float, float]], seconds: float, budget_s: float) -> str:
    """The validation MAE (meV) at `seconds` of training: the last validation at or before
    then; the final one at the budget (a run may pass it by a step); '-' past the budget or
    before the first validation."""
    if seconds > budget_s:
        return "-"
    if seconds == budget_s:
        return f"{curve[-1][1]:.1f}"
    before = [mae for t, mae in curve if t <= seconds]
    return f"{before[-1]:.1f}" if before else "-"


def write_outputs(out: Path, results: dict[str, Result], facts: dict) -> None:
    """curves.csv, summary.json and curves.png in `out`."""
    write_csv(out / "curves.csv", ["implementation", "wall_time_s", "val_mae_meV"],
              [[name, t, mae] for name, r in results.items() for t, mae in r.curve])
    document = dict(facts, implementations={
        name: {"test_mae_meV": r.test_mae_meV, "final_val_mae_meV": r.curve[-1][1],
               "train_mol_per_s": r.train_mol_per_s, "epochs": r.epochs,
               "train_seconds": r.train_seconds, "total_seconds": r.total_seconds,
               "n_train": r.n["train"], "n_val": r.n["val"], "n_test": r.n["test"],
               "config": r.config}
        for name, r in results.items()})
    if {"molstrata", "pyg"} <= results.keys():
        document["test_mae_ratio_pyg_over_molstrata"] = (results["pyg"].test_mae_meV
                                                         / results["molstrata"].test_mae_meV)
    atomic_write_text(out / "summary.json", json.dumps(document, indent=2) + "\n")
    plot(out / "curves.png", results, facts["gpu"] or facts["cpu"])


def plot(path: Path, results: dict[str, Result], cpu: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, r in results.items():
        minutes = [t / 60 for t, _ in r.curve]
        axes.plot(minutes, [mae for _, mae in r.curve], marker="o", markersize=3,
                  label=f"{LABELS[name]}: test {r.test_mae_meV:.0f} meV")
    axes.axhline(CHEMICAL_ACCURACY_MEV, color="grey", linestyle="--",
                 label=f"chemical accuracy ({CHEMICAL_ACCURACY_MEV:.0f} meV)")
    axes.set_yscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    low = min(mae for r in results.values() for _, mae in r.curve)
    high = max(mae for r in results.values() for _, mae in r.curve)
    axes.set_yticks([t for t in (10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000)
                     if low / 1.5 <= t <= high * 1.5])
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.yaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("training time (min, validation excluded)")
    axes.set_ylabel("validation MAE (meV)")
    axes.set_title(f"QM9 U0, time to accuracy: {cpu}", fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)


LABELS = {"molstrata": "molstrata", "pyg": "PyG 2.8.1 SchNet"}


def print_table(results: dict[str, Result], budget_s: float) -> None:
    header = ["", *(f"val@{m} min" for m in MARKS_MIN), "final val", "test MAE",
              "train mol/s", "epochs"]
    rows = [header] + [
        [LABELS[name], *(val_at(r.curve, 60.0 * m, budget_s) for m in MARKS_MIN),
         f"{r.curve[-1][1]:.1f}", f"{r.test_mae_meV:.1f}", f"{r.train_mol_per_s:,.0f}",
         f"{r.epochs:.2f}"]
        for name, r in results.items()]
    widths = [max(len(row[k]) for row in rows) for k in range(len(header))]
    print("validation and test MAE in meV; val@t: the last validation at or before t minutes "
          "of training")
    for row in rows:
        print("  ".join([row[0].ljust(widths[0])]
                        + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]))
    if {"molstrata", "pyg"} <= results.keys():
        ratio = results["pyg"].test_mae_meV / results["molstrata"].test_mae_meV
        print(f"test MAE, PyG / molstrata: {ratio:.2f}x")


# ---- main --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=30.0, metavar="MINUTES",
                        help="minutes of training for each implementation")
    parser.add_argument("--pyg-path", type=Path, metavar="DIR",
                        help="a folder to import torch_geometric from")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR")
    parser.add_argument("--preset", default="accurate", help="molstrata's training preset")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one option of the preset (repeatable)")
    parser.add_argument("--max-molecules", type=int, metavar="N",
                        help="a seeded sample of N QM9 molecules (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-molstrata", type=Path, metavar="RUN_DIR",
                        help="reuse this finished molstrata run instead of training one")
    parser.add_argument("--pyg-val-every", type=float, default=60.0, metavar="SECONDS",
                        help="validate PyG every SECONDS of training")
    parser.add_argument("--no-pyg", action="store_true", help="molstrata only")
    args = parser.parse_args()
    if args.pyg_path:
        sys.path.insert(0, str(args.pyg_path.resolve()))
    torch.set_num_threads(args.threads)
    budget_s = args.budget * 60.0
    facts = {"cpu": cpu_model(), "threads": args.threads, "torch_version": torch.__version__,
             "budget_minutes": args.budget, "budget_s": budget_s,
             "pyg_val_every_s": args.pyg_val_every,
             "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    print(f"CPU: {facts['cpu']}; GPU: {facts['gpu']}; torch {torch.__version__}, "
          f"{args.threads} threads; budget "
          f"{args.budget:g} min of training each", flush=True)
    if not args.no_pyg:
        try:  # fail now rather than after a long molstrata run
            import torch_geometric  # noqa: F401
        except ImportError as error:
            sys.exit(f"torch_geometric does not import ({error}); give --pyg-path DIR or "
                     "--no-pyg")
    try:
        if args.skip_molstrata:
            run_dir = args.skip_molstrata
            check_budget(run_dir, budget_s)
        else:
            run_dir = args.out / "molstrata-run"
            train(molstrata_config(args), run_dir, progress=True)
        results = {"molstrata": molstrata_result(run_dir)}
        print(f"molstrata: {results['molstrata'].train_seconds / 60:.1f} min of training, "
              f"test MAE {results['molstrata'].test_mae_meV:.1f} meV", flush=True)
        if not args.no_pyg:
            results["pyg"] = train_pyg(run_dir, budget_s, args.pyg_val_every)
    except MolstrataError as error:
        sys.exit(f"error: {error}")
    repository = Path(__file__).resolve().parent.parent
    resolved = Path(run_dir).resolve()
    facts["molstrata_run"] = str(resolved.relative_to(repository)
                                 if resolved.is_relative_to(repository) else run_dir)
    write_outputs(args.out, results, facts)
    print_table(results, budget_s)
    print(f"wrote {args.out / 'curves.csv'}, summary.json and curves.png")


if __name__ == "__main__":
    main()
