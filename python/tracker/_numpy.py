"""The NumPy functions tracked arrays dispatch through `__array_function__`.

One table, filled once at import: NumPy function → implementation on tracked
values. A function missing here raises a `TypeError` naming it (in Rust).
"""

from collections.abc import Callable
from typing import Any

import numpy as np

from tracker import _core

_NO_VALUE = getattr(np, "_NoValue", None)
FUNCTIONS: dict[Callable[..., Any], Callable[..., Any]] = {}


def _implements(*functions: Callable[..., Any]) -> Callable[[Callable[..., Any]], Any]:
    def register(impl: Callable[..., Any]) -> Callable[..., Any]:
        for f in functions:
            FUNCTIONS[f] = impl
        return impl

    return register


def _refuse_options(name: str, **options: Any) -> None:
    """Options tracker does not support raise by name instead of being ignored."""
    for option, value in options.items():
        if value is not None and value is not _NO_VALUE:
            raise TypeError(f"np.{name}: the argument {option}= is not supported on tracked arrays")


def _reduction(name: str) -> Callable[..., Any]:
    def reduce(a, axis=None, dtype=None, out=None, keepdims=False, **options):
        _refuse_options(name, dtype=dtype, out=out, **options)
        keepdims = False if keepdims is _NO_VALUE else keepdims
        return getattr(a, name)(axis=axis, keepdims=bool(keepdims))

    return reduce


def _extremum(name: str) -> Callable[..., Any]:
    def reduce(a, axis=None, out=None, keepdims=False, **options):
        _refuse_options(name, out=out, **options)
        keepdims = False if keepdims is _NO_VALUE else keepdims
        return getattr(a, name)(axis=axis, keepdims=bool(keepdims))

    return reduce


_implements(np.sum)(_reduction("sum"))
_implements(np.mean)(_reduction("mean"))
_implements(np.prod)(_reduction("prod"))
_implements(np.max, np.amax)(_extremum("max"))
_implements(np.min, np.amin)(_extremum("min"))


@_implements(np.dot)
def _dot(a, b, out=None):
    _refuse_options("dot", out=out)
    return _core.dot(a, b)


@_implements(np.transpose)
def _transpose(a, axes=None):
    return a.transpose() if axes is None else a.transpose(*axes)


@_implements(np.reshape)
def _reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    if order != "C":
        raise TypeError("np.reshape: only order='C' is supported on tracked arrays")
    return a.reshape(newshape if shape is None else shape)


@_implements(np.where)
def _where(condition, *values):
    if len(values) != 2:
        raise TypeError(
            "np.where(condition) without x and y returns indices, which have no gradient: "
            "use np.where(tr.data(condition))"
        )
    return _core.where(condition, *values)


@_implements(np.ndim)
def _ndim(a):
    return a.ndim


@_implements(np.shape)
def _shape(a):
    return a.shape


@_implements(np.size)
def _size(a, axis=None):
    return a.size if axis is None else a.shape[axis]


from tracker import _linalg, _shape  # noqa: E402, F401  (they register into FUNCTIONS)

_core.set_functions(FUNCTIONS)
