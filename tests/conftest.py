"""Helpers shared by the test files: finite-difference checks and the PyTorch oracle."""

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tracker as tr
from tracker.testing import gradcheck

STEP = float(np.finfo(np.float64).eps) ** (1 / 5)


def fd_jacobian(g: Callable[[np.ndarray], Any], x: np.ndarray) -> np.ndarray:
    """The Jacobian of `g` at float64 vector `x` by fourth-order central differences.

    Shape `(size of g(x), x.size)`; used to check Hessians against finite
    differences of `tr.gradient`, which finite differences of the loss cannot do
    as precisely.
    """
    x = np.array(x, dtype=np.float64)
    columns = []
    for k in range(x.size):
        h = STEP * max(1.0, abs(x[k]))
        values = []
        for offset in (h, -h, 2 * h, -2 * h):
            moved = x.copy()
            moved[k] += offset
            values.append(np.asarray(g(moved), dtype=np.float64).reshape(-1))
        columns.append((8 * (values[0] - values[1]) - (values[2] - values[3])) / (12 * h))
    return np.stack(columns, axis=1)


def check_gradient(f: Callable[..., Any], *args: Any, rtol: float = 1e-7) -> None:
    """`tr.gradient(f, *args)` against central differences of `f`, in float64."""
    assert gradcheck(f, *args, rtol=rtol, atol=1e-9)


def check_hessian(f: Callable[[Any], Any], x: np.ndarray, rtol: float = 1e-6) -> np.ndarray:
    """`tr.hessian(f, x)` (vector `x`) against central differences of `tr.gradient`."""
    hessian = tr.hessian(f, x)
    assert hessian.dtype == np.float64
    assert hessian.shape == (x.size, x.size)
    expected = fd_jacobian(lambda z: tr.gradient(f, z)[0], x)
    np.testing.assert_allclose(hessian, expected, rtol=rtol, atol=1e-8, equal_nan=False)
    return hessian


@pytest.fixture(scope="session")
def torch():
    """PyTorch, the second oracle; tests that use it are skipped where it is not installed."""
    return pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def fresh_tape():
    """Each test starts on a fresh top-level tape, as it would in a new thread: a value
    an earlier test left alive (in a failure's traceback, a hypothesis example) must not
    pin the tape a lifetime test watches."""
    from tracker import _core

    _core.reset_thread_tape()
    yield
