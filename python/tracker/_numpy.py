"""The NumPy functions tracked arrays dispatch through `__array_function__`.

One table, filled once at import: NumPy function → implementation on tracked
values. A function missing here raises a `TypeError` naming it (in Rust).
"""

import operator
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
        if dtype is not None or out is not None or options:  # checked inline: a hot path
            _refuse_options(name, dtype=dtype, out=out, **options)
        return getattr(a, name)(axis=axis, keepdims=keepdims is not _NO_VALUE and bool(keepdims))

    return reduce


def _extremum(name: str) -> Callable[..., Any]:
    def reduce(a, axis=None, out=None, keepdims=False, **options):
        if out is not None or options:
            _refuse_options(name, out=out, **options)
        return getattr(a, name)(axis=axis, keepdims=keepdims is not _NO_VALUE and bool(keepdims))

    return reduce


_implements(np.sum)(_reduction("sum"))
_implements(np.mean)(_reduction("mean"))
_implements(np.prod)(_reduction("prod"))
_implements(np.max, np.amax)(_extremum("max"))
_implements(np.min, np.amin)(_extremum("min"))


def _scan(name: str, scan: Callable[..., Any]) -> Callable[..., Any]:
    def accumulate(a, axis=None, dtype=None, out=None):
        _refuse_options(name, dtype=dtype, out=out)
        return scan(a, None if axis is None else operator.index(axis))

    return accumulate


_implements(np.cumsum)(_scan("cumsum", _core.cumsum))
_implements(np.cumprod)(_scan("cumprod", _core.cumprod))


def _plain(x: Any) -> Any:
    return _core.data(x) if _core.istracked(x) else x


@_implements(np.clip)
def _clip(a, a_min=_NO_VALUE, a_max=_NO_VALUE, out=None, *, min=_NO_VALUE, max=_NO_VALUE, **kw):
    """`minimum(maximum(a, low), high)`, except that at a bound the gradient goes to `a`,
    as PyTorch's `clamp`."""
    _refuse_options("clip", out=out, **kw)
    low = min if a_min is _NO_VALUE else a_min
    high = max if a_max is _NO_VALUE else a_max
    clipped = a
    if low is not None and low is not _NO_VALUE:
        clipped = _core.where(_plain(clipped) < _plain(low), low, clipped)
    if high is not None and high is not _NO_VALUE:
        clipped = _core.where(_plain(clipped) > _plain(high), high, clipped)
    return clipped


@_implements(np.sinc)
def _sinc(x):
    return _core.unary("sinc", x)


@_implements(np.round, np.around)
def _round(a, decimals=0, out=None):
    """Half to even, as NumPy; the gradient is zero, as for `rint`."""
    _refuse_options("round", out=out)
    if decimals == 0:
        return np.rint(a)
    scale = 10.0**decimals
    return np.rint(a * scale) / scale


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


def _on_plain_values(f: Callable[..., Any]) -> Callable[..., Any]:
    """`f` on the plain values: for results that carry no gradient (new arrays of a
    shape, comparisons, tests of equality)."""

    def plain(*args, **kwargs):
        return f(*(_plain(a) for a in args), **{k: _plain(v) for k, v in kwargs.items()})

    return plain


for _f in (
    np.zeros_like, np.ones_like, np.empty_like, np.full_like,
    np.isclose, np.allclose, np.array_equal, np.array_equiv,
):  # fmt: skip
    _implements(_f)(_on_plain_values(_f))


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
