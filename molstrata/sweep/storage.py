"""Where a sweep's trials (and a study's work queue) live: a local SQLite file by default,
any database Optuna supports to share one sweep between workers on many machines, PostgreSQL
(postgresql+psycopg://user:password@host/db, with `pip install 'molstrata[postgres]'`) first.

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


def open_storage(url: str, heartbeat_s: int, grace_s: int, max_retries: int | None, *,
                 what: str = "sweep storage") -> RDBStorage:
    """The storage at `url` with heartbeats and retries of dead workers' trials, or a one-line
    MolstrataError when it cannot be opened (bad URL, missing driver, unreachable server);
    `what` names it in that message."""
    sqlite = url.startswith("sqlite")
    if sqlite:  # several workers on one file: wait for the lock rather than fail
        engine = {"connect_args": {"timeout": 60}}
    elif url.startswith(("postgresql", "mysql")):
        # pre_ping: a connection the server dropped (restart, idle timeout) is replaced when
        # taken from the pool, not handed out to fail
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
            f"cannot open the {what} {redacted(url)}: the database driver for this URL is not "
            "installed; pip install it (e.g. 'molstrata[postgres]', which installs psycopg, "
            "for postgresql+psycopg://; pymysql for mysql+pymysql://)"
        ) from None
    except Exception as error:  # SQLAlchemy and drivers raise many kinds; all mean "unusable"
        raise MolstrataError(
            f"cannot open the {what} {redacted(url)} ({type(error).__name__}: "
            f"{reason(error, url)}); check the URL, that the database server is up and "
            "reachable from this machine, and its credentials"
        ) from None


def reason(error: BaseException, url: str) -> str:
    """The driver's own words for an error, on one line, short, without the URL's password
    and without SQLAlchemy's pointer to its web page."""
    text = " ".join(str(getattr(error, "orig", None) or error).split())
    text = text.split("(Background on this error")[0].strip()[:200]
    password = _password(url)
    return text.replace(password, "***") if password else text


def lost_connection(error: BaseException) -> bool:
    """Whether an error from the storage means its database could not be reached (server
    down or restarting, network cut, SQLite file locked): worth trying again."""
    from sqlalchemy import exc

    for cause in (error, error.__cause__):
        if isinstance(cause, (exc.OperationalError, exc.InterfaceError)):
            return True
        if isinstance(cause, exc.DBAPIError) and cause.connection_invalidated:
            return True
    return False


def _password(url: str) -> str | None:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).password
    except Exception:
        return None


def _racing(error: Exception) -> bool:
    """Whether opening failed because another worker was creating the same database's tables
    at that moment (it succeeds when tried again)."""
    text = str(error).lower()
    return type(error).__name__ == "IntegrityError" or "database is locked" in text \
        or "already exists" in text
