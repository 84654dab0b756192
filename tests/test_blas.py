"""Matrix products through NumPy's bundled OpenBLAS, and the portable fallback."""

import os
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import tracker as tr
from tracker import _blas
from tracker.testing import gradcheck

SHAPES = [((3, 4), (4, 5)), ((2, 3, 4), (4, 6)), ((1, 7), (7, 1)), ((5, 0), (0, 3)), ((4,), (4,))]


def test_numpys_openblas_is_used_where_numpy_bundles_it():
    assert bool(_blas.numpy_openblas()) == _blas.USING_NUMPY_BLAS


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("sa", "sb"), SHAPES, ids=str)
def test_products_match_numpy(sa, sb, dtype):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(sa).astype(dtype)
    b = rng.standard_normal(sb).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    y = tr.data(tr.param(a) @ b)
    assert y.dtype == dtype
    assert y.shape == (a @ b).shape
    if _blas.USING_NUMPY_BLAS and a.ndim == b.ndim == 2:
        assert_array_equal(y, a @ b)  # the very same routine
    assert_allclose(y, a @ b, rtol=tol, atol=tol)


@pytest.mark.parametrize(("sa", "sb"), SHAPES, ids=str)
def test_gradients_of_products(sa, sb):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    assert gradcheck(lambda p, q: np.sum(np.sin(p @ q)), a, b)


def test_the_portable_gemm_when_told_not_to_use_numpys():
    """TRACKER_BLAS=0 keeps matrixmultiply; a library without the routines is refused."""
    code = (
        "import numpy as np, tracker as tr\n"
        "from tracker import _blas\n"
        "assert not _blas.USING_NUMPY_BLAS\n"
        "assert not tr._core.use_blas('/nonexistent/libscipy_openblas64_.so')\n"
        "import ctypes.util\n"
        "assert not tr._core.use_blas(ctypes.util.find_library('m') or 'libm.so.6')\n"
        "rng = np.random.default_rng(1)\n"
        "a, b = rng.standard_normal((64, 33)), rng.standard_normal((33, 17))\n"
        "np.testing.assert_allclose(tr.data(tr.param(a) @ b), a @ b, rtol=1e-12, atol=1e-12)\n"
        "print('ok')\n"
    )
    env = {**os.environ, "TRACKER_BLAS": "0"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("side", ["left", "right", "both"])
@pytest.mark.parametrize("value", [2.5, -1.0, 0.0, np.inf])
def test_products_with_a_matrix_of_one_value(side, value, dtype):
    """A product with a matrix of one value (the seed of a sum, coming back through a
    product) is rank one and computed as such: it must still be NumPy's product, with
    infinities and NaN where NumPy has them."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 48, 40)).astype(dtype)
    b = rng.standard_normal((40, 36)).astype(dtype)
    a[0, 0, :2] = [np.inf, -np.inf]
    b[1, 3] = np.nan
    if side in ("left", "both"):
        a = np.full(a.shape, value, dtype)
    if side in ("right", "both"):
        b = np.full(b.shape, value, dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = a @ b
    y = tr.data(tr.param(a) @ b)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert_allclose(y, expected, rtol=tol, atol=tol)
