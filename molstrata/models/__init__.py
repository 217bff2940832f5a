"""The model stage: SchNet as in SchNetPack 2.1.1, its building blocks, and `EnergyModel`."""

from molstrata.models.activations import ACTIVATIONS, shifted_softplus
from molstrata.models.atomwise import AGGREGATIONS, Atomwise, aggregate
from molstrata.models.dense import Dense
from molstrata.models.model import EnergyModel
from molstrata.models.radial import CosineCutoff, GaussianRBF
from molstrata.models.schnet import SchNet, SchNetInteraction
from molstrata.models.schnetpack import load_schnetpack_state_dict

__all__ = [
    "ACTIVATIONS",
    "AGGREGATIONS",
    "Atomwise",
    "CosineCutoff",
    "Dense",
    "EnergyModel",
    "GaussianRBF",
    "SchNet",
    "SchNetInteraction",
    "aggregate",
    "load_schnetpack_state_dict",
    "shifted_softplus",
]
