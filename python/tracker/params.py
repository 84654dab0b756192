"""Implicit parameters: `Params`, `Grads`, and gradients with respect to a `Params`.

Tracker.jl's implicit mode: instead of passing the arrays to differentiate as
arguments, a function of no arguments closes over parameters (`tr.param`) and
the gradient is taken with respect to a `Params` collection of them. The result
is a `Grads`, looked up by the parameter itself.

>>> import numpy as np, tracker as tr
>>> from tracker.params import Params, gradient
>>> W, b = tr.param(np.eye(2)), tr.param(np.zeros(2))
>>> x = np.array([1.0, 2.0])
>>> grads = gradient(lambda: np.sum(W @ x + b), Params([W, b]))
>>> grads[W]
array([[1., 2.],
       [1., 2.]])
>>> grads[b]
array([1., 1.])

Unlike Tracker.jl, the gradient is out of place: gradients already accumulated
in the parameters by `tr.back` are neither included nor modified.
"""

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from tracker import _core, tree

__all__ = ["Grads", "Params", "gradient", "withgradient"]


def _describe(x: Any) -> str:
    """A short description of a value for error messages (no array contents)."""
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{type(x).__name__} of shape {tuple(shape)} and dtype {dtype}"
    return type(x).__name__


def _check_tracked(x: Any) -> None:
    if _core.istracked(x):
        return
    if tree.is_differentiable(x) or isinstance(x, (int, np.ndarray, np.generic)):
        raise TypeError(
            f"Params holds tracked parameters, got a plain {_describe(x)}: wrap it with "
            "tr.param(x) and use the parameter in the function (a plain array is a constant; "
            "Tracker.jl #163)"
        )
    raise TypeError(f"Params holds tracked parameters (tr.param), got {_describe(x)}")


def _leaves(xs: Any) -> list[Any]:
    """The members of `xs`: a parameter, a structure of them, or any other iterable of them."""
    if _core.istracked(xs):
        return [xs]
    leaves, _ = tree.flatten(xs)
    if (
        len(leaves) == 1
        and leaves[0] is xs
        and isinstance(xs, Iterable)
        and not isinstance(xs, (np.ndarray, str, bytes))
    ):
        leaves, _ = tree.flatten(list(xs))
    return leaves


class Params:
    """An ordered collection of parameters to differentiate with respect to.

    Built from an iterable of tracked parameters (or any structure of them, as
    `tr.tree.flatten` walks it); the same parameter added twice is kept once
    (identity, not equality, decides). Plain arrays raise `TypeError`: a
    parameter is made with `tr.param`.

    >>> import numpy as np, tracker as tr
    >>> W = tr.param(np.ones((2, 2)))
    >>> ps = Params([W, W])
    >>> len(ps), W in ps
    (1, True)
    """

    __slots__ = ("_order", "_ids")

    def __init__(self, xs: Iterable[Any] = ()) -> None:
        self._order: list[Any] = []
        self._ids: set[int] = set()
        self.append(*_leaves(xs))

    def append(self, *xs: Any) -> None:
        """Add parameters at the end, skipping those already present (Tracker.jl's `push!`)."""
        for x in xs:
            _check_tracked(x)
        for x in xs:
            if id(x) not in self._ids:
                self._ids.add(id(x))
                self._order.append(x)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __getitem__(self, index: int) -> Any:
        return self._order[index]

    def __contains__(self, x: object) -> bool:
        return id(x) in self._ids and any(p is x for p in self._order)

    def __repr__(self) -> str:
        return f"Params([{', '.join(_describe(p) for p in self._order)}])"


def _params_children(ps: Params) -> tuple[list[Any], None]:
    return list(ps), None


def _params_from_children(_aux: None, children: list[Any]) -> Any:
    # A structure of parameters rebuilds as a Params; anything else (its
    # gradients, or `tr.data` of its members) as a list aligned with it.
    if all(_core.istracked(c) for c in children):
        return Params(children)
    return children


tree.register(Params, _params_children, _params_from_children)


class Grads:
    """The gradients with respect to a `Params`, looked up by the parameter itself.

    `grads[p]` is the gradient of parameter `p`; iteration yields the
    parameters in the order of the `Params`; `items()` yields `(p, gradient)`.
    Looking up a plain (untracked) object raises `TypeError`, and a tracked
    value that is not one of the parameters raises `KeyError`.

    `Grads(ps)` without gradients holds zeros of each parameter's shape and dtype.
    """

    __slots__ = ("_params", "_grads", "_index")

    def __init__(self, ps: Params | Iterable[Any], grads: Iterable[Any] | None = None) -> None:
        self._params = ps if isinstance(ps, Params) else Params(ps)
        if grads is None:
            values = [np.zeros_like(np.asarray(_core.data(p))) for p in self._params]
        else:
            values = list(grads)
            if len(values) != len(self._params):
                raise ValueError(
                    f"Grads: {len(values)} gradients for {len(self._params)} parameters"
                )
        self._grads = values
        self._index = {id(p): k for k, p in enumerate(self._params)}

    @property
    def params(self) -> Params:
        """The parameters these are the gradients of."""
        return self._params

    def _position(self, key: Any) -> int:
        if not _core.istracked(key):
            raise TypeError(
                f"object is not tracked: {_describe(key)}; Grads are looked up by the tracked "
                "parameters (tr.param) the gradient was taken with respect to"
            )
        k = self._index.get(id(key))
        if k is None or self._params[k] is not key:
            raise KeyError(
                f"this tracked {_describe(key)} is not one of the {len(self._params)} Params "
                "the gradient was taken with respect to"
            )
        return k

    def __getitem__(self, key: Any) -> Any:
        return self._grads[self._position(key)]

    def get(self, key: Any, default: Any = None) -> Any:
        """`grads[key]`, or `default` if `key` is not one of the parameters."""
        k = self._index.get(id(key))
        return default if k is None or self._params[k] is not key else self._grads[k]

    def __contains__(self, key: object) -> bool:
        k = self._index.get(id(key))
        return k is not None and self._params[k] is key

    def __iter__(self) -> Iterator[Any]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def keys(self) -> list[Any]:
        """The parameters, in order."""
        return list(self._params)

    def values(self) -> list[Any]:
        """The gradients, in the order of the parameters."""
        return list(self._grads)

    def items(self) -> list[tuple[Any, Any]]:
        """`(parameter, gradient)` pairs, in order."""
        return list(zip(self._params, self._grads))

    def __repr__(self) -> str:
        shown = ", ".join(f"{_describe(p)}: {_describe(g)}" for p, g in self.items())
        return f"Grads({{{shown}}})"


def _inputs(scope: _core.Scope, ps: Params) -> list[Any]:
    """Makes each parameter of `ps` an input of `scope`; its uses in the scope resolve to it.

    Only parameters (and, when nested, tracked values of the enclosing tape) can
    be differentiated implicitly: a computed value of another tape would be a
    constant inside the function, and its gradient silently zero.
    """
    handles = []
    for p in ps:
        handle = scope.input(p)
        if handle is not p and not _core.isleaf(p):
            raise TypeError(
                f"Params: a computed tracked {_describe(p)} is not a parameter, so its uses in "
                "the function cannot be differentiated implicitly; differentiate with respect "
                "to a tr.param, pass it as an argument (tr.gradient(f, x)), or use nest=True "
                "inside the differentiation that computed it"
            )
        handles.append(handle)
    return handles


def loss_of(value: Any) -> Any:
    """The loss in what a differentiated function returned: the value itself, or the
    first item of a tuple (the rest ride along, as Tracker.jl's `withgradient`)."""
    if isinstance(value, (tuple, list)) and not value:
        raise TypeError(
            f"the function returned an empty {type(value).__name__}: return the loss "
            "(a scalar), or a tuple whose first item is the loss"
        )
    return value[0] if isinstance(value, tuple) else value


def _run(f: Callable[[], Any], ps: Params, nest: bool) -> tuple[Any, Grads]:
    if not isinstance(ps, Params):
        raise TypeError(f"expected Params, got {type(ps).__name__}")
    scope = _core.enter_scope(nest)
    try:
        handles = _inputs(scope, ps)
        value = f()
        grads = scope.gradient(loss_of(value), handles)
    except BaseException:
        scope.exit([])
        raise
    return value, Grads(ps, scope.exit(grads))


def gradient(f: Callable[[], Any], ps: Params, *, nest: bool = False) -> Grads:
    """The gradients of `f()`, a scalar loss, with respect to each parameter in `ps`.

    `f` takes no arguments and uses the parameters directly. Out of place: the
    parameters' accumulated gradients (`tr.grad`) are neither read nor changed.
    With `nest=True` the gradients are tracked, so they can be differentiated
    again. If `f` returns a tuple, its first element is the loss.

    >>> import numpy as np, tracker as tr
    >>> w = tr.param(np.array([1.0, 2.0]))
    >>> gradient(lambda: np.sum(w**2), Params([w]))[w]
    array([2., 4.])
    """
    return _run(f, ps, nest)[1]


def withgradient(f: Callable[[], Any], ps: Params) -> Any:
    """`WithGradient(val, grad)`: the untracked value of `f()` and its `Grads` in one pass.

    If `f` returns a tuple, its first element is the loss and `val` is the whole
    tuple (untracked).
    """
    from tracker.api import WithGradient

    value, grads = _run(f, ps, nest=False)
    return WithGradient(tree.map(_core.data, value), grads)  # type: ignore[arg-type]
