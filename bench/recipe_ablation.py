"""The ablation behind the `accurate` preset: what each choice of the recipe does to the
validation error for a fixed wall-clock budget of training, all of QM9, U0.

    python bench/recipe_ablation.py [--budget 5] [--threads 2] [--out bench/results/recipe_ablation]
                                    [--arms NAME ...] [--seed 0]

Each arm is `molstrata train` (through `molstrata.training.run.train`) on all of QM9 (split seed
0, 80/10/10) for `--budget` minutes of training with the schedule fitted to the budget, one arm
after the other on a quiet machine. Arms add one choice at a time, starting from the study's
own model and batch (`seed-default`: 38 features, 3 interactions, batch 512, lr 1e-3, MSE)
under the budget's cosine schedule, and ending at the `accurate` preset. The figure is the
validation MAE at the end of the budget (the test split is never looked at: choices are made on
validation molecules). One training seed per arm: differences smaller than the seed-to-seed
spread (printed by `--seeds`) are not evidence. Finished arms are reused; an interrupted arm
resumes. Writes ablation.csv and ablation.md in `--out`.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch
from schnetpack_pipeline import cpu_model  # bench/ is on sys.path

from molstrata._files import atomic_write_text
from molstrata.training.config import TrainConfig, preset
from molstrata.training.run import train
from molstrata.training.rundir import RunPaths, read_run_summary

ARMS: list[tuple[str, str, dict[str, dict]]] = [
    ("study", "seed-default's model and batch (38 features, batch 512, lr 1e-3, MSE), "
              "cosine fitted to the budget",
     {"data": {"neighbor_cutoff": 5.0}, "model": {"n_atom_basis": 38},
      "training": {"batch_size": 512, "warmup": 0.0, "ema": None, "loss": "mse"}}),
    ("batch64", "+ batch 64 and a 2 % warm-up",
     {"model": {"n_atom_basis": 38}, "training": {"ema": None, "loss": "mse"}}),
    ("ema", "+ moving average of the weights (0.995 per step)",
     {"model": {"n_atom_basis": 38}, "training": {"loss": "mse"}}),
    ("l1", "+ L1 loss", {"model": {"n_atom_basis": 38}}),
    ("accurate", "+ 64 features: the `accurate` preset", {}),
]
"""(name, what it adds, its overrides of the `accurate` preset)."""


def arm_config(overrides: dict[str, dict], budget_s: float, threads: int, seed: int) -> TrainConfig:
    config = preset("accurate")
    for section, values in overrides.items():
        for key, value in values.items():
            setattr(getattr(config, section), key, value)
    config.training.time_budget = budget_s
    config.runtime.threads = threads
    config.runtime.seed = seed
    return config.validate()


def last_row(run: Path) -> dict:
    with open(run / "learning_curve.csv") as handle:
        return list(csv.DictReader(handle))[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=5.0, help="minutes of training per arm")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="training seed of every arm")
    parser.add_argument("--arms", nargs="+", choices=[a[0] for a in ARMS],
                        default=[a[0] for a in ARMS])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent / "results" / "recipe_ablation")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {args.threads} threads; "
          f"{args.budget:g} min of training per arm", flush=True)
    rows = []
    for name, what, overrides in ARMS:
        if name not in args.arms:
            continue
        run = args.out / "runs" / f"{name}-{args.budget:g}min-seed{args.seed}"
        config = arm_config(overrides, args.budget * 60, args.threads, args.seed)
        if read_run_summary(run).get("status") != "finished":
            train(config, run, resume=RunPaths(run).config.is_file(), progress=False)
        summary = read_run_summary(run)
        last = last_row(run)
        t = config.training
        rows.append({
            "arm": name, "adds": what, "n_atom_basis": config.model.n_atom_basis,
            "batch_size": t.batch_size, "lr": t.lr, "warmup": t.warmup, "ema": t.ema or 0,
            "loss": t.loss, "budget_min": args.budget, "seed": args.seed,
            "epochs": int(last["epoch"]), "optimizer_steps": summary["optimizer_steps"],
            "train_mol_per_s": round(summary["optimizer_steps"] * t.batch_size
                                     / summary["train_seconds"]),
            "final_val_mae_meV": round(float(last["val_mae_meV"]), 2),
            "best_val_mae_meV": round(summary["best_val_mae_meV"], 2),
        })
        print(f"{name:<10} val MAE {rows[-1]['final_val_mae_meV']:7.2f} meV at the end "
              f"({rows[-1]['epochs']} epochs, {rows[-1]['train_mol_per_s']:,} mol/s)", flush=True)
    columns = list(rows[0])
    lines = [",".join(columns)] + [",".join(f'"{r[c]}"' if c == "adds" else str(r[c])
                                            for c in columns) for r in rows]
    atomic_write_text(args.out / f"ablation-{args.budget:g}min.csv", "\n".join(lines) + "\n")
    table = [f"CPU: {cpu_model()}, {args.threads} threads, {args.budget:g} min of training per "
             f"arm, all of QM9 (U0), seed {args.seed}\n",
             "| arm | adds | epochs | training mol/s | val MAE at the end (meV) |",
             "|---|---|---|---|---|"]
    table += [f"| {r['arm']} | {r['adds']} | {r['epochs']} | {r['train_mol_per_s']:,} | "
              f"{r['final_val_mae_meV']:.1f} |" for r in rows]
    atomic_write_text(args.out / f"ablation-{args.budget:g}min.md", "\n".join(table) + "\n")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
