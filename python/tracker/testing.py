"""Finite-difference checks of gradients, for users' own functions and rules.

`ngradient` differentiates a function numerically; `gradcheck` compares it with
`tracker.gradient`, and `gradgradcheck` checks second derivatives the same way.
`gradtest` is Tracker.jl's test helper: `gradcheck` of `sum(sin(f(*xs)))`.
They take arguments as `tracker.gradient` does (arrays, floats and nested
structures of them) and work in float64.

>>> import numpy as np, tracker as tr
>>> from tracker.testing import gradcheck, ngradient
>>> ngradient(lambda x: np.sum(x**3), np.array([1.0, 2.0]))
(array([ 3., 12.]),)
>>> gradcheck(lambda x, w: np.sum(np.tanh(w @ x)), np.ones(3), np.eye(3))
True
"""

from collections.abc import Callable
from typing import Any

import numpy as np

from tracker import _core, params, tree

__all__ = ["gradcheck", "gradgradcheck", "gradtest", "ngradient"]

# The step of the fourth-order central difference below, relative to max(1, |x|):
# it balances the truncation error (h⁴) against rounding (eps / h).
_STEP = float(np.finfo(np.float64).eps) ** (1 / 5)


def _float64_arguments(args: tuple[Any, ...]) -> tuple[Any, list[Any], list[int]]:
    """`args` with every float leaf copied to float64, keeping tied leaves tied.

    Returns the treedef, the unique leaves (float64 arrays and NumPy float64
    scalars where differentiable, the leaf itself where not) and the position
    of each leaf among the unique ones.
    """
    leaves, treedef = tree.flatten(args)
    unique, positions = tree.dedup(leaves)
    converted: list[Any] = []
    for leaf in unique:
        if _core.istracked(leaf):
            raise TypeError(
                "finite differences need plain values: pass tr.data(x) instead of a tracked x"
            )
        if not tree.is_differentiable(leaf):
            converted.append(leaf)
        elif isinstance(leaf, np.ndarray):
            # C order, so that the reshape(-1) ngradient moves elements through is a view.
            converted.append(np.array(leaf, dtype=np.float64, order="C"))
        else:
            converted.append(np.float64(leaf))
    return treedef, converted, positions


def _differentiable(leaf: Any) -> bool:
    return isinstance(leaf, (np.ndarray, np.float64)) and leaf.dtype == np.float64


def _loss_value(value: Any) -> float:
    """The scalar loss `f` returned (the first element of a tuple, as `gradient` takes it)."""
    array = np.asarray(_core.data(params.loss_of(value)))
    if array.shape != ():
        raise ValueError(
            f"the function must return a scalar loss, got an array of shape {array.shape}"
        )
    return float(array)


def ngradient(f: Callable[..., Any], *args: Any, step: float | None = None) -> tuple[Any, ...]:
    """The gradients of scalar `f` at `args` by central finite differences, in float64.

    Float arguments (arrays, floats, and such leaves of nested structures) are
    copied to float64, and each element is moved by `h = step * max(1, |x|)`
    (`step` defaults to about 7e-4) in the fourth-order central stencil
    `(8(f(x+h) - f(x-h)) - (f(x+2h) - f(x-2h))) / 12h`. The result mirrors
    `tracker.gradient(f, *args)`: the same structure, `None` for leaves that are
    not differentiable, but float64 throughout. Costs `4 * size` calls of `f`;
    keep points more than `2h` away from kinks (`abs` at 0, ties in `max`).

    >>> import numpy as np
    >>> ngradient(lambda x, n: n * np.sum(x**2), np.array([1.0, 2.0]), 3)
    (array([ 6., 12.]), None)
    """
    treedef, unique, positions = _float64_arguments(args)
    trainable = tree.trainable_unique(args, positions, len(unique))
    relative = _STEP if step is None else step

    def call() -> float:
        return _loss_value(f(*tree.unflatten(treedef, [unique[p] for p in positions])))

    grads: list[Any] = []
    for i, leaf in enumerate(unique):
        if not (trainable[i] and _differentiable(leaf)):
            grads.append(None)
            continue
        # A scalar is replaced by each moved value; an array's elements are moved in place.
        buffer = np.array(leaf) if isinstance(leaf, np.float64) else leaf
        flat = buffer.reshape(-1)
        g = np.zeros(buffer.shape, dtype=np.float64)
        for k in range(flat.size):
            x = float(flat[k])
            h = relative * max(1.0, abs(x))
            values = []
            for offset in (h, -h, 2 * h, -2 * h):
                flat[k] = x + offset
                if buffer is not leaf:
                    unique[i] = np.float64(flat[k])
                values.append(call())
            flat[k] = x
            unique[i] = leaf
            g.flat[k] = (8 * (values[0] - values[1]) - (values[2] - values[3])) / (12 * h)
        grads.append(g if isinstance(leaf, np.ndarray) else np.float64(g))
    return tree.unflatten_gradient(treedef, [grads[p] for p in positions])


def gradcheck(
    f: Callable[..., Any],
    *args: Any,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    step: float | None = None,
    raise_exception: bool = True,
) -> bool:
    """Whether `tracker.gradient(f, *args)` matches `ngradient(f, *args)`.

    Both run on float64 copies of the arguments (tied arrays stay tied), and
    agree when `|analytic - numeric| <= atol + rtol * |numeric|` everywhere. On
    a mismatch this raises an `AssertionError` naming the argument, the element
    and both values, or returns `False` if `raise_exception=False`.

    >>> import numpy as np
    >>> gradcheck(lambda x: np.sum(np.sin(x) * x), np.array([0.5, 1.0, 2.0]))
    True
    """
    from tracker.api import gradient

    treedef, unique, positions = _float64_arguments(args)
    args64 = tree.unflatten(treedef, [unique[p] for p in positions])
    analytic, _ = tree.flatten(gradient(f, *args64))
    numeric, _ = tree.flatten(ngradient(f, *args64, step=step))
    for k, (a, n) in enumerate(zip(analytic, numeric)):
        if n is None:
            continue
        a = np.asarray(_core.data(a), dtype=np.float64)
        n = np.asarray(n)
        if a.shape != n.shape:
            problem = f"has shape {a.shape}, expected {n.shape}"
        else:
            excess = np.abs(a - n) - (atol + rtol * np.abs(n))
            excess = np.where(np.isfinite(excess), excess, np.inf)
            if not (excess > 0).any():
                continue
            worst = np.unravel_index(int(np.argmax(excess)), n.shape)
            index = tuple(int(i) for i in worst)
            problem = f"at index {index}: analytic {float(a[worst])!r}, numeric {float(n[worst])!r}"
        if not raise_exception:
            return False
        raise AssertionError(
            f"gradcheck: the gradient of differentiable leaf {k} of the arguments {problem} "
            f"(rtol={rtol}, atol={atol})"
        )
    return True


def gradgradcheck(
    f: Callable[..., Any],
    *args: Any,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    step: float | None = None,
    raise_exception: bool = True,
    seed: int = 0,
) -> bool:
    """Whether the second derivatives of scalar `f` at `args` are right.

    The gradient is projected on fixed random directions `w` (one per
    differentiable leaf, from `numpy.random.default_rng(seed)`):
    `g(*args) = sum_k <gradient(f, *args, nest=True)[k], w[k]>`, and `gradcheck`
    compares tracker's gradient of `g` (a Hessian-vector product, through a
    nested gradient) with finite differences of `g` (of tracker's first-order
    gradient). A wrong Hessian entry changes `H w` for almost every `w`, so one
    projection checks the whole Hessian. Arguments as `gradcheck` takes them;
    raises `AssertionError` on a mismatch, or returns `False` if
    `raise_exception=False`.

    >>> import numpy as np
    >>> gradgradcheck(lambda x: np.sum(np.sin(x) * x**2), np.array([0.5, 1.0, 2.0]))
    True
    """
    from tracker.api import gradient

    treedef, unique, positions = _float64_arguments(args)
    args64 = tree.unflatten(treedef, [unique[p] for p in positions])
    first, _ = tree.flatten(gradient(f, *args64))
    rng = np.random.default_rng(seed)
    directions = [
        None if g is None else rng.standard_normal(np.shape(_core.data(g))) for g in first
    ]

    def projected(*xs: Any) -> Any:
        grads, _ = tree.flatten(gradient(f, *xs, nest=True))
        total: Any = 0.0
        for g, w in zip(grads, directions):
            if g is not None:
                total = total + np.sum(g * w)
        return total

    try:
        return gradcheck(
            projected, *args64, rtol=rtol, atol=atol, step=step, raise_exception=raise_exception
        )
    except AssertionError as error:
        raise AssertionError(
            f"gradgradcheck: the second derivative along random directions (seed={seed}) is "
            f"wrong; {error}"
        ) from None


def _is_shape(x: Any) -> bool:
    return isinstance(x, tuple) and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in x
    )


def gradtest(
    f: Callable[..., Any],
    *xs: Any,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    step: float = 1e-6,
    raise_exception: bool = True,
    rng: np.random.Generator | int | None = None,
) -> bool:
    """Tracker.jl's `gradtest`: `gradcheck` of `sum(sin(f(*xs)))`, with `rtol = atol = 1e-5`.

    The sine makes the loss non-linear in every element of `f`'s output, so
    each output's gradient is checked, whatever its shape. Each `x` is an
    argument, or a shape (a tuple of ints: `(5,)`, `(2, 5)`) standing for a
    random float64 array of that shape, uniform in [0, 1) as Julia's
    `gradtest(f, dims...)` draws it, from `rng` (a Generator or a seed; seed 0
    by default, so a test sees the same inputs on every run). The relative
    finite-difference step is 1e-6 (Julia's is 1.5e-8): random inputs are then
    rarely within a step of a kink (a tie in `max`), and rounding stays far
    below the tolerance even for sums of a thousand outputs. Returns `True`;
    on a mismatch raises `AssertionError`, or returns `False` if
    `raise_exception=False`.

    >>> import numpy as np
    >>> gradtest(lambda x, w: np.tanh(w @ x), (3,), (2, 3))
    True
    """
    generator = np.random.default_rng(0 if rng is None else rng)
    args = tuple(generator.random(x) if _is_shape(x) else x for x in xs)
    try:
        return gradcheck(
            lambda *a: np.sum(np.sin(f(*a))),
            *args,
            rtol=rtol,
            atol=atol,
            step=step,
            raise_exception=raise_exception,
        )
    except AssertionError as error:
        raise AssertionError(
            f"gradtest: the gradient of sum(sin(f(*xs))) is wrong; {error}"
        ) from None
