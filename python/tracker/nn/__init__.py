"""Neural networks on tracked arrays: `tracker.nn.functional` holds the functions
(activations, softmax, convolution, pooling, dropout, embedding), channels-first as
PyTorch's `torch.nn.functional`."""

from tracker.nn import functional

__all__ = ["functional"]
