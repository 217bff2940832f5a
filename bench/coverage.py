"""Coverage of a nominal 95 % interval of a difference between two arms' MAE, by simulation:
molstrata's two-level interval (t over the seeds, bootstrap over the molecules) against the
percentile bootstrap that resamples seeds and molecules (the method before), at k = 2, 3, 5
training seeds per arm, for seed- and molecule-dominated noise and for seeds that share 90 % of
their effect across arms (judged with paired seeds), null and non-null differences.

Then, for one model (one training seed), the coverage of a stratum's 95 % MAE interval on n
molecules: the percentile bootstrap (before) against the bootstrap-t that stratum intervals use
now, for normal, Laplace and exponential errors.

    python bench/coverage.py [--repeats 2000] [--strata-only]

The simulation is the test suite's (tests/evaluation/test_coverage.py), at more repeats.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "evaluation"))
import test_coverage as simulation  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--strata-only", action="store_true",
                        help="only the one-seed stratum table")
    args = parser.parse_args()
    simulation.REPEATS = args.repeats
    started = time.perf_counter()
    if not args.strata_only:
        arms(args.repeats)
    print(f"\none model: coverage of a stratum's nominal 95 % MAE interval on n molecules, "
          f"{args.repeats} simulated strata per cell")
    print(f"{'errors':<12} {'n':>3}  {'before (percentile)':>19}  {'after (bootstrap-t)':>19}")
    for errors in ("normal", "laplace", "exponential"):
        for n in (3, 5, 10, 20, 30):
            before = simulation._percentile_coverage(n, errors)
            after = simulation._one_stratum_coverage(n, errors)
            print(f"{errors:<12} {n:>3}  {before:>19.3f}  {after:>19.3f}", flush=True)
    print(f"({time.perf_counter() - started:.0f} s)")


def arms(repeats: int) -> None:
    print(f"coverage of a nominal 95 % interval, {repeats} simulated data sets per cell, "
          f"{simulation.N_MOLECULES} test molecules; noise: seed = 5 % seed-to-seed effect "
          "on a model's errors, molecule = per-molecule noise dominating, shared = seed r's "
          "effect 90 % shared by both arms, after with paired seeds")
    print(f"{'noise':<9} {'k':>2} {'difference':>10}  {'before (resampled seeds)':>24}  "
          f"{'after (two-level t)':>19}")
    for kind in ("seed", "molecule", "shared"):
        for k in (2, 3, 5):
            for shift in (0.0, 0.05):
                before = simulation._coverage(k, kind, shift, "resampled")
                after = simulation._coverage(k, kind, shift, "two_level")
                label = "null" if shift == 0 else f"+{100 * shift:.0f} %"
                print(f"{kind:<9} {k:>2} {label:>10}  {before:>24.3f}  {after:>19.3f}",
                      flush=True)


if __name__ == "__main__":
    main()
