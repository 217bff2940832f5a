"""SchNetPack 2.1.1 for the parity tests, or a skip where it does not import.

SchNetPack 2.1.1 caps sympy below what torch 2.13 needs, so install it without its deps:

    pip install --no-deps schnetpack==2.1.1
    pip install torch==2.13.0 "numpy>=2" "ase>=3.21" h5py pyyaml "hydra-core>=1.1" \\
        "hydra-colorlog>=1.1" "pytorch-lightning>=2" torchmetrics rich fasteners dirsync \\
        torch-ema "matscipy>=1.1" tqdm
"""

from __future__ import annotations

import types

import pytest
import torch
import torch.utils.data.dataloader as _dataloader


def import_schnetpack() -> types.ModuleType:
    """The schnetpack module; skips the calling test module when SchNetPack does not import."""
    if not hasattr(_dataloader, "T_co") and hasattr(_dataloader, "_T_co"):
        _dataloader.T_co = _dataloader._T_co  # SchNetPack 2.1.1 imports a name torch 2.13 renamed
    try:
        import schnetpack
    except ImportError as error:
        pytest.skip(f"no parity check: SchNetPack does not import ({error})",
                    allow_module_level=True)
    return schnetpack


MEAN = -0.37
"""AddOffsets' per-atom mean in the parity models, eV."""


def schnetpack_potential(spk: types.ModuleType, representation: torch.nn.Module,
                         n_atom_basis: int, n_hidden, n_layers: int,
                         aggregation: str) -> torch.nn.Module:
    """SchNetPack's NeuralNetworkPotential around `representation`, in float64: one Atomwise
    head for "energy", AddOffsets with random per-element references and MEAN, and every bias
    moved off its zero initialisation (zero biases would leave their mapping untested). Seed
    torch before building `representation` for reproducible weights."""
    head = spk.atomistic.Atomwise(
        n_in=n_atom_basis, n_hidden=n_hidden, n_layers=n_layers,
        aggregation_mode=aggregation, output_key="energy",
    )
    offsets = spk.transform.AddOffsets(
        "energy", add_mean=True, add_atomrefs=True, is_extensive=aggregation == "sum"
    )
    model = spk.model.NeuralNetworkPotential(
        representation=representation,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[head],
        postprocessors=[spk.transform.CastTo64(), offsets],
    )
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.add_(0.2 * torch.randn_like(parameter))
        offsets.atomref.copy_(torch.randn(100) * 100.0)
        offsets.mean.fill_(MEAN)
    return model.double()


def network_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A NeuralNetworkPotential's state dict without its postprocessors (AddOffsets)."""
    return {key: value for key, value in model.state_dict().items()
            if not key.startswith("postprocessors.")}


def assert_gradients_match(theirs: torch.nn.Module, ours: torch.nn.Module) -> None:
    """Every parameter gradient of SchNetPack's model equals molstrata's, key for key (its
    Atomwise head is molstrata's `head`), to 1e-8 relative with an absolute floor."""
    theirs_grads = {name.replace("output_modules.0.", "head."): p.grad
                    for name, p in theirs.named_parameters()}
    ours_grads = {name: p.grad for name, p in ours.named_parameters()}
    assert theirs_grads.keys() == ours_grads.keys()
    for key, grad in theirs_grads.items():
        scale = grad.abs().max().item()
        torch.testing.assert_close(ours_grads[key], grad, rtol=1e-8, atol=1e-9 * scale, msg=key)
