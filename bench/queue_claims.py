"""Benchmark: the study's work queue on PostgreSQL and on SQLite, racing and alone.

    python bench/queue_claims.py [--processes 8] [--items 200]

Racing: PROCESSES workers start claiming at one moment from one queue of ITEMS items, each
claiming until nothing is left (tests/queue_race.py, as the tests run it); printed: how many
items were claimed once, twice or never (it should be ITEMS, 0, 0) and the seconds it took.
Alone: one process claims the ITEMS items one after another (claim, then done); printed: the
median and 90th percentile of one claim's time (WorkQueue.claim(), which reads the queue
twice and writes the heartbeat, the state and the worker).

PostgreSQL is a throwaway server this script starts and stops (tests/pgserver.py), with its
defaults (fsync on), on 127.0.0.1; SQLite is OUT/queue.db in a temporary folder. Run it on a
quiet machine: the claims are mostly Python and SQLAlchemy CPU time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pgserver import PostgresServer, unavailable  # noqa: E402
from queue_race import race  # noqa: E402

from molstrata.study.queue import WorkQueue, queue_url  # noqa: E402


def claim_times(url: str, items: int) -> list[float]:
    """Seconds of each of `items` claims by one process, each item done before the next."""
    queue = WorkQueue(url, "alone", heartbeat_s=30)
    queue.add([f"item-{i:03d}" for i in range(items)])
    times = []
    for _ in range(items):
        started = time.perf_counter()
        claim = queue.claim()
        times.append(time.perf_counter() - started)
        claim.done()
    return times


def report(name: str, url: str, folder: Path, processes: int, items: int) -> None:
    started = time.perf_counter()
    claimed = race(url, folder, processes=processes, items=items)
    seconds = time.perf_counter() - started
    counts = Counter(claimed.values())
    times = sorted(claim_times(url, items))
    print(f"{name:<10} racing {processes} processes x {items} items: claimed once "
          f"{counts[1]}, twice or more {sum(n for k, n in counts.items() if k > 1)}, never "
          f"{counts[0]} ({seconds:.1f} s); one claim alone: median "
          f"{1000 * statistics.median(times):.1f} ms, p90 "
          f"{1000 * times[int(0.9 * len(times))]:.1f} ms over {items} claims")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--items", type=int, default=200)
    args = parser.parse_args()
    reason = unavailable()
    if reason:
        print(f"PostgreSQL: skipped ({reason})")
    else:
        with PostgresServer(fast=False) as server, tempfile.TemporaryDirectory() as folder:
            report("PostgreSQL", server.create_database("bench"), Path(folder),
                   args.processes, args.items)
    with tempfile.TemporaryDirectory() as folder:
        report("SQLite", queue_url(folder), Path(folder), args.processes, args.items)


if __name__ == "__main__":
    main()
