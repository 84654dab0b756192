"""Neural networks: layers (plain dataclasses), initialisers, losses and functions."""

from tracker.nn import init, losses
from tracker.nn.layers import AvgPool, Chain, Conv, Dense, Dropout, Embedding, LayerNorm, MaxPool

__all__ = [
    "AvgPool",
    "Chain",
    "Conv",
    "Dense",
    "Dropout",
    "Embedding",
    "LayerNorm",
    "MaxPool",
    "init",
    "losses",
]
