"""Losses, Flux's names with PyTorch's layout: predictions and targets of one shape,
classes along `axis` (the last by default, PyTorch's (batch, classes)), and
`reduction` one of "mean" (the default), "sum" or "none".
"""

from typing import Any

import numpy as np

__all__ = [
    "binarycrossentropy",
    "crossentropy",
    "logitbinarycrossentropy",
    "logitcrossentropy",
    "mse",
]

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: Any, reduction: str, name: str) -> Any:
    if reduction == "mean":
        return np.mean(loss)
    if reduction == "sum":
        return np.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_shapes(name: str, prediction: Any, target: Any) -> None:
    if np.shape(prediction) != np.shape(target):
        raise ValueError(
            f"{name}: the prediction has shape {np.shape(prediction)} and the target "
            f"{np.shape(target)}; they must match (use nn.functional.one_hot for labels)"
        )


def mse(prediction: Any, target: Any, *, reduction: str = "mean") -> Any:
    """The squared error `(prediction - target)**2`, reduced."""
    _check_shapes("mse", prediction, target)
    d = prediction - target
    return _reduce(d * d, reduction, "mse")


def crossentropy(
    prediction: Any, target: Any, *, axis: int = -1, eps: float = 1e-7, reduction: str = "mean"
) -> Any:
    """`-sum(target * log(prediction + eps), axis)` for probabilities, reduced over the
    other axes. Prefer `logitcrossentropy` on logits: it is exact where this clips."""
    _check_shapes("crossentropy", prediction, target)
    loss = -np.sum(target * np.log(prediction + eps), axis=axis)
    return _reduce(loss, reduction, "crossentropy")


def logitcrossentropy(logits: Any, target: Any, *, axis: int = -1, reduction: str = "mean") -> Any:
    """`crossentropy(softmax(logits), target)` computed stably, as
    `-sum(target * logsoftmax(logits), axis)` (PyTorch's `cross_entropy` with
    probability targets)."""
    from tracker.nn.functional import logsoftmax

    _check_shapes("logitcrossentropy", logits, target)
    loss = -np.sum(target * logsoftmax(logits, axis=axis), axis=axis)
    return _reduce(loss, reduction, "logitcrossentropy")


def binarycrossentropy(
    prediction: Any, target: Any, *, eps: float = 1e-7, reduction: str = "mean"
) -> Any:
    """`-(target·log(p + eps) + (1 - target)·log(1 - p + eps))` for probabilities `p`."""
    _check_shapes("binarycrossentropy", prediction, target)
    loss = -(target * np.log(prediction + eps) + (1 - target) * np.log(1 - prediction + eps))
    return _reduce(loss, reduction, "binarycrossentropy")


def logitbinarycrossentropy(logits: Any, target: Any, *, reduction: str = "mean") -> Any:
    """`binarycrossentropy(sigmoid(logits), target)` computed stably:
    `(1 - target)·x - logsigmoid(x)` (PyTorch's `binary_cross_entropy_with_logits`)."""
    from tracker.nn.functional import logsigmoid

    _check_shapes("logitbinarycrossentropy", logits, target)
    loss = (1 - target) * logits - logsigmoid(logits)
    return _reduce(loss, reduction, "logitbinarycrossentropy")
