"""Benchmark: training throughput on 1 process vs N data-parallel processes (torch.distributed).

    python bench/bench_distributed.py [--configs a b] [--setups 1x1 1x2 2x1] [--epochs 3]
                                      [--max-molecules 12500] [--device cpu|cuda]

Each setup PxT is `molstrata train` itself on P processes (`--devices P`: torchrun's launcher,
Gloo on the CPU, NCCL on GPUs) with T threads each, so the figures include everything the
real command does per step: cutting each global batch into one piece per rank, DDP's
gradient all-reduce, and the gathered validation. Data: the first `--max-molecules` of QM9's
seeded shuffle (12,500 by default: 10,000 train, 1,250 val), target U0. Configs as in
bench_training.py: (a) 128 features, 6 interactions, batch 100 (SchNetPack's QM9 default);
(b) 38 features, 3 interactions, batch 128 (the study's model); (default) the study's default
run, 38 features, batch 512, neighbour cutoff 4 Å. float32, Adam 5e-4, no schedule.

Throughput: training molecules per second of each epoch's training time (learning_curve.csv,
validation excluded) after the first epoch (warm-up), median over the rest. The validation MAE
after the last epoch is printed too: the same global batches train the same model on any
number of processes, so it should agree across setups to float32 noise.

On a 2-core CPU, 2x1 against 1x2 asks whether two single-threaded processes use the cores
better than one process with two threads. Run it on a quiet machine: nothing else running.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schnetpack_pipeline import cpu_model  # noqa: E402  (bench/ is on sys.path)

from molstrata.training.config import TrainConfig  # noqa: E402
from molstrata.training.rundir import read_run_summary  # noqa: E402

CONFIGS = {
    "a": {"model": {"n_atom_basis": 128, "n_filters": 128, "n_interactions": 6, "n_rbf": 20,
                    "cutoff": 5.0}, "training": {"batch_size": 100}},
    "b": {"model": {"n_atom_basis": 38, "n_filters": 38, "n_interactions": 3, "n_rbf": 20,
                    "cutoff": 5.0}, "training": {"batch_size": 128}},
    "default": {"data": {"neighbor_cutoff": 4.0},
                "model": {"n_atom_basis": 38, "n_interactions": 3, "cutoff": 5.0},
                "training": {"batch_size": 512, "lr": 1e-3}},
}


def config_file(name: str, args: argparse.Namespace, folder: Path) -> Path:
    sections = {"data": {"max_molecules": args.max_molecules, "cache_dir": args.cache_dir},
                "training": {"epochs": args.epochs, "lr": 5e-4, "scheduler": "none"},
                "runtime": {"device": args.device, "eval_batch_size": 512}}
    for section, values in CONFIGS[name].items():
        sections.setdefault(section, {}).update(values)
    sections["data"] = {k: v for k, v in sections["data"].items() if v is not None}
    config = TrainConfig.from_dict(sections, "bench").validate()
    path = folder / f"{name}.toml"
    path.write_text(config.to_toml())
    return path


def measure(config: Path, processes: int, threads: int, out: Path) -> dict:
    command = [sys.executable, "-m", "molstrata", "train", "--config", str(config), "-q",
               "-o", str(out), "--threads", str(threads)]
    if processes > 1:
        command += ["--devices", str(processes)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    rows = list(csv.DictReader((out / "learning_curve.csv").open()))
    n_train = int(read_run_summary(out)["n_molecules"]["train"])
    seconds = [float(rows[0]["wall_time_s"])] + [
        float(b["wall_time_s"]) - float(a["wall_time_s"]) for a, b in zip(rows, rows[1:])]
    timed = seconds[1:] or seconds
    return {"mol_s": n_train / statistics.median(timed), "first_epoch_s": seconds[0],
            "val_mae_meV": float(rows[-1]["val_mae_meV"]), "wall_s": wall, "n_train": n_train}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["a", "b"], choices=list(CONFIGS))
    parser.add_argument("--setups", nargs="+", default=["1x1", "1x2", "2x1"],
                        metavar="PxT", help="P processes of T threads each")
    parser.add_argument("--epochs", type=int, default=3, help="the first one is a warm-up")
    parser.add_argument("--max-molecules", type=int, default=12_500)
    parser.add_argument("--device", default="cpu", help="cpu (Gloo) or cuda (NCCL)")
    parser.add_argument("--cache-dir", help="QM9 cache folder")
    args = parser.parse_args()
    setups = [tuple(int(x) for x in setup.split("x")) for setup in args.setups]
    where = cpu_model() if args.device == "cpu" else torch.cuda.get_device_name(0)
    print(f"{where}; {os.cpu_count()} cores; torch {torch.__version__}; device {args.device}; "
          f"{args.max_molecules:,} molecules, {args.epochs} epochs (first one not timed)")
    print(f"{'config':<8} {'setup':<22} {'train mol/s':>11} {'vs 1x1':>7} {'1st epoch s':>11} "
          f"{'val MAE meV':>11} {'wall s':>7}")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for name in args.configs:
            config = config_file(name, args, folder)
            base = None
            for processes, threads in setups:
                figures = measure(config, processes, threads,
                                  folder / f"{name}-{processes}x{threads}")
                base = base or figures["mol_s"]
                label = f"{processes} process{'es' if processes > 1 else ''} x {threads} thread" \
                        f"{'s' if threads > 1 else ''}"
                print(f"{name:<8} {label:<22} {figures['mol_s']:>11,.0f} "
                      f"{figures['mol_s'] / base:>6.2f}x {figures['first_epoch_s']:>11.1f} "
                      f"{figures['val_mae_meV']:>11.2f} {figures['wall_s']:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
