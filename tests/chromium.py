"""Open an HTML file in headless Chromium and report how each of its images rendered.

Any test imports it as `from chromium import rendered_images` (pytest puts tests/, the folder
of the root conftest.py, on sys.path). Where no Chromium is installed the calling test skips.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SKIP_REASON = (
    "headless Chromium not found: install Debian's chromium package (apt-get install chromium), "
    "as .ci/run does"
)

# Runs on window load: a summary of every <img> as JSON in <pre id="render-check">.
_CHECK = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {alt: img.alt, scheme: img.src.split(":")[0], complete: img.complete,
            naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
            width: img.width, height: img.height,
            rendered: img.complete && img.naturalWidth > 0 && img.naturalHeight > 0};
  });
  var pre = document.createElement("pre");
  pre.id = "render-check";
  pre.textContent = JSON.stringify(images);
  document.body.appendChild(pre);
});
</script>
"""
_RESULT = re.compile(r'<pre id="render-check">(.*?)</pre>', re.S)


def find_chromium() -> str | None:
    """The path of a Chromium or Chrome executable, or None."""
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def chromium_command(browser: str, page: Path, profile: Path) -> list[str]:
    """Headless Chromium, cut off from the network, dumping the DOM once the page settled."""
    return [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom",
        page.as_uri(),
    ]


def rendered_images(html_path: str | os.PathLike, timeout: float = 120) -> list[dict]:
    """How each <img> of the page rendered in headless Chromium, in document order: dicts with
    alt, scheme ('data' for an embedded image), complete, naturalWidth, naturalHeight, width,
    height (as laid out) and rendered (complete with a non-zero natural size).

    The page is copied alone into a fresh folder, so anything it does not embed is missing.
    Skips the calling test where no Chromium is installed.
    """
    browser = find_chromium()
    if browser is None:
        pytest.skip(SKIP_REASON)
    text = Path(html_path).read_text(encoding="utf-8")
    end = text.lower().rfind("</body>")
    if end < 0:
        raise AssertionError(f"{html_path} has no </body>")
    with tempfile.TemporaryDirectory(prefix="molstrata-chromium-",
                                     ignore_cleanup_errors=True) as folder:
        page = Path(folder) / "page.html"
        page.write_text(text[:end] + _CHECK + text[end:], encoding="utf-8")
        command = chromium_command(browser, page, Path(folder) / "profile")
        dom, errors = _run(command, timeout)
    found = _RESULT.search(dom)
    if found is None:
        raise AssertionError(
            f"Chromium wrote no render check for {html_path}\ncommand: {' '.join(command)}\n"
            f"stderr (end): {errors[-2000:]}"
        )
    return json.loads(html.unescape(found[1]))


def _run(command: list[str], timeout: float) -> tuple[str, str]:
    """stdout and stderr of the command; on timeout its whole process group is killed."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        process.communicate()
        raise AssertionError(f"Chromium took over {timeout} s: {' '.join(command)}") from None
    _kill_group(process.pid)  # helpers Chromium may leave behind
    return out, err


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
