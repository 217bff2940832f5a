"""The study's work queue on a live PostgreSQL server (tests/pgserver.py), the way a cluster
breaks it: racing claims, a database restart under waiting and working workers, a longer
outage, and a wrong or unreachable URL, each without the password reaching a message."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
from optuna.trial import TrialState
from pgserver import PASSWORD
from queue_race import race

from molstrata.cli import main
from molstrata.errors import MolstrataError
from molstrata.study.queue import WorkQueue, next_claim, status_text

# A worker: adds the keys and the report, then works through them, pausing `pauses[key]`
# seconds on each, recording what it claimed; its log lines go to stdout.
WORKER = """
import json, sys, time
from molstrata.study.queue import WorkQueue, next_claim

args = json.loads(sys.argv[1])
queue = WorkQueue.for_folder(args["out"], args["url"], heartbeat_s=1, grace_s=5,
                             log=lambda text: print(text, flush=True))
queue.add([*args["pauses"], "report"])
with open(args["record"], "a", buffering=1) as record:
    while (claim := next_claim(queue, list(args["pauses"]), final="report", poll_s=0.2)):
        with claim:
            record.write(f"{claim.key} claimed\\n")
            time.sleep(args["pauses"].get(claim.key, 0.1))
            record.write(f"{claim.key} done\\n")
"""


def test_eight_racing_workers_claim_each_of_200_items_once(postgres_url, tmp_path):
    """On SQLite the same race takes some 40 s (every claim waits for the file's one lock):
    bench/queue_claims.py runs it; tests/study/test_queue.py races two workers there."""
    claimed = race(postgres_url, tmp_path, processes=8, items=200)
    assert set(claimed.values()) == {1}, {k: n for k, n in claimed.items() if n != 1}


def test_workers_ride_out_a_database_restart(postgres_server, postgres_url, tmp_path):
    """One worker trains (sleeps) through the restart, the other waits for the report's turn:
    both reconnect, nothing is taken over, each key is worked on once, the report once."""
    pauses = {"long": 7.0, "short": 0.2}
    records = [tmp_path / f"worker-{me}.txt" for me in range(2)]
    workers = [subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps({"out": str(tmp_path / "out"),
                                                   "url": postgres_url, "pauses": pauses,
                                                   "record": str(record)})],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for record in records]
    queue = WorkQueue.for_folder(tmp_path / "out", postgres_url, heartbeat_s=1, grace_s=5)
    deadline = time.monotonic() + 60
    while queue.status(["long", "short"]).counts()["done"] < 1 or \
            not queue.status(["long"]).running:
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers)
        time.sleep(0.2)
    postgres_server.stop()  # one worker holds "long", the other waits for it
    time.sleep(1.5)
    postgres_server.start()
    outputs = [w.communicate(timeout=60) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err for _, err in outputs]
    said = "\n".join(out + err for out, err in outputs)
    assert "lost the work queue's database" in said and "is back after" in said
    assert PASSWORD not in said
    claims = sorted(line.split()[0] for r in records for line in r.read_text().splitlines()
                    if line.endswith("claimed"))
    assert claims == ["long", "report", "short"]
    states = [t.state for t in queue._trials()]
    assert states.count(TrialState.COMPLETE) == 3 and TrialState.FAIL not in states


def test_a_longer_outage_stops_with_one_line_and_the_same_command_resumes(postgres_server,
                                                                            postgres_url,
                                                                            tmp_path):
    queue = WorkQueue.for_folder(tmp_path, postgres_url, heartbeat_s=1, grace_s=3, outage_s=1)
    queue.add(["a", "b"])
    with queue.claim():
        pass
    postgres_server.stop()
    try:
        with pytest.raises(MolstrataError) as raised:
            next_claim(queue, ["a", "b"], final="report")
    finally:
        postgres_server.start()
    message = str(raised.value)
    assert "\n" not in message and PASSWORD not in message
    assert "molstrata:***@127.0.0.1" in message and "run the same command again" in message
    again = WorkQueue.for_folder(tmp_path, postgres_url, heartbeat_s=1, grace_s=3)
    again.add(["a", "b", "report"])
    while (claim := next_claim(again, ["a", "b"], final="report", poll_s=0.1)):
        with claim:
            pass
    assert again.all_done(["a", "b", "report"])


def test_status_shows_each_item_its_worker_and_heartbeat(postgres_url, tmp_path, capsys):
    queue = WorkQueue.for_folder(tmp_path, postgres_url, heartbeat_s=1, grace_s=3)
    queue.add(["a", "b", "c"])
    held = queue.claim()
    with queue.claim():
        pass
    text = status_text(tmp_path, postgres_url)
    assert text.splitlines()[0].endswith("1 waiting, 1 running, 1 done, 0 failed")
    assert "molstrata:***@" in text and PASSWORD not in text
    running = next(line for line in text.splitlines() if "running  a" in line)
    assert "worker " in running and "heartbeat" in running
    assert main(["study", "--status", "-o", str(tmp_path), "--storage", postgres_url]) == 0
    printed = capsys.readouterr().out.strip()
    assert re.sub(r"heartbeat \d+ s", "", printed) == re.sub(r"heartbeat \d+ s", "", text)
    held.done()
    for path in tmp_path.rglob("*"):  # nothing the queue wrote holds the password
        assert path.is_dir() or PASSWORD.encode() not in path.read_bytes(), path


def test_every_worker_of_a_folder_names_the_same_storage(postgres_url, tmp_path):
    WorkQueue.for_folder(tmp_path, postgres_url)
    with pytest.raises(MolstrataError, match="give every worker the same --storage"):
        WorkQueue.for_folder(tmp_path)
    other = tmp_path / "other"
    WorkQueue.for_folder(other)
    with pytest.raises(MolstrataError, match=r"queue.db \(the default\)"):
        WorkQueue.for_folder(other, postgres_url)


def test_two_studies_on_one_database_have_their_own_queues(postgres_url, tmp_path):
    first = WorkQueue.for_folder(tmp_path / "one", postgres_url)
    first.add(["a"])
    with first.claim():
        pass
    second = WorkQueue.for_folder(tmp_path / "two", postgres_url)
    assert second.name != first.name
    second.add(["a"])
    assert second.status(["a"]).waiting == ("a",)


@pytest.mark.parametrize("how", ["unreachable", "wrong password", "no driver"])
def test_a_bad_url_is_one_line_naming_it_without_its_password(how, postgres_server, tmp_path,
                                                               capsys):
    url = {"unreachable": f"postgresql+psycopg://u:{PASSWORD}@127.0.0.1:1/db",
           "wrong password": postgres_server.url(password=PASSWORD + "-wrong"),
           "no driver": f"postgresql+nosuchdriver://u:{PASSWORD}@127.0.0.1:1/db"}[how]
    code = main(["study", "--status", "-o", str(tmp_path / "out"), "--storage", url])
    assert code == 2  # no queue yet: told so, without opening anything
    plan = tmp_path / "plan.toml"
    plan.write_text('[study]\npreset = "quick"\n[defaults.data]\nmax_molecules = 100\n'
                    "[experiments.base]\n")
    capsys.readouterr()
    code = main(["study", str(plan), "-o", str(tmp_path / "out"), "--storage", url, "-q"])
    _, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert PASSWORD not in err and ":***@" in err
    assert "cannot open the work queue" in err
    for path in (tmp_path / "out").rglob("*"):
        assert path.is_dir() or PASSWORD.encode() not in path.read_bytes(), path

