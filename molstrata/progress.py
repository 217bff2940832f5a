"""Progress bars, drawn only where someone watches them: a terminal or a notebook.

A bar redraws itself with carriage returns; written to a file or a pipe, every redraw stays, and
one training epoch became a 2.6 KB line of a log. So every bar of molstrata comes from
`progress_bar`, which draws nothing unless stderr is a terminal (or tqdm draws a notebook
widget); a log gets the stage's own lines instead (training: one line per epoch).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import auto

_NOTEBOOK = auto.notebook_tqdm is not auto.std_tqdm
"""Whether tqdm draws widgets here (a Jupyter kernel), where stderr is no terminal."""


def bars_drawn(stream: TextIO | None = None) -> bool:
    """Whether a bar written to `stream` (default: stderr) would be seen as a bar."""
    if _NOTEBOOK:
        return True
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and not getattr(stream, "closed", False) and isatty())


def progress_bar(iterable: Iterable | None = None, *, show: bool = True,
                 **options: Any) -> auto.tqdm:
    """A tqdm bar over `iterable` (options as tqdm's: total, desc, unit, leave), disabled
    unless `show` and `bars_drawn()`: a disabled bar still iterates and takes updates, and
    draws nothing."""
    return auto.tqdm(iterable, disable=not (show and bars_drawn()), **options)
