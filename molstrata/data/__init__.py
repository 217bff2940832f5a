"""The data stage: molecules as packed arrays, QM9, ASE files, strata, filters, splits, sampling."""

from molstrata.data.molecules import Molecules

__all__ = ["Molecules"]
