"""Benchmark: loading all of QM9 — cold (CSV to cache), warm (from cache), and peak memory.

    python bench/bench_qm9_load.py [--repeats 5]

Each measurement runs in a fresh Python process, so import time and peak memory are those a
user's command sees. Prints the CPU model: compare figures only from one run on one machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from molstrata.data.qm9 import load_qm9
t1 = time.perf_counter()
molecules = load_qm9(sys.argv[1], progress=False)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "n": len(molecules),
                  "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def probe(cache: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, cache], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="warm loads to time (median)")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as cache:
        cold = probe(cache)
        size = (Path(cache) / "qm9.npz").stat().st_size / 2**20
        warm = [probe(cache) for _ in range(args.repeats)]
    load = statistics.median(w["load_s"] for w in warm)
    total = statistics.median(w["load_s"] + w["import_s"] for w in warm)
    print(f"molecules: {cold['n']:,}; cache file: {size:.0f} MiB")
    print(f"cold load (parse CSV, write cache): {cold['load_s']:.2f} s, "
          f"peak RSS {cold['peak_rss_MiB']:.0f} MiB")
    print(f"warm load (read cache), median of {args.repeats}: {load:.3f} s "
          f"({total:.3f} s with `import molstrata`), peak RSS "
          f"{max(w['peak_rss_MiB'] for w in warm):.0f} MiB")


if __name__ == "__main__":
    main()
