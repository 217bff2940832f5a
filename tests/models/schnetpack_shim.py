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
