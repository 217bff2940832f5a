"""Checkpoints: written atomically, loaded with `torch.load(weights_only=True)`.

A checkpoint is a dict of tensors and plain Python values only, so loading it can never run
code from the file. Its "format" and "version" entries let later releases migrate old files.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from molstrata._files import atomic_open, check_version
from molstrata.errors import MolstrataError
from molstrata.models import EnergyModel

FORMAT = "molstrata-checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write `payload` (tensors and plain values) to `path` atomically."""
    with atomic_open(path, "wb") as handle:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, handle)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint's payload, or a MolstrataError when it is missing, damaged or foreign."""
    path = Path(path)
    if not path.is_file():
        raise MolstrataError(f"checkpoint {path} does not exist; check the run directory")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile,
            pickle.UnpicklingError) as error:
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise MolstrataError(
            f"checkpoint {path} is damaged or not a molstrata checkpoint ({reason}); "
            "resume from another checkpoint or train again"
        ) from None
    if not isinstance(payload, dict):
        raise MolstrataError(f"{path} is not a molstrata checkpoint; give a file molstrata wrote")
    check_version(payload, path, FORMAT, {VERSION}, what="checkpoint",
                  fix="use the molstrata release that wrote it, or train again")
    return payload


def model_from_checkpoint(path: str | os.PathLike, dtype: str = "float32",
                          device: str | torch.device = "cpu") -> tuple[EnergyModel, dict]:
    """(model, payload) of a checkpoint: its EnergyModel in eval mode on `device`, in `dtype`
    ('float32' or 'float64', the run's `runtime.dtype`), and the checkpoint's payload (epoch,
    optimiser, ...). A checkpoint whose weights do not fit its hyper-parameters is a one-line
    MolstrataError."""
    payload = load_checkpoint(path)
    try:
        model = EnergyModel(**payload["hyperparameters"])
        model.load_state_dict(payload["model"])
    except (KeyError, TypeError, ValueError, RuntimeError, MolstrataError) as error:
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise MolstrataError(
            f"checkpoint {path} holds no model this molstrata can build ({type(error).__name__}: "
            f"{reason}); use the molstrata release that wrote it, or train again"
        ) from None
    torch_dtype = torch.float64 if dtype == "float64" else torch.float32
    return model.to(device=torch.device(device), dtype=torch_dtype).eval(), payload
