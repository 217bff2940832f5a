"""Named arrays cached in one uncompressed .npz file, valid only for the key it was written with.

The key (format version, molstrata version, source files' sizes and modification times, and
a digest of their contents) is stored inside the file. A load returns None, never stale or
partial data, when the file is missing, truncated, corrupted, or was written under another
key; the caller then rebuilds.
The file is written to a temporary name and renamed into place, so an interrupted write never
leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from molstrata._files import atomic_open

ENV_VAR = "MOLSTRATA_CACHE_DIR"
_KEY_ENTRY = "__cache_key__"


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The cache folder: `override`, else $MOLSTRATA_CACHE_DIR, else the user cache folder."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "molstrata"


def source_stamp(paths: list[Path]) -> list[list[Any]]:
    """Name, size and modification time of each source file: changes when a source changes."""
    stamp = []
    for path in paths:
        info = path.stat()
        stamp.append([path.name, info.st_size, info.st_mtime_ns])
    return stamp


def source_digest(paths: list[Path]) -> str:
    """SHA-256 of the source files' names and contents: the same files, however touched."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def save(path: Path, arrays: Mapping[str, np.ndarray], key: Mapping[str, Any]) -> None:
    """Write `arrays` and `key` to `path` atomically."""
    entries = dict(arrays)
    entries[_KEY_ENTRY] = np.asarray(json.dumps(key, sort_keys=True))
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **entries)


def stored_key(path: Path) -> dict[str, Any] | None:
    """The key a cache file was written with, or None if it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return json.loads(str(archive[_KEY_ENTRY]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def plain(key: Mapping[str, Any]) -> dict[str, Any]:
    """`key` as it reads back from a file (JSON: tuples become lists)."""
    return json.loads(json.dumps(key, sort_keys=True))


def load(path: Path, key: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    """The arrays stored at `path` if it is complete and was written with `key`, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            stored = json.loads(str(archive[_KEY_ENTRY]))
            if stored != plain(key):
                return None
            return {name: archive[name] for name in archive.files if name != _KEY_ENTRY}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
