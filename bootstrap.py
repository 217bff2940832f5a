#!/usr/bin/env python3
"""Set up molstrata in a virtual environment (created or reused) and run it or its tests.

    python3 bootstrap.py run ARGS...   install if needed, then run `molstrata ARGS...`
    python3 bootstrap.py test [ARGS]   install with the test and docs extras, then ruff and pytest
                                       (which also builds the documentation in strict mode)

Needs only Python >= 3.10 with pip and venv. Torch is installed first, explicitly: a CPU build
(torch==2.13.0+cpu) where no NVIDIA GPU is visible, so pip never pulls a multi-GB CUDA build on
a CPU-only machine; the regular build where `nvidia-smi` finds a GPU. The environment lives in
.venv beside this file (or $MOLSTRATA_VENV) and is reinstalled only when pyproject.toml or this
file change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("MOLSTRATA_VENV", ROOT / ".venv"))
TORCH_VERSION = "2.13.0"
SCHNETPACK = "schnetpack==2.1.1"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def say(message: str) -> None:
    print(f"[bootstrap] {message}", file=sys.stderr, flush=True)


def run(*command: str | Path) -> None:
    result = subprocess.run([str(c) for c in command])
    if result.returncode != 0:
        sys.exit(f"[bootstrap] failed ({result.returncode}): {' '.join(map(str, command))}")


def has_gpu() -> bool:
    if not shutil.which("nvidia-smi"):
        return False
    probe = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return probe.returncode == 0 and "GPU" in probe.stdout


def torch_installed() -> bool:
    probe = subprocess.run([str(PYTHON), "-c", "import torch"], capture_output=True)
    return probe.returncode == 0


def install_torch() -> None:
    if has_gpu():
        say(f"NVIDIA GPU found: installing torch=={TORCH_VERSION} (CUDA build)")
        run(PYTHON, "-m", "pip", "install", "-q", f"torch=={TORCH_VERSION}")
        return
    say(f"no GPU found: installing the CPU build torch=={TORCH_VERSION}+cpu")
    result = subprocess.run([str(PYTHON), "-m", "pip", "install", "-q",
                             f"torch=={TORCH_VERSION}+cpu"])
    if result.returncode != 0:
        sys.exit(
            f"[bootstrap] pip found no CPU build of torch {TORCH_VERSION}. Point pip at a "
            "folder or index that holds one (PIP_FIND_LINKS or PIP_EXTRA_INDEX_URL, e.g. "
            "PyTorch's CPU wheel index) and run this command again."
        )


def ensure_environment(*extras: str) -> None:
    stamp_file = VENV / f".molstrata-{'-'.join(extras) or 'base'}"
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "bootstrap.py"):
        digest.update((ROOT / name).read_bytes())
    stamp = digest.hexdigest()
    if PYTHON.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return
    if not PYTHON.exists():
        say(f"creating the virtual environment {VENV}")
        venv.EnvBuilder(with_pip=True, clear=VENV.exists()).create(VENV)
    if not torch_installed():
        install_torch()
    wanted = f"[{','.join(extras)}]" if extras else ""
    say(f"installing molstrata{wanted} (editable) into {VENV}")
    run(PYTHON, "-m", "pip", "install", "-q", "-e", f".{wanted}")
    if "test" in extras:
        # SchNetPack 2.1.1 (parity test, benchmark): its sympy<=1.12 cap conflicts with torch,
        # so it comes without dependencies; the test extra above carries them.
        run(PYTHON, "-m", "pip", "install", "-q", "--no-deps", SCHNETPACK)
    stamp_file.write_text(stamp)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test"):
        print(__doc__, file=sys.stderr)
        return 2
    os.chdir(ROOT)
    command, rest = argv[0], argv[1:]
    if command == "run":
        ensure_environment()
        return subprocess.run([str(BIN / "molstrata"), *rest]).returncode
    ensure_environment("test", "docs")
    lint = subprocess.run([str(PYTHON), "-m", "ruff", "check", "molstrata", "tests", "bench"])
    if lint.returncode != 0:
        return lint.returncode
    return subprocess.run([str(PYTHON), "-m", "pytest", *rest]).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
