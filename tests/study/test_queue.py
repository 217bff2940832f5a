"""The study's work queue: workers in separate processes share one SQLite queue, every key is
worked on once, a killed worker's item is taken over after its grace, and none earlier."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from molstrata.errors import MolstrataError
from molstrata.study.queue import QUEUE_NAME, WorkQueue, next_claim, queue_url

KEYS = [f"exp-{i // 3}/seed-{i % 3}" for i in range(12)]

# A worker as `molstrata study` runs it: waits for the others (so that they all add and claim
# at the same moment), adds the keys, then works through them and the report, recording each.
WORKER = """
import json, sys, time
from pathlib import Path
from molstrata.study.queue import WorkQueue, next_claim

args = json.loads(sys.argv[1])
queue = WorkQueue(args["url"], heartbeat_s=1, grace_s=2)
ready = Path(args["ready"])
(ready / str(args["me"])).touch()
while len(list(ready.iterdir())) < args["workers"]:
    time.sleep(0.01)
queue.add([*args["keys"], "report"])
with open(args["record"], "a", buffering=1) as record:
    while (claim := next_claim(queue, args["keys"], final="report", poll_s=0.1)):
        with claim:
            record.write(f"{claim.key} {time.time()} claimed\\n")
            time.sleep(args["pause"])
            record.write(f"{claim.key} {time.time()} done\\n")
"""

# A worker that claims one item and holds it, beating, until it is killed.
HOLDER = """
import sys, time
from pathlib import Path
from molstrata.study.queue import WorkQueue

claim = WorkQueue(sys.argv[1], heartbeat_s=1, grace_s=2).claim()
Path(sys.argv[2]).write_text(claim.key)
time.sleep(120)
"""


@pytest.fixture
def url(tmp_path) -> str:
    return queue_url(tmp_path)


def queue(url: str, **options) -> WorkQueue:
    return WorkQueue(url, heartbeat_s=1, grace_s=2, **options)


def trial_states(url: str, key: str) -> list[TrialState]:
    study = optuna.load_study(study_name=QUEUE_NAME, storage=url)
    return [t.state for t in study.get_trials() if t.user_attrs["key"] == key]


def test_add_is_idempotent(url, tmp_path):
    first = queue(url)
    first.add(KEYS)
    first.add(KEYS)
    second = WorkQueue.for_folder(tmp_path, heartbeat_s=1, grace_s=2)
    second.add([*KEYS[:4], "report"])
    assert second.status().waiting == (*KEYS, "report")
    assert len(optuna.load_study(study_name=QUEUE_NAME, storage=url).trials) == 13
    with second.claim() as claim:
        assert claim.key == KEYS[0]
    first.add(KEYS)  # a done key is not queued again
    assert first.status().counts() == {"waiting": 12, "running": 0, "done": 1, "failed": 0,
                                       "missing": 0}
    assert first.all_done(KEYS[:1]) and not first.all_done(KEYS[:2])


def test_release_puts_an_item_back_and_claim_says_when_nothing_is_left(url):
    q = queue(url)
    assert q.claim() is None  # empty
    q.add(["a", "b"])
    a, b = q.claim(), q.claim()
    assert (a.key, b.key) == ("a", "b")
    assert q.claim() is None  # fully claimed
    assert q.status(["a", "b", "c"]).running == ("a", "b")
    assert q.status(["c"]).missing == ("c",)
    b.release()
    assert q.status().waiting == ("b",)
    with pytest.raises(KeyboardInterrupt), q.claim(["b"]) as again:  # Ctrl-C releases
        assert again.key == "b" and not again.taken_over
        raise KeyboardInterrupt
    with pytest.raises(MolstrataError), q.claim() as again:  # so does a user error
        raise MolstrataError("bad plan")
    with q.claim() as again:
        assert again.key == "b"
    a.done()
    a.release()  # a finished claim stays finished
    assert q.all_done(["a", "b"]) and q.claim() is None
    assert next_claim(q, ["a", "b"]) is None


def test_a_key_queued_twice_by_racing_workers_is_worked_on_once(url):
    q = queue(url)
    q.add(["a", "b"])
    study = optuna.load_study(study_name=QUEUE_NAME, storage=url)
    racing = optuna.create_trial(state=TrialState.WAITING, user_attrs={"key": "a"})
    study.add_trial(racing)  # as if a second worker added "a" at the same moment
    first = q.claim()
    assert first.key == "a"
    with q.claim() as other:  # the copy of "a" is dropped, not handed out while "a" runs
        assert other.key == "b"
    first.done()
    study.add_trial(racing)
    assert q.claim() is None  # nor once "a" is done
    assert trial_states(url, "a") == [TrialState.COMPLETE, TrialState.PRUNED,
                                      TrialState.PRUNED]


def test_retries_spent_are_reported_failed_and_queued_again_by_add(url):
    q = queue(url, max_retries=0)
    q.add(["a"])
    claim = q.claim()
    study = optuna.load_study(study_name=QUEUE_NAME, storage=url)
    study.tell(claim.number, state=TrialState.FAIL)  # as fail_stale_trials, with no retry left
    assert q.status().failed == ("a",)
    assert next_claim(q, ["a"], final="report") is None  # nothing left to do
    claim.release()  # its worker was alive after all: nothing to put back
    q.add(["a"])  # the study started again retries it
    with next_claim(q, ["a"]) as again:
        assert again.key == "a"
    assert q.all_done(["a"])


def test_a_worker_that_finishes_after_it_was_taken_over_counts(url):
    q = queue(url, max_retries=0)
    q.add(["a"])
    claim = q.claim()
    optuna.load_study(study_name=QUEUE_NAME, storage=url).tell(claim.number,
                                                               state=TrialState.FAIL)
    q.add(["a"])  # the retry of the failed item, not claimed yet
    claim.done()
    assert q.all_done(["a"]) and q.claim() is None  # the retry is dropped


def test_bad_timings_are_refused(url):
    with pytest.raises(MolstrataError, match="grace_s > heartbeat_s"):
        WorkQueue(url, heartbeat_s=5, grace_s=5)


def _start(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=Path(__file__).parents[2])


def test_two_workers_drain_a_queue_each_key_once_then_the_report(url, tmp_path):
    ready = tmp_path / "ready"
    ready.mkdir()
    records = [tmp_path / f"worker-{me}.txt" for me in range(2)]
    workers = [_start(WORKER, json.dumps({"url": url, "keys": KEYS, "pause": 0.25,
                                          "ready": str(ready), "me": me, "workers": 2,
                                          "record": str(record)}))
               for me, record in enumerate(records)]
    assert [w.wait(timeout=60) for w in workers] == [0, 0]
    lines = [[line.split() for line in r.read_text().splitlines()] for r in records]
    claimed = [[key for key, _, what in worker if what == "claimed"] for worker in lines]
    every = sorted(claimed[0] + claimed[1])
    assert every == sorted([*KEYS, "report"])  # each key exactly once, and the report once
    assert claimed[0] and claimed[1]
    times = {(key, what): float(at) for worker in lines for key, at, what in worker}
    assert times["report", "claimed"] >= max(times[k, "done"] for k in KEYS)
    assert queue(url).all_done([*KEYS, "report"])


def test_a_killed_workers_item_is_taken_over_after_its_grace_and_not_before(url, tmp_path):
    q = queue(url)
    q.add(["a"])
    held = tmp_path / "held"
    holder = _start(HOLDER, url, str(held))
    try:
        deadline = time.monotonic() + 30
        while not held.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held.read_text() == "a"
        alive_until = time.monotonic() + 3.5  # longer than the grace: heartbeats keep it
        while time.monotonic() < alive_until:
            q.fail_stale()
            assert q.claim() is None
            time.sleep(0.25)
        assert q.status().running == ("a",)
    finally:
        holder.kill()  # SIGKILL: no chance to release
        holder.wait()
    killed = time.monotonic()
    with next_claim(q, ["a"], poll_s=0.1) as claim:
        waited = time.monotonic() - killed
        assert claim.key == "a" and claim.taken_over
    assert 0.5 < waited < 6
    assert q.all_done(["a"])
    assert trial_states(url, "a") == [TrialState.FAIL, TrialState.COMPLETE]
