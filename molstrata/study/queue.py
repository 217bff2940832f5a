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

A last step that must run once, after every other item (the study's report), is an item like
the others, added with them: next_claim(queue, keys, final="report") hands it out only when
every key is done, and keeps the other workers waiting until it is done, to take it over if its
worker dies.

    queue = WorkQueue.for_folder(out)
    queue.add([*keys, "report"])        # every worker does this: it is idempotent
    while (claim := next_claim(queue, keys, final="report")):
        with claim:              # done() on leaving, release() on an exception or Ctrl-C
            work(claim.key)
"""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from molstrata.errors import MolstrataError
from molstrata.sweep.storage import open_storage, redacted

QUEUE_NAME = "molstrata-study-queue"
DEFAULT_DB = "queue.db"
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


class WorkQueue:
    """The queue `name` in the storage at `url`, created by whichever worker opens it first."""

    def __init__(self, url: str, name: str = QUEUE_NAME, *, heartbeat_s: int = 30,
                 grace_s: int | None = None, max_retries: int | None = 3) -> None:
        grace = grace_s if grace_s is not None else 2 * heartbeat_s
        if heartbeat_s < 1 or grace <= heartbeat_s:
            raise MolstrataError(
                f"the work queue needs heartbeat_s >= 1 and grace_s > heartbeat_s (got "
                f"{heartbeat_s} and {grace}): a live worker's items would be taken over")
        self.url, self.name = url, name
        self.heartbeat_s, self.grace_s, self.max_retries = heartbeat_s, grace, max_retries
        self._storage: RDBStorage = open_storage(url, heartbeat_s, grace, max_retries)
        if url.startswith("sqlite"):
            _serialise_sqlite(self._storage)
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created"
        try:
            self._study = optuna.create_study(storage=self._storage, study_name=name,
                                              load_if_exists=True, direction="minimize")
        except Exception as error:
            raise MolstrataError(f"cannot open the work queue {name!r} in {redacted(url)}: "
                                 f"{error}; check the storage") from None
        finally:
            optuna.logging.set_verbosity(verbosity)
        self._study_id = self._storage.get_study_id_from_name(name)

    @classmethod
    def for_folder(cls, out_dir: str | os.PathLike, **options) -> WorkQueue:
        """The queue of a study written to `out_dir`, in OUT/queue.db."""
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return cls(queue_url(out_dir), **options)

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
        every such item is done or held by a worker."""
        wanted = None if keys is None else set(keys)
        for trial in sorted(self._trials((TrialState.WAITING,)), key=lambda t: t.number):
            key = trial.user_attrs.get(KEY_ATTR)
            if wanted is not None and key not in wanted:
                continue
            trial_id = trial._trial_id
            self._storage.record_heartbeat(trial_id)  # a released item's beat may be old
            try:
                if not self._storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                    continue  # another worker took it first
            except UpdateFinishedTrialError:
                continue
            if self._duplicate(trial):
                self._storage.set_trial_user_attr(trial_id, "duplicate", True)
                self._storage.set_trial_state_values(trial_id, state=TrialState.PRUNED)
                continue
            self._storage.set_trial_user_attr(trial_id, WORKER_ATTR, _worker())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                retry_of = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(
                    trial)
            return Claim(self, trial_id, trial.number, key, taken_over=retry_of is not None)
        return None

    def status(self, keys: Iterable[str] | None = None) -> QueueStatus:
        """Where each key (of `keys`, or every key ever added) stands."""
        states: dict[str, set[TrialState]] = {}
        for trial in self._trials():
            states.setdefault(trial.user_attrs.get(KEY_ATTR), set()).add(trial.state)
        known = [key for key in states if key is not None]
        asked = known if keys is None else list(dict.fromkeys(keys))
        groups: dict[str, list[str]] = {field.name: [] for field in fields(QueueStatus)}
        for key in asked:
            groups[_standing(states.get(key))].append(key)
        return QueueStatus(**{name: tuple(group) for name, group in groups.items()})

    def all_done(self, keys: Iterable[str]) -> bool:
        """Whether every key is done."""
        keys = list(keys)
        return len(self.status(keys).done) == len(set(keys))

    def fail_stale(self) -> None:
        """Fail the items whose worker stopped beating grace_s ago; each comes back as a
        waiting retry with the same key (up to max_retries times)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self._study)

    def _trials(self, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
        return self._storage.get_all_trials(self._study_id, deepcopy=False, states=states)

    def _duplicate(self, claimed: FrozenTrial) -> bool:
        """Whether the key of a trial just claimed is done, or is also queued or held by an
        older trial (two workers added it at once): the oldest live trial is the one to run."""
        key = claimed.user_attrs.get(KEY_ATTR)
        for trial in self._trials():
            if trial.user_attrs.get(KEY_ATTR) != key or trial.number == claimed.number:
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
        while not self._stop.wait(self._queue.heartbeat_s):
            try:
                self._queue._storage.record_heartbeat(self._trial_id)
            except Exception:  # storage unreachable for a moment: the next beat may get through
                continue


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
