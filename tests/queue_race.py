"""Racing claims on a study's work queue, for the tests and bench/queue_claims.py: processes
that start claiming at one moment from one queue, each recording what it got."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

# A worker: opens the queue, waits until every worker is ready, then claims until nothing is
# left, recording each key and how long its claim took.
CLAIMER = """
import json, sys, time
from pathlib import Path
from molstrata.study.queue import WorkQueue

args = json.loads(sys.argv[1])
queue = WorkQueue(args["url"], args["name"], heartbeat_s=30)
ready = Path(args["ready"])
(ready / str(args["me"])).touch()
while len(list(ready.iterdir())) < args["workers"]:
    time.sleep(0.01)
with open(args["record"], "w", buffering=1) as record:
    while True:
        started = time.perf_counter()
        claim = queue.claim()
        seconds = time.perf_counter() - started
        if claim is None:
            break
        claim.done()
        record.write(json.dumps([claim.key, seconds]) + "\\n")
"""

ROOT = Path(__file__).resolve().parents[1]


def race(url: str, folder: Path, processes: int = 8, items: int = 200,
         name: str = "race") -> Counter:
    """Queue `items` keys, let `processes` workers claim them all at once; how many times
    each key was claimed (a key never claimed is counted 0)."""
    from molstrata.study.queue import WorkQueue

    keys = [f"item-{i:03d}" for i in range(items)]
    WorkQueue(url, name, heartbeat_s=30).add(keys)
    ready = folder / "ready"
    ready.mkdir()
    records = [folder / f"claims-{me}.jsonl" for me in range(processes)]
    workers = [subprocess.Popen(
        [sys.executable, "-c", CLAIMER, json.dumps(
            {"url": url, "name": name, "ready": str(ready), "me": me, "workers": processes,
             "record": str(record)})], cwd=ROOT) for me, record in enumerate(records)]
    codes = [worker.wait(timeout=300) for worker in workers]
    if any(codes):
        raise RuntimeError(f"a claiming worker failed: exit codes {codes}")
    claimed = Counter({key: 0 for key in keys})
    for record in records:
        for line in record.read_text().splitlines():
            claimed[json.loads(line)[0]] += 1
    return claimed
