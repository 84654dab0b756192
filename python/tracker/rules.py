"""Gradients written by hand: custom rules, hooks, checkpoints, and nobacksies.

A rule's pullback is recorded as one node on the tape. For nested
differentiation its pullback runs on tracked values (the rule's tracked inputs,
captured by the closure, and a tracked `dy`), so what it computes is recorded
and second derivatives through it are right.
"""

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from tracker import _core

__all__ = ["checkpoint", "hook", "nobacksies", "rule", "track"]

F = TypeVar("F", bound=Callable[..., Any])


def _any_tracked(args: tuple[Any, ...]) -> bool:
    return any(_core.istracked(a) for a in args)


def rule(f: Callable[..., tuple[Any, Callable[[Any], Any]]]) -> Callable[..., Any]:
    """A function with a hand-written gradient (Tracker.jl's `@grad`).

    `f(*args, **kwargs)` returns `(y, pullback)`, where `pullback(dy)` returns one
    gradient per positional argument (`None` for an argument without one); keyword
    arguments are passed through, not differentiated (as Tracker.jl's). With plain arguments the
    decorated function returns `y`; with tracked arguments it records one node.
    Write `f` with NumPy functions: when nested, it sees its arguments (and `dy`)
    as tracked values, so its pullback is differentiated too.

    >>> import numpy as np, tracker as tr
    >>> @tr.rule
    ... def cube(x):
    ...     return x**3, lambda dy: (3 * x**2 * dy,)
    >>> tr.gradient(lambda x: np.sum(cube(x)), np.array([1.0, 2.0]))
    (array([ 3., 12.]),)
    """

    name = getattr(f, "__name__", "rule")

    @functools.wraps(f)
    def tracked(*args: Any, **kwargs: Any) -> Any:
        for key, value in kwargs.items():
            if _core.istracked(value):
                raise TypeError(
                    f"{name}: keyword arguments of a rule are not differentiated, and "
                    f"{key}= is tracked; pass it positionally (its pullback then returns "
                    "its gradient), or pass tr.data(value)"
                )
        if not _any_tracked(args):
            return f(*args, **kwargs)[0]
        args, kept = _snapshot(args)
        # The forward runs without recording; the pullback keeps the tracked inputs.
        with _no_recording():
            y, pullback = f(*args, **kwargs)
        out = _record(name, pullback, args, _core.data(y))
        del kept  # recorded: the rule's node now keeps the tape
        return out

    return tracked


def _snapshot(args: tuple[Any, ...]) -> tuple[tuple[Any, ...], list[Any]]:
    """The tracked arguments as the pullback should capture them, and what to keep
    alive until the rule is recorded.

    A parameter becomes a node connected to it, so the pullback keeps the value
    recorded now even if the parameter is updated before the backward pass. Every
    tracked argument is passed as a handle that does not keep the tape alive: the
    pullback runs only while the rule's node (and so the tape) is.
    """
    kept = [_core.param(a) if _core.isleaf(a) else a for a in args]
    passed = tuple(_core.uncounted(k) if _core.istracked(k) else k for k in kept)
    return passed, kept


def _record(name: str, pullback: Callable[[Any], Any], args: tuple[Any, ...], value: Any) -> Any:
    """Records a rule on its tracked arguments; `pullback(dy)` answers for all of `args`."""
    positions = [k for k, a in enumerate(args) if _core.istracked(a)]

    def tracked_pullback(dy: Any) -> tuple[Any, ...]:
        grads = pullback(dy)
        grads = grads if isinstance(grads, (tuple, list)) else (grads,)
        if len(grads) != len(args):
            raise TypeError(
                f"{name}: the pullback returned {len(grads)} gradients for {len(args)} "
                "inputs (return one per input, None for an input without a gradient)"
            )
        return tuple(grads[k] for k in positions)

    return _core.record_rule(name, tracked_pullback, tuple(args[k] for k in positions), value)


def track(f: Callable[..., tuple[Any, Callable[[Any], Any]]], *args: Any) -> Any:
    """Apply the rule `f` (as `rule` defines it) to `args`: the explicit form of `rule`."""
    return rule(f)(*args)


def hook(f: Callable[[Any], Any], x: Any) -> Any:
    """`x` unchanged, but the gradient flowing back through it is `f(gradient)`.

    >>> import tracker as tr
    >>> x = tr.param(2.0)
    >>> tr.back(tr.hook(lambda g: -g, x))
    >>> tr.grad(x)
    np.float64(-1.0)
    """
    if not _core.istracked(x):
        return x
    return _record("hook", lambda dy: (f(dy),), (x,), _core.data(x))


def checkpoint(f: Callable[..., Any], *args: Any) -> Any:
    """`f(*args)`, recomputed in the backward pass instead of stored.

    The forward pass keeps only the result; the backward pass runs `f` again
    (so `f` runs twice, as in Tracker.jl) and differentiates that run.
    """
    from tracker import api

    if not _any_tracked(args):
        return f(*args)
    args, kept = _snapshot(args)
    with _no_recording():
        y = f(*args)

    def pullback(dy: Any) -> tuple[Any, ...]:
        nested = _core.istracked(dy)
        # First order recomputes on the plain values (a fresh tape); nested, on the
        # tracked inputs, so the recomputation is differentiated again.
        inputs = args if nested else tuple(_core.data(a) for a in args)
        tracked = [x for x, a in zip(inputs, args) if _core.istracked(a)]
        with _recording():
            grads = iter(api._pullback_of(f, inputs, tracked, dy, nest=nested))
        return tuple(next(grads) if _core.istracked(a) else None for a in args)

    out = _record(getattr(f, "__name__", "checkpoint"), pullback, args, _core.data(y))
    del kept  # recorded: the rule's node now keeps the tape
    return out


def nobacksies(message: str, x: Any) -> Any:
    """`x`, marked so that any backward pass through it raises an error saying `message`.

    For values whose gradient is not defined (Tracker.jl's `nobacksies`).
    """
    if not _core.istracked(x):
        return x
    return _core.nobacksies(f"nested differentiation is not defined for {message}", x)


class _Recording:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self) -> None:
        self.previous = _core.set_grad_enabled(self.enabled)

    def __exit__(self, *exc: object) -> None:
        _core.set_grad_enabled(self.previous)


def _no_recording() -> _Recording:
    return _Recording(False)


def _recording() -> _Recording:
    return _Recording(True)
