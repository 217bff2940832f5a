"""Relative links of the README and docs/ that point to a file git does not track.

A link on GitHub or on the documentation site resolves only to what the repository holds: a
file that exists here but is ignored or not yet added (a results page under an ignored
folder) is as broken for a reader as a missing one. Web addresses and anchors are not checked.

    python tests/doclinks.py [--working-tree]   # list the bad links; --working-tree also
                                                # accepts files not yet added (but not ignored)
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE = re.compile(r"`[^`\n]*`")
_INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
_HTML = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass(frozen=True)
class BadLink:
    """A link in `page` (relative to the repository) to `target`, with why it is bad."""

    page: str
    target: str
    reason: str

    def __str__(self) -> str:
        return f"{self.page}: ({self.target}) {self.reason}"


def links(text: str) -> list[str]:
    """The targets of a Markdown text's links and images (inline, reference and HTML), outside
    code, in order."""
    text = _CODE.sub("", _FENCE.sub("", text))
    found = [(m.start(), m.group(1)) for pattern in (_INLINE, _REFERENCE, _HTML)
             for m in pattern.finditer(text)]
    return [target for _, target in sorted(found)]


def tracked_files(root: Path, working_tree: bool = False) -> set[str]:
    """The files git tracks under root (POSIX paths relative to it); with working_tree, also
    those not yet added that .gitignore does not exclude."""
    command = ["git", "-C", str(root), "ls-files", "-z", "--cached"]
    if working_tree:
        command += ["--others", "--exclude-standard"]
    listed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return {name for name in listed.split("\0") if name}


def pages(root: Path) -> list[Path]:
    """README.md and every Markdown file under docs/."""
    found = [root / "README.md"] if (root / "README.md").is_file() else []
    return found + sorted((root / "docs").rglob("*.md"))


def bad_links(root: Path = ROOT, working_tree: bool = False) -> list[BadLink]:
    """Every relative link of the README and docs/ whose target git does not track (a folder
    counts when git tracks a file inside it)."""
    tracked = tracked_files(root, working_tree)
    folders = {str(parent) for name in tracked for parent in PurePosixPath(name).parents}
    bad = []
    for page in pages(root):
        where = page.relative_to(root).as_posix()
        for target in links(page.read_text(encoding="utf-8")):
            if _SCHEME.match(target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0].split("?", 1)[0]
            if path.startswith("/"):
                bad.append(BadLink(where, target, "is absolute: link relative to the page"))
                continue
            resolved = _normalise(PurePosixPath(where).parent / path)
            if resolved is None:
                bad.append(BadLink(where, target, "points outside the repository"))
            elif resolved not in tracked and resolved not in folders:
                reason = ("exists but git does not track it" if (root / resolved).exists()
                          else "does not exist")
                bad.append(BadLink(where, target, reason))
    return bad


def _normalise(path: PurePosixPath) -> str | None:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part not in (".", ""):
            parts.append(part)
    return "/".join(parts) or "."


if __name__ == "__main__":
    problems = bad_links(working_tree="--working-tree" in sys.argv[1:])
    print("\n".join(map(str, problems)) or "every relative link resolves to a tracked file")
    sys.exit(1 if problems else 0)
