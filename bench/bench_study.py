"""Benchmark: how long a study plan takes on this machine, experiment by experiment.

    python bench/bench_study.py [--plan seed|quick|FILE] [--sample 3000] [--actual DIR]

For every experiment of the plan the exact training and validation sets are built (the same
`prepare` as training: data slice, split, subset, cap), and training throughput (molecules/s)
is measured once per distinct model and batch size: the median of three timed epochs on
`--sample` training molecules after a warm-up epoch. The projection is epochs x (training
molecules / training throughput + validation molecules / inference throughput) x replicates,
summed over experiments; each run's set-up (its neighbour pairs) and test evaluation, and the
report, come on top: under a minute per run on all of QM9.

`--actual DIR` (a finished study's folder) prints, beside the projection, the training time
each run recorded in run.json: it checks the projection on a plan small enough to run here
(the quick one), so that the projection of the seed plan, too long for a CPU session, can be
trusted. The CPU model is printed: compare figures of one machine only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from schnetpack_pipeline import cpu_model  # noqa: E402

from molstrata.evaluation.predict import predict  # noqa: E402
from molstrata.study.plan import load_plan  # noqa: E402
from molstrata.training.batches import DeviceDataset  # noqa: E402
from molstrata.training.data import prepare  # noqa: E402
from molstrata.training.loop import make_optimizer, train_epoch  # noqa: E402
from molstrata.training.run import build_model  # noqa: E402
from molstrata.training.rundir import read_run_summary  # noqa: E402
from molstrata.training.targets import fit_standardization  # noqa: E402

REPEATS = 3


def throughput(config, data, sample: int) -> tuple[float, float]:
    """(training, inference) molecules/s of this config on `sample` of its training set: the
    median of REPEATS epochs (and prediction passes) after a warm-up epoch."""
    rows = data.split.train[:sample]
    molecules = data.molecules.subset(rows)
    values = data.values[rows]
    standard = fit_standardization(molecules, values, data.extensive)
    torch.manual_seed(0)
    model = build_model(config, data.extensive)
    model.set_standardization(standard.atomrefs, standard.shift, standard.scale)
    dataset = DeviceDataset(molecules, config.pair_cutoff, torch.device("cpu"), torch.float32,
                            values - standard.reference(molecules))
    optimizer, _ = make_optimizer(model, config.training, -(-len(rows) // 64))
    rng = np.random.default_rng(0)
    train_epoch(model, dataset, torch.as_tensor(rng.permutation(len(rows))), config.training,
                optimizer)  # warm-up
    train_times, infer_times = [], []
    for _ in range(REPEATS):
        start = time.perf_counter()
        train_epoch(model, dataset, torch.as_tensor(rng.permutation(len(rows))),
                    config.training, optimizer)
        train_times.append(time.perf_counter() - start)
    model.eval()
    for _ in range(REPEATS):
        start = time.perf_counter()
        predict(model, molecules, config.pair_cutoff, config.runtime.eval_batch_size)
        infer_times.append(time.perf_counter() - start)
    return len(rows) / statistics.median(train_times), len(rows) / statistics.median(infer_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", default="seed", help="seed (default), quick or a plan file")
    parser.add_argument("--sample", type=int, default=3000,
                        help="training molecules per throughput measurement")
    parser.add_argument("--actual", type=Path, help="a finished study folder to compare with")
    parser.add_argument("--cache-dir", help="QM9 cache folder")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = [("data", "cache_dir", args.cache_dir)] if args.cache_dir else []
    plan = load_plan(args.plan, overrides)
    print(f"plan {plan.name}: {len(plan.experiments)} experiments x {plan.replicates} "
          f"replicates; CPU {cpu_model()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    rates: dict[tuple, tuple[float, float]] = {}
    header = (f"{'experiment':<22}{'train':>8}{'val':>7}{'epochs':>7}{'batch':>6}"
              f"{'train mol/s':>12}{'projected':>11}")
    if args.actual:
        header += f"{'actual':>9}"
    print(header)
    total = actual_total = 0.0
    for experiment in plan.experiments:
        config = experiment.config
        data = prepare(config, progress=False)
        m, t = config.model, config.training
        key = (m.n_atom_basis, m.n_interactions, m.n_rbf, m.cutoff, config.data.neighbor_cutoff,
               t.batch_size, t.loss, t.ema)
        if key not in rates:
            rates[key] = throughput(config, data, args.sample)
        train_rate, infer_rate = rates[key]
        n_train, n_val = len(data.split.train), len(data.split.val)
        seconds = plan.replicates * (t.time_budget or  # a budget run: its budget, + val
                                     t.epochs * (n_train / train_rate + n_val / infer_rate))
        total += seconds
        epochs = t.epochs or "-"
        line = (f"{experiment.name:<22}{n_train:>8,}{n_val:>7,}{epochs:>7}{t.batch_size:>6}"
                f"{train_rate:>12,.0f}{seconds / 60:>9.1f} m")
        if args.actual:
            recorded = sum(read_run_summary(args.actual / "runs" / r.key)["train_seconds"]
                           for r in plan.replicates_of(experiment))
            actual_total += recorded
            line += f"{recorded / 60:>7.1f} m"
        print(line)
    summary = f"projected training of the plan: {total / 60:.1f} min ({total / 3600:.2f} h)"
    if args.actual:
        summary += f"; recorded: {actual_total / 60:.1f} min"
    print(summary)


if __name__ == "__main__":
    main()
