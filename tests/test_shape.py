"""NumPy's shape, joining, indexing and statistics functions, and `tr.at` updates.

The table `CASES` holds one row per function and variant, a function of `xp` (NumPy for
tracker; the rows that PyTorch can also run are in `TORCH_CASES`) and float64 inputs.
Every row is checked:

- forward: the tracked value equals NumPy's on the plain inputs, exactly for the
  functions that move elements (and to rounding for the statistics, whose sums the core
  orders differently from NumPy's pairwise summation), with NumPy's shape and dtype;
- first order against finite differences, and second order (`gradgradcheck`), in f64;
- in float32: the result keeps float32 and the gradients match the float64 ones.
"""

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from numpy.exceptions import AxisError

import tracker as tr
from conftest import check_gradient
from tracker.testing import gradgradcheck

rng = np.random.default_rng(20250301)


def normal(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def positive(*shape: int) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape)


def distinct(*shape: int) -> np.ndarray:
    """Values at least 0.25 apart (no sort tie within a finite-difference step)."""
    n = math.prod(shape)
    return ((rng.permutation(n) - n / 2) * 0.3 + rng.uniform(0, 0.05, n)).reshape(shape)


S = normal()
V, V4 = normal(5), normal(4)
X, Y, X3 = normal(3, 4), normal(3, 4), normal(2, 3, 4)
COL = normal(3, 1)
ONES = normal(1, 3, 1)
EMPTY = normal(0, 4)
C34 = normal(3, 4)  # a constant operand
ORDER = np.argsort(normal(3, 4), axis=1)
PIECES = tuple(normal(2, k) for k in (1, 2, 3, 1, 2))
X35 = normal(3, 5)
W3, W4, W42 = positive(3), positive(4), positive(4, 2)


@dataclass(frozen=True)
class Case:
    label: str
    fn: Callable[..., Any]
    inputs: tuple[np.ndarray, ...]
    exact: bool = True  # forward equal to NumPy's bit for bit

    @property
    def id(self) -> str:
        return self.label


def case(label, fn, *inputs, exact=True):
    return Case(label, fn, tuple(np.asarray(x, dtype=np.float64) for x in inputs), exact)


# fmt: off
CASES = [
    # relabelling axes
    case("ravel",             lambda x: np.ravel(x),                        X3),
    case("ravel-F",           lambda x: np.ravel(x, order="F"),             X3),
    case("ravel-0d",          lambda x: np.ravel(x),                        S),
    case("ravel-method",      lambda x: x.ravel(),                          X),
    case("flatten-method",    lambda x: x.flatten(),                        X3),
    case("squeeze",           lambda x: np.squeeze(x),                      ONES),
    case("squeeze-axis-neg",  lambda x: np.squeeze(x, axis=-1),             ONES),
    case("squeeze-axes",      lambda x: np.squeeze(x, axis=(0, 2)),         ONES),
    case("squeeze-method",    lambda x: x.squeeze(0),                       ONES),
    case("expand_dims",       lambda x: np.expand_dims(x, 0),               X),
    case("expand_dims-neg",   lambda x: np.expand_dims(x, -1),              X),
    case("expand_dims-axes",  lambda x: np.expand_dims(x, (0, 3)),          X),
    case("expand_dims-0d",    lambda x: np.expand_dims(x, 0),               S),
    case("moveaxis",          lambda x: np.moveaxis(x, 0, -1),              X3),
    case("moveaxis-many",     lambda x: np.moveaxis(x, [0, 1], [-1, -3]),   X3),
    case("swapaxes",          lambda x: np.swapaxes(x, 0, 2),               X3),
    case("swapaxes-method",   lambda x: x.swapaxes(-1, 1),                  X3),
    case("atleast_1d-0d",     lambda x: np.atleast_1d(x),                   S),
    case("atleast_2d",        lambda x: np.atleast_2d(x),                   V),
    case("atleast_3d-1d",     lambda x: np.atleast_3d(x),                   V),
    case("atleast_3d-2d",     lambda x: np.atleast_3d(x),                   X),
    case("atleast_2d-many",   lambda x, v: np.sum(np.atleast_2d(x, v)[1]),  X, V),
    case("copy",              lambda x: np.copy(x),                         X),
    case("copy-method",       lambda x: x.copy() * 2,                       X),
    case("transpose",         lambda x: np.transpose(x, (1, 2, 0)),         X3),
    # joining and splitting
    case("concatenate",       lambda a, b: np.concatenate([a, b]),          X, normal(2, 4)),
    case("concatenate-neg",   lambda a, b: np.concatenate((a, b), -1),      X, normal(3, 2)),
    case("concatenate-None",  lambda a, b: np.concatenate([a, b], axis=None), X, V),
    case("concatenate-const", lambda a: np.concatenate([C34, a, C34], 1),   X),
    case("concatenate-empty", lambda a, b: np.concatenate([a, b]),          EMPTY, normal(2, 4)),
    case("concatenate-many", lambda *xs: np.concatenate(xs, axis=1), *PIECES),
    case("stack",             lambda a, b: np.stack([a, b]),                X, Y),
    case("stack-neg",         lambda a, b: np.stack([a, b, a], axis=-1),    X, Y),
    case("stack-reals",       lambda v: np.stack([v[i] * v[i - 1] for i in range(5)]), V),
    case("stack-mixed",       lambda v: np.stack([v[0], 2.0, v[3]]),        V),
    case("vstack",            lambda a, b: np.vstack([a, b]),               V, normal(2, 5)),
    case("hstack-1d",         lambda a, b: np.hstack([a, b]),               V, V4),
    case("hstack-2d",         lambda a, b: np.hstack((a, b)),               X, COL),
    case("dstack",            lambda a, b: np.dstack([a, b]),               X, Y),
    case("column_stack",      lambda a, b: np.column_stack([a, b]),         normal(3), X),
    case("append",            lambda a, b: np.append(a, b),                 X, V),
    case("append-axis",       lambda a, b: np.append(a, b, axis=0),         X, normal(1, 4)),
    case("split",             lambda x: np.split(x, 2, axis=1)[1],          X),
    case("split-indices",     lambda x: np.split(x, [1, 3], axis=-1)[1],    X3),
    case("split-all",         lambda x: np.stack(np.split(x, 4, axis=1), 0), X),
    case("array_split",       lambda x: np.array_split(x, 2)[0],            X),
    case("array_split-uneven", lambda x: np.hstack(np.array_split(x, 3, axis=1)[1:]), X35),
    # moving elements
    case("flip",              lambda x: np.flip(x),                         X3),
    case("flip-axis",         lambda x: np.flip(x, 1),                      X3),
    case("flip-axes",         lambda x: np.flip(x, (0, -1)),                X3),
    case("fliplr",            lambda x: np.fliplr(x),                       X),
    case("flipud",            lambda x: np.flipud(x),                       V),
    case("roll",              lambda x: np.roll(x, 1),                      X),
    case("roll-axis",         lambda x: np.roll(x, -2, axis=1),             X),
    case("roll-tuple",        lambda x: np.roll(x, (1, 5), axis=(0, -1)),   X3),
    case("rot90",             lambda x: np.rot90(x),                        X),
    case("tile",              lambda x: np.tile(x, 2),                      X),
    case("tile-more",         lambda x: np.tile(x, (2, 1, 2)),              X),
    case("repeat",            lambda x: np.repeat(x, 2),                    X),
    case("repeat-axis",       lambda x: np.repeat(x, [1, 0, 2], axis=0),    X),
    case("repeat-method",     lambda x: x.repeat(3, axis=-1),               X),
    case("broadcast_to",      lambda x: np.broadcast_to(x, (3, 5)),         V),
    case("broadcast_to-3d",   lambda x: np.broadcast_to(x, (2, 3, 4)),      COL),
    case("broadcast_to-0d",   lambda x: np.broadcast_to(x, (2, 2)),         S),
    case("pad",               lambda x: np.pad(x, 1),                       X),
    case("pad-constant",      lambda x: np.pad(x, ((1, 0), (2, 1)), constant_values=1.5), X),
    case("pad-edge",          lambda x: np.pad(x, (2, 1), mode="edge"),     X),
    case("pad-reflect",       lambda x: np.pad(x, ((2, 1), (3, 0)), mode="reflect"), X),
    case("pad-symmetric",     lambda x: np.pad(x, 2, mode="symmetric"),     V),
    case("pad-wrap",          lambda x: np.pad(x, ((1, 1), (0, 5)), mode="wrap"), X),
    case("take",              lambda x: np.take(x, [0, 2, 2], axis=1),      X),
    case("take-flat",         lambda x: np.take(x, [[0, 11], [5, 5]]),      X),
    case("take-wrap",         lambda x: np.take(x, [-1, 4, 7], axis=-1, mode="wrap"), X),
    case("take-method",       lambda x: x.take([1, 0], axis=0),             X),
    case("take_along_axis",   lambda x: np.take_along_axis(x, ORDER, axis=1), X),
    case("take_along_axis-0", lambda x: np.take_along_axis(x, ORDER[:2] % 3, axis=0), X),
    case("take_along_axis-None", lambda x: np.take_along_axis(x, np.array([3, 0, 0]), None), X),
    case("delete",            lambda x: np.delete(x, 1, axis=1),            X),
    case("delete-slice",      lambda x: np.delete(x, slice(0, 5, 2)),       X),
    case("sort",              lambda x: np.sort(x),                         distinct(3, 4)),
    case("sort-axis0",        lambda x: np.sort(x, axis=0),                 distinct(2, 3, 4)),
    case("sort-None",         lambda x: np.sort(-x, axis=None),             distinct(3, 4)),
    case("sort-stable",       lambda x: np.sort(x, kind="stable"),          distinct(7)),
    case("where",             lambda a, b: np.where(C34 > 0, a, b),         X, Y),
    case("astype-same",       lambda x: np.astype(x, np.float64),           X),
    # statistics
    case("var",               lambda x: np.var(x),                          X3, exact=False),
    case("var-axis",          lambda x: np.var(x, axis=0),                  X3, exact=False),
    case("var-ddof",          lambda x: np.var(x, axis=-1, ddof=1),         X3, exact=False),
    case("var-axes-keepdims", lambda x: np.var(x, axis=(0, 2), keepdims=True), X3, exact=False),
    case("var-correction",    lambda x: np.var(x, axis=1, correction=1),    X3, exact=False),
    case("var-method",        lambda x: x.var(1),                           X, exact=False),
    case("std",               lambda x: np.std(x),                          X3, exact=False),
    case("std-ddof",          lambda x: np.std(x, axis=1, ddof=1, keepdims=True), X3, exact=False),
    case("std-method",        lambda x: x.std(axis=0),                      X, exact=False),
    case("average",           lambda x: np.average(x),                      X, exact=False),
    case("average-axis",      lambda x: np.average(x, axis=1),              X, exact=False),
    case("average-weights", lambda x, w: np.average(x, weights=w), X, positive(3, 4), exact=False),
    case("average-1d-weights", lambda x, w: np.average(x, -1, w), X3, W4, exact=False),
    case("average-axes-weights", lambda x, w: np.average(x, (2, 0), w), X3, W42, exact=False),
    case("average-returned", lambda x, w: np.average(x, 0, w, returned=True), X, W3, exact=False),
    case("average-keepdims", lambda x, w: np.average(x, 1, w, keepdims=True), X, W4, exact=False),
    case("diff",              lambda x: np.diff(x),                         X),
    case("diff-n2-axis0",     lambda x: np.diff(x, 2, axis=0),              X3, exact=False),
    case("diff-prepend",      lambda x: np.diff(x, prepend=0.5),            X),
    case("diff-append",       lambda x, a: np.diff(x, axis=0, append=a),    X, normal(1, 4)),
    case("diff-n0",           lambda x: np.diff(x, 0),                      X),
]
# fmt: on


@functools.cache
def weights(shape: tuple[int, ...]) -> np.ndarray:
    w = np.random.default_rng([len(shape), *shape]).uniform(0.5, 1.5, shape)
    w.flags.writeable = False
    return w


def loss(y: Any) -> Any:
    """sum(w·y + y²): not linear in `y`, so second derivatives run every pullback backwards."""
    if isinstance(y, (list, tuple)):
        return sum(loss(piece) for piece in y)
    w = weights(tuple(y.shape)).astype(y.dtype)
    return np.sum(w * y + y * y)


def scalar_loss(c: Case) -> Callable[..., Any]:
    return lambda *xs: loss(c.fn(*xs))


def plain(y: Any) -> Any:
    return [plain(p) for p in y] if isinstance(y, (list, tuple)) else tr.data(y)


def assert_same(actual: Any, expected: Any, exact: bool) -> None:
    if isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_same(a, e, exact)
        return
    assert tr.istracked(actual)
    value = tr.data(actual)
    assert np.shape(value) == np.shape(expected)
    assert np.asarray(value).dtype == np.asarray(expected).dtype
    if exact:
        np.testing.assert_array_equal(value, expected, strict=False)
    else:
        np.testing.assert_allclose(value, expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_forward_is_numpys(c: Case) -> None:
    expected = c.fn(*c.inputs)
    assert_same(c.fn(*(tr.param(x) for x in c.inputs)), expected, c.exact)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_first_order(c: Case) -> None:
    check_gradient(scalar_loss(c), *c.inputs)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_second_order(c: Case) -> None:
    assert gradgradcheck(scalar_loss(c), *c.inputs, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_float32(c: Case) -> None:
    inputs32 = tuple(x.astype(np.float32) for x in c.inputs)
    y = c.fn(*(tr.param(x) for x in inputs32))
    expected = c.fn(*inputs32)
    several = isinstance(y, (list, tuple))
    for piece, e in zip(y if several else [y], expected if several else [expected], strict=True):
        assert piece.dtype == np.asarray(e).dtype
    grads32 = tr.gradient(scalar_loss(c), *inputs32)
    grads64 = tr.gradient(scalar_loss(c), *c.inputs)
    for g32, g64 in zip(grads32, grads64, strict=True):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(
            g32, g64, rtol=1e-3, atol=1e-4 * (1 + np.abs(g64).max(initial=0))
        )


def test_param_back_grad_through_a_split() -> None:
    x = tr.param(X)
    top, bottom = np.split(x, [1])
    tr.back(np.sum(top * 2) + np.sum(bottom**2))
    np.testing.assert_array_equal(tr.grad(x), np.vstack([np.full((1, 4), 2.0), 2 * X[1:]]))


# -- empty and 0-d inputs ----------------------------------------------------------------------

# fmt: off
EDGE_CASES = [
    ("ravel-empty",     lambda x: np.ravel(x),                 EMPTY),
    ("flip-empty",      lambda x: np.flip(x, 0),               EMPTY),
    ("roll-empty",      lambda x: np.roll(x, 2, axis=1),       EMPTY),
    ("tile-empty",      lambda x: np.tile(x, 3),               EMPTY),
    ("repeat-empty",    lambda x: np.repeat(x, 2, axis=1),     EMPTY),
    ("pad-empty",       lambda x: np.pad(x, 1),                EMPTY),
    ("stack-empty",     lambda x: np.stack([x, x], 1),         EMPTY),
    ("concat-empty",    lambda x: np.concatenate([x, x], 1),   EMPTY),
    ("take-empty",      lambda x: np.take(x, [], axis=1),      X),
    ("sort-empty",      lambda x: np.sort(x, 0),               EMPTY),
    ("diff-empty",      lambda x: np.diff(x, axis=0),          EMPTY),
    ("squeeze-0d",      lambda x: np.squeeze(x),               S),
    ("flip-0d",         lambda x: np.flip(x),                  S),
    ("roll-0d",         lambda x: np.roll(x, 3),               S),
    ("tile-0d",         lambda x: np.tile(x, (2, 3)),          S),
    ("repeat-0d",       lambda x: np.repeat(x, 3),             S),
    ("pad-0d",          lambda x: np.pad(x, 2),                S),
    ("stack-0d",        lambda x: np.stack([x, x]),            S),
    ("atleast_3d-0d",   lambda x: np.atleast_3d(x),            S),
    ("var-0d",          lambda x: np.var(x),                   S),
    ("average-0d",      lambda x: np.average(x),               S),
    ("moveaxis-0d",     lambda x: np.moveaxis(x, (), ()),      S),
]
# fmt: on


@pytest.mark.parametrize(("label", "fn", "x"), EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
def test_empty_and_0d(label: str, fn: Callable[..., Any], x: np.ndarray) -> None:
    expected = fn(x)
    y = fn(tr.param(x))
    assert np.shape(tr.data(y)) == np.shape(expected)
    np.testing.assert_allclose(tr.data(y), expected, rtol=1e-15)
    (g,) = tr.gradient(lambda x: np.sum(fn(x) * 3.0), x)
    assert g.shape == x.shape
    check_gradient(lambda x: loss(fn(x)), x)


# -- PyTorch ------------------------------------------------------------------------------


def torch_loss(torch: Any, y: Any) -> Any:
    w = torch.tensor(weights(tuple(y.shape)), dtype=y.dtype)
    return torch.sum(w * y + y * y)


# (label, tracker's function, PyTorch's, input)
# fmt: off
TORCH_CASES = [
    ("flip", lambda x: np.flip(x, (0, 2)), lambda t, x: t.flip(x, (0, 2)), X3),
    ("roll", lambda x: np.roll(x, (1, -2), (0, 1)), lambda t, x: t.roll(x, (1, -2), (0, 1)), X),
    ("roll-flat", lambda x: np.roll(x, 5), lambda t, x: t.roll(x, 5), X),
    ("repeat", lambda x: np.repeat(x, 3, axis=1), lambda t, x: t.repeat_interleave(x, 3, dim=1), X),
    ("repeat-counts", lambda x: np.repeat(x, [2, 0, 1], axis=0),
                      lambda t, x: t.repeat_interleave(x, t.tensor([2, 0, 1]), dim=0), X),
    ("tile", lambda x: np.tile(x, (2, 1, 3)), lambda t, x: t.tile(x, (2, 1, 3)), X),
    ("sort", lambda x: np.sort(x, axis=0), lambda t, x: t.sort(x, dim=0).values, distinct(3, 4)),
    ("take_along_axis", lambda x: np.take_along_axis(x, ORDER, 1),
                        lambda t, x: t.gather(x, 1, t.tensor(ORDER)), X),
    ("pad-constant",    lambda x: np.pad(x, ((1, 0), (2, 1)), constant_values=0.5),
                        lambda t, x: t.nn.functional.pad(x, (2, 1, 1, 0), value=0.5), X),
    ("pad-reflect",     lambda x: np.pad(x, ((0, 0), (2, 1)), "reflect"),
                        lambda t, x: t.nn.functional.pad(x, (2, 1), mode="reflect"), X),
    ("pad-edge",        lambda x: np.pad(x, ((0, 0), (2, 3)), "edge"),
                        lambda t, x: t.nn.functional.pad(x, (2, 3), mode="replicate"), X),
    ("pad-wrap",        lambda x: np.pad(x, ((0, 0), (1, 2)), "wrap"),
                        lambda t, x: t.nn.functional.pad(x, (1, 2), mode="circular"), X),
    ("var", lambda x: np.var(x, axis=1), lambda t, x: t.var(x, dim=1, correction=0), X3),
    ("var-correction", lambda x: np.var(x, axis=(0, 2), ddof=1),
                       lambda t, x: t.var(x, dim=(0, 2), correction=1), X3),
    ("std", lambda x: np.std(x, ddof=1), lambda t, x: t.std(x), X3),
    ("std-keepdims", lambda x: np.std(x, 0, keepdims=True),
                     lambda t, x: t.std(x, 0, correction=0, keepdim=True), X),
    ("diff", lambda x: np.diff(x, 2, axis=0), lambda t, x: t.diff(x, 2, dim=0), X3),
    ("diff-pre-append", lambda x: np.diff(x, prepend=C34[:, :1], append=C34[:, :2]),
                        lambda t, x: t.diff(x, prepend=t.tensor(C34[:, :1]),
                                            append=t.tensor(C34[:, :2])), X),
    ("stack", lambda x: np.stack([x, 2 * x], -1), lambda t, x: t.stack([x, 2 * x], -1), X),
    ("concatenate", lambda x: np.concatenate([x, x[:1]], 0), lambda t, x: t.cat([x, x[:1]], 0), X),
    ("take", lambda x: np.take(x, [2, 0, 2], axis=1),
             lambda t, x: t.index_select(x, 1, t.tensor([2, 0, 2])), X),
]
# fmt: on


@pytest.mark.parametrize(
    ("label", "fn", "torch_fn", "x"), TORCH_CASES, ids=[c[0] for c in TORCH_CASES]
)
def test_against_torch(label: str, fn: Any, torch_fn: Any, x: np.ndarray, torch: Any) -> None:
    t = torch.tensor(x, requires_grad=True)
    y = torch_fn(torch, t)
    np.testing.assert_allclose(tr.data(fn(tr.param(x))), y.detach().numpy(), rtol=1e-13, atol=1e-15)
    (expected,) = torch.autograd.grad(torch_loss(torch, y), t)
    (g,) = tr.gradient(lambda x: loss(fn(x)), x)
    np.testing.assert_allclose(g, expected.numpy(), rtol=1e-10, atol=1e-12)
    shape = x.shape
    hessian = tr.hessian(lambda z: loss(fn(z.reshape(shape))), x.reshape(-1))
    expected = torch.autograd.functional.hessian(
        lambda z: torch_loss(torch, torch_fn(torch, z.reshape(shape))), torch.tensor(x.reshape(-1))
    )
    np.testing.assert_allclose(hessian, expected.numpy(), rtol=1e-10, atol=1e-12)


# -- plain integer results, astype and methods --------------------------------------------------


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: np.argsort(x, axis=0),
        lambda x: np.argmax(x),
        lambda x: np.argmin(x, axis=1, keepdims=True),
        lambda x: np.nonzero(x > 0),
        lambda x: np.argwhere(x > 0),
        lambda x: np.flatnonzero(x),
        lambda x: np.count_nonzero(x > 0, axis=0),
        lambda x: np.searchsorted(np.sort(x[0]), x[1]),
        lambda x: x.argsort(),
        lambda x: x.argmax(axis=0),
        lambda x: x.argmin(),
        lambda x: x.nonzero(),
    ],
)
def test_integer_results_are_plain(fn: Callable[..., Any]) -> None:
    x = distinct(3, 4)
    got, expected = fn(tr.param(x)), fn(x)
    for g, e in zip(got, expected) if isinstance(expected, tuple) else [(got, expected)]:
        assert not tr.istracked(g)
        np.testing.assert_array_equal(g, e, strict=True)


def test_astype() -> None:
    x = tr.param(X)
    y = x.astype(np.float32)
    assert tr.istracked(y) and y.dtype == np.float32
    np.testing.assert_array_equal(tr.data(y), X.astype(np.float32))
    tr.back(np.sum(y * y))
    assert tr.grad(x).dtype == np.float64
    np.testing.assert_allclose(tr.grad(x), 2 * X.astype(np.float32), rtol=0)
    for dtype in (int, np.int32, np.uint8, bool, "i8"):
        plain = x.astype(dtype)
        assert isinstance(plain, np.ndarray)
        np.testing.assert_array_equal(plain, X.astype(dtype), strict=True)
    assert x.astype(np.float64, copy=False) is x
    assert x.astype(np.float64) is not x
    assert np.astype(x, np.float32).dtype == np.float32
    assert x[0, 0].astype(np.float32).dtype == np.float32  # TrackedReal has it too


def test_clip_cumsum_cumprod_methods_forward_to_numpy() -> None:
    x = tr.param(X)
    for method in ("clip", "cumsum", "cumprod"):
        try:
            expected = getattr(np, method)(x, *([-0.5, 0.5] if method == "clip" else []))
        except TypeError as error:  # registered by the elementwise work, maybe not yet
            with pytest.raises(TypeError, match=method):
                getattr(x, method)(*([-0.5, 0.5] if method == "clip" else []))
            assert method in str(error)
            continue
        got = getattr(x, method)(*([-0.5, 0.5] if method == "clip" else []))
        np.testing.assert_array_equal(tr.data(got), tr.data(expected))


# -- errors ---------------------------------------------------------------------------------


def errors() -> list[Any]:
    x, s = tr.param(X), tr.param(S)
    # fmt: off
    return [
        (ValueError, "cannot select an axis to squeeze", lambda: np.squeeze(x, axis=0)),
        (AxisError, "out of bounds", lambda: np.expand_dims(x, 3)),
        (AxisError, "np.swapaxes: axis 2 is out of bounds", lambda: np.swapaxes(x, 0, 2)),
        (ValueError, "same number of elements", lambda: np.moveaxis(x, [0, 1], [0])),
        (ValueError, "except for the concatenation axis", lambda: np.concatenate([x, x.T])),
        (ValueError, "zero-dimensional", lambda: np.concatenate([s, s])),
        (ValueError, "same number of dimensions", lambda: np.concatenate([x, x[0]])),
        (ValueError, "need at least one array", lambda: np.stack([])),
        (ValueError, "same shape", lambda: np.stack([x, x[:2]])),
        (IndexError, "np.stack: axis 3 is out of bounds", lambda: np.stack([x, x], axis=3)),
        (TypeError, "out=", lambda: np.concatenate([x, x], out=np.zeros((6, 4)))),
        (TypeError, "dtype=", lambda: np.stack([x, x], dtype=np.float32)),
        (ValueError, "equal division", lambda: np.split(x, 3, axis=1)),
        (ValueError, "larger than 0", lambda: np.array_split(x, 0)),
        (IndexError, "np.split: axis 2 is out of bounds", lambda: np.split(x, 2, axis=2)),
        (IndexError, "np.flip: axis 2 is out of bounds", lambda: np.flip(x, 2)),
        (ValueError, ">= 2-d", lambda: np.fliplr(x[0])),
        (AxisError, "out of bounds", lambda: np.roll(x, 1, axis=5)),
        (TypeError, "shift= cannot be a tracked value", lambda: np.roll(x, s)),
        (TypeError, "indices= cannot be a tracked value", lambda: np.take(x, x)),
        (TypeError, "tr.data", lambda: np.take_along_axis(x, x, 0)),
        (TypeError, "mode 'linear_ramp' is not", lambda: np.pad(x, 1, mode="linear_ramp")),
        (TypeError, "reflect_type='odd'", lambda: np.pad(x, 1, mode="reflect", reflect_type="odd")),
        (TypeError, "constant_values= cannot be", lambda: np.pad(x, 1, constant_values=s)),
        (ValueError, "negative", lambda: np.pad(x, -1, mode="edge")),
        (ValueError, "could not broadcast|broadcast", lambda: np.broadcast_to(x, (4, 3))),
        (TypeError, "order= is not supported", lambda: np.sort(x, order="a")),
        (AxisError, "out of bounds", lambda: np.sort(s)),
        (TypeError, "where= is not supported", lambda: np.var(x, where=X > 0)),
        (TypeError, "out= is not supported", lambda: np.std(x, out=np.zeros(()))),
        (ValueError, "ddof and correction", lambda: np.var(x, ddof=1, correction=1)),
        (TypeError, "axis must be specified", lambda: np.average(x, weights=np.ones(4))),
        (ValueError, "consistent with shape of a", lambda: np.average(x, 1, weights=np.ones(3))),
        (ZeroDivisionError, "sum to zero", lambda: np.average(x, 0, weights=np.zeros(3))),
        (ValueError, "must be non-negative but got -1", lambda: np.diff(x, -1)),
        (ValueError, "at least one dimensional", lambda: np.diff(s)),
        (TypeError, "np.sort", lambda: x.sort()),
        (TypeError, "tr.data", lambda: x.astype(np.complex128)),
        (TypeError, "according to the rule 'safe'", lambda: x.astype(np.float32, casting="safe")),
        (TypeError, "device= is not supported", lambda: np.astype(x, np.float32, device="cpu")),
    ]
    # fmt: on


@pytest.mark.parametrize("k", range(len(errors())))
def test_errors_name_the_problem(k: int) -> None:
    kind, message, call = errors()[k]
    with pytest.raises(kind, match=message):
        call()


def test_var_without_degrees_of_freedom_warns_as_numpy() -> None:
    x = tr.param(V)
    with pytest.warns(RuntimeWarning, match="Degrees of freedom"):
        y = np.var(x, ddof=5)
    assert np.isinf(tr.data(y))


def test_setitem_names_the_functional_update() -> None:
    x = tr.param(X)
    with pytest.raises(TypeError, match=r"tr\.at\(x\)\[idx\]\.set\(v\)"):
        x[0] = 1.0
    with pytest.raises(TypeError, match=r"tr\.at\(x\)\[idx\]\.set\(v\)"):
        x[0, 0][()] = 1.0


def test_joining_many_pieces_records_a_shallow_tree() -> None:
    """k pieces join pairwise: the tape grows by O(k) nodes and the work by size·log k."""
    x = tr.param(normal(256))
    y = np.stack([x[i] for i in range(256)])
    np.testing.assert_array_equal(tr.data(y), tr.data(x))
    tr.back(np.sum(y * np.arange(256.0)))
    np.testing.assert_array_equal(tr.grad(x), np.arange(256.0))


# -- tr.at ----------------------------------------------------------------------------------

Z = normal(4, 5)
# fmt: off
AT_INDICES = [
    ("int",          1),
    ("negative",     (-1, 2)),
    ("slice",        (slice(1, None, 2), slice(None, 3))),
    ("fancy-repeat", ([0, 2, 0, 0], [1, 1, 1, 4])),
    ("fancy-2d",     np.array([[3, 0], [0, 3]])),
    ("mask",         Z > 0),
    ("row-mask",     np.array([True, False, True, True])),
    ("ellipsis",     (Ellipsis, [4, 4, 0])),
    ("newaxis",      (None, 2, slice(None))),
    ("mixed",        (slice(None), [0, 3, 3])),
    ("empty",        ([],)),
]
# fmt: on
AT_IDS = [a[0] for a in AT_INDICES]


def expected_update(method: str, x: np.ndarray, index: Any, v: np.ndarray) -> np.ndarray:
    out = x.copy()
    if method == "set":
        out[index] = v
    else:
        {"add": np.add, "multiply": np.multiply, "min": np.minimum, "max": np.maximum}[method].at(
            out, index, v
        )
    return out


def at_values(index: Any) -> np.ndarray:
    return normal(*np.shape(Z[index]))


@pytest.mark.parametrize("method", ["set", "add", "multiply", "min", "max"])
@pytest.mark.parametrize(("label", "index"), AT_INDICES, ids=AT_IDS)
def test_at_forward_is_numpys(method: str, label: str, index: Any) -> None:
    v = at_values(index)
    expected = expected_update(method, Z, index, v)
    got = getattr(tr.at(tr.param(Z))[index], method)(tr.param(v) if v.ndim else v)
    # `add` sums the repeated values before adding them to x (np.add.at adds in turn).
    rtol = 1e-15 if method == "add" else 0.0
    np.testing.assert_allclose(tr.data(got), expected, rtol=rtol, atol=0)
    # plain in, plain out
    plain = getattr(tr.at(Z)[index], method)(v)
    assert not tr.istracked(plain)
    np.testing.assert_allclose(plain, expected, rtol=rtol, atol=0)


@pytest.mark.parametrize("method", ["set", "add", "multiply", "min", "max"])
@pytest.mark.parametrize(("label", "index"), AT_INDICES, ids=AT_IDS)
def test_at_gradients(method: str, label: str, index: Any) -> None:
    v = at_values(index)

    def f(x, v):
        return loss(getattr(tr.at(x)[index], method)(v))

    check_gradient(f, Z, v)
    assert gradgradcheck(f, Z, v)


def test_at_set_with_repeats_keeps_the_last_write() -> None:
    x, v = np.zeros(3), np.array([1.0, 2.0, 3.0])
    y, (gx, gv) = tr.withgradient(lambda x, v: np.sum(tr.at(x)[[1, 1, 1]].set(v) * 5.0), x, v)
    assert y == 15.0
    np.testing.assert_array_equal(gx, [5.0, 0.0, 5.0])
    np.testing.assert_array_equal(gv, [0.0, 0.0, 5.0])


def test_at_add_with_repeats_accumulates() -> None:
    (gv,) = tr.gradient(lambda v: np.sum(tr.at(np.zeros(3))[[0, 0, 2]].add(v) ** 2), np.ones(3))
    np.testing.assert_array_equal(gv, [4.0, 4.0, 2.0])


def test_at_broadcasts_and_casts_values() -> None:
    x = tr.param(Z.astype(np.float32))
    y = tr.at(x)[1:3].set(tr.param(2.0))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(
        tr.data(y), expected_update("set", Z.astype(np.float32), slice(1, 3), 2.0)
    )
    y = tr.at(x)[0].add(np.array([[1.0, 2.0, 3.0, 4.0, 5.0]]))  # leading unit axes drop, as NumPy
    assert y.dtype == np.float32
    assert tr.at(x)[0, 0].get().shape == ()
    np.testing.assert_array_equal(tr.data(tr.at(x)[:, 1].get()), Z.astype(np.float32)[:, 1])


def test_at_errors() -> None:
    x = tr.param(Z)
    with pytest.raises(TypeError, match=r"tr\.data\(idx\)"):
        tr.at(x)[x[0, 0]].set(1.0)
    with pytest.raises(ValueError, match="could not broadcast"):
        tr.at(x)[0:2].set(np.ones(3))
    with pytest.raises(IndexError):
        tr.at(x)[7].set(1.0)
    with pytest.raises(TypeError, match="dtype int64"):
        tr.at(np.zeros(3, dtype=int))[0].set(tr.param(1.5))


def test_at_float32_gradients_match_float64() -> None:
    index = ([0, 2, 0], slice(1, 3))

    def f(x, v):
        return loss(tr.at(x)[index].multiply(v) + tr.at(x)[index].set(v))

    v = at_values(index)
    g32 = tr.gradient(f, Z.astype(np.float32), v.astype(np.float32))
    g64 = tr.gradient(f, Z, v)
    for a, b in zip(g32, g64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_no_warnings_from_shape_functions() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.var(tr.param(X), axis=0, ddof=1)


def test_wide_arrays_and_huge_orders() -> None:
    """Positions wider than the binding's 32 index dimensions gather flat; a difference of
    an order beyond the axis length is empty without looping that many times."""
    wide = np.arange(2.0).reshape((1,) * 39 + (2,))
    for fn in (lambda x: np.roll(x, 1), lambda x: np.repeat(x, 2, axis=0)):
        y = fn(tr.param(wide))
        np.testing.assert_array_equal(tr.data(y), fn(wide))
    wide = np.ones((1,) * 40)  # NumPy sorts 40 dimensions only where the sorted axis is 1
    for fn in (np.sort,):
        y = fn(tr.param(wide))
        np.testing.assert_array_equal(tr.data(y), fn(wide))
    assert np.diff(tr.param(X), 2**70).shape == (3, 0)
    with pytest.raises(IndexError, match="integer array"):
        np.take_along_axis(tr.param(X), None, 0)
