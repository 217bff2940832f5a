"""Named arrays cached in one uncompressed .npz file, valid only for the key it was written with.

The key (format version, molstrata version, source files' sizes and modification times) is
stored inside the file. A load returns None, never stale or partial data, when the file is
missing, truncated, corrupted, or was written under another key; the caller then rebuilds.
The file is written to a temporary name and renamed into place, so an interrupted write never
leaves a file that looks complete.
"""

from __future__ import annotations

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


def save(path: Path, arrays: Mapping[str, np.ndarray], key: Mapping[str, Any]) -> None:
    """Write `arrays` and `key` to `path` atomically."""
    entries = dict(arrays)
    entries[_KEY_ENTRY] = np.asarray(json.dumps(key, sort_keys=True))
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **entries)


def load(path: Path, key: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    """The arrays stored at `path` if it is complete and was written with `key`, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            stored = json.loads(str(archive[_KEY_ENTRY]))
            if stored != json.loads(json.dumps(key, sort_keys=True)):
                return None
            return {name: archive[name] for name in archive.files if name != _KEY_ENTRY}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
