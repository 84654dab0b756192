"""SciPy's special functions: forward values against SciPy over each function's domain,
first and second derivatives against finite differences, PyTorch as a second oracle,
and the errors that name where SciPy's Python functions live in tracker."""

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import tracker as tr
from tracker.scipy import linalg as tlinalg
from tracker.scipy import special as ts
from tracker.testing import gradcheck, gradgradcheck

sp = pytest.importorskip("scipy.special")
sl = pytest.importorskip("scipy.linalg")

# Test points per function: zeros, poles, edges of the domain, small and large arguments.
POINTS: dict[str, list[float]] = {
    "erf": [0, 1e-300, 1e-10, 0.1, 0.5, 1, 2, 3, 5, 6, 27, -1e-5, -0.7, -4, 1e10, np.inf],
    "erfc": [0, 1e-10, 0.1, 0.5, 1, 2, 5, 10, 26, 27.2, -1, -3, -30, np.inf, -np.inf],
    "erfinv": [0, 1e-300, 1e-10, 0.1, 0.5, 0.9, 0.999999, 1 - 1e-16, -0.3, -0.9999, 1, -1],
    "erfcinv": [1, 1 + 1e-10, 1e-300, 1e-100, 1e-10, 0.1, 0.5, 1.5, 1.999999, 2, 0],
    "erfcx": [0, 1e-10, 0.5, 1, 5, 26, 50, 1e5, 1e300, -0.5, -1, -5, -26, -26.6],
    "gamma": [
        1e-300,
        1e-10,
        0.1,
        0.5,
        1,
        1.5,
        2,
        3.3,
        10,
        50.5,
        100,
        171.5,
        -0.5,
        -1.5,
        -2.999,
        -10.3,
        -100.5,
        -170.5,
        1e-5,
        -1e-8,
        0,
        -1,
        -2,
        172,
    ],
    "gammaln": [
        1e-300,
        1e-10,
        0.1,
        0.5,
        0.9999,
        1,
        1.0001,
        1.5,
        1.9999,
        2,
        2.0001,
        3.3,
        10,
        100,
        1e5,
        1e300,
        -0.5,
        -1.5,
        -2.5,
        -2.4570247,
        -10.3,
        -100.5,
        0,
        -1,
    ],
    "digamma": [
        1e-300,
        1e-10,
        0.1,
        0.5,
        1,
        1.4616321449683622,
        1.46,
        2,
        10,
        1e5,
        1e300,
        -0.5,
        -1.5,
        -0.5040830082644554,
        -1.5734984731623904,
        -10.3,
        0,
        -1,
    ],
    "expit": [0, 1e-10, 0.5, 1, 10, 36, 40, 700, 800, -1, -10, -37, -700, -745, -800],
    "logit": [
        1e-300,
        1e-10,
        0.1,
        0.3,
        0.49,
        0.5,
        0.5000001,
        0.51,
        0.7,
        0.9,
        0.99999,
        1 - 1e-16,
        0.25,
        0.75,
        0,
        1,
    ],
    "ndtr": [0, 0.1, 0.7, 1, 2, 5, 8.3, 9, 38, -0.1, -0.7, -1, -3, -8, -20, -37, -38.4],
    "log_ndtr": [
        0,
        0.1,
        1,
        3,
        6,
        8,
        10,
        20,
        38,
        -0.1,
        -1,
        -1.0001,
        -5,
        -10,
        -19.9,
        -20,
        -20.1,
        -30,
        -50,
        -100,
        -1e5,
        -1e10,
    ],
    "i0": [0, 1e-10, 0.5, 1, 8, 10, 100, 700, -3],
    "i1": [0, 1e-10, 0.5, 1, 8, 10, 100, 700, -3],
    "i0e": [0, 1e-10, 0.5, 1, 8, 10, 100, 1e5, 1e300, -3],
    "i1e": [0, 1e-10, 0.5, 1, 8, 10, 100, 1e5, 1e300, -3],
    # Beyond 1e5 SciPy's Bessel functions lose digits (see LARGE_BESSEL).
    "j0": [
        0,
        1e-10,
        0.5,
        1,
        2.404825557695773,
        2.4,
        5,
        5.520078110286311,
        8,
        10,
        30,
        100,
        1e3,
        1e5,
        -3,
    ],
    "j1": [0, 1e-10, 0.5, 1, 3.8317059702075125, 5, 7.015586669815619, 10, 30, 100, 1e3, 1e5, -3],
    "y0": [
        1e-300,
        1e-10,
        0.5,
        0.8935769662791675,
        1,
        2,
        3.9576784193148576,
        5,
        10,
        30,
        100,
        1e3,
        1e5,
        0,
    ],
    "y1": [1e-300, 1e-10, 0.5, 1, 2.197141326031017, 2, 5, 10, 30, 100, 1e3, 1e5, 0],
    "ellipk": [0, 1e-10, 0.1, 0.5, 0.9, 0.999999, 1 - 1e-15, 1, -1, -1e5, 2],
    "ellipe": [0, 1e-10, 0.1, 0.5, 0.9, 0.999999, 1 - 1e-15, 1, -1, -1e5, 2],
    "exp1": [1e-300, 1e-10, 0.1, 0.5, 1, 2, 10, 100, 700, 0],
    "expi": [1e-300, 1e-10, 0.1, 0.3725074107813666, 0.5, 1, 10, 100, 700, -0.5, -10, 0],
    "polygamma": [1e-10, 0.1, 0.5, 1, 2, 10, 1e5, -0.5, -1.5, 0],
}
# Two-argument functions: (x, y) pairs.
PAIRS: dict[str, list[tuple[float, float]]] = {
    "xlogy": [
        (0, 0),
        (0, 1),
        (1, 0),
        (2, 1),
        (1e-300, 1e300),
        (-3, 0.5),
        (1, 1 + 1e-12),
        (0, np.nan),
        (2, -1),
    ],
    "xlog1py": [(0, -1), (0, 0), (1, 1e-300), (2, 1e-10), (3, -0.5), (1, -1), (1, 1e300), (2, -2)],
    "zeta": [
        (2, 1),
        (2, 2),
        (1.5, 0.5),
        (10, 1),
        (50, 3),
        (3, 1e5),
        (1.0001, 1),
        (1, 1),
        (4, -1.5),
    ],
    "beta": [
        (1, 1),
        (0.5, 0.5),
        (2, 3),
        (1e-10, 1),
        (100, 200),
        (1e5, 2),
        (-0.5, 2),
        (0.3, 1e-200),
    ],
    "betaln": [(1, 1), (0.5, 0.5), (2, 3), (1e-10, 1), (100, 200), (1e5, 2), (1e300, 2), (-0.5, 2)],
}
# Bessel functions at large arguments, to 25 digits (mpmath): libm reduces the argument
# exactly, SciPy does not, so these are checked against the true values.
LARGE_BESSEL = {
    "j0": [(1e8, 3.206029534041207803716963e-05), (1e15, 6.156638646885021677326056e-09)],
    "j1": [(1e8, 7.306391181551854859256667e-05), (1e15, 2.446866512377132646512985e-08)],
    "y0": [(1e8, 7.306391165521707097720739e-05), (1e15, 2.446866512377132338681053e-08)],
    "y1": [(1e8, -3.206029497509252016183797e-05), (1e15, -6.156638646885009442993495e-09)],
}


def scipy_of(name: str) -> Any:
    if name == "polygamma":
        return lambda x: sp.polygamma(1, x)
    return getattr(sp, name)


def ours_of(name: str) -> Any:
    if name == "polygamma":
        return lambda x: ts.polygamma(1, x)
    return getattr(ts, name)


def assert_close(ours: np.ndarray, ref: np.ndarray, where: Any) -> None:
    """Within 1e-12 relative or 1e-14 absolute, NaN and infinities matching exactly."""
    ours, ref = np.asarray(ours, float), np.asarray(ref, float)
    with np.errstate(all="ignore"):
        same = (ours == ref) | (np.isnan(ours) & np.isnan(ref))
        diff = np.abs(ours - ref)
        ok = same | (diff <= 1e-12 * np.abs(ref)) | (diff <= 1e-14)
    bad = [(w, o, r) for w, o, r, k in zip(where, ours, ref, ok, strict=True) if not k]
    assert not bad, f"(point, tracker, reference): {bad}"


def test_every_function_has_points() -> None:
    assert set(ts.native()) == set(POINTS) | set(PAIRS)


@pytest.mark.parametrize("name", sorted(POINTS))
def test_forward_matches_scipy(name: str) -> None:
    x = np.array(POINTS[name], dtype=np.float64)
    with np.errstate(all="ignore"):
        ref = scipy_of(name)(x)
        # Tracked (recorded) and plain (computed) paths give the same values.
        ours = tr.data(ours_of(name)(tr.param(x)))
        plain = ours_of(name)(x)
    assert_close(ours, ref, x)
    assert_close(plain, ref, x)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_forward_matches_scipy_two_arguments(name: str) -> None:
    a, b = (np.array(v, dtype=np.float64) for v in zip(*PAIRS[name], strict=True))
    with np.errstate(all="ignore"):
        ref = getattr(sp, name)(a, b)
        ours = tr.data(getattr(ts, name)(a, tr.param(b)))
    assert_close(ours, ref, PAIRS[name])


@pytest.mark.parametrize("name", sorted(LARGE_BESSEL))
def test_bessel_at_large_arguments(name: str) -> None:
    x, ref = (np.array(v) for v in zip(*LARGE_BESSEL[name], strict=True))
    assert_close(tr.data(getattr(ts, name)(tr.param(x))), ref, x)


@pytest.mark.parametrize("name", sorted(POINTS))
def test_scipy_ufuncs_dispatch(name: str) -> None:
    """`scipy.special.<name>(tracked)` records, as NumPy's ufuncs do."""
    if name == "polygamma":
        pytest.skip("polygamma is a Python function: test_python_functions_name_their_home")
    y = getattr(sp, name)(tr.param(np.array([0.25, 0.5])))
    assert tr.istracked(y)


# Interior points where each function is smooth (and the special places of the rules:
# 0 for i1, j1, i1e, ellipk, ellipe, where the derivative is a limit).
INTERIOR: dict[str, list[float]] = {
    "erf": [-1.5, 0.0, 0.3, 2.0],
    "erfc": [-1.5, 0.0, 0.3, 2.0],
    "erfinv": [-0.7, 0.0, 0.3, 0.9],
    "erfcinv": [0.1, 0.7, 1.0, 1.8],
    "erfcx": [-1.0, 0.0, 0.5, 5.0],
    "gamma": [-1.5, 0.3, 1.0, 4.5],
    "gammaln": [-1.5, 0.3, 1.0, 4.5],
    "digamma": [-1.5, 0.3, 1.0, 4.5],
    "polygamma": [-1.5, 0.3, 1.0, 4.5],
    "expit": [-3.0, 0.0, 0.5, 4.0],
    "logit": [0.1, 0.3, 0.5, 0.9],
    "ndtr": [-3.0, 0.0, 0.5, 4.0],
    "log_ndtr": [-25.0, -3.0, 0.0, 4.0],
    "i0": [-2.0, 0.0, 0.5, 3.0],
    "i1": [-2.0, 0.0, 0.5, 3.0],
    "i0e": [-2.0, 0.5, 3.0],
    "i1e": [-2.0, 0.5, 3.0],  # a kink at 0 (exp(-|x|)): test_derivative_limits_at_zero
    "j0": [-2.0, 0.0, 0.5, 3.0],
    "j1": [-2.0, 0.0, 0.5, 3.0],
    "y0": [0.3, 1.0, 5.0],
    "y1": [0.3, 1.0, 5.0],
    "ellipk": [-2.0, 0.0, 0.3, 0.9],
    "ellipe": [-2.0, 0.0, 0.3, 0.9],
    "exp1": [0.1, 1.0, 5.0],
    "expi": [-2.0, 0.1, 1.0, 5.0],
}
INTERIOR_PAIRS: dict[str, tuple[list[float], list[float]]] = {
    "xlogy": ([-1.0, 0.5, 2.0], [0.3, 1.0, 4.0]),
    "xlog1py": ([-1.0, 0.5, 2.0], [-0.3, 1.0, 4.0]),
    "beta": ([0.3, 1.0, 2.5], [0.7, 2.0, 3.0]),
    "betaln": ([0.3, 1.0, 2.5], [0.7, 2.0, 3.0]),
}


def test_every_function_is_gradient_checked() -> None:
    assert set(INTERIOR) | set(INTERIOR_PAIRS) | {"zeta"} == set(ts.native())


@pytest.mark.parametrize("name", sorted(INTERIOR))
def test_first_and_second_order(name: str) -> None:
    f = ours_of(name)
    w = np.array([0.7, -1.3, 0.4, 1.1])
    x = np.array(INTERIOR[name])

    def loss(x: Any) -> Any:
        return np.sum(f(x) * w[: len(INTERIOR[name])])

    assert gradcheck(loss, x, rtol=1e-5, atol=1e-7)
    assert gradgradcheck(loss, x, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(INTERIOR_PAIRS))
def test_first_and_second_order_two_arguments(name: str) -> None:
    f = getattr(ts, name)
    a, b = (np.array(v) for v in INTERIOR_PAIRS[name])

    def loss(a: Any, b: Any) -> Any:
        return np.sum(f(a, b) * np.array([0.7, -1.3, 0.4]))

    assert gradcheck(loss, a, b, rtol=1e-5, atol=1e-7)
    assert gradgradcheck(loss, a, b, rtol=1e-4, atol=1e-6)


def test_zeta_differentiates_in_q_only() -> None:
    q = np.array([0.5, 1.0, 3.0])
    assert gradcheck(lambda q: np.sum(ts.zeta(3.0, q)), q, rtol=1e-5)
    assert gradgradcheck(lambda q: np.sum(ts.zeta(3.0, q)), q, rtol=1e-4)
    with pytest.raises(TypeError, match=r"zeta.*no derivative with respect to x"):
        tr.gradient(lambda x: np.sum(ts.zeta(x, 2.0)), np.array([3.0]))
    with pytest.raises(TypeError, match="Riemann"):
        ts.zeta(tr.param(np.array([2.0])))
    with pytest.raises(TypeError, match=r"zeta.*no derivative"):
        sp.zeta(tr.param(np.array([2.0])))


def test_derivative_limits_at_zero() -> None:
    """i1, j1 and i1e have slope ½ at 0; ellipk and ellipe ±π/8."""
    zero = np.array([0.0])
    for f, slope in [
        (ts.i1, 0.5),
        (ts.j1, 0.5),
        (ts.i1e, 0.5),
        (ts.ellipk, np.pi / 8),
        (ts.ellipe, -np.pi / 8),
    ]:
        (g,) = tr.gradient(lambda x, f=f: np.sum(f(x)), zero)
        np.testing.assert_allclose(g, [slope], rtol=1e-14)


def test_xlogy_at_zero_has_no_nan_in_its_x_gradient() -> None:
    ga, _ = tr.gradient(lambda a, b: np.sum(ts.xlogy(a, b)), np.zeros(2), np.array([0.0, 2.0]))
    np.testing.assert_array_equal(ga, [0.0, 0.0])


def test_broadcasting_and_float32() -> None:
    a = np.array([[1.0], [2.0]])
    b = np.array([0.5, 1.5, 2.5])
    ga, gb = tr.gradient(lambda a, b: np.sum(ts.betaln(a, b)), a, b)
    assert ga.shape == (2, 1) and gb.shape == (3,)
    x = tr.param(np.array([0.5, 1.5], dtype=np.float32))
    for f in (ts.erf, ts.digamma, ts.i0, sp.gammaln):
        y = f(x)
        assert tr.data(y).dtype == np.float32
        np.testing.assert_allclose(tr.data(y), f(np.array([0.5, 1.5])), rtol=1e-6)


TORCH = {
    "erf": "erf",
    "erfc": "erfc",
    "erfinv": "erfinv",
    "erfcx": "erfcx",
    "gammaln": "gammaln",
    "digamma": "digamma",
    "expit": "expit",
    "logit": "logit",
    "ndtr": "ndtr",
    "log_ndtr": "log_ndtr",
    "i0": "i0",
    "i0e": "i0e",
    "i1": "i1",
    "i1e": "i1e",
}


@pytest.mark.parametrize("name", sorted(TORCH))
def test_against_torch(name: str) -> None:
    torch = pytest.importorskip("torch")
    x = np.array(INTERIOR[name])
    xt = torch.tensor(x, requires_grad=True)
    yt = getattr(torch.special, TORCH[name])(xt)
    (gt,) = torch.autograd.grad(yt.sum(), xt)
    y, (g,) = tr.withgradient(lambda x: np.sum(getattr(ts, name)(x)), x)
    np.testing.assert_allclose(y, yt.sum().item(), rtol=1e-12)
    # PyTorch's trigamma (digamma's derivative) is good to about 1e-9.
    np.testing.assert_allclose(g, gt.numpy(), rtol=1e-8, atol=1e-14)


def test_against_torch_polygamma_and_two_arguments() -> None:
    torch = pytest.importorskip("torch")
    x = np.array(INTERIOR["polygamma"])
    xt = torch.tensor(x, requires_grad=True)
    (gt,) = torch.autograd.grad(torch.special.polygamma(2, xt).sum(), xt)
    (g,) = tr.gradient(lambda x: np.sum(ts.polygamma(2, x)), x)
    np.testing.assert_allclose(g, gt.numpy(), rtol=1e-10)
    for name in ("xlogy", "xlog1py"):
        a, b = (np.array(v) for v in INTERIOR_PAIRS[name])
        at, bt = (torch.tensor(v, requires_grad=True) for v in (a, b))
        gat, gbt = torch.autograd.grad(getattr(torch.special, name)(at, bt).sum(), (at, bt))
        ga, gb = tr.gradient(lambda a, b, n=name: np.sum(getattr(ts, n)(a, b)), a, b)
        np.testing.assert_allclose(ga, gat.numpy(), rtol=1e-12)
        np.testing.assert_allclose(gb, gbt.numpy(), rtol=1e-12)


# -- SciPy's Python functions: homes in tracker.scipy ---------------------------------------


@pytest.mark.parametrize(
    ("call", "home"),
    [
        (lambda x: sp.logsumexp(x), "tracker.scipy.special.logsumexp"),
        (lambda x: sp.softmax(x), "tracker.scipy.special.softmax"),
        (lambda x: sp.log_softmax(x), "tracker.scipy.special.log_softmax"),
        (lambda x: sp.polygamma(1, x), "tracker.scipy.special.polygamma"),
        (lambda x: sl.solve_triangular(np.eye(2), x), "tracker.scipy.linalg.solve_triangular"),
    ],
)
def test_python_functions_name_their_home(call: Any, home: str) -> None:
    with pytest.raises(TypeError, match=home.replace(".", r"\.")):
        call(tr.param(np.array([0.5, 2.0])))


def test_plain_asarray_keeps_its_message() -> None:
    with pytest.raises(TypeError, match=r"tr\.data\(x\)"):
        np.asarray(tr.param(np.array([1.0])))


def test_logsumexp_softmax_log_softmax() -> None:
    x = np.array([[0.5, -2.0, 3.0], [1.0, 1.0, -np.inf]])
    for axis in (None, 0, 1, -1):
        for keepdims in (False, True):
            np.testing.assert_allclose(
                tr.data(ts.logsumexp(tr.param(x), axis=axis, keepdims=keepdims)),
                sp.logsumexp(x, axis=axis, keepdims=keepdims),
                rtol=1e-14,
            )
        np.testing.assert_allclose(
            tr.data(ts.softmax(tr.param(x), axis=axis)), sp.softmax(x, axis=axis), rtol=1e-14
        )
        np.testing.assert_allclose(
            tr.data(ts.log_softmax(tr.param(x), axis=axis)),
            sp.log_softmax(x, axis=axis),
            rtol=1e-14,
        )
    b = np.array([1.0, 2.0, 0.5])
    np.testing.assert_allclose(
        tr.data(ts.logsumexp(tr.param(x[0]), b=b)), sp.logsumexp(x[0], b=b), rtol=1e-14
    )
    big = np.array([1000.0, 1000.0])
    np.testing.assert_allclose(tr.data(ts.logsumexp(tr.param(big))), 1000 + np.log(2))
    y = np.array([[0.5, -2.0, 3.0], [1.0, 1.5, -1.0]])
    w = np.array([[1.0, -2.0, 0.5], [0.3, 0.7, -1.1]])
    assert gradcheck(lambda y: np.sum(ts.logsumexp(y, axis=1) * w[:, 0]), y)
    assert gradcheck(lambda y: np.sum(ts.softmax(y, axis=1) * w), y)
    assert gradcheck(lambda y: np.sum(ts.log_softmax(y) * w), y)
    assert gradgradcheck(lambda y: np.sum(ts.log_softmax(y, axis=1) ** 2), y)


def test_solve_triangular() -> None:
    rng = np.random.default_rng(0)
    a = np.tril(rng.normal(size=(4, 4))) + 4 * np.eye(4)
    b, bm = rng.normal(size=4), rng.normal(size=(4, 2))
    for lower in (True, False):
        aa = a if lower else a.T
        for trans in (0, 1, "T"):
            for rhs in (b, bm):
                for unit in (False, True):
                    np.testing.assert_allclose(
                        tr.data(
                            tlinalg.solve_triangular(
                                tr.param(aa), rhs, trans=trans, lower=lower, unit_diagonal=unit
                            )
                        ),
                        sl.solve_triangular(aa, rhs, trans=trans, lower=lower, unit_diagonal=unit),
                        rtol=1e-12,
                    )
    assert gradcheck(lambda a, b: np.sum(tlinalg.solve_triangular(a, b, lower=True) ** 2), a, bm)
    assert gradgradcheck(lambda a, b: np.sum(tlinalg.solve_triangular(a, b, lower=True) ** 2), a, b)
    with pytest.raises(ValueError, match="square"):
        tlinalg.solve_triangular(np.ones((2, 3)), np.ones(2))


def test_polygamma_orders() -> None:
    x = np.array([0.3, 2.0])
    for n in range(5):
        assert_close(tr.data(ts.polygamma(n, tr.param(x))), sp.polygamma(n, x), x)
    with pytest.raises(ValueError, match="non-negative integer"):
        ts.polygamma(-1, x)


def test_without_scipy_the_native_functions_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """An evaluated function says it needs SciPy; the native ones do not need it."""
    monkeypatch.setitem(sys.modules, "scipy.special", None)
    x = tr.param(np.array([0.5]))
    assert tr.istracked(ts.erf(x))
    assert tr.istracked(ts.gammaln(x))  # its forward value is native
    with pytest.raises(ModuleNotFoundError, match=r"scipy\.special\.i0 .*install scipy"):
        ts.i0(x)
    with pytest.raises(ModuleNotFoundError, match="digamma"):
        # gammaln's derivative is digamma, computed by SciPy.
        tr.gradient(lambda x: np.sum(ts.gammaln(x)), np.array([0.5]))


def test_tracker_does_not_import_scipy() -> None:
    code = (
        "import sys; sys.modules['scipy'] = None\n"
        "import numpy as np, tracker as tr\n"
        "from tracker.scipy import special\n"
        "print(tr.gradient(lambda x: np.sum(special.erf(x) + x ** 2), np.array([0.0]))[0][0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith("1.128379")
