"""A work queue that the workers of one study share, so that every item (a string key such as
"baseline/seed-1") is worked on once, whichever worker, process or machine takes it.

It is an Optuna study in the RDB storage that sweeps use (OUT/queue.db by default, or any
database URL that every worker reaches); no scheduler runs anywhere. Each item is a trial:

- adding an item enqueues a WAITING trial whose user attr "key" holds the key. A user attr,
  because it is Optuna's public place for a trial's own data, RetryHeartbeatStaleTrialCallback
  copies it to the retried trial, and unlike a fixed parameter it needs no distribution (a
  categorical one per key would clash between trials);
- claiming pops the oldest WAITING trial as Optuna's own ask() does: set_trial_state_values
  to RUNNING, which answers False when another worker took it first. Optuna checks and
  writes under SELECT ... FOR UPDATE, which SQLite ignores, and Python's sqlite3 opens a
  transaction only at its first write, so two workers could both claim one trial of a SQLite
  file: this queue's SQLite connections begin every transaction with BEGIN IMMEDIATE
  (SQLAlchemy's documented recipe), which serialises the check and the write;
- a claimed item records a heartbeat (from a daemon thread, every heartbeat_s) until it is
  done (COMPLETE) or released (WAITING again). A worker that dies leaves its item RUNNING
  with an old heartbeat: after grace_s, whichever worker is waiting fails it
  (optuna.storages.fail_stale_trials) and RetryHeartbeatStaleTrialCallback queues a WAITING
  copy that has the same key, up to max_retries times (None: without limit). The heartbeat is
  written before the claim, so an item taken back after a release is never stale at once.

Adding is idempotent (keys already queued, running or done are skipped), but two workers that
add at the same moment can both queue a key: Optuna's API has no transaction spanning several
trials to lock the queue while adding. Instead, claims drop duplicates: a claimed trial whose
key is already done, or also has an older trial that is waiting or running, is marked PRUNED
(user attr "duplicate") and not handed out, and next_claim sweeps up the copies left once their
key is done. The oldest live trial of a key is always the one that runs, so each key is worked
on once; the same rule covers a retry that races with a re-add, and a worker that finished
after its item was taken over. Like any lease, this assumes that a live worker's heartbeats
get through: one whose storage is unreachable for grace_s loses its item to another worker.

On a database server (PostgreSQL: postgresql+psycopg://...) the same calls hold without
BEGIN IMMEDIATE: set_trial_state_values reads the trial with SELECT ... FOR UPDATE and writes
it in the same transaction (Optuna 5.1: optuna/storages/_rdb/storage.py lines 670-694, its
session committed once by _create_scoped_session, lines 73-98; the lock is
models.TrialModel.find_or_raise_by_id's with_for_update(), models.py lines 307-321). Under
PostgreSQL's default READ COMMITTED, a second claimant's SELECT ... FOR UPDATE blocks on the
row lock until the first commits, then re-reads the row as committed (RUNNING): it answers
False, so a trial is claimed once. A server's queue is named after the study's folder
(OUT/queue.json holds a random name), so several studies share one database without sharing
items.

A lost connection (the server restarted, the network dropped) is waited out: every call to
the storage is tried again for up to outage_s, and a worker that saw an outage fails no one's
items for grace_s after it, so that the live workers' heartbeats get through first. A longer
outage stops the worker with a one-line MolstrataError that names the URL (password hidden)
and says how to resume: start the same command again.

A last step that must run once, after every other item (the study's report), is an item like
the others, added with them: next_claim(queue, keys, final="report") hands it out only when
every key is done, and keeps the other workers waiting until it is done, to take it over if its
worker dies.

    queue = WorkQueue.for_folder(out)   # or for_folder(out, storage="postgresql+psycopg://...")
    queue.add([*keys, "report"])        # every worker does this: it is idempotent
    while (claim := next_claim(queue, keys, final="report")):
        with claim:              # done() on leaving, release() on an exception or Ctrl-C
            work(claim.key)
"""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from molstrata._files import atomic_write_text
from molstrata.errors import MolstrataError
from molstrata.sweep.storage import lost_connection, open_storage, reason, redacted

QUEUE_NAME = "molstrata-study-queue"
DEFAULT_DB = "queue.db"
QUEUE_FILE = "queue.json"
OUTAGE_S = 300
KEY_ATTR = "key"
WORKER_ATTR = "worker"
_LIVE = (TrialState.WAITING, TrialState.RUNNING)


def queue_url(out_dir: str | os.PathLike) -> str:
    """The embedded storage of a study's queue: OUT/queue.db (SQLite, no server)."""
    return f"sqlite:///{(Path(out_dir) / DEFAULT_DB).resolve()}"


@dataclass(frozen=True)
class QueueStatus:
    """Where each key stands, keys in the order they were first added."""

    waiting: tuple[str, ...]
    running: tuple[str, ...]    # held by a worker (or by a dead one, until its grace is over)
    done: tuple[str, ...]
    failed: tuple[str, ...]     # every attempt's worker died and max_retries is spent
    missing: tuple[str, ...]    # asked about but never added

    def counts(self) -> dict[str, int]:
        """How many keys are in each state, for messages."""
        return {name: len(getattr(self, name))
                for name in ("waiting", "running", "done", "failed", "missing")}


@dataclass(frozen=True)
class QueueItem:
    """One key as `molstrata study --status` shows it."""

    key: str
    state: str                  # waiting, running, done or failed (QueueStatus's names)
    attempts: int               # trials of the key: more than one after a take-over
    worker: str | None          # host:pid of the worker that holds it or finished it
    heartbeat_age_s: float | None  # seconds since its worker's last heartbeat (running only)


class WorkQueue:
    """The queue `name` in the storage at `url`, created by whichever worker opens it first."""

    def __init__(self, url: str, name: str = QUEUE_NAME, *, heartbeat_s: int = 30,
                 grace_s: int | None = None, max_retries: int | None = 3,
                 outage_s: float = OUTAGE_S, log: Callable[[str], None] | None = None) -> None:
        grace = grace_s if grace_s is not None else 2 * heartbeat_s
        if heartbeat_s < 1 or grace <= heartbeat_s:
            raise MolstrataError(
                f"the work queue needs heartbeat_s >= 1 and grace_s > heartbeat_s (got "
                f"{heartbeat_s} and {grace}): a live worker's items would be taken over")
        self.url, self.name = url, name
        self.heartbeat_s, self.grace_s, self.max_retries = heartbeat_s, grace, max_retries
        self._raw: RDBStorage = open_storage(url, heartbeat_s, grace, max_retries,
                                             what="work queue")
        if url.startswith("sqlite"):
            _serialise_sqlite(self._raw)
        self._storage = _Patient(self._raw, url, outage_s, log)
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created"
        try:
            self._study = optuna.create_study(storage=self._raw, study_name=name,
                                              load_if_exists=True, direction="minimize")
        except Exception as error:
            raise MolstrataError(f"cannot open the work queue {name!r} in {redacted(url)}: "
                                 f"{reason(error, url)}; check the storage") from None
        finally:
            optuna.logging.set_verbosity(verbosity)
        self._study_id = self._storage.get_study_id_from_name(name)

    @classmethod
    def for_folder(cls, out_dir: str | os.PathLike, storage: str | None = None,
                   **options) -> WorkQueue:
        """The queue of a study written to `out_dir`: in OUT/queue.db, or in the database at
        `storage` under the name OUT/queue.json gives it (made by the first worker). Refused
        when the folder's queue lives in another storage: every worker must name the same."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        url = storage or queue_url(out)
        name = _recorded_name(out, storage)
        if name is not None:
            return cls(url, name, **options)
        name = QUEUE_NAME if storage is None else f"molstrata-study-{uuid.uuid4().hex[:16]}"
        queue = cls(url, name, **options)  # a URL that does not work is refused before the file
        recorded = _record_name(out, storage, name)
        if recorded == name:
            return queue
        optuna.delete_study(study_name=name, storage=queue._raw)  # another worker came first
        return cls(url, recorded, **options)

    def add(self, keys: Iterable[str]) -> None:
        """Queue the keys not yet waiting, running or done (once each), and again those whose
        attempts all failed: starting a study again retries what its dead workers gave up."""
        keys = list(dict.fromkeys(keys))
        for key in keys:
            if not isinstance(key, str) or not key:
                raise ValueError(f"work queue keys are non-empty strings, not {key!r}")
        status = self.status(keys)
        for key in (*status.missing, *status.failed):
            template = optuna.create_trial(state=TrialState.WAITING, user_attrs={KEY_ATTR: key})
            self._storage.create_new_trial(self._study_id, template_trial=template)

    def claim(self, keys: Iterable[str] | None = None) -> Claim | None:
        """Take the oldest waiting item (of `keys`, if given) for this worker, or None when
        every such item is done or held by a worker. A worker that loses an item to another
        tries one of the next few at random: racing workers then rarely meet again."""
        wanted = None if keys is None else set(keys)
        candidates = [t for t in self._rows((TrialState.WAITING,))
                      if wanted is None or t.key in wanted]
        lost = False
        while candidates:
            trial = candidates.pop(random.randrange(min(len(candidates), 8)) if lost else 0)
            key, trial_id = trial.key, trial.trial_id
            self._storage.record_heartbeat(trial_id)  # a released item's beat may be old
            try:
                won = self._storage.set_trial_state_values(trial_id, state=TrialState.RUNNING)
            except UpdateFinishedTrialError:
                won = False
            if not won:  # another worker took it first
                lost = True
                continue
            if self._duplicate(trial):
                self._storage.set_trial_user_attr(trial_id, "duplicate", True)
                self._storage.set_trial_state_values(trial_id, state=TrialState.PRUNED)
                continue
            self._storage.set_trial_user_attr(trial_id, WORKER_ATTR, _worker())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                retry_of = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(
                    self._storage.get_trial(trial_id))
            return Claim(self, trial_id, trial.number, key, taken_over=retry_of is not None)
        return None

    def status(self, keys: Iterable[str] | None = None) -> QueueStatus:
        """Where each key (of `keys`, or every key ever added) stands."""
        states: dict[str, set[TrialState]] = {}
        for trial in self._rows():
            states.setdefault(trial.key, set()).add(trial.state)
        known = list(states)
        asked = known if keys is None else list(dict.fromkeys(keys))
        groups: dict[str, list[str]] = {field.name: [] for field in fields(QueueStatus)}
        for key in asked:
            groups[_standing(states.get(key))].append(key)
        return QueueStatus(**{name: tuple(group) for name, group in groups.items()})

    def items(self) -> list[QueueItem]:
        """Every key ever added, in the order first added, with its worker and heartbeat."""
        by_key: dict[str, list[FrozenTrial]] = {}
        for trial in sorted(self._trials(), key=lambda t: t.number):
            key = trial.user_attrs.get(KEY_ATTR)
            if key is not None:
                by_key.setdefault(key, []).append(trial)
        ages = self._storage.call(_heartbeat_ages, self._raw, self._study_id)
        items = []
        for key, trials in by_key.items():
            state = _standing({t.state for t in trials})
            live = {"running": TrialState.RUNNING, "done": TrialState.COMPLETE}.get(state)
            holder = next((t for t in trials if t.state == live), trials[-1])
            age = ages.get(holder._trial_id) if state == "running" else None
            items.append(QueueItem(key, state, len([t for t in trials if not
                                                    t.user_attrs.get("duplicate")]),
                                   holder.user_attrs.get(WORKER_ATTR), age))
        return items

    def all_done(self, keys: Iterable[str]) -> bool:
        """Whether every key is done."""
        keys = list(keys)
        return len(self.status(keys).done) == len(set(keys))

    def fail_stale(self) -> None:
        """Fail the items whose worker stopped beating grace_s ago; each comes back as a
        waiting retry with the same key (up to max_retries times). Not within grace_s of an
        outage this worker saw: every heartbeat is old then, the live workers' too."""
        if self._storage.recovered_within(self.grace_s):
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._storage.call(optuna.storages.fail_stale_trials, self._study)

    def _trials(self, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
        return self._storage.get_all_trials(self._study_id, deepcopy=False, states=states)

    def _rows(self, states: tuple[TrialState, ...] | None = None,
              key: str | None = None) -> list[_Row]:
        """The queue's trials (of `states`, of `key`) as (trial id, number, state, key), oldest
        first."""
        return self._storage.call(_rows, self._raw, self._study_id, states, key)

    def _duplicate(self, claimed: _Row) -> bool:
        """Whether the key of a trial just claimed is done, or is also queued or held by an
        older trial (two workers added it at once): the oldest live trial is the one to run."""
        for trial in self._rows(key=claimed.key):
            if trial.number == claimed.number:
                continue
            if trial.state == TrialState.COMPLETE:
                return True
            if trial.state in _LIVE and trial.number < claimed.number:
                return True
        return False


class Claim:
    """A worker's hold on one item, kept alive by heartbeats until done() or release().

    As a context manager: done() when the block ends, release() when it raises (Ctrl-C
    included), and the exception goes on.
    """

    def __init__(self, queue: WorkQueue, trial_id: int, number: int, key: str, *,
                 taken_over: bool = False) -> None:
        self.key = key
        self.number = number            # the trial's number in the queue's Optuna study
        self.taken_over = taken_over    # a dead worker held this item before
        self._queue, self._trial_id = queue, trial_id
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._beating = threading.Thread(target=self._beat, daemon=True,
                                         name=f"heartbeat {key}")
        self._beating.start()

    def done(self) -> None:
        """Mark the item done. If it was taken over meanwhile (this worker's heartbeats
        stopped for grace_s), it is still recorded done, and its retry is dropped."""
        if not self._finish():
            return
        storage, seconds = self._queue._storage, time.monotonic() - self._started
        try:
            storage.set_trial_state_values(self._trial_id, TrialState.COMPLETE, [seconds])
        except UpdateFinishedTrialError:
            template = optuna.create_trial(state=TrialState.COMPLETE, value=seconds,
                                           user_attrs={KEY_ATTR: self.key,
                                                       WORKER_ATTR: _worker()})
            storage.create_new_trial(self._queue._study_id, template_trial=template)

    def release(self) -> None:
        """Put the item back for any worker (this one too) to take; its run resumes from its
        checkpoint there."""
        if not self._finish():
            return
        try:
            self._queue._storage.set_trial_state_values(self._trial_id, TrialState.WAITING)
        except UpdateFinishedTrialError:
            pass  # already taken over: its retry is queued

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is None:
            self.done()
        else:
            self.release()

    def __repr__(self) -> str:
        return f"Claim({self.key!r}, trial {self.number})"

    def _finish(self) -> bool:
        """Stop the heartbeats; False when the claim was already finished."""
        if self._stop.is_set():
            return False
        self._stop.set()
        self._beating.join()
        return True

    def _beat(self) -> None:
        wait = self._queue.heartbeat_s
        while not self._stop.wait(wait):
            try:
                self._queue._raw.record_heartbeat(self._trial_id)
                wait = self._queue.heartbeat_s
            except Exception:  # storage unreachable for a moment: try again soon
                wait = min(1.0, self._queue.heartbeat_s)


def status_text(out_dir: str | os.PathLike, storage: str | None = None) -> str:
    """Where the queue of the study in `out_dir` stands (`molstrata study --status`): how many
    items wait, run, are done or failed, and each running item's worker and heartbeat age."""
    out = Path(out_dir)
    if not (out / QUEUE_FILE).is_file() and not (out / DEFAULT_DB).is_file():
        raise MolstrataError(f"{out} holds no study's work queue (no {QUEUE_FILE}); give the "
                             "-o folder the study writes to")
    queue = WorkQueue.for_folder(out, storage)
    items = queue.items()
    counts = {state: sum(item.state == state for item in items)
              for state in ("waiting", "running", "done", "failed")}
    lines = [f"work queue of {out} in {redacted(queue.url)}: "
             + ", ".join(f"{n} {state}" for state, n in counts.items())]
    width = max((len(item.key) for item in items), default=0)
    for state in ("running", "waiting", "failed", "done"):
        for item in (i for i in items if i.state == state):
            line = f"  {state:<8} {item.key:<{width}}"
            if item.worker and state != "waiting":
                line += f"  worker {item.worker}"
            if item.heartbeat_age_s is not None:
                line += f", heartbeat {item.heartbeat_age_s:.0f} s ago"
                if item.heartbeat_age_s > queue.grace_s:
                    line += f" (stale: taken over after {queue.grace_s} s by a waiting worker)"
            if item.attempts > 1:
                line += f"  ({item.attempts} attempts)"
            lines.append(line.rstrip())
    if counts["failed"]:
        lines.append("failed items are queued again when the study's command runs again")
    return "\n".join(lines)


def next_claim(queue: WorkQueue, keys: Iterable[str], *, final: str | None = None,
               poll_s: float | None = None,
               log: Callable[[str], None] | None = None) -> Claim | None:
    """This worker's next item of `keys`, waiting while other workers hold the rest (and taking
    over a dead worker's after its grace); then `final`, once every key is done. None when
    nothing is left: all done, or only items whose retries are spent (see queue.status())."""
    keys = list(keys)
    poll = poll_s if poll_s is not None else max(0.5, min(5.0, queue.heartbeat_s / 2))
    waiting_said = False
    while True:
        queue.fail_stale()
        claim = queue.claim(keys)  # also drops the copies of done keys that racing adds queued
        if claim is not None:
            return claim
        status = queue.status(keys)
        if final is not None and len(status.done) == len(set(keys)):
            claim = queue.claim([final])
            if claim is not None:
                return claim
            status = queue.status([final])
        if status.missing:
            raise ValueError(f"keys not in the work queue (add them first): {status.missing}")
        if status.waiting:
            continue  # put back (or queued again) since the claim: look again
        if not status.running:
            return None
        if log is not None and not waiting_said:
            log(f"waiting for {len(status.running)} item(s) held by other workers (a dead "
                f"worker's item is taken over after {queue.grace_s} s)")
            waiting_said = True
        time.sleep(poll)


def _recorded_name(out: Path, storage: str | None) -> str | None:
    """The queue's name in its storage, as OUT/queue.json records it (None before the first
    worker made it), refusing a worker whose storage is not the one recorded (password hidden).
    The embedded file holds one queue; a server's database one per study folder."""
    record = out / QUEUE_FILE
    if not record.is_file():
        return None
    saved = json.loads(record.read_text())
    wanted = redacted(storage) if storage else None
    if saved["storage"] != wanted:
        where = saved["storage"] or f"{out / DEFAULT_DB} (the default)"
        given = f"--storage {wanted}" if wanted else "no --storage"
        raise MolstrataError(
            f"the study in {out} keeps its work queue in {where}, but this worker was given "
            f"{given}; give every worker the same --storage, or write to another folder")
    return saved["name"]


def _record_name(out: Path, storage: str | None, name: str) -> str:
    """Record the queue's storage and name in OUT/queue.json unless a worker did first; the
    name recorded."""
    draft = out / f".{QUEUE_FILE}.{socket.gethostname()}.{os.getpid()}"
    atomic_write_text(draft, json.dumps({"storage": redacted(storage) if storage else None,
                                         "name": name}) + "\n")
    try:
        os.link(draft, out / QUEUE_FILE)  # atomic, also on NFS: the first worker's name wins
    except FileExistsError:
        pass
    finally:
        draft.unlink(missing_ok=True)
    return _recorded_name(out, storage) or name


class _Row(NamedTuple):
    trial_id: int
    number: int
    state: TrialState
    key: str


def _rows(storage: RDBStorage, study_id: int, states: tuple[TrialState, ...] | None,
          key: str | None = None) -> list[_Row]:
    """The study's trials that have a key, read in one query of Optuna's tables: its
    get_all_trials builds every trial with all its attributes, some 20 times slower, and a
    claim reads the queue twice."""
    from optuna.storages._rdb import models
    from sqlalchemy import select

    trial, attr = models.TrialModel, models.TrialUserAttributeModel
    query = (select(trial.trial_id, trial.number, trial.state, attr.value_json)
             .join(attr, (attr.trial_id == trial.trial_id) & (attr.key == KEY_ATTR))
             .where(trial.study_id == study_id).order_by(trial.number))
    if states is not None:
        query = query.where(trial.state.in_(states))
    if key is not None:
        query = query.where(attr.value_json == json.dumps(key))
    session = storage.scoped_session()
    try:
        rows = session.execute(query).all()
    finally:
        session.rollback()
        storage.scoped_session.remove()
    return [_Row(t, n, state, json.loads(value)) for t, n, state, value in rows]


def _heartbeat_ages(storage: RDBStorage, study_id: int) -> dict[int, float]:
    """Seconds since each running trial's last heartbeat, by trial id, in the database's own
    clock (as Optuna judges staleness). Reads Optuna's heartbeat table: Optuna has no public
    call for it."""
    from optuna.storages._rdb import models
    from sqlalchemy import func, select

    session = storage.scoped_session()
    try:
        now = session.execute(select(func.now())).scalar_one().replace(tzinfo=None)
        rows = session.execute(
            select(models.TrialHeartbeatModel.trial_id, models.TrialHeartbeatModel.heartbeat)
            .join(models.TrialModel,
                  models.TrialModel.trial_id == models.TrialHeartbeatModel.trial_id)
            .where(models.TrialModel.study_id == study_id,
                   models.TrialModel.state == TrialState.RUNNING)).all()
    finally:
        session.rollback()
        storage.scoped_session.remove()
    return {trial_id: max(0.0, (now - beat.replace(tzinfo=None)).total_seconds())
            for trial_id, beat in rows}


class _Patient:
    """The storage, each call tried again while its database is unreachable, for up to
    outage_s; then a one-line MolstrataError. Other errors pass through."""

    def __init__(self, storage: RDBStorage, url: str, outage_s: float,
                 log: Callable[[str], None] | None) -> None:
        self._storage, self._url, self._outage_s, self._log = storage, url, outage_s, log
        self._recovered: float | None = None

    def call(self, function: Callable, *args, **kwargs):
        lost = None
        while True:
            try:
                result = function(*args, **kwargs)
            except Exception as error:
                if not lost_connection(error):
                    raise
                now = time.monotonic()
                if lost is None:
                    lost = now
                    if self._log is not None:
                        self._log(f"lost the work queue's database {redacted(self._url)}: "
                                  f"trying again for up to {self._outage_s:g} s")
                if now - lost > self._outage_s:
                    why = reason(error.__cause__ or error, self._url)
                    raise MolstrataError(
                        f"the work queue's database {redacted(self._url)} has been unreachable "
                        f"for {now - lost:.0f} s ({why}); when it is back, run the same command "
                        "again to resume (finished runs are kept)") from None
                time.sleep(min(2.0, 0.2 + 0.1 * (now - lost)))
                continue
            if lost is not None:
                self._recovered = time.monotonic()
                if self._log is not None:
                    self._log(f"the work queue's database is back after "
                              f"{self._recovered - lost:.0f} s")
            return result

    def recovered_within(self, seconds: float) -> bool:
        return self._recovered is not None and time.monotonic() - self._recovered < seconds

    def __getattr__(self, name: str):
        method = getattr(self._storage, name)
        return lambda *args, **kwargs: self.call(method, *args, **kwargs)


def _standing(states: set[TrialState] | None) -> str:
    """A key's place in QueueStatus, from the states of its trials."""
    if not states:
        return "missing"
    if TrialState.COMPLETE in states:
        return "done"
    if TrialState.RUNNING in states:
        return "running"
    if TrialState.WAITING in states:
        return "waiting"
    return "failed"


def _serialise_sqlite(storage: RDBStorage) -> None:
    """Begin every transaction on the SQLite file with its write lock (BEGIN IMMEDIATE), so
    that Optuna's check-then-set of a trial's state is atomic between processes, as SELECT ...
    FOR UPDATE makes it on other databases. Python's sqlite3 would otherwise begin only at the
    first write, after the check. The connections made so far are dropped to take it up."""
    from sqlalchemy import event

    def autocommit_driver(connection, _record) -> None:
        connection.isolation_level = None  # SQLAlchemy's BEGIN below, not the driver's

    def begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(storage.engine, "connect", autocommit_driver)
    event.listen(storage.engine, "begin", begin_immediate)
    storage.engine.dispose()


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
