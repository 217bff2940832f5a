"""The model file: one self-contained file holding everything needed to predict.

A model file is a plain dict of tensors, strings, numbers, lists and dicts written with
`torch.save` and read with `torch.load(weights_only=True)`, so loading one can never run code
from it. Format version 2:

    {
      "format": "molstrata-model", "format_version": 2,
      "molstrata_version": "0.1.0", "torch_version": "2.13.0", "created": "2025-...Z",
      "model": {"class": "EnergyModel", "dtype": "float32",
                "hyperparameters": {"representation": "schnet" | "painn", ...},
                "state_dict": {name: tensor}},          # includes the standardisation buffers
      "target": {"name": "U0", "unit": "eV", "aggregation": "sum"},
      "neighbor_cutoff": 5.0,                           # Å; see ModelFile.pair_cutoff
      "standardization": {"reference_energies": {"H": -16.3, ...},   # target unit, float64
                          "per_atom_shift": 0.01, "per_atom_scale": 0.2},
      "training_domain": {"n_molecules": 104665, "sizes": [[size, count], ...],
                          "elements": {"H": 104640, ...},
                          "size_elements": [[size, "F", count], ...]},
      "provenance": {"run": "...", "checkpoint": "best", "epoch": 22, "dataset": "qm9",
                     "dataset_fingerprint": sha256, "training_data_sha256": sha256,
                     "split_sha256": sha256, "n_train": 104665, ...}
    }

A file of an older format version is upgraded through `MIGRATIONS`; a newer one, or an older
one no migration reaches, is refused with a line that says which version it is and what to do.
Version 1 (SchNet only) had no "representation" among the hyper-parameters.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import molstrata
from molstrata._files import atomic_open
from molstrata.data.molecules import atomic_number, element_symbol
from molstrata.errors import MolstrataError
from molstrata.evaluation.domain import domain_document, domain_from_document
from molstrata.evaluation.stratified import TrainingCounts
from molstrata.models import EnergyModel
from molstrata.training.config import pair_cutoff_of

FORMAT = "molstrata-model"
FORMAT_VERSION = 2


def _v1_to_v2(document: dict) -> dict:
    """Version 1 knew one architecture: its hyper-parameters name it, as version 2's do."""
    hyperparameters = {"representation": "schnet", **document["model"]["hyperparameters"]}
    model = {**document["model"], "hyperparameters": hyperparameters}
    return {**document, "model": model, "format_version": 2}


MIGRATIONS: dict[int, Callable[[dict], dict]] = {1: _v1_to_v2}
"""Format version k -> a function turning a version-k document into a version k + 1 one."""

DTYPES = {"float32": torch.float32, "float64": torch.float64}

_EXPORT_HINT = "make one with `molstrata export RUN -o model.pt`"


@dataclass(frozen=True, eq=False)
class ModelFile:
    """A loaded model file: the model in eval mode and what it was trained on.

    `document` is the file's dict without the weights (target, units, provenance, ...).
    """

    path: Path | None
    model: EnergyModel
    target: str
    unit: str
    neighbor_cutoff: float
    training: TrainingCounts
    document: Mapping[str, Any]

    @property
    def pair_cutoff(self) -> float:
        """Å: pairs closer than this enter the model, by the run's own rule
        (`TrainConfig.pair_cutoff`) read from the file's stored cutoffs."""
        return pair_cutoff_of(self.neighbor_cutoff, self.model.cutoff)

    @property
    def aggregation(self) -> str:
        return self.model.aggregation

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "the model"

    def describe(self) -> str:
        """One line: target, unit, training domain."""
        sizes = sorted(self.training.sizes)
        return (f"{self.name}: {self.target} in {self.unit}, trained on "
                f"{self.training.n_molecules:,} molecules of {sizes[0]}-{sizes[-1]} atoms with "
                f"{' '.join(self.training.elements)}")


# ---- writing -----------------------------------------------------------------------------


def model_document(
    model: EnergyModel,
    *,
    target: str,
    unit: str,
    neighbor_cutoff: float,
    training: TrainingCounts,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The model file's dict for a trained model (weights copied to the CPU)."""
    parameter = next(model.parameters())
    dtype = "float64" if parameter.dtype == torch.float64 else "float32"
    atomrefs = model.atomrefs.detach().cpu()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "molstrata_version": molstrata.__version__,
        "torch_version": str(torch.__version__),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {
            "class": "EnergyModel",
            "hyperparameters": model.hyperparameters,
            "dtype": dtype,
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        },
        "target": {"name": str(target), "unit": str(unit), "aggregation": model.aggregation},
        "neighbor_cutoff": float(neighbor_cutoff),
        "standardization": {
            "reference_energies": {
                element_symbol(z): float(atomrefs[z]) for z in _element_numbers(training)
            },
            "per_atom_shift": float(model.shift),
            "per_atom_scale": float(model.scale),
        },
        "training_domain": domain_document(training),
        "provenance": dict(provenance or {}),
    }


def save_model_file(path: str | os.PathLike, document: Mapping[str, Any]) -> Path:
    """Write a model file atomically: a reader sees the old file or the whole new one."""
    path = Path(path)
    document = _plain(dict(document), "document")
    with atomic_open(path, "wb") as handle:
        torch.save(document, handle)
    return path


def _plain(value: Any, where: str) -> Any:
    """`value` as the types weights_only loading accepts (str subclasses such as torch's
    TorchVersion become str); anything else is a programming error."""
    if isinstance(value, torch.Tensor):
        return value
    if value is None or isinstance(value, bool):
        return value
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{k}]") for k, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {_plain(k, where): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(f"{where} is a {type(value).__name__}; a model file holds only tensors "
                    "and plain values")


# ---- reading -----------------------------------------------------------------------------


def read_document(path: str | os.PathLike) -> dict[str, Any]:
    """The model file's dict, checked and migrated to FORMAT_VERSION, or a MolstrataError."""
    path = Path(path)
    _check_archive(path)
    document = _torch_load(path)
    if not isinstance(document, dict):
        raise MolstrataError(
            f"{path} is not a molstrata model file (it holds a {type(document).__name__}); "
            f"{_EXPORT_HINT}"
        )
    if document.get("format") != FORMAT:
        raise MolstrataError(_foreign(path, document))
    return _migrate(path, document)


def load_model_file(path: str | os.PathLike, device: str | torch.device = "cpu",
                    dtype: str | None = None) -> ModelFile:
    """A model file's model (eval mode, on `device`, in its training dtype unless `dtype`
    is given: 'float32' or 'float64') and what it was trained on."""
    path = Path(path)
    document = read_document(path)
    return model_from_document(document, device, dtype, path)


def model_from_document(document: Mapping[str, Any], device: str | torch.device = "cpu",
                        dtype: str | None = None, path: Path | None = None) -> ModelFile:
    """Build the ModelFile of a (current-version) document."""
    name = path if path is not None else "the model document"
    try:
        spec, target = document["model"], document["target"]
        model = EnergyModel(**spec["hyperparameters"])
        model.load_state_dict(spec["state_dict"])
        training = domain_from_document(document["training_domain"])
        neighbor_cutoff = float(document["neighbor_cutoff"])
        dtype = dtype or spec["dtype"]
        if dtype not in DTYPES:
            raise MolstrataError(f"unknown dtype {dtype!r}; use float32 or float64")
        _check_standardization(model, document["standardization"])
        unit, target_name = str(target["unit"]), str(target["name"])
    except MolstrataError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise MolstrataError(
            f"model file {name} is damaged ({type(error).__name__}: {reason}); export it again "
            "from its run with `molstrata export RUN -o model.pt`"
        ) from None
    model = model.to(device=torch.device(device), dtype=DTYPES[dtype]).eval()
    metadata = {k: v for k, v in document.items() if k != "model"}
    metadata["model"] = {k: v for k, v in document["model"].items() if k != "state_dict"}
    return ModelFile(path, model, target_name, unit, neighbor_cutoff, training, metadata)


def _check_archive(path: Path) -> None:
    """Refuse, before unpickling anything, what cannot be a model file."""
    if not path.exists():
        raise MolstrataError(f"model file {path} does not exist; check the path")
    if not path.is_file():
        raise MolstrataError(f"{path} is not a file; give a model file ({_EXPORT_HINT})")
    if path.stat().st_size == 0:
        raise MolstrataError(f"model file {path} is empty; {_EXPORT_HINT}")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"PK\x03\x04":
        raise MolstrataError(
            f"{path} is not a molstrata model file (not a PyTorch archive; a pickle or another "
            f"program's file is never loaded); {_EXPORT_HINT}"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise MolstrataError(
            f"model file {path} is truncated or damaged (its archive cannot be read); copy it "
            f"again or {_EXPORT_HINT}"
        ) from None
    if not any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
        if any("serialized_exported_program" in name or "/models/" in name for name in names):
            raise MolstrataError(
                f"{path} is a torch.export program (for use without molstrata: "
                "torch.export.load); molstrata reads its own model files (.pt) here"
            )
        raise MolstrataError(f"{path} is not a molstrata model file (a zip archive of another "
                             f"kind); {_EXPORT_HINT}")


def _torch_load(path: Path) -> Any:
    """torch.load(weights_only=True), its errors as one line naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = re.search(r"GLOBAL ([\w.]+)", str(error))
        if refused and refused.group(1).startswith("schnetpack"):
            raise MolstrataError(
                f"{path} is a SchNetPack model, not a molstrata model file; load its weights "
                "with molstrata.models.load_schnetpack_state_dict, or train with molstrata"
            ) from None
        if refused:
            raise MolstrataError(
                f"refused to load {path}: it holds Python objects ({refused.group(1)}) that "
                "would run code when loaded, and molstrata model files hold only tensors and "
                f"plain values; {_EXPORT_HINT}"
            ) from None
        raise MolstrataError(
            f"{path} is not a molstrata model file (its contents cannot be read safely); "
            f"{_EXPORT_HINT}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0][:100] if str(error) else type(error).__name__
        raise MolstrataError(
            f"model file {path} is truncated or damaged ({reason}); copy it again or "
            f"{_EXPORT_HINT}"
        ) from None


def _foreign(path: Path, document: dict) -> str:
    """The message for a readable dict that is not a model file."""
    kind = document.get("format")
    if kind == "molstrata-checkpoint":
        return (f"{path} is a molstrata training checkpoint, not a model file; "
                f"{_EXPORT_HINT.replace('RUN', 'RUN_DIRECTORY')}")
    if document and all(isinstance(v, torch.Tensor) for v in document.values()):
        return (f"{path} holds bare weights (a state dict) without the reference energies, "
                f"units and training domain a prediction needs; {_EXPORT_HINT}")
    return f"{path} is not a molstrata model file (format {kind!r}); {_EXPORT_HINT}"


def _migrate(path: Path, document: dict) -> dict:
    """The document upgraded to FORMAT_VERSION, or a MolstrataError saying what to do."""
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise MolstrataError(f"model file {path} has no valid format_version; {_EXPORT_HINT}")
    if version > FORMAT_VERSION:
        raise MolstrataError(
            f"model file {path} has format version {version}, newer than this molstrata "
            f"{molstrata.__version__} reads (version {FORMAT_VERSION}); upgrade molstrata "
            "(pip install -U molstrata) or export the model again with this release"
        )
    while version < FORMAT_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise MolstrataError(
                f"model file {path} has format version {version}, which this molstrata "
                f"{molstrata.__version__} cannot migrate to version {FORMAT_VERSION}; export it "
                "again from its run: molstrata export RUN -o model.pt"
            )
        document = step(dict(document))
        if document.get("format_version") != version + 1:
            raise RuntimeError(f"migration from format version {version} did not give "
                               f"version {version + 1}")
        version += 1
    return document


def _element_numbers(training: TrainingCounts) -> list[int]:
    return sorted(atomic_number(symbol) for symbol in training.elements)


def _check_standardization(model: EnergyModel, standardization: Mapping[str, Any]) -> None:
    """The recorded reference energies must be the weights' own: a hand-edited or mixed-up
    file would otherwise predict energies off by the difference."""
    for symbol, value in standardization["reference_energies"].items():
        stored = float(model.atomrefs[atomic_number(symbol)])
        if not math.isclose(stored, float(value), rel_tol=1e-12, abs_tol=1e-12):
            raise ValueError(f"reference energy of {symbol} is {value} in the file's "
                             f"standardization but {stored} in its weights")
