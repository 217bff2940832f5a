"""The family-wise error rate of molstrata's claims, by simulation, with no effect anywhere:
how often some primary claim of a study reads "holds" (Holm over the 5 primary claims, and
each at 5 % alone), and how often `compare` of two equally good models counts a stratum won
significantly (after Holm over the strata, and each stratum alone).

    python bench/family_error.py [--studies 400] [--comparisons 60]

The simulations are the test suite's (tests/study/test_verdicts.py,
tests/evaluation/test_compare.py), at more repeats.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(TESTS / "study"), str(TESTS / "evaluation")]
from test_compare import same_molecules_pair  # noqa: E402
from test_verdicts import N_CLAIMS, _null_interval  # noqa: E402

from molstrata.evaluation.compare import compare_runs  # noqa: E402
from molstrata.study.verdicts import family_verdicts, lowers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=400)
    parser.add_argument("--comparisons", type=int, default=60)
    parser.add_argument("--seed", type=int, default=4, help="seed of the simulated comparisons")
    args = parser.parse_args()
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    family = alone = 0
    for _ in range(args.studies):
        tests = [lowers(_null_interval(rng), margin=3.0, k=3) for _ in range(N_CLAIMS)]
        family += any(v is True for v in family_verdicts(tests, 0.05))
        alone += any(t.decide(0.05) is True for t in tests)
    print(f"{args.studies} simulated studies of {N_CLAIMS} null primary claims (3 seeds): "
          f"some claim holds in {family / args.studies:.3f} with Holm, "
          f"{alone / args.studies:.3f} with each claim at 5 % alone")
    rng = np.random.default_rng(args.seed)
    family = alone = strata = 0
    p_values = []
    for repeat in range(args.comparisons):
        a, b = same_molecules_pair(rng.normal(0, 0.02, 400), rng.normal(0, 0.02, 400))
        wins = [w for w in compare_runs([a, b], seed=repeat, n_bootstrap=200).wins
                if w.kind != "all" and w.tested]
        strata = len(wins)
        p_values += [w.p_value for w in wins]
        family += any(w.significant for w in wins)
        alone += any(w.lead_low > 0 for w in wins)
    print(f"{args.comparisons} comparisons of two equal models ({strata} strata of about 30 "
          f"molecules): some stratum won significantly in {family}/{args.comparisons} after "
          f"Holm, {alone}/{args.comparisons} with each stratum alone")
    p = np.array(p_values)
    print(f"each stratum's p-value over the {len(p)} tests: p < 0.05 in {np.mean(p < 0.05):.4f}, "
          f"p < 0.05 / {strata} in {np.mean(p < 0.05 / strata):.4f} (nominal "
          f"{0.05 / strata:.4f})")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
