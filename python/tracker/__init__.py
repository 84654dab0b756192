"""tracker: Tracker.jl for Python, a tape-based reverse-mode automatic differentiation engine.

>>> import numpy as np, tracker as tr
>>> x = tr.param([1, 2, 3])
>>> y = np.sum(x**2) + np.prod(x[1:])
>>> tr.back(y)
>>> tr.grad(x)
array([2., 7., 8.])
"""

import contextlib
from collections.abc import Iterator
from typing import Any

from tracker import _blas, _numpy, nn, optim, testing, tree
from tracker._at import at
from tracker._core import (
    AnomalyError,
    ConsumedError,
    LossError,
    NestingError,
    ThreadError,
    TrackedArray,
    TrackedReal,
    TrackerError,
    __version__,
    back,
    data,
    grad,
    isleaf,
    istracked,
    num_threads,
    param,
    update,
)
from tracker.api import WithGradient, gradient, hessian, jacobian, withgradient
from tracker.derivatives import forward, forwarddiff, hvp, jvp, pullback
from tracker.graph import show, to_dot
from tracker.params import Grads, Params
from tracker.rules import checkpoint, hook, nobacksies, rule, track

__all__ = [
    "AnomalyError",
    "ConsumedError",
    "Grads",
    "LossError",
    "NestingError",
    "Params",
    "ThreadError",
    "TrackedArray",
    "TrackedReal",
    "TrackerError",
    "WithGradient",
    "__version__",
    "at",
    "back",
    "checkpoint",
    "data",
    "detect_anomaly",
    "forward",
    "forwarddiff",
    "grad",
    "gradient",
    "hessian",
    "hook",
    "hvp",
    "isleaf",
    "istracked",
    "jacobian",
    "jvp",
    "nn",
    "no_grad",
    "nobacksies",
    "num_threads",
    "optim",
    "param",
    "pullback",
    "rule",
    "show",
    "testing",
    "to_dot",
    "track",
    "tree",
    "update",
    "withgradient",
    "zero_grad",
]

del _numpy  # imported for its side effect: NumPy functions dispatch on tracked arrays
del _blas  # imported for its side effect: matrix products through NumPy's OpenBLAS


def zero_grad(x: Any) -> None:
    """Zeroes the gradient of every parameter in `x` (a parameter or any structure of them)."""
    from tracker import _core

    leaves, _ = tree.flatten(x)
    for leaf in leaves:
        if _core.isleaf(leaf):
            _core.zero_grad(leaf)


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """A context in which nothing is recorded: operations return plain NumPy values.

    >>> import numpy as np, tracker as tr
    >>> with tr.no_grad():
    ...     y = tr.param([1.0, 2.0]) * 2
    >>> type(y).__name__
    'ndarray'
    """
    from tracker import _core

    previous = _core.set_grad_enabled(False)
    try:
        yield
    finally:
        _core.set_grad_enabled(previous)


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """A context in which a backward pass raises `AnomalyError` at the first op whose
    gradient is NaN or infinite, naming the op and where it was recorded.

    For example `tr.gradient(lambda x: np.sum(np.sqrt(x)), np.array([0.0, 1.0]))`
    inside `with tr.detect_anomaly():` raises "the backward pass of `sqrt` (recorded
    at model.py:12 in loss) produced a NaN or infinite gradient". Recording is
    slower in this mode: each op remembers where it was called from.
    """
    from tracker import _core

    previous = _core.set_anomaly(True)
    try:
        yield
    finally:
        _core.set_anomaly(previous)
