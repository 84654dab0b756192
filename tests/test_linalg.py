"""Linear algebra: batched matmul, the products, `np.linalg` and the triangle/diagonal
functions, gradient-checked to first and second order, in float32, and against PyTorch.

As in test_ops.py, the table `CASES` is the whole set at a glance: each row is a
function of `la` (NumPy's spellings for tracker, `torch.linalg`'s for the oracle) and
its float64 inputs, reduced to a scalar by the non-linear `loss`. Decompositions whose
outputs are defined only up to sign (eigenvectors, singular vectors) are checked through
gauge-invariant functions of them: `V * V`, `U @ Vh`, reconstructions. Symmetric inputs
(eigh, cholesky) are parametrised as `x + xᵀ` or `x xᵀ + I`, so that finite differences
move them symmetrically.

Degenerate inputs, errors (shapes, non-square, singular, not positive definite) and the
coverage of the core's linear-algebra ops follow the table.
"""

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tracker as tr
from conftest import check_gradient, check_hessian
from tracker import _core

assert_close = functools.partial(np.testing.assert_allclose, equal_nan=False)

rng = np.random.default_rng(20240607)


def normal(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def well_conditioned(*shape: int) -> np.ndarray:
    """Matrices `x + 3I`: far from singular."""
    return normal(*shape) + 3.0 * np.eye(shape[-1])


def nonzero(*shape: int) -> np.ndarray:
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 2.0, shape)


def distinct(*shape: int) -> np.ndarray:
    """Values at least 0.25 apart in magnitude (no ties in max/min of abs)."""
    n = math.prod(shape)
    values = (rng.permutation(n) + 1.0) * 0.3 * rng.choice([-1.0, 1.0], n)
    return values.reshape(shape)


# -- the two spellings: NumPy (tracker) and PyTorch ------------------------------------------


class NumPyLA:
    """NumPy's functions, which tracked arrays dispatch to tracker."""

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    linalg = np.linalg

    @staticmethod
    def mT(x: Any) -> Any:
        nd = np.ndim(x)
        return np.transpose(x, (*range(nd - 2), nd - 1, nd - 2))

    def sym(self, x: Any) -> Any:
        return x + self.mT(x)

    def spd(self, x: Any) -> Any:
        return x @ self.mT(x) + np.eye(np.shape(x)[-1])

    @staticmethod
    def logabsdet(x: Any) -> Any:
        return np.linalg.slogdet(x)[1]

    @staticmethod
    def thin_svd(x: Any) -> Any:
        return np.linalg.svd(x, full_matrices=False)

    @staticmethod
    def solve_triangular(a: Any, b: Any, lower: bool) -> Any:
        return _core.linalg("solve_triangular", a, b, lower=lower)


class TorchLA:
    """The same names on PyTorch tensors."""

    def __init__(self, torch: Any) -> None:
        self.torch = torch
        self.linalg = torch.linalg

    def mT(self, x: Any) -> Any:
        return x.mT

    def sym(self, x: Any) -> Any:
        return x + x.mT

    def spd(self, x: Any) -> Any:
        return x @ x.mT + self.torch.eye(x.shape[-1], dtype=x.dtype)

    def logabsdet(self, x: Any) -> Any:
        return self.torch.linalg.slogdet(x)[1]

    def thin_svd(self, x: Any) -> Any:
        return self.torch.linalg.svd(x, full_matrices=False)

    def solve_triangular(self, a: Any, b: Any, lower: bool) -> Any:
        return self.torch.linalg.solve_triangular(a, b, upper=not lower)

    def matmul(self, a: Any, b: Any) -> Any:
        return a @ b

    def dot(self, a: Any, b: Any) -> Any:
        if a.ndim <= 2 and b.ndim <= 2:
            return a @ b
        return self.torch.tensordot(a, b, dims=([a.ndim - 1], [max(b.ndim - 2, 0)]))

    def vdot(self, a: Any, b: Any) -> Any:
        return self.torch.dot(a.reshape(-1), b.reshape(-1))

    def inner(self, a: Any, b: Any) -> Any:
        return self.torch.inner(a, b)

    def outer(self, a: Any, b: Any) -> Any:
        return self.torch.outer(a.reshape(-1), b.reshape(-1))

    def tensordot(self, a: Any, b: Any, axes: Any = 2) -> Any:
        return self.torch.tensordot(a, b, dims=axes)

    def einsum(self, subscripts: str, *xs: Any) -> Any:
        return self.torch.einsum(subscripts, *xs)

    def kron(self, a: Any, b: Any) -> Any:
        return self.torch.kron(a, b)

    def tril(self, x: Any, k: int = 0) -> Any:
        return self.torch.tril(x, k)

    def triu(self, x: Any, k: int = 0) -> Any:
        return self.torch.triu(x, k)

    def diag(self, x: Any, k: int = 0) -> Any:
        return self.torch.diag(x, k)

    def diagonal(self, x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
        return self.torch.diagonal(x, offset, axis1, axis2)

    def trace(self, x: Any, offset: int = 0) -> Any:
        return self.torch.diagonal(x, offset).sum(-1)

    def sum(self, x: Any, axis: Any = None) -> Any:
        return x.sum() if axis is None else x.sum(axis)

    def eye(self, n: int) -> Any:
        return self.torch.eye(n, dtype=self.torch.float64)


# -- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    op: str  # the function's name (the core's op name for decompositions)
    label: str
    fn: Callable[..., Any]  # fn(la, *inputs)
    inputs: tuple[np.ndarray, ...]
    torch: bool = True  # whether PyTorch has the same function to compare with

    @property
    def id(self) -> str:
        return f"{self.op}-{self.label}"


def case(op, label, fn, *inputs, torch=True):
    return Case(op, label, fn, tuple(np.asarray(x, dtype=np.float64) for x in inputs), torch)


M3, M3B = well_conditioned(3, 3), well_conditioned(2, 3, 3)
NEG = np.array([[0.5, 2.0, 0.1], [1.5, 0.2, 0.3], [0.1, 0.4, 2.5]])  # det < 0
TALL, WIDE = normal(4, 3), normal(2, 4)

# fmt: off
CASES = [
    # matmul with batches and broadcasting
    case("matmul", "batched", lambda la, a, b: a @ b, normal(2, 3, 4), normal(2, 4, 2)),
    case("matmul", "broadcast", lambda la,
         a, b: la.matmul(a, b), normal(2, 1, 2, 3), normal(3, 3, 2)),
    case("matmul", "1d@batched", lambda la, v, b: v @ b, normal(3), normal(2, 3, 2)),
    case("matmul", "batched@1d", lambda la, a, v: a @ v, normal(2, 2, 3), normal(3)),
    case("matmul", "constant-batch", lambda la, a: a @ np.ones((2, 3, 2)), normal(3), torch=False),
    # products
    case("dot", "nd@2d", lambda la, a, b: la.dot(a, b), normal(2, 2, 3), normal(3, 2)),
    case("dot", "nd@nd", lambda la, a, b: la.dot(a, b), normal(2, 3), normal(2, 3, 2)),
    case("vdot", "2d", lambda la, a, b: la.vdot(a, b), normal(2, 3), normal(2, 3)),
    case("inner", "nd", lambda la, a, b: la.inner(a, b), normal(2, 3), normal(2, 2, 3)),
    case("inner", "1d", lambda la, a, b: la.inner(a, b), normal(3), normal(3)),
    case("outer", "2d", lambda la, a, b: la.outer(a, b), normal(2, 2), normal(3)),
    case("tensordot", "int", lambda la,
         a, b: la.tensordot(a, b, 2), normal(2, 2, 3), normal(2, 3, 2)),
    case("tensordot", "pairs",       lambda la, a, b: la.tensordot(a, b, ([0, 2], [2, 0])),
         normal(2, 3, 2), normal(2, 2, 2)),
    case("einsum", "matmul", lambda la,
         a, b: la.einsum("ij,jk->ik", a, b), normal(2, 3), normal(3, 2)),
    case("einsum", "implicit", lambda la,
         a, b: la.einsum("ji,jk", a, b), normal(3, 2), normal(3, 2)),
    case("einsum", "batched", lambda la,
         a, b: la.einsum("bij,bkj->bik", a, b), normal(2, 2, 3), normal(2, 2, 3)),
    case("einsum",    "trace",       lambda la, a: la.einsum("ii", a),          normal(3, 3)),
    case("einsum",    "diagonal",    lambda la, a: la.einsum("ii->i", a),       normal(3, 3)),
    case("einsum",    "ellipsis",    lambda la, a, b: la.einsum("...ij,...jk->...ik", a, b),
         normal(2, 2, 3), normal(3, 2)),
    case("einsum",    "three",       lambda la, a, b, c: la.einsum("ij,jk,kl->il", a, b, c),
         normal(2, 3), normal(3, 2), normal(2, 2)),
    case("einsum", "outer-sum", lambda la,
         a, b: la.einsum("i,jk->ij", a, b), normal(2), normal(3, 2)),
    case("einsum", "repeat-pair", lambda la,
         a, b: la.einsum("iij,jk->ik", a, b), normal(2, 2, 3), normal(3, 2)),
    case("kron", "2d", lambda la, a, b: la.kron(a, b), normal(2, 2), normal(2, 3)),
    case("kron", "mixed-ndim", lambda la, a, b: la.kron(a, b), normal(2), normal(2, 2)),
    # decompositions
    case("inv",     "2d",            lambda la, a: la.linalg.inv(a),            M3),
    case("inv",     "batched",       lambda la, a: la.linalg.inv(a),            M3B),
    case("det",     "2d",            lambda la, a: la.linalg.det(a),            M3),
    case("det",     "batched",       lambda la, a: la.linalg.det(a),            M3B),
    case("slogdet", "negative-det",  lambda la, a: la.logabsdet(a),             NEG),
    case("slogdet", "batched",       lambda la, a: la.logabsdet(a),             M3B),
    case("solve",   "vector",        lambda la, a, b: la.linalg.solve(a, b),    M3, normal(3)),
    case("solve", "batched", lambda la, a, b: la.linalg.solve(a, b), M3B, normal(2, 3, 2)),
    case("solve", "broadcast", lambda la, a, b: la.linalg.solve(a, b), M3, normal(2, 3, 1)),
    case("solve_triangular", "lower", lambda la,
         a, b: la.solve_triangular(la.tril(a), b, lower=True),
         M3, normal(3, 2)),
    case("solve_triangular", "upper", lambda la,
         a, b: la.solve_triangular(la.triu(a), b, lower=False),
         M3B, normal(3, 1)),
    case("cholesky", "2d",           lambda la, x: la.linalg.cholesky(la.spd(x)), normal(3, 3)),
    case("cholesky", "batched",      lambda la, x: la.linalg.cholesky(la.spd(x)), normal(2, 2, 2)),
    case("eigh",    "eigenvalues",   lambda la, x: la.linalg.eigh(la.sym(x))[0], normal(3, 3)),
    case("eigh", "vectors-squared", lambda la, x: la.linalg.eigh(la.sym(x))[1] ** 2, normal(3, 3)),
    case("eigh", "batched", lambda la, x: la.linalg.eigh(la.sym(x))[1] ** 2, normal(2, 2, 2)),
    case("eigh",    "projector",     lambda la, x: (lambda w, v: v[:, :1] @ la.mT(v[:, :1]) * w[0])(
        *la.linalg.eigh(la.sym(x))), normal(3, 3)),
    case("svd",     "values-tall",   lambda la, x: la.thin_svd(x)[1],           TALL),
    case("svd",     "values-wide",   lambda la, x: la.thin_svd(x)[1],           WIDE),
    case("svd",     "u-squared",     lambda la, x: la.thin_svd(x)[0] ** 2,      TALL),
    case("svd",     "vh-squared",    lambda la, x: la.thin_svd(x)[2] ** 2,      WIDE),
    case("svd", "polar", lambda la, x: (lambda u, s, vh: u @ vh)(*la.thin_svd(x)), TALL),
    case("svd", "batched", lambda la,
         x: (lambda u, s, vh: u * s[..., None, :] @ vh)(*la.thin_svd(x)),
         normal(2, 2, 3)),
    case("qr",      "tall",          lambda la, x: la.linalg.qr(x)[0] + 0.0,    TALL),
    case("qr",      "r",             lambda la, x: la.linalg.qr(x)[1],          TALL),
    case("qr", "wide", lambda la, x: (lambda q, r: la.sum(q * q) + r)(*la.linalg.qr(x)), WIDE),
    case("qr", "batched", lambda la,
         x: (lambda q, r: q @ r + q)(*la.linalg.qr(x)), normal(2, 3, 2)),
    # NumPy 2's array-API spellings, powers and the pseudo-inverse
    case("linalg.matmul", "batched", lambda la, a, b: la.linalg.matmul(a, b),
         normal(2, 2, 3), normal(3, 2)),
    case("vecdot", "last-axis", lambda la, a, b: la.linalg.vecdot(a, b), normal(2, 3), normal(3)),
    case("matrix_transpose", "batched", lambda la, x: la.linalg.matrix_transpose(x),
         normal(2, 2, 3), torch=False),
    case("linalg.trace", "offset",   lambda la, x: la.linalg.trace(x, offset=1), normal(2, 3, 3),
         torch=False),
    case("linalg.diagonal", "batched", lambda la, x: la.linalg.diagonal(x, offset=-1),
         normal(2, 3, 3)),
    case("matrix_norm", "nuc",       lambda la, x: la.linalg.matrix_norm(x, ord="nuc"),
         normal(2, 3, 2)),
    case("vector_norm", "ord-1",     lambda la, x: la.linalg.vector_norm(x, ord=1), nonzero(2, 3)),
    case("matrix_power", "3",        lambda la, a: la.linalg.matrix_power(a, 3), normal(2, 2, 2)),
    case("matrix_power", "-2",       lambda la, a: la.linalg.matrix_power(a, -2), M3),
    case("pinv",     "tall",         lambda la, a: la.linalg.pinv(a),           TALL),
    # norms
    case("norm",    "vector",        lambda la, x: la.linalg.norm(x),           normal(4)),
    case("norm",    "all",           lambda la, x: la.linalg.norm(x),           normal(2, 3, 2)),
    case("norm",    "vector-1",      lambda la, x: la.linalg.norm(x, 1),        nonzero(4)),
    case("norm",    "vector-inf",    lambda la, x: la.linalg.norm(x, np.inf),   distinct(4)),
    case("norm",    "vector-minf",   lambda la, x: la.linalg.norm(x, -np.inf),  distinct(4)),
    case("norm",    "vector-3",      lambda la, x: la.linalg.norm(x, 3),        nonzero(4)),
    case("norm",    "fro",           lambda la, x: la.linalg.norm(x, "fro"),    normal(3, 2)),
    case("norm",    "nuc",           lambda la, x: la.linalg.norm(x, "nuc"),    TALL),
    case("norm",    "spectral",      lambda la, x: la.linalg.norm(x, 2),        TALL),
    case("norm",    "min-singular",  lambda la, x: la.linalg.norm(x, -2),       TALL),
    case("norm",    "matrix-1",      lambda la, x: la.linalg.norm(x, 1),        distinct(3, 3)),
    case("norm",    "matrix-inf",    lambda la, x: la.linalg.norm(x, np.inf),   distinct(3, 3)),
    case("norm", "axis-keepdims", lambda la,
         x: la.linalg.norm(x, axis=1, keepdims=True), normal(2, 3)),
    case("norm", "matrix-axes", lambda la,
         x: la.linalg.norm(x, "fro", axis=(0, 2)), normal(2, 2, 3)),
    # triangles and diagonals
    case("tril",     "k0",           lambda la, x: la.tril(x),                  normal(3, 3)),
    case("tril",     "batched-k",    lambda la, x: la.tril(x, -1),              normal(2, 3, 4)),
    case("triu",     "k1",           lambda la, x: la.triu(x, 1),               normal(3, 4)),
    case("diag",     "of-vector",    lambda la, v: la.diag(v, 1),               normal(3)),
    case("diag",     "of-matrix",    lambda la, x: la.diag(x, -1),              normal(3, 3)),
    case("diagonal", "axes",         lambda la, x: la.diagonal(x, 1, 0, 2),     normal(3, 2, 4)),
    case("trace",    "offset",       lambda la, x: la.trace(x, 1),              normal(3, 4)),
]
# fmt: on


@functools.cache
def weights(shape: tuple[int, ...]) -> np.ndarray:
    w = np.random.default_rng([len(shape), *shape]).uniform(0.5, 1.5, shape)
    w.flags.writeable = False
    return w


def loss(y: Any) -> Any:
    """sum(w·y + y²): not linear in y, so the second-order check runs every pullback backwards."""
    w = weights(tuple(np.shape(y))).astype(y.dtype)
    return np.sum(w * y + y * y)


def scalar_loss(c: Case) -> Callable[..., Any]:
    return lambda *xs: loss(c.fn(NumPyLA(), *xs))


def pack(inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    return np.concatenate([x.reshape(-1) for x in inputs])


def unpack(z: Any, shapes: list[tuple[int, ...]]) -> list[Any]:
    parts, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        parts.append(z[start : start + size].reshape(shape))
        start += size
    return parts


def packed_loss(c: Case) -> Callable[[Any], Any]:
    shapes = [x.shape for x in c.inputs]
    return lambda z: loss(c.fn(NumPyLA(), *unpack(z, shapes)))


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_forward_matches_numpy(c: Case) -> None:
    y = c.fn(NumPyLA(), *(tr.param(x) for x in c.inputs))
    expected = c.fn(NumPyLA(), *c.inputs)
    assert tr.istracked(y)
    assert y.shape == np.shape(expected)
    assert y.dtype == np.float64
    assert_close(tr.data(y), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_first_order(c: Case) -> None:
    check_gradient(scalar_loss(c), *c.inputs, rtol=1e-6)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_second_order(c: Case) -> None:
    check_hessian(packed_loss(c), pack(c.inputs), rtol=1e-5)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_float32(c: Case) -> None:
    inputs32 = tuple(x.astype(np.float32) for x in c.inputs)
    y = c.fn(NumPyLA(), *(tr.param(x) for x in inputs32))
    # float32, or float64 next to a float64 constant (NumPy's promotion).
    assert y.dtype == np.result_type(c.fn(NumPyLA(), *inputs32))
    assert_close(tr.data(y), c.fn(NumPyLA(), *c.inputs), rtol=1e-4, atol=1e-4)
    grads32 = tr.gradient(scalar_loss(c), *inputs32)
    grads64 = tr.gradient(scalar_loss(c), *c.inputs)
    for g32, g64 in zip(grads32, grads64, strict=True):
        assert g32.dtype == np.float32
        assert_close(g32, g64, rtol=2e-3, atol=2e-4 * (1 + np.abs(g64).max()))
    hessian32 = tr.hessian(packed_loss(c), pack(inputs32))
    hessian64 = tr.hessian(packed_loss(c), pack(c.inputs))
    assert hessian32.dtype == np.float32
    assert_close(hessian32, hessian64, rtol=2e-3, atol=2e-4 * (1 + np.abs(hessian64).max()))


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_param_back_grad(c: Case) -> None:
    params = [tr.param(x) for x in c.inputs]
    tr.back(loss(c.fn(NumPyLA(), *params)))
    for p, g in zip(params, tr.gradient(scalar_loss(c), *c.inputs), strict=True):
        assert_close(tr.grad(p), g, rtol=1e-12, atol=1e-13)


# -- PyTorch ---------------------------------------------------------------------------------


def torch_loss(torch: Any, y: Any) -> Any:
    w = torch.tensor(weights(tuple(y.shape)), dtype=y.dtype)
    return torch.sum(w * y + y * y)


@pytest.mark.parametrize("c", [c for c in CASES if c.torch], ids=lambda c: c.id)
def test_torch(c: Case, torch: Any) -> None:
    la = TorchLA(torch)

    def f(*xs: Any) -> Any:
        return torch_loss(torch, c.fn(la, *xs))

    tensors = [torch.tensor(x, requires_grad=True) for x in c.inputs]
    expected = torch.autograd.grad(f(*tensors), tensors)
    for g, e in zip(tr.gradient(scalar_loss(c), *c.inputs), expected, strict=True):
        assert_close(g, e.numpy(), rtol=1e-8, atol=1e-10)
    shapes = [x.shape for x in c.inputs]
    hessian = torch.autograd.functional.hessian(
        lambda z: f(*unpack(z, shapes)), torch.tensor(pack(c.inputs))
    ).numpy()
    assert_close(tr.hessian(packed_loss(c), pack(c.inputs)), hessian, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(
    ("label", "fn", "torch_fn"),
    [
        ("eigh", lambda a: np.linalg.eigh(a)[0], lambda t, a: t.linalg.eigh(a)[0]),
        ("cholesky", np.linalg.cholesky, lambda t, a: t.linalg.cholesky(a)),
    ],
)
def test_symmetric_conventions_match_torch(label, fn, torch_fn, torch) -> None:
    """Differentiated with respect to the matrix itself (not a symmetric parametrisation),
    eigh and cholesky give PyTorch's gradient: the one for symmetric perturbations."""
    x = normal(3, 3)
    a = x @ x.T + np.eye(3)
    g = tr.gradient(lambda a: loss(fn(a)), a)[0]
    t = torch.tensor(a, requires_grad=True)
    (expected,) = torch.autograd.grad(torch_loss(torch, torch_fn(torch, t)), t)
    assert_close(g, expected.numpy(), rtol=1e-9, atol=1e-11)
    assert_close(g, g.T, rtol=1e-12, atol=1e-14)


# -- results, modes and options ----------------------------------------------------------------


def test_tuple_results_are_tracked_namedtuples() -> None:
    a = tr.param(M3 @ M3.T)
    w, v = np.linalg.eigh(a)
    assert tr.istracked(w) and tr.istracked(v)
    assert np.linalg.eigh(a).eigenvalues.shape == (3,)
    u, s, vh = np.linalg.svd(tr.param(TALL), full_matrices=False)
    assert (u.shape, s.shape, vh.shape) == ((4, 3), (3,), (3, 3))
    assert_close(tr.data(u * s @ vh), TALL, rtol=1e-12, atol=1e-12)
    q, r = np.linalg.qr(tr.param(TALL))
    assert_close(tr.data(q), np.linalg.qr(TALL)[0], rtol=1e-12, atol=1e-12)
    assert_close(tr.data(r), np.linalg.qr(TALL)[1], rtol=1e-12, atol=1e-12)
    sign, logdet = np.linalg.slogdet(tr.param(NEG))
    assert sign == -1.0 and not tr.istracked(sign) and tr.istracked(logdet)
    assert_close(tr.data(logdet), np.linalg.slogdet(NEG)[1], rtol=1e-13)


def test_square_svd_with_full_matrices_and_svdvals() -> None:
    u, s, vh = np.linalg.svd(tr.param(M3))  # full_matrices=True is the thin SVD when square
    assert_close(tr.data(u * s @ vh), M3, rtol=1e-12, atol=1e-12)
    assert_close(tr.data(np.linalg.svd(tr.param(TALL), compute_uv=False)), np.linalg.svd(TALL)[1])
    g = tr.gradient(lambda x: np.sum(np.linalg.svd(x, compute_uv=False)), M3)[0]
    u, _, vh = np.linalg.svd(M3)
    assert_close(g, u @ vh, rtol=1e-10)


def test_eigh_upper_reads_the_upper_triangle() -> None:
    a = np.triu(M3) + np.triu(M3, 1).T
    junk = a + np.tril(np.ones((3, 3)), -1) * 7.0
    assert_close(tr.data(np.linalg.eigh(tr.param(junk), UPLO="U")[0]), np.linalg.eigvalsh(a))
    assert_close(tr.data(np.linalg.eigvalsh(tr.param(junk), UPLO="U")), np.linalg.eigvalsh(a))


def test_dot_method_on_nd_arrays_is_np_dot() -> None:
    a, b = normal(2, 3, 4), normal(4, 2)
    assert_close(tr.data(tr.param(a).dot(b)), np.dot(a, b), rtol=1e-13)
    assert_close(tr.data(np.dot(tr.param(a), 2.0)), 2.0 * a)


def test_cholesky_upper() -> None:
    a = M3 @ M3.T
    assert_close(tr.data(np.linalg.cholesky(tr.param(a), upper=True)), np.linalg.cholesky(a).T)


def test_multi_dot_and_trace_of_a_product() -> None:
    a, b, c = normal(2, 3), normal(3, 4), normal(4, 2)
    assert_close(tr.data(np.linalg.multi_dot([tr.param(a), b, c])), a @ b @ c, rtol=1e-12)
    check_gradient(lambda x: np.trace(x @ b @ c) ** 2, a)


# -- degenerate inputs: PyTorch's conventions ------------------------------------------------


def test_repeated_eigenvalues_give_finite_eigenvalue_gradients(torch) -> None:
    """A loss of the eigenvalues alone is differentiable at repeated eigenvalues (the pair's
    1/(λⱼ - λᵢ) term is dropped); PyTorch's gradient is the same."""
    a = np.diag([2.0, 2.0, 5.0])
    g = tr.gradient(lambda a: np.sum(np.linalg.eigh(a)[0] ** 2), a)[0]
    assert np.isfinite(g).all()
    t = torch.tensor(a, requires_grad=True)
    (expected,) = torch.autograd.grad(torch.sum(torch.linalg.eigvalsh(t) ** 2), t)
    assert_close(g, expected.numpy(), rtol=1e-12, atol=1e-14)


def test_singular_values_of_a_rank_deficient_matrix_have_finite_gradients(torch) -> None:
    x = np.outer([1.0, 2.0, 3.0], [1.0, -1.0])  # rank 1: one zero singular value
    g = tr.gradient(lambda x: np.sum(np.linalg.svd(x, compute_uv=False) ** 2), x)[0]
    assert_close(g, 2 * x, rtol=1e-12, atol=1e-12)  # d‖x‖²_F = 2x, through U diag(2S) Vᵀ
    t = torch.tensor(x, requires_grad=True)
    (expected,) = torch.autograd.grad((torch.linalg.svdvals(t) ** 2).sum(), t)
    assert_close(g, expected.numpy(), rtol=1e-10, atol=1e-12)


def cofactors(a: np.ndarray) -> np.ndarray:
    """The cofactor matrix by minors: the gradient of det."""
    n = a.shape[0]
    minor = lambda i, j: np.delete(np.delete(a, i, 0), j, 1)  # noqa: E731
    return np.array(
        [[(-1) ** (i + j) * np.linalg.det(minor(i, j)) for j in range(n)] for i in range(n)]
    )


@pytest.mark.parametrize(
    "a",
    [
        [[1.0, 2.0], [2.0, 4.0]],
        [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [4.0, 5.0, 7.0]],
        [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]],
        np.zeros((3, 3)),
    ],
    ids=["rank-1", "zero-row", "rank-2", "zero"],
)
def test_det_gradient_at_singular_matrices_is_the_cofactor_matrix(a) -> None:
    """At a singular matrix (det exactly 0) the gradient goes through the SVD, as
    PyTorch's: cof(A) = det(U) det(V) U diag(prod of the other s) Vᵀ; it is also twice
    differentiable there."""
    a = np.asarray(a)
    assert_close(tr.gradient(np.linalg.det, a)[0], cofactors(a), rtol=1e-10, atol=1e-12)
    batch = np.stack([a, np.eye(len(a)) * 2.0])
    g = tr.gradient(lambda b: np.sum(np.linalg.det(b)), batch)[0]
    assert_close(g[0], cofactors(a), rtol=1e-10, atol=1e-12)
    if len(a) == 3 and a.any():
        check_hessian(lambda z: np.linalg.det(z.reshape(a.shape)), a.reshape(-1))


@pytest.mark.parametrize("ord", [None, 2, 3, 0.5])
def test_norm_of_a_zero_vector_has_gradient_zero(ord, torch) -> None:
    x = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]])
    g = tr.gradient(lambda x: np.sum(np.linalg.norm(x, ord, axis=1)), x)[0]
    t = torch.tensor(x, requires_grad=True)
    (expected,) = torch.autograd.grad(torch.linalg.vector_norm(t, ord or 2, dim=1).sum(), t)
    assert_close(g, expected.numpy(), rtol=1e-12, atol=0)
    assert (g[0] == 0).all()


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: np.linalg.inv(tr.param(np.ones((2, 2)))), np.linalg.LinAlgError,
         ["inv", "Singular matrix"]),
        (lambda: np.linalg.inv(tr.param(np.stack([np.eye(2), np.ones((2, 2))]))),
         np.linalg.LinAlgError, ["inv", "Singular", "matrix 1 of the batch"]),
        (lambda: np.linalg.solve(tr.param(np.zeros((2, 2))), np.ones(2)), np.linalg.LinAlgError,
         ["solve", "Singular"]),
        (lambda: np.linalg.cholesky(tr.param(-np.eye(2))), np.linalg.LinAlgError,
         ["cholesky", "not positive definite"]),
        (lambda: np.linalg.inv(tr.param(np.ones((2, 3)))), np.linalg.LinAlgError,
         ["inv", "square", "[2, 3]"]),
        (lambda: np.linalg.det(tr.param(np.ones(3))), np.linalg.LinAlgError,
         ["det", "1-dimensional", "at least two-dimensional"]),
        (lambda: np.linalg.eigh(tr.param(np.ones((3, 2)))), np.linalg.LinAlgError,
         ["eigh", "square"]),
        (lambda: np.linalg.solve(tr.param(np.eye(3)), np.ones((2, 1))), ValueError,
         ["solve", "[3, 3]", "[2, 1]", "3 rows"]),
        (lambda: tr.param(np.ones((2, 2, 3))) @ np.ones((2, 4, 2)), ValueError,
         ["matmul", "aligned", "[2, 2, 3]", "[2, 4, 2]"]),
        (lambda: tr.param(np.ones((2, 2, 3))) @ np.ones((3, 3, 2)), ValueError,
         ["matmul", "broadcast"]),
        (lambda: tr.gradient(lambda a: np.sum(np.linalg.qr(a, mode="complete")[0]), TALL),
         tr.NestingError, ["qr(mode='complete')", "no gradient", "reduced"]),
        (lambda: np.linalg.qr(tr.param(TALL), mode="raw"), TypeError, ["raw"]),
        (lambda: np.einsum(tr.param(M3), [0, 1]), TypeError, ["einsum", "subscripts"]),
        (lambda: np.einsum("ij,jk", tr.param(M3), np.ones((2, 2))), ValueError,
         ["einsum", "'j'", "3", "2"]),
        (lambda: np.einsum("i?", tr.param(M3)), ValueError, ["einsum", "'?'"]),
        (lambda: np.einsum("ij->k", tr.param(M3)), ValueError, ["einsum", "'k'"]),
        (lambda: np.tensordot(tr.param(M3), np.ones((2, 3)), axes=([0], [0])), ValueError,
         ["tensordot", "3", "2"]),
        (lambda: np.linalg.norm(tr.param(np.ones((2, 2))), "bad"), ValueError, ["norm", "'bad'"]),
        (lambda: np.diagonal(tr.param(np.ones(3))), ValueError, ["diagonal", "two dimensions"]),
    ],
)  # fmt: skip
def test_errors_name_the_function_and_the_problem(call, error, words) -> None:
    with pytest.raises(error) as excinfo:
        call()
    for word in words:
        assert word in str(excinfo.value), (word, str(excinfo.value))


@pytest.mark.parametrize(
    ("label", "f", "a", "words"),
    [
        (
            "slogdet",
            lambda a: np.exp(np.linalg.slogdet(a)[1]),
            np.ones((2, 2)),
            ["slogdet", "singular"],
        ),
        ("qr", lambda a: np.sum(np.linalg.qr(a)[0]), np.ones((3, 2)), ["qr", "rank-deficient"]),
    ],
)
def test_gradients_that_need_an_inverse_raise_at_singular_matrices(label, f, a, words) -> None:
    f(tr.param(a))  # the forward pass works
    with pytest.raises(np.linalg.LinAlgError) as excinfo:
        tr.gradient(f, a)
    for word in words:
        assert word in str(excinfo.value)


def test_linalg_errors_match_numpys_exception_types() -> None:
    for a in (np.ones((2, 2)), np.ones((2, 3))):
        with pytest.raises(np.linalg.LinAlgError):
            np.linalg.inv(a)
        with pytest.raises(np.linalg.LinAlgError):
            np.linalg.inv(tr.param(a))


# -- properties: matmul's broadcasting and einsum against NumPy -----------------------------


@st.composite
def matmul_operands(draw: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two operands NumPy's matmul takes: batches that broadcast (dims dropped or set to 1
    on either side), and 1-D operands."""
    batch = draw(st.lists(st.integers(1, 3), max_size=3))
    m, k, n = (draw(st.integers(1, 3)) for _ in range(3))

    def side() -> list[int]:
        dims = [d if draw(st.booleans()) else 1 for d in batch]
        return dims[draw(st.integers(0, len(dims))) :]

    a_shape = [k] if draw(st.booleans()) else [*side(), m, k]
    b_shape = [k] if draw(st.booleans()) else [*side(), k, n]
    seed = draw(st.integers(0, 2**16))
    r = np.random.default_rng(seed)
    return r.standard_normal(a_shape), r.standard_normal(b_shape)


@settings(max_examples=60, deadline=None)
@given(matmul_operands())
def test_matmul_broadcasts_as_numpy(operands: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = operands
    expected = np.matmul(a, b)
    y = tr.param(a) @ tr.param(b)
    assert y.shape == expected.shape
    assert_close(tr.data(y), expected, rtol=1e-12, atol=1e-12)
    # Bilinear, so central differences are exact: the gradients summed over broadcast batches.
    check_gradient(lambda a, b: np.sum(weights(expected.shape) * (a @ b)), a, b)


EINSUM_SPECS = [
    "ij,jk->ik", "ij,kj->ik", "ij->", "ij->j", "ii->", "ii->i", "ij,ij->ij", "ij,ij",
    "i,i->", "i,j->ij", "ijk,kl->ijl", "bij,bjk->bik", "ij,jk,kl", "iij->j", "ij,j->i",
    "...ij,...jk->...ik", "...i,...i->...", "ji", "i,i,i->i", "ijk->kij",
]  # fmt: skip


@pytest.mark.parametrize("spec", EINSUM_SPECS)
def test_einsum_matches_numpy(spec: str) -> None:
    sizes = {c: 2 + (ord(c) % 3) for c in string_letters(spec)}
    r = np.random.default_rng(len(spec))
    inputs = spec.split("->")[0].split(",")
    arrays = [
        r.standard_normal([2] * (term.count(".") // 3) + [sizes[c] for c in term.replace(".", "")])
        for term in inputs
    ]
    expected = np.einsum(spec, *arrays)
    y = np.einsum(spec, *(tr.param(x) for x in arrays))
    assert np.shape(y) == np.shape(expected)
    assert_close(tr.data(y), expected, rtol=1e-12, atol=1e-12)
    check_gradient(lambda *xs: np.sum(np.einsum(spec, *xs) ** 2), *arrays)


def string_letters(spec: str) -> set[str]:
    return {c for c in spec if c.isalpha()}


# -- coverage: every linear-algebra op of the core is in the table ---------------------------

CORE = Path(__file__).resolve().parents[1] / "crates" / "tracker-core" / "src"
LINALG_OPS = {"inv", "det", "slogdet", "solve", "solve_triangular", "cholesky", "eigh", "svd", "qr"}


@pytest.mark.skipif(not CORE.is_dir(), reason="the Rust sources are not beside the tests")
def test_every_linalg_op_is_in_the_table() -> None:
    names = set(
        re.findall(r'Op::\w+(?:\s*\{[^}]*\})?\s*=>\s*"(\w+)"', (CORE / "op.rs").read_text())
    )
    assert names >= LINALG_OPS
    ops = (CORE / "ops" / "linalg.rs").read_text()
    # Each op's forward kernel lives in ops/linalg.rs, and each is gradient-checked here.
    assert all(f"pub fn {name}(" in ops for name in LINALG_OPS)
    assert {c.op for c in CASES} >= LINALG_OPS


def test_python_numbers_stay_weakly_typed_in_products() -> None:
    x = tr.param(np.ones(3, dtype=np.float32))
    assert np.dot(x, 0.75).dtype == np.float32
    assert np.inner(2.0, x).dtype == np.float32


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (2, 4, 3)])
def test_full_matrices_svd_completes_with_constants(shape, torch) -> None:
    """NumPy's default: square U and Vh; the added vectors are constants whose gradient is
    ignored, as PyTorch's."""
    a = np.random.default_rng(1).standard_normal(shape)
    u, s, vh = (tr.data(v) for v in np.linalg.svd(tr.param(a)))
    un, _, vhn = np.linalg.svd(a)
    assert u.shape == un.shape and vh.shape == vhn.shape
    k = min(shape[-2:])
    np.testing.assert_allclose((u[..., :k] * s[..., None, :]) @ vh[..., :k, :], a, atol=1e-12)
    eye = np.eye(shape[-2]), np.eye(shape[-1])
    np.testing.assert_allclose(
        np.swapaxes(u, -1, -2) @ u, np.broadcast_to(eye[0], u.shape), atol=1e-12
    )
    np.testing.assert_allclose(
        vh @ np.swapaxes(vh, -1, -2), np.broadcast_to(eye[1], vh.shape), atol=1e-12
    )

    def loss(a):
        u, s, _ = np.linalg.svd(a)
        return np.sum(s**3) + np.sum(np.abs(u[..., :, :k]) * 0.0)

    (g,) = tr.gradient(loss, a)
    t = torch.tensor(a, requires_grad=True)
    (torch.linalg.svd(t, full_matrices=True)[1] ** 3).sum().backward()
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_complete_qr_of_a_tall_matrix_gives_values_without_gradient() -> None:
    q, r = (tr.data(v) for v in np.linalg.qr(tr.param(TALL), mode="complete"))
    qn, rn = np.linalg.qr(TALL, mode="complete")
    assert q.shape == qn.shape and r.shape == rn.shape
    np.testing.assert_allclose(q @ r, TALL, atol=1e-12)
    np.testing.assert_allclose(q.T @ q, np.eye(q.shape[0]), atol=1e-12)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (np.ones((3, 0)), np.ones((0, 4))),  # no inner dimension: zeros, written by hand
        (np.ones((2, 0, 3)), np.ones((3, 5))),  # an empty batch of rows
        (np.arange(64 * 48.0).reshape(64, 48), np.full((48, 40), 0.5)),
        (np.full((40, 48), -2.0), np.arange(48 * 64.0).reshape(48, 64)),
    ],
)
def test_matmul_writes_every_element_of_its_output(a: np.ndarray, b: np.ndarray) -> None:
    # The output starts uninitialised: a stale element would show here. The gradients'
    # products with the sum's seed are rank one, written by hand on either side.
    for _ in range(3):
        assert_close(tr.data(tr.param(a) @ tr.param(b)), a @ b, rtol=1e-14, atol=0)
    ga, gb = tr.gradient(lambda a, b: np.sum(a @ b), a, b)
    # d/da[..., i, l] = sum_j b[l, j];  d/db[l, j] = sum over the batch and i of a[..., i, l]
    assert_close(ga, np.broadcast_to(b.sum(axis=-1), a.shape))
    column_sums = a.sum(axis=tuple(range(a.ndim - 1)))
    assert_close(gb, np.broadcast_to(column_sums[:, None], b.shape))
