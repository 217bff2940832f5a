"""Files molstrata writes and reads back: atomic writes (a reader sees the old file or the
whole new one, never a partial one) and JSON documents checked on the way in (one line saying
what is wrong and what to do)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import molstrata
from molstrata.errors import MolstrataError

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A fresh temporary file beside `path`; if the block succeeds it is synced to disk and
    renamed onto `path`, if not it is deleted. For writers that want a path (databases)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as error:
        raise MolstrataError(
            f"cannot write {path} ({error.strerror}); give a writable path"
        ) from None
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside `path`; on success it replaces `path`, on error it vanishes."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def read_json(path: str | os.PathLike, what: str, fix: str) -> dict[str, Any]:
    """The JSON object in `path`, or a one-line MolstrataError when the file is missing,
    unreadable, not JSON or not an object. `what` names the file ("split file"), `fix` says
    what to do about it ("make the split again")."""
    path = Path(path)
    if not path.is_file():
        raise MolstrataError(f"{what} {path} does not exist; {fix}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise MolstrataError(f"cannot read {what} {path} ({error.strerror}); {fix}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = error.msg if isinstance(error, json.JSONDecodeError) else "not UTF-8 text"
        raise MolstrataError(f"{what} {path} is not valid JSON ({reason}); {fix}") from None
    if not isinstance(document, dict):
        raise MolstrataError(
            f"{path} is not a molstrata {what} (it holds a JSON {type(document).__name__}, "
            f"not an object); {fix}"
        )
    return document


def read_versioned_json(path: str | os.PathLike, kind: str, versions: Collection[int], *,
                        what: str, fix: str, kind_key: str = "format",
                        version_key: str = "version") -> dict[str, Any]:
    """The JSON object in `path` after `read_json`'s checks, whose `kind_key` entry is `kind`
    and whose `version_key` entry is one of `versions`; else a one-line MolstrataError."""
    document = read_json(path, what, fix)
    check_version(document, Path(path), kind, versions, what=what, fix=fix,
                  kind_key=kind_key, version_key=version_key)
    return document


def check_version(document: Mapping[str, Any], path: Path, kind: str,
                  versions: Collection[int], *, what: str, fix: str,
                  kind_key: str = "format", version_key: str = "version") -> None:
    """Refuse (one line) a document of another kind, or of a version this release does not
    read: a newer one asks for a newer molstrata, an older or invalid one for `fix`."""
    found = document.get(kind_key)
    if found != kind:
        raise MolstrataError(
            f"{path} is not a molstrata {what} ({kind_key} {found!r}, not {kind!r}); {fix}"
        )
    version = document.get(version_key)
    if version in versions and not isinstance(version, bool):
        return
    name = "format version" if version_key == "version" else version_key.replace("_", " ")
    readable = ", ".join(map(str, sorted(versions)))
    if isinstance(version, int) and not isinstance(version, bool) and version > max(versions):
        raise MolstrataError(
            f"{what} {path} has {name} {version}, newer than molstrata "
            f"{molstrata.__version__} reads (version {readable}); upgrade molstrata "
            f"(pip install -U molstrata), or {fix}"
        )
    raise MolstrataError(
        f"{what} {path} has {name} {version!r}, which molstrata {molstrata.__version__} does "
        f"not read (it reads version {readable}); {fix}"
    )
