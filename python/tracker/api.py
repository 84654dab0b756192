"""Differentiation of whole functions: `gradient`, `withgradient`, `jacobian`, `hessian`."""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from tracker import _core, params, tree


class WithGradient(NamedTuple):
    """The value of a function and its gradients, from one pass."""

    val: Any
    grad: tuple[Any, ...]


def _trace(
    scope: _core.Scope, args: tuple[Any, ...]
) -> tuple[tuple[Any, ...], list[Any], Callable[[list[Any]], tuple[Any, ...]]]:
    """The arguments with each differentiable leaf replaced by a tracked input.

    Returns `(traced, handles, arrange)`: the arguments to call the function with, the
    inputs to differentiate, and `arrange`, which puts their gradients in the
    arguments' structure.

    The same array object appearing twice is one input (tied weights): each
    occurrence gets the total gradient. Fields a dataclass leaves out of its
    `trainable()` are not differentiated.
    """
    plain = scope.trace_plain(args)
    if plain is not None:  # arrays and plain dicts of them: no tree to walk
        traced, handles = plain
        return traced, handles, functools.partial(_core.arrange_plain, args)
    leaves, treedef = tree.flatten(args)
    unique, positions = tree.dedup(leaves, is_tracked=_core.istracked)
    trainable = tree.trainable_unique(args, positions, len(unique))
    inputs = [
        scope.input(leaf) if allowed and tree.is_differentiable(leaf, _core.istracked) else None
        for leaf, allowed in zip(unique, trainable, strict=True)
    ]
    traced = [
        leaf if inputs[p] is None else inputs[p] for leaf, p in zip(leaves, positions, strict=True)
    ]

    def arrange(grads: list[Any]) -> tuple[Any, ...]:
        it = iter(grads)
        per_input = [None if t is None else next(it) for t in inputs]
        return tree.unflatten_gradient(treedef, [per_input[p] for p in positions])

    return tree.unflatten(treedef, traced), [t for t in inputs if t is not None], arrange


def _run(f: Callable[..., Any], args: tuple[Any, ...], nest: bool) -> tuple[Any, tuple[Any, ...]]:
    """`f(*args)` and the gradient of its loss, as (value, gradients per argument)."""
    scope = _core.enter_scope(nest)
    try:
        traced, handles, arrange = _trace(scope, args)
        value = f(*traced)
        grads = scope.gradient(params.loss_of(value), handles)
    except BaseException:
        scope.exit([])
        raise
    return value, arrange(scope.exit(grads))


def _pullback_of(
    f: Callable[..., Any], args: tuple[Any, ...], tracked: list[Any], dy: Any, nest: bool
) -> list[Any]:
    """The gradients of `f(*args)` with seed `dy` with respect to the `tracked` arguments.

    Used by `checkpoint` to differentiate its recomputation: with `nest`, on the
    enclosing tape (the arguments are its tracked values); without, on a fresh one.
    """
    scope = _core.enter_scope(nest)
    try:
        inputs = [scope.input(a) for a in tracked]
        swap = dict(zip(map(id, tracked), inputs))
        y = f(*(swap.get(id(a), a) for a in args))
        grads = scope.gradient(y, inputs, dy)
    except BaseException:
        scope.exit([])
        raise
    return scope.exit(grads)


def gradient(f: Callable[..., Any], *args: Any, nest: bool = False) -> tuple[Any, ...]:
    """The gradients of scalar `f` with respect to each argument, in each argument's structure.

    Float arrays and float scalars are differentiated; ints, strings, `None`
    and the like get `None`. With `nest=True` the gradients are themselves
    tracked, so they can be differentiated again.

    >>> import numpy as np, tracker as tr
    >>> tr.gradient(lambda x: np.sum(x**2), np.array([1.0, 2.0]))
    (array([2., 4.]),)
    """
    if len(args) == 1 and isinstance(args[0], params.Params):
        return params.gradient(f, args[0], nest=nest)
    return _run(f, args, nest)[1]


def withgradient(f: Callable[..., Any], *args: Any) -> WithGradient:
    """The value of `f` and its gradients in one pass.

    If `f` returns a tuple, its first element is the loss and `val` is the
    whole tuple (untracked).

    >>> import numpy as np, tracker as tr
    >>> tr.withgradient(lambda x: np.sum(x**2), np.array([3.0]))
    WithGradient(val=np.float64(9.0), grad=(array([6.]),))
    """
    if len(args) == 1 and isinstance(args[0], params.Params):
        return params.withgradient(f, args[0])
    value, grads = _run(f, args, nest=False)
    return WithGradient(tree.map(_core.data, value), grads)


_MAX_DIMS = 64  # NumPy's


def jacobian(f: Callable[[Any], Any], x: Any) -> np.ndarray:
    """The Jacobian of `f` at array `x`, of shape `y.shape + x.shape`: one sweep per output."""
    x = np.asarray(x, dtype=np.result_type(np.asarray(x).dtype, np.float32))
    scope = _core.enter_scope(False)
    try:
        tracked_x = scope.input(x)
        y = f(tracked_x)
        shape = np.shape(_core.data(y))
        if len(shape) + x.ndim > _MAX_DIMS:
            raise ValueError(
                f"jacobian: the result would have {len(shape) + x.ndim} dimensions "
                f"(output {shape} + input {x.shape}), more than NumPy's {_MAX_DIMS}; "
                "reshape the input or output to fewer dimensions"
            )
        dtype = np.asarray(_core.data(y)).dtype
        rows = np.empty((int(np.prod(shape)), x.size), dtype=np.result_type(dtype, x.dtype))
        for k in range(rows.shape[0]):
            seed = np.zeros(shape, dtype=dtype)
            seed.flat[k] = 1
            (row,) = scope.gradient(y, [tracked_x], seed, retain=True)
            rows[k] = np.reshape(_core.data(row), -1)
    finally:
        scope.exit([])
    return np.reshape(rows, shape + x.shape)


def hessian(f: Callable[[Any], Any], x: Any) -> np.ndarray:
    """The Hessian of scalar `f` at array `x`: the Jacobian of a nested gradient.

    >>> import numpy as np, tracker as tr
    >>> tr.hessian(lambda x: np.sum(x**3), np.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    return jacobian(lambda x: gradient(f, x, nest=True)[0], x)
