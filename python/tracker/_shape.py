"""NumPy's shape, joining, indexing and statistics functions on tracked arrays, built from
the core's gather, place, reshape and transpose, registered into the `__array_function__`
table.

Three building blocks carry everything here:

- reshape and transpose, for the functions that only relabel axes (`ravel`, `squeeze`,
  `expand_dims`, `moveaxis`, `atleast_2d`, ...). Their output shape is NumPy's own: the
  function runs on a zero-strided stand-in of the input's shape, so the shapes and the
  errors are NumPy's without touching any data.
- a gather with a computed index, for the functions that move elements (`roll`, `tile`,
  `repeat`, `take`, `take_along_axis`, `pad`, `delete`, `broadcast_to`, `sort`): NumPy's
  function runs on the array of flat positions `arange(size).reshape(shape)`, and the
  result indexes the flattened input. The gradient of a gather is a scatter-add, so
  repeated elements (`tile`, `repeat`, `broadcast_to`) accumulate their gradients.
- `_core.place` (the input in a zero array, at a slice), for joining: `concatenate` and
  `stack` sum disjoint placed pieces, combined pairwise so that joining `k` arrays costs
  `size · log k`.
"""

import itertools
import operator
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.exceptions import AxisError
from numpy.lib.array_utils import normalize_axis_tuple

from tracker import _core
from tracker._numpy import _NO_VALUE, _implements, _on_plain_values, _plain, _refuse_options

# -- helpers -------------------------------------------------------------------------------


def _tracked(x: Any) -> bool:
    return _core.istracked(x)


def _shape_of(x: Any) -> tuple[int, ...]:
    return tuple(x.shape) if _tracked(x) else np.shape(x)


def _stand_in(shape: tuple[int, ...]) -> np.ndarray:
    """A zero-strided array of `shape` (no memory): NumPy's shape functions run on it."""
    return np.broadcast_to(np.empty((), dtype=np.int8), shape)


def _axis(name: str, axis: Any, ndim: int) -> int:
    """One axis, normalized; NumPy's `AxisError` (a ValueError and an IndexError) if out of
    bounds."""
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"np.{name}: axis must be an integer, got {axis!r}") from None
    if not -ndim <= axis < ndim:
        raise AxisError(
            f"np.{name}: axis {axis} is out of bounds for array of dimension {ndim}"
        ) from None
    return axis % ndim


def _axes(name: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """An axis or a tuple of axes, normalized (`None`: all axes)."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        axes = tuple(_axis(name, a, ndim) for a in axis)
        if len(set(axes)) != len(axes):
            raise ValueError(f"np.{name}: repeated axis in {axis!r}")
        return axes
    return (_axis(name, axis, ndim),)


def _not_tracked(name: str, **arguments: Any) -> None:
    """Arguments that select positions (indices, shifts, repeats) cannot be tracked."""
    for argument, value in arguments.items():
        if _tracked(value) or (
            isinstance(value, (list, tuple)) and any(_tracked(v) for v in value)
        ):
            raise TypeError(
                f"np.{name}: the argument {argument}= cannot be a tracked value (it selects "
                f"positions, which have no gradient): pass tr.data({argument})"
            )


def _flat(a: Any) -> Any:
    return a.reshape(a.size)


# The binding reads index arrays through rust-numpy, which takes at most 32 dimensions;
# wider positions (NumPy allows 64) gather flat and reshape.
_INDEX_DIMS = 32


def _gather(a: Any, move: Callable[[np.ndarray], np.ndarray]) -> Any:
    """`move(a)` for a function `move` that only moves elements: `move` runs on the flat
    positions of `a`, and they index the flattened `a` (a gather, whose gradient is a
    scatter-add)."""
    if not _tracked(a):
        return move(np.asarray(a))
    positions = np.asarray(move(np.arange(a.size).reshape(a.shape)))
    if positions.ndim > _INDEX_DIMS:
        return _flat(a)[positions.reshape(-1)].reshape(positions.shape)
    return _flat(a)[positions]


def _relabel(a: Any, shape: tuple[int, ...]) -> Any:
    """`a` reshaped (tracked) or as NumPy reshapes it (plain)."""
    return a.reshape(shape) if _tracked(a) else np.reshape(a, shape)


# -- relabelling axes ------------------------------------------------------------------------


@_implements(np.ravel)
def _ravel(a, order="C"):
    if order == "F":
        return _transpose_all(a).reshape(a.size)
    if order not in ("C", "A", "K"):
        raise ValueError(f"np.ravel: order must be one of 'C', 'F', 'A', or 'K' (got {order!r})")
    return a.reshape(a.size)


def _transpose_all(a: Any) -> Any:
    return a.transpose(*reversed(range(a.ndim))) if a.ndim > 1 else a


def _ravel_any(x: Any) -> Any:
    return _ravel(x) if _tracked(x) else np.ravel(x)


@_implements(np.squeeze)
def _squeeze(a, axis=None):
    return a.reshape(np.squeeze(_stand_in(a.shape), axis).shape)


@_implements(np.expand_dims)
def _expand_dims(a, axis):
    return _relabel(a, np.expand_dims(_stand_in(_shape_of(a)), axis).shape)


def _atleast(fn: Callable[..., Any]) -> Callable[..., Any]:
    def atleast(*arys):
        out = tuple(
            _relabel(a, fn(_stand_in(_shape_of(a))).shape) if _tracked(a) else fn(a) for a in arys
        )
        return out[0] if len(out) == 1 else out

    return atleast


_implements(np.atleast_1d)(_atleast(np.atleast_1d))
_implements(np.atleast_2d)(_atleast(np.atleast_2d))
_implements(np.atleast_3d)(_atleast(np.atleast_3d))


@_implements(np.moveaxis)
def _moveaxis(a, source, destination):
    source = normalize_axis_tuple(source, a.ndim, "source")
    destination = normalize_axis_tuple(destination, a.ndim, "destination")
    if len(source) != len(destination):
        raise ValueError(
            "`source` and `destination` arguments must have the same number of elements"
        )
    order = [k for k in range(a.ndim) if k not in source]
    for dest, src in sorted(zip(destination, source)):
        order.insert(dest, src)
    return a.transpose(*order) if order else a.reshape(())


@_implements(np.swapaxes)
def _swapaxes(a, axis1, axis2):
    axis1, axis2 = _axis("swapaxes", axis1, a.ndim), _axis("swapaxes", axis2, a.ndim)
    order = list(range(a.ndim))
    order[axis1], order[axis2] = axis2, axis1
    return a.transpose(*order)


@_implements(np.copy)
def _copy(a, order="K", subok=False):
    """A new node with the same value (tracked values are immutable, so no data is copied)."""
    return a.reshape(a.shape)


def _astype(x, dtype, /, *, copy=True, device=None):
    _refuse_options("astype", device=device)
    return x.astype(dtype, copy=copy)


if hasattr(np, "astype"):  # NumPy >= 2.1
    _implements(np.astype)(_astype)


# -- joining and splitting -------------------------------------------------------------------


def _join(pieces: list[Any], axis: int) -> Any:
    """The concatenation of `pieces` (shapes checked) along `axis`: the halves, each placed
    in a zero array of the whole shape, summed; plain runs join in NumPy."""
    if not any(_tracked(p) for p in pieces):
        return np.concatenate([np.asarray(p) for p in pieces], axis=axis)
    if len(pieces) == 1:
        return pieces[0]
    half = len(pieces) // 2
    left, right = _join(pieces[:half], axis), _join(pieces[half:], axis)
    left_shape, right_shape = _shape_of(left), _shape_of(right)
    split = left_shape[axis]
    total = split + right_shape[axis]
    shape = (*left_shape[:axis], total, *left_shape[axis + 1 :])
    before = (slice(None),) * axis
    return _core.place(left, shape, (*before, slice(0, split))) + _core.place(
        right, shape, (*before, slice(split, total))
    )


@_implements(np.concatenate)
def _concatenate(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    _refuse_options("concatenate", out=out, dtype=dtype)
    arrays = [a if _tracked(a) else np.asarray(a) for a in arrays]
    if not arrays:
        raise ValueError("np.concatenate: need at least one array to concatenate")
    if axis is None:
        arrays, axis = [_ravel_any(a) for a in arrays], 0
    shapes = [_shape_of(a) for a in arrays]
    if any(len(s) == 0 for s in shapes):
        raise ValueError("np.concatenate: zero-dimensional arrays cannot be concatenated")
    ndim = len(shapes[0])
    if any(len(s) != ndim for s in shapes):
        raise ValueError(
            "np.concatenate: all the input arrays must have the same number of dimensions, "
            f"got shapes {shapes}"
        )
    axis = _axis("concatenate", axis, ndim)
    if len({s[:axis] + s[axis + 1 :] for s in shapes}) != 1:
        raise ValueError(
            "np.concatenate: all the input array dimensions except for the concatenation axis "
            f"must match exactly, got shapes {shapes}"
        )
    return _join(arrays, axis)


@_implements(np.stack)
def _stack(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    _refuse_options("stack", out=out, dtype=dtype)
    arrays = [a if _tracked(a) else np.asarray(a) for a in arrays]
    if not arrays:
        raise ValueError("np.stack: need at least one array to stack")
    shapes = {_shape_of(a) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"np.stack: all input arrays must have the same shape, got {shapes}")
    (shape,) = shapes
    axis = _axis("stack", axis, len(shape) + 1)
    expanded = (*shape[:axis], 1, *shape[axis:])
    return _join([_relabel(a, expanded) for a in arrays], axis)


def _sequence(name: str, tup: Any) -> list[Any]:
    if not isinstance(tup, Sequence) or isinstance(tup, (str, bytes)):
        raise TypeError(f"np.{name}: arrays to stack must be passed as a sequence")
    return list(tup)


@_implements(np.vstack)
def _vstack(tup, *, dtype=None, casting="same_kind"):
    _refuse_options("vstack", dtype=dtype)
    arrays = [_atleast(np.atleast_2d)(a) for a in _sequence("vstack", tup)]
    return _concatenate(arrays, axis=0)


@_implements(np.hstack)
def _hstack(tup, *, dtype=None, casting="same_kind"):
    _refuse_options("hstack", dtype=dtype)
    arrays = [_atleast(np.atleast_1d)(a) for a in _sequence("hstack", tup)]
    axis = 0 if arrays and len(_shape_of(arrays[0])) == 1 else 1
    return _concatenate(arrays, axis=axis)


@_implements(np.dstack)
def _dstack(tup):
    arrays = [_atleast(np.atleast_3d)(a) for a in _sequence("dstack", tup)]
    return _concatenate(arrays, axis=2)


@_implements(np.column_stack)
def _column_stack(tup):
    columns = []
    for a in _sequence("column_stack", tup):
        a = a if _tracked(a) else np.asarray(a)
        shape = _shape_of(a)
        columns.append(_relabel(a, (shape[0] if shape else 1, 1)) if len(shape) < 2 else a)
    return _concatenate(columns, axis=1)


@_implements(np.append)
def _append(arr, values, axis=None):
    if axis is None:
        return _concatenate([_ravel_any(arr), _ravel_any(values)], axis=0)
    return _concatenate([arr, values], axis=axis)


@_implements(np.array_split)
def _array_split(ary, indices_or_sections, axis=0):
    _not_tracked("array_split", indices_or_sections=indices_or_sections)
    axis = _axis("array_split", axis, ary.ndim)
    length = ary.shape[axis]
    try:
        sections = operator.index(indices_or_sections)
    except TypeError:
        bounds = [0, *(operator.index(i) for i in indices_or_sections), length]
    else:
        if sections <= 0:
            raise ValueError("np.array_split: number sections must be larger than 0.")
        each, extra = divmod(length, sections)
        sizes = [0] + extra * [each + 1] + (sections - extra) * [each]
        bounds = np.cumsum(sizes).tolist()
    before = (slice(None),) * axis
    return [ary[(*before, slice(start, stop))] for start, stop in itertools.pairwise(bounds)]


@_implements(np.split)
def _split(ary, indices_or_sections, axis=0):
    _not_tracked("split", indices_or_sections=indices_or_sections)
    try:
        sections = operator.index(indices_or_sections)
    except TypeError:
        pass
    else:
        length = ary.shape[_axis("split", axis, ary.ndim)]
        if sections <= 0 or length % sections:
            raise ValueError(
                f"np.split: array split does not result in an equal division ({length} "
                f"elements into {sections} sections)"
            )
    return _array_split(ary, indices_or_sections, axis)


# -- moving elements: gathers with a computed index ------------------------------------------


@_implements(np.flip)
def _flip(m, axis=None):
    axes = _axes("flip", axis, m.ndim)
    return m[tuple(slice(None, None, -1) if k in axes else slice(None) for k in range(m.ndim))]


@_implements(np.fliplr)
def _fliplr(m):
    if m.ndim < 2:
        raise ValueError("np.fliplr: input must be >= 2-d.")
    return m[:, ::-1]


@_implements(np.flipud)
def _flipud(m):
    if m.ndim < 1:
        raise ValueError("np.flipud: input must be >= 1-d.")
    return m[::-1]


@_implements(np.roll)
def _roll(a, shift, axis=None):
    _not_tracked("roll", shift=shift, axis=axis)
    return _gather(a, lambda p: np.roll(p, shift, axis))


@_implements(np.rot90)
def _rot90(m, k=1, axes=(0, 1)):
    _not_tracked("rot90", k=k)
    return _gather(m, lambda p: np.rot90(p, k, axes))


@_implements(np.tile)
def _tile(A, reps):
    _not_tracked("tile", reps=reps)
    return _gather(A, lambda p: np.tile(p, reps))


@_implements(np.repeat)
def _repeat(a, repeats, axis=None):
    _not_tracked("repeat", repeats=repeats)
    return _gather(a, lambda p: np.repeat(p, repeats, axis))


@_implements(np.broadcast_to)
def _broadcast_to(array, shape, subok=False):
    _not_tracked("broadcast_to", shape=shape)
    return _gather(array, lambda p: np.broadcast_to(p, shape))


@_implements(np.take)
def _take(a, indices, axis=None, out=None, mode="raise"):
    _refuse_options("take", out=out)
    _not_tracked("take", indices=indices)
    return _gather(a, lambda p: np.take(p, indices, axis, mode=mode))


@_implements(np.take_along_axis)
def _take_along_axis(arr, indices, axis=-1):
    _not_tracked("take_along_axis", indices=indices)
    indices = np.asarray(indices)
    return _gather(arr, lambda p: np.take_along_axis(p, indices, axis))


@_implements(np.delete)
def _delete(arr, obj, axis=None):
    _not_tracked("delete", obj=obj)
    return _gather(arr, lambda p: np.delete(p, obj, axis))


_PAD_GATHERS = ("edge", "reflect", "symmetric", "wrap")


@_implements(np.pad)
def _pad(array, pad_width, mode="constant", **kwargs):
    """`constant` places the array in the padded shape and adds the constant border;
    `edge`, `reflect`, `symmetric` and `wrap` are gathers."""
    _not_tracked("pad", pad_width=pad_width)
    if mode in _PAD_GATHERS:
        allowed = {"reflect_type"} if mode in ("reflect", "symmetric") else set()
        for key in kwargs.keys() - allowed:
            raise TypeError(f"np.pad: mode {mode!r} takes no argument {key}=")
        if kwargs.get("reflect_type", "even") != "even":
            raise TypeError(
                "np.pad: the argument reflect_type='odd' is not supported on tracked arrays"
            )
        return _gather(array, lambda p: np.pad(p, pad_width, mode))
    if mode != "constant":
        raise TypeError(
            f"np.pad: mode {mode!r} is not supported on tracked arrays (constant, edge, reflect, "
            "symmetric and wrap are)"
        )
    for key in kwargs.keys() - {"constant_values"}:
        raise TypeError(f"np.pad: mode 'constant' takes no argument {key}=")
    constant = kwargs.get("constant_values", 0)
    if not _tracked(array):
        raise TypeError(
            "np.pad: the argument constant_values= cannot be a tracked value on tracked arrays"
        )
    _not_tracked("pad", constant_values=constant)
    if array.ndim == 0:
        return array.reshape(())
    border = np.pad(np.zeros(array.shape, array.dtype), pad_width, constant_values=constant)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.intp), (array.ndim, 2))
    inside = tuple(slice(int(b), int(b) + n) for b, n in zip(widths[:, 0], array.shape))
    placed = _core.place(array, border.shape, inside)
    return placed + border if np.any(border) else placed


# -- sorting and plain integer results -------------------------------------------------------


@_implements(np.sort)
def _sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """The values in order; the gradient flows back through the permutation."""
    _refuse_options("sort", order=order)
    if axis is None:
        a, axis = _ravel(a), -1
    permutation = np.argsort(_core.data(a), axis=axis, kind=kind, stable=stable)
    return _take_along_axis(a, permutation, axis)


for _function in (
    np.argsort,
    np.argmax,
    np.argmin,
    np.nonzero,
    np.argwhere,
    np.flatnonzero,
    np.count_nonzero,
    np.searchsorted,
):
    _implements(_function)(_on_plain_values(_function))


# -- statistics ---------------------------------------------------------------------------


def _count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    return int(np.prod([shape[k] for k in axes], dtype=np.int64))


@_implements(np.var)
def _var(
    a,
    axis=None,
    dtype=None,
    out=None,
    ddof=0,
    keepdims=False,
    *,
    where=None,
    mean=None,
    correction=None,
):
    """`sum((a - mean)²) / (n - ddof)` over the axes; `correction` is `ddof`'s other name."""
    _refuse_options("var", dtype=dtype, out=out, where=where)
    keepdims = False if keepdims is _NO_VALUE else bool(keepdims)
    if correction is not None and correction is not _NO_VALUE:
        if ddof != 0:
            raise ValueError("np.var: ddof and correction can't be provided simultaneously.")
        ddof = correction
    axes = _axes("var", axis, a.ndim)
    if mean is None or mean is _NO_VALUE:
        mean = np.mean(a, axis=axes, keepdims=True)
    deviation = a - mean
    dof = _count(tuple(a.shape), axes) - ddof
    if dof <= 0:
        warnings.warn("Degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=3)
    return np.sum(deviation * deviation, axis=axes, keepdims=keepdims) / max(dof, 0)


@_implements(np.std)
def _std(
    a,
    axis=None,
    dtype=None,
    out=None,
    ddof=0,
    keepdims=False,
    *,
    where=None,
    mean=None,
    correction=None,
):
    """`sqrt(var)`; at a zero variance its gradient is infinite (as PyTorch's is NaN)."""
    _refuse_options("std", dtype=dtype, out=out, where=where)
    return np.sqrt(_var(a, axis, ddof=ddof, keepdims=keepdims, mean=mean, correction=correction))


@_implements(np.average)
def _average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """The weighted mean, differentiable in `a` and in `weights`."""
    keepdims = False if keepdims is _NO_VALUE else bool(keepdims)
    ndim = len(_shape_of(a))
    axes = None if axis is None else _axes("average", axis, ndim)
    if weights is None:
        average = np.mean(a, axis=axes, keepdims=keepdims)
        plain = np.asarray(_plain(average))
        total = plain.dtype.type(np.size(_plain(a)) / plain.size)
    else:
        shape, weight_shape = _shape_of(a), _shape_of(weights)
        if weight_shape != shape:
            if axes is None:
                raise TypeError(
                    "np.average: axis must be specified when shapes of a and weights differ."
                )
            if weight_shape != tuple(shape[k] for k in axes):
                raise ValueError(
                    "np.average: shape of weights must be consistent with shape of a along "
                    "specified axis."
                )
            order = np.argsort(axes).tolist()
            weights = weights.transpose(*order) if _tracked(weights) else weights.transpose(order)
            weights = _relabel(weights, tuple(s if k in axes else 1 for k, s in enumerate(shape)))
        total = np.sum(weights, axis=axes, keepdims=keepdims)
        if np.any(np.asarray(_plain(total)) == 0.0):
            raise ZeroDivisionError("np.average: weights sum to zero, can't be normalized")
        average = np.sum(a * weights, axis=axes, keepdims=keepdims) / total
    if not returned:
        return average
    if _shape_of(total) != _shape_of(average):
        total = _broadcast_to(total, _shape_of(average))
        total = total if _tracked(total) else total.copy()
    return average, total


@_implements(np.diff)
def _diff(a, n=1, axis=-1, prepend=_NO_VALUE, append=_NO_VALUE):
    """`a[1:] - a[:-1]` along `axis`, `n` times, after joining `prepend` and `append`."""
    n = operator.index(n)
    if n == 0:
        return a
    if n < 0:
        raise ValueError(f"np.diff: order must be non-negative but got {n!r}")
    ndim = len(_shape_of(a))
    if ndim == 0:
        raise ValueError("np.diff: diff requires input that is at least one dimensional")
    axis = _axis("diff", axis, ndim)
    pieces = []
    for extra in (prepend, a, append):
        if extra is _NO_VALUE:
            continue
        if extra is not a and len(_shape_of(extra)) == 0:
            shape = list(_shape_of(a))
            shape[axis] = 1
            extra = _broadcast_to(extra, tuple(shape))
        pieces.append(extra)
    if len(pieces) > 1:
        a = _concatenate(pieces, axis=axis)
    before = (slice(None),) * axis
    later, earlier = (*before, slice(1, None)), (*before, slice(None, -1))
    # After as many differences as the axis is long, the result stays empty.
    for _ in range(min(n, _shape_of(a)[axis])):
        a = a[later] - a[earlier]
    return a
