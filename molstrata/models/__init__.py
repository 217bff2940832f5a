"""The model stage: SchNet and PaiNN as in SchNetPack 2.1.1, their building blocks, the pair
geometry they read, SchNet's backends, and `EnergyModel`."""

from molstrata.models.activations import ACTIVATIONS, shifted_softplus
from molstrata.models.atomwise import AGGREGATIONS, Atomwise, aggregate
from molstrata.models.backends import BACKENDS
from molstrata.models.dense import Dense
from molstrata.models.geometry import GEOMETRIES, pair_geometry
from molstrata.models.messages import MessageSums
from molstrata.models.model import EnergyModel, complete_hyperparameters
from molstrata.models.painn import PaiNN, PaiNNInteraction, PaiNNMixing
from molstrata.models.radial import CosineCutoff, GaussianRBF
from molstrata.models.representations import REPRESENTATIONS
from molstrata.models.schnet import SchNet, SchNetInteraction
from molstrata.models.schnetpack import load_schnetpack_state_dict

__all__ = [
    "ACTIVATIONS",
    "AGGREGATIONS",
    "Atomwise",
    "BACKENDS",
    "CosineCutoff",
    "Dense",
    "EnergyModel",
    "GEOMETRIES",
    "GaussianRBF",
    "MessageSums",
    "PaiNN",
    "PaiNNInteraction",
    "PaiNNMixing",
    "REPRESENTATIONS",
    "SchNet",
    "SchNetInteraction",
    "aggregate",
    "complete_hyperparameters",
    "load_schnetpack_state_dict",
    "pair_geometry",
    "shifted_softplus",
]
