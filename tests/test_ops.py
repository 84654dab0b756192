"""Every core op, gradient-checked to first and second order, in float32, and against PyTorch.

The table `CASES` is the whole op set at a glance: one row per op and variant,
each a function of `xp` (NumPy for tracker, a NumPy-named view of PyTorch for
the oracle) and its float64 inputs. Each row is reduced to a scalar by `loss`,
which is not linear in the op's output, so the second-order check also runs
every structural pullback backwards. Every row is checked:

- first order: `tr.gradient` against central differences of the loss (1e-7);
- second order: `tr.hessian` against central differences of `tr.gradient` (1e-6);
- in float32: float32 gradients and Hessians, close to the float64 ones;
- with `tr.param`/`tr.back`/`tr.grad`: the forward value is NumPy's, the gradient is
  `tr.gradient`'s;
- against PyTorch (where installed), to first and second order.

Kinks (PyTorch's conventions), `prod` at zeros, analytic Hessians, dtype promotion
and the coverage of the core's op list follow the table.
"""

import functools
import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import tracker as tr
import tracker.nn.functional as nnf
from conftest import check_gradient, check_hessian
from tracker.testing import gradcheck, ngradient

# NaN is never close to anything here, not even to NaN.
assert_close = functools.partial(np.testing.assert_allclose, equal_nan=False)

# -- inputs ------------------------------------------------------------------------------

rng = np.random.default_rng(20240521)


def normal(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def positive(*shape: int) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape)


def near_one(*shape: int) -> np.ndarray:
    """Factors for `prod`, so that products of 24 of them stay near 1."""
    return rng.uniform(0.6, 1.4, shape)


def nonzero(*shape: int) -> np.ndarray:
    """Values at least 0.3 away from the kink of `abs` at 0."""
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 2.0, shape)


def distinct(*shape: int) -> np.ndarray:
    """Values at least 0.25 apart, so that no `max`/`min` tie is within a finite-difference step."""
    n = math.prod(shape)
    values = (rng.permutation(n) - n / 2) * 0.3 + rng.uniform(0.0, 0.05, n)
    return values.reshape(shape)


def apart_from(a: np.ndarray) -> np.ndarray:
    """Values at least 0.3 away from `a`, elementwise (for `maximum`/`minimum`)."""
    return a + nonzero(*a.shape)


A, B = normal(3, 4), normal(3, 4)
P, Q = positive(3, 4), positive(3, 4)
D = distinct(3, 4)
X3 = normal(2, 3, 4)
P3 = near_one(2, 3, 4)
D3 = distinct(2, 3, 4)
COL, ROW = np.array([[0.1], [1.3], [-0.9]]), np.array([0.7, 1.9, -0.4, 0.35])  # pairs >= 0.25 apart
PCOL = positive(3, 1)
V, U = normal(4), normal(4)
M42 = normal(4, 2)
C34 = normal(3, 4)  # a constant operand
MASK = np.array([[True, False, True, True], [False, False, True, False], [True, True, False, True]])
ROWS = np.array([True, False, True])
COND = np.array([[True], [False], [True]])
UNIT = rng.uniform(-0.9, 0.9, (3, 4))  # the domain of arcsin, arccos, arctanh
TAN = rng.uniform(-1.2, 1.2, (3, 4))
ABOVE_ONE = rng.uniform(1.2, 3.0, (3, 4))
NEAR_BOUNDS = nonzero(3, 4) * 0.25 + 0.1  # both sides of clip's bounds, and between
STEPS = 3 * A  # away from the steps of floor, rint, ... (by far more than a difference step)


# -- the table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    op: str  # the core's op name, as the Rust tables spell it
    label: str
    fn: Callable[..., Any]  # fn(xp, *inputs)
    inputs: tuple[np.ndarray, ...]
    torch_fn: Callable[..., Any] | None = None  # where PyTorch needs other words

    @property
    def id(self) -> str:
        return f"{self.op}-{self.label}"


def case(op, label, fn, *inputs, torch=None):
    return Case(op, label, fn, tuple(np.asarray(x, dtype=np.float64) for x in inputs), torch)


# fmt: off
CASES = [
    # unary
    case("negative", "operator",     lambda xp, x: -x,                      A),
    case("negative", "np",           lambda xp, x: xp.negative(x),          A),
    case("exp",      "np",           lambda xp, x: xp.exp(x),               A),
    case("log",      "np",           lambda xp, x: xp.log(x),               P),
    case("sin",      "np",           lambda xp, x: xp.sin(x),               A),
    case("cos",      "np",           lambda xp, x: xp.cos(x),               A),
    case("tanh",     "np",           lambda xp, x: xp.tanh(x),              A),
    case("sqrt",     "np",           lambda xp, x: xp.sqrt(x),              P),
    case("absolute", "np.abs",       lambda xp, x: xp.abs(x),               nonzero(3, 4)),
    case("absolute", "np.absolute",  lambda xp, x: xp.absolute(x),          nonzero(3, 4)),
    case("absolute", "builtin",      lambda xp, x: abs(x),                  nonzero(3, 4)),
    case("absolute", "scalar",       lambda xp, x: abs(x[1]) * x[0],        nonzero(2)),
    *[
        case(op, "np", lambda xp, x, op=op: getattr(xp, op)(x), x)
        for op, x in [
            ("exp2", A), ("expm1", A), ("log2", P), ("log10", P), ("log1p", P), ("cbrt", P),
            ("reciprocal", P), ("tan", TAN), ("arcsin", UNIT), ("arccos", UNIT),
            ("arctan", A), ("sinh", A), ("cosh", A), ("arcsinh", A), ("arccosh", ABOVE_ONE),
            ("arctanh", UNIT), ("deg2rad", A), ("rad2deg", A), ("sinc", A), ("sign", STEPS),
            ("floor", STEPS), ("ceil", STEPS), ("rint", STEPS), ("trunc", STEPS),
        ]
    ],
    # the activation rows of tracker.nn.functional (and erf, scipy.special.erf's ufunc name)
    *[
        case(op, "nn", lambda xp, x, f=f: f(x), x,
             torch=lambda xp, x, t=t: t(xp.torch.nn.functional, xp.torch)(x))
        for op, f, t, x in [
            ("relu",       nnf.relu,       lambda F, torch: F.relu,       nonzero(3, 4)),
            ("sigmoid",    nnf.sigmoid,    lambda F, torch: F.sigmoid,    3 * A),
            ("logsigmoid", nnf.logsigmoid, lambda F, torch: F.logsigmoid, 3 * A),
            ("softplus",   nnf.softplus,   lambda F, torch: F.softplus,   3 * A),
            ("silu",       nnf.silu,       lambda F, torch: F.silu,       3 * A),
            ("gelu",       nnf.gelu,       lambda F, torch: F.gelu,       2 * A),
            ("gelu_tanh",  functools.partial(nnf.gelu, approximate="tanh"),
             lambda F, torch: functools.partial(F.gelu, approximate="tanh"), 2 * A),
            ("elu",        nnf.elu,        lambda F, torch: F.elu,        nonzero(3, 4)),
            ("selu",       nnf.selu,       lambda F, torch: F.selu,       nonzero(3, 4)),
            ("erf",        functools.partial(tr._core.unary, "erf"),
             lambda F, torch: torch.erf, A),
        ]
    ],
    case("absolute", "np.fabs",      lambda xp, x: xp.fabs(x),              nonzero(3, 4)),
    case("deg2rad",  "np.radians",   lambda xp, x: xp.radians(x),           A),
    case("rad2deg",  "np.degrees",   lambda xp, x: xp.degrees(x),           A),
    case("cbrt",     "negative",     lambda xp, x: xp.cbrt(x),              -P,
         torch=lambda xp, x: -((-x) ** (1 / 3))),
    case("square",   "np",           lambda xp, x: xp.square(x),            A),
    case("square",   "power-two",    lambda xp, x: x ** 2 + x ** 2.0,       A),
    case("rint",     "np.round",     lambda xp, x: xp.round(x) * x,         STEPS),
    case("rint",     "np.round-decimals", lambda xp, x: xp.round(x, 1) + x, STEPS,
         torch=lambda xp, x: xp.round(x, decimals=1) + x),
    # binary
    case("add",      "operator",     lambda xp, a, b: a + b,                A, B),
    case("add",      "np",           lambda xp, a, b: xp.add(a, b),         A, B),
    case("add",      "broadcast",    lambda xp, a, b: a + b,                COL, ROW),
    case("add",      "scalar",       lambda xp, a: 1.5 + a + 2,             A),
    case("add",      "constant",     lambda xp, a: xp.asarray(C34) + a,     A),
    case("add",      "same-operand", lambda xp, a: a + a,                   A),
    case("add",      "reals",        lambda xp, a: a[0] + a[1],             V),
    case("subtract", "operator",     lambda xp, a, b: a - b,                A, B),
    case("subtract", "np-broadcast", lambda xp, a, b: xp.subtract(a, b),    COL, ROW),
    case("subtract", "scalar",       lambda xp, a: 1.0 - a - 2.5,           A),
    case("subtract", "0d-broadcast", lambda xp, a, b: a - b,                normal(), V),
    case("multiply", "operator",     lambda xp, a, b: a * b,                A, B),
    case("multiply", "np",           lambda xp, a, b: xp.multiply(a, b),    A, B),
    case("multiply", "broadcast-3d", lambda xp, a, b: a * b,                X3, COL),
    case("multiply", "scalar",       lambda xp, a: 3.0 * a * 2,             A),
    case("multiply", "constant",     lambda xp, a: xp.asarray(C34) * a,     A),
    case("multiply", "same-operand", lambda xp, a: a * a,                   A),
    case("multiply", "reals",        lambda xp, a: a[0] * a[1] * a[2],      V),
    case("divide",   "operator",     lambda xp, a, b: a / b,                A, P),
    case("divide",   "np-broadcast", lambda xp, a, b: xp.divide(a, b),      ROW, PCOL),
    case("divide",   "scalar",       lambda xp, a, b: 2.0 / b + a / 4.0,    A, P),
    case("divide",   "constant",     lambda xp, b: xp.asarray(C34) / b,     P),
    case("power",    "int-exponent", lambda xp, a: a ** 3,                  A),
    case("square",   "negative",     lambda xp, a: a ** 2,                  -P),
    case("power",    "float-exp",    lambda xp, p: xp.power(p, 2.5),        P),
    case("power",    "negative-exp", lambda xp, p: p ** -1.5,               P),
    case("power",    "array-exp",    lambda xp, p, q: p ** q,               P, Q),
    case("power",    "np-broadcast", lambda xp, p, q: xp.power(p, q),       PCOL, normal(4)),
    case("power",    "scalar-base",  lambda xp, a: 2.0 ** a,                A),
    case("power",    "const-exp",    lambda xp, p: xp.power(p, xp.asarray(C34)), P),
    case("power",    "const-base",   lambda xp, a: xp.power(xp.asarray(P), a), A),
    case("maximum",  "np",           lambda xp, a, b: xp.maximum(a, b),     A, apart_from(A)),
    case("maximum",  "broadcast",    lambda xp, a, b: xp.maximum(a, b),     COL, ROW),
    case("maximum",  "scalar",       lambda xp, a: xp.maximum(a, 0.0),      nonzero(3, 4)),
    case("minimum",  "np",           lambda xp, a, b: xp.minimum(a, b),     A, apart_from(A)),
    case("minimum",  "broadcast",    lambda xp, a, b: xp.minimum(a, b),     ROW, COL),
    case("minimum",  "scalar",       lambda xp, a: xp.minimum(a, 0.0),      nonzero(3, 4)),
    case("power",    "np.float_power", lambda xp, p, q: xp.float_power(p, q), P, Q),
    case("fmax",     "np",           lambda xp, a, b: xp.fmax(a, b),        A, apart_from(A)),
    case("fmax",     "broadcast",    lambda xp, a, b: xp.fmax(a, b),        COL, ROW),
    case("fmin",     "np",           lambda xp, a, b: xp.fmin(a, b),        A, apart_from(A)),
    case("arctan2",  "np",           lambda xp, a, b: xp.arctan2(a, b),     A, B),
    case("arctan2",  "broadcast",    lambda xp, a, b: xp.arctan2(a, b),     COL, ROW),
    case("hypot",    "np",           lambda xp, a, b: xp.hypot(a, b),       A, B),
    case("logaddexp", "np",          lambda xp, a, b: xp.logaddexp(a, b),   A, B),
    case("logaddexp", "broadcast",   lambda xp, a, b: xp.logaddexp(a, b),   COL, ROW),
    case("logaddexp2", "np",         lambda xp, a, b: xp.logaddexp2(a, b),  A, B),
    case("remainder", "np",          lambda xp, a, b: xp.remainder(a, b),   STEPS, P),
    case("remainder", "operator",    lambda xp, a, b: a % b,                STEPS, -P),
    case("remainder", "scalar",      lambda xp, a: a % 0.7,                 STEPS),
    case("fmod",     "np",           lambda xp, a, b: xp.fmod(a, b),        STEPS, P),
    case("copysign", "np",           lambda xp, a, b: xp.copysign(a, b),    nonzero(3, 4), B),
    case("floor_divide", "operator", lambda xp, a, b: (a // b) * a,         STEPS, P,
         torch=lambda xp, a, b: xp.floor(a / b) * a),
    case("where",    "np.clip",      lambda xp, x: xp.clip(x, -0.5, 0.5),   NEAR_BOUNDS),
    case("where",    "np.clip-arrays", lambda xp, x, lo: xp.clip(x, lo, 1.0), A, A - nonzero(3, 4)),
    case("where",    "clip-method",  lambda xp, x: x.clip(-0.5, 0.5),       NEAR_BOUNDS,
         torch=lambda xp, x: xp.clip(x, -0.5, 0.5)),
    case("where",    "constant-cond", lambda xp, a, b: xp.where(xp.asarray(MASK), a, b), A, B),
    case("where",    "tracked-cond", lambda xp, a, b: xp.where(a > 0, a, b), nonzero(3, 4), B),
    case("where",    "broadcast",    lambda xp, a, b: xp.where(xp.asarray(COND), a, b), A, ROW),
    case("where",    "scalar-branch", lambda xp, a: xp.where(xp.asarray(MASK), a * a, 0.0), A),
    # reductions
    *[
        case(op, label, lambda xp, x, op=op, kw=kw: getattr(xp, op)(x, **kw), x)
        for op, x in [("sum", X3), ("mean", X3), ("prod", P3), ("max", D3), ("min", D3)]
        for label, kw in [
            ("all",            {}),
            ("axis0",          {"axis": 0}),
            ("axis-neg",       {"axis": -1}),
            ("axes-tuple",     {"axis": (0, 2)}),
            ("keepdims",       {"axis": 1, "keepdims": True}),
            ("all-keepdims",   {"axis": None, "keepdims": True}),
            ("tuple-keepdims", {"axis": (-1, 0), "keepdims": True}),
        ]
    ],
    *[
        case(op, "method", lambda xp, x, op=op: getattr(x, op)(axis=1),
             x, torch=lambda xp, x, op=op: getattr(xp, op)(x, axis=1))
        for op, x in [("sum", X3), ("mean", X3), ("prod", P3), ("max", D3), ("min", D3)]
    ],
    *[
        case(op, "method-all", lambda xp, x, op=op: getattr(x, op)(),
             x, torch=lambda xp, x, op=op: getattr(xp, op)(x))
        for op, x in [("sum", A), ("mean", A), ("prod", near_one(3, 4)), ("max", D), ("min", D)]
    ],
    case("cumsum",   "all",          lambda xp, x: xp.cumsum(x),            X3),
    case("cumsum",   "axis",         lambda xp, x: xp.cumsum(x, axis=1),    X3),
    case("cumsum",   "axis-neg",     lambda xp, x: xp.cumsum(x, axis=-1),   A),
    case("cumsum",   "add.accumulate", lambda xp, x: np.add.accumulate(x),  A,
         torch=lambda xp, x: xp.cumsum(x, axis=0)),
    case("cumprod",  "all",          lambda xp, x: xp.cumprod(x),           near_one(2, 3, 4)),
    case("cumprod",  "axis",         lambda xp, x: xp.cumprod(x, axis=2),   near_one(2, 3, 5)),
    case("cumprod",  "multiply.accumulate", lambda xp, x: np.multiply.accumulate(x, axis=1), A,
         torch=lambda xp, x: xp.cumprod(x, axis=1)),
    case("multiply", "outer",        lambda xp, a, b: np.multiply.outer(a, b), V, A,
         torch=lambda xp, a, b: a.reshape(4, 1, 1) * b),
    case("subtract", "outer",        lambda xp, a, b: np.subtract.outer(a, b), V, U,
         torch=lambda xp, a, b: a.reshape(4, 1) - b),
    case("prod",     "odd-length",   lambda xp, x: xp.prod(x, axis=1),      near_one(2, 7)),
    case("sum",      "add.reduce",   lambda xp, x: np.add.reduce(x, 1),     A,
         torch=lambda xp, x: xp.sum(x, axis=1)),
    case("prod",     "multiply.reduce", lambda xp, x: np.multiply.reduce(x), P,
         torch=lambda xp, x: xp.prod(x, axis=0)),
    case("max",      "maximum.reduce", lambda xp, x: np.maximum.reduce(x, 1), D,
         torch=lambda xp, x: xp.max(x, axis=1)),
    # linear algebra
    case("matmul",   "2d@2d",        lambda xp, a, b: a @ b,                A, M42),
    case("matmul",   "np.matmul",    lambda xp, a, b: xp.matmul(a, b),      A, M42),
    case("matmul",   "1d@2d",        lambda xp, v, b: v @ b,                V, M42),
    case("matmul",   "2d@1d",        lambda xp, a, v: a @ v,                A, V),
    case("matmul",   "1d@1d",        lambda xp, v, u: v @ u,                V, U),
    case("matmul",   "constant@",    lambda xp, b: xp.asarray(C34) @ b,     M42),
    case("matmul",   "@constant",    lambda xp, a: a @ xp.asarray(M42),     A),
    case("matmul",   "np.dot-2d",    lambda xp, a, b: xp.dot(a, b),         A, M42),
    case("matmul",   "np.dot-1d",    lambda xp, v, u: xp.dot(v, u),         V, U),
    case("matmul",   "np.dot-2d-1d", lambda xp, a, v: xp.dot(a, v),         A, V),
    case("matmul",   "method-dot",   lambda xp, a, b: a.dot(b),             A, M42,
         torch=lambda xp, a, b: xp.dot(a, b)),
    # shapes
    case("transpose", ".T",          lambda xp, x: x.T,                     A),
    case("transpose", "np",          lambda xp, x: xp.transpose(x),         X3),
    case("transpose", "np-axes",     lambda xp, x: xp.transpose(x, (1, 2, 0)), X3),
    case("transpose", "np-neg-axes", lambda xp, x: xp.transpose(x, (-1, 0, 1)), X3),
    case("transpose", "method",      lambda xp, x: x.transpose(2, 0, 1),    X3,
         torch=lambda xp, x: xp.transpose(x, (2, 0, 1))),
    case("transpose", "matmul",      lambda xp, a, b: a.T @ b,              A, B),
    case("reshape",  "method",       lambda xp, x: x.reshape(6, 2),         A),
    case("reshape",  "tuple",        lambda xp, x: x.reshape((4, 3)),       A),
    case("reshape",  "flatten",      lambda xp, x: x.reshape(-1),           X3),
    case("reshape",  "np-infer",     lambda xp, x: xp.reshape(x, (2, -1, 2)), A),
    case("reshape",  "to-0d",        lambda xp, x: x.reshape(()),           normal(1)),
    case("reshape",  "then-reduce",  lambda xp, x: xp.sum(x.reshape(4, 6), axis=0), X3),
    # indexing
    case("getitem",  "int",          lambda xp, x: x[1],                    A),
    case("getitem",  "int-neg",      lambda xp, x: x[-1],                   A),
    case("getitem",  "int-pair",     lambda xp, x: x[1, 2],                 A),
    case("getitem",  "slice",        lambda xp, x: x[1:],                   A),
    case("getitem",  "slice-2d",     lambda xp, x: x[:, 1:3],               A),
    case("getitem",  "slice-step",   lambda xp, x: x[::2, 1::2],            A),
    case("getitem",  "reverse",      lambda xp, x: x[::-1],                 A,
         torch=lambda xp, x: x.flip(0)),
    case("getitem",  "neg-step",     lambda xp, x: x[:, ::-2],              A,
         torch=lambda xp, x: x.flip(1)[:, ::2]),
    case("getitem",  "neg-step-bounds", lambda xp, x: x[2:0:-1, -1:-4:-1],  A,
         torch=lambda xp, x: x[1:3].flip(0)[:, 1:].flip(1)),
    case("getitem",  "none",         lambda xp, x: x[None],                 A),
    case("getitem",  "none-middle",  lambda xp, x: x[:, None, 1:],          A),
    case("getitem",  "ellipsis",     lambda xp, x: x[..., 1],               X3),
    case("getitem",  "ellipsis-none", lambda xp, x: x[1, ..., None],        X3),
    case("getitem",  "int-array",    lambda xp, x: x[np.array([0, 2, 2, 0, 2])], A),
    case("getitem",  "list-repeats", lambda xp, x: x[[1, 1, 1]],            A),
    case("getitem",  "array-2d",     lambda xp, x: x[np.array([[0, 1], [2, 2]])], A),
    case("getitem",  "array-neg",    lambda xp, x: x[np.array([-1, 0, -1])], V),
    case("getitem",  "bool-mask",    lambda xp, x: x[MASK],                 A),
    case("getitem",  "bool-rows",    lambda xp, x: x[ROWS],                 A),
    case("getitem",  "mask-compare", lambda xp, x: x[x > 0],                nonzero(3, 4)),
    case("getitem",  "slice-array",  lambda xp, x: x[1:, [0, 2, 0]],        A),
    case("getitem",  "array-slice",  lambda xp, x: x[[2, 0], 1:],           A),
    case("getitem",  "two-arrays",   lambda xp, x: x[[0, 1, 1], [2, 2, 3]], A),
    case("getitem",  "int-array-mix", lambda xp, x: x[-1, [0, 1, 1]],       A),
    case("getitem",  "separated",    lambda xp, x: x[[0, 1], :, [1, 1]],    X3),
    case("getitem",  "none-array",   lambda xp, x: x[None, [0, 2]],         A),
    case("getitem",  "mask-slice",   lambda xp, x: x[ROWS, 1:],             A),
    case("getitem",  "mask-array",   lambda xp, x: x[ROWS, [0, 2]],         A),
    case("getitem",  "array-int-slice", lambda xp, x: x[[1, 0], 1, 1:],     X3),
    case("getitem",  "slice-array-reverse", lambda xp, x: x[:, [2, 0, 2], ::-1], X3,
         torch=lambda xp, x: x[:, [2, 0, 2]].flip(2)),
    case("getitem",  "empty-list",   lambda xp, x: x[[]],                   A),
    case("getitem",  "scalar-loop",  lambda xp, x: sum(x[i] * x[i - 1] for i in range(4)), V),
]
# fmt: on


# -- evaluating a case --------------------------------------------------------------------


@functools.cache
def weights(shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
    """Fixed weights for an output of `shape` (the same for tracker and PyTorch)."""
    w = np.random.default_rng([len(shape), *shape]).uniform(0.5, 1.5, shape).astype(dtype)
    w.flags.writeable = False
    return w


def loss(y: Any) -> Any:
    """A scalar of the op's output `y`, with a Hessian that reaches every output: sum(w·y + y²)."""
    w = weights(tuple(y.shape), y.dtype.type)
    return np.sum(w * y + y * y)


def torch_loss(torch: Any, y: Any) -> Any:
    w = torch.tensor(weights(tuple(y.shape)), dtype=y.dtype)
    return torch.sum(w * y + y * y)


def scalar_loss(c: Case) -> Callable[..., Any]:
    return lambda *xs: loss(c.fn(np, *xs))


def pack(inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    return np.concatenate([x.reshape(-1) for x in inputs])


def unpack(z: Any, shapes: list[tuple[int, ...]]) -> list[Any]:
    """The inputs as pieces of one vector `z`, so that one Hessian covers all of them."""
    parts, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        parts.append(z[start : start + size].reshape(shape))
        start += size
    return parts


def packed_loss(c: Case) -> Callable[[Any], Any]:
    shapes = [x.shape for x in c.inputs]
    return lambda z: loss(c.fn(np, *unpack(z, shapes)))


# Every row is checked to both orders; the names say which check a table feeds.
FIRST_ORDER = SECOND_ORDER = CASES


@pytest.mark.parametrize("c", FIRST_ORDER, ids=lambda c: c.id)
def test_first_order(c: Case) -> None:
    check_gradient(scalar_loss(c), *c.inputs)


@pytest.mark.parametrize("c", SECOND_ORDER, ids=lambda c: c.id)
def test_second_order(c: Case) -> None:
    check_hessian(packed_loss(c), pack(c.inputs))


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_float32(c: Case) -> None:
    inputs32 = tuple(x.astype(np.float32) for x in c.inputs)
    # The result's dtype is NumPy's (float32, or float64 next to a float64 constant).
    y = c.fn(np, *(tr.param(x) for x in inputs32))
    assert y.dtype == np.result_type(c.fn(np, *inputs32))
    grads32 = tr.gradient(scalar_loss(c), *inputs32)
    grads64 = tr.gradient(scalar_loss(c), *c.inputs)
    for g32, g64 in zip(grads32, grads64, strict=True):
        assert g32.dtype == np.float32
        assert g32.shape == g64.shape
        assert_close(g32, g64, rtol=1e-3, atol=1e-4 * (1 + np.abs(g64).max()))
    hessian32 = tr.hessian(packed_loss(c), pack(inputs32))
    hessian64 = tr.hessian(packed_loss(c), pack(c.inputs))
    assert hessian32.dtype == np.float32
    assert_close(hessian32, hessian64, rtol=1e-3, atol=1e-4 * (1 + np.abs(hessian64).max()))


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_param_back_grad(c: Case) -> None:
    params = [tr.param(x) for x in c.inputs]
    y = c.fn(np, *params)
    expected = c.fn(np, *c.inputs)
    assert tr.istracked(y)
    assert y.shape == np.shape(expected)
    assert y.dtype == np.float64
    assert_close(tr.data(y), expected, rtol=1e-14, atol=1e-14)
    tr.back(loss(y))
    for p, g in zip(params, tr.gradient(scalar_loss(c), *c.inputs), strict=True):
        assert_close(tr.grad(p), g, rtol=1e-13, atol=1e-14)


# -- PyTorch, the second oracle -------------------------------------------------------------


class TorchNumPy:
    """The NumPy names the cases use, on PyTorch tensors."""

    _ELEMENTWISE: ClassVar[dict[str, str]] = {
        "negative": "negative", "exp": "exp", "log": "log", "sin": "sin", "cos": "cos",
        "tanh": "tanh", "sqrt": "sqrt", "abs": "abs", "absolute": "abs", "add": "add",
        "subtract": "subtract", "multiply": "multiply", "divide": "divide", "power": "pow",
        "maximum": "maximum", "minimum": "minimum", "matmul": "matmul",
        "exp2": "exp2", "expm1": "expm1", "log2": "log2", "log10": "log10", "log1p": "log1p",
        "reciprocal": "reciprocal", "tan": "tan", "arcsin": "arcsin", "arccos": "arccos",
        "arctan": "arctan", "sinh": "sinh", "cosh": "cosh", "arcsinh": "arcsinh",
        "arccosh": "arccosh", "arctanh": "arctanh", "deg2rad": "deg2rad", "rad2deg": "rad2deg",
        "radians": "deg2rad", "degrees": "rad2deg", "sinc": "sinc", "sign": "sign",
        "floor": "floor", "ceil": "ceil", "rint": "round", "trunc": "trunc", "fabs": "abs",
        "square": "square", "float_power": "float_power", "fmax": "fmax", "fmin": "fmin",
        "arctan2": "atan2", "hypot": "hypot", "logaddexp": "logaddexp",
        "logaddexp2": "logaddexp2", "remainder": "remainder", "fmod": "fmod",
        "copysign": "copysign",
    }  # fmt: skip

    def __init__(self, torch: Any) -> None:
        self.torch = torch

    def __getattr__(self, name: str) -> Any:
        op = getattr(self.torch, self._ELEMENTWISE[name])
        return lambda *args: op(*(self._tensor(a, args[0]) for a in args))

    def _tensor(self, a: Any, like: Any) -> Any:
        if isinstance(a, self.torch.Tensor):
            return a
        return self.torch.as_tensor(np.asarray(a), dtype=getattr(like, "dtype", None))

    def asarray(self, a: np.ndarray) -> Any:
        return self.torch.as_tensor(a)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        like = a if isinstance(a, self.torch.Tensor) else b
        return self.torch.where(self._tensor(cond, None), a, self._tensor(b, like))

    def _reduce(self, name: str, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        dims = tuple(range(x.ndim)) if axis is None else axis
        dims = (dims,) if isinstance(dims, int) else tuple(d % x.ndim for d in dims)
        if name == "prod":  # torch.prod takes one dim at a time
            for d in dims:
                x = self.torch.prod(x, dim=d, keepdim=True)
            return x if keepdims else x.squeeze(dims)
        return getattr(self.torch, name)(x, dim=dims, keepdim=keepdims)

    def sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("sum", x, axis, keepdims)

    def mean(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("mean", x, axis, keepdims)

    def prod(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("prod", x, axis, keepdims)

    def max(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("amax", x, axis, keepdims)

    def min(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("amin", x, axis, keepdims)

    def cbrt(self, x: Any) -> Any:
        return x ** (1 / 3)

    def round(self, x: Any, decimals: int = 0) -> Any:
        return self.torch.round(x, decimals=decimals)

    def clip(self, x: Any, low: Any, high: Any) -> Any:
        return self.torch.clamp(x, self._tensor(low, x), self._tensor(high, x))

    def cumsum(self, x: Any, axis: int | None = None) -> Any:
        return self.torch.cumsum(x.reshape(-1) if axis is None else x, dim=axis or 0)

    def cumprod(self, x: Any, axis: int | None = None) -> Any:
        return self.torch.cumprod(x.reshape(-1) if axis is None else x, dim=axis or 0)

    def dot(self, a: Any, b: Any) -> Any:
        return self.torch.dot(a, b) if a.ndim == b.ndim == 1 else self.torch.matmul(a, b)

    def transpose(self, x: Any, axes: Any = None) -> Any:
        return x.permute(*(reversed(range(x.ndim)) if axes is None else axes))

    def reshape(self, x: Any, shape: Any) -> Any:
        return x.reshape(shape)


def torch_gradient(torch: Any, f: Callable[..., Any], *inputs: np.ndarray) -> list[np.ndarray]:
    tensors = [torch.tensor(x, requires_grad=True) for x in inputs]
    grads = torch.autograd.grad(f(*tensors), tensors, allow_unused=True)
    return [np.zeros_like(x) if g is None else g.numpy() for x, g in zip(inputs, grads)]


def torch_hessian(torch: Any, f: Callable[[Any], Any], z: np.ndarray) -> np.ndarray:
    return torch.autograd.functional.hessian(f, torch.tensor(z)).numpy()


def torch_case_loss(torch: Any, c: Case) -> Callable[..., Any]:
    fn, xp = c.torch_fn or c.fn, TorchNumPy(torch)
    return lambda *xs: torch_loss(torch, fn(xp, *xs))


def check_against_torch(torch: Any, c: Case, rtol: float, torch_nan: bool = False) -> None:
    """The gradient and the Hessian of the case's loss, from tracker and from PyTorch.

    With `torch_nan`, PyTorch's Hessian may hold NaN (its masked rules leak 0·inf into
    second derivatives) where tracker's is finite; the finite entries must agree, and a
    separate test checks tracker's against the analytic limit.
    """
    f = torch_case_loss(torch, c)
    expected = torch_gradient(torch, f, *c.inputs)
    for g, e in zip(tr.gradient(scalar_loss(c), *c.inputs), expected, strict=True):
        assert_close(g, e, rtol=rtol, atol=rtol / 100)
    shapes = [x.shape for x in c.inputs]
    expected = torch_hessian(torch, lambda z: f(*unpack(z, shapes)), pack(c.inputs))
    hessian = tr.hessian(packed_loss(c), pack(c.inputs))
    if torch_nan:
        assert np.isfinite(hessian).all(), hessian
        finite = np.isfinite(expected)
        hessian, expected = hessian[finite], expected[finite]
    assert_close(hessian, expected, rtol=rtol, atol=rtol / 100)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_torch(c: Case, torch: Any) -> None:
    check_against_torch(torch, c, rtol=1e-10)


# -- kinks: PyTorch's conventions ------------------------------------------------------------

NAN = np.nan
SELU_SCALE, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772
# (case, the gradient of sum(y) with respect to each input)
# fmt: off
KINKS = [
    (case("absolute", "at-zero",       lambda xp, x: xp.abs(x),            [-1.5, 0.0, 2.0]),
     [[-1.0, 0.0, 1.0]]),
    (case("maximum",  "ties",          lambda xp, a, b: xp.maximum(a, b),  [1, 2, 3], [1, 0, 3]),
     [[0.5, 1, 0.5], [0.5, 0, 0.5]]),
    (case("maximum",  "same-operand",  lambda xp, a: xp.maximum(a, a),     [1, -2, 3]),
     [[1.0, 1.0, 1.0]]),
    (case("maximum",  "scalar-tie",    lambda xp, a: xp.maximum(a, 0.0),   [-1, 0, 2]),
     [[0.0, 0.5, 1.0]]),
    (case("maximum",  "broadcast-ties", lambda xp, a, b: xp.maximum(a, b), [[1], [2]], [1, 2, 0]),
     [[[1.5], [2.5]], [0.5, 1.5, 0.0]]),
    (case("minimum",  "ties",          lambda xp, a, b: xp.minimum(a, b),  [1, 2, 3], [1, 0, 3]),
     [[0.5, 0, 0.5], [0.5, 1, 0.5]]),
    (case("minimum",  "scalar-tie",    lambda xp, a: xp.minimum(a, 0.0),   [-1, 0, 2]),
     [[1.0, 0.5, 0.0]]),
    (case("max",      "ties",          lambda xp, x: xp.max(x),            [1, 3, 3]),
     [[0, 0.5, 0.5]]),
    (case("max",      "all-equal",     lambda xp, x: xp.max(x),            [2, 2, 2, 2]),
     [[0.25, 0.25, 0.25, 0.25]]),
    (case("max",      "axis-ties",     lambda xp, x: xp.max(x, axis=1),    [[1, 3, 3], [5, 4, 5]]),
     [[[0, 0.5, 0.5], [0.5, 0, 0.5]]]),
    (case("max",      "axis0-keepdims", lambda xp, x: xp.max(x, axis=0, keepdims=True),
          [[1, 3, 2], [1, 0, 2], [1, 3, 0]]),
     [[[1 / 3, 0.5, 0.5], [1 / 3, 0, 0.5], [1 / 3, 0.5, 0]]]),
    (case("min",      "ties",          lambda xp, x: xp.min(x),            [2, 1, 1]),
     [[0, 0.5, 0.5]]),
    (case("min",      "axis-ties",     lambda xp, x: xp.min(x, axis=-1),   [[1, 3, 1], [0, 4, 5]]),
     [[[0.5, 0, 0.5], [1, 0, 0]]]),
    (case("power",    "x**0-at-zero",  lambda xp, x: x ** 0.0,             [0, 1]),
     [[0, 0]]),
    (case("power",    "x**1-at-zero",  lambda xp, x: x ** 1.0,             [0, 2]),
     [[1, 1]]),
    (case("power",    "polynomial-at-zero", lambda xp, x: sum(x ** k for k in range(4)), [0, 1]),
     [[1, 6]]),
    (case("power",    "zero-base",     lambda xp, a, b: a ** b,            [0, 1], [2, 3]),
     [[0, 3], [0, 0]]),
    (case("where",    "clip-bounds",   lambda xp, x: xp.clip(x, -0.5, 0.5), [-1, -0.5, 0, 0.5, 1]),
     [[0, 1, 1, 1, 0]]),
    (case("fmax",     "ties",          lambda xp, a, b: xp.fmax(a, b),     [1, 2], [1, 0]),
     [[0.5, 1], [0.5, 0]]),
    (case("fmax",     "nan",           lambda xp, a, b: xp.fmax(a, b),     [1, NAN], [NAN, 2]),
     [[1, 0], [0, 1]]),
    (case("fmin",     "ties-and-nan",  lambda xp, a, b: xp.fmin(a, b),     [1, NAN, 3], [1, 2, 4]),
     [[0.5, 0, 1], [0.5, 1, 0]]),
    (case("copysign", "at-zero",       lambda xp, a, b: xp.copysign(a, b), [0, 2], [-1, -1]),
     [[0, -1], [0, 0]]),
    (case("sinc",     "at-zero",       lambda xp, x: xp.sinc(x),           [0, 0.5]),
     [[0, -4 / np.pi]]),
    (case("sign",     "at-zero",       lambda xp, x: xp.sign(x),           [-1, 0, 2]),
     [[0, 0, 0]]),
    (case("relu",     "at-zero",       lambda xp, x: nnf.relu(x),          [-1, 0, 2],
          torch=lambda xp, x: xp.torch.relu(x)),
     [[0, 0, 1]]),
    (case("elu",      "at-zero",       lambda xp, x: nnf.elu(x),           [-1, 0, 2],
          torch=lambda xp, x: xp.torch.nn.functional.elu(x)),
     [[np.exp(-1), 1, 1]]),
    (case("selu",     "at-zero",       lambda xp, x: nnf.selu(x),          [-1, 0, 2],
          torch=lambda xp, x: xp.torch.selu(x)),
     [[SELU_SCALE * SELU_ALPHA * np.exp(-1), SELU_SCALE * SELU_ALPHA, SELU_SCALE]]),
    (case("cumprod",  "zeros",         lambda xp, x: xp.cumprod(x),        [2, 0, 3, 0.5]),
     [[1, 11, 0, 0]]),
    (case("cumprod",  "two-zeros",     lambda xp, x: xp.cumprod(x),        [0, 2, 0, 3]),
     [[3, 0, 0, 0]]),
    (case("prod",     "one-zero",      lambda xp, x: xp.prod(x),           [2, 0, 3, 4]),
     [[0, 24, 0, 0]]),
    (case("prod",     "two-zeros",     lambda xp, x: xp.prod(x),           [2, 0, 3, 0]),
     [[0, 0, 0, 0]]),
    (case("prod",     "axis-zeros",    lambda xp, x: xp.prod(x, axis=1),
          [[2, 0, 3], [0, 0, 5], [1, 2, 3]]),
     [[[0, 6, 0], [0, 0, 0], [6, 3, 2]]]),
]
# fmt: on


@pytest.mark.parametrize(("c", "expected"), KINKS, ids=[c.id for c, _ in KINKS])
def test_kink_gradient(c: Case, expected: list[Any]) -> None:
    grads = tr.gradient(lambda *xs: np.sum(c.fn(np, *xs)), *c.inputs)
    for g, e in zip(grads, expected, strict=True):
        assert_close(g, np.asarray(e, dtype=np.float64), rtol=1e-15, atol=0)


# Kinks where PyTorch's Hessian holds NaN (0·inf in its masked rules) and tracker's is finite.
TORCH_NAN_HESSIAN = {"power-zero-base", "copysign-at-zero", "sinc-at-zero"}
# Kinks where tracker keeps a convention this PyTorch no longer has.
TORCH_DIFFERS = {
    "where-clip-bounds": "clip passes the gradient at its bounds (DESIGN.md); PyTorch 2 gives "
    "0 there with number bounds and half with tensor bounds",
    "elu-at-zero": "the first derivative agrees (alpha); tracker's second derivative at 0 is "
    "the negative branch's, as its first, where PyTorch's is 0",
}
TORCH_DIFFERS["selu-at-zero"] = TORCH_DIFFERS["elu-at-zero"]


@pytest.mark.parametrize(("c", "expected"), KINKS, ids=[c.id for c, _ in KINKS])
def test_kink_torch(c: Case, expected: list[Any], torch: Any) -> None:
    if c.id in TORCH_DIFFERS:
        pytest.skip(TORCH_DIFFERS[c.id])
    check_against_torch(torch, c, rtol=1e-12, torch_nan=c.id in TORCH_NAN_HESSIAN)


def test_power_hessian_at_a_zero_base_is_the_limit() -> None:
    # y = a**b at a = (0, 1), b = (2, 3). At a = 0: d2y/da2 = b(b-1)a**(b-2) = 2, and the
    # entries with d/db are limits of a**(b-1)(1 + b ln a) and a**b ln(a)**2, both 0.
    # At a = 1: d2y/da2 = 6, d2y/dadb = 1, d2y/db2 = 0.
    hessian = tr.hessian(lambda z: np.sum(z[:2] ** z[2:]), np.array([0.0, 1.0, 2.0, 3.0]))
    expected = np.zeros((4, 4))
    expected[0, 0], expected[1, 1] = 2.0, 6.0
    expected[1, 3] = expected[3, 1] = 1.0
    assert_close(hessian, expected, rtol=1e-15, atol=0)


# -- analytic Hessians ------------------------------------------------------------------------

W = normal(3, 4)
XV = normal(4)


def test_hessian_tanh_layer_wrt_x() -> None:
    t = np.tanh(W @ XV)
    expected = W.T @ np.diag(-2 * t * (1 - t * t)) @ W
    hessian = tr.hessian(lambda x: np.sum(np.tanh(W @ x)), XV)
    assert_close(hessian, expected, rtol=1e-10, atol=1e-12)


def test_hessian_tanh_layer_wrt_weights() -> None:
    t = np.tanh(W @ XV)
    # d²/dW_ij dW_kl = δ_ik tanh''(z_i) x_j x_l, with W flattened row by row.
    expected = np.kron(np.diag(-2 * t * (1 - t * t)), np.outer(XV, XV))
    hessian = tr.hessian(lambda w: np.sum(np.tanh(w.reshape(3, 4) @ XV)), W.reshape(-1))
    assert_close(hessian, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("p", [0.0, 1.0, 2.0, 3.0, 2.5])
def test_power_at_zero_to_second_order(p: float) -> None:
    """x**p at x = 0: p·x^(p-1) and p(p-1)·x^(p-2), with 0·x^(-1) = 0 (as PyTorch, and the
    limit): the polynomials `sum(c_k x**k)` must stay finite at 0."""
    x = np.array([0.0, 1.5])
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.where(p == 0, 0.0, p * x ** (p - 1))
        second = np.where(p * (p - 1) == 0, 0.0, p * (p - 1) * x ** (p - 2))
    assert_close(tr.gradient(lambda x: np.sum(x**p), x)[0], first, rtol=1e-15)
    assert_close(tr.hessian(lambda x: np.sum(x**p), x), np.diag(second), rtol=1e-15)


def prod_hessian(x: np.ndarray) -> np.ndarray:
    """d²prod/dxᵢdxⱼ: the product of the other elements off the diagonal, 0 on it."""
    n = x.size
    return np.array(
        [[0.0 if i == j else np.prod(np.delete(x, [i, j])) for j in range(n)] for i in range(n)]
    )


@pytest.mark.parametrize(
    "x",
    [
        [2.0, 0.5, 3.0, 4.0],
        [2.0, 0.0, 3.0, 4.0],
        [0.0, 2.0, 3.0, 4.0, 5.0],
        [2.0, 0.0, 3.0, 0.0],
        [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0],
        [0.0, 0.0, 0.0],
        [3.0],
    ],
    ids=["no-zero", "one-zero", "zero-first-odd", "two-zeros", "two-zeros-ends", "all-zero", "one"],
)
def test_prod_at_zeros(x: list[float]) -> None:
    """Tracker.jl's #120 and #148: prod's gradient and Hessian where elements are zero."""
    x = np.asarray(x)
    others = [np.prod(np.delete(x, i)) for i in range(x.size)]
    np.testing.assert_array_equal(tr.gradient(np.prod, x)[0], others)
    np.testing.assert_array_equal(tr.hessian(np.prod, x), prod_hessian(x))


def test_prod_hessian_along_axis_at_zeros() -> None:
    x = np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 5.0], [1.0, 2.0, 3.0]])
    expected = np.zeros((9, 9))
    for i, row in enumerate(x):
        expected[3 * i : 3 * i + 3, 3 * i : 3 * i + 3] = prod_hessian(row)
    hessian = tr.hessian(lambda z: np.sum(np.prod(z.reshape(3, 3), axis=1)), x.reshape(-1))
    np.testing.assert_array_equal(hessian, expected)


# -- parameters: back accumulates, zero_grad resets ------------------------------------------


def test_back_accumulates_and_zero_grad_resets() -> None:
    x = tr.param([1.0, 2.0, 3.0])
    tr.back(np.sum(x**2))
    np.testing.assert_array_equal(tr.grad(x), [2.0, 4.0, 6.0])
    tr.back(np.sum(3.0 * x))
    np.testing.assert_array_equal(tr.grad(x), [5.0, 7.0, 9.0])
    tr.zero_grad(x)
    np.testing.assert_array_equal(tr.grad(x), [0.0, 0.0, 0.0])
    (x[0] * x[2]).back()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 1.0])


def test_back_with_seed_and_shared_parameter() -> None:
    w = tr.param(np.array([[1.0, 2.0], [3.0, 4.0]]))
    v = tr.param(np.array([1.0, -1.0]))
    y = w @ v + w[:, 0] * 2.0  # w reached twice
    tr.back(y, dy=np.array([1.0, 10.0]))
    np.testing.assert_array_equal(tr.grad(w), [[3.0, -1.0], [30.0, -10.0]])
    np.testing.assert_array_equal(tr.grad(v), [31.0, 42.0])


def test_back_float32_parameter_keeps_its_dtype() -> None:
    x = tr.param(np.array([1.0, 2.0], dtype=np.float32))
    tr.back(np.sum(np.exp(x) * np.array([1.0, 2.0])))  # float64 loss
    assert tr.grad(x).dtype == np.float32
    assert_close(tr.grad(x), np.exp([1.0, 2.0]) * [1.0, 2.0], rtol=1e-6)


# -- dtypes: NumPy's promotion (NEP 50) ------------------------------------------------------

X32 = np.array([0.5, -1.0, 2.0], dtype=np.float32)
C64 = np.array([1.0, 2.0, -3.0])


@pytest.mark.parametrize(
    ("label", "fn", "dtype"),
    [
        ("f32 * 2.0", lambda x: x * 2.0, np.float32),
        ("2.0 * f32", lambda x: 2.0 * x, np.float32),
        ("f32 + 1", lambda x: x + 1, np.float32),
        ("1.0 - f32", lambda x: 1.0 - x, np.float32),
        ("f32 / 3.0", lambda x: x / 3.0, np.float32),
        ("f32 ** 2.0", lambda x: x**2.0, np.float32),
        ("2.0 ** f32", lambda x: 2.0**x, np.float32),
        ("maximum(f32, 0.0)", lambda x: np.maximum(x, 0.0), np.float32),
        ("where(c, f32, 0.0)", lambda x: np.where(x > 0, x, 0.0), np.float32),
        ("f32 * float32 scalar", lambda x: x * np.float32(2), np.float32),
        ("f32 * float64 scalar", lambda x: x * np.float64(2), np.float64),
        ("f32 * float64 array", lambda x: x * C64, np.float64),
        ("float64 array - f32", lambda x: C64 - x, np.float64),
        ("f32 @ float64 array", lambda x: x @ C64, np.float64),
        ("where(c, f32, float64)", lambda x: np.where(x > 0, x, C64), np.float64),
        ("f32 * int64 array", lambda x: x * np.arange(3), np.float64),
        ("f32 * int16 array", lambda x: x * np.arange(3, dtype=np.int16), np.float32),
        ("f32 * bool array", lambda x: x * np.array([True, False, True]), np.float32),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_promotion(label: str, fn: Callable[[Any], Any], dtype: type) -> None:
    """Results promote as NumPy does; the gradient keeps the parameter's dtype."""
    assert np.result_type(fn(X32)) == dtype  # what NumPy does, for the record
    x = tr.param(X32)
    y = fn(x)
    assert y.dtype == dtype
    assert_close(tr.data(y), fn(X32), rtol=1e-6)
    tr.back(np.sum(y * y))
    assert tr.grad(x).dtype == np.float32
    expected = tr.gradient(lambda x: np.sum(fn(x) * fn(x)), X32.astype(np.float64))[0]
    assert_close(tr.grad(x), expected, rtol=1e-5, atol=1e-6)


def test_mixed_dtype_gradient_and_hessian() -> None:
    """A float32 and a float64 argument: each gradient in its own dtype; the cast is
    differentiated twice (its pullback is recorded when nested)."""
    y64 = np.array([0.3, -0.2, 0.1])
    gx, gy = tr.gradient(lambda x, y: np.sum(np.tanh(x * y)), X32, y64)
    assert (gx.dtype, gy.dtype) == (np.float32, np.float64)
    s = 1 - np.tanh(X32.astype(np.float64) * y64) ** 2
    assert_close(gx, s * y64, rtol=1e-6)
    assert_close(gy, s * X32, rtol=1e-6)
    hessian = tr.hessian(lambda x: np.sum(np.tanh(x * C64)), X32)
    assert hessian.dtype == np.float32
    t = np.tanh(X32.astype(np.float64) * C64)
    assert_close(hessian, np.diag(-2 * t * (1 - t * t) * C64**2), rtol=1e-5, atol=1e-6)


# -- coverage: every op the core has is in the tables ----------------------------------------

CORE = Path(__file__).resolve().parents[1] / "crates" / "tracker-core" / "src"

# Op names that are not NumPy-facing ops, and where they are checked instead.
NOT_IN_TABLE = {
    "constant": "a leaf",
    "input": "a leaf",
    "param": "a leaf",
    "nobacksies": "a marker (test_api)",
    "broadcast_to": "recorded by the nested pullback of sum/mean: test_second_order[sum-*]",
    "scatter_add": "recorded by the nested pullback of getitem: test_second_order[getitem-*]",
    "shift": "recorded by the nested pullback of prod: test_second_order[prod-*]",
    "astype": "recorded for mixed dtypes: test_promotion, test_mixed_dtype_gradient_and_hessian",
    **dict.fromkeys(
        ["inv", "det", "slogdet", "solve", "solve_triangular", "cholesky", "eigh", "svd", "qr"],
        "linear algebra: test_linalg.py's table (first and second order, float32, PyTorch)",
    ),
}


# Functions the core composes of its ops rather than holding as one.
COMPOSITES = {"cumprod"}


def core_op_names() -> set[str]:
    """The op names of the Rust tables: unary_ops!/binary_ops! rows, Reduce::ALL, and Op::name."""
    ops = CORE / "ops"
    rows = re.compile(r'^\s*[A-Z]\w*\s*=>\s*"(\w+)",\s*\|', re.MULTILINE)
    unary = rows.findall((ops / "unary.rs").read_text())
    binary = rows.findall((ops / "binary.rs").read_text())
    reduce_src = (ops / "reduce.rs").read_text()
    all_list = re.search(r"const ALL: &'static \[Reduce\] = &\[(.*?)\]", reduce_src, re.DOTALL)
    assert all_list is not None
    variants = re.findall(r"Reduce::(\w+)", all_list.group(1))
    reduce_names = dict(re.findall(r'Reduce::(\w+)\s*=>\s*"(\w+)"', reduce_src))
    structural = re.findall(
        r'Op::\w+(?:\([^)]*\)|\s*\{[^}]*\})?\s*=>\s*"(\w+)"', (CORE / "op.rs").read_text()
    )
    assert len(unary) >= 8 and len(binary) >= 7 and len(variants) >= 5 and len(structural) >= 5
    return {*unary, *binary, *(reduce_names[v] for v in variants), *structural}


@pytest.mark.skipif(not CORE.is_dir(), reason="the Rust sources are not beside the tests")
def test_every_core_op_is_in_the_tables() -> None:
    names = core_op_names() - NOT_IN_TABLE.keys()
    first_order = {c.op for c in FIRST_ORDER}
    second_order = {c.op for c in SECOND_ORDER}
    assert names - first_order == set(), "ops without a first-order gradient check"
    assert names - second_order == set(), "ops without a second-order gradient check"
    assert {c.op for c in CASES} <= names | COMPOSITES, "a table row names an op the core lacks"


# -- tracker.testing, the checker the tests above stand on -----------------------------------


def test_gradcheck_reports_a_wrong_gradient() -> None:
    # Within a step of abs's kink, central differences average the two slopes.
    near_kink = np.array([2.0, 1e-5])
    assert not gradcheck(lambda x: np.sum(abs(x)), near_kink, raise_exception=False)
    with pytest.raises(AssertionError, match=r"leaf 0 .* at index \(1,\)"):
        gradcheck(lambda x: np.sum(abs(x)), near_kink)
    assert gradcheck(lambda x: np.sum(abs(x)), np.array([2.0, -0.5]))


def test_ngradient_mirrors_gradient() -> None:
    """The same structure as `tr.gradient`: None for integers, totals for tied arrays."""
    w = np.array([1.0, -2.0])
    args = ({"w": w, "n": 3, "scale": 0.5}, [w, np.float32(2.0)])

    def f(d, pair):
        return d["scale"] * d["n"] * np.sum(d["w"] ** 2 * pair[0]) * pair[1]

    numeric, analytic = ngradient(f, *args), tr.gradient(f, *args)
    assert numeric[0]["n"] is None and analytic[0]["n"] is None
    assert isinstance(numeric[1], list) and numeric[1][1].shape == ()
    assert_close(numeric[0]["w"], analytic[0]["w"], rtol=1e-9)
    assert_close(numeric[0]["w"], numeric[1][0], rtol=0)
    assert_close(numeric[1][1], analytic[1][1], rtol=1e-6)
    assert_close(numeric[0]["scale"], analytic[0]["scale"], rtol=1e-9)


def _basic_keys() -> Any:
    """Random shapes up to 4-D with random basic indices: ints, slices of any step, None, ..."""
    from hypothesis import strategies as st

    @st.composite
    def draw(draw: Any) -> tuple[tuple[int, ...], tuple[Any, ...]]:
        shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=4)))
        items: list[Any] = []
        for n in shape:
            if draw(st.booleans()) and n:
                items.append(draw(st.integers(-n, n - 1)))
            else:
                bound = st.none() | st.integers(-6, 6)
                step = st.none() | st.integers(-3, 3).filter(bool)
                items.append(slice(draw(bound), draw(bound), draw(step)))
            if draw(st.integers(0, 4)) == 0:
                items.append(None)
        if items and draw(st.booleans()):
            items[draw(st.integers(0, len(items) - 1))] = Ellipsis
        return shape, tuple(items)

    return draw()


def test_basic_indexing_matches_numpy_value_and_gradient() -> None:
    """Basic indices read a strided view: every stride, order and merge of runs is right."""
    from hypothesis import given, settings

    @settings(max_examples=400, deadline=None)
    @given(_basic_keys())
    def check(case: tuple[tuple[int, ...], tuple[Any, ...]]) -> None:
        shape, key = case
        x = np.arange(float(np.prod(shape, dtype=int))).reshape(shape) + 1.0
        expected = x[key]
        w = np.cos(np.arange(expected.size)).reshape(expected.shape)
        value, (g,) = tr.withgradient(lambda x: np.sum(x[key] * w), x)
        np.testing.assert_array_equal(tr.data(tr.param(x)[key]), expected)
        want = np.zeros_like(x)
        want[key] += w  # a basic index reads each element at most once
        np.testing.assert_array_equal(g, want)
        assert value == pytest.approx(np.sum(expected * w))

    check()


def test_broadcasting_matches_numpy_for_any_shapes() -> None:
    """Broadcast operands are read a row at a time: every mix of repeated and full axes."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    shapes = hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=4, max_side=5)

    @settings(max_examples=300, deadline=None)
    @given(shapes, st.sampled_from([np.float32, np.float64]))
    def check(case: Any, dtype: Any) -> None:
        rng = np.random.default_rng(len(case.result_shape))
        a, b, c = (rng.standard_normal(s).astype(dtype) for s in case.input_shapes)
        expected = np.clip(a * b - c, -0.5, 0.5)
        got = tr.data(np.clip(tr.param(a) * b - c, -0.5, 0.5))
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
        grads = tr.gradient(lambda a, b, c: np.sum(np.sin(a * b - c)), a, b, c)
        cosine = np.cos(a * b - c)
        for g, want in zip(grads, (cosine * b, cosine * a, -cosine), strict=True):
            axes = tuple(range(cosine.ndim - g.ndim))
            want = np.sum(want, axis=axes)
            keep = tuple(i for i, n in enumerate(g.shape) if n == 1 and want.shape[i] != 1)
            tol = 1e-5 if dtype is np.float32 else 1e-12
            want = np.sum(want, axis=keep, keepdims=True)
            np.testing.assert_allclose(g, want, rtol=tol, atol=tol)

    check()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scalars_compute_as_the_elements_of_arrays(dtype: type) -> None:
    """0-d operands take the kernels' shortcut; each result has the bits the same
    element has in an array, forward and backward."""
    values = np.array([-0.7, -0.3, 0.0, 0.4, 2.5], dtype=dtype)
    others = np.array([0.6, 2.0, -1.1, 3.0, 0.5], dtype=dtype)
    unary = [np.exp, np.tanh, np.sin, np.negative, np.abs, np.log1p, np.arctan]
    binary = [np.add, np.multiply, np.divide, np.power, np.maximum, np.arctan2]
    for f in unary:
        whole = tr.data(f(tr.param(values)))
        grads = tr.gradient(lambda x, f=f: np.sum(f(x)), values)[0]
        for k, v in enumerate(values):
            assert tr.data(f(tr.param(v))).tobytes() == whole[k].tobytes(), f.__name__
            assert tr.gradient(f, v)[0].tobytes() == grads[k].tobytes(), f.__name__
    for f in binary:
        a = np.abs(values) + 0.5  # positive bases for power
        whole = tr.data(f(tr.param(a), tr.param(others)))
        for k in range(len(a)):
            y = f(tr.param(a[k]), tr.param(others[k]))
            assert tr.data(y).tobytes() == whole[k].tobytes(), f.__name__


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_python_two_as_exponent_squares_as_numpy_does(dtype: type) -> None:
    """`x ** 2` (a Python int or float 2) and `np.square(x)` are one op, `x * x` exactly,
    as NumPy computes `x ** 2`, in the array's dtype; other exponents stay `power`."""
    values = np.array([1.1, -2.3, 0.0, 3e-5, 7.75], dtype=dtype)
    for square in (lambda x: x**2, lambda x: x**2.0, np.square):
        y = square(tr.param(values))
        shown = io.StringIO()
        tr.show(y, file=shown)
        assert [line.split()[2].split("(")[0] for line in shown.getvalue().splitlines()] == [
            "param",
            "square",
        ]
        assert tr.data(y).dtype == dtype
        assert tr.data(y).tobytes() == (values * values).tobytes()
        assert tr.data(square(tr.param(values[1]))).tobytes() == (values[1] * values[1]).tobytes()
        (g,) = tr.gradient(lambda x, f=square: np.sum(f(x) * 3.0), values)
        assert g.tobytes() == (3.0 * (values + values)).astype(dtype).tobytes()
    strong = tr.param(values) ** np.float64(2.0)  # a NumPy scalar: NumPy's promotion
    assert tr.data(strong).dtype == (values ** np.float64(2.0)).dtype
    assert_close(tr.gradient(lambda x: np.sum(x**3), values)[0], 3 * values**2, rtol=1e-6)
