"""`scipy.special` on tracked arrays: the ufuncs (which SciPy's own names dispatch to as
well) and homes for SciPy's Python functions (`logsumexp`, `softmax`, `log_softmax`,
`polygamma`, `zeta`).

The functions tracker computes itself (`native()`) work without SciPy; the others call
SciPy's ufunc on the values and raise `ModuleNotFoundError` without it. Their
derivatives are composed of these functions, so they differentiate to any order.

>>> import numpy as np, tracker as tr
>>> from tracker.scipy import special
>>> tr.gradient(lambda x: np.sum(special.erf(x)), np.array([0.0]))[0]
array([1.12837917])
"""

from typing import Any

import numpy as np

from tracker import _core
from tracker._core import data

__all__ = [
    "beta",
    "betaln",
    "digamma",
    "ellipe",
    "ellipk",
    "erf",
    "erfc",
    "erfcinv",
    "erfcx",
    "erfinv",
    "exp1",
    "expi",
    "expit",
    "gamma",
    "gammaln",
    "i0",
    "i0e",
    "i1",
    "i1e",
    "j0",
    "j1",
    "log_ndtr",
    "log_softmax",
    "logit",
    "logsumexp",
    "native",
    "ndtr",
    "polygamma",
    "psi",
    "softmax",
    "xlog1py",
    "xlogy",
    "y0",
    "y1",
    "zeta",
]


def native() -> dict[str, bool]:
    """Each special function, and whether tracker computes it itself (else SciPy does)."""
    # erf and expit are rows of the core's unary table (gelu and sigmoid use them).
    return {"erf": True, "expit": True, **dict(_core.special_functions())}


def _named(name: str, f: Any, arguments: str) -> Any:
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"`scipy.special.{name}({arguments})`, differentiable."
    return f


def _one(name: str) -> Any:
    return _named(name, lambda x: _core.special(name, x), "x")


def _unary(name: str, row: str) -> Any:
    """A function that is a row of the core's unary table (`erf`, `expit` as `sigmoid`)."""
    return _named(name, lambda x: _core.unary(row, x), "x")


def _two(name: str) -> Any:
    return _named(name, lambda x, y: _core.special(name, x, y), "x, y")


erf = _unary("erf", "erf")
erfc = _one("erfc")
erfinv = _one("erfinv")
erfcinv = _one("erfcinv")
erfcx = _one("erfcx")
gamma = _one("gamma")
gammaln = _one("gammaln")
digamma = psi = _one("digamma")
expit = _unary("expit", "sigmoid")
logit = _one("logit")
ndtr = _one("ndtr")
log_ndtr = _one("log_ndtr")
i0 = _one("i0")
i1 = _one("i1")
i0e = _one("i0e")
i1e = _one("i1e")
j0 = _one("j0")
j1 = _one("j1")
y0 = _one("y0")
y1 = _one("y1")
ellipk = _one("ellipk")
ellipe = _one("ellipe")
exp1 = _one("exp1")
expi = _one("expi")
xlogy = _two("xlogy")
xlog1py = _two("xlog1py")
beta = _two("beta")
betaln = _two("betaln")


def zeta(x: Any, q: Any = None) -> Any:
    """Hurwitz's `zeta(x, q)`, differentiable in `q` (no one offers a derivative in `x`).

    >>> float(zeta(2.0, 1.0))  # π²/6
    1.6449340668482264
    """
    if q is None:
        raise TypeError(
            "tracker.scipy.special.zeta(x) (Riemann's zeta) has no derivative with respect "
            "to x; pass q for Hurwitz's zeta(x, q), which differentiates in q"
        )
    return _core.special("zeta", x, q)


def polygamma(n: int, x: Any) -> Any:
    """`scipy.special.polygamma(n, x)` for an integer order `n >= 0` (0 is digamma).

    >>> float(polygamma(1, 1.0))  # π²/6
    1.6449340668482264
    """
    order = int(n)
    if order != n or order < 0:
        raise ValueError(f"polygamma: the order n must be a non-negative integer, got {n!r}")
    return _core.polygamma(order, x)


def _max_const(a: Any, axis: Any) -> Any:
    """The maximum along `axis` as a constant (kept dims), 0 where it is not finite."""
    m = np.max(data(a), axis=axis, keepdims=True)
    return np.where(np.isfinite(m), m, 0.0).astype(np.asarray(data(a)).dtype)


def logsumexp(
    a: Any, axis: Any = None, b: Any = None, keepdims: bool = False, return_sign: bool = False
) -> Any:
    """`scipy.special.logsumexp` on tracked arrays: `log(sum(b * exp(a)))` along `axis`,
    computed stably (shifted by the maximum, held constant).

    >>> float(logsumexp(np.array([0.0, 0.0])))  # log 2
    0.6931471805599453
    """
    if return_sign:
        raise NotImplementedError(
            "tracker.scipy.special.logsumexp: return_sign=True is not supported"
        )
    m = _max_const(a, axis)
    e = np.exp(a - m)
    if b is not None:
        e = e * b
    s = np.sum(e, axis=axis, keepdims=True)
    out = np.log(s) + m
    if not keepdims:
        out = np.squeeze(out, axis=axis) if axis is not None else np.reshape(out, ())
    return out


def softmax(x: Any, axis: Any = None) -> Any:
    """`scipy.special.softmax`: `exp(x) / sum(exp(x))` along `axis` (all of `x` by default).

    >>> softmax(np.array([0.0, 0.0]))
    array([0.5, 0.5])
    """
    e = np.exp(x - _max_const(x, axis))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x: Any, axis: Any = None) -> Any:
    """`scipy.special.log_softmax`: `x - logsumexp(x)` along `axis`.

    >>> log_softmax(np.array([0.0, 0.0]))
    array([-0.69314718, -0.69314718])
    """
    return x - logsumexp(x, axis=axis, keepdims=True)
