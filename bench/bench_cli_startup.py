"""Time `molstrata --help` and list the heavy modules that building the parser imports.

    python bench/bench_cli_startup.py [--repeats 7]

Each repeat is a fresh interpreter (as a user's shell starts one), so the figure includes
Python's own start-up; the median is printed with the spread of the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "numpy", "matplotlib", "ase", "optuna", "scipy")
PROBE = ("import sys; from molstrata.cli import build_parser; build_parser(); "
         f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "molstrata", "--help"], check=True,
                       stdout=subprocess.DEVNULL)
        seconds.append(time.perf_counter() - start)
    bare = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - start)
    heavy = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True,
                           text=True).stdout.split()
    print(f"molstrata --help: median {statistics.median(seconds):.3f} s "
          f"(min {min(seconds):.3f}, max {max(seconds):.3f}, {args.repeats} runs); "
          f"bare python: {statistics.median(bare):.3f} s")
    print(f"heavy modules imported by build_parser(): {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
