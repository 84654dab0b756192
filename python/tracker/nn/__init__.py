"""Neural networks: layers (plain dataclasses), initialisers, losses, and
`tracker.nn.functional`, the functions (activations, softmax, convolution, pooling,
dropout, embedding), channels-first as PyTorch's `torch.nn.functional`."""

from tracker.nn import functional, init, losses
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
    "functional",
    "init",
    "losses",
]
