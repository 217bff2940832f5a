"""Progress bars: drawn on a terminal, never into a file or a pipe, and all from one helper."""

import io
import re
from pathlib import Path

import molstrata
from molstrata.progress import bars_drawn, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_draws_on_a_terminal_only(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not bars_drawn()
    with progress_bar(range(3), desc="file") as bar:
        assert bar.disable and list(bar) == [0, 1, 2]  # it still iterates
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert bars_drawn()
    with progress_bar(range(3), desc="terminal") as bar:
        assert not bar.disable and list(bar) == [0, 1, 2]
    with progress_bar(range(3), show=False) as bar:  # -q
        assert bar.disable
    assert "terminal" in terminal.getvalue()


def test_every_bar_of_the_package_comes_from_the_helper():
    package = Path(molstrata.__file__).parent
    users = sorted(str(path.relative_to(package)) for path in package.rglob("*.py")
                   if re.search(r"^\s*(from|import) tqdm", path.read_text(), re.MULTILINE))
    assert users == ["progress.py"]
