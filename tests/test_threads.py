"""Threads: `tr.num_threads()` follows TRACKER_NUM_THREADS (then RAYON_NUM_THREADS and
OMP_NUM_THREADS), and no result depends on it: elementwise ops, reductions over every
kind of axes and their gradients give the same bits on one thread as on two or three,
and match NumPy.

The arrays have 2^18 elements or more, from which the engine splits elementwise loops
and reductions between threads. Each thread count runs in its own process (the count is read once).
"""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import tracker as tr
from tracker import _blas

REDUCTIONS = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod}
# all, leading, trailing, middle, and two blocks of axes (the general walk)
AXES = [None, 0, (0, 1), -1, (1, 2), 1, (0, 2)]
THREAD_VARIABLES = ("TRACKER_NUM_THREADS", "RAYON_NUM_THREADS", "OMP_NUM_THREADS")


def arrays() -> dict[str, np.ndarray]:
    """The inputs, near 1 so that products of 2^18 elements stay in range."""
    rng = np.random.default_rng(11)
    near_one = lambda *shape: 1.0 + 0.01 * rng.standard_normal(shape)  # noqa: E731
    cube = near_one(64, 64, 64)
    specials = cube.copy()
    specials[3, 7, 11] = np.nan
    specials[10, :, 5] = np.inf
    specials[20, 1, :] = -np.inf
    return {
        "cube": cube,
        "cube32": cube.astype(np.float32),
        "specials": specials,
        "tall": near_one(1 << 16, 4),
        "wide": near_one(4, 1 << 16),
        "line": near_one(1 << 18),
    }


def axes_of(x: np.ndarray) -> list:
    return [a for a in AXES if a is None or np.max(a) < x.ndim]


def results() -> dict[str, np.ndarray]:
    """Every value and gradient whose bits are compared between thread counts."""
    out = {}
    weights = np.random.default_rng(12)
    for name, x in arrays().items():
        out[f"{name} elementwise"] = tr.data(np.exp(np.sin(x)) * x**2 + np.tanh(x) / x)
        out[f"{name} gradient"] = pulled_back(lambda x: np.log(x) * np.cos(x), x)
        for reduction, f in REDUCTIONS.items():
            for axes in axes_of(x):
                for keepdims in (False, True):
                    key = f"{name} {reduction} {axes} {keepdims}"
                    out[key] = np.asarray(tr.data(f(tr.param(x), axis=axes, keepdims=keepdims)))
                reduce = lambda x: f(x, axis=axes)  # noqa: B023, E731
                out[f"{name} {reduction} {axes} gradient"] = pulled_back(reduce, x, weights)
    return out


def pulled_back(f, x: np.ndarray, weights=None) -> np.ndarray:
    """The gradient of `f` at `x` for a seed of ones (random weights if given): a
    backward pass that, unlike `tr.gradient`, accepts NaN and infinite values."""
    p = tr.param(x)
    y = f(p)
    seed = np.ones(y.shape) if weights is None else weights.standard_normal(y.shape)
    tr.back(y, seed.astype(x.dtype))
    return tr.grad(p)


def run_with(variables: dict[str, str], code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter with the thread variables set to `variables` only."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), *sys.path])
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, **variables},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def by_threads(tmp_path_factory) -> dict[int, dict[str, np.ndarray]]:
    """`results()` computed with 1, 2 and 3 threads."""
    out = {}
    for threads in (1, 2, 3):
        path = tmp_path_factory.mktemp("threads") / f"{threads}.npz"
        code = (
            "import numpy as np, tracker as tr, test_threads as t\n"
            f"assert tr.num_threads() == {threads}\n"
            f"np.savez({str(path)!r}, **t.results())\n"
        )
        run_with({"TRACKER_NUM_THREADS": str(threads)}, code)
        with np.load(path) as saved:
            out[threads] = dict(saved)
    return out


def test_results_are_the_same_bits_on_any_number_of_threads(by_threads):
    one = by_threads[1]
    assert one.keys() == results_keys()
    for threads in (2, 3):
        other = by_threads[threads]
        assert other.keys() == one.keys()
        different = [
            k
            for k in one
            if one[k].tobytes() != other[k].tobytes() or one[k].shape != other[k].shape
        ]
        assert not different, f"{threads} threads differ from one on {different[:5]}"


def results_keys() -> set[str]:
    """The keys of `results()`, without computing it."""
    keys = set()
    for name, x in arrays().items():
        keys |= {f"{name} elementwise", f"{name} gradient"}
        for reduction in REDUCTIONS:
            for axes in axes_of(x):
                keys |= {f"{name} {reduction} {axes} {k}" for k in (False, True)}
                keys.add(f"{name} {reduction} {axes} gradient")
    return keys


def tolerance(reduction: str, dtype: np.dtype) -> float:
    """Sums differ by a few roundings (more in float32, where NumPy adds rows of a
    leading axis one after another); a product of n elements carries about sqrt(n)
    roundings in any order."""
    if reduction == "prod":
        return 1e-4 if dtype == np.float32 else 1e-12
    return 5e-6 if dtype == np.float32 else 1e-14


@pytest.mark.parametrize("name", list(arrays()))
@pytest.mark.parametrize("reduction", list(REDUCTIONS))
def test_reductions_match_numpy(name, reduction):
    x = arrays()[name]
    f = REDUCTIONS[reduction]
    for axes in axes_of(x):
        for keepdims in (False, True):
            with np.errstate(invalid="ignore"):
                want = f(x, axis=axes, keepdims=keepdims)
            got = np.asarray(tr.data(f(tr.param(x), axis=axes, keepdims=keepdims)))
            assert got.shape == want.shape and got.dtype == want.dtype, (axes, keepdims)
            if reduction in ("max", "min"):
                assert_array_equal(got, want, err_msg=f"{axes}")  # NaN where NumPy has it
            else:
                rtol = tolerance(reduction, x.dtype)
                assert_allclose(got, want, rtol=rtol, atol=0, err_msg=f"{axes}")


def test_long_sums_are_as_accurate_as_numpys():
    """Sums of 10^6 float32 values are blocked and pairwise, as NumPy's are, where a
    running sum would lose three digits."""
    x = np.full(10**6, 0.1, dtype=np.float32)
    exact = 10**6 * float(np.float32(0.1))
    got = float(tr.data(np.sum(tr.param(x))))
    assert abs(got - exact) / exact < 1e-6
    assert abs(got - exact) <= 2 * abs(float(np.sum(x)) - exact) + 1e-7 * exact


@pytest.mark.parametrize("reduction", list(REDUCTIONS))
def test_gradients_of_reductions_match_numpy(reduction):
    x = arrays()["cube"]
    f = REDUCTIONS[reduction]
    for axes in axes_of(x):
        y = f(x, axis=axes, keepdims=True)
        w = np.random.default_rng(13).standard_normal(y.shape)
        count = x.size // y.size
        want = {
            "sum": np.broadcast_to(w, x.shape),
            "mean": np.broadcast_to(w / count, x.shape),
            "max": (x == y) * w,  # no ties in random data
            "min": (x == y) * w,
            "prod": y / x * w,  # no zeros
        }[reduction]
        got = tr.gradient(lambda x: np.sum(f(x, axis=axes, keepdims=True) * w), x)[0]  # noqa: B023
        assert_allclose(got, want, rtol=1e-10, atol=0, err_msg=f"{axes}")


def test_elementwise_ops_match_numpy():
    x = arrays()["line"]
    got = tr.data(np.exp(np.sin(x)) * x**2 + np.tanh(x) / x)
    assert_allclose(got, np.exp(np.sin(x)) * x**2 + np.tanh(x) / x, rtol=1e-14)
    g = tr.gradient(lambda x: np.sum(np.log(x) * np.cos(x)), x)[0]
    assert_allclose(g, np.cos(x) / x - np.log(x) * np.sin(x), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("shape", [(0, 40000), (40000, 0), (0,)], ids=str)
@pytest.mark.parametrize("reduction", list(REDUCTIONS))
def test_reductions_of_empty_arrays(shape, reduction):
    x = np.zeros(shape)
    f = REDUCTIONS[reduction]
    for axes in [None, 0, -1]:
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # the mean of nothing
                want = f(x, axis=axes)
        except ValueError:  # the max and min of nothing
            with pytest.raises(ValueError):
                f(tr.param(x), axis=axes)
            continue
        assert_array_equal(tr.data(f(tr.param(x), axis=axes)), want)


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"TRACKER_NUM_THREADS": "3"}, 3),
        ({"TRACKER_NUM_THREADS": "1", "RAYON_NUM_THREADS": "3"}, 1),
        ({"RAYON_NUM_THREADS": "3", "OMP_NUM_THREADS": "2"}, 3),
        ({"OMP_NUM_THREADS": "2"}, 2),
        ({"OMP_NUM_THREADS": "3,2"}, 3),  # one count per level of nesting: the first
        ({"TRACKER_NUM_THREADS": "abc", "RAYON_NUM_THREADS": "3"}, 3),
    ],
    ids=str,
)
def test_num_threads_follows_the_variables(variables, expected):
    done = run_with(variables, "import tracker as tr; print(tr.num_threads())")
    assert int(done.stdout) == expected


BAD_COUNTS = [("TRACKER_NUM_THREADS", v) for v in ("0", "abc", "-2", "", "2.5")] + [
    ("RAYON_NUM_THREADS", "0"),
    ("OMP_NUM_THREADS", "abc"),
]
USES_THE_COUNT = (
    "import numpy as np, tracker as tr\n"
    "x = tr.param(np.linspace(0.0, 1.0, 1 << 17))\n"
    "assert float(tr.data(np.sum(np.sin(x)))) > 0\n"
    "print(tr.num_threads())\n"
)


@pytest.fixture(scope="module")
def threads_when_unset() -> str:
    return run_with({}, USES_THE_COUNT).stdout


@pytest.mark.parametrize(("variable", "bad"), BAD_COUNTS, ids=str)
def test_bad_thread_counts_are_skipped(variable, bad, threads_when_unset):
    """An unusable value is skipped, as if unset; the loops still run."""
    assert run_with({variable: bad}, USES_THE_COUNT).stdout == threads_when_unset


def test_a_forked_child_computes_without_the_pool():
    """A child forked after the pool started has no pool threads: it computes alone."""
    code = (
        "import os, numpy as np, tracker as tr\n"
        "x = tr.param(np.linspace(0.0, 1.0, 1 << 17))\n"
        "want = tr.data(np.sum(np.sin(x) * x, axis=0))\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(0 if tr.data(np.sum(np.sin(x) * x, axis=0)) == want else 1)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "assert os.waitstatus_to_exitcode(status) == 0\n"
    )
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    run_with({"TRACKER_NUM_THREADS": "2"}, code)


@pytest.mark.skipif(not _blas.USING_NUMPY_BLAS, reason="NumPy bundles no OpenBLAS here")
@pytest.mark.parametrize("threads", ["1", "2"])
def test_tracker_num_threads_sets_openblas_threads(threads):
    code = (
        "import ctypes, tracker as tr\n"
        "from tracker import _blas\n"
        "blas = ctypes.CDLL(str(_blas.numpy_openblas()[0]))\n"
        "print(blas.scipy_openblas_get_num_threads64_())\n"
    )
    done = run_with({"TRACKER_NUM_THREADS": threads}, code)
    assert int(done.stdout) == int(threads)
