"""Benchmarks of the workloads in WORKLOADS.md: tracker against NumPy and the peers.

    python bench/bench.py                       # every workload, every framework installed
    python bench/bench.py --smoke               # each workload once, gradients checked, no timing
    python bench/bench.py --threads 1 --json bench/results.json
    python bench/bench.py --workloads W2 --frameworks numpy,tracker,torch

Each (framework, workload) pair runs in a fresh subprocess of this script
(`--worker FRAMEWORK WORKLOAD`), which prints one JSON result line. Before a
framework is timed, its gradient is checked against a gradient derived by hand
in NumPy, and that one against a complex-step derivative of the NumPy forward
pass. Times are per gradient call (forward + backward, gradients returned),
reported as the median and the minimum over several batches, and as ratios to
the NumPy forward pass of the same workload in the same run (the cost floor).

A workload is one function decorated with `@workload`; a framework is one
function decorated with `@framework`. The loss of a workload is written once,
against a namespace `m` (numpy, torch, jax.numpy, autograd.numpy or mygrad).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

RESULT_PREFIX = "BENCH-RESULT "
WORKER_TIMEOUT_S = 1800
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "RAYON_NUM_THREADS",
    "TRACKER_NUM_THREADS",
    "MATMUL_NUM_THREADS",  # matrixmultiply's, behind tracker's matrix products
)


# --------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    """One benchmark: inputs, the loss written once for every framework, its gradient by hand.

    `loss(m, params, consts)` computes the scalar loss with the array namespace `m`
    (see `Ops`); `params` are differentiated, `consts` are not. `params` reach the loss
    as a tuple, or as a dict keyed by `names` when those are given (W3's `{W1, b1, W2,
    b2}`). `grad(params, consts)` is the gradient with respect to each of `params`,
    derived by hand in NumPy, as a tuple in the order of `params`.
    """

    id: str
    title: str
    params: tuple[np.ndarray, ...]
    consts: tuple[np.ndarray, ...]
    loss: Callable[[Ops, Any, Sequence[Any]], Any]
    grad: Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], tuple[np.ndarray, ...]]
    names: tuple[str, ...] | None = None  # the parameters are passed as one dict
    n_ops: int | None = None  # recorded operations, for a per-op time
    analytic: bool = True  # holomorphic in params: the complex-step check applies
    memory: bool = False  # also measure the tape's transient memory
    rtol: float = 1e-9  # gradient check tolerance, relative to the largest entry
    value_rtol: float = 1e-12  # loss check tolerance, relative to the loss

    def pack(self, leaves: Sequence[Any]) -> Any:
        """The parameters as the loss takes them: a tuple, or a dict keyed by `names`."""
        if self.names is None:
            return tuple(leaves)
        return dict(zip(self.names, leaves, strict=True))

    def unpack(self, packed: Any) -> tuple[Any, ...]:
        """The inverse of `pack`: a tuple in the order of `params`."""
        if self.names is None:
            return tuple(packed)
        return tuple(packed[name] for name in self.names)


WORKLOADS: dict[str, Callable[[], Workload]] = {}


def workload(make: Callable[[], Workload]) -> Callable[[], Workload]:
    """Register a workload; its function's name, upper-cased, is its id (`w1` -> `W1`)."""
    WORKLOADS[make.__name__.upper()] = make
    return make


def _exclusive_products(z: np.ndarray) -> np.ndarray:
    """`out[j] = prod(z[k] for k != j)` without division, so zeros are fine."""
    before = np.concatenate(([1.0], np.cumprod(z[:-1])))
    after = np.concatenate((np.cumprod(z[:0:-1])[::-1], [1.0]))
    return before * after


@workload
def w1() -> Workload:
    def loss(m, params, consts):
        (x,) = params
        return m.sum(x**2) + m.prod(x[1:])

    def grad(params, consts):
        (x,) = params
        g = 2.0 * x
        g[1:] += _exclusive_products(x[1:])
        return (g,)

    return Workload(
        id="W1",
        title="sum(x**2) + prod(x[1:]) at x = [1., 2., 3.]",
        params=(np.array([1.0, 2.0, 3.0]),),
        consts=(),
        loss=loss,
        grad=grad,
    )


W2_STEPS = 500


@workload
def w2() -> Workload:
    rng = np.random.default_rng(2)
    x = rng.standard_normal(4)
    # a near 1 and b small keep the map y -> tanh(a*y + b) from crushing the
    # gradient into subnormal numbers (which would time the FPU's slow path).
    a = rng.uniform(0.9, 1.1, 4)
    b = rng.uniform(-0.1, 0.1, 4)

    def loss(m, params, consts):
        (y,) = params
        a, b = consts
        for _ in range(W2_STEPS):
            y = m.tanh(y * a + b)
        return m.sum(y)

    def grad(params, consts):
        (x,) = params
        a, b = consts
        ys = [x]
        for _ in range(W2_STEPS):
            ys.append(np.tanh(ys[-1] * a + b))
        dy = np.ones_like(x)
        for y in reversed(ys[1:]):
            dy = dy * (1.0 - y * y) * a
        return (dy,)

    return Workload(
        id="W2",
        title=f"y = x (4,); {W2_STEPS} times y = tanh(y * a + b); sum(y)",
        params=(x,),
        consts=(a, b),
        loss=loss,
        grad=grad,
        n_ops=3 * W2_STEPS + 1,
    )


W3_BATCH, W3_IN, W3_HIDDEN, W3_OUT = 64, 784, 256, 10


@workload
def w3() -> Workload:
    rng = np.random.default_rng(3)
    f32 = np.float32
    params = (
        (rng.standard_normal((W3_IN, W3_HIDDEN)) / np.sqrt(W3_IN)).astype(f32),
        (0.1 * rng.standard_normal(W3_HIDDEN)).astype(f32),
        (rng.standard_normal((W3_HIDDEN, W3_OUT)) / np.sqrt(W3_HIDDEN)).astype(f32),
        (0.1 * rng.standard_normal(W3_OUT)).astype(f32),
    )
    X = rng.standard_normal((W3_BATCH, W3_IN)).astype(f32)
    labels = rng.integers(0, W3_OUT, W3_BATCH)
    Y = np.eye(W3_OUT, dtype=f32)[labels]  # one-hot targets
    scale = -1.0 / W3_BATCH

    def loss(m, params, consts):
        X, Y = consts
        h = m.tanh(X @ params["W1"] + params["b1"])
        z = h @ params["W2"] + params["b2"]
        # log-softmax, shifted by the row maxima held constant (the shift cancels)
        s = z - m.max(m.stop_gradient(z), axis=1, keepdims=True)
        logp = s - m.log(m.sum(m.exp(s), axis=1, keepdims=True))
        return m.sum(Y * logp) * scale

    def grad(params, consts):
        W1, b1, W2, b2 = params
        X, Y = consts
        h = np.tanh(X @ W1 + b1)
        z = h @ W2 + b2
        e = np.exp(z - np.max(z, axis=1, keepdims=True))
        p = e / np.sum(e, axis=1, keepdims=True)
        dz = (p * np.sum(Y, axis=1, keepdims=True) - Y) * -scale
        dh = (dz @ W2.T) * (1 - h * h)
        return (X.T @ dh, np.sum(dh, axis=0), h.T @ dz, np.sum(dz, axis=0))

    return Workload(
        id="W3",
        title=(
            f"float32 MLP step: batch {W3_BATCH}, {W3_IN} -> {W3_HIDDEN} (tanh) -> {W3_OUT}, "
            "log-softmax cross-entropy; gradient for {W1, b1, W2, b2}"
        ),
        params=params,
        consts=(X, Y),
        loss=loss,
        grad=grad,
        names=("W1", "b1", "W2", "b2"),
        rtol=1e-4,
        value_rtol=1e-5,
    )


W4_N = 10**6


@workload
def w4() -> Workload:
    x = np.random.default_rng(4).standard_normal(W4_N)

    def loss(m, params, consts):
        (x,) = params
        return m.sum(m.exp(m.sin(x)) * x**2 + m.tanh(x))

    def grad(params, consts):
        (x,) = params
        e = np.exp(np.sin(x))
        t = np.tanh(x)
        return (e * (np.cos(x) * x + 2.0) * x + (1.0 - t * t),)

    return Workload(
        id="W4",
        title="x of 10^6: sum(exp(sin(x)) * x**2 + tanh(x))",
        params=(x,),
        consts=(),
        loss=loss,
        grad=grad,
        memory=True,
        value_rtol=1e-10,  # a sum of 10^6 terms, in whatever order each framework adds
    )


def _rosenbrock_grad(x: np.ndarray) -> np.ndarray:
    d = x[1:] - x[:-1] ** 2
    g = np.zeros_like(x)
    g[1:] = 200.0 * d
    g[:-1] += -400.0 * x[:-1] * d - 2.0 * (1.0 - x[:-1])
    return g


W5_N = 10**5


@workload
def w5() -> Workload:
    x = np.random.default_rng(5).uniform(-2.0, 2.0, W5_N)

    def loss(m, params, consts):
        (x,) = params
        return m.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    return Workload(
        id="W5",
        title="Rosenbrock, vectorised, n = 10^5",
        params=(x,),
        consts=(),
        loss=loss,
        grad=lambda params, consts: (_rosenbrock_grad(params[0]),),
        value_rtol=1e-10,
    )


W6_N = 100


@workload
def w6() -> Workload:
    x = np.random.default_rng(6).uniform(-2.0, 2.0, W6_N)

    def loss(m, params, consts):
        (x,) = params
        total = 0.0
        for i in range(len(x) - 1):
            total = total + 100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2
        return total

    def grad(params, consts):
        # the same loop over scalars, forward and back, as one would write it by hand
        (x,) = params
        g = np.zeros_like(x)
        for i in range(len(x) - 1):
            xi = x[i]
            d = x[i + 1] - xi * xi
            g[i] += -400.0 * xi * d - 2.0 * (1.0 - xi)
            g[i + 1] += 200.0 * d
        return (g,)

    return Workload(
        id="W6",
        title=f"Rosenbrock, a Python loop over scalars x[i], n = {W6_N}",
        params=(x,),
        consts=(),
        loss=loss,
        grad=grad,
    )


W7_N = 512


@workload
def w7() -> Workload:
    rng = np.random.default_rng(7)
    # A @ B of unit variance entries, so tanh is neither linear nor saturated
    params = (
        rng.standard_normal((W7_N, W7_N)) / np.sqrt(W7_N),
        rng.standard_normal((W7_N, W7_N)),
        rng.standard_normal((W7_N, W7_N)),
    )

    def loss(m, params, consts):
        A, B, C = params
        return m.sum(m.tanh(A @ B) @ C)

    def grad(params, consts):
        # sum's seed is all ones, so the two products with it are row and column sums
        A, B, C = params
        H = np.tanh(A @ B)
        dZ = (1.0 - H * H) * np.sum(C, axis=1)  # d/dH = ones @ C.T, broadcast by rows
        dC = np.broadcast_to(np.sum(H, axis=0)[:, None], C.shape).copy()  # H.T @ ones
        return (dZ @ B.T, A.T @ dZ, dC)

    return Workload(
        id="W7",
        title=f"A, B, C of {W7_N}x{W7_N}: sum(tanh(A @ B) @ C), gradient for A, B, C",
        params=params,
        consts=(),
        loss=loss,
        grad=grad,
        memory=True,
        value_rtol=1e-10,
    )


# --------------------------------------------------------------------------- frameworks


class Ops:
    """The array namespace a loss is written against: a module, plus `stop_gradient`.

    `overrides` replaces the module's functions where its spelling differs from
    NumPy's (torch's `max` with `axis=` returns indices too: `amax` does not).
    """

    def __init__(
        self, module: Any, stop_gradient: Callable[[Any], Any], **overrides: Callable[..., Any]
    ) -> None:
        self._module = module
        self.stop_gradient = stop_gradient
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        # Kept once found: a name missing from the instance raises and formats an
        # AttributeError before this runs (0.6 us, more than `np.tanh` of 4 elements).
        found = getattr(self._module, name)
        setattr(self, name, found)
        return found


NUMPY_OPS = Ops(np, lambda x: x)


class Missing(Exception):
    """The framework is not installed."""


@dataclass
class Runner:
    """A framework's way to run one workload.

    `run()` is what is timed. For a gradient framework it returns the gradients (a
    tuple, one per parameter, as NumPy arrays); `value()`, if given, returns the loss
    through the same framework, for the check.
    """

    version: str
    kind: str  # "forward" (no AD), "reference" (NumPy by hand) or "gradient"
    run: Callable[[], Any]
    value: Callable[[], float] | None = None


FRAMEWORKS: dict[str, Callable[[Workload], Runner]] = {}
# What `--smoke` runs unless --frameworks says otherwise (CI has no peers).
SMOKE_FRAMEWORKS = ("numpy", "numpy-grad", "tracker")


def framework(name: str) -> Callable[[Callable[[Workload], Runner]], Callable[[Workload], Runner]]:
    """Register a framework under `name` (the order of registration is the table's order)."""

    def register(make: Callable[[Workload], Runner]) -> Callable[[Workload], Runner]:
        FRAMEWORKS[name] = make
        return make

    return register


def _import(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise Missing(f"{name}: {error}") from error


def _version(module: Any, distribution: str) -> str:
    from importlib import metadata

    version = getattr(module, "__version__", None)
    if version is None:
        try:
            version = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            version = "?"
    return str(version)


def _numpy_loss(wl: Workload) -> Any:
    return wl.loss(NUMPY_OPS, wl.pack(wl.params), wl.consts)


@framework("numpy")
def numpy_forward(wl: Workload) -> Runner:
    """The forward pass alone, no AD: the floor every ratio is relative to."""
    return Runner(
        version=np.__version__,
        kind="forward",
        run=lambda: _numpy_loss(wl),
        value=lambda: float(_numpy_loss(wl)),
    )


@framework("numpy-grad")
def numpy_by_hand(wl: Workload) -> Runner:
    """The gradient derived by hand: what a tape competes with."""
    return Runner(
        version=np.__version__,
        kind="reference",
        run=lambda: wl.grad(wl.params, wl.consts),
    )


@framework("tracker")
def tracker(wl: Workload) -> Runner:
    tr = _import("tracker")
    ops = Ops(np, tr.data)
    consts = wl.consts

    if wl.names is None:  # one argument per parameter, as `tr.gradient(f, x)` is used

        def f(*params):
            return wl.loss(ops, params, consts)

        def run():
            return tr.gradient(f, *wl.params)

        def value():
            return float(tr.withgradient(f, *wl.params)[0])

    else:  # one dict of parameters

        def f(params):
            return wl.loss(ops, params, consts)

        def run():
            (grads,) = tr.gradient(f, wl.pack(wl.params))
            return wl.unpack(grads)

        def value():
            return float(tr.withgradient(f, wl.pack(wl.params))[0])

    return Runner(version=_version(tr, "tracker"), kind="gradient", run=run, value=value)


def _torch_max(torch: Any) -> Callable[..., Any]:
    def amax(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return torch.amax(x) if axis is None else torch.amax(x, dim=axis, keepdim=keepdims)

    return amax


@framework("torch")
def torch_eager(wl: Workload) -> Runner:
    torch = _import("torch")
    ops = Ops(torch, lambda t: t.detach(), max=_torch_max(torch))
    consts = tuple(torch.from_numpy(c) for c in wl.consts)

    def call(want_value: bool):
        leaves = [torch.from_numpy(p).requires_grad_() for p in wl.params]
        loss = wl.loss(ops, wl.pack(leaves), consts)
        if want_value:
            return loss.item()
        grads = torch.autograd.grad(loss, leaves)
        return tuple(g.numpy() for g in grads)

    return Runner(
        version=_version(torch, "torch"),
        kind="gradient",
        run=lambda: call(False),
        value=lambda: call(True),
    )


def _jax() -> tuple[Any, Any]:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    jax = _import("jax")
    jax.config.update("jax_enable_x64", True)
    return jax, _import("jax.numpy")


@framework("jax")
def jax_eager(wl: Workload) -> Runner:
    """`jax.grad` without `jit`: each op dispatched eagerly."""
    jax, jnp = _jax()
    ops = Ops(jnp, jax.lax.stop_gradient)
    consts = tuple(jnp.asarray(c) for c in wl.consts)

    def f(params):
        return wl.loss(ops, params, consts)

    grad = jax.grad(f)
    return Runner(
        version=_version(jax, "jax"),
        kind="gradient",
        run=lambda: tuple(np.asarray(g) for g in wl.unpack(grad(wl.pack(wl.params)))),
        value=lambda: float(f(wl.pack(wl.params))),
    )


@framework("jax-jit")
def jax_jit(wl: Workload) -> Runner:
    """`jax.jit(jax.value_and_grad(f))`: compiled once (in the warm-up), then called.

    The parameters go in as NumPy arrays on every call and the gradients come back
    as NumPy arrays, as for every framework; the constants are arguments too, so
    that XLA cannot fold them into the compiled program.
    """
    jax, jnp = _jax()
    ops = Ops(jnp, jax.lax.stop_gradient)
    consts = tuple(jnp.asarray(c) for c in wl.consts)

    def f(params, consts):
        return wl.loss(ops, params, consts)

    value_and_grad = jax.jit(jax.value_and_grad(f))

    def run():
        _value, grads = value_and_grad(wl.pack(wl.params), consts)
        return tuple(np.asarray(g) for g in wl.unpack(grads))

    return Runner(
        version=_version(jax, "jax"),
        kind="gradient",
        run=run,
        value=lambda: float(value_and_grad(wl.pack(wl.params), consts)[0]),
    )


@framework("autograd")
def hips_autograd(wl: Workload) -> Runner:
    autograd = _import("autograd")
    anp = _import("autograd.numpy")
    tracer = _import("autograd.tracer")
    ops = Ops(anp, tracer.getval)

    def f(params):
        return wl.loss(ops, params, wl.consts)

    grad = autograd.grad(f)  # with respect to the tuple (or dict) of parameters
    return Runner(
        version=_version(autograd, "autograd"),
        kind="gradient",
        run=lambda: wl.unpack(grad(wl.pack(wl.params))),
        value=lambda: float(f(wl.pack(wl.params))),
    )


@framework("mygrad")
def mygrad_eager(wl: Workload) -> Runner:
    mg = _import("mygrad")
    ops = Ops(mg, lambda t: t.data if isinstance(t, mg.Tensor) else t)

    def call(want_value: bool):
        leaves = [mg.tensor(p) for p in wl.params]
        loss = wl.loss(ops, wl.pack(leaves), wl.consts)
        if want_value:
            return loss.item()
        loss.backward()
        return tuple(t.grad for t in leaves)

    return Runner(
        version=_version(mg, "mygrad"),
        kind="gradient",
        run=lambda: call(False),
        value=lambda: call(True),
    )


# --------------------------------------------------------------------------- checks


class CheckFailed(Exception):
    pass


def _compare(name: str, got: Any, want: np.ndarray, rtol: float) -> float:
    """Check `got` against `want` entrywise; return the largest error relative to `want`."""
    got = np.asarray(got)
    if got.shape != want.shape or got.dtype != want.dtype:
        raise CheckFailed(f"{name}: {got.dtype}{got.shape}, expected {want.dtype}{want.shape}")
    scale = float(np.max(np.abs(want))) if want.size else 1.0
    scale = scale or 1.0
    error = float(np.max(np.abs(got - want))) / scale if want.size else 0.0
    if not error <= rtol:  # also catches NaN
        raise CheckFailed(
            f"{name}: largest error {error:.3g} relative to max|expected| = {scale:.3g} "
            f"(tolerance {rtol:g})\n  got      {got!r}\n  expected {want!r}"
        )
    return error


def _float64(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    return tuple(a.astype(np.float64) if a.dtype == np.float32 else a for a in arrays)


def check_reference(wl: Workload) -> str:
    """Check the hand-derived gradient against the NumPy forward pass.

    Analytic workloads use a complex-step directional derivative, exact to rounding
    even where the gradient is tiny; others use central differences, loosely. Both
    sides are computed in float64 (float32 inputs are widened), so that the check
    is of the derivation, not of float32's rounding.
    """
    params, consts = _float64(wl.params), _float64(wl.consts)
    grads = wl.grad(params, consts)
    if len(grads) != len(params):
        raise CheckFailed(f"hand gradient: {len(grads)} arrays for {len(params)} parameters")
    for i, (p, g) in enumerate(zip(wl.params, wl.grad(wl.params, wl.consts))):
        g = np.asarray(g)
        if g.shape != p.shape or g.dtype != p.dtype:
            raise CheckFailed(f"hand gradient {i}: {g.dtype}{g.shape}, expected {p.dtype}{p.shape}")
    rng = np.random.default_rng(0)
    worst = 0.0
    for i, (p, g) in enumerate(zip(params, grads)):
        direction = rng.standard_normal(p.shape)
        exact = float(np.sum(g * direction))
        if wl.analytic:
            h = 1e-30
            shifted = [q.astype(complex) for q in params]
            shifted[i] = p + 1j * h * direction
            estimate = float(np.imag(wl.loss(NUMPY_OPS, wl.pack(shifted), consts))) / h
            tol = 1e-10 * abs(exact) + 1e-300
        else:
            h = 1e-6
            plus, minus = list(params), list(params)
            plus[i], minus[i] = p + h * direction, p - h * direction
            f_plus = float(wl.loss(NUMPY_OPS, wl.pack(plus), consts))
            f_minus = float(wl.loss(NUMPY_OPS, wl.pack(minus), consts))
            estimate = (f_plus - f_minus) / (2 * h)
            tol = 1e-5 * abs(exact) + 1e-7 * (abs(f_plus) + 1.0)
        if not abs(estimate - exact) <= tol:
            raise CheckFailed(
                f"hand gradient {i}: directional derivative {exact!r}, "
                f"{'complex step' if wl.analytic else 'finite differences'} gives {estimate!r}"
            )
        worst = max(worst, abs(estimate - exact) / (abs(exact) or 1.0))
    method = "complex step" if wl.analytic else "finite differences"
    return f"hand gradient = {method} (rel. err. {worst:.1e})"


def check(wl: Workload, runner: Runner) -> str:
    """Check what `runner` computes before it is timed; return a one-line summary."""
    if runner.kind == "reference":
        return check_reference(wl)
    expected_value = float(_numpy_loss(wl))
    notes = []
    if runner.value is not None:
        value = runner.value()
        tolerance = wl.value_rtol * max(1.0, abs(expected_value))
        if not abs(value - expected_value) <= tolerance:
            raise CheckFailed(f"loss {value!r}, expected {expected_value!r}")
        notes.append("loss")
    if runner.kind == "gradient":
        grads = runner.run()
        expected = wl.grad(wl.params, wl.consts)
        if not isinstance(grads, (tuple, list)) or len(grads) != len(expected):
            raise CheckFailed(
                f"gradient: expected a tuple of {len(expected)} arrays, got {type(grads).__name__}"
            )
        worst = 0.0
        for i, (got, want) in enumerate(zip(grads, expected)):
            worst = max(worst, _compare(f"gradient {i}", got, want, wl.rtol))
        notes.append(f"gradient (rel. err. {worst:.1e})")
    return " and ".join(notes) + " match NumPy"


# --------------------------------------------------------------------------- timing


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def measure_memory(run: Callable[[], Any], calls: int = 2) -> tuple[float | None, str]:
    """Peak resident memory during `calls` calls minus the memory just before (MB).

    The peak is the kernel's high-water mark (VmHWM), reset to the current RSS by
    writing 5 to /proc/self/clear_refs. Where that is refused, the worker is still a
    fresh process that has done nothing but import and build its inputs: a peak above
    that earlier one is exact, otherwise only an upper bound is known. Returns the
    megabytes and how they were measured ("reset", "fresh" or "bound"); (None, why)
    without /proc.
    """
    try:
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")
            method = "reset"
        except OSError:
            method = "fresh"
        before = _status_kb("VmRSS")
        earlier_peak = _status_kb("VmHWM")
        for _ in range(calls):
            run()
        peak = _status_kb("VmHWM")
    except OSError as error:
        return None, f"unavailable: {error}"
    if method == "fresh" and peak <= earlier_peak:
        method = "bound"  # the calls stayed under the imports' peak: at most this much
    return max(peak - before, 0) / 1024, method


def time_batches(
    run: Callable[[], Any], batches: int, batch_time: float, warmup_time: float
) -> tuple[list[float], int]:
    """Per-call seconds of each batch, and the calls per batch."""
    start = time.perf_counter()
    calls = 0
    while calls < 3 or time.perf_counter() - start < warmup_time:
        run()
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    number = max(1, int(batch_time / per_call))
    times = []
    for _ in range(batches):
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(number):
            run()
        times.append((time.perf_counter() - t0) / number)
    return times, number


# --------------------------------------------------------------------------- worker


def worker(args: argparse.Namespace) -> int:
    result: dict[str, Any] = {"framework": args.framework, "workload": args.workload}
    status = 0
    try:
        wl = WORKLOADS[args.workload]()
        try:
            runner = FRAMEWORKS[args.framework](wl)
        except Missing as missing:
            result.update(status="missing", error=str(missing))
        else:
            result.update(version=runner.version, kind=runner.kind)
            if wl.memory and not args.smoke:
                # first, in the fresh process: two gradient calls, nothing before them
                result["memory_mb"], result["memory_method"] = measure_memory(runner.run)
            result["check"] = check(wl, runner)
            if args.smoke:
                result["status"] = "ok"
            else:
                times, number = time_batches(
                    runner.run, args.batches, args.batch_time, args.warmup_time
                )
                result.update(
                    status="ok",
                    median_s=statistics.median(times),
                    min_s=min(times),
                    calls_per_batch=number,
                    batch_times_s=times,
                    n_ops=wl.n_ops,
                )
    except CheckFailed as failed:
        result.update(status="error", error=f"check failed: {failed}")
        status = 1
    except Exception:
        result.update(status="error", error=traceback.format_exc())
        status = 1
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return status


# --------------------------------------------------------------------------- driver


Threads = int | None  # a thread count for every library, or None for their defaults


def parse_threads(spec: str | None) -> list[Threads]:
    """`--threads`: "default", a count, or several, comma-separated ("default,1")."""
    if spec is None:
        return [None]
    settings: list[Threads] = []
    for item in spec.split(","):
        item = item.strip()
        if item == "default":
            settings.append(None)
        elif item.isdigit() and int(item) > 0:
            settings.append(int(item))
        else:
            raise SystemExit(f"--threads: {item!r} is neither 'default' nor a positive count")
    return list(dict.fromkeys(settings))


def threads_label(threads: Threads) -> str:
    return "default" if threads is None else str(threads)


def worker_env(threads: Threads) -> dict[str, str]:
    env = dict(os.environ)
    if threads is not None:
        for name in THREAD_VARIABLES:
            env[name] = str(threads)
        if threads == 1:
            env["XLA_FLAGS"] = (
                env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
            ).strip()
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


def run_worker(
    framework_name: str, workload_id: str, args: argparse.Namespace, threads: Threads = None
) -> dict[str, Any]:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        framework_name,
        workload_id,
        f"--batches={args.batches}",
        f"--batch-time={args.batch_time}",
        f"--warmup-time={args.warmup_time}",
    ]
    if args.smoke:
        command.append("--smoke")
    head = {"framework": framework_name, "workload": workload_id}
    try:
        done = subprocess.run(
            command,
            env=worker_env(threads),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        result = {**head, "status": "error", "error": f"timed out after {WORKER_TIMEOUT_S} s"}
    else:
        for line in reversed(done.stdout.splitlines()):
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX) :])
                break
        else:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
            error = f"worker exited with {done.returncode} and no result:\n{tail}"
            result = {**head, "status": "error", "error": error}
    result["threads"] = threads_label(threads)
    return result


def format_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            return f"{_significant(seconds / scale)} {unit}"
    raise AssertionError("unreachable")


def _significant(value: float, digits: int = 3) -> str:
    """`value` with `digits` significant digits, trailing zeros kept (2.00, 19.5, 192)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def format_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    digits = 2 if value < 10 else 1 if value < 100 else 0
    return f"{value:.{digits}f}x"


def format_memory(r: dict[str, Any]) -> str:
    mb = r.get("memory_mb")
    if mb is None:
        return "-"
    return ("≤ " if r.get("memory_method") == "bound" else "") + f"{mb:.0f}"


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def render_markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def add_ratios(results: list[dict[str, Any]]) -> None:
    """Ratio of each timing to the NumPy forward pass of the same workload and threads."""
    floors = {
        (r.get("threads"), r["workload"]): r
        for r in results
        if r["framework"] == "numpy" and r["status"] == "ok" and "median_s" in r
    }
    for r in results:
        floor = floors.get((r.get("threads"), r["workload"]))
        if r["status"] == "ok" and "median_s" in r:
            if floor is not None:
                r["ratio_median"] = r["median_s"] / floor["median_s"]
                r["ratio_min"] = r["min_s"] / floor["min_s"]
            if r.get("n_ops"):
                r["us_per_op_median"] = r["median_s"] / r["n_ops"] * 1e6
                r["us_per_op_min"] = r["min_s"] / r["n_ops"] * 1e6


def _find(results: list[dict[str, Any]], threads: str, name: str, wid: str) -> dict | None:
    for r in results:
        if (r.get("threads"), r["framework"], r["workload"]) == (threads, name, wid):
            return r
    return None


def summary(
    results: list[dict[str, Any]], threads: str, workload_ids: list[str]
) -> tuple[list[str], list[list[str]]]:
    """WORKLOADS.md's table: ratio of medians to NumPy's forward pass; W2 in µs/op; tape MB."""
    mine = [r for r in results if r.get("threads") == threads]
    frameworks = list(dict.fromkeys(r["framework"] for r in mine))
    memory_ids = [
        wid for wid in workload_ids if any("memory_mb" in r for r in mine if r["workload"] == wid)
    ]
    header = ["framework"]
    for wid in workload_ids:
        per_op = any(r.get("n_ops") for r in mine if r["workload"] == wid)
        header.append(f"{wid} (µs/op)" if per_op else wid)
    header += [f"{wid} tape MB" for wid in memory_ids]
    rows = []
    for name in frameworks:
        if all(
            (r := _find(mine, threads, name, wid)) is None or r["status"] == "missing"
            for wid in workload_ids
        ):
            continue  # not installed: said once below the table, not in a row of dashes
        row = [name]
        for wid in workload_ids:
            r = _find(mine, threads, name, wid)
            if r is None or r["status"] != "ok" or "median_s" not in r:
                status = "-" if r is None else r["status"]
                row.append({"missing": "not installed", "ok": "-"}.get(status, status))
                continue
            cell = format_ratio(r.get("ratio_median"))
            if "us_per_op_median" in r:
                cell += f" ({_significant(r['us_per_op_median'])})"
            row.append(cell)
        for wid in memory_ids:
            r = _find(mine, threads, name, wid)
            row.append("-" if r is None else format_memory(r))
        rows.append(row)
    return header, rows


def missing_frameworks(results: list[dict[str, Any]]) -> list[str]:
    return sorted({r["framework"] for r in results if r["status"] == "missing"})


def report(
    results: list[dict[str, Any]],
    workload_ids: list[str],
    titles: dict[str, str],
    thread_labels: list[str],
) -> str:
    out = []
    for threads in thread_labels:
        mine = [r for r in results if r.get("threads") == threads]
        out.append(f"==== threads: {threads}")
        for wid in workload_ids:
            rows = []
            has_ops = any(r.get("n_ops") for r in mine if r["workload"] == wid)
            has_memory = any("memory_mb" in r for r in mine if r["workload"] == wid)
            for r in mine:
                if r["workload"] != wid or r["status"] != "ok" or "median_s" not in r:
                    continue
                row = [
                    r["framework"],
                    r.get("version", ""),
                    format_time(r["median_s"]),
                    format_time(r["min_s"]),
                    format_ratio(r.get("ratio_median")),
                    format_ratio(r.get("ratio_min")),
                ]
                if has_ops:
                    row.append(_significant(r["us_per_op_median"]) if r.get("n_ops") else "-")
                if has_memory:
                    row.append(format_memory(r))
                rows.append(row)
            header = ["framework", "version", "median", "min", "ratio (median)", "ratio (min)"]
            if has_ops:
                header.append("µs/op (median)")
            if has_memory:
                header.append("tape MB")
            out.append(f"{wid}: {titles[wid]}")
            out.append(render_table(header, rows) if rows else "(no timings)")
            out.append("")
        out.append(f"Gradient time / NumPy forward time (medians), threads: {threads}:")
        out.append(render_table(*summary(results, threads, workload_ids)))
        out.append("")
    missing = missing_frameworks(results)
    if missing:
        out.append(f"not installed: {', '.join(missing)}")
    return "\n".join(out).rstrip()


def versions(results: list[dict[str, Any]]) -> dict[str, str]:
    """Each framework's version, as its worker reported it."""
    found: dict[str, str] = {}
    for r in results:
        if r.get("version"):
            found.setdefault(r["framework"], r["version"])
    return found


def machine_info(args: argparse.Namespace, thread_settings: list[Threads]) -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": _cpu_model() or platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": [threads_label(t) for t in thread_settings],
        "rounds": args.rounds,
        "batches_per_round": args.batches,
        "batch_time_s": args.batch_time,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------- README

README_START = "<!-- bench: start -->"
README_END = "<!-- bench: end -->"
README_HEADING = "## Performance"


TIMES = re.compile(r"(\d)x\b")  # 2.50x -> 2.50 times, in the README
LABELS = {  # the README's names for the frameworks
    "numpy": "NumPy forward, no AD (the floor)",
    "numpy-grad": "NumPy, gradient derived by hand",
    "tracker": "tracker",
    "torch": "PyTorch eager autograd",
    "jax": "JAX eager `grad` (no jit)",
    "jax-jit": "JAX `jit(value_and_grad)`",
    "autograd": "HIPS autograd",
    "mygrad": "mygrad",
}


def readme_section(
    results: list[dict[str, Any]],
    workload_ids: list[str],
    info: dict[str, Any],
    thread_labels: list[str],
) -> str:
    """The README's table of ratios from this run, with the machine, date and versions."""
    found = versions(results)
    listed = ", ".join(
        f"{name} {v}" for name, v in found.items() if name not in ("numpy-grad", "jax-jit")
    )
    batches = info["rounds"] * info["batches_per_round"]
    lines = [
        README_START,
        "",
        "Gradient time (forward + backward, gradients returned as arrays) as a ratio to",
        "NumPy's forward pass of the same function, the median of "
        f"{batches} batch{'es' if batches != 1 else ''}; lower is",
        "better. W2 also in µs per recorded op. Tape MB: peak resident memory of a fresh",
        "process during two gradient calls, minus the memory before them. The workloads",
        "are described in [bench/README.md](bench/README.md); the table is written by",
        "`python3 bench/bench.py --threads default,1 --readme README.md` (one run).",
        "",
        f"Measured {info['date'][:10]} on {info['processor']} ({info['cpus']} CPUs), "
        f"{info['platform']}, Python {info['python']}; {listed}.",
        "",
    ]
    for threads in thread_labels:
        title = "Default threads" if threads == "default" else f"Threads: {threads}"
        header, rows = summary(results, threads, workload_ids)
        rows = [
            [LABELS.get(row[0], row[0]), *(TIMES.sub("\\1\u00d7", c) for c in row[1:])]
            for row in rows
        ]
        lines += [f"**{title}**", "", render_markdown(header, rows), ""]
    missing = missing_frameworks(results)
    if missing:
        lines += [f"Not installed for this run: {', '.join(missing)}.", ""]
    lines.append(README_END)
    return "\n".join(lines)


def rewrite_readme(path: str, section: str) -> None:
    """Replace the marked section of `path`, or add it under a Performance heading."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = text.find(README_START), text.find(README_END)
    if start >= 0 and end > start:
        text = text[:start] + section + text[end + len(README_END) :]
    elif start >= 0 or end >= 0:
        raise SystemExit(f"{path}: one of {README_START!r} and {README_END!r} without the other")
    else:
        block = f"{README_HEADING}\n\n{section}\n"
        at = text.find("\n## License")  # before the license, else at the end
        if at < 0:
            text = text.rstrip("\n") + "\n\n" + block
        else:
            text = text[: at + 1] + block + "\n" + text[at + 1 :]
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# --------------------------------------------------------------------------- main


def driver(args: argparse.Namespace) -> int:
    workload_ids = _select(args.workloads, WORKLOADS, "workload")
    default = SMOKE_FRAMEWORKS if args.smoke else None
    framework_names = _select(args.frameworks, FRAMEWORKS, "framework", default)
    thread_settings = parse_threads(args.threads)
    if args.readme and args.smoke:
        raise SystemExit("--readme needs timings: drop --smoke")
    info = machine_info(args, thread_settings)
    mode = "smoke (correctness only)" if args.smoke else "timing"
    print(
        f"bench: {mode}; Python {info['python']}, NumPy {info['numpy']}, "
        f"{info['cpus']} CPUs, threads: {', '.join(info['threads'])}",
        flush=True,
    )
    titles = {wid: WORKLOADS[wid]().title for wid in workload_ids}
    # Rounds interleave the frameworks in time, so that a change in the machine's
    # load during the run spreads over all of them instead of skewing one ratio; every
    # other round runs them in reverse, so that a steady drift within a round favours
    # neither the first nor the last.
    rounds = 1 if args.smoke else args.rounds
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    failed = False
    for threads in thread_settings:
        label = threads_label(threads)
        for round_number in range(rounds):
            if rounds > 1 or len(thread_settings) > 1:
                print(f"-- threads {label}, round {round_number + 1} of {rounds}", flush=True)
            order = framework_names if round_number % 2 == 0 else framework_names[::-1]
            for wid in workload_ids:
                for name in order:
                    key = (label, wid, name)
                    if key in merged and merged[key]["status"] != "ok":
                        continue  # missing or failed: once is enough
                    r = run_worker(name, wid, args, threads)
                    failed |= _print_progress(wid, name, r, args)
                    if key in merged and r["status"] == "ok":
                        _merge_round(merged[key], r)
                    else:
                        merged[key] = r
    results = list(merged.values())
    labels = [threads_label(t) for t in thread_settings]
    if not args.smoke:
        add_ratios(results)
        print()
        print(report(results, workload_ids, titles, labels))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"machine": info, "results": results}, out, indent=2)
            out.write("\n")
        print(f"\nwrote {args.json}")
    if args.readme:
        rewrite_readme(args.readme, readme_section(results, workload_ids, info, labels))
        print(f"wrote the table into {args.readme}")
    counts = {s: sum(r["status"] == s for r in results) for s in ("ok", "missing", "error")}
    print(
        f"\nbench: {counts['ok']} ok, {counts['error']} failed, {counts['missing']} not installed"
    )
    if failed:
        print("bench: FAILED", file=sys.stderr)
    return 1 if failed else 0


def _print_progress(wid: str, name: str, r: dict[str, Any], args: argparse.Namespace) -> bool:
    """Print one worker's outcome; return whether it fails the run."""
    if r["status"] == "missing":
        if name == "tracker":
            print(f"{wid} tracker: not importable ({r['error']})", flush=True)
            return args.smoke and not args.allow_missing
        print(f"{wid} {name}: skipped, not installed", flush=True)
        return False
    if r["status"] == "error":
        print(f"{wid} {name}: ERROR\n{_indent(r['error'])}", flush=True)
        return True
    timing = "" if args.smoke else f"; median {format_time(r['median_s'])}"
    memory = f"; tape {format_memory(r)} MB" if r.get("memory_mb") is not None else ""
    print(f"{wid} {name} {r['version']}: {r['check']}{timing}{memory}", flush=True)
    return False


def _merge_round(total: dict[str, Any], new: dict[str, Any]) -> None:
    """Pool the batches of a further round into `total`."""
    times = total["batch_times_s"] + new["batch_times_s"]
    total.update(batch_times_s=times, median_s=statistics.median(times), min_s=min(times))
    total["rounds"] = total.get("rounds", 1) + 1
    # the least of the rounds' memory: a fresh process each, the others saw extra noise
    mb = new.get("memory_mb")
    if mb is not None and (total.get("memory_mb") is None or mb < total["memory_mb"]):
        total["memory_mb"], total["memory_method"] = new["memory_mb"], new["memory_method"]


def _select(
    spec: str | None, registry: dict[str, Any], what: str, default: Sequence[str] | None = None
) -> list[str]:
    if spec is None:
        return list(registry if default is None else default)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for name in names:
        if name not in registry:
            raise SystemExit(f"unknown {what} {name!r}; known: {', '.join(registry)}")
    return names


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--worker",
        nargs=2,
        metavar=("FRAMEWORK", "WORKLOAD"),
        help="internal: run one framework on one workload and print its result as JSON",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="run each workload once, gradients checked, no timing\n"
        f"(frameworks: {', '.join(SMOKE_FRAMEWORKS)} unless --frameworks names others)",
    )
    parser.add_argument("--workloads", help=f"comma-separated, of: {', '.join(WORKLOADS)}")
    parser.add_argument("--frameworks", help=f"comma-separated, of: {', '.join(FRAMEWORKS)}")
    parser.add_argument(
        "--threads",
        help="thread count for every library: 'default' (theirs), a number, or both\n"
        "comma-separated for a table each ('default,1')",
    )
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument(
        "--readme",
        metavar="PATH",
        help=f"rewrite the section of PATH between {README_START} and {README_END}\n"
        f"(added under '{README_HEADING}' if absent) with this run's tables",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="an unimportable tracker is not an error in --smoke mode",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds over all frameworks, their batches pooled (default 3)",
    )
    parser.add_argument(
        "--batches", type=int, default=3, help="timed batches per round (default 3)"
    )
    parser.add_argument(
        "--batch-time", type=float, default=0.2, help="seconds per batch (default 0.2)"
    )
    parser.add_argument(
        "--warmup-time", type=float, default=0.2, help="seconds of warm-up (default 0.2)"
    )
    args = parser.parse_args(argv)
    if args.worker:
        args.framework, args.workload = args.worker
        return worker(args)
    return driver(args)


if __name__ == "__main__":
    sys.exit(main())
