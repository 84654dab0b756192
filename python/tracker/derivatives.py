"""Pullbacks and directional derivatives: `forward`/`pullback`, `jvp`, `hvp`, `forwarddiff`.

`forward(f, *args)` runs `f` once and returns its value with a reusable
`back(dy)`, a vector-Jacobian product for any seed; `jvp` and `hvp` are the
Jacobian- and Hessian-vector products, built from reverse sweeps without forming
the matrices; `forwarddiff` is Tracker.jl's: `f` differentiated by a Jacobian
computed ahead of the backward pass.

>>> import numpy as np, tracker as tr
>>> from tracker.derivatives import forward
>>> y, back = forward(lambda x: np.stack([3 * x**2, 2 * x]), 5.0)
>>> y
array([75., 10.])
>>> back(np.array([1.0, 1.0]))
(np.float64(32.0),)
"""

import contextlib
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from tracker import _core, api, tree
from tracker.params import Grads, Params, _inputs

__all__ = ["Pullback", "forward", "forwarddiff", "hvp", "jvp", "pullback"]


def _retire(scope: _core.Scope) -> None:
    # Called by the finalizer of a Pullback; nothing can be raised from there.
    with contextlib.suppress(_core.TrackerError):
        scope.exit([])


class Pullback:
    """The `back` that `forward` returns: `back(dy)` is the gradient of `<y, dy>`.

    Reusable for any number of seeds; each call is an out-of-place sweep that
    leaves the parameters' accumulated gradients alone. The recorded tape is
    kept until the pullback is garbage collected or `close()` is called.
    """

    __slots__ = ("_scope", "_y", "_handles", "_rebuild", "_finalizer", "__weakref__")

    def __init__(
        self,
        scope: _core.Scope,
        y: Any,
        handles: list[Any],
        rebuild: Callable[[list[Any]], Any],
    ) -> None:
        self._scope = scope
        self._y = y
        self._handles = handles
        self._rebuild = rebuild
        self._finalizer = weakref.finalize(self, _retire, scope)
        self._finalizer.atexit = False

    def __call__(self, dy: Any = None) -> Any:
        """The gradients of `<y, dy>`, structured as `gradient`'s (`dy` is 1 for a scalar `y`)."""
        if not self._finalizer.alive:
            raise _core.TrackerError("this pullback was closed; call forward again")
        return self._rebuild(self._scope.gradient(self._y, self._handles, dy, retain=True))

    def close(self) -> None:
        """Frees the recorded tape now; later calls raise `TrackerError`."""
        self._finalizer()

    def __repr__(self) -> str:
        state = "open" if self._finalizer.alive else "closed"
        return f"<pullback of a value of shape {np.shape(_core.data(self._y))}, {state}>"


def _check_output(y: Any) -> None:
    if not (
        _core.istracked(y)
        or tree.is_differentiable(y)
        or isinstance(y, (np.ndarray, np.generic, int))
    ):
        raise TypeError(
            f"forward: the function must return one array or scalar, got {type(y).__name__}"
        )


def forward(f: Callable[..., Any], *args: Any, nest: bool = False) -> tuple[Any, Pullback]:
    """`(y, back)`: the value of `f(*args)` and its reusable pullback (Tracker.jl's `forward`).

    `back(dy)` returns the gradients of `sum(y * dy)` with respect to each
    argument, in each argument's structure, exactly as `gradient` returns them;
    `dy` has `y`'s shape and may be any seed, so `back` is a vector-Jacobian
    product. `y` is returned untracked. `back` can be called many times and
    never touches the parameters' accumulated gradients.

    `forward(f, ps)` with a `Params` calls `f()` and `back(dy)` returns `Grads`.
    With `nest=True` (inside another differentiation) `y` and the gradients are
    tracked on the enclosing tape, so they can be differentiated again.

    >>> import numpy as np
    >>> y, back = forward(lambda x: x * np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    >>> back(np.array([1.0, 0.0]))
    (array([1., 0.]),)
    >>> back(np.array([0.0, 1.0]))
    (array([0., 2.]),)
    """
    scope = _core.enter_scope(nest)
    try:
        if len(args) == 1 and isinstance(args[0], Params):
            ps = args[0]
            handles = _inputs(scope, ps)
            y = f()

            def rebuild(grads: list[Any]) -> Any:
                return Grads(ps, grads)

        else:
            traced, handles, rebuild = api._trace(scope, args)
            y = f(*traced)

        _check_output(y)
        scope.leave()
    except BaseException:
        scope.exit([])
        raise
    back = Pullback(scope, y, handles, rebuild)
    if nest:
        return y, back
    # A value computed from an enclosing computation's tracked values is marked.
    (value,) = scope.mark([_core.data(y)])
    return value, back


pullback = forward


def _vdot(a: Any, b: Any) -> Any:
    """`sum(a * b)` over the matching leaves of two structures (`None` leaves of `a` skipped)."""
    total: Any = 0.0
    a_leaves, _ = tree.flatten(a)
    b_leaves, _ = tree.flatten(b)
    if len(a_leaves) != len(b_leaves):
        raise ValueError(
            f"the vector has {len(b_leaves)} leaves, but the argument has {len(a_leaves)}"
        )
    for g, v in zip(a_leaves, b_leaves):
        if g is not None:
            total = total + np.sum(g * v)
    return total


def hvp(f: Callable[[Any], Any], x: Any, v: Any) -> Any:
    """The Hessian of scalar `f` at `x` times `v`, without forming the Hessian.

    One forward pass and two sweeps: a nested gradient `g(x)`, then the
    gradient of `sum(g(x) * v)`. `x` is an array, a float, or a structure of
    them (as `gradient` takes it), and `v` has the structure and shapes of `x`.

    >>> import numpy as np
    >>> hvp(lambda x: np.sum(x**3), np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    array([ 6., 12.])
    """
    return api.gradient(lambda z: _vdot(api.gradient(f, z, nest=True)[0], v), x)[0]


def _zeros_like_value(y: Any) -> Any:
    value = np.asarray(_core.data(y))
    dtype = value.dtype if value.dtype.kind == "f" else np.dtype(np.float64)
    return dtype.type(0) if value.shape == () else np.zeros(value.shape, dtype)


def jvp(f: Callable[[Any], Any], x: Any, v: Any) -> Any:
    """The Jacobian of `f` at array or float `x` times `v` (of `x`'s shape): `J @ v`.

    Reverse mode transposed: the pullback `u ↦ Jᵀu` is linear in `u`, so
    `J v` is the gradient with respect to `u` of `<Jᵀu, v>`, recorded with a
    nested sweep. One forward pass and two sweeps; the Jacobian is never formed.

    >>> import numpy as np
    >>> A = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> jvp(lambda x: A @ x, np.array([1.0, 1.0]), np.array([1.0, 0.0]))
    array([1., 3., 5.])
    """
    if not tree.is_differentiable(x, _core.istracked):
        raise TypeError(f"jvp: x must be a float array or a float, got {type(x).__name__}")
    outer = _core.enter_scope(False)
    try:
        x_in = outer.input(x)
        y = f(x_in)
        _check_output(y)
        u_in = outer.input(_zeros_like_value(y))
        inner = _core.enter_scope(True)
        try:
            transposed = inner.gradient(y, [x_in], u_in)
        except BaseException:
            inner.exit([])
            raise
        (transposed,) = inner.exit(transposed)
        (result,) = outer.gradient(_vdot(transposed, v), [u_in])
    except BaseException:
        outer.exit([])
        raise
    (result,) = outer.exit([result])
    return result


def _value_and_jacobian(f: Callable[[Any], Any], x: Any) -> tuple[Any, np.ndarray]:
    """`f(x)` (untracked) and its Jacobian, of shape `y.shape + x.shape`, in one forward pass.

    Raises `NestingError` if `f` uses values tracked by an enclosing
    differentiation: the Jacobian would silently hold them as constants.
    """
    scope = _core.enter_scope(False)
    try:
        x_in = scope.input(x)
        y = f(x_in)
        _check_output(y)
        value = _core.data(y)
        shape = np.shape(value)
        seed = np.zeros(shape, dtype=np.asarray(value).dtype)
        rows = []
        for k in range(seed.size):
            seed.flat[k] = 1
            (row,) = scope.gradient(y, [x_in], seed.copy(), retain=True)
            seed.flat[k] = 0
            rows.append(row)
    except BaseException:
        scope.exit([])
        raise
    # The scope marks its results if they depend on an enclosing differentiation's values.
    results = scope.exit([value, *rows])
    if any(_core.istracked(r) for r in results):
        raise _core.NestingError(
            "forwarddiff: f uses a value tracked by an enclosing differentiation (not through x), "
            "whose derivative would be lost: make it part of x, or call f directly"
        )
    x_shape = np.shape(x)
    jacobian = np.reshape(np.array(rows), shape + x_shape) if rows else np.zeros(shape + x_shape)
    return value, jacobian


def forwarddiff(f: Callable[[Any], Any], x: Any) -> Any:
    """`f(x)`, differentiated through a Jacobian computed in the forward pass (Tracker.jl's).

    With plain `x` this is `f(x)`. With tracked `x` the value and the whole
    Jacobian `J` of `f` at `x` are computed at once and one node is recorded,
    whose pullback is `dy ↦ Jᵀdy`: worth it when `f` has many operations and few
    inputs and outputs. (Tracker.jl computes `J` with forward-mode duals;
    tracker, reverse only, with one sweep per output.) A nested differentiation
    through it differentiates `f` again, so second derivatives are right. `f`
    must depend on tracked values only through `x` (a closure over a value of
    an enclosing differentiation raises `NestingError`).

    >>> import numpy as np, tracker as tr
    >>> tr.gradient(lambda x: forwarddiff(lambda z: z[0] * z[1], x), np.array([2.0, 3.0]))
    (array([3., 2.]),)
    """
    if not _core.istracked(x):
        return f(x)
    from tracker import rules

    x_value = _core.data(x)
    y, jacobian = _value_and_jacobian(f, x_value)
    dtype = np.asarray(x_value).dtype
    axes = jacobian.ndim - np.ndim(x_value)

    def pullback(dy: Any) -> tuple[Any]:
        if _core.istracked(dy):
            # Nested: differentiate f again on the enclosing tape, so that the
            # gradient depends on x as well as on dy.
            with rules._recording():
                return tuple(api._pullback_of(f, (x,), [x], dy, nest=True))
        dx = np.tensordot(np.asarray(dy), jacobian, axes=axes).astype(dtype, copy=False)
        return (dtype.type(dx) if np.ndim(x_value) == 0 else dx,)

    return _core.record_rule(f"forwarddiff({getattr(f, '__name__', 'f')})", pullback, (x,), y)
