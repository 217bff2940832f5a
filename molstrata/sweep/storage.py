"""Where a sweep's trials live: a local SQLite file by default, any database Optuna supports
to share one sweep between workers on many machines.

Every running trial writes a heartbeat to the storage. A worker killed mid-trial leaves its
trial RUNNING with a stale heartbeat; after `grace_s` seconds any worker of the sweep marks it
failed and queues a retry with the same parameters, which resumes the trial's run directory
from its last checkpoint.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from molstrata.errors import MolstrataError

DEFAULT_DB = "sweep.db"


def default_url(out_dir: str | Path) -> str:
    """The embedded storage of a sweep: OUT/sweep.db (SQLite, no server)."""
    return f"sqlite:///{(Path(out_dir) / DEFAULT_DB).resolve()}"


def redacted(url: str) -> str:
    """The URL with any password hidden, for messages and files."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


def open_storage(url: str, heartbeat_s: int, grace_s: int, max_retries: int) -> RDBStorage:
    """The storage at `url` with heartbeats and retries of dead workers' trials, or a one-line
    MolstrataError when it cannot be opened (bad URL, missing driver, unreachable server)."""
    sqlite = url.startswith("sqlite")
    if sqlite:  # several workers on one file: wait for the lock rather than fail
        engine = {"connect_args": {"timeout": 60}}
    elif url.startswith(("postgresql", "mysql")):
        engine = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    else:
        engine = {}
    try:
        for attempt in range(1, 6):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return RDBStorage(
                        url, engine_kwargs=engine, heartbeat_interval=heartbeat_s,
                        grace_period=grace_s,
                        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                            max_retry=max_retries, inherit_intermediate_values=True))
            except Exception as error:
                if attempt == 5 or not _racing(error):
                    raise
                time.sleep(0.5 * attempt)
        raise AssertionError("unreachable")
    except ImportError:
        raise MolstrataError(
            f"cannot open the sweep storage {redacted(url)}: the database driver for this URL "
            "is not installed; pip install it (e.g. psycopg2-binary for postgresql://, pymysql "
            "for mysql+pymysql://)"
        ) from None
    except Exception as error:  # SQLAlchemy and drivers raise many kinds; all mean "unusable"
        reason = " ".join(str(getattr(error, "orig", None) or error).split())
        raise MolstrataError(
            f"cannot open the sweep storage {redacted(url)} ({type(error).__name__}: "
            f"{reason[:200]}); check the URL, that the database server is up and reachable "
            "from this machine, and its credentials"
        ) from None


def _racing(error: Exception) -> bool:
    """Whether opening failed because another worker was creating the same database's tables
    at that moment (it succeeds when tried again)."""
    text = str(error).lower()
    return type(error).__name__ == "IntegrityError" or "database is locked" in text \
        or "already exists" in text
