"""Benchmark: one study worked through by 1 worker, then by 3, on a PostgreSQL server.

    python bench/cluster_study.py [--plan quick] [--set training.epochs=2 ...] [--out DIR]

A throwaway PostgreSQL server (tests/pgserver.py) holds the work queue. First one `molstrata
study PLAN --storage URL -o OUT/one` runs alone; then three run at once, as three machines
would: separate processes, each in its own working directory, sharing `-o OUT/three` and the
URL. Printed and written to OUT/record.json: each form's wall time, and the claim log of the
three workers, read from the queue after the end (`molstrata study --status`: every item, its
state and the worker that did it), with how many times each item was claimed. Every `--set`
goes to every command (e.g. `--set data.max_molecules=3000` for a shorter study). One worker
per command (`--workers 1`), `--threads 1`, so that three commands on a 2-core machine share
its cores as three one-core machines would not: read the ratio for what it is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pgserver import PostgresServer, unavailable  # noqa: E402


def study(plan: str, out: Path, url: str, settings: list[str], cwd: Path) -> subprocess.Popen:
    """One worker: `molstrata study PLAN` in its own working directory (the throwaway
    server's URL holds a throwaway password)."""
    cwd.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "molstrata", "study", plan, "--storage", url, "-o",
               str(out), "--workers", "1", "--threads", "1", "-q",
               *[a for s in settings for a in ("--set", s)]]
    return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(workers: list[subprocess.Popen], started: float) -> float:
    """Wait for every worker; their wall time, or exit naming the first that failed."""
    for worker in workers:
        output, _ = worker.communicate()
        if worker.returncode != 0:
            sys.exit(f"a worker failed ({worker.returncode}):\n{output[-3000:]}")
    return time.perf_counter() - started


def status(out: Path, url: str) -> str:
    done = subprocess.run([sys.executable, "-m", "molstrata", "study", "--status", "-o",
                           str(out), "--storage", url], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"study --status failed:\n{done.stderr}")
    return done.stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", default="quick")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent / "results" / "cluster-study")
    args = parser.parse_args(argv)
    if (why := unavailable()) is not None:
        sys.exit(why)
    work = Path(__file__).resolve().parent / ".cache" / "cluster-study"
    if work.exists():
        sys.exit(f"{work} exists from an earlier run: remove it first")
    with PostgresServer(fast=False) as server:
        timings = {}
        for name, n in (("one", 1), ("three", 3)):
            url = server.create_database(f"bench_{name}")
            started = time.perf_counter()
            workers = [study(args.plan, work / name, url, args.settings,
                             work / f"{name}-cwd-{i}") for i in range(n)]
            timings[name] = finish(workers, started)
            print(f"{n} worker{'s' * (n > 1)}: {timings[name]:.0f} s", flush=True)
        log = status(work / "three", url)
    items = re.findall(r"^\s+(\w+)\s+(\S+)\s+worker (\S+)", log, flags=re.MULTILINE)
    claims = Counter(key for _, key, _ in items)
    record = {
        "plan": args.plan, "settings": args.settings,
        "wall_s": {k: round(v, 1) for k, v in timings.items()},
        "speed-up": round(timings["one"] / timings["three"], 2),
        "items": len(claims), "items_done_once": sum(1 for n in claims.values() if n == 1),
        "workers_seen": sorted({worker.rstrip(",") for _, _, worker in items}),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "platform": platform.platform(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "claims.txt").write_text(log)
    (args.out / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    print(log)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
