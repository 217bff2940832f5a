"""How much do arms trained with the same seed share? The correlation, across the experiments
of a finished study, of seed r's test MAE in one experiment with seed r's in another, each
taken as its deviation from its experiment's mean over seeds.

    python bench/seed_correlation.py STUDY_DIR

Seed r of every experiment shares its initialisation, its batch order and (with
subset.draw = "seed") its train / validation draw. A positive correlation means the paired
design ([study] paired_seeds = true) removes what the seeds share; near zero, judging arms as
independent keeps twice the degrees of freedom. Prints the pooled correlation over every pair
of experiments, its spread, and the pairs' own figures.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from molstrata.evaluation.results import load_run_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    args = parser.parse_args()
    deviations: dict[str, dict[int, float]] = {}
    for experiment in sorted(p for p in (args.study / "runs").iterdir() if p.is_dir()):
        maes = {}
        for run in sorted(experiment.glob("seed-*")):
            result = load_run_result(run, evaluate_missing=False)
            maes[int(run.name.split("-")[1])] = float(np.abs(result.predictions.errors).mean())
        if len(maes) >= 2:
            mean = np.mean(list(maes.values()))
            deviations[experiment.name] = {s: 1000 * (m - mean) for s, m in maes.items()}
    pairs, products, squares_a, squares_b = [], 0.0, 0.0, 0.0
    for a, b in itertools.combinations(sorted(deviations), 2):
        seeds = sorted(set(deviations[a]) & set(deviations[b]))
        x = np.array([deviations[a][s] for s in seeds])
        y = np.array([deviations[b][s] for s in seeds])
        products += float(x @ y)
        squares_a += float(x @ x)
        squares_b += float(y @ y)
        r = float(x @ y / np.sqrt((x @ x) * (y @ y))) if (x @ x) * (y @ y) > 0 else np.nan
        pairs.append((a, b, r))
    pooled = products / np.sqrt(squares_a * squares_b)
    rs = np.array([r for _, _, r in pairs if np.isfinite(r)])
    print(f"{len(deviations)} experiments with >= 2 seeds, {len(pairs)} pairs")
    print(f"pooled correlation of paired seeds' test MAE deviations: {pooled:+.3f}")
    print(f"per pair: median {np.median(rs):+.2f}, quartiles [{np.quantile(rs, 0.25):+.2f}, "
          f"{np.quantile(rs, 0.75):+.2f}], {np.mean(rs > 0):.0%} positive")
    for name, seeds in sorted(deviations.items()):
        print(f"  {name:<22} " + "  ".join(f"seed {s}: {d:+6.2f} meV" for s, d in
                                            sorted(seeds.items())))


if __name__ == "__main__":
    main()
